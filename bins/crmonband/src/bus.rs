//! The bus connection's life and the signal forwarder: the name is taken and the object
//! served, engine events become D-Bus signals, a missing bus at start is retried in the
//! background while the engine keeps banning, and a lost connection is made again.

use std::sync::Arc;
use std::time::Duration;

use crmonban_dbus::{BUS_NAME, OBJECT_PATH};
use crmonban_engine::EngineEvent;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::dbus_server::{DaemonObject, duration_secs};
use crate::state::Shared;

/// How long to wait between attempts to reach a bus that is not there.
const BUS_RETRY: Duration = Duration::from_secs(5);

/// Signals the forwarder could not send because it fell behind the engine (a flush of many
/// bans): counted for `Status`.
pub(crate) static SIGNALS_DROPPED: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// The running D-Bus side: the connection task and the signal forwarder.
pub struct Bus {
    task: JoinHandle<()>,
    /// Becomes true once the name is ours the first time.
    ready: tokio::sync::watch::Receiver<bool>,
}

impl Bus {
    /// Waits until the name is taken and the object served, at most `limit` (a bus that is
    /// not there is retried in the background; readiness does not wait for it for ever).
    pub async fn wait_ready(&self, limit: Duration) -> bool {
        let mut ready = self.ready.clone();
        tokio::time::timeout(limit, ready.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
    }

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
    let (ready_tx, ready) = tokio::sync::watch::channel(false);
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
            let _ = ready_tx.send(true);
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
    Bus { task, ready }
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
    // ActiveBanCount changed since the last PropertiesChanged: sent once the events queued
    // behind this one are forwarded, so that a burst of bans costs one property signal.
    let mut count_changed = false;
    loop {
        if count_changed && events.is_empty() {
            count_changed = false;
            if let Err(e) = iface.get().await.active_ban_count_changed(emitter).await {
                debug!("emitting PropertiesChanged failed: {e}");
            }
        }
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
        count_changed |= matches!(
            event,
            EngineEvent::BanAdded { .. } | EngineEvent::BanRemoved { .. }
        );
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
                ..
            } => DaemonObject::attack_detected(emitter, &addr.to_string(), service, kind).await,
            EngineEvent::DaemonStarted
            | EngineEvent::LayoutRepaired { .. }
            | EngineEvent::WhitelistChanged { .. } => Ok(()),
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
