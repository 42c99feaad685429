//! The D-Bus service: the `org.crmonban.Daemon` object over the engine (DESIGN.md §6), the
//! fan-out of engine events to D-Bus signals, and the bus connection's life — a missing bus at
//! start is retried in the background while the engine keeps banning.
//!
//! Access: members that change state need uid 0 or membership of group `crmonban`, checked
//! in every such method by `crmonban_dbus::authorize` from the caller's credentials (asked of
//! the bus) as well as by the bus policy in dbus/.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crmonban_core::{BanSource, Target, config::BanDuration};
use crmonban_dbus::{
    BANS_PAGE_MAX, BUS_NAME, BanInfo, Error, GET_BANS_MAX, LogInfo, MAX_NOTE_TEXT, MAX_TARGET_TEXT,
    OBJECT_PATH, PROTECTED_PAGE_MAX, ProtectedInfo, WhitelistInfo, authorize, status_keys,
};
use crmonban_engine::{BanRequest, EngineError, EngineEvent};
use crmonban_zones::{Origin, Refusal};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{OwnedVariant, Variant};

use crate::state::Shared;

/// How long to wait between attempts to reach a bus that is not there.
const BUS_RETRY: Duration = Duration::from_secs(5);

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
}

fn parse_target(argument: &str, text: &str) -> Result<Target, Error> {
    if text.len() > MAX_TARGET_TEXT {
        return Err(Error::InvalidAddress(format!(
            "argument {argument}: {} bytes is too long for an address or CIDR (at most {MAX_TARGET_TEXT})",
            text.len()
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

/// Signals the forwarder could not send because it fell behind the engine (a flush of many
/// bans): counted for `Status`.
static SIGNALS_DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn ban_info(b: crmonban_core::Ban) -> BanInfo {
    (
        b.target.to_string(),
        b.reason,
        b.source.to_string(),
        b.banned_at,
        b.expires_at.unwrap_or(0),
    )
}

fn duration_secs(ban: &crmonban_core::Ban) -> u32 {
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
        let config = self.shared.running.config().await;
        let services: Vec<String> = config
            .enabled_services()
            .map(|(name, _)| name.to_owned())
            .collect();
        let default_ban = config.general.default_ban_duration.as_secs();
        let mut status = HashMap::new();
        let mut put = |key: &str, value: Variant<'_>| {
            if let Ok(owned) = OwnedVariant::try_from(value) {
                status.insert(key.to_owned(), owned);
            }
        };
        put(status_keys::RUNNING, Variant::from(true));
        put(
            status_keys::VERSION,
            Variant::from(env!("CARGO_PKG_VERSION")),
        );
        put(
            status_keys::UPTIME_SECONDS,
            Variant::from(self.engine().uptime().as_secs()),
        );
        put(
            status_keys::ACTIVE_BANS,
            Variant::from(self.engine().active_ban_count()),
        );
        put(
            status_keys::EVENTS_PROCESSED,
            Variant::from(self.engine().events_processed()),
        );
        put(status_keys::SERVICES, Variant::from(services));
        put(
            status_keys::DEFAULT_BAN_DURATION,
            Variant::from(default_ban),
        );
        let records = self.engine().record_stats();
        put(status_keys::RECORDS_PENDING, Variant::from(records.pending));
        put(status_keys::RECORDS_FAILED, Variant::from(records.failed));
        put(status_keys::RECORDS_DROPPED, Variant::from(records.dropped));
        put(
            status_keys::EVENTS_DROPPED,
            Variant::from(self.engine().events_dropped()),
        );
        put(
            status_keys::ACTIVITY_DROPPED,
            Variant::from(self.engine().activity_dropped()),
        );
        put(
            status_keys::SIGNALS_DROPPED,
            Variant::from(SIGNALS_DROPPED.load(std::sync::atomic::Ordering::Relaxed)),
        );
        status
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

    /// Intelligence about `ip` as JSON.
    async fn get_intel(&self, ip: &str, refresh: bool) -> Result<String, Error> {
        let _ = (parse_target("ip", ip)?, refresh);
        Err(Error::NotEnabled(
            "intel not enabled: this crmonband has no intel gathering yet".into(),
        ))
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

    /// Attack statistics as JSON (see docs/DBUS.md).
    async fn get_stats(&self) -> Result<String, Error> {
        crate::stats::collect(self.engine())
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

    #[zbus(property)]
    async fn running(&self) -> bool {
        true
    }

    #[zbus(property)]
    async fn active_ban_count(&self) -> u64 {
        self.engine().active_ban_count()
    }

    #[zbus(property)]
    async fn uptime_seconds(&self) -> u64 {
        self.engine().uptime().as_secs()
    }

    #[zbus(property)]
    async fn events_processed(&self) -> u64 {
        self.engine().events_processed()
    }

    #[zbus(signal)]
    async fn ban_added(
        emitter: &SignalEmitter<'_>,
        ip: &str,
        reason: &str,
        source: &str,
        duration_secs: u32,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn ban_removed(emitter: &SignalEmitter<'_>, ip: &str, reason: &str) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn attack_detected(
        emitter: &SignalEmitter<'_>,
        ip: &str,
        service: &str,
        event_type: &str,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn daemon_started(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn daemon_stopping(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;
}

/// The running D-Bus side: the connection task and the signal forwarder.
pub struct Bus {
    task: JoinHandle<()>,
}

impl Bus {
    /// Lets the forwarder send what is still queued (DaemonStopping among it), then ends.
    pub async fn finish(self) {
        if tokio::time::timeout(Duration::from_secs(2), self.task)
            .await
            .is_err()
        {
            warn!("D-Bus forwarder did not finish in time");
        }
    }
}

/// Connects (retrying while the bus is absent), exports the object, takes the name, and
/// forwards engine events as signals until the engine stops. A connection that is lost (the
/// bus restarted, or it dropped us) is noticed within [`BUS_CHECK`] and made again.
pub fn spawn(shared: Arc<Shared>, system_bus: bool) -> Bus {
    let mut events = shared.engine().subscribe();
    let task = tokio::spawn(async move {
        loop {
            let connection = loop {
                match connect(shared.clone(), system_bus).await {
                    Ok(c) => break c,
                    Err(e) => {
                        warn!(
                            "D-Bus unavailable ({e}); banning continues, retrying in {}s",
                            BUS_RETRY.as_secs()
                        );
                        tokio::select! {
                            _ = tokio::time::sleep(BUS_RETRY) => {}
                            _ = wait_stopping(&mut events) => return,
                        }
                    }
                }
            };
            info!(name = BUS_NAME, "D-Bus service ready");
            match serve(&connection, &mut events).await {
                Served::Stopping => {
                    let _ = connection.release_name(BUS_NAME).await;
                    return;
                }
                Served::Lost(why) => {
                    warn!(%why, "lost the D-Bus connection; banning continues, connecting again");
                }
            }
        }
    });
    Bus { task }
}

/// How often the bus connection is checked while nothing is sent.
const BUS_CHECK: Duration = Duration::from_secs(2);

/// Why [`serve`] returned.
enum Served {
    Stopping,
    Lost(String),
}

/// Forwards engine events as signals on `connection` until the engine stops or the
/// connection is found lost.
async fn serve(
    connection: &zbus::Connection,
    events: &mut tokio::sync::broadcast::Receiver<EngineEvent>,
) -> Served {
    let iface = match connection
        .object_server()
        .interface::<_, DaemonObject>(OBJECT_PATH)
        .await
    {
        Ok(i) => i,
        Err(e) => return Served::Lost(format!("the object is missing after export: {e}")),
    };
    let emitter = iface.signal_emitter();
    let _ = DaemonObject::daemon_started(emitter).await;
    let bus = match zbus::fdo::DBusProxy::new(connection).await {
        Ok(bus) => bus,
        Err(e) => return Served::Lost(e.to_string()),
    };
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = tokio::time::sleep(BUS_CHECK) => {
                match tokio::time::timeout(BUS_CHECK, bus.get_id()).await {
                    Ok(Ok(_)) => continue,
                    Ok(Err(e)) => return Served::Lost(e.to_string()),
                    Err(_) => return Served::Lost("the bus does not answer".into()),
                }
            }
        };
        let event = match event {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                SIGNALS_DROPPED.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                warn!(
                    missed = n,
                    "D-Bus signal forwarder fell behind; signals dropped (counted in Status signals_dropped)"
                );
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return Served::Stopping,
        };
        let sent = match &event {
            EngineEvent::BanAdded { ban } => {
                DaemonObject::ban_added(
                    emitter,
                    &ban.target.to_string(),
                    &ban.reason,
                    ban.source.as_str(),
                    duration_secs(ban),
                )
                .await
            }
            EngineEvent::BanRemoved { target, reason } => {
                DaemonObject::ban_removed(emitter, &target.to_string(), reason).await
            }
            EngineEvent::AttackDetected {
                addr,
                service,
                kind,
            } => DaemonObject::attack_detected(emitter, &addr.to_string(), service, kind).await,
            EngineEvent::DaemonStarted | EngineEvent::LayoutRepaired { .. } => Ok(()),
            EngineEvent::DaemonStopping => {
                let _ = DaemonObject::daemon_stopping(emitter).await;
                return Served::Stopping;
            }
        };
        if let Err(e) = sent {
            debug!("emitting a signal failed: {e}");
        }
    }
}

async fn wait_stopping(events: &mut tokio::sync::broadcast::Receiver<EngineEvent>) {
    loop {
        match events.recv().await {
            Ok(EngineEvent::DaemonStopping)
            | Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            _ => {}
        }
    }
}

/// Refuses to go on when another process owns [`BUS_NAME`] on the chosen bus: a second
/// crmonband must not take over the name, or run beside the first unreachable. A bus that
/// cannot be reached says nothing (the daemon starts and retries it).
pub async fn refuse_if_name_owned(system_bus: bool) -> anyhow::Result<()> {
    let builder = if system_bus {
        zbus::connection::Builder::system()
    } else {
        zbus::connection::Builder::session()
    };
    let Ok(Ok(connection)) = tokio::time::timeout(Duration::from_secs(5), builder.build()).await
    else {
        return Ok(());
    };
    let bus = zbus::fdo::DBusProxy::new(&connection).await?;
    let name = zbus::names::BusName::try_from(BUS_NAME)?;
    if !bus.name_has_owner(name.clone()).await.unwrap_or(false) {
        return Ok(());
    }
    let pid = bus
        .get_connection_unix_process_id(name)
        .await
        .map_or_else(|_| "unknown".to_owned(), |pid| pid.to_string());
    anyhow::bail!(
        "{BUS_NAME} is already owned on the {} bus by another crmonband (pid {pid}); stop it \
         first. Nothing was changed.",
        if system_bus { "system" } else { "session" }
    )
}

async fn connect(shared: Arc<Shared>, system_bus: bool) -> zbus::Result<zbus::Connection> {
    let builder = if system_bus {
        zbus::connection::Builder::system()
    } else {
        zbus::connection::Builder::session()
    };
    builder
        .name(BUS_NAME)
        .serve_at(OBJECT_PATH, DaemonObject::new(shared))
        .build()
        .await
}

#[cfg(test)]
#[path = "dbus_args_tests.rs"]
mod args_tests;
