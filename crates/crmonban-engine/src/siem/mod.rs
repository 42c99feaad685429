//! [`SiemService`]: the engine's events told to SIEMs (`[siem]`), never on a ban's path.
//!
//! One task (the router) hears the engine on a lossless subscription that drops rather than
//! waits (its drops are counted), turns each event into a [`SiemEvent`] — attacks coalesced
//! per address ([`convert::AttackWindows`]), the address's intel summary added when known —
//! renders it once per target in that target's format and pushes the line onto the target's
//! bounded queue, which drops its oldest line when full. Each target has a worker
//! ([`crmonban_siem::worker::run`]) that sends what is queued, one request at a time, with
//! backoff while the target is down: a slow or dead target costs its queue's memory at most
//! and never a ban's time. Drops are counted per target (`crmonctl stats`, Status) and
//! written to the activity log at most once a minute per target.
//!
//! A reload builds every new target before it changes anything (a bad TLS file or headers
//! file refuses the reload); a target that keeps its name and queue size keeps its queue, so
//! nothing queued is lost, and gets a new sink (a file is reopened). Delivery is at least
//! once: a batch in flight when its worker is replaced is sent again.

mod convert;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crmonban_core::config::{
    Config, SiemConfig, SiemFormat, SiemTarget, SiemTargetConfig, SyslogHeader, SyslogTransport,
};
use crmonban_siem::format::{Wrap, render};
use crmonban_siem::queue::{QueueLimits, StatsSnapshot, TargetQueue};
use crmonban_siem::sink::Sink;
use crmonban_siem::{Action, Origin, SiemEvent};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::locks::{lock, read, write};
use crate::{Engine, EngineEvent, EventStream, Overflow};
use convert::{AttackWindows, now_micros, to_siem};

/// Events the router's subscription holds before the engine drops (and counts) new ones.
const SUBSCRIPTION: usize = 16_384;
/// The most bytes a target's queue holds, whatever its `queue_size`.
const QUEUE_BYTES: usize = 8 << 20;
/// How long a stopping daemon keeps sending what is queued.
const DRAIN: Duration = Duration::from_secs(2);
/// How often drops are written to the activity log at most, per target.
const DROP_NOTE_EVERY: Duration = Duration::from_secs(60);

/// Why a `[siem]` configuration cannot be used; nothing of it was applied.
#[derive(Debug, thiserror::Error)]
#[error("siem target {name:?}: {message}")]
pub struct SiemError {
    /// The target's name.
    pub name: String,
    /// What is wrong, naming the key or file.
    pub message: String,
}

/// One target's figures.
#[derive(Clone, Debug)]
pub struct SiemTargetStats {
    /// The target's name (`[[siem.targets]] name` or where it sends).
    pub name: String,
    /// The format it writes.
    pub format: SiemFormat,
    /// Sent, dropped, rejected, failures, queued, up, last error.
    pub stats: StatsSnapshot,
}

/// The service's figures.
#[derive(Clone, Debug, Default)]
pub struct SiemStats {
    /// Whether `[siem] enabled` is on (and there is a target).
    pub enabled: bool,
    /// Events the router missed because its subscription was full.
    pub missed: u64,
    /// Per target, in configuration order.
    pub targets: Vec<SiemTargetStats>,
}

impl SiemStats {
    /// Events dropped in all, the router's misses included.
    pub fn dropped(&self) -> u64 {
        self.missed + self.targets.iter().map(|t| t.stats.dropped).sum::<u64>()
    }
}

/// A target while it runs.
struct Running {
    config: SiemTargetConfig,
    queue_size: usize,
    format: SiemFormat,
    wrap: Wrap,
    queue: Arc<TargetQueue>,
    stop: watch::Sender<bool>,
    worker: Mutex<Option<JoinHandle<()>>>,
    noted_drops: AtomicU64,
}

/// What the router sends to: swapped as a whole by a reload.
struct Routing {
    origin: Origin,
    interval: Duration,
    targets: Vec<Arc<Running>>,
    /// The port of each service that has exactly one (`[services.NAME] port`).
    ports: HashMap<String, u16>,
}

/// A configuration whose targets are built and checked, ready to apply.
pub struct PreparedSiem {
    config: SiemConfig,
    sinks: Vec<Sink>,
    ports: HashMap<String, u16>,
}

struct Shared {
    engine: Engine,
    routing: RwLock<Arc<Routing>>,
    missed: AtomicU64,
}

/// SIEM export over an [`Engine`]; see the module documentation.
pub struct SiemService {
    shared: Arc<Shared>,
    router: Mutex<Option<(watch::Sender<bool>, JoinHandle<()>)>>,
}

impl SiemService {
    /// Builds every target of `config`'s `[siem]` (no connection is made yet) or says which
    /// cannot be; takes the services' ports too.
    pub fn prepare(config: &Config) -> Result<PreparedSiem, SiemError> {
        let ports = config
            .services
            .iter()
            .filter_map(|(name, service)| match service.ports[..] {
                [port] => Some((name.clone(), port)),
                _ => None,
            })
            .collect();
        let config = &config.siem;
        let mut sinks = Vec::new();
        if config.enabled {
            for target in &config.targets {
                let sink = Sink::build(&target.kind).map_err(|e| SiemError {
                    name: target.name.clone(),
                    message: e.to_string(),
                })?;
                sinks.push(sink);
            }
        }
        Ok(PreparedSiem {
            config: config.clone(),
            sinks,
            ports,
        })
    }

    /// Starts exporting as `prepared` says (nothing runs when it is disabled), and queues a
    /// "daemon started" event: the engine has just started.
    pub async fn start(engine: &Engine, prepared: PreparedSiem) -> SiemService {
        let service = SiemService {
            shared: Arc::new(Shared {
                engine: engine.clone(),
                routing: RwLock::new(Arc::new(Routing {
                    origin: origin(&prepared.config),
                    interval: Duration::ZERO,
                    targets: Vec::new(),
                    ports: HashMap::new(),
                })),
                missed: AtomicU64::new(0),
            }),
            router: Mutex::new(None),
        };
        let enabled = service.apply(prepared).await;
        if enabled {
            let mut started = SiemEvent::new(Action::DaemonStarted, now_micros());
            started.reason = format!("{} bans in force", engine.active_ban_count());
            dispatch(&service.shared.routing(), &started);
        }
        service
    }

    /// Applies a configuration [`SiemService::prepare`] accepted; returns whether export is
    /// on now.
    pub async fn apply(&self, prepared: PreparedSiem) -> bool {
        let PreparedSiem {
            config,
            sinks,
            ports,
        } = prepared;
        let old = self.shared.routing();
        // The old workers go first: a queue that is kept must have one sender only. A batch
        // they had in flight is sent again by the new worker (at least once).
        for t in &old.targets {
            let worker = lock(&t.worker).take();
            if let Some(worker) = worker {
                worker.abort();
                let _ = worker.await;
            }
        }
        let mut targets = Vec::new();
        for (target, sink) in config.targets.iter().zip(sinks) {
            let size = target.queue_size.unwrap_or(config.queue_size);
            let kept = old
                .targets
                .iter()
                .find(|t| t.config.name == target.name && t.queue_size == size);
            let queue = match kept {
                Some(t) => Arc::clone(&t.queue),
                None => Arc::new(TargetQueue::new(QueueLimits {
                    max_events: size,
                    max_bytes: QUEUE_BYTES,
                })),
            };
            let (stop, stopped) = watch::channel(false);
            let worker = tokio::spawn(crmonban_siem::worker::run(
                sink,
                Arc::clone(&queue),
                stopped,
                DRAIN,
            ));
            let noted = kept.map_or(0, |t| t.noted_drops.load(Ordering::Relaxed));
            targets.push(Arc::new(Running {
                queue_size: size,
                format: target.format_or(config.format),
                wrap: wrap(&target.kind),
                config: target.clone(),
                queue,
                stop,
                worker: Mutex::new(Some(worker)),
                noted_drops: AtomicU64::new(noted),
            }));
        }
        let enabled = config.enabled && !targets.is_empty();
        for t in &targets {
            let framing = match t.wrap {
                Wrap::Bare => "",
                Wrap::Syslog { .. } => " (RFC 5424)",
                Wrap::Local { .. } => " (local syslog form)",
            };
            info!(target = %t.config.name, format = %t.format, "siem: exporting{framing}");
        }
        *write(&self.shared.routing) = Arc::new(Routing {
            origin: origin(&config),
            interval: Duration::from_secs(config.attack_interval_secs),
            targets,
            ports,
        });
        let mut router = lock(&self.router);
        if enabled && router.is_none() {
            let (stop, stopped) = watch::channel(false);
            let events = self
                .shared
                .engine
                .subscribe_lossless(SUBSCRIPTION, Overflow::DropNewest);
            let task = tokio::spawn(route(Arc::clone(&self.shared), events, stopped));
            *router = Some((stop, task));
        } else if !enabled && let Some((stop, task)) = router.take() {
            let _ = stop.send(true);
            drop(task);
        }
        enabled
    }

    /// The service's figures.
    pub fn stats(&self) -> SiemStats {
        let routing = self.shared.routing();
        SiemStats {
            enabled: lock(&self.router).is_some(),
            missed: self.shared.missed.load(Ordering::Relaxed),
            targets: routing
                .targets
                .iter()
                .map(|t| SiemTargetStats {
                    name: t.config.name.clone(),
                    format: t.format,
                    stats: t.queue.snapshot(),
                })
                .collect(),
        }
    }

    /// Stops after the engine has: the router passes on what the engine emitted last (its
    /// "daemon stopping" included) and every attack count still pending, then each target
    /// sends what it holds for up to two seconds.
    pub async fn shutdown(&self) {
        let router = lock(&self.router).take();
        if let Some((stop, task)) = router {
            let _ = stop.send(true);
            let _ = task.await;
        }
        let routing = self.shared.routing();
        for t in &routing.targets {
            let _ = t.stop.send(true);
        }
        // One deadline for all: the workers drain at the same time, and a send in flight may
        // take its own timeout, so it is bounded here as well.
        let deadline = tokio::time::Instant::now() + DRAIN + Duration::from_secs(1);
        for t in &routing.targets {
            let worker = lock(&t.worker).take();
            if let Some(mut worker) = worker
                && tokio::time::timeout_at(deadline, &mut worker)
                    .await
                    .is_err()
            {
                worker.abort();
            }
        }
    }
}

impl Drop for SiemService {
    fn drop(&mut self) {
        if let Some((stop, task)) = lock(&self.router).take() {
            let _ = stop.send(true);
            task.abort();
        }
        for t in &self.shared.routing().targets {
            if let Some(worker) = lock(&t.worker).take() {
                worker.abort();
            }
        }
    }
}

impl Shared {
    fn routing(&self) -> Arc<Routing> {
        Arc::clone(&read(&self.routing))
    }
}

/// The router: engine events in, lines onto the targets' queues.
async fn route(shared: Arc<Shared>, mut events: EventStream, mut stop: watch::Receiver<bool>) {
    let mut windows = AttackWindows::new(shared.routing().interval);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_note = Instant::now();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => handle(&shared, &mut windows, &event),
                None => break,
            },
            _ = tick.tick() => {
                let routing = shared.routing();
                if windows.interval() != routing.interval {
                    for event in windows.drain() {
                        dispatch(&routing, &event);
                    }
                    windows = AttackWindows::new(routing.interval);
                }
                for event in windows.expire(Instant::now()) {
                    dispatch(&routing, &event);
                }
                shared.missed.store(events.dropped(), Ordering::Relaxed);
                if last_note.elapsed() >= DROP_NOTE_EVERY {
                    last_note = Instant::now();
                    note_drops(&shared.engine, &routing);
                }
            }
            _ = stop.changed() => break,
        }
    }
    // What the engine emitted before it stopped (its "daemon stopping" among it).
    while let Some(event) = events.try_recv() {
        handle(&shared, &mut windows, &event);
    }
    let routing = shared.routing();
    for event in windows.drain() {
        dispatch(&routing, &event);
    }
    shared.missed.store(events.dropped(), Ordering::Relaxed);
    note_drops(&shared.engine, &routing);
}

fn handle(shared: &Shared, windows: &mut AttackWindows, event: &EngineEvent) {
    let Some(mut siem) = to_siem(event, &shared.engine, now_micros()) else {
        return;
    };
    let routing = shared.routing();
    if let Some(service) = &siem.service {
        siem.port = routing.ports.get(service).copied();
    }
    let siem = if siem.action == Action::AttackDetected {
        match windows.admit(siem, Instant::now()) {
            Some(siem) => siem,
            None => return,
        }
    } else {
        siem
    };
    dispatch(&routing, &siem);
}

/// `event` rendered for every target and queued there.
fn dispatch(routing: &Routing, event: &SiemEvent) {
    for t in &routing.targets {
        t.queue
            .push(render(t.format, event, &routing.origin, t.wrap));
    }
}

/// Writes each target's new drops since the last note to the activity log and the log.
fn note_drops(engine: &Engine, routing: &Routing) {
    for t in &routing.targets {
        let snapshot = t.queue.snapshot();
        let before = t.noted_drops.swap(snapshot.dropped, Ordering::Relaxed);
        let new = snapshot.dropped.saturating_sub(before);
        if new == 0 {
            continue;
        }
        let why = snapshot.last_error.as_deref().map_or_else(
            || "the target is slow".to_owned(),
            |e| format!("last error: {e}"),
        );
        let detail = format!(
            "siem target {}: {new} events dropped (queue full; {why})",
            t.config.name
        );
        warn!("{detail}");
        engine.note_activity("siem_dropped", None, detail);
    }
}

fn wrap(target: &SiemTarget) -> Wrap {
    match target {
        SiemTarget::Syslog {
            facility,
            transport: SyslogTransport::Unix { socket, header, .. },
        } => {
            let local = match header {
                SyslogHeader::Local => true,
                SyslogHeader::Rfc5424 => false,
                SyslogHeader::Auto => is_journald_socket(socket),
            };
            let facility = facility.code();
            if local {
                Wrap::Local { facility }
            } else {
                Wrap::Syslog { facility }
            }
        }
        SiemTarget::Syslog { facility, .. } => Wrap::Syslog {
            facility: facility.code(),
        },
        SiemTarget::File { .. } | SiemTarget::Webhook { .. } => Wrap::Bare,
    }
}

/// Whether `socket` is systemd-journald's syslog socket (what `/dev/log` links to on a
/// systemd host), which reads the local syslog(3) form and not RFC 5424.
fn is_journald_socket(socket: &std::path::Path) -> bool {
    const JOURNALD: &str = "run/systemd/journal/dev-log";
    socket.ends_with(JOURNALD)
        || std::fs::canonicalize(socket).is_ok_and(|real| real.ends_with(JOURNALD))
}

fn origin(config: &SiemConfig) -> Origin {
    let hostname = config.hostname.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_default()
    });
    Origin::new(&hostname, env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journalds_socket_gets_the_local_form_unless_the_header_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("run/systemd/journal");
        std::fs::create_dir_all(&journal).unwrap();
        std::fs::write(journal.join("dev-log"), "").unwrap();
        let dev_log = dir.path().join("dev-log-link");
        std::os::unix::fs::symlink(journal.join("dev-log"), &dev_log).unwrap();
        let syslog = |socket: &std::path::Path, header| SiemTarget::Syslog {
            transport: SyslogTransport::Unix {
                socket: socket.to_path_buf(),
                socket_type: crmonban_core::config::UnixSocketType::Auto,
                header,
            },
            facility: crmonban_core::config::SyslogFacility::Authpriv,
        };
        // A link to journald's socket, as /dev/log is on a systemd host.
        assert_eq!(
            wrap(&syslog(&dev_log, SyslogHeader::Auto)),
            Wrap::Local { facility: 10 }
        );
        assert_eq!(
            wrap(&syslog(&dev_log, SyslogHeader::Rfc5424)),
            Wrap::Syslog { facility: 10 }
        );
        let rsyslog = dir.path().join("rsyslog.sock");
        assert_eq!(
            wrap(&syslog(&rsyslog, SyslogHeader::Auto)),
            Wrap::Syslog { facility: 10 }
        );
        assert_eq!(
            wrap(&syslog(&rsyslog, SyslogHeader::Local)),
            Wrap::Local { facility: 10 }
        );
    }
}
