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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crmonban_core::config::{BanDuration, Config};
use crmonban_core::{BanSource, Event, Service, Target};
use crmonban_detect::decide::{AttackCoalescer, Decider, DeciderOptions, Decision};
use crmonban_detect::matcher::{LineContext, LineOutcome, ServiceMatcher};
use crmonban_detect::source::{SourceLine, Sources, SourcesHandle};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::{BanRequest, Engine, EngineError, StorePositions};

/// Lines waiting between the sources and the matchers.
const LINE_QUEUE: usize = 4096;
/// Events waiting to be written to the store.
const EVENT_QUEUE: usize = 16_384;
/// Addresses remembered for coalescing AttackDetected.
const COALESCE_CAPACITY: usize = 100_000;
/// Bans running at once; the matcher waits (and lines queue) beyond this.
const BANS_IN_FLIGHT: usize = 256;

/// Why detection did not start.
#[derive(Debug, thiserror::Error)]
pub enum DetectionError {
    #[error("service {service}: {source}")]
    Service {
        service: String,
        source: crmonban_detect::DetectError,
    },
}

/// The running pipeline; stop it with [`Detection::shutdown`].
pub struct Detection {
    sources: SourcesHandle,
    matcher_task: JoinHandle<()>,
    writer_task: JoinHandle<()>,
}

impl Detection {
    /// Starts watching every enabled service of `config`. `utc_offset` is the host's offset
    /// east of UTC in seconds, for log timestamps that carry no zone.
    pub fn start(
        engine: &Engine,
        config: &Config,
        utc_offset: i32,
    ) -> Result<Detection, DetectionError> {
        let mut matchers = HashMap::new();
        let mut services = Vec::new();
        for (name, service) in config.enabled_services() {
            let matcher =
                ServiceMatcher::new(name, service).map_err(|source| DetectionError::Service {
                    service: name.to_owned(),
                    source,
                })?;
            matchers.insert(Arc::<str>::from(name), matcher);
            services.push((name.to_owned(), service.clone()));
        }
        let decider = Decider::from_config(config, DeciderOptions::default());
        let positions = Arc::new(StorePositions(engine.store().clone()));
        info!(services = ?services.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), "detection starting");
        let (lines, sources) = Sources::spawn(services, positions, LINE_QUEUE);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let writer_task = tokio::spawn(write_events(engine.clone(), events_rx));
        let matcher_task = tokio::spawn(match_lines(
            engine.clone(),
            matchers,
            decider,
            lines,
            events_tx,
            utc_offset,
        ));
        Ok(Detection {
            sources,
            matcher_task,
            writer_task,
        })
    }

    /// Stops the sources (saving their positions), lets the matcher finish what they had
    /// delivered, and writes the last events.
    pub async fn shutdown(self) {
        self.sources.shutdown().await;
        let _ = self.matcher_task.await;
        let _ = self.writer_task.await;
    }
}

async fn match_lines(
    engine: Engine,
    matchers: HashMap<Arc<str>, ServiceMatcher>,
    mut decider: Decider,
    mut lines: mpsc::Receiver<SourceLine>,
    events: mpsc::Sender<Event>,
    utc_offset: i32,
) {
    let mut coalescer = AttackCoalescer::new(COALESCE_CAPACITY);
    let in_flight = Arc::new(Semaphore::new(BANS_IN_FLIGHT));
    while let Some(line) = lines.recv().await {
        let Some(matcher) = matchers.get(&line.service) else {
            continue;
        };
        let now = line.received_at.div_euclid(1_000_000);
        let ctx = LineContext {
            now,
            utc_offset,
            time: line.time.map(|us| us.div_euclid(1_000_000)),
            pid: line.fields.as_ref().and_then(|f| f.pid),
        };
        let LineOutcome::Match(hit) = matcher.match_line(&line.line, &ctx) else {
            continue;
        };
        let service: &Service = matcher.service();
        let event = hit.event(service);
        engine.report_attack_coalesced(&event, coalescer.admit(hit.addr, now));
        if events.try_send(event).is_err() {
            debug!("event queue full; an event row is dropped (the ban decision is not affected)");
        }
        // Asked before counting: a trusted address takes no window memory and never bans.
        if let Err(refusal) = engine.check_protected(&Target::from(hit.addr)) {
            debug!(%refusal, "attack from a protected address: not counted");
            continue;
        }
        if let Some(Decision::Ban {
            target,
            service,
            failures,
            first_seen,
            last_seen,
            ban_time,
        }) = decider.observe(service, &hit, now)
        {
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
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                break;
            };
            let engine = engine.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match engine.ban(request).await {
                    Ok(ban) => {
                        info!(target = %ban.target, service = %service, failures, "banned")
                    }
                    Err(
                        e @ (EngineError::Protected { .. }
                        | EngineError::Whitelisted { .. }
                        | EngineError::Stopped),
                    ) => debug!("not banned: {e}"),
                    Err(e) => warn!("ban failed: {e}"),
                }
            });
        }
    }
    // Every ban handed out has finished before detection reports itself stopped.
    let _ = in_flight.acquire_many(BANS_IN_FLIGHT as u32).await;
}

/// Writes events to the store in batches, off the matching path.
async fn write_events(engine: Engine, mut events: mpsc::Receiver<Event>) {
    let mut batch = Vec::with_capacity(1024);
    loop {
        let received = events.recv_many(&mut batch, 1024).await;
        if received == 0 {
            break;
        }
        if let Err(e) = engine.store().record_events(&batch).await {
            warn!("recording {} events failed: {e}", batch.len());
        }
        batch.clear();
        // Let a burst accumulate into the next batch.
        tokio::time::sleep(Duration::from_millis(200)).await;
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
