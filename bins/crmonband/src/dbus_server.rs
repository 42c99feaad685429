//! The D-Bus service: the `org.crmonban.Daemon` object over the engine (DESIGN.md §6): its
//! methods, properties and signals, and the checks of every argument. The connection's life
//! and the signal forwarder are in `bus.rs`.
//!
//! Access: members that change state need uid 0 or membership of group `crmonban`, checked
//! in every such method by `crmonban_dbus::authorize` from the caller's credentials (asked of
//! the bus) as well as by the bus policy in dbus/.

use std::collections::HashMap;
use std::sync::Arc;

use crmonban_core::{BanSource, Target, config::BanDuration};
use crmonban_dbus::{
    BANS_PAGE_MAX, BanInfo, Error, FLEET_BANS_PAGE_MAX, FleetBanInfo, FleetNodeInfo, GET_BANS_MAX,
    INTEL_REPLY_MAX, INTEL_SUMMARIES_MAX, IntelSummaryInfo, LogInfo, MAX_NOTE_TEXT,
    MAX_TARGET_TEXT, PROTECTED_PAGE_MAX, ProtectedInfo, WhitelistInfo, authorize,
};
use crmonban_engine::{BanRequest, EngineError, IntelQueryError};
use crmonban_zones::{Origin, Refusal};
use tracing::warn;
use zbus::OwnedVariant;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

use crate::state::Shared;

/// The exported object.
pub struct DaemonObject {
    shared: Arc<Shared>,
}

impl DaemonObject {
    pub fn new(shared: Arc<Shared>) -> DaemonObject {
        DaemonObject { shared }
    }

    fn engine(&self) -> &crmonban_engine::Engine {
        self.shared.engine()
    }

    /// The fleet's queries; `NotEnabled` without `[fleet]`.
    async fn fleet(&self) -> Result<crmonban_engine::FleetQueries, Error> {
        self.shared.running.fleet_queries().await.ok_or_else(|| {
            Error::NotEnabled("the fleet is not enabled ([fleet] enabled = false)".into())
        })
    }
}

fn parse_target(argument: &str, text: &str) -> Result<Target, Error> {
    if text.len() > MAX_TARGET_TEXT {
        return Err(Error::InvalidAddress(format!(
            "argument {argument}: {} bytes is too long for an address or CIDR (at most {MAX_TARGET_TEXT})",
            text.len()
        )));
    }
    // Refused before parsing, so that the parser's message (which quotes the text) only ever
    // quotes printable text: escaped, control characters would make it six times as long.
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(Error::InvalidAddress(format!(
            "argument {argument}: control character U+{:04X} is not part of an address or CIDR",
            u32::from(c)
        )));
    }
    Target::parse(text).map_err(|e| Error::InvalidAddress(format!("argument {argument}: {e}")))
}

/// A reason or comment within [`MAX_NOTE_TEXT`] and free of control characters (a line break
/// or an escape sequence in it would forge lines of our own log, or of a terminal that shows
/// it); the error says what is wrong, never the text.
fn bounded_note<'a>(argument: &str, text: &'a str) -> Result<&'a str, Error> {
    let invalid = |why: String| {
        Err(Error::ZBus(zbus::Error::FDO(Box::new(
            zbus::fdo::Error::InvalidArgs(format!("argument {argument}: {why}")),
        ))))
    };
    if text.len() > MAX_NOTE_TEXT {
        return invalid(format!("{} bytes; at most {MAX_NOTE_TEXT}", text.len()));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return invalid(format!(
            "control character U+{:04X} (line breaks, escapes) not allowed",
            u32::from(c)
        ));
    }
    Ok(text)
}

fn engine_error(e: EngineError) -> Error {
    match e {
        EngineError::Protected { .. } => Error::Protected(e.to_string()),
        EngineError::Whitelisted { .. } => Error::Whitelisted(e.to_string()),
        EngineError::Firewall(_) => Error::Firewall(e.to_string()),
        EngineError::Store(_) => Error::Database(e.to_string()),
        other => Error::Failed(other.to_string()),
    }
}

fn intel_error(e: IntelQueryError) -> Error {
    match e {
        IntelQueryError::NotEnabled => Error::NotEnabled(e.to_string()),
        IntelQueryError::NotAnAddress(_) => Error::InvalidAddress(e.to_string()),
        IntelQueryError::Busy => Error::Failed(e.to_string()),
        IntelQueryError::Store(_) => Error::Database(e.to_string()),
    }
}

fn ban_info(b: crmonban_core::Ban) -> BanInfo {
    (
        b.target.to_string(),
        b.reason,
        b.source.to_string(),
        b.banned_at,
        b.expires_at.unwrap_or(0),
    )
}

pub(crate) fn duration_secs(ban: &crmonban_core::Ban) -> u32 {
    ban.expires_at.map_or(0, |end| {
        u32::try_from((end - ban.banned_at).max(1)).unwrap_or(u32::MAX)
    })
}

impl DaemonObject {
    /// The active bans, sorted by target (a stable order to page through).
    fn sorted_bans(&self) -> Vec<crmonban_core::Ban> {
        let mut bans = self.engine().active_bans();
        bans.sort_unstable_by_key(|b| (!b.target.is_ipv4(), b.target.bounds()));
        bans
    }
}

#[zbus::interface(name = "org.crmonban.Daemon")]
impl DaemonObject {
    /// running, version, uptime_seconds, active_bans, events_processed, services,
    /// default_ban_duration, records_pending, records_failed, records_dropped, events_dropped,
    /// activity_dropped, signals_dropped.
    async fn status(&self) -> HashMap<String, OwnedVariant> {
        crate::status::collect(&self.shared.running).await
    }

    /// Bans `ip` (address or CIDR) for `duration_secs` (0 = permanent).
    async fn ban(
        &self,
        ip: &str,
        duration_secs: u32,
        reason: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<bool, Error> {
        authorize(connection, &header).await?;
        let target = parse_target("ip", ip)?;
        let reason = bounded_note("reason", reason)?;
        let reason = if reason.trim().is_empty() {
            "manual ban"
        } else {
            reason
        };
        let (_, changed) = self
            .engine()
            .ban_or_keep(BanRequest {
                target,
                duration: Some(BanDuration::from_secs(duration_secs)),
                reason: reason.to_owned(),
                source: BanSource::Dbus,
                service: None,
            })
            .await
            .map_err(engine_error)?;
        Ok(changed)
    }

    /// Lifts a ban; false when `ip` was not banned.
    async fn unban(
        &self,
        ip: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<bool, Error> {
        authorize(connection, &header).await?;
        let target = parse_target("ip", ip)?;
        self.engine()
            .unban(&target, "unban")
            .await
            .map_err(engine_error)
    }

    /// Active bans: ip, reason, source, banned_at, expires_at (Unix seconds; 0 = never); at
    /// most [`GET_BANS_MAX`], in address order (GetBansPaged lists them all).
    async fn get_bans(&self) -> Vec<BanInfo> {
        let bans = self.sorted_bans();
        if bans.len() > GET_BANS_MAX {
            warn!(
                active = bans.len(),
                shown = GET_BANS_MAX,
                "GetBans lists the first bans only; use GetBansPaged for all"
            );
        }
        bans.into_iter().take(GET_BANS_MAX).map(ban_info).collect()
    }

    /// Active bans in address order, `limit` (at most [`BANS_PAGE_MAX`]) from `offset`.
    async fn get_bans_paged(&self, offset: u32, limit: u32) -> Vec<BanInfo> {
        self.sorted_bans()
            .into_iter()
            .skip(offset as usize)
            .take(limit.min(BANS_PAGE_MAX) as usize)
            .map(ban_info)
            .collect()
    }

    /// True when `ip` is banned, itself or inside a banned network.
    async fn is_banned(&self, ip: &str) -> Result<bool, Error> {
        Ok(self.engine().is_banned(&parse_target("ip", ip)?))
    }

    /// The active ban of exactly `ip` (an address or a network) with its true expiry (after
    /// escalation); `(false, empty)` when it has none.
    async fn get_ban(&self, ip: &str) -> Result<(bool, BanInfo), Error> {
        let target = parse_target("ip", ip)?;
        Ok(match self.engine().active_ban(&target) {
            Some(ban) => (true, ban_info(ban)),
            None => (false, (String::new(), String::new(), String::new(), 0, 0)),
        })
    }

    /// Intelligence about `ip` as JSON: the cached record while fresh, else gathered now
    /// (`refresh` always gathers). Gathering asks remote services (and spends API quota), so
    /// it needs uid 0 or group crmonban; other callers get what is cached.
    async fn get_intel(
        &self,
        ip: &str,
        refresh: bool,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<String, Error> {
        let target = parse_target("ip", ip)?;
        let intel = self.shared.running.intel();
        let cached = if refresh {
            None
        } else {
            intel.cached(&target).await.map_err(intel_error)?
        };
        let record = match cached {
            Some(record) => record,
            None => {
                if !crmonban_dbus::caller_may_mutate(connection, &header)
                    .await
                    .unwrap_or(false)
                {
                    return Err(Error::access_denied(format!(
                        "no fresh intel about {target} is cached, and gathering it needs uid 0 \
                         or group {}",
                        crmonban_dbus::PRIVILEGED_GROUP
                    )));
                }
                intel.intel(&target, true).await.map_err(intel_error)?
            }
        };
        let json = serde_json::to_string(&record).map_err(|e| Error::Failed(e.to_string()))?;
        if json.len() > INTEL_REPLY_MAX {
            return Err(Error::Failed(format!(
                "the intel record is {} bytes, over the {INTEL_REPLY_MAX}-byte limit",
                json.len()
            )));
        }
        Ok(json)
    }

    /// Cached country and network of those of `ips` that have intel (for `crmonctl list`).
    async fn get_intel_summaries(&self, ips: Vec<String>) -> Result<Vec<IntelSummaryInfo>, Error> {
        if ips.len() > INTEL_SUMMARIES_MAX {
            return Err(Error::InvalidAddress(format!(
                "argument ips: {} addresses; at most {INTEL_SUMMARIES_MAX} per call",
                ips.len()
            )));
        }
        let mut addrs = Vec::with_capacity(ips.len());
        for (i, ip) in ips.iter().enumerate() {
            addrs.push(parse_target(&format!("ips[{i}]"), ip)?.to_string());
        }
        let found = self
            .engine()
            .store()
            .intel_summaries(&addrs)
            .await
            .map_err(|e| Error::Database(e.to_string()))?;
        Ok(found
            .into_iter()
            .map(|s| {
                (
                    s.addr,
                    s.country.unwrap_or_default(),
                    s.asn.unwrap_or(0),
                    s.organization.unwrap_or_default(),
                )
            })
            .collect())
    }

    async fn whitelist_add(
        &self,
        net: &str,
        comment: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<bool, Error> {
        authorize(connection, &header).await?;
        let target = parse_target("net", net)?;
        let comment = bounded_note("comment", comment)?;
        self.engine()
            .whitelist_add(&target, comment)
            .await
            .map_err(engine_error)
    }

    async fn whitelist_add_lifting(
        &self,
        net: &str,
        comment: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<(bool, u32, Vec<(String, String)>), Error> {
        authorize(connection, &header).await?;
        let target = parse_target("net", net)?;
        let comment = bounded_note("comment", comment)?;
        let (added, lifted) = self
            .engine()
            .whitelist_add_lifting(&target, comment)
            .await
            .map_err(engine_error)?;
        let count = u32::try_from(lifted.len()).unwrap_or(u32::MAX);
        let shown = lifted
            .into_iter()
            .take(crmonban_dbus::LIFTED_SHOWN_MAX)
            .map(|(target, why)| (target.to_string(), why))
            .collect();
        Ok((added, count, shown))
    }

    async fn whitelist_remove(
        &self,
        net: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<bool, Error> {
        authorize(connection, &header).await?;
        let target = parse_target("net", net)?;
        self.engine()
            .whitelist_remove(&target)
            .await
            .map_err(engine_error)
    }

    /// network, comment, added_at (Unix seconds as text).
    async fn get_whitelist(&self) -> Result<Vec<WhitelistInfo>, Error> {
        let entries = self.engine().whitelist().await.map_err(engine_error)?;
        Ok(entries
            .into_iter()
            .map(|e| (e.target.to_string(), e.comment, e.added_at.to_string()))
            .collect())
    }

    /// Entries of every whitelist source in force (network, source, comment, added_at for
    /// database entries), in address order, paged.
    async fn get_protected_entries(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<ProtectedInfo>, Error> {
        let engine = self.engine();
        let added: HashMap<Target, i64> = engine
            .whitelist()
            .await
            .map_err(engine_error)?
            .into_iter()
            .map(|e| (e.target, e.added_at))
            .collect();
        Ok(engine
            .protected_entries()
            .into_iter()
            .skip(offset as usize)
            .take(limit.min(PROTECTED_PAGE_MAX) as usize)
            .map(|e| {
                let added_at = match e.origin {
                    Origin::Database => added
                        .get(&e.target)
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                (
                    e.target.to_string(),
                    e.origin.to_string(),
                    e.comment,
                    added_at,
                )
            })
            .collect())
    }

    /// Whether `ip` may not be banned, and what protects it.
    async fn check_protected(&self, ip: &str) -> Result<(bool, String), Error> {
        let target = parse_target("ip", ip)?;
        Ok(match self.engine().check_protected(&target) {
            Ok(()) => (
                false,
                format!("{target} is not protected: it may be banned"),
            ),
            Err(EngineError::Protected { why, .. }) => (true, why),
            Err(EngineError::Whitelisted { target, entry }) => {
                (true, Refusal::Whitelisted { target, entry }.to_string())
            }
            Err(other) => return Err(engine_error(other)),
        })
    }

    /// The newest `limit` activity log entries: time, action, target, detail.
    async fn get_logs(&self, limit: u32) -> Result<Vec<LogInfo>, Error> {
        let entries = self
            .engine()
            .store()
            .recent_activity(limit.min(10_000))
            .await
            .map_err(|e| Error::Database(e.to_string()))?;
        Ok(entries
            .into_iter()
            .map(|e| {
                (
                    e.at,
                    e.action,
                    e.target.map(|t| t.to_string()).unwrap_or_default(),
                    e.detail,
                )
            })
            .collect())
    }

    /// The fleet's nodes: name, version, first and latest heartbeat.
    async fn get_fleet_nodes(&self) -> Result<Vec<FleetNodeInfo>, Error> {
        let nodes = self
            .fleet()
            .await?
            .nodes()
            .await
            .map_err(|e| Error::Database(e.to_string()))?;
        Ok(nodes
            .into_iter()
            .map(|n| (n.name, n.version, n.first_seen, n.last_seen))
            .collect())
    }

    /// The fleet's bans in force, newest first: node, target, reason, service, taken, ends.
    async fn get_fleet_bans(&self, offset: u32, limit: u32) -> Result<Vec<FleetBanInfo>, Error> {
        let bans = self
            .fleet()
            .await?
            .bans(offset, limit.min(FLEET_BANS_PAGE_MAX))
            .await
            .map_err(|e| Error::Database(e.to_string()))?;
        Ok(bans
            .into_iter()
            .map(|b| {
                (
                    b.node,
                    b.change.target.to_string(),
                    b.change.reason,
                    b.change.service.unwrap_or_default(),
                    b.created_at,
                    b.change.expires_at.unwrap_or(0),
                )
            })
            .collect())
    }

    /// Attack statistics as JSON (see docs/DBUS.md).
    async fn get_stats(&self) -> Result<String, Error> {
        crate::stats::collect(&self.shared.running)
            .await
            .map_err(|e| Error::Database(e.to_string()))
    }

    /// Lifts every ban; returns how many there were.
    async fn flush(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<u32, Error> {
        authorize(connection, &header).await?;
        let n = self.engine().flush().await.map_err(engine_error)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Re-reads the configuration file; an invalid file is refused and the old one stays.
    async fn reload(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<bool, Error> {
        authorize(connection, &header).await?;
        self.shared
            .reload()
            .await
            .map_err(|e| Error::Failed(format!("{e:#}")))?;
        Ok(true)
    }

    /// Stops the daemon (bans stay in the kernel).
    async fn stop(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<(), Error> {
        authorize(connection, &header).await?;
        self.shared.stop.notify_one();
        Ok(())
    }

    /// True whenever the daemon answers: never changes (EmitsChangedSignal `const`).
    #[zbus(property(emits_changed_signal = "const"))]
    async fn running(&self) -> bool {
        true
    }

    /// PropertiesChanged carries each new count (bursts of bans coalesced into the last).
    #[zbus(property)]
    async fn active_ban_count(&self) -> u64 {
        self.engine().active_ban_count()
    }

    /// Changes every second: no signal (EmitsChangedSignal `false`); read it when needed.
    #[zbus(property(emits_changed_signal = "false"))]
    async fn uptime_seconds(&self) -> u64 {
        self.engine().uptime().as_secs()
    }

    /// Changes with every log event: no signal (EmitsChangedSignal `false`).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn events_processed(&self) -> u64 {
        self.engine().events_processed()
    }

    #[zbus(signal)]
    pub(crate) async fn ban_added(
        emitter: &SignalEmitter<'_>,
        ip: &str,
        reason: &str,
        source: &str,
        duration_secs: u32,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    pub(crate) async fn ban_removed(
        emitter: &SignalEmitter<'_>,
        ip: &str,
        reason: &str,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    pub(crate) async fn attack_detected(
        emitter: &SignalEmitter<'_>,
        ip: &str,
        service: &str,
        event_type: &str,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    pub(crate) async fn daemon_started(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;

    #[zbus(signal)]
    pub(crate) async fn daemon_stopping(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;
}

#[cfg(test)]
#[path = "dbus_args_tests.rs"]
mod args_tests;
