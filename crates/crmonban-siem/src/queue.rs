//! [`TargetQueue`]: the bounded queue of one target's formatted events, and its
//! [`TargetStats`].
//!
//! The engine pushes; the target's worker ([`crate::worker`]) takes batches and acknowledges
//! them once the sink has them. Pushing never blocks and never waits for the target: when the
//! queue is over its event count or its byte budget, the oldest lines are dropped (and
//! counted), so a slow or absent target costs bounded memory and never delays a ban.
//!
//! A batch is taken without being removed; only its acknowledgement removes it. Each line has
//! a sequence number, so an acknowledgement removes exactly the lines that were sent even when
//! the queue overflowed meanwhile and dropped some of them: it never removes a newer line.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// The default byte budget of a queue: 8 MiB of formatted lines.
pub const DEFAULT_MAX_BYTES: usize = 8 * 1024 * 1024;

/// The longest `last_error` kept, in bytes (cut at a character boundary).
pub const MAX_ERROR_BYTES: usize = 300;

/// How much one target's queue may hold before the oldest lines are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// The most lines held (`queue_size` of the target or of `[siem]`).
    pub max_events: usize,
    /// The most bytes of lines held (the lines' UTF-8 length); default [`DEFAULT_MAX_BYTES`]
    /// (8 MiB).
    pub max_bytes: usize,
}

impl QueueLimits {
    /// `max_events` lines within the default byte budget.
    pub fn events(max_events: usize) -> QueueLimits {
        QueueLimits {
            max_events,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

impl Default for QueueLimits {
    /// `[siem] queue_size`'s default count, the default byte budget.
    fn default() -> QueueLimits {
        QueueLimits::events(crmonban_core::config::DEFAULT_SIEM_QUEUE_SIZE)
    }
}

/// What happened to one target's events so far. The counters only grow.
#[derive(Debug)]
pub struct TargetStats {
    /// Lines the target took.
    pub sent: AtomicU64,
    /// Lines dropped from the queue because it was full (the oldest go first). A line
    /// dropped while its batch was being sent may still get through and count as sent too.
    pub dropped: AtomicU64,
    /// Lines the target refused for good (an HTTP 4xx, a message too large for it): they are
    /// not sent again.
    pub rejected: AtomicU64,
    /// Attempts that failed and will be retried (connection refused, timeout, HTTP 5xx...).
    pub failures: AtomicU64,
    /// Whether the last attempt reached the target: true until an attempt fails, false from a
    /// failed attempt until one succeeds (a permanent refusal counts as reaching it).
    pub up: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Default for TargetStats {
    fn default() -> TargetStats {
        TargetStats {
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            up: AtomicBool::new(true),
            last_error: Mutex::new(None),
        }
    }
}

impl TargetStats {
    /// The message of the last failed or refused attempt (kept after the target recovers);
    /// one line of at most [`MAX_ERROR_BYTES`] bytes.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    /// Records `message` as the last error, on one line (line breaks and tabs become spaces,
    /// other control characters are left out) and cut to [`MAX_ERROR_BYTES`] bytes. The caller
    /// keeps secrets out of it.
    pub fn set_last_error(&self, message: &str) {
        let line = one_line(message, MAX_ERROR_BYTES);
        *lock(&self.last_error) = Some(line);
    }
}

/// The statistics of one target at one moment, with its queue's length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Lines the target took.
    pub sent: u64,
    /// Lines dropped because the queue was full.
    pub dropped: u64,
    /// Lines the target refused for good.
    pub rejected: u64,
    /// Failed attempts (retried).
    pub failures: u64,
    /// Lines waiting in the queue.
    pub queued: usize,
    /// Whether the last attempt reached the target.
    pub up: bool,
    /// The message of the last failed or refused attempt.
    pub last_error: Option<String>,
}

/// The lines of one batch, taken from the front of a queue without removing them.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The sequence number of `lines[0]`.
    first_seq: u64,
    /// The lines, oldest first.
    pub(crate) lines: Vec<Arc<str>>,
}

impl Batch {
    /// The sequence number of the `count`-th line (1-based), to acknowledge the first
    /// `count` lines; `None` for 0.
    pub(crate) fn through(&self, count: usize) -> Option<u64> {
        let count = count.min(self.lines.len());
        (count > 0).then(|| self.first_seq + count as u64 - 1)
    }
}

#[derive(Debug, Default)]
struct Lines {
    lines: VecDeque<Arc<str>>,
    /// The sequence number of `lines[0]` (of the next line pushed when empty).
    first_seq: u64,
    bytes: usize,
}

impl Lines {
    fn pop_front(&mut self) -> bool {
        match self.lines.pop_front() {
            Some(line) => {
                self.bytes -= line.len();
                self.first_seq += 1;
                true
            }
            None => false,
        }
    }
}

/// One target's bounded queue of formatted lines (see the module documentation).
#[derive(Debug)]
pub struct TargetQueue {
    limits: QueueLimits,
    lines: Mutex<Lines>,
    ready: Notify,
    stats: TargetStats,
}

impl TargetQueue {
    /// An empty queue holding at most `limits`.
    pub fn new(limits: QueueLimits) -> TargetQueue {
        TargetQueue {
            limits,
            lines: Mutex::new(Lines::default()),
            ready: Notify::new(),
            stats: TargetStats::default(),
        }
    }

    /// The limits this queue keeps to.
    pub fn limits(&self) -> QueueLimits {
        self.limits
    }

    /// Appends `line`, then drops the oldest lines while the queue is over either limit
    /// (counted in [`TargetStats::dropped`]; a single line larger than the byte budget drops
    /// itself), and wakes the worker. Never blocks beyond a short lock, never awaits.
    pub fn push(&self, line: String) {
        let line: Arc<str> = Arc::from(line);
        let mut dropped = 0u64;
        {
            let mut queue = lock(&self.lines);
            queue.bytes += line.len();
            queue.lines.push_back(line);
            while (queue.lines.len() > self.limits.max_events
                || queue.bytes > self.limits.max_bytes)
                && queue.pop_front()
            {
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        self.ready.notify_one();
    }

    /// Lines waiting.
    pub fn len(&self) -> usize {
        lock(&self.lines).lines.len()
    }

    /// Whether no line is waiting.
    pub fn is_empty(&self) -> bool {
        lock(&self.lines).lines.is_empty()
    }

    /// Bytes of the lines waiting.
    pub fn bytes(&self) -> usize {
        lock(&self.lines).bytes
    }

    /// The target's statistics.
    pub fn stats(&self) -> &TargetStats {
        &self.stats
    }

    /// The statistics now, with the queue's length.
    pub fn snapshot(&self) -> StatsSnapshot {
        let stats = &self.stats;
        StatsSnapshot {
            sent: stats.sent.load(Ordering::Relaxed),
            dropped: stats.dropped.load(Ordering::Relaxed),
            rejected: stats.rejected.load(Ordering::Relaxed),
            failures: stats.failures.load(Ordering::Relaxed),
            queued: self.len(),
            up: stats.up.load(Ordering::Relaxed),
            last_error: stats.last_error(),
        }
    }

    /// Up to `max` lines from the front, oldest first, left in the queue.
    pub(crate) fn peek(&self, max: usize) -> Batch {
        let queue = lock(&self.lines);
        Batch {
            first_seq: queue.first_seq,
            lines: queue.lines.iter().take(max).cloned().collect(),
        }
    }

    /// Removes the lines up to sequence number `through` that are still at the front (those
    /// dropped meanwhile are gone already; newer lines stay). Returns how many it removed.
    pub(crate) fn ack(&self, through: u64) -> usize {
        let mut queue = lock(&self.lines);
        let mut removed = 0;
        while queue.first_seq <= through && queue.pop_front() {
            removed += 1;
        }
        removed
    }

    /// Returns once the queue holds a line (at once when it does already). One waiter at a
    /// time: the target's worker.
    pub(crate) async fn wait_nonempty(&self) {
        loop {
            if !self.is_empty() {
                return;
            }
            // A push between the check and this wait leaves a permit: no wake-up is lost.
            self.ready.notified().await;
        }
    }
}

/// The lock, even when a thread panicked holding it: the queue's data stay consistent (every
/// change completes under the lock without a call that could panic midway).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `text` on one line: line breaks and tabs become one space, other control characters are
/// left out, surrounding spaces trimmed, cut to `max_bytes` at a character boundary.
pub(crate) fn one_line(text: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_bytes));
    for c in text.chars() {
        let c = match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_control() => continue,
            c => c,
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        if out.len() + c.len_utf8() > max_bytes {
            break;
        }
        out.push(c);
    }
    let end = out.trim_end().len();
    out.truncate(end);
    out
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
