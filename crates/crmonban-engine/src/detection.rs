//! [`Detection`]: the daemon's detection pipeline — log sources -> service matchers -> time
//! windows -> bans — over an [`Engine`]. It runs the same matcher and decider code as
//! `crmonband explain`; only the input (tailed logs instead of a file) and the output (real
//! bans instead of a report) differ.
//!
//! A ban decision is handed to its own task, so the matcher goes on with the next line while
//! the engine puts the ban in the kernel and then the database: a burst of decisions reaches
//! the firewall thread together (one transaction) and no line waits for SQLite.
//!
//! Every matched line counts as an event (`events_processed`, and a row in the store's
//! events table, written in batches off the ban path); `AttackDetected` is announced at most
//! once per address per second. Read positions are kept in the store, so a restart resumes
//! each log where it stopped.
//!
//! # Nothing lost to a crash
//!
//! The failure windows are in memory. So that `kill -9` at any moment neither forgets failures
//! still inside their window nor a ban decided but not yet recorded, each source's resume point
//! ([`crmonban_detect::source::replay`]) is saved every half second: before the oldest line of
//! any window still open and of any ban still being made. A restart reads from there; lines the
//! previous run had already received are *replayed*: counted again (the windows come back
//! exactly), not reported again (no second event row or `AttackDetected`). A ban decided on a
//! window that began before this run started (replayed lines, the second or so of lines after
//! the saved read-through position, lines written while crmonban was down) is made only when
//! the store has no ban of that target since the window's first failure: else an earlier run
//! made it, and an administrator may have lifted it since.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crmonban_core::config::{BanDuration, Config};
use crmonban_core::{BanSource, Event, Service, Target};
use crmonban_detect::decide::{AttackCoalescer, Decider, DeciderOptions, Decision};
use crmonban_detect::matcher::{LineContext, LineOutcome, ServiceMatcher, SkipReason};
use crmonban_detect::source::replay::ResumeTracker;
use crmonban_detect::source::{
    Acknowledger, PositionStore, SourceLine, SourceOptions, SourcePosition, Sources, SourcesHandle,
};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::metrics::LineCounters;
use crate::{BanRequest, Engine, EngineError, StorePositions};

/// Lines waiting between the sources and the matchers.
const LINE_QUEUE: usize = 4096;
/// Events waiting to be written to the store.
const EVENT_QUEUE: usize = 65_536;
/// Events written per transaction at most.
const EVENT_BATCH: usize = 8192;
/// Addresses remembered for coalescing AttackDetected.
const COALESCE_CAPACITY: usize = 100_000;
/// Bans running at once; the matcher waits (and lines queue) beyond this.
const BANS_IN_FLIGHT: usize = 256;
/// How often resume points are saved.
const RESUME_SAVE_INTERVAL: Duration = Duration::from_millis(500);

/// Why detection did not start.
#[derive(Debug, thiserror::Error)]
pub enum DetectionError {
    /// An enabled service's matcher cannot be built (no pattern, a pack pattern that does not
    /// compile).
    #[error("service {service}: {source}")]
    Service {
        /// The service's configuration name.
        service: String,
        /// Why its matcher cannot be built.
        source: crmonban_detect::DetectError,
    },
}

/// The running pipeline; stop it with [`Detection::shutdown`].
pub struct Detection {
    sources: SourcesHandle,
    matcher_task: JoinHandle<Carried>,
    writer_task: JoinHandle<()>,
    /// The configuration it runs on (what a reload compares log sources with).
    config: Config,
}

/// What a reload carries from the stopped pipeline to the next: the failure windows and the
/// resume trackers of each service's source.
pub(crate) struct Carried {
    decider: Decider,
    trackers: HashMap<Arc<str>, (ResumeTracker, Option<String>)>,
}

impl Detection {
    /// Starts watching every enabled service of `config`. `utc_offset` is the host's offset
    /// east of UTC in seconds, for log timestamps that carry no zone.
    pub fn start(
        engine: &Engine,
        config: &Config,
        utc_offset: i32,
    ) -> Result<Detection, DetectionError> {
        Detection::start_carrying(engine, config, utc_offset, None)
    }

    /// Every enabled service's patterns compile (what [`Detection::start`] needs).
    pub fn check(config: &Config) -> Result<(), DetectionError> {
        for (name, service) in config.enabled_services() {
            ServiceMatcher::new(name, service).map_err(|source| DetectionError::Service {
                service: name.to_owned(),
                source,
            })?;
        }
        Ok(())
    }

    /// Stops this pipeline and starts one on `config` that keeps the failure windows (under
    /// the new thresholds: bans they reach now are made at once) and, for services whose log
    /// source is unchanged, the position and resume tracking: no line is read twice.
    pub async fn reconfigured(
        self,
        engine: &Engine,
        config: &Config,
        utc_offset: i32,
    ) -> Result<Detection, DetectionError> {
        Detection::check(config)?;
        let old = self.config.clone();
        let mut carried = self.stop().await;
        // A service whose log source changed starts its tracking afresh.
        carried.trackers.retain(|name, _| {
            let (before, after) = (old.services.get(&**name), config.services.get(&**name));
            matches!((before, after), (Some(b), Some(a))
                if b.log_path == a.log_path && b.journal_match == a.journal_match && b.source == a.source)
        });
        Detection::start_carrying(engine, config, utc_offset, Some(carried))
    }

    fn start_carrying(
        engine: &Engine,
        config: &Config,
        utc_offset: i32,
        carried: Option<Carried>,
    ) -> Result<Detection, DetectionError> {
        let reload = carried.is_some();
        let (mut decider, mut trackers) = match carried {
            Some(Carried { decider, trackers }) => (Some(decider), trackers),
            None => (None, HashMap::new()),
        };
        let mut watched = HashMap::new();
        let mut services = Vec::new();
        for (name, service) in config.enabled_services() {
            let matcher =
                ServiceMatcher::new(name, service).map_err(|source| DetectionError::Service {
                    service: name.to_owned(),
                    source,
                })?;
            let find_time = service.find_time.as_secs();
            let (tracker, key) = match trackers.remove(name) {
                Some((mut tracker, key)) => {
                    tracker.set_window(find_time);
                    (tracker, key)
                }
                None => (ResumeTracker::new(find_time), None),
            };
            watched.insert(
                Arc::<str>::from(name),
                Watched {
                    matcher,
                    tracker,
                    key,
                    lines: engine.metrics().lines(name),
                },
            );
            services.push((name.to_owned(), service.clone()));
        }
        // Windows kept across a reload reach their bans under the new thresholds now.
        let reached = match &mut decider {
            Some(decider) => decider.reconfigure(config),
            None => Vec::new(),
        };
        let decider =
            decider.unwrap_or_else(|| Decider::from_config(config, DeciderOptions::default()));
        for decision in reached {
            tokio::spawn(carry_out(engine.clone(), decision, false, None));
        }
        let positions = Arc::new(StorePositions(engine.store().clone()));
        info!(services = ?services.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), reload, "detection starting");
        let options = SourceOptions {
            acknowledged: true,
            // A reload kept the windows: read on from where the last pipeline stopped.
            skip_resume: reload,
            ..SourceOptions::default()
        };
        let (lines, sources) =
            Sources::spawn_with(services, positions.clone(), LINE_QUEUE, options);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let writer_task = tokio::spawn(write_events(engine.clone(), events_rx));
        let matcher_task = tokio::spawn(match_lines(
            Matching {
                engine: engine.clone(),
                decider,
                events: events_tx,
                utc_offset,
                positions,
                acknowledger: sources.acknowledger(),
                started_at: crmonban_core::unix_now(),
            },
            watched,
            lines,
        ));
        Ok(Detection {
            sources,
            matcher_task,
            writer_task,
            config: config.clone(),
        })
    }

    /// Stops the sources (saving their positions), lets the matcher finish what they had
    /// delivered, and writes the last events.
    pub async fn shutdown(self) {
        drop(self.stop().await);
    }

    async fn stop(self) -> Carried {
        self.sources.shutdown().await;
        let carried = self.matcher_task.await;
        let _ = self.writer_task.await;
        carried.unwrap_or_else(|_| Carried {
            decider: Decider::new(DeciderOptions::default()),
            trackers: HashMap::new(),
        })
    }
}

/// One service's matcher and the resume point of its source.
struct Watched {
    matcher: ServiceMatcher,
    tracker: ResumeTracker,
    /// The source's position key, known from its first line.
    key: Option<String>,
    /// Lines read and skipped, for metrics.
    lines: LineCounters,
}

/// What the matching task works with besides the services.
struct Matching {
    engine: Engine,
    decider: Decider,
    events: mpsc::Sender<Event>,
    utc_offset: i32,
    positions: Arc<StorePositions>,
    /// Read-through positions are saved only past lines whose resume points are saved.
    acknowledger: Acknowledger,
    /// Unix seconds: a window that began before this may have been acted on by an earlier run.
    started_at: i64,
}

async fn match_lines(
    mut m: Matching,
    mut watched: HashMap<Arc<str>, Watched>,
    mut lines: mpsc::Receiver<SourceLine>,
) -> Carried {
    let mut coalescer = AttackCoalescer::new(COALESCE_CAPACITY);
    let in_flight = Arc::new(Semaphore::new(BANS_IN_FLIGHT));
    let mut save_tick = tokio::time::interval(RESUME_SAVE_INTERVAL);
    save_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The running save, which returns the keys it could not save (saved again next time).
    let mut saving: Option<JoinHandle<Vec<String>>> = None;
    // Lines below this sequence number have been received.
    let mut received = 0;
    loop {
        let mut line = tokio::select! {
            line = lines.recv() => match line {
                Some(line) => line,
                None => break,
            },
            _ = save_tick.tick() => {
                // The last second of a flood: events that waited for their address's next
                // announcement, which may never come.
                for (event, count) in coalescer.flush(crmonban_core::unix_now()) {
                    m.engine.announce_attack(&event, count).await;
                }
                if saving.as_ref().is_some_and(|task| !task.is_finished()) {
                    continue;
                }
                if let Some(task) = saving.take() {
                    unsaved(&mut watched, task.await.unwrap_or_default());
                }
                let points = resume_points(&mut watched);
                let positions = Arc::clone(&m.positions);
                let acknowledger = m.acknowledger.clone();
                saving = Some(tokio::spawn(async move {
                    let failed = save_resume_points(positions, points).await;
                    if failed.is_empty() {
                        acknowledger.acknowledge(received);
                    }
                    failed
                }));
                continue;
            }
        };
        received = line.seq + 1;
        let Some(w) = watched.get_mut(&line.service) else {
            continue;
        };
        let position = std::mem::take(&mut line.position);
        if w.key.is_none() {
            w.key = Some(position.source.clone());
        }
        w.tracker.line(line.before.take(), position);
        let now = line.received_at.div_euclid(1_000_000);
        let ctx = LineContext {
            now,
            utc_offset: m.utc_offset,
            time: line.time.map(|us| us.div_euclid(1_000_000)),
            pid: line.fields.as_ref().and_then(|f| f.pid),
        };
        w.lines.read.inc();
        let hit = match w.matcher.match_line(&line.line, &ctx) {
            LineOutcome::Match(hit) => hit,
            LineOutcome::NoMatch => continue,
            LineOutcome::Skipped(SkipReason::TooLong) => {
                w.lines.too_long.inc();
                continue;
            }
            LineOutcome::Skipped(SkipReason::InvalidUtf8) => {
                w.lines.invalid_utf8.inc();
                continue;
            }
        };
        w.tracker.failure(hit.time.unwrap_or(now));
        let service: &Service = w.matcher.service();
        if !line.replayed {
            m.engine.metrics().detected(line.received_at);
            let event = hit.event(service);
            m.engine
                .report_attack_coalesced(&event, coalescer.admit(&event, now))
                .await;
            if m.events.try_send(event).is_err() {
                // Counted (Status events_dropped); the ban decision is not affected.
                m.engine.note_events_dropped(1);
            }
        }
        // Asked before counting: a trusted address takes no window memory and never bans.
        if let Err(refusal) = m.engine.check_protected(&Target::from(hit.addr)) {
            debug!(%refusal, "attack from a protected address: not counted");
            continue;
        }
        let Some(decision) = m.decider.observe(service, &hit, now) else {
            continue;
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let first_seen = decision_first_seen(&decision);
        let pending = w.tracker.pending_ban(first_seen);
        let engine = m.engine.clone();
        // Lines read again after a crash, or written before this run (or in its first second,
        // log times having whole seconds): an earlier run may have made this ban already (the
        // read-through position lags up to a second behind).
        let check_history = line.replayed || first_seen <= m.started_at;
        // Lines read again after a restart are timed from their second reading: left out.
        let read_at = (!line.replayed).then_some(line.received_at);
        tokio::spawn(async move {
            let _permit = permit;
            let _pending = pending;
            carry_out(engine, decision, check_history, read_at).await;
        });
    }
    // Every ban handed out has finished before detection reports itself stopped.
    let _ = in_flight.acquire_many(BANS_IN_FLIGHT as u32).await;
    if let Some(task) = saving {
        unsaved(&mut watched, task.await.unwrap_or_default());
    }
    let points = resume_points(&mut watched);
    save_resume_points(m.positions, points).await;
    Carried {
        decider: m.decider,
        trackers: watched
            .into_iter()
            .map(|(name, w)| (name, (w.tracker, w.key)))
            .collect(),
    }
}

/// The resume points of `keys` were not saved: they are saved again at the next tick.
fn unsaved(watched: &mut HashMap<Arc<str>, Watched>, keys: Vec<String>) {
    for w in watched.values_mut() {
        if w.key.as_ref().is_some_and(|key| keys.contains(key)) {
            w.tracker.save_failed();
        }
    }
}

fn decision_first_seen(decision: &Decision) -> i64 {
    match decision {
        Decision::Ban { first_seen, .. } => *first_seen,
    }
}

/// The resume points that changed since they were last saved, marked as saved.
fn resume_points(
    watched: &mut HashMap<Arc<str>, Watched>,
) -> Vec<(String, Option<SourcePosition>)> {
    let mut points = Vec::new();
    for w in watched.values_mut() {
        let Some(key) = &w.key else { continue };
        if let Some(point) = w.tracker.to_save() {
            points.push((key.clone(), point.clone()));
            w.tracker.saved(point);
        }
    }
    points
}

/// Saves `points`; returns the keys that failed.
async fn save_resume_points(
    positions: Arc<StorePositions>,
    points: Vec<(String, Option<SourcePosition>)>,
) -> Vec<String> {
    let mut failed = Vec::new();
    for (key, point) in points {
        if let Err(e) = positions.save_resume(&key, point.as_ref()).await {
            warn!(source = %key, "cannot save the resume point (retried; a crash now replays from the previous one): {e}");
            failed.push(key);
        }
    }
    failed
}

/// Makes the ban `decision` asks for. With `check_history`, the decision is dropped when the
/// target was banned since the window's first failure: an earlier run made that ban (and an
/// administrator may have lifted it since). `read_at` (unix microseconds), when the deciding
/// line was read in this run, times the ban for metrics.
async fn carry_out(engine: Engine, decision: Decision, check_history: bool, read_at: Option<i64>) {
    let Decision::Ban {
        target,
        service,
        failures,
        first_seen,
        last_seen,
        ban_time,
    } = decision;
    if check_history {
        match engine
            .store()
            .offence_count(&target, Some(first_seen))
            .await
        {
            Ok(0) => {}
            Ok(_) => {
                debug!(%target, "lines read again: an earlier run banned it already");
                return;
            }
            // Banning again is harmless (a ban is only ever lengthened); missing one is not.
            Err(e) => warn!(%target, "cannot tell whether a replayed ban was made: {e}"),
        }
    }
    let mut reason = format!(
        "{failures} failures of {service} in {}s",
        (last_seen - first_seen).max(0)
    );
    let ban_time = match engine.zone_of(&target) {
        Some((_, zone)) => {
            let factor = zone.ban_time_factor();
            reason.push_str(&format!(
                " (zone {}, trust {}: ban time x{factor:.2})",
                zone.name, zone.trust_level
            ));
            scale(ban_time, factor)
        }
        None => ban_time,
    };
    let request = BanRequest {
        target,
        duration: Some(ban_time),
        reason,
        source: BanSource::Detector,
        service: Some(service.to_string()),
    };
    match engine.ban(request).await {
        Ok(ban) => {
            if let Some(read_at) = read_at {
                engine.metrics().banned(read_at);
            }
            // The engine logs the ban itself (one line per ban, its reason naming the service).
            debug!(target = %ban.target, service = %service, failures, "banned");
        }
        Err(
            e @ (EngineError::Protected { .. }
            | EngineError::Whitelisted { .. }
            | EngineError::Stopped),
        ) => debug!("not banned: {e}"),
        Err(e) => warn!("ban failed: {e}"),
    }
}

/// Writes events to the store in batches, off the matching path. A batch the store refuses is
/// counted as dropped.
async fn write_events(engine: Engine, mut events: mpsc::Receiver<Event>) {
    let mut batch = Vec::with_capacity(EVENT_BATCH);
    loop {
        let received = events.recv_many(&mut batch, EVENT_BATCH).await;
        if received == 0 {
            break;
        }
        if let Err(e) = engine.store().record_events(&batch).await {
            engine.note_events_dropped(batch.len() as u64);
            warn!(
                "recording {} events failed (counted as dropped): {e}",
                batch.len()
            );
        }
        let full = batch.len() == EVENT_BATCH;
        batch.clear();
        // A trickle: let a few more arrive to share the next transaction. A burst: go on.
        if !full {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A timed ban `factor` times as long (at least a second); a permanent one stays permanent.
fn scale(ban_time: BanDuration, factor: f64) -> BanDuration {
    match ban_time {
        BanDuration::Timed(d) => {
            BanDuration::Timed(Duration::from_secs_f64((d.as_secs_f64() * factor).max(1.0)))
        }
        BanDuration::Permanent => BanDuration::Permanent,
    }
}
