//! [`XdpService`]: the bans mirrored into the XDP fast path (`[ebpf]`), a second firewall
//! backend beside nftables, never on a ban's path.
//!
//! At start the service subscribes to the engine's events first, then loads the program
//! (reusing maps a `mapfile` run pinned), reconciles the maps with the bans in force, and only
//! then attaches to the interfaces, so no stale entry of a reused pin drops a packet. From
//! then on one task applies every `BanAdded` and `BanRemoved` as it comes (map writes on the
//! blocking pool, a few µs each, runs of them batched) and reconciles every
//! `sync_interval_secs`, and at once when its subscription overflowed (the engine never waits
//! for it: the subscription drops and counts, and the reconcile repairs from the bans in
//! force). Expiry does not wait for this task: the program itself treats an expired entry as
//! absent.
//!
//! The fast path failing (no BPF permission, a kernel that refuses the program, an interface
//! without XDP) is logged at error and shown in Status; the daemon runs on, nftables enforcing
//! every ban. Maps an earlier `mapfile` run left pinned are never touched while the fast path
//! is off: another daemon may own them (`rm -r` the pin directory to drop them).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crmonban_core::config::{EbpfConfig, EbpfMethod, XdpModeChoice};
use crmonban_ebpf::{ModeChoice, XdpFastPath, XdpOptions};
use crmonban_firewall::{ChangeSet, FirewallBackend};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::index::element_of;
use crate::locks::lock;
use crate::{Engine, EngineEvent, EventStream, Overflow};

pub use crmonban_ebpf::{DropCounters, InterfaceState, XdpMode};

/// Events the mirror's subscription holds before the engine drops (and counts) new ones.
const SUBSCRIPTION: usize = 65_536;
/// Events applied in one blocking call at most.
const BATCH: usize = 4_096;

/// What the fast path holds and did, for Status and `crmonctl stats`.
#[derive(Clone, Debug, Default)]
pub struct XdpReport {
    /// `"off"`, `"running"`, or `"failed: <why>"`.
    pub state: String,
    /// `xdp` or `mapfile` while running.
    pub method: String,
    /// IPv4 packets and bytes dropped.
    pub dropped_v4: DropCounters,
    /// IPv6 packets and bytes dropped.
    pub dropped_v6: DropCounters,
    /// Interfaces the program runs on, and how.
    pub interfaces: Vec<InterfaceState>,
    /// Configured interfaces it is not on, with why.
    pub failed_interfaces: Vec<(String, String)>,
    /// Entries per map (IPv4, IPv6) as of the last reconcile, kept close in between.
    pub entries: [usize; 2],
    /// Capacity of each map.
    pub max_entries: u32,
    /// Bans the maps had no room for (enforced by nftables only).
    pub not_mirrored: usize,
    /// Reconciles done, and how long the last one took.
    pub reconciles: u64,
    /// Milliseconds the last reconcile took.
    pub last_reconcile_ms: u64,
    /// Events the mirror missed because its subscription was full (each repaired by a
    /// reconcile).
    pub missed: u64,
}

struct Shared {
    fast: Mutex<XdpFastPath>,
    method: EbpfMethod,
    failed_interfaces: Vec<(String, String)>,
    reconciles: AtomicU64,
    last_reconcile_ms: AtomicU64,
    missed: AtomicU64,
}

/// The XDP mirror; see the module docs.
pub struct XdpService {
    state: State,
}

enum State {
    Off,
    Failed(String),
    Running {
        shared: Arc<Shared>,
        task: Mutex<Option<(watch::Sender<bool>, JoinHandle<()>)>>,
    },
}

impl XdpService {
    /// Starts the fast path as `config` says (see the module docs); never fails the daemon.
    pub async fn start(engine: &Engine, config: &EbpfConfig) -> XdpService {
        if !config.active() {
            return XdpService { state: State::Off };
        }
        // Subscribed before the maps are filled: nothing that happens meanwhile is missed.
        let stream = engine.subscribe_lossless(SUBSCRIPTION, Overflow::DropNewest);
        let options = XdpOptions {
            interfaces: config.interfaces.clone(),
            mode: match config.xdp_mode {
                XdpModeChoice::Auto => ModeChoice::Auto,
                XdpModeChoice::Native => ModeChoice::Native,
                XdpModeChoice::Generic => ModeChoice::Generic,
            },
            pin: (config.method == EbpfMethod::Mapfile).then(|| config.pin_path.clone()),
            max_entries: config.max_entries,
        };
        let engine_for_load = engine.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let mut fast = XdpFastPath::load(options)?;
            let started = Instant::now();
            let report = reconcile(&mut fast, &engine_for_load)?;
            let took = started.elapsed();
            let failures = fast.attach();
            Ok::<_, crmonban_ebpf::EbpfError>((fast, report, took, failures))
        })
        .await;
        let (fast, report, took, failures) = match loaded {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(e)) => {
                error!("XDP fast path not started (nftables enforces every ban): {e}");
                return XdpService {
                    state: State::Failed(e.to_string()),
                };
            }
            Err(e) => {
                error!("XDP fast path not started: its loader panicked: {e}");
                return XdpService {
                    state: State::Failed(format!("the loader panicked: {e}")),
                };
            }
        };
        let failed_interfaces: Vec<(String, String)> = failures
            .iter()
            .map(|e| match e {
                crmonban_ebpf::EbpfError::Interface { interface, reason } => {
                    (interface.clone(), reason.clone())
                }
                other => (String::new(), other.to_string()),
            })
            .collect();
        for e in &failures {
            error!("{e}; nftables enforces every ban there");
        }
        info!(
            bans = report.added,
            removed_stale = report.removed,
            took_ms = took.as_millis() as u64,
            "XDP fast path: {}",
            fast.describe()
        );
        let shared = Arc::new(Shared {
            fast: Mutex::new(fast),
            method: config.method,
            failed_interfaces,
            reconciles: AtomicU64::new(1),
            last_reconcile_ms: AtomicU64::new(took.as_millis() as u64),
            missed: AtomicU64::new(0),
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(mirror(
            engine.clone(),
            Arc::clone(&shared),
            stream,
            config.sync_interval,
            stopped,
        ));
        XdpService {
            state: State::Running {
                shared,
                task: Mutex::new(Some((stop, task))),
            },
        }
    }

    /// The fast path's figures.
    pub fn report(&self) -> XdpReport {
        match &self.state {
            State::Off => XdpReport {
                state: "off".to_owned(),
                ..XdpReport::default()
            },
            State::Failed(why) => XdpReport {
                state: format!("failed: {why}"),
                ..XdpReport::default()
            },
            State::Running { shared, .. } => {
                let fast = lock(&shared.fast);
                let mut report = XdpReport {
                    state: "running".to_owned(),
                    method: shared.method.as_str().to_owned(),
                    failed_interfaces: shared.failed_interfaces.clone(),
                    reconciles: shared.reconciles.load(Ordering::Relaxed),
                    last_reconcile_ms: shared.last_reconcile_ms.load(Ordering::Relaxed),
                    missed: shared.missed.load(Ordering::Relaxed),
                    ..XdpReport::default()
                };
                match fast.stats() {
                    Ok(stats) => {
                        report.dropped_v4 = stats.dropped_v4;
                        report.dropped_v6 = stats.dropped_v6;
                        report.interfaces = stats.interfaces;
                        report.entries = [stats.entries_v4, stats.entries_v6];
                        report.max_entries = stats.max_entries;
                        report.not_mirrored = stats.not_mirrored;
                    }
                    Err(e) => report.state = format!("running; counters unreadable: {e}"),
                }
                report
            }
        }
    }

    /// Stops mirroring and takes the program off every interface (pinned maps stay, with the
    /// bans in force, for the next start and for other readers).
    pub async fn shutdown(&self) {
        let State::Running { shared, task } = &self.state else {
            return;
        };
        let task = lock(task).take();
        if let Some((stop, task)) = task {
            let _ = stop.send(true);
            let _ = task.await;
            lock(&shared.fast).detach();
        }
    }
}

/// Applies the engine's events to the maps and reconciles on the timer and after a miss.
async fn mirror(
    engine: Engine,
    shared: Arc<Shared>,
    mut stream: EventStream,
    every: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut events = Vec::with_capacity(BATCH);
    let mut seen_dropped = 0;
    loop {
        let reconcile = tokio::select! {
            _ = stopped.changed() => break,
            _ = ticker.tick() => true,
            n = stream.recv_many(&mut events, BATCH) => {
                if n == 0 {
                    break;
                }
                let changes = changes_of(events.drain(..));
                if !changes.is_empty() {
                    let shared = Arc::clone(&shared);
                    let applied = tokio::task::spawn_blocking(move || {
                        lock(&shared.fast).apply(&changes)
                    })
                    .await;
                    match applied {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => warn!("XDP: mirroring a ban failed, reconciling: {e}"),
                        Err(e) => warn!("XDP: mirroring a ban panicked, reconciling: {e}"),
                    }
                }
                let dropped = stream.dropped();
                let missed = dropped > seen_dropped;
                if missed {
                    shared.missed.fetch_add(dropped - seen_dropped, Ordering::Relaxed);
                    seen_dropped = dropped;
                }
                missed
            }
        };
        if reconcile {
            reconcile_now(&engine, &shared).await;
            ticker.reset();
        }
    }
}

async fn reconcile_now(engine: &Engine, shared: &Arc<Shared>) {
    let engine = engine.clone();
    let shared = Arc::clone(shared);
    let done = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let result = reconcile(&mut lock(&shared.fast), &engine);
        let took = started.elapsed().as_millis() as u64;
        shared.reconciles.fetch_add(1, Ordering::Relaxed);
        shared.last_reconcile_ms.store(took, Ordering::Relaxed);
        result.map(|report| (report, took))
    })
    .await;
    match done {
        Ok(Ok((report, took))) if report.added + report.removed > 0 => info!(
            added = report.added,
            removed = report.removed,
            took_ms = took,
            "XDP: reconciled the maps with the bans in force"
        ),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => warn!("XDP: reconcile failed (retried at the next interval): {e}"),
        Err(e) => warn!("XDP: reconcile panicked: {e}"),
    }
}

/// Makes the maps hold the bans in force, asking the engine entry by entry (no copy of a
/// million bans is made unless the maps miss some).
fn reconcile(
    fast: &mut XdpFastPath,
    engine: &Engine,
) -> Result<crmonban_firewall::ApplyReport, crmonban_ebpf::EbpfError> {
    fast.reconcile_with(
        |target| engine.enforced(target),
        engine.enforced_counts(),
        || engine.active_elements(),
    )
}

/// The map changes a run of events asks for, in order.
fn changes_of(events: impl Iterator<Item = EngineEvent>) -> ChangeSet {
    events
        .filter_map(|event| match event {
            EngineEvent::BanAdded { ban } => Some(crmonban_firewall::Change::Add(element_of(&ban))),
            EngineEvent::BanRemoved { target, .. } => {
                Some(crmonban_firewall::Change::Remove(target))
            }
            _ => None,
        })
        .collect()
}
