//! [`Engine`]: bans, unbans and flush over one firewall thread and the store, with the
//! queries and the event fan-out. Starting is in `start.rs`, the background work (expiry,
//! repair, host addresses, records, retention) in `upkeep.rs`, protection and the whitelist in
//! `protection.rs`.
//!
//! Ordering rules (DESIGN.md §7):
//! - a ban goes to the kernel first and is recorded only once the kernel accepted it; an
//!   unban leaves the kernel first and is ended in the store after;
//! - the kernel is enforced first and the record follows: a database fault never refuses or
//!   undoes a ban or an unban, its record waits in order ([`crate::records`]) and is written
//!   once the database takes writes again;
//! - the in-memory index holds every enforced ban, recorded or waiting.
//!
//! Concurrency: operations on one target hold that target's stripe lock (so two bans of the
//! same address cannot interleave their kernel and store steps), and the shared side of the
//! `gate`; operations on every ban (flush, repair, whitelist changes, shutdown) hold the
//! gate exclusively. Different targets proceed concurrently, which is what lets the firewall
//! thread combine a burst of bans into one transaction.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::{Duration, Instant};

use crmonban_core::config::{BanDuration, WhitelistConfig, ZonesConfig};
use crmonban_core::{Ban, BanSource, Event, Target, unix_now};
use crmonban_firewall::{ChangeSet, Element, Expiry, FirewallBackend, FirewallError};
use crmonban_store::{Store, WhitelistEntry};
use crmonban_zones::{Entry, Policy, PolicyProblem, ZoneInfo, resolve_zones};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, error, info, info_span, instrument, warn};

use crate::activity::{Activity, ActivityLog, write_activity};
use crate::events::{EventStream, Overflow, Subscribers};
use crate::firewall_thread::FirewallThread;
use crate::host::AddressEvents;
use crate::index::{BanIndex, element_of, expires_at};
use crate::intel::Summaries;
use crate::offences::Offences;
use crate::protect::{Protection, ask_daemons, daemon_sources, lift_reason};
use crate::records::{Record, RecordStats, Records};
use crate::watch::{FileWatch, watch_files, watched_files};
use crate::{EngineError, EngineEvent, EngineOptions};

mod bulk;
pub use bulk::BulkBanReport;
mod protection;
mod reports;
mod restore;
mod start;
mod upkeep;

use crate::locks::lock;
use start::report_policy;
use upkeep::{Periodic, follow_host_addresses, run_every};

/// Locks that serialise operations on the same target; more stripes, fewer false collisions.
const STRIPES: usize = 64;
/// The engine's settings a reload may change.
struct Settings {
    default_ban: BanDuration,
    escalation: Arc<dyn crate::Escalation>,
    retention: crate::Retention,
}

impl Settings {
    fn of(options: &EngineOptions) -> Settings {
        Settings {
            default_ban: options.default_ban,
            escalation: Arc::clone(&options.escalation),
            retention: options.retention,
        }
    }
}

/// Expiries logged one by one per sweep at info level.
const EXPIRIES_LOGGED: usize = 20;
/// Expiries of one round written to the activity log one by one; the rest as one entry.
const EXPIRIES_RECORDED: usize = 4096;
/// How often queued ban records are written again while the database fails.
const RECORDS_RETRY: Duration = Duration::from_secs(1);

/// A request to ban one target.
#[derive(Clone, Debug)]
pub struct BanRequest {
    /// The address or network to ban.
    pub target: Target,
    /// `None`: [`EngineOptions::default_ban`]. Escalation may lengthen it.
    pub duration: Option<BanDuration>,
    /// Free text kept with the ban ([`Ban::reason`]) and shown to operators.
    pub reason: String,
    /// Who asks for the ban.
    pub source: BanSource,
    /// The service whose log caused the ban, if any.
    pub service: Option<String>,
}

/// The engine; see the crate docs. Cheap to clone: clones share one engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    options: EngineOptions,
    kernel: FirewallThread,
    store: Store,
    index: RwLock<BanIndex>,
    /// Earlier bans per target, for escalation without a database read on the ban path.
    offences: Mutex<Offences>,
    protection: RwLock<Protection>,
    /// The sections the policy is built from, replaced by [`Engine::reconfigure_protection`].
    policy_sources: Mutex<(WhitelistConfig, ZonesConfig)>,
    /// The watcher of the whitelist files (`watch = true`), re-armed by a reconfiguration.
    file_watch: Mutex<Option<FileWatch>>,
    events: broadcast::Sender<EngineEvent>,
    lossless: Subscribers,
    gate: tokio::sync::RwLock<()>,
    stripes: Vec<tokio::sync::Mutex<()>>,
    activity: ActivityLog,
    /// Ban and unban records waiting for the database (kernel first, record follows).
    records: Records,
    /// What intel said about addresses banned before, for the reasons of their next bans.
    intel_summaries: Mutex<Summaries>,
    /// What a reload may change about bans and history ([`Engine::reconfigure_settings`]).
    settings: RwLock<Settings>,
    events_processed: AtomicU64,
    events_dropped: AtomicU64,
    /// The instruments of [`crate::metrics`].
    metrics: crate::Metrics,
    /// Rebuilds of the sets because one was full, so that callers refused together grow them
    /// once ([`Inner::grow_sets`]).
    set_growths: AtomicU64,
    started: Instant,
    stopped: AtomicBool,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Engine {
    /// Bans a target: refused when it is protected; otherwise the kernel first, then the
    /// store (offence = earlier bans + 1), then [`EngineEvent::BanAdded`]. Banning a banned
    /// target lengthens it when the new ban lasts longer, and otherwise leaves it as it is
    /// (see [`Engine::ban_or_keep`]). If the nftables layout has disappeared, it is repaired and
    /// the ban tried once more.
    pub async fn ban(&self, req: BanRequest) -> Result<Ban, EngineError> {
        Ok(self.ban_or_keep(req).await?.0)
    }

    /// [`Engine::ban`], also saying whether anything changed: a ban is only ever lengthened,
    /// so a request that would end an active ban sooner (a timed ban of a permanently banned
    /// target, a shorter one) leaves that ban as it is and returns it with `false`. To
    /// shorten a ban, unban it first.
    #[instrument(name = "ban", skip_all, fields(target = %req.target, source = %req.source))]
    pub async fn ban_or_keep(&self, req: BanRequest) -> Result<(Ban, bool), EngineError> {
        let growths = self.inner.set_growths.load(Ordering::Acquire);
        match self.inner.try_ban(&req).await {
            Err(EngineError::Firewall(FirewallError::LayoutMissing(why))) => {
                warn!(%why, "the nftables layout is gone; repairing it, then banning again");
                self.inner.repair_if_needed().await?;
                self.inner.try_ban(&req).await
            }
            Err(EngineError::Firewall(FirewallError::SetFull(why))) => {
                self.inner.grow_sets(growths, &why).await?;
                self.inner.try_ban(&req).await
            }
            other => other,
        }
    }

    /// Ends the ban of exactly `target` (kernel first, then store) with `reason`, emitting
    /// [`EngineEvent::BanRemoved`]. False when it was not banned.
    #[instrument(name = "unban", skip_all, fields(target = %target))]
    pub async fn unban(&self, target: &Target, reason: &str) -> Result<bool, EngineError> {
        let inner = &self.inner;
        inner.ensure_running()?;
        let _shared = inner.gate.read().await;
        let _target = inner.stripe(target).lock().await;
        inner.ensure_running()?;
        inner.unban_locked(target, reason).await
    }

    /// Ends every ban: one transaction removing them all from the kernel, then the store.
    /// Emits [`EngineEvent::BanRemoved`] (reason "flush") per ban and returns how many the
    /// store ended.
    #[instrument(name = "flush", skip_all)]
    pub async fn flush(&self) -> Result<u64, EngineError> {
        let inner = &self.inner;
        inner.ensure_running()?;
        let _all = inner.gate.write().await;
        inner.ensure_running()?;
        let now = unix_now();
        let changes: ChangeSet = {
            let index = inner.index_read();
            let mut changes = ChangeSet::new();
            for target in index.targets() {
                changes.remove(target);
            }
            changes
        };
        if !changes.is_empty() {
            inner.remove_from_kernel(changes).await?;
        }
        let ended = match inner.store.end_bans_all(now, "flush").await {
            Ok(ended) => ended,
            Err(store_error) => {
                let mut back = ChangeSet::new();
                for element in inner.index_read().elements(now) {
                    back.add(element);
                }
                inner.put_back(back, "flush").await;
                return Err(store_error.into());
            }
        };
        let mut removed = inner.index_write().take_all(now);
        // Announced in address order, as GetBans lists them.
        removed.sort_unstable_by_key(|(target, _)| *target);
        for (target, active) in removed {
            let reason = if active { "flush" } else { "expired" };
            inner
                .emit(EngineEvent::BanRemoved {
                    target,
                    reason: reason.to_owned(),
                })
                .await;
        }
        info!(ended, "all bans flushed");
        inner.record(now, "flush", None, format!("{ended} bans ended"));
        Ok(ended)
    }

    /// True when `target` is banned, or lies inside a banned network.
    pub fn is_banned(&self, target: &Target) -> bool {
        self.inner.index_read().is_banned(target, unix_now())
    }

    /// The ban of exactly `target`, if it is in force.
    pub fn active_ban(&self, target: &Target) -> Option<Ban> {
        let now = unix_now();
        self.inner
            .index_read()
            .get(target)
            .filter(|ban| ban.is_active_at(now))
    }

    /// Every ban in force, oldest first.
    pub fn active_bans(&self) -> Vec<Ban> {
        self.inner.index_read().active(unix_now())
    }

    /// Every ban in force as the kernel holds it (target and expiry): what a second backend
    /// mirrors. Cheaper than [`Engine::active_bans`] (no strings).
    pub fn active_elements(&self) -> Vec<crmonban_firewall::Element> {
        self.inner.index_read().elements(unix_now())
    }

    /// The expiry of exactly `target`'s ban when it is in force (a network covering `target`
    /// does not count): what a mirror checks an entry of its own against.
    pub fn enforced(&self, target: &Target) -> Option<Expiry> {
        self.inner.index_read().enforced(target, unix_now())
    }

    /// The engine's metric instruments (see [`Running::metrics_registry`](crate::Running::metrics_registry)).
    pub fn metrics(&self) -> &crate::Metrics {
        &self.inner.metrics
    }

    /// How many bans are in force per family: IPv4 (addresses and networks), IPv6.
    pub fn enforced_counts(&self) -> [usize; 2] {
        self.inner.index_read().family_counts(unix_now())
    }

    /// How many bans are in force.
    pub fn active_ban_count(&self) -> u64 {
        let count = self.inner.index_read().count_active(unix_now());
        u64::try_from(count).unwrap_or(u64::MAX)
    }

    /// Replaces what a reload may change about bans and history: the default ban length,
    /// escalation and retention of `options` (the rest of `options` is fixed at start). Bans
    /// already made keep their expiry.
    pub fn reconfigure_settings(&self, options: &EngineOptions) {
        *self
            .inner
            .settings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Settings::of(options);
    }

    /// Time since [`Engine::start`] returned.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// A receiver of every event from now on. A receiver that falls more than
    /// [`EngineOptions::event_capacity`] events behind loses the oldest (its `recv` returns
    /// `Lagged`); it never slows the engine.
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.inner.events.subscribe()
    }

    /// A lossless subscription: every event from now on, in order, through a queue of
    /// `capacity`; when it is full, `overflow` decides (see [`Overflow`]).
    pub fn subscribe_lossless(&self, capacity: usize, overflow: Overflow) -> EventStream {
        self.inner.lossless.add(capacity, overflow)
    }

    /// The store the engine records bans in, for queries and for what the engine does not
    /// write itself (events, read positions).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The firewall backend's own description, for logs.
    pub fn firewall_description(&self) -> &str {
        self.inner.kernel.description()
    }

    /// False once [`Engine::shutdown`] has begun.
    pub fn is_running(&self) -> bool {
        !self.inner.stopped.load(Ordering::SeqCst)
    }

    /// Re-reads this host's addresses, then probes the nftables layout; when it is gone
    /// (someone ran `nft flush ruleset`), re-creates it with every active ban in one
    /// transaction, emits [`EngineEvent::LayoutRepaired`] and returns `Some(bans)`.
    /// The repair task calls this every [`EngineOptions::repair_interval`].
    pub async fn repair_if_needed(&self) -> Result<Option<usize>, EngineError> {
        self.inner.repair_if_needed().await
    }

    /// Emits [`EngineEvent::DaemonStopping`], waits for running operations, stops the
    /// background tasks (writing the queued activity log) and the firewall thread. Bans stay
    /// in the kernel (and in the store, to be restored at the next start). Later calls on
    /// any clone of this engine return [`EngineError::Stopped`].
    #[instrument(name = "engine_shutdown", skip_all)]
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        if inner.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        inner.emit(EngineEvent::DaemonStopping).await;
        drop(inner.gate.write().await);
        inner.record(unix_now(), "stop", None, String::new());
        let _ = inner.stop.send(true);
        drop(lock(&inner.file_watch).take());
        let tasks = std::mem::take(&mut *lock(&inner.tasks));
        for task in tasks {
            let _ = task.await;
        }
        // A last try for records still waiting on the database.
        if let Err(error) = inner.records.flush(&inner.store).await {
            let pending = inner.records.stats().pending;
            error!(%error, pending, "stopping with ban records the database did not take; the kernel keeps those bans until a restart");
        }
        inner.kernel.stop().await;
        info!("engine stopped; bans stay in the kernel");
    }
}

impl Inner {
    /// See [`Engine::refresh_protection`].
    pub(crate) async fn refresh_protection(&self) -> Result<Vec<PolicyProblem>, EngineError> {
        self.ensure_running()?;
        let _all = self.gate.write().await;
        self.ensure_running()?;
        let problems = self.rebuild_policy(None).await?;
        self.lift_refused_locked().await;
        Ok(problems)
    }

    fn ensure_running(&self) -> Result<(), EngineError> {
        if self.stopped.load(Ordering::SeqCst) {
            Err(EngineError::Stopped)
        } else {
            Ok(())
        }
    }

    /// Sends `event` to the lossless subscribers (waiting for those that asked to be waited
    /// for), then to the live ones.
    async fn emit(&self, event: EngineEvent) {
        match &event {
            EngineEvent::BanAdded { ban } => self.metrics.ban_added(&ban.source),
            EngineEvent::BanRemoved { reason, .. } => self.metrics.ban_removed(reason),
            _ => {}
        }
        self.lossless.send(&event).await;
        // An error only means no live subscriber.
        let _ = self.events.send(event);
    }

    fn record(&self, at: i64, action: &'static str, target: Option<Target>, detail: String) {
        self.activity.record(Activity {
            at,
            action,
            target,
            detail,
        });
    }

    fn stripe(&self, target: &Target) -> &tokio::sync::Mutex<()> {
        let mut hasher = DefaultHasher::new();
        target.hash(&mut hasher);
        let slot = usize::try_from(hasher.finish() % STRIPES as u64).unwrap_or(0);
        &self.stripes[slot]
    }

    fn settings_read(&self) -> RwLockReadGuard<'_, Settings> {
        self.settings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn index_read(&self) -> RwLockReadGuard<'_, BanIndex> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn index_write(&self) -> RwLockWriteGuard<'_, BanIndex> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn protection_read(&self) -> RwLockReadGuard<'_, Protection> {
        self.protection
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn protection_write(&self) -> RwLockWriteGuard<'_, Protection> {
        self.protection
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn try_ban(&self, req: &BanRequest) -> Result<(Ban, bool), EngineError> {
        self.ensure_running()?;
        let _shared = self.gate.read().await;
        let _target = self.stripe(&req.target).lock().await;
        self.ensure_running()?;
        // Checked under the locks: a whitelist change holds the gate exclusively.
        let daemons = {
            let protection = self.protection_read();
            protection.check(&req.target)?;
            protection.daemons.clone()
        };
        ask_daemons(&daemons, &req.target).await?;

        // In memory: the kernel gets the ban without waiting for the database.
        let previous = lock(&self.offences).get(&req.target);
        let duration = {
            let settings = self.settings_read();
            let requested = req.duration.unwrap_or(settings.default_ban);
            settings.escalation.duration(requested, previous)
        };
        let now = unix_now();
        let reason = lock(&self.intel_summaries).reason(&req.target, &req.reason);
        let ban = Ban {
            target: req.target,
            reason,
            source: req.source.clone(),
            service: req.service.clone(),
            banned_at: now,
            expires_at: expires_at(now, duration),
            offence: previous.saturating_add(1),
        };
        // Only ever lengthened: an active ban that lasts at least as long stays as it is.
        if let Some(old) = self
            .index_read()
            .get(&req.target)
            .filter(|old| old.is_active_at(now))
        {
            let lasts_as_long = match (old.expires_at, ban.expires_at) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(old_end), Some(new_end)) => old_end >= new_end,
            };
            if lasts_as_long {
                debug!(
                    expires_at = ?old.expires_at,
                    "already banned at least as long; the ban stays as it is"
                );
                return Ok((old, false));
            }
        }

        let mut changes = ChangeSet::new();
        changes.add(element_of(&ban));
        self.kernel.apply(changes).await?;

        // Kernel first, record follows: a database fault queues the record, never the ban.
        self.records
            .write(&self.store, Record::Ban(ban.clone()))
            .await;
        lock(&self.offences).bump(&ban.target);
        self.index_write().insert(&ban);

        info!(
            duration = %duration,
            offence = ban.offence,
            reason = %ban.reason,
            "banned"
        );
        self.record(
            now,
            "ban",
            Some(ban.target),
            format!(
                "{} (source {}, {}, offence {})",
                ban.reason, ban.source, duration, ban.offence
            ),
        );
        self.emit(EngineEvent::BanAdded {
            ban: Arc::new(ban.clone()),
        })
        .await;
        Ok((ban, true))
    }

    /// The body of an unban; the caller holds the target's stripe (or the gate exclusively).
    async fn unban_locked(&self, target: &Target, reason: &str) -> Result<bool, EngineError> {
        let mut changes = ChangeSet::new();
        changes.remove(*target);
        self.remove_from_kernel(changes).await?;
        let now = unix_now();
        let indexed = self.index_write().remove(target);
        // The index holds every active ban: it says whether this ended one (the store may be
        // behind, its record queued).
        let ended = indexed.as_ref().is_some_and(|b| b.is_active_at(now));
        self.records
            .write(
                &self.store,
                Record::End {
                    target: *target,
                    at: now,
                    reason: reason.to_owned(),
                },
            )
            .await;
        if ended {
            info!(reason, "unbanned");
            self.record(now, "unban", Some(*target), reason.to_owned());
            self.emit(EngineEvent::BanRemoved {
                target: *target,
                reason: reason.to_owned(),
            })
            .await;
        } else if indexed.is_some() {
            // Its time had run out; the store marked it expired rather than ended.
            self.emit(EngineEvent::BanRemoved {
                target: *target,
                reason: "expired".to_owned(),
            })
            .await;
        }
        Ok(ended)
    }

    /// Removes elements; a missing layout means they are gone from the kernel already.
    async fn remove_from_kernel(&self, changes: ChangeSet) -> Result<(), EngineError> {
        match self.kernel.apply(changes).await {
            Err(EngineError::Firewall(FirewallError::LayoutMissing(why))) => {
                debug!(%why, "layout missing; nothing to remove from the kernel");
                Ok(())
            }
            other => other,
        }
    }

    /// Undoes a kernel change whose store half failed.
    async fn put_back(&self, changes: ChangeSet, operation: &str) {
        if let Err(error) = self.kernel.apply(changes).await {
            error!(
                operation,
                %error,
                "the store failed and the kernel could not be put back: kernel and database disagree until the next restart restores from the database"
            );
        }
    }
}

#[cfg(test)]
mod tests;
