//! The worker of one target: [`run`] takes batches from the target's [`TargetQueue`], sends
//! them through its [`Sink`] and acknowledges what got through, one request in flight at a
//! time.
//!
//! A failure that may pass is retried after an exponential backoff with full jitter (a
//! random pause between zero and 1 s, 2 s, 4 s... up to 60 s; a `Retry-After` replaces it),
//! so that many daemons do not hammer a collector that comes back all at once; meanwhile the
//! queue keeps only its newest lines. A permanent refusal drops the batch and counts it. A
//! batch the target finds too large is sent again in halves (the batch size grows back after
//! [`GROW_AFTER`] successful sends). Warnings are rate-limited to one per target per
//! [`LOG_EVERY`]; the target's recovery is logged once.
//!
//! When `stop` turns true the worker drains: it keeps sending what is queued until the queue
//! is empty or `drain` has passed (a send or a pause in progress is cut at that point), then
//! returns.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until, timeout_at};

use crate::queue::TargetQueue;
use crate::sink::webhook::MAX_RETRY_AFTER;
use crate::sink::{Failure, SendError, Sink};

/// At most one warning per target per this long.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// Successful sends with a batch size reduced by "too large" answers before it doubles back.
pub const GROW_AFTER: u32 = 100;

/// The pauses between failed attempts: attempt `n` (from 0) waits a random time between zero
/// and `min(cap, base × 2ⁿ)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first pause's upper bound. Default 1 s.
    pub base: Duration,
    /// The longest pause. Default 60 s.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The upper bound of the pause after `failures` consecutive failures (1 for the first).
    pub fn bound(&self, failures: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A random pause for `failures` consecutive failures (full jitter).
    pub fn pause(&self, failures: u32) -> Duration {
        self.bound(failures).mul_f64(fastrand::f64())
    }
}

/// Sends `queue`'s lines through `sink` until `stop` is true and the queue is drained (or
/// `drain` has passed), with the default [`Backoff`]. The sender of `stop` being dropped
/// counts as stop.
pub async fn run(
    sink: Sink,
    queue: Arc<TargetQueue>,
    stop: watch::Receiver<bool>,
    drain: Duration,
) {
    run_with(sink, queue, stop, drain, Backoff::default()).await;
}

/// [`run`] with its own backoff (tests use short ones).
pub async fn run_with(
    sink: Sink,
    queue: Arc<TargetQueue>,
    stop: watch::Receiver<bool>,
    drain: Duration,
    backoff: Backoff,
) {
    let name = sink.describe();
    let max_batch = sink.max_batch().max(1);
    let mut worker = Worker {
        sink,
        queue,
        stop,
        drain,
        backoff,
        name,
        deadline: None,
        limit: max_batch,
        max_batch,
        successes: 0,
        failures: 0,
        last_warning: None,
        unlogged: 0,
    };
    worker.run().await;
}

struct Worker {
    sink: Sink,
    queue: Arc<TargetQueue>,
    stop: watch::Receiver<bool>,
    drain: Duration,
    backoff: Backoff,
    /// The sink's description, for logs.
    name: String,
    /// When draining: the time it ends.
    deadline: Option<Instant>,
    /// The current batch size.
    limit: usize,
    max_batch: usize,
    /// Successful sends since the batch size was reduced.
    successes: u32,
    /// Consecutive failed attempts (0 while the target is up).
    failures: u32,
    last_warning: Option<Instant>,
    /// Warnings left out since the last one logged.
    unlogged: u64,
}

impl Worker {
    async fn run(&mut self) {
        loop {
            if self.deadline.is_none() && self.stop_requested() {
                self.start_draining();
            }
            match self.deadline {
                // Draining: until the queue is empty or the time is up.
                Some(deadline) if self.queue.is_empty() || Instant::now() >= deadline => break,
                Some(_) => {}
                None if self.queue.is_empty() => {
                    tokio::select! {
                        () = self.queue.wait_nonempty() => {}
                        _ = self.stop.wait_for(|stop| *stop) => {}
                    }
                    continue;
                }
                None => {}
            }
            let batch = self.queue.peek(self.limit);
            let count = batch.lines.len();
            if count == 0 {
                continue;
            }
            let Some(result) = self.send(&batch.lines).await else {
                break; // the drain time ran out during the send
            };
            let queue = Arc::clone(&self.queue);
            let stats = queue.stats();
            let error = match result {
                Ok(()) => {
                    self.acknowledge(batch.through(count), count);
                    self.succeeded();
                    continue;
                }
                Err(error) => error,
            };
            let delivered = error.delivered.min(count);
            self.acknowledge(batch.through(delivered), delivered);
            let rest = count - delivered;
            match error.failure {
                Failure::Retry { after } => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    stats.up.store(false, Ordering::Relaxed);
                    stats.set_last_error(&error.message);
                    self.failures = self.failures.saturating_add(1);
                    self.warn("cannot send to the SIEM target; retrying", &error);
                    let pause = match after {
                        Some(after) => after.min(MAX_RETRY_AFTER),
                        None => self.backoff.pause(self.failures),
                    };
                    self.pause(pause).await;
                }
                Failure::TooLarge if rest > 1 => {
                    self.limit = (rest / 2).max(1);
                    self.successes = 0;
                    tracing::debug!(
                        siem_target = %self.name,
                        batch = self.limit,
                        "the SIEM target refused a batch as too large; sending smaller ones"
                    );
                }
                Failure::Reject | Failure::TooLarge => {
                    self.acknowledge(batch.through(count), 0);
                    stats.rejected.fetch_add(rest as u64, Ordering::Relaxed);
                    stats.set_last_error(&error.message);
                    // It answered: it is reachable.
                    stats.up.store(true, Ordering::Relaxed);
                    self.warn("the SIEM target refused events; they are dropped", &error);
                }
            }
        }
        let left = self.queue.len();
        if left > 0 {
            tracing::info!(
                siem_target = %self.name,
                unsent = left,
                "stopping with events not sent to the SIEM target"
            );
        }
    }

    /// Whether stop was asked for (or its sender is gone).
    fn stop_requested(&self) -> bool {
        *self.stop.borrow() || self.stop.has_changed().is_err()
    }

    fn start_draining(&mut self) {
        self.deadline = Some(Instant::now() + self.drain);
    }

    /// Sends `lines`; `None` when draining ended before the send did. A stop arriving during
    /// the send starts the drain, which then bounds the send.
    async fn send(&mut self, lines: &[Arc<str>]) -> Option<Result<(), SendError>> {
        let send = self.sink.send(lines);
        tokio::pin!(send);
        if self.deadline.is_none() {
            tokio::select! {
                result = &mut send => return Some(result),
                _ = self.stop.wait_for(|stop| *stop) => {
                    self.deadline = Some(Instant::now() + self.drain);
                }
            }
        }
        let deadline = self.deadline?;
        timeout_at(deadline, send).await.ok()
    }

    /// Waits `pause` before the next attempt; a stop cuts it short, and while draining it
    /// never lasts past the drain's end.
    async fn pause(&mut self, pause: Duration) {
        match self.deadline {
            Some(deadline) => sleep_until(deadline.min(Instant::now() + pause)).await,
            None => {
                tokio::select! {
                    () = sleep(pause) => {}
                    _ = self.stop.wait_for(|stop| *stop) => {
                        self.deadline = Some(Instant::now() + self.drain);
                    }
                }
            }
        }
    }

    /// Removes the lines through `through` from the queue; `sent` of them count as sent.
    fn acknowledge(&self, through: Option<u64>, sent: usize) {
        if let Some(through) = through {
            self.queue.ack(through);
        }
        if sent > 0 {
            self.queue
                .stats()
                .sent
                .fetch_add(sent as u64, Ordering::Relaxed);
        }
    }

    fn succeeded(&mut self) {
        self.queue.stats().up.store(true, Ordering::Relaxed);
        if self.failures > 0 {
            tracing::info!(
                siem_target = %self.name,
                failed_attempts = self.failures,
                "the SIEM target takes events again"
            );
            self.failures = 0;
            self.last_warning = None;
            self.unlogged = 0;
        }
        if self.limit < self.max_batch {
            self.successes += 1;
            if self.successes >= GROW_AFTER {
                self.limit = (self.limit * 2).min(self.max_batch);
                self.successes = 0;
            }
        }
    }

    /// A warning, unless one was logged for this target within [`LOG_EVERY`].
    fn warn(&mut self, what: &str, error: &SendError) {
        let now = Instant::now();
        if self
            .last_warning
            .is_some_and(|at| now.duration_since(at) < LOG_EVERY)
        {
            self.unlogged += 1;
            return;
        }
        tracing::warn!(
            siem_target = %self.name,
            error = %error.message,
            queued = self.queue.len(),
            not_logged = self.unlogged,
            "{what}"
        );
        self.last_warning = Some(now);
        self.unlogged = 0;
    }
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
