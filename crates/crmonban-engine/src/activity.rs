//! The activity log writer: entries ("ban", "unban", "flush", ...) go through a bounded queue
//! to one task that writes them to the store in batches (up to [`ACTIVITY_BATCH`] per
//! transaction: a burst of 100,000 bans is written at the disk's pace, not one transaction
//! each), so that a ban never waits for the activity log. When the queue is still full (a
//! flood of bans on a slow or failing disk) entries are dropped and counted (`Status`
//! `activity_dropped`); the bans themselves are in the `bans` table whatever happens here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crmonban_core::Target;
use crmonban_store::{NewActivity, Store};
use tokio::sync::{mpsc, watch};
use tracing::warn;

/// Entries waiting for the writer.
pub(crate) const ACTIVITY_QUEUE: usize = 65_536;
/// Entries written per transaction at most.
const ACTIVITY_BATCH: usize = 4096;

/// One entry for `Store::log_activity`.
#[derive(Debug)]
pub(crate) struct Activity {
    pub at: i64,
    pub action: &'static str,
    pub target: Option<Target>,
    pub detail: String,
}

/// The sending side, kept by the engine.
#[derive(Debug)]
pub(crate) struct ActivityLog {
    queue: mpsc::Sender<Activity>,
    /// Shared with the writer, which adds the entries of a batch the store refused.
    dropped: Arc<AtomicU64>,
}

impl ActivityLog {
    pub(crate) fn new() -> (ActivityLog, ActivityQueue) {
        let (queue, receiver) = mpsc::channel(ACTIVITY_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        (
            ActivityLog {
                queue,
                dropped: Arc::clone(&dropped),
            },
            ActivityQueue { receiver, dropped },
        )
    }

    /// Entries dropped because the queue was full, since start.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues an entry without waiting; drops it when the queue is full.
    pub(crate) fn record(&self, entry: Activity) {
        if let Err(mpsc::error::TrySendError::Full(entry)) = self.queue.try_send(entry) {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed);
            if dropped.is_multiple_of(1000) {
                warn!(
                    action = entry.action,
                    dropped = dropped + 1,
                    "activity log queue full; dropping entries (the bans themselves are recorded)"
                );
            }
        }
    }
}

/// The writer's side of the queue.
pub(crate) struct ActivityQueue {
    receiver: mpsc::Receiver<Activity>,
    dropped: Arc<AtomicU64>,
}

/// Writes queued entries until the engine stops (then writes what is left) or goes away.
pub(crate) async fn write_activity(
    store: Store,
    queue: ActivityQueue,
    mut stop: watch::Receiver<bool>,
) {
    let ActivityQueue {
        mut receiver,
        dropped,
    } = queue;
    let write = |batch: &mut Vec<Activity>| {
        let store = store.clone();
        let dropped = Arc::clone(&dropped);
        let entries = std::mem::take(batch);
        async move { write(&store, entries, &dropped).await }
    };
    let mut batch = Vec::with_capacity(ACTIVITY_BATCH);
    loop {
        tokio::select! {
            biased;
            received = receiver.recv_many(&mut batch, ACTIVITY_BATCH) => {
                if received == 0 {
                    return;
                }
                write(&mut batch).await;
            }
            _ = stop.changed() => {
                while let Ok(entry) = receiver.try_recv() {
                    batch.push(entry);
                    if batch.len() == ACTIVITY_BATCH {
                        write(&mut batch).await;
                    }
                }
                write(&mut batch).await;
                return;
            }
        }
    }
}

/// Writes one batch; a batch the store refuses is counted as dropped.
async fn write(store: &Store, batch: Vec<Activity>, dropped: &AtomicU64) {
    if batch.is_empty() {
        return;
    }
    let entries: Vec<NewActivity<'_>> = batch
        .iter()
        .map(|entry| NewActivity {
            at: entry.at,
            action: entry.action,
            target: entry.target.as_ref(),
            detail: &entry.detail,
        })
        .collect();
    if let Err(error) = store.log_activities(&entries).await {
        dropped.fetch_add(entries.len() as u64, Ordering::Relaxed);
        warn!(entries = entries.len(), %error, "cannot write the activity log; these entries are lost (counted)");
    }
}
