//! The activity log writer: entries ("ban", "unban", "flush", ...) go through a bounded queue
//! to one task that writes them to the store, so that a ban never waits for the activity
//! log. When the queue is full (a flood of bans on a slow disk) entries are dropped and
//! counted; the bans themselves are in the `bans` table whatever happens here.

use std::sync::atomic::{AtomicU64, Ordering};

use crmonban_core::Target;
use crmonban_store::Store;
use tokio::sync::{mpsc, watch};
use tracing::warn;

/// Entries waiting for the writer.
pub(crate) const ACTIVITY_QUEUE: usize = 4096;

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
    dropped: AtomicU64,
}

impl ActivityLog {
    pub(crate) fn new() -> (ActivityLog, mpsc::Receiver<Activity>) {
        let (queue, receiver) = mpsc::channel(ACTIVITY_QUEUE);
        (
            ActivityLog {
                queue,
                dropped: AtomicU64::new(0),
            },
            receiver,
        )
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

/// Writes queued entries until the engine stops (then writes what is left) or goes away.
pub(crate) async fn write_activity(
    store: Store,
    mut receiver: mpsc::Receiver<Activity>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            entry = receiver.recv() => match entry {
                Some(entry) => write(&store, entry).await,
                None => return,
            },
            _ = stop.changed() => {
                while let Ok(entry) = receiver.try_recv() {
                    write(&store, entry).await;
                }
                return;
            }
        }
    }
}

async fn write(store: &Store, entry: Activity) {
    if let Err(error) = store
        .log_activity(entry.at, entry.action, entry.target.as_ref(), &entry.detail)
        .await
    {
        warn!(action = entry.action, %error, "cannot write the activity log");
    }
}
