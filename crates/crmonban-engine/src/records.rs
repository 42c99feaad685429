//! [`Records`]: the database half of bans and unbans, written after the kernel half and never
//! allowed to undo it.
//!
//! The kernel is enforced first; the record follows. When the database cannot take a record
//! (a full disk, an I/O error, a read-only or locked file), the ban stays enforced and its
//! record waits in a queue, in order, written again every second until the fault clears: no
//! ban is refused or rolled back because of the database. While records wait, new ones queue
//! behind them, so that a target's ban and unban are never recorded out of order. A record the
//! database refuses for good (a constraint, a trigger: a damaged or tampered schema) is logged
//! at error and dropped. Everything is counted ([`RecordStats`], in `Status`).
//!
//! Records still queued are lost if crmonban stops before the database recovers (the queue
//! is in memory; the disk is the thing that failed): the kernel keeps the bans until restart,
//! and detector bans are decided again from the log lines replayed at the next start.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::locks::lock;
use crmonban_core::{Ban, Target};
use crmonban_store::{Store, StoreError};
use tracing::{error, info, warn};

/// Records held at most; beyond, the oldest is dropped (and counted).
const MAX_QUEUED: usize = 1_000_000;

/// A change to write to the store.
#[derive(Clone, Debug)]
pub(crate) enum Record {
    Ban(Ban),
    End {
        target: Target,
        at: i64,
        reason: String,
    },
}

/// What became of a record given to [`Records::write`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Written {
    Now,
    Queued,
    Dropped,
}

/// Counters of the records that could not be written at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordStats {
    /// Records waiting for the database now.
    pub pending: u64,
    /// Writes that failed and were queued (since start).
    pub failed: u64,
    /// Records given up: refused for good by the database, or beyond the queue's bound.
    pub dropped: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Records {
    queue: Mutex<VecDeque<Record>>,
    failing: AtomicBool,
    failed: AtomicU64,
    dropped: AtomicU64,
}

impl Records {
    /// Writes `record` now, or queues it behind earlier ones (or after a fault).
    pub(crate) async fn write(&self, store: &Store, record: Record) -> Written {
        if !lock(&self.queue).is_empty() {
            self.enqueue(record);
            return Written::Queued;
        }
        match apply(store, &record).await {
            Ok(()) => Written::Now,
            Err(e) if is_fault(&e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if !self.failing.swap(true, Ordering::AcqRel) {
                    warn!(
                        error = %e,
                        "the database cannot take records; bans and unbans are enforced and their records queued, written again every second"
                    );
                }
                self.enqueue(record);
                Written::Queued
            }
            Err(e) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                error!(error = %e, ?record, "the database refuses this record for good; it is enforced but not recorded");
                Written::Dropped
            }
        }
    }

    /// Writes `bans` in one transaction, or (after a fault, or behind queued records) queues
    /// them in order. A batch refused for good is written ban by ban, so that only the bans
    /// the database refuses are dropped.
    pub(crate) async fn write_bans(&self, store: &Store, bans: Vec<Ban>) {
        if bans.is_empty() {
            return;
        }
        if lock(&self.queue).is_empty() {
            match store.record_bans(&bans).await {
                Ok(()) => return,
                Err(e) if is_fault(&e) => {
                    self.failed.fetch_add(1, Ordering::Relaxed);
                    if !self.failing.swap(true, Ordering::AcqRel) {
                        warn!(
                            error = %e,
                            "the database cannot take records; bans and unbans are enforced and their records queued, written again every second"
                        );
                    }
                }
                Err(e) => {
                    warn!(error = %e, "the database refuses a batch of bans; writing them one by one");
                    for ban in bans {
                        self.write(store, Record::Ban(ban)).await;
                    }
                    return;
                }
            }
        }
        for ban in bans {
            self.enqueue(Record::Ban(ban));
        }
    }

    fn enqueue(&self, record: Record) {
        let mut queue = lock(&self.queue);
        if queue.len() >= MAX_QUEUED {
            queue.pop_front();
            if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                error!(
                    limit = MAX_QUEUED,
                    "too many records wait for the database; the oldest are dropped"
                );
            }
        }
        queue.push_back(record);
    }

    /// Writes the queued records in order, stopping at the first fault. Only one caller (the
    /// engine's records task) flushes, so the front stays the same while it is written.
    pub(crate) async fn flush(&self, store: &Store) -> Result<usize, StoreError> {
        let mut written = 0;
        loop {
            let Some(front) = lock(&self.queue).front().cloned() else {
                break;
            };
            match apply(store, &front).await {
                Ok(()) => written += 1,
                Err(e) if is_fault(&e) => return Err(e),
                Err(e) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    error!(error = %e, record = ?front, "the database refuses this queued record for good; dropped");
                }
            }
            lock(&self.queue).pop_front();
        }
        if self.failing.swap(false, Ordering::AcqRel) {
            info!(
                written,
                "the database takes records again; every queued record is written"
            );
        }
        Ok(written)
    }

    pub(crate) fn stats(&self) -> RecordStats {
        RecordStats {
            pending: lock(&self.queue).len() as u64,
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

async fn apply(store: &Store, record: &Record) -> Result<(), StoreError> {
    match record {
        Record::Ban(ban) => store.record_ban(ban).await.map(drop),
        Record::End { target, at, reason } => store.end_ban(target, *at, reason).await.map(drop),
    }
}

fn is_fault(e: &StoreError) -> bool {
    e.is_transient()
}
