//! Delivery of lines from the readers to the consumer: the shared, bounded channel with its
//! sequence numbers ([`Outlet`]), the consumer's acknowledgements ([`Acknowledger`]), and each
//! source's bookkeeping between reading, handing over and saving its position ([`Delivery`]),
//! with its counters.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{PositionStore, SourceLine, SourceOptions, SourcePosition, SourceStats, lock, replay};

#[derive(Debug)]
pub(super) struct Counters {
    pub(super) service: String,
    pub(super) source: String,
    pub(super) lines: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) truncated: AtomicU64,
    pub(super) skipped: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) last_error: Mutex<Option<String>>,
}

impl Counters {
    /// Reports a failure once per change of message: a retry that fails the same way is not
    /// logged or counted again.
    pub(super) fn fail(&self, message: String) {
        let mut last = lock(&self.last_error);
        if last.as_deref() != Some(message.as_str()) {
            tracing::warn!(service = %self.service, "{message}");
            self.errors.fetch_add(1, Ordering::Relaxed);
            *last = Some(message);
        }
    }

    pub(super) fn recovered(&self) {
        let mut last = lock(&self.last_error);
        if let Some(message) = last.take() {
            tracing::info!(service = %self.service, source = %self.source, "reading again (was: {message})");
        }
    }

    pub(super) fn snapshot(&self) -> SourceStats {
        SourceStats {
            service: self.service.clone(),
            source: self.source.clone(),
            lines: self.lines.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            truncated: self.truncated.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_error: lock(&self.last_error).clone(),
        }
    }
}

/// The sending side shared by all sources. A sequence number given under a lock as each line
/// enters the channel, together with the channel's occupancy, tells how many lines the consumer
/// has received: that is what positions may be saved up to. A consumer that saves resume
/// points ([`SourceOptions::acknowledged`]) holds the saves back further, to what it has
/// acknowledged ([`Acknowledger`]).
pub(super) struct Outlet {
    pub(super) tx: mpsc::Sender<SourceLine>,
    pub(super) sent: Mutex<u64>,
    pub(super) acked: Arc<AtomicU64>,
}

impl Outlet {
    /// Lines before this sequence number have left the channel (and been acknowledged, when
    /// the consumer acknowledges). Reserved but unused slots count as occupied, which only makes
    /// the answer smaller (safe).
    pub(super) fn consumed(&self) -> u64 {
        let sent = lock(&self.sent);
        let queued = self.tx.max_capacity() - self.tx.capacity();
        sent.saturating_sub(queued as u64)
            .min(self.acked.load(Ordering::Acquire))
    }
}

/// The consumer's hold on the saving of read-through positions, for a consumer that saves
/// resume points of its own ([`replay`]): positions are saved only past lines it has
/// acknowledged, so that a read-through position never gets ahead of the resume point that
/// covers its lines.
#[derive(Clone, Debug)]
pub struct Acknowledger(pub(super) Arc<AtomicU64>);

impl Acknowledger {
    /// Every line whose [`SourceLine::seq`] is below `upto` is done with: its resume point is
    /// durable.
    pub fn acknowledge(&self, upto: u64) {
        self.0.fetch_max(upto, Ordering::AcqRel);
    }
}

/// The per-source bookkeeping between reading, handing over and saving.
pub(super) struct Delivery {
    pub(super) service: Arc<str>,
    pub(super) outlet: Arc<Outlet>,
    pub(super) positions: Arc<dyn PositionStore>,
    pub(super) counters: Arc<Counters>,
    pub(super) options: SourceOptions,
    pub(super) stop: watch::Receiver<bool>,
    /// Positions waiting for the consumer: saveable once `consumed() >= threshold`.
    pub(super) pending: VecDeque<(u64, SourcePosition)>,
    /// Threshold of this source's last line handed over.
    pub(super) last_threshold: u64,
    /// The position after everything handed over that is not a replay (what is saved).
    pub(super) latest: Option<SourcePosition>,
    /// The position after everything read, replays included: where a reader starts again.
    pub(super) current: Option<SourcePosition>,
    /// `current` moved without a line since the last line: the next line carries `before`.
    pub(super) moved: bool,
    /// Lines up to the previous run's read-through position are replays.
    pub(super) replay: Option<replay::Replay>,
    pub(super) saved: Option<SourcePosition>,
    pub(super) since_save: usize,
    pub(super) save_tick: tokio::time::Interval,
}

/// Why a source task stops.
pub(super) struct Stopped;

impl Delivery {
    /// `saved` is the read-through position of the previous run, `resume` the resume point
    /// its consumer saved ([`replay`]): reading starts at `resume` when there is one.
    pub(super) fn new(
        shared: &Shared,
        service: Arc<str>,
        counters: Arc<Counters>,
        saved: Option<SourcePosition>,
        resume: Option<SourcePosition>,
    ) -> Delivery {
        let mut save_tick = tokio::time::interval(shared.options.save_interval);
        save_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let replay = match (&resume, &saved) {
            (Some(_), Some(saved)) => Some(replay::Replay::new(saved.clone())),
            _ => None,
        };
        Delivery {
            service,
            outlet: Arc::clone(&shared.outlet),
            positions: Arc::clone(&shared.positions),
            counters,
            options: shared.options.clone(),
            stop: shared.stop.clone(),
            pending: VecDeque::new(),
            last_threshold: 0,
            current: resume.or_else(|| saved.clone()),
            moved: true,
            replay,
            latest: saved.clone(),
            saved,
            since_save: 0,
            save_tick,
        }
    }

    pub(super) fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Hands one line to the channel, waiting for room; saves on schedule while waiting.
    pub(super) async fn send(&mut self, mut line: SourceLine) -> Result<(), Stopped> {
        if std::mem::take(&mut self.moved) {
            line.before = self.current.clone();
        }
        if let Some(replay) = &mut self.replay {
            line.replayed = replay.is_replay(&line.position);
            if !line.replayed {
                self.replay = None;
            }
        }
        self.current = Some(line.position.clone());
        let outlet = Arc::clone(&self.outlet);
        let permit = loop {
            tokio::select! {
                biased;
                _ = self.stop.changed() => return Err(Stopped),
                permit = outlet.tx.reserve() => match permit {
                    Ok(permit) => break permit,
                    // The consumer is gone: nothing more can be delivered.
                    Err(_) => return Err(Stopped),
                },
                _ = self.save_tick.tick() => self.save_consumed().await,
            }
        };
        self.counters.lines.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes
            .fetch_add(line.line.len() as u64, Ordering::Relaxed);
        if line.truncated {
            self.counters.truncated.fetch_add(1, Ordering::Relaxed);
        }
        let replayed = line.replayed;
        {
            let mut sent = lock(&outlet.sent);
            line.seq = *sent;
            self.last_threshold = *sent + 1;
            *sent += 1;
            permit.send(line);
        }
        if !replayed && let Some(position) = self.current.clone() {
            self.read_through(position);
        }
        self.since_save += 1;
        if self.since_save >= self.options.save_every_lines {
            self.save_consumed().await;
        }
        Ok(())
    }

    /// Records a position reached without a line (start of a file, skipped bytes, a switch
    /// to the next file): saveable once this source's earlier lines are received.
    pub(super) fn advance(&mut self, position: SourcePosition) {
        if self.current.as_ref() != Some(&position) {
            self.current = Some(position.clone());
            self.moved = true;
        }
        if let Some(replay) = &self.replay {
            if !replay.over(&position) {
                return;
            }
            self.replay = None;
        }
        self.read_through(position);
    }

    /// Records the position after lines handed over (not replays).
    pub(super) fn read_through(&mut self, position: SourcePosition) {
        if self.latest.as_ref() == Some(&position) {
            return;
        }
        match self.pending.back_mut() {
            Some((threshold, last)) if *threshold == self.last_threshold => {
                *last = position.clone()
            }
            _ => self
                .pending
                .push_back((self.last_threshold, position.clone())),
        }
        self.latest = Some(position);
    }

    /// Saves the position after the last line the consumer has received.
    pub(super) async fn save_consumed(&mut self) {
        let consumed = self.outlet.consumed();
        let mut ready = None;
        while let Some((threshold, _)) = self.pending.front() {
            if *threshold > consumed {
                break;
            }
            ready = self.pending.pop_front().map(|(_, position)| position);
        }
        if let Some(position) = ready {
            self.save(position).await;
        }
        self.since_save = 0;
    }

    /// Saves everything handed over (clean shutdown: the consumer drains the channel).
    pub(super) async fn save_latest(&mut self) {
        self.pending.clear();
        if let Some(position) = self.latest.clone() {
            self.save(position).await;
        }
    }

    pub(super) async fn save(&mut self, position: SourcePosition) {
        if self.saved.as_ref() == Some(&position) {
            return;
        }
        match self.positions.save(&position).await {
            Ok(()) => self.saved = Some(position),
            Err(e) => tracing::warn!(
                service = %self.service,
                source = %position.source,
                "cannot save the read position (retried with the next batch): {e}"
            ),
        }
    }

    /// Reports `problem`, then waits the retry interval; `Err` when asked to stop meanwhile.
    pub(super) async fn retry_later(&mut self, problem: String) -> Result<(), Stopped> {
        self.counters.fail(problem);
        self.pause(self.options.retry_interval).await
    }

    /// Waits for `duration`, saving on schedule; `Err` when asked to stop.
    pub(super) async fn pause(&mut self, duration: Duration) -> Result<(), Stopped> {
        let until = tokio::time::Instant::now() + duration;
        loop {
            tokio::select! {
                biased;
                _ = self.stop.changed() => return Err(Stopped),
                _ = tokio::time::sleep_until(until) => return Ok(()),
                _ = self.save_tick.tick() => self.save_consumed().await,
            }
        }
    }
}

pub(super) struct Shared {
    pub(super) outlet: Arc<Outlet>,
    pub(super) positions: Arc<dyn PositionStore>,
    pub(super) options: SourceOptions,
    pub(super) stop: watch::Receiver<bool>,
}
