//! [`Engine`]: bans, unbans, flush, whitelist and the background work (expiry, layout repair,
//! host address refresh) over one firewall thread and the store.
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
use crate::host::AddressEvents;
use crate::index::{BanIndex, element_of};
use crate::kernel::Kernel;
use crate::offences::Offences;
use crate::protect::{Protection, ask_daemons, daemon_sources, lift_reason};
use crate::records::{Record, RecordStats, Records};
use crate::watch::{FileWatch, watch_files, watched_files};
use crate::{EngineError, EngineEvent, EngineOptions};

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
/// How often queued ban records are written again while the database fails.
const RECORDS_RETRY: Duration = Duration::from_secs(1);

/// A request to ban one target.
#[derive(Clone, Debug)]
pub struct BanRequest {
    pub target: Target,
    /// `None`: [`EngineOptions::default_ban`]. Escalation may lengthen it.
    pub duration: Option<BanDuration>,
    pub reason: String,
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
    kernel: Kernel,
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
    /// What a reload may change about bans and history ([`Engine::reconfigure_settings`]).
    settings: RwLock<Settings>,
    events_processed: AtomicU64,
    events_dropped: AtomicU64,
    started: Instant,
    stopped: AtomicBool,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Engine {
    /// Starts the engine: spawns the firewall thread (from the calling thread, whose network
    /// namespace it keeps), restores every active ban from the store in ONE transaction
    /// (which also creates the nftables layout and drops kernel elements the store does not
    /// know), loads the whitelist and this host's addresses, and starts the expiry, repair
    /// and host-address tasks on the current tokio runtime. Emits
    /// [`EngineEvent::DaemonStarted`] at the end.
    ///
    /// Bans in the store whose target is protected now (whitelisted since, or this host's
    /// address) are ended with reason "whitelisted" or "protected" instead of restored.
    ///
    /// Call it from within a tokio runtime; the engine's tasks run there. No subscriber can
    /// exist before it returns, so nobody sees that `DaemonStarted`: use
    /// [`Engine::start_subscribed`] for a receiver that does.
    pub async fn start(
        options: EngineOptions,
        firewall: Box<dyn FirewallBackend>,
        store: Store,
    ) -> Result<Engine, EngineError> {
        Engine::start_subscribed(options, firewall, store)
            .await
            .map(|(engine, _)| engine)
    }

    /// [`Engine::start`], also returning a receiver subscribed before
    /// [`EngineEvent::DaemonStarted`] was sent (the daemon forwards it as a D-Bus signal).
    #[instrument(name = "engine_start", skip_all)]
    pub async fn start_subscribed(
        options: EngineOptions,
        firewall: Box<dyn FirewallBackend>,
        store: Store,
    ) -> Result<(Engine, broadcast::Receiver<EngineEvent>), EngineError> {
        // Zones are configuration: a zones file that cannot be used stops the start here, before
        // anything changes, and the file is not read again when the policy is rebuilt.
        let zones = resolve_zones(&options.zones)?;
        let kernel = Kernel::spawn(firewall)?;
        // Subscribed here, on the embedder's thread, so that it hears this network namespace.
        let address_events = match AddressEvents::subscribe(options.host_address_poll) {
            Ok(events) => Some(events),
            Err(error) => {
                warn!(%error, "cannot follow address changes; the host's addresses are re-read every {:?} instead", options.host_address_poll);
                None
            }
        };
        let host = match kernel.host_addresses().await? {
            Ok(addrs) => addrs,
            Err(error) => {
                warn!(%error, "cannot read this host's addresses; only the special ranges and the whitelist are protected until the next refresh");
                Vec::new()
            }
        };
        let database = store
            .whitelist_list()
            .await?
            .into_iter()
            .map(|entry| (entry.target, entry.comment));
        let (policy, problems) = Policy::build(&options.whitelist, &zones, database, host)?;
        report_policy(&policy, &problems);
        let protection = Protection {
            policy,
            extra: options.extra_policy.clone(),
            daemons: daemon_sources(&options.whitelist),
        };
        info!(
            addresses = %protection.policy.host_addresses_summary(),
            "the host's own addresses are never banned"
        );

        let restore_started = std::time::Instant::now();
        let now = unix_now();
        adopt_kernel_bans(&kernel, &store, &protection, now).await?;
        let expired = store.expire_due(now).await?;
        let mut restored = Vec::new();
        let mut lifted = Vec::new();
        for ban in store.active_bans(now).await? {
            match protection.check(&ban.target) {
                Ok(()) => restored.push(ban),
                Err(refusal) => {
                    let reason = lift_reason(&refusal);
                    warn!(target = %ban.target, %refusal, "not restoring a ban of a protected target; ending it");
                    store.end_ban(&ban.target, now, reason).await?;
                    lifted.push((ban.target, refusal.to_string()));
                }
            }
        }
        let offences = Offences::from_counts(store.offence_counts().await?);
        let elements = restored.iter().map(element_of).collect();
        let report = kernel.replace_all(elements).await?;
        info!(
            restored = restored.len(),
            offenders = offences.len(),
            expired_while_stopped = expired.len(),
            interval_elements = report.interval_elements,
            firewall = kernel.description(),
            elapsed_ms = restore_started.elapsed().as_millis() as u64,
            "active bans restored in one transaction"
        );

        let (activity, activity_queue) = ActivityLog::new();
        let (events, first_subscriber) = broadcast::channel(options.event_capacity.max(1));
        let (stop, _) = watch::channel(false);
        let restored_count = restored.len();
        let policy_sources = (options.whitelist.clone(), zones);
        let settings = Settings::of(&options);
        let inner = Arc::new(Inner {
            options,
            kernel,
            store: store.clone(),
            index: RwLock::new(BanIndex::from_bans(restored)),
            offences: Mutex::new(offences),
            protection: RwLock::new(protection),
            policy_sources: Mutex::new(policy_sources),
            file_watch: Mutex::new(None),
            events,
            lossless: Subscribers::default(),
            gate: tokio::sync::RwLock::new(()),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            activity,
            records: Records::default(),
            settings: RwLock::new(settings),
            events_processed: AtomicU64::new(0),
            events_dropped: AtomicU64::new(0),
            started: Instant::now(),
            stopped: AtomicBool::new(false),
            stop,
            tasks: Mutex::new(Vec::new()),
        });

        let tasks = vec![
            tokio::spawn(
                write_activity(store, activity_queue, inner.stop.subscribe())
                    .instrument(info_span!("activity_log")),
            ),
            tokio::spawn(
                run_every(
                    Arc::downgrade(&inner),
                    inner.stop.subscribe(),
                    inner.options.expiry_interval,
                    Periodic::Expiry,
                )
                .instrument(info_span!("expiry")),
            ),
            tokio::spawn(
                run_every(
                    Arc::downgrade(&inner),
                    inner.stop.subscribe(),
                    inner.options.repair_interval,
                    Periodic::Repair,
                )
                .instrument(info_span!("repair")),
            ),
            tokio::spawn(
                run_every(
                    Arc::downgrade(&inner),
                    inner.stop.subscribe(),
                    RECORDS_RETRY,
                    Periodic::Records,
                )
                .instrument(info_span!("records")),
            ),
            tokio::spawn(
                run_every(
                    Arc::downgrade(&inner),
                    inner.stop.subscribe(),
                    inner.options.retention.every,
                    Periodic::Retention,
                )
                .instrument(info_span!("retention")),
            ),
            tokio::spawn(
                follow_host_addresses(
                    Arc::downgrade(&inner),
                    inner.stop.subscribe(),
                    address_events,
                )
                .instrument(info_span!("host_addresses")),
            ),
        ];
        *lock(&inner.tasks) = tasks;
        *lock(&inner.file_watch) = watch_files(
            Arc::downgrade(&inner),
            watched_files(&inner.options.whitelist),
        );

        inner.record(
            now,
            "start",
            None,
            format!("restored {restored_count} bans"),
        );
        for (target, why) in lifted {
            inner.record(now, "lift", Some(target), format!("not restored: {why}"));
        }
        if let Err(error) = inner.prune_history().await {
            warn!(%error, "cannot apply the history retention at start; retried every {:?}", inner.options.retention.every);
        }
        inner.emit(EngineEvent::DaemonStarted).await;
        Ok((Engine { inner }, first_subscriber))
    }

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
        match self.inner.try_ban(&req).await {
            Err(EngineError::Firewall(FirewallError::LayoutMissing(why))) => {
                warn!(%why, "the nftables layout is gone; repairing it, then banning again");
                self.inner.repair_if_needed().await?;
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
                changes.remove(*target);
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
        let mut removed = inner.index_write().take_all();
        // Announced in address order, as GetBans lists them.
        removed.sort_unstable_by_key(|ban| ban.target);
        for ban in removed {
            let reason = if ban.is_active_at(now) {
                "flush"
            } else {
                "expired"
            };
            inner
                .emit(EngineEvent::BanRemoved {
                    target: ban.target,
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
            .cloned()
    }

    /// Every ban in force, oldest first.
    pub fn active_bans(&self) -> Vec<Ban> {
        self.inner.index_read().active(unix_now())
    }

    /// How many bans are in force.
    pub fn active_ban_count(&self) -> u64 {
        let count = self.inner.index_read().count_active(unix_now());
        u64::try_from(count).unwrap_or(u64::MAX)
    }

    /// Ok when `target` may be banned; otherwise the refusal a ban would get
    /// ([`EngineError::Protected`] or [`EngineError::Whitelisted`]).
    pub fn check_protected(&self, target: &Target) -> Result<(), EngineError> {
        self.inner.protection_read().check(target)
    }

    /// Whitelists `target` in the database (false when it already was). Every ban the new
    /// entry forbids — of addresses or networks inside it, or networks around it — is ended
    /// with reason "whitelisted", each with an activity entry saying what was lifted and why.
    pub async fn whitelist_add(&self, target: &Target, comment: &str) -> Result<bool, EngineError> {
        Ok(self.whitelist_add_lifting(target, comment).await?.0)
    }

    /// [`Engine::whitelist_add`], also returning the bans the new entry lifted, each with why
    /// (a /24 ban is lifted by whitelisting one address inside it: a ban may never cover a
    /// trusted address).
    #[instrument(name = "whitelist_add", skip_all, fields(target = %target))]
    pub async fn whitelist_add_lifting(
        &self,
        target: &Target,
        comment: &str,
    ) -> Result<(bool, Vec<(Target, String)>), EngineError> {
        let inner = &self.inner;
        inner.ensure_running()?;
        // Exclusive: no ban may be checked against the old policy and applied after the sweep
        // below.
        let _all = inner.gate.write().await;
        inner.ensure_running()?;
        let added = inner.store.whitelist_add(target, comment).await?;
        inner.rebuild_policy(None).await?;
        if added {
            info!(comment, "whitelisted");
            inner.record(
                unix_now(),
                "whitelist_add",
                Some(*target),
                comment.to_owned(),
            );
        }
        let lifted = inner.lift_refused_locked().await;
        Ok((added, lifted))
    }

    /// Removes `target` from the database's whitelist; false when it was not there.
    #[instrument(name = "whitelist_remove", skip_all, fields(target = %target))]
    pub async fn whitelist_remove(&self, target: &Target) -> Result<bool, EngineError> {
        let inner = &self.inner;
        inner.ensure_running()?;
        let _all = inner.gate.write().await;
        inner.ensure_running()?;
        let removed = inner.store.whitelist_remove(target).await?;
        inner.rebuild_policy(None).await?;
        if removed {
            info!("removed from the whitelist");
            inner.record(unix_now(), "whitelist_remove", Some(*target), String::new());
        }
        Ok(removed)
    }

    /// The database's whitelist entries, oldest first.
    pub async fn whitelist(&self) -> Result<Vec<WhitelistEntry>, EngineError> {
        Ok(self.inner.store.whitelist_list().await?)
    }

    /// Every entry of every whitelist source in force (database, networks, files, protecting
    /// zones), in address order.
    pub fn protected_entries(&self) -> Vec<Entry> {
        self.inner.protection_read().policy.entries()
    }

    /// The zone `target` belongs to (its most specific one), with the zone's network.
    pub fn zone_of(&self, target: &Target) -> Option<(Target, ZoneInfo)> {
        self.inner
            .protection_read()
            .policy
            .zone_of(target)
            .map(|(net, zone)| (net, zone.clone()))
    }

    /// Replaces the whitelist sources and zones at once (a reload): the new policy is built
    /// (files read again), swapped in, and every active ban it now refuses is lifted. Returns
    /// the problems found in the sources; what could be read applies. A zones file that cannot
    /// be used fails the call and changes nothing.
    #[instrument(name = "reconfigure_protection", skip_all)]
    pub async fn reconfigure_protection(
        &self,
        whitelist: WhitelistConfig,
        zones: ZonesConfig,
    ) -> Result<Vec<PolicyProblem>, EngineError> {
        let inner = &self.inner;
        inner.ensure_running()?;
        let zones = tokio::task::spawn_blocking(move || resolve_zones(&zones))
            .await
            .map_err(|_| EngineError::Stopped)??;
        let _all = inner.gate.write().await;
        inner.ensure_running()?;
        let files = watched_files(&whitelist);
        let before = watched_files(&lock(&inner.policy_sources).0);
        let problems = inner.rebuild_policy(Some((whitelist, zones))).await?;
        inner.lift_refused_locked().await;
        if files != before {
            *lock(&inner.file_watch) = watch_files(Arc::downgrade(inner), files);
        }
        Ok(problems)
    }

    /// Rebuilds the policy from the same sections (a whitelist file changed on disk) and lifts
    /// the bans it now refuses.
    pub async fn refresh_protection(&self) -> Result<Vec<PolicyProblem>, EngineError> {
        self.inner.refresh_protection().await
    }

    /// Counts a detector's event and emits [`EngineEvent::AttackDetected`].
    pub async fn report_attack(&self, event: &Event) {
        self.report_attack_coalesced(event, true).await;
    }

    /// Counts a detector's event; emits [`EngineEvent::AttackDetected`] only when `announce`
    /// (detection coalesces announcements under floods, while every event is counted).
    pub async fn report_attack_coalesced(&self, event: &Event, announce: bool) {
        self.inner.events_processed.fetch_add(1, Ordering::Relaxed);
        if announce {
            self.inner
                .emit(EngineEvent::AttackDetected {
                    addr: event.addr,
                    service: event.service.to_string(),
                    kind: event.kind.to_string(),
                })
                .await;
        }
    }

    /// How many detector events [`Engine::report_attack`] has seen.
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

    /// Ban and unban records that could not be written to the database at once.
    pub fn record_stats(&self) -> RecordStats {
        self.inner.records.stats()
    }

    /// Activity log entries lost since start (queue full under a flood, or refused by the
    /// database).
    pub fn activity_dropped(&self) -> u64 {
        self.inner.activity.dropped()
    }

    /// Event rows lost since start (see [`Engine::note_events_dropped`]).
    pub fn events_dropped(&self) -> u64 {
        self.inner.events_dropped.load(Ordering::Relaxed)
    }

    /// Counts `n` event rows that could not be recorded (the detection pipeline's queue was
    /// full, or the database refused them); the bans they led to are not affected.
    pub fn note_events_dropped(&self, n: u64) {
        self.inner.events_dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub fn events_processed(&self) -> u64 {
        self.inner.events_processed.load(Ordering::Relaxed)
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
        let ban = Ban {
            target: req.target,
            reason: req.reason.clone(),
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
                return Ok((old.clone(), false));
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
        self.index_write().insert(ban.clone());

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
        self.emit(EngineEvent::BanAdded { ban: ban.clone() }).await;
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

    /// Builds the policy again from the database and the sections (`new` replaces them),
    /// keeping the host's addresses, and swaps it in. Call with the gate held exclusively.
    async fn rebuild_policy(
        &self,
        new: Option<(WhitelistConfig, ZonesConfig)>,
    ) -> Result<Vec<PolicyProblem>, EngineError> {
        let database: Vec<(Target, String)> = self
            .store
            .whitelist_list()
            .await?
            .into_iter()
            .map(|entry| (entry.target, entry.comment))
            .collect();
        let replaced = new.is_some();
        let (whitelist, zones) = {
            let mut sources = lock(&self.policy_sources);
            if let Some(new) = new {
                *sources = new;
            }
            sources.clone()
        };
        // New daemon sources only when the configuration changed: a database entry keeps the
        // connections and their caches.
        let daemons = replaced.then(|| daemon_sources(&whitelist));
        let host = self.protection_read().policy.host_addresses().to_vec();
        // Files are read off the runtime's threads.
        let (policy, problems) =
            tokio::task::spawn_blocking(move || Policy::build(&whitelist, &zones, database, host))
                .await
                .map_err(|_| EngineError::Stopped)??;
        report_policy(&policy, &problems);
        let mut protection = self.protection_write();
        protection.policy = policy;
        if let Some(daemons) = daemons {
            protection.daemons = daemons;
        }
        Ok(problems)
    }

    /// Ends every active ban the policy now refuses (reason "whitelisted" or "protected"),
    /// recording one activity entry per lifted ban. Returns each lifted target with why. Call
    /// with the gate held exclusively.
    async fn lift_refused_locked(&self) -> Vec<(Target, String)> {
        let mut lifted = Vec::new();
        let refused: Vec<(Target, EngineError)> = {
            let protection = self.protection_read();
            self.index_read()
                .targets()
                .filter_map(|banned| protection.check(banned).err().map(|e| (*banned, e)))
                .collect()
        };
        for (banned, refusal) in refused {
            match self.unban_locked(&banned, lift_reason(&refusal)).await {
                Ok(_) => {
                    info!(target = %banned, %refusal, "ban lifted: the target is protected now");
                    self.record(
                        unix_now(),
                        "lift",
                        Some(banned),
                        format!("ban lifted: {refusal}"),
                    );
                    lifted.push((banned, refusal.to_string()));
                }
                Err(error) => {
                    warn!(%banned, %error, "cannot end a ban that the policy now refuses; it stays until unbanned")
                }
            }
        }
        lifted
    }

    async fn refresh_host_addresses(&self) {
        match self.kernel.host_addresses().await {
            Ok(Ok(addrs)) => {
                debug!(count = addrs.len(), "host addresses read");
                let changed = {
                    let mut protection = self.protection_write();
                    let changed = protection.policy.set_host_addresses(addrs);
                    if changed {
                        info!(
                            addresses = %protection.policy.host_addresses_summary(),
                            "the host's addresses changed; never banned"
                        );
                    }
                    changed
                };
                if changed {
                    let _all = self.gate.write().await;
                    self.lift_refused_locked().await;
                }
            }
            Ok(Err(error)) => {
                warn!(%error, "cannot read this host's addresses; keeping the previous list")
            }
            Err(_) => {}
        }
    }

    /// Ends what the store says has expired and drops it from the index.
    async fn expire_due(&self) -> Result<usize, EngineError> {
        let now = unix_now();
        let expired = self.store.expire_due(now).await?;
        if expired.is_empty() {
            return Ok(0);
        }
        let removed: Vec<Ban> = {
            let mut index = self.index_write();
            expired
                .into_iter()
                .filter(|ban| index.remove_exact(ban))
                .collect()
        };
        for (i, ban) in removed.iter().enumerate() {
            // Each expiry is logged; a wave of them is summed up after the first few.
            if i < EXPIRIES_LOGGED {
                info!(target = %ban.target, reason = %ban.reason, banned_at = ban.banned_at, "ban expired");
            } else {
                debug!(target = %ban.target, "ban expired");
            }
            self.emit(EngineEvent::BanRemoved {
                target: ban.target,
                reason: "expired".to_owned(),
            })
            .await;
        }
        if removed.len() > EXPIRIES_LOGGED {
            info!(
                more = removed.len() - EXPIRIES_LOGGED,
                "more bans expired at the same time (each at debug level)"
            );
        }
        Ok(removed.len())
    }

    async fn repair_if_needed(&self) -> Result<Option<usize>, EngineError> {
        self.ensure_running()?;
        self.refresh_host_addresses().await;
        if self.kernel.layout_present().await? {
            // The layout is whole; its sets may still have lost elements.
            return self.repair_elements_if_needed().await;
        }
        let _all = self.gate.write().await;
        // Another caller may have repaired while we waited.
        if self.kernel.layout_present().await? {
            return Ok(None);
        }
        let now = unix_now();
        let elements = self.index_read().elements(now);
        let bans = elements.len();
        self.kernel
            .set_whole_generation(self.kernel.generation().await?);
        self.rebuild(elements).await?;
        warn!(
            bans,
            "the nftables layout had disappeared or was altered (flushed, a rule changed by someone else?); re-created it with every active ban"
        );
        self.record(
            now,
            "repair",
            None,
            format!("nftables layout re-created with {bans} bans"),
        );
        self.emit(EngineEvent::LayoutRepaired { bans }).await;
        Ok(Some(bans))
    }
}

/// A database without any ban history (just created: deleted or lost since the last run)
/// while crmonban's sets hold elements: the kernel's bans are adopted, recorded with their
/// remaining time, instead of being cleared by the restore. Protected targets are not adopted.
async fn adopt_kernel_bans(
    kernel: &Kernel,
    store: &Store,
    protection: &Protection,
    now: i64,
) -> Result<(), EngineError> {
    if store.has_ban_history().await? {
        return Ok(());
    }
    let found = kernel.list().await?;
    if found.is_empty() {
        return Ok(());
    }
    let bans: Vec<Ban> = found
        .iter()
        .filter(|element| !element.expiry.is_past(now))
        .filter(|element| protection.check(&element.target).is_ok())
        .map(|element| Ban {
            target: element.target,
            reason: "adopted from the kernel: the database had no record of it".to_owned(),
            source: BanSource::Restore,
            service: None,
            banned_at: now,
            expires_at: match element.expiry {
                Expiry::At(at) => Some(at),
                Expiry::Never => None,
            },
            offence: 1,
        })
        .collect();
    warn!(
        adopted = bans.len(),
        in_kernel = found.len(),
        path = %store.path().display(),
        "the database has no ban history but crmonban's sets hold bans (was it deleted or replaced?): adopting them instead of clearing the sets"
    );
    store.record_bans(&bans).await?;
    Ok(())
}

impl Inner {
    /// When the ruleset changed since the last check, counts the sets' elements (holding the
    /// gate, so that no ban or unban moves them meanwhile) and rebuilds everything from the
    /// index when a set holds fewer than the bans that must be in it: an external `nft flush
    /// set` or `delete element`.
    async fn repair_elements_if_needed(&self) -> Result<Option<usize>, EngineError> {
        let generation = self.kernel.generation().await?;
        if generation.is_some() && generation == self.kernel.whole_generation() {
            return Ok(None);
        }
        let _all = self.gate.write().await;
        // Read before counting: a change by someone else after it makes the next check count
        // again instead of being taken for whole.
        let checked_at = self.kernel.generation().await?;
        let Some(counts) = self.kernel.element_counts().await? else {
            return Ok(None);
        };
        let now = unix_now();
        let elements = self.index_read().elements(now);
        let needed = minimum_counts(&elements, now);
        let short: Vec<String> = SET_KINDS
            .iter()
            .zip(counts.iter().zip(needed.iter()))
            .filter(|(_, (have, need))| have < need)
            .map(|(kind, (have, need))| format!("{kind}: {have} of at least {need}"))
            .collect();
        self.kernel.set_whole_generation(checked_at);
        if short.is_empty() {
            return Ok(None);
        }
        let bans = elements.len();
        self.rebuild(elements).await?;
        warn!(
            bans,
            missing = %short.join(", "),
            "bans had been removed from crmonban's sets by someone else; rebuilt them with every active ban"
        );
        self.record(
            now,
            "repair",
            None,
            format!("sets rebuilt with {bans} bans ({})", short.join(", ")),
        );
        self.emit(EngineEvent::LayoutRepaired { bans }).await;
        Ok(Some(bans))
    }
}

impl Inner {
    /// Deletes events and activity entries beyond the retention bounds.
    async fn prune_history(&self) -> Result<(), EngineError> {
        let retention = self.settings_read().retention;
        let age = i64::try_from(retention.max_age.as_secs()).unwrap_or(i64::MAX);
        let before = unix_now().saturating_sub(age);
        let events = self
            .store
            .prune_events(before, retention.max_event_rows)
            .await?;
        let activity = self
            .store
            .prune_activity(before, retention.max_activity_rows)
            .await?;
        if events + activity > 0 {
            debug!(
                events,
                activity, "history beyond the retention bounds deleted"
            );
        }
        Ok(())
    }

    /// Replaces the whole layout with `elements`. The rebuild is one transaction, over which
    /// the firewall thread carries the generation set just before as "whole"; if it fails,
    /// nothing is known whole and the next check counts again.
    async fn rebuild(&self, elements: Vec<Element>) -> Result<(), EngineError> {
        let rebuilt = self.kernel.replace_all(elements).await;
        if rebuilt.is_err() {
            self.kernel.set_whole_generation(None);
        }
        rebuilt.map(drop)
    }
}

/// The sets in the order of [`crmonban_firewall::FirewallBackend::element_counts`].
const SET_KINDS: [&str; 4] = [
    "IPv4 addresses",
    "IPv6 addresses",
    "IPv4 networks",
    "IPv6 networks",
];

/// The fewest elements each set must hold for `elements`: every single address that is not
/// about to expire, and at least one interval when any network is banned (merged neighbours
/// make one interval).
fn minimum_counts(elements: &[Element], now: i64) -> [usize; 4] {
    let mut counts = [0; 4];
    for element in elements {
        if element.expiry.is_past(now + 2) {
            continue;
        }
        match element.target {
            Target::Addr(addr) => counts[usize::from(addr.is_ipv6())] += 1,
            Target::Net(net) => {
                let i = 2 + usize::from(matches!(net, ipnet::IpNet::V6(_)));
                counts[i] = 1;
            }
        }
    }
    counts
}

/// The end of a ban of `duration` starting at `now`; at least one second away.
fn expires_at(now: i64, duration: BanDuration) -> Option<i64> {
    duration.duration().map(|d| {
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        now.saturating_add(i64::try_from(secs.max(1)).unwrap_or(i64::MAX))
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The background jobs.
#[derive(Clone, Copy, Debug)]
enum Periodic {
    Expiry,
    Repair,
    HostAddresses,
    Records,
    Retention,
}

/// Re-reads the host's addresses whenever the kernel says they changed (and at the poll
/// period in any case); without a subscription, at the poll period only. The blocking
/// netlink reads run on a thread of their own, which ends within a poll period of the
/// engine stopping.
async fn follow_host_addresses(
    engine: Weak<Inner>,
    stop: watch::Receiver<bool>,
    events: Option<AddressEvents>,
) {
    let Some(events) = events else {
        let period = match engine.upgrade() {
            Some(inner) => inner.options.host_address_poll,
            None => return,
        };
        return run_every(engine, stop, period, Periodic::HostAddresses).await;
    };
    let mut stop = stop;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let reader = std::thread::Builder::new()
        .name("crmonban-addr".into())
        .spawn(move || {
            while !tx.is_closed() {
                match events.wait() {
                    Ok(_) => {
                        // Full: a refresh is already due.
                        let _ = tx.try_send(());
                    }
                    Err(error) => {
                        warn!(%error, "following address changes failed; the host's addresses are no longer re-read on change");
                        return;
                    }
                }
            }
        });
    if let Err(error) = reader {
        warn!(%error, "cannot start the address-change reader");
        return;
    }
    loop {
        tokio::select! {
            got = rx.recv() => if got.is_none() { return },
            _ = stop.changed() => return,
        }
        let Some(inner) = engine.upgrade() else {
            return;
        };
        inner.refresh_host_addresses().await;
    }
}

/// Runs `job` every `period` until the engine stops or is dropped. Holds only a weak
/// reference between runs, so dropping every [`Engine`] handle ends the task (and with the
/// engine the firewall thread).
/// `stop` is subscribed before the task is spawned, so a shutdown that comes before its
/// first poll is still seen.
async fn run_every(
    engine: Weak<Inner>,
    mut stop: watch::Receiver<bool>,
    period: Duration,
    job: Periodic,
) {
    let mut ticker = tokio::time::interval(period.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; start and restore have just done each job.
    ticker.tick().await;
    let mut failing = false;
    loop {
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(inner) = engine.upgrade() else {
            return;
        };
        let result = match job {
            Periodic::Expiry => inner.expire_due().await.map(drop),
            Periodic::Repair => inner.repair_if_needed().await.map(drop),
            Periodic::HostAddresses => {
                inner.refresh_host_addresses().await;
                Ok(())
            }
            Periodic::Records => inner
                .records
                .flush(&inner.store)
                .await
                .map(drop)
                .map_err(EngineError::from),
            Periodic::Retention => inner.prune_history().await,
        };
        match result {
            Ok(()) => failing = false,
            Err(EngineError::Stopped) => return,
            Err(error) if !failing => {
                failing = true;
                warn!(?job, %error, "background job failed; retrying every period");
            }
            Err(error) => debug!(?job, %error, "background job still failing"),
        }
    }
}

/// Logs what a freshly built policy holds and every problem of its sources.
fn report_policy(policy: &Policy, problems: &[PolicyProblem]) {
    for problem in problems {
        warn!(%problem, "protection policy");
    }
    info!(
        whitelist_entries = policy.whitelist_len(),
        protecting_zones = policy.protecting_zone_networks(),
        "protection policy in force"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_bans_end_at_least_a_second_later() {
        assert_eq!(expires_at(100, BanDuration::Permanent), None);
        assert_eq!(
            expires_at(100, BanDuration::Timed(Duration::from_secs(60))),
            Some(160)
        );
        assert_eq!(
            expires_at(100, BanDuration::Timed(Duration::from_millis(1))),
            Some(101)
        );
        assert_eq!(
            expires_at(100, BanDuration::Timed(Duration::ZERO)),
            Some(101)
        );
    }
}
