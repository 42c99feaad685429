//! The fleet ([`FleetService`]): this node's bans shared with other crmonban nodes through a
//! PostgreSQL database ([`crmonban_store::FleetStore`]), and theirs applied here.
//!
//! Publishing never slows a ban and never loses one: a lossless subscriber to the engine's
//! events writes each ban of a shared source (and each unban) to the outbox in the node's own
//! SQLite database; a sender drains the outbox into the fleet database at most
//! `max_publish_rate` changes a second, and when the fleet is down the outbox waits (it
//! survives restarts). Applying: a listener wakes on `NOTIFY crmonban_fleet` (and every
//! [`POLL`] regardless), reads the changes after the last one applied, and applies the bans of
//! accepted nodes through [`Engine::ban_many`] (one nftables transaction a page, so a node back
//! from an outage catches up in one batch) and their unbans through [`Engine::unban`] (only
//! of bans that node made). Every ban still passes this node's own protection policy (loopback,
//! its addresses, whitelists, zones): a node cannot ban what this one protects, nor a network
//! holding it, nor anything in the fleet whitelist. The position is saved in SQLite, per fleet
//! database. Both sides reconnect with backoff.

mod apply;
mod config;
mod publish;

pub use config::FleetConfigError;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crmonban_store::{FleetConnectOptions, FleetStore, describe_fleet};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::Engine;
use crate::locks::lock;

/// How often the applier reads the fleet even without a notification (a lost notification,
/// a listener that died silently).
pub(crate) const POLL: Duration = Duration::from_secs(30);
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Which nodes' bans this node applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accept {
    /// Every other node's (`accept = ["*"]`).
    All,
    /// Only these nodes'.
    Nodes(BTreeSet<String>),
}

impl Accept {
    fn accepts(&self, node: &str) -> bool {
        match self {
            Accept::All => true,
            Accept::Nodes(nodes) => nodes.contains(node),
        }
    }
}

/// How this node takes part in the fleet.
#[derive(Clone, Debug)]
pub struct FleetOptions {
    /// This node's name in the fleet.
    pub node: String,
    /// Where the fleet database is (password included, never logged).
    pub connect: FleetConnectOptions,
    /// The ban sources this node publishes ([`crmonban_core::BanSource::as_str`]: `detector`,
    /// `dbus`, ...). Bans from the fleet are never published again.
    pub share: BTreeSet<String>,
    /// Whose bans this node applies.
    pub accept: Accept,
    /// Timed bans shorter than this are not published.
    pub min_ban_time: Duration,
    /// Changes published a second at most (the rest wait in the outbox).
    pub max_publish_rate: u32,
    /// A ban of a target that this many nodes (or more) reported within `escalate_window`
    /// ([`FleetStore::reporters`]) is applied `escalate_factor` times as long; 0 turns
    /// escalation off.
    pub escalate_after: u32,
    /// See `escalate_after`.
    pub escalate_factor: f64,
    /// See `escalate_after`.
    pub escalate_window: Duration,
    /// Changes that no longer say anything are pruned from the fleet database this long after
    /// they were published ([`FleetStore::prune`], hourly); zero: never.
    pub prune_after: Duration,
    /// How often this node says it is alive.
    pub heartbeat: Duration,
}

/// Figures of the fleet service, for status and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetStats {
    /// Whether the applier is connected to the fleet database now.
    pub connected: bool,
    /// The last connection or query error, if the fleet is failing.
    pub last_error: Option<String>,
    /// The last fleet change applied, and the newest the fleet had when last read.
    pub applied_id: i64,
    /// See `applied_id`; `fleet_id - applied_id` is the lag.
    pub fleet_id: i64,
    /// Changes this node published.
    pub published: u64,
    /// Peers' bans applied here.
    pub applied: u64,
    /// Peers' bans refused by this node's protection or the fleet whitelist.
    pub vetoed: u64,
    /// Changes of nodes this node does not accept.
    pub ignored: u64,
    /// Publications waiting in the outbox.
    pub outbox: u64,
}

/// Shared between the tasks and the handle.
#[derive(Debug, Default)]
struct Shared {
    connected: AtomicBool,
    last_error: Mutex<Option<String>>,
    applied_id: AtomicI64,
    fleet_id: AtomicI64,
    published: AtomicU64,
    applied: AtomicU64,
    vetoed: AtomicU64,
    ignored: AtomicU64,
    outbox: AtomicU64,
    /// Wakes the sender when the outbox grew.
    queued: Notify,
}

impl Shared {
    fn failed(&self, what: &str, error: &dyn std::fmt::Display) {
        let text = format!("{what}: {error}");
        let mut last = lock(&self.last_error);
        if last.as_deref() != Some(text.as_str()) {
            tracing::warn!("fleet: {text}; retrying");
        }
        *last = Some(text);
    }

    fn recovered(&self) {
        if lock(&self.last_error).take().is_some() {
            tracing::info!("fleet: the fleet database answers again");
        }
    }
}

/// Asks the fleet database what it holds (for `crmonctl fleet`), over a connection of its
/// own made when first needed. Cheap to clone.
#[derive(Clone)]
pub struct FleetQueries {
    connect: FleetConnectOptions,
    store: Arc<tokio::sync::Mutex<Option<FleetStore>>>,
}

impl FleetQueries {
    async fn store(&self) -> Result<FleetStore, crmonban_store::StoreError> {
        let mut slot = self.store.lock().await;
        if let Some(store) = slot.as_ref() {
            return Ok(store.clone());
        }
        let store = FleetStore::connect_with(self.connect.clone()).await?;
        *slot = Some(store.clone());
        Ok(store)
    }

    /// The fleet's nodes and their heartbeats.
    pub async fn nodes(
        &self,
    ) -> Result<Vec<crmonban_store::FleetNode>, crmonban_store::StoreError> {
        self.store().await?.nodes().await
    }

    /// The fleet's bans in force now, newest first.
    pub async fn bans(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<crmonban_store::FleetChange>, crmonban_store::StoreError> {
        self.store()
            .await?
            .active_bans(
                crmonban_core::unix_now(),
                i64::from(offset),
                i64::from(limit),
            )
            .await
    }
}

/// The running fleet service; stopped when dropped or by [`FleetService::shutdown`].
pub struct FleetService {
    queries: FleetQueries,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    server: String,
    node: String,
}

impl FleetService {
    /// Starts publishing this node's shared bans and applying its peers'; connects in the
    /// background (the fleet being down never stops the node).
    pub fn start(engine: Engine, options: FleetOptions) -> FleetService {
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = watch::channel(false);
        let server = describe_fleet(&options.connect);
        let node = options.node.clone();
        let queries = FleetQueries {
            connect: options.connect.clone(),
            store: Arc::new(tokio::sync::Mutex::new(None)),
        };
        let options = Arc::new(options);
        let tasks = vec![
            tokio::spawn(publish::queue(
                engine.clone(),
                options.clone(),
                shared.clone(),
                stopped.clone(),
            )),
            tokio::spawn(publish::send(
                engine.clone(),
                options.clone(),
                shared.clone(),
                stopped.clone(),
            )),
            tokio::spawn(apply::follow(engine, options, shared.clone(), stopped)),
        ];
        tracing::info!(%server, %node, "fleet: sharing bans");
        FleetService {
            queries,
            shared,
            stop,
            tasks,
            server,
            node,
        }
    }

    /// `user@host:port/database` of the fleet database (no password).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// This node's name in the fleet.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Queries of the fleet database, usable without holding the service.
    pub fn queries(&self) -> FleetQueries {
        self.queries.clone()
    }

    /// The service's figures now.
    pub fn stats(&self) -> FleetStats {
        let s = &self.shared;
        FleetStats {
            connected: s.connected.load(Ordering::Relaxed),
            last_error: lock(&s.last_error).clone(),
            applied_id: s.applied_id.load(Ordering::Relaxed),
            fleet_id: s.fleet_id.load(Ordering::Relaxed),
            published: s.published.load(Ordering::Relaxed),
            applied: s.applied.load(Ordering::Relaxed),
            vetoed: s.vetoed.load(Ordering::Relaxed),
            ignored: s.ignored.load(Ordering::Relaxed),
            outbox: s.outbox.load(Ordering::Relaxed),
        }
    }

    /// Stops the tasks (the outbox keeps what was not sent).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for FleetService {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Connects to the fleet database, waiting `backoff` (doubled each failure, at most
/// [`MAX_BACKOFF`]) between attempts; `None` when asked to stop meanwhile.
async fn connect(
    options: &FleetOptions,
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
) -> Option<FleetStore> {
    let mut backoff = Duration::from_millis(500);
    loop {
        if *stop.borrow() {
            return None;
        }
        match FleetStore::connect_with(options.connect.clone()).await {
            Ok(store) => {
                shared.recovered();
                return Some(store);
            }
            Err(e) => shared.failed("cannot connect", &e),
        }
        if !pause(stop, backoff).await {
            return None;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Waits `period`; false when asked to stop meanwhile.
async fn pause(stop: &mut watch::Receiver<bool>, period: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(period) => !*stop.borrow(),
        _ = stop.changed() => false,
    }
}
