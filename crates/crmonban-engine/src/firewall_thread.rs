//! The one owner of the firewall backend: a dedicated OS thread that receives requests over a
//! bounded channel and answers each through a oneshot.
//!
//! Why a thread and not a task: [`FirewallBackend`] is synchronous (libnftables calls block),
//! and nftables acts on the network namespace of the calling thread. The thread is spawned
//! from the thread that calls [`FirewallThread::spawn`] and so inherits its namespace; every kernel
//! operation of the engine, including reading this host's addresses, runs there.
//!
//! Batching: when an apply request arrives, every other apply request already queued is
//! drained into the same change set and sent as ONE transaction, so a burst of bans costs a
//! few transactions rather than one each. If that combined transaction is refused, the
//! requests are applied one by one, so that one bad request fails alone.

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crmonban_core::Target;
use crmonban_firewall::{
    ApplyReport, ChangeSet, Element, Expiry, FirewallBackend, FirewallError, RuleCounter,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::EngineError;
use crate::host::host_addresses;

/// Requests waiting for the thread; senders wait (back-pressure) when it is full.
const REQUEST_QUEUE: usize = 1024;

/// The most apply requests combined into one transaction.
const MAX_BATCH_REQUESTS: usize = REQUEST_QUEUE;

type Reply<T> = oneshot::Sender<T>;

enum Request {
    Apply {
        changes: ChangeSet,
        reply: Reply<Result<(), FirewallError>>,
    },
    ReplaceAll {
        elements: Vec<Element>,
        /// Room for this many addresses of each family in all (0: as many as `elements`).
        expected: usize,
        reply: Reply<Result<ApplyReport, FirewallError>>,
    },
    /// One part of a restore: never combined with other applies.
    ApplyAlone {
        changes: ChangeSet,
        reply: Reply<Result<ApplyReport, FirewallError>>,
    },
    HoldsNothing {
        reply: Reply<Result<bool, FirewallError>>,
    },
    LayoutPresent {
        reply: Reply<Result<bool, FirewallError>>,
    },
    List {
        reply: Reply<Result<Vec<Element>, FirewallError>>,
    },
    ElementCounts {
        reply: Reply<Result<Option<[usize; 4]>, FirewallError>>,
    },
    Lookup {
        targets: Vec<Target>,
        reply: Reply<Result<Option<Vec<Option<Expiry>>>, FirewallError>>,
    },
    Generation {
        reply: Reply<Result<Option<u32>, FirewallError>>,
    },
    HostAddresses {
        reply: Reply<io::Result<Vec<IpAddr>>>,
    },
    DropCounters {
        reply: Reply<Result<Option<Vec<RuleCounter>>, FirewallError>>,
    },
    Stop {
        reply: Reply<()>,
    },
}

/// A handle on the firewall thread.
pub(crate) struct FirewallThread {
    requests: mpsc::Sender<Request>,
    description: String,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The ruleset generation known to hold the sets whole ([`NO_GENERATION`]: unknown): set
    /// by a check that found them whole, and carried forward by the thread over each of our
    /// own transactions when nobody else committed in between.
    whole: Arc<AtomicU64>,
}

/// [`FirewallThread::whole_generation`] unknown.
const NO_GENERATION: u64 = u64::MAX;

impl FirewallThread {
    /// Starts the thread that owns `backend`, in the calling thread's network namespace.
    pub(crate) fn spawn(
        backend: Box<dyn FirewallBackend>,
    ) -> Result<FirewallThread, FirewallError> {
        let description = backend.describe();
        let (requests, receiver) = mpsc::channel(REQUEST_QUEUE);
        let whole = Arc::new(AtomicU64::new(NO_GENERATION));
        let whole_for_thread = Arc::clone(&whole);
        let thread = std::thread::Builder::new()
            .name("crmonban-firewall".into())
            .spawn(move || serve(backend, receiver, &whole_for_thread))
            .map_err(|e| {
                FirewallError::Unavailable(format!("cannot start the firewall thread: {e}"))
            })?;
        info!(firewall = %description, "firewall thread started");
        Ok(FirewallThread {
            whole,
            requests,
            description,
            thread: Mutex::new(Some(thread)),
        })
    }

    pub(crate) fn description(&self) -> &str {
        &self.description
    }

    async fn call<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T, EngineError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(request(reply))
            .await
            .map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)
    }

    /// Applies `changes` (possibly together with other queued requests, as one transaction).
    pub(crate) async fn apply(&self, changes: ChangeSet) -> Result<(), EngineError> {
        Ok(self
            .call(|reply| Request::Apply { changes, reply })
            .await??)
    }

    pub(crate) async fn replace_all(
        &self,
        elements: Vec<Element>,
    ) -> Result<ApplyReport, EngineError> {
        self.replace_all_expecting(elements, 0).await
    }

    /// See [`FirewallBackend::replace_all_expecting`].
    pub(crate) async fn replace_all_expecting(
        &self,
        elements: Vec<Element>,
        expected: usize,
    ) -> Result<ApplyReport, EngineError> {
        Ok(self
            .call(|reply| Request::ReplaceAll {
                elements,
                expected,
                reply,
            })
            .await??)
    }

    /// Applies `changes` as a transaction of their own (a part of a restore), never combined
    /// with other requests.
    pub(crate) async fn apply_alone(&self, changes: ChangeSet) -> Result<ApplyReport, EngineError> {
        Ok(self
            .call(|reply| Request::ApplyAlone { changes, reply })
            .await??)
    }

    /// See [`FirewallBackend::holds_nothing`].
    pub(crate) async fn holds_nothing(&self) -> Result<bool, EngineError> {
        Ok(self.call(|reply| Request::HoldsNothing { reply }).await??)
    }

    pub(crate) async fn layout_present(&self) -> Result<bool, EngineError> {
        Ok(self
            .call(|reply| Request::LayoutPresent { reply })
            .await??)
    }

    /// The elements of crmonban's sets now (empty when the layout does not exist).
    pub(crate) async fn list(&self) -> Result<Vec<Element>, EngineError> {
        if !self.layout_present().await? {
            return Ok(Vec::new());
        }
        Ok(self.call(|reply| Request::List { reply }).await??)
    }

    /// See [`FirewallBackend::element_counts`](crmonban_firewall::FirewallBackend::element_counts).
    pub(crate) async fn element_counts(&self) -> Result<Option<[usize; 4]>, EngineError> {
        Ok(self
            .call(|reply| Request::ElementCounts { reply })
            .await??)
    }

    /// See [`FirewallBackend::lookup`](crmonban_firewall::FirewallBackend::lookup).
    pub(crate) async fn lookup(
        &self,
        targets: Vec<Target>,
    ) -> Result<Option<Vec<Option<Expiry>>>, EngineError> {
        Ok(self
            .call(|reply| Request::Lookup { targets, reply })
            .await??)
    }

    /// The ruleset generation at which the sets are known whole, if any.
    pub(crate) fn whole_generation(&self) -> Option<u32> {
        u32::try_from(self.whole.load(Ordering::Acquire)).ok()
    }

    /// The sets were found whole (or rebuilt) at `generation`.
    pub(crate) fn set_whole_generation(&self, generation: Option<u32>) {
        self.whole.store(
            generation.map_or(NO_GENERATION, u64::from),
            Ordering::Release,
        );
    }

    /// See [`FirewallBackend::generation`](crmonban_firewall::FirewallBackend::generation).
    pub(crate) async fn generation(&self) -> Result<Option<u32>, EngineError> {
        Ok(self.call(|reply| Request::Generation { reply }).await??)
    }

    /// This host's addresses as seen from the firewall thread's namespace. The outer error
    /// is a stopped thread, the inner one getifaddrs failing.
    pub(crate) async fn host_addresses(&self) -> Result<io::Result<Vec<IpAddr>>, EngineError> {
        self.call(|reply| Request::HostAddresses { reply }).await
    }

    /// See [`FirewallBackend::drop_counters`].
    pub(crate) async fn drop_counters(&self) -> Result<Option<Vec<RuleCounter>>, EngineError> {
        Ok(self.call(|reply| Request::DropCounters { reply }).await??)
    }

    /// Stops the thread and waits for it to end (dropping the backend).
    pub(crate) async fn stop(&self) {
        if self.call(|reply| Request::Stop { reply }).await.is_err() {
            debug!("firewall thread already gone");
        }
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            // It has answered Stop and only drops the backend now; joining is quick, but it
            // blocks, so not on a runtime worker.
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                warn!("the firewall thread ended with a panic");
            }
        }
    }
}

/// The thread's loop: one request at a time, consecutive applies combined.
fn serve(
    mut backend: Box<dyn FirewallBackend>,
    mut receiver: mpsc::Receiver<Request>,
    whole: &AtomicU64,
) {
    let mut held: Option<Request> = None;
    loop {
        let request = match held.take() {
            Some(request) => request,
            None => match receiver.blocking_recv() {
                Some(request) => request,
                None => break,
            },
        };
        match request {
            Request::Apply { changes, reply } => {
                let mut batch = vec![(changes, reply)];
                while batch.len() < MAX_BATCH_REQUESTS {
                    match receiver.try_recv() {
                        Ok(Request::Apply { changes, reply }) => batch.push((changes, reply)),
                        Ok(other) => {
                            held = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                apply_batch(&mut *backend, batch);
                carry_whole(&mut *backend, whole);
            }
            Request::ReplaceAll {
                elements,
                expected,
                reply,
            } => {
                let _ = reply.send(backend.replace_all_expecting(&elements, expected));
                carry_whole(&mut *backend, whole);
            }
            Request::ApplyAlone { changes, reply } => {
                let _ = reply.send(backend.apply(&changes));
                carry_whole(&mut *backend, whole);
            }
            Request::HoldsNothing { reply } => {
                let _ = reply.send(backend.holds_nothing());
            }
            Request::LayoutPresent { reply } => {
                let _ = reply.send(backend.layout_present());
            }
            Request::List { reply } => {
                let _ = reply.send(backend.list());
            }
            Request::ElementCounts { reply } => {
                let _ = reply.send(backend.element_counts());
            }
            Request::Lookup { targets, reply } => {
                let _ = reply.send(backend.lookup(&targets));
            }
            Request::Generation { reply } => {
                let _ = reply.send(backend.generation());
            }
            Request::HostAddresses { reply } => {
                let _ = reply.send(host_addresses());
            }
            Request::DropCounters { reply } => {
                let _ = reply.send(backend.drop_counters());
            }
            Request::Stop { reply } => {
                let _ = reply.send(());
                break;
            }
        }
    }
    debug!("firewall thread stopping");
}

/// After one of our transactions (its callers already answered): when the sets were whole
/// just before it and nobody else committed meanwhile (the generation moved by exactly one),
/// they are whole now. Otherwise the next check reads the elements.
fn carry_whole(backend: &mut dyn FirewallBackend, whole: &AtomicU64) {
    let known = whole.load(Ordering::Acquire);
    if known == NO_GENERATION {
        return;
    }
    let now = match backend.generation() {
        Ok(Some(generation)) => u64::from(generation),
        _ => NO_GENERATION,
    };
    let next = if now == (known + 1) & u64::from(u32::MAX) {
        now
    } else {
        NO_GENERATION
    };
    // A check running meanwhile may have stored a newer value: keep it.
    let _ = whole.compare_exchange(known, next, Ordering::AcqRel, Ordering::Acquire);
}

/// Applies several requests as one transaction, or one by one when that is refused.
fn apply_batch(
    backend: &mut dyn FirewallBackend,
    batch: Vec<(ChangeSet, Reply<Result<(), FirewallError>>)>,
) {
    if let [(changes, _)] = &batch[..] {
        let result = backend.apply(changes).map(|_| ());
        if let Some((_, reply)) = batch.into_iter().next() {
            let _ = reply.send(result);
        }
        return;
    }
    let combined: ChangeSet = batch
        .iter()
        .flat_map(|(changes, _)| changes.changes.iter().copied())
        .collect();
    match backend.apply(&combined) {
        Ok(report) => {
            debug!(
                requests = batch.len(),
                changes = combined.len(),
                added = report.added,
                removed = report.removed,
                "applied a combined batch"
            );
            for (_, reply) in batch {
                let _ = reply.send(Ok(()));
            }
        }
        // Nothing in the batch can succeed alone either.
        Err(error @ (FirewallError::LayoutMissing(_) | FirewallError::Unavailable(_))) => {
            for (_, reply) in batch {
                let _ = reply.send(Err(error.clone()));
            }
        }
        Err(error) => {
            debug!(requests = batch.len(), %error, "combined batch refused; applying one by one");
            for (changes, reply) in batch {
                let _ = reply.send(backend.apply(&changes).map(|_| ()));
            }
        }
    }
}
