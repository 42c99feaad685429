//! [`EngineEvent`]: what the engine tells its subscribers, through one stream with two kinds of
//! subscriber:
//!
//! - **live** ([`Engine::subscribe`](crate::Engine::subscribe)): a bounded broadcast; one that
//!   reads too slowly loses the oldest events (its next `recv` says how many) and never delays
//!   a ban. For views: D-Bus signals, `crmonctl` watching.
//! - **lossless** ([`Engine::subscribe_lossless`](crate::Engine::subscribe_lossless)): a
//!   bounded queue of its own, every event in emission order, with the subscriber's choice when
//!   it is full ([`Overflow`]): the engine waits, or the event is dropped and counted. For
//!   consumers that must not miss an event: SIEM, XDP mirroring, fleet publishing, metrics.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::locks::lock;
use crmonban_core::{Ban, Target};

/// One thing that happened in the engine.
#[derive(Clone, Debug)]
pub enum EngineEvent {
    /// A ban is in force in the kernel and recorded in the store.
    BanAdded {
        /// The ban as it is in force (escalated duration, offence number), shared: every
        /// subscriber's copy of the event is the same allocation, and the event stays small
        /// (the live channel keeps [`EngineOptions::event_capacity`](crate::EngineOptions::event_capacity)
        /// of them allocated).
        ban: Arc<Ban>,
    },
    /// A ban ended; `reason` is `"expired"`, `"unban"`, `"flush"`, `"whitelisted"` or the
    /// unban caller's own reason.
    BanRemoved {
        /// The target no longer banned.
        target: Target,
        /// Why the ban ended.
        reason: String,
    },
    /// A detector reported a hostile act (see [`Engine::report_attack`](crate::Engine::report_attack)).
    AttackDetected {
        /// The address the log line blames.
        addr: IpAddr,
        /// The service whose log it was.
        service: String,
        /// The event kind, as [`EventKind::as_str`](crmonban_core::EventKind::as_str) writes it.
        kind: String,
        /// How many events this announcement stands for (at least 1): detection announces
        /// an address at most once per second, carrying the events in between.
        count: u32,
    },
    /// The database whitelist changed ([`Engine::whitelist_add`](crate::Engine::whitelist_add),
    /// [`Engine::whitelist_remove`](crate::Engine::whitelist_remove)).
    WhitelistChanged {
        /// The address or network added or removed.
        target: Target,
        /// True when added, false when removed.
        added: bool,
        /// The entry's comment (empty for a removal).
        comment: String,
    },
    /// [`Engine::start`](crate::Engine::start) finished: bans are restored, tasks run.
    DaemonStarted,
    /// [`Engine::shutdown`](crate::Engine::shutdown) began.
    DaemonStopping,
    /// The nftables layout had disappeared and was re-created with `bans` bans.
    LayoutRepaired {
        /// Active bans put back into the kernel.
        bans: usize,
    },
}

/// What a lossless subscriber's queue does when it is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// The engine waits for room: nothing is lost, and a slow subscriber slows bans down
    /// (for the store, SIEM with disk spooling, fleet publishing). Such a subscriber must not
    /// wait on the engine itself while it holds an event.
    Wait,
    /// The new event is dropped and counted ([`EventStream::dropped`]); the engine never
    /// waits (for metrics, or a forwarder that resyncs from state).
    DropNewest,
}

/// A lossless subscription ([`Engine::subscribe_lossless`](crate::Engine::subscribe_lossless)):
/// every event from the moment it was made, in the order the engine emitted them, or the
/// drops counted.
#[derive(Debug)]
pub struct EventStream {
    receiver: mpsc::Receiver<EngineEvent>,
    dropped: Arc<AtomicU64>,
}

impl EventStream {
    /// The next event; `None` once the engine is gone.
    pub async fn recv(&mut self) -> Option<EngineEvent> {
        self.receiver.recv().await
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<EngineEvent> {
        self.receiver.try_recv().ok()
    }

    /// Up to `limit` events at once (waits for the first).
    pub async fn recv_many(&mut self, buffer: &mut Vec<EngineEvent>, limit: usize) -> usize {
        self.receiver.recv_many(buffer, limit).await
    }

    /// Events dropped because the queue was full ([`Overflow::DropNewest`]).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

struct Subscriber {
    sender: mpsc::Sender<EngineEvent>,
    overflow: Overflow,
    dropped: Arc<AtomicU64>,
}

/// The lossless subscribers of an engine.
#[derive(Default)]
pub(crate) struct Subscribers {
    list: Mutex<Vec<Subscriber>>,
    count: AtomicUsize,
}

impl Subscribers {
    pub(crate) fn add(&self, capacity: usize, overflow: Overflow) -> EventStream {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let mut list = lock(&self.list);
        list.push(Subscriber {
            sender,
            overflow,
            dropped: Arc::clone(&dropped),
        });
        self.count.store(list.len(), Ordering::Release);
        EventStream { receiver, dropped }
    }

    /// Hands `event` to every subscriber, waiting for room where it asked for that.
    pub(crate) async fn send(&self, event: &EngineEvent) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let targets: Vec<(mpsc::Sender<EngineEvent>, Overflow, Arc<AtomicU64>)> = lock(&self.list)
            .iter()
            .map(|s| (s.sender.clone(), s.overflow, Arc::clone(&s.dropped)))
            .collect();
        let mut closed = false;
        for (sender, overflow, dropped) in targets {
            match overflow {
                Overflow::Wait => closed |= sender.send(event.clone()).await.is_err(),
                Overflow::DropNewest => match sender.try_send(event.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => closed = true,
                },
            }
        }
        if closed {
            let mut list = lock(&self.list);
            list.retain(|s| !s.sender.is_closed());
            self.count.store(list.len(), Ordering::Release);
        }
    }
}
