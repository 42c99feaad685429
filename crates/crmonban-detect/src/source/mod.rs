//! Log sources: the tasks that read each enabled service's log (a file, or the systemd journal
//! through `journalctl`) and hand every complete line, with the read position after it, to one
//! bounded channel.
//!
//! # Delivery guarantee
//!
//! Lines are handed over a bounded [`mpsc`] channel: when the consumer is slow the readers wait,
//! nothing is dropped and memory stays bounded. Positions are persisted through a
//! [`PositionStore`] that the daemon implements over its database (this crate must not depend on
//! `crmonban-store`):
//!
//! - While running, a position is saved only once every line before it has **left the channel**
//!   (the consumer has received it). Saves are batched: every [`SourceOptions::save_interval`]
//!   and every [`SourceOptions::save_every_lines`] lines.
//! - On [`SourcesHandle::shutdown`] each reader saves the position after the last line it
//!   handed to the channel, then drops its sender. The consumer is expected to drain the
//!   receiver until it returns `None`; then a clean restart neither loses nor repeats a line.
//! - After a crash (`kill -9`) the saved position is at most one save batch behind what the
//!   consumer had received, and never ahead of it: delivery is **at least once**, the lines
//!   repeated after a crash being those received within the last `save_interval` (or
//!   `save_every_lines`) before it. We chose repeats over losses: a lost line is an attack
//!   never seen.
//! - The consumer may also save a **resume point** before that position ([`replay`]): the
//!   detector's windows are in memory and restart empty, so the lines of windows still open
//!   are read again after a crash, marked [`SourceLine::replayed`] up to the read-through
//!   position.
//!
//! # Implementing [`PositionStore`] over `crmonban_store::Store`
//!
//! `crmonban_engine::StorePositions` is that implementation: `load` copies the five fields of
//! the store's `LogPosition`, `save` writes them with `updated_at` = now.
//!
//! Position keys ([`SourcePosition::source`]) are `<service>:<file path>` for files and
//! `<service>:journal:<match>` for the journal, as `crmonban_store::LogPosition` documents: two
//! services reading one file (postfix and dovecot both read `/var/log/mail.log`) each keep
//! their own position. A position saved under the bare path or `journal:<match>` (before
//! positions were per service) is taken over when the service has none of its own.
//!
//! Everything here runs on the caller's tokio runtime: [`Sources::spawn`] must be called from
//! inside one (the engine does; this crate starts nothing on its own).

mod delivery;
mod file;
pub(crate) mod journal;
pub mod replay;

pub use delivery::Acknowledger;
use delivery::{Counters, Delivery, Outlet, Shared, Stopped};

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crmonban_core::config::{JournalMatch, LogSource, ServiceConfig};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Where a source has read up to. For a file: `inode`, `offset` (bytes after the last complete
/// line handed over) and `first_line_hash` (tells a truncated-and-rewritten file from the same
/// file grown); for the journal: `cursor`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SourcePosition {
    /// The position key: the file path, or `journal:<match>`.
    pub source: String,
    /// The file's inode; `None` for the journal.
    pub inode: Option<u64>,
    /// Bytes of the file read through; `None` for the journal.
    pub offset: Option<u64>,
    /// FNV-1a of the file's first line (its first 1024 bytes when longer); `None` for the
    /// journal, or while the file has no complete first line.
    pub first_line_hash: Option<u64>,
    /// The journal cursor of the last entry handed over; `None` for files.
    pub cursor: Option<String>,
}

/// What [`PositionStore`] methods return: a boxed future, so that the trait stays object-safe.
pub type PositionFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// Persistence of read positions, implemented by the daemon over its database (see the module
/// documentation) and by [`MemoryPositions`] for tests. Errors are messages: a failed save is
/// logged and retried with the next batch, a failed load starts the source as if it were new.
pub trait PositionStore: Send + Sync + 'static {
    /// The read-through position of `source`.
    fn load<'a>(&'a self, source: &'a str) -> PositionFuture<'a, Option<SourcePosition>>;
    /// Saves the read-through position of `position.source`, replacing the one saved before.
    fn save<'a>(&'a self, position: &'a SourcePosition) -> PositionFuture<'a, ()>;
    /// The resume point of `source` ([`replay`]), if the consumer saved one.
    fn load_resume<'a>(&'a self, source: &'a str) -> PositionFuture<'a, Option<SourcePosition>>;
    /// Saves the resume point of `source`; `None` removes it (resume at the read-through
    /// position).
    fn save_resume<'a>(
        &'a self,
        source: &'a str,
        point: Option<&'a SourcePosition>,
    ) -> PositionFuture<'a, ()>;
}

/// An in-memory [`PositionStore`]: for tests, and for running without a database.
#[derive(Debug, Default)]
pub struct MemoryPositions {
    positions: Mutex<HashMap<String, SourcePosition>>,
    resume: Mutex<HashMap<String, SourcePosition>>,
    saves: AtomicU64,
}

impl MemoryPositions {
    /// An empty store.
    pub fn new() -> MemoryPositions {
        MemoryPositions::default()
    }

    /// The saved position of `source`, without going through the async trait.
    pub fn get(&self, source: &str) -> Option<SourcePosition> {
        lock(&self.positions).get(source).cloned()
    }

    /// The saved resume point of `source`.
    pub fn get_resume(&self, source: &str) -> Option<SourcePosition> {
        lock(&self.resume).get(source).cloned()
    }

    /// How many saves have been made (of any source).
    pub fn saves(&self) -> u64 {
        self.saves.load(Ordering::Relaxed)
    }
}

impl PositionStore for MemoryPositions {
    fn load<'a>(&'a self, source: &'a str) -> PositionFuture<'a, Option<SourcePosition>> {
        let found = self.get(source);
        Box::pin(async move { Ok(found) })
    }

    fn save<'a>(&'a self, position: &'a SourcePosition) -> PositionFuture<'a, ()> {
        lock(&self.positions).insert(position.source.clone(), position.clone());
        self.saves.fetch_add(1, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }

    fn load_resume<'a>(&'a self, source: &'a str) -> PositionFuture<'a, Option<SourcePosition>> {
        let found = self.get_resume(source);
        Box::pin(async move { Ok(found) })
    }

    fn save_resume<'a>(
        &'a self,
        source: &'a str,
        point: Option<&'a SourcePosition>,
    ) -> PositionFuture<'a, ()> {
        let mut resume = lock(&self.resume);
        match point {
            Some(point) => resume.insert(source.to_owned(), point.clone()),
            None => resume.remove(source),
        };
        Box::pin(async { Ok(()) })
    }
}

/// Extra fields of a journal entry, kept so that the matcher can tell attempts apart.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct JournalFields {
    /// `_PID`.
    pub pid: Option<u32>,
    /// `SYSLOG_IDENTIFIER`, else `_COMM`.
    pub identifier: Option<String>,
    /// Where `MESSAGE` starts in [`SourceLine::line`].
    pub message_start: usize,
}

/// One complete log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLine {
    /// The service whose log this is.
    pub service: Arc<str>,
    /// The line's bytes without its `\n` (nor a `\r` before it). Not necessarily UTF-8: the
    /// matcher decides what to do with invalid text ([`SourceLine::text`]).
    ///
    /// A journal entry is given the shape of a syslog line without its date and host,
    /// `IDENTIFIER[PID]: MESSAGE` (`IDENTIFIER: MESSAGE` without a PID, bare `MESSAGE`
    /// without an identifier), so that patterns written for log files match it too.
    pub line: Vec<u8>,
    /// The line was longer than [`SourceOptions::max_line`] and `line` holds its beginning only.
    pub truncated: bool,
    /// The position after this line.
    pub position: SourcePosition,
    /// The position before this line, given on the first line a source hands over and on the
    /// first after a position reached without a line (a switch of files, skipped bytes);
    /// otherwise it is the previous line's `position`.
    pub before: Option<SourcePosition>,
    /// Read again after a restart from a resume point: the previous run received this line
    /// already ([`replay`]).
    pub replayed: bool,
    /// The line's number in the order lines entered the channel (all sources together),
    /// for [`Acknowledger::acknowledge`].
    pub seq: u64,
    /// When the line was read, Unix microseconds.
    pub received_at: i64,
    /// The time the source itself gives the line (the journal's `__REALTIME_TIMESTAMP`), Unix
    /// microseconds; `None` for files, whose time is in the text.
    pub time: Option<i64>,
    /// Journal entries only.
    pub fields: Option<JournalFields>,
}

impl SourceLine {
    /// The line as text, when it is valid UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.line).ok()
    }
}

/// Tunables; the defaults suit the daemon, tests shorten the intervals.
#[derive(Clone, Debug)]
pub struct SourceOptions {
    /// Files are re-checked this often even without a notification (missed events, a
    /// directory that does not exist yet, an unreadable file).
    pub poll_interval: Duration,
    /// Positions of received lines are saved at least this often.
    pub save_interval: Duration,
    /// ... and after this many lines.
    pub save_every_lines: usize,
    /// Longer lines are delivered cut to this many bytes, with [`SourceLine::truncated`] set.
    pub max_line: usize,
    /// The `journalctl` program.
    pub journalctl: PathBuf,
    /// How long to wait before starting `journalctl` again after it failed or exited.
    pub retry_interval: Duration,
    /// The consumer saves resume points and acknowledges lines ([`Acknowledger`]): positions
    /// are saved only past acknowledged lines (except at shutdown).
    pub acknowledged: bool,
    /// Start at the read-through position even when a resume point is saved: a restart of the
    /// sources within a running consumer (a reload), which kept its windows, must not read
    /// old lines again.
    pub skip_resume: bool,
}

impl Default for SourceOptions {
    fn default() -> SourceOptions {
        SourceOptions {
            poll_interval: Duration::from_secs(1),
            save_interval: Duration::from_millis(500),
            save_every_lines: 256,
            max_line: 1 << 20,
            journalctl: PathBuf::from("journalctl"),
            retry_interval: Duration::from_secs(5),
            acknowledged: false,
            skip_resume: false,
        }
    }
}

/// Counters of one source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceStats {
    /// The service the source reads for.
    pub service: String,
    /// The position key (file path or `journal:<match>`).
    pub source: String,
    /// Lines handed to the channel.
    pub lines: u64,
    /// Bytes of those lines, as delivered (without line ends; truncated lines cut).
    pub bytes: u64,
    /// Lines delivered truncated.
    pub truncated: u64,
    /// Times part of the log could not be read (the file read before a stop was gone at the
    /// start, a truncation without a copy); each is logged at warn.
    pub skipped: u64,
    /// Failures reported (unreadable file, `journalctl` missing or failing, bad entries).
    pub errors: u64,
    /// The last failure, `None` once the source reads again.
    pub last_error: Option<String>,
}

/// The source tasks of all services.
pub struct Sources;

impl Sources {
    /// Starts one task per enabled service (inside the current tokio runtime) with the default
    /// [`SourceOptions`]; lines arrive on the returned receiver, which holds at most `capacity`.
    pub fn spawn(
        services: Vec<(String, ServiceConfig)>,
        positions: Arc<dyn PositionStore>,
        capacity: usize,
    ) -> (mpsc::Receiver<SourceLine>, SourcesHandle) {
        Sources::spawn_with(services, positions, capacity, SourceOptions::default())
    }

    /// [`Sources::spawn`] with explicit options.
    pub fn spawn_with(
        services: Vec<(String, ServiceConfig)>,
        positions: Arc<dyn PositionStore>,
        capacity: usize,
        options: SourceOptions,
    ) -> (mpsc::Receiver<SourceLine>, SourcesHandle) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (stop_tx, stop_rx) = watch::channel(false);
        let acked = Arc::new(AtomicU64::new(if options.acknowledged {
            0
        } else {
            u64::MAX
        }));
        let shared = Shared {
            outlet: Arc::new(Outlet {
                tx,
                sent: Mutex::new(0),
                acked: Arc::clone(&acked),
            }),
            positions,
            options,
            stop: stop_rx,
        };
        let mut tasks = Vec::new();
        let mut counters = Vec::new();
        for (name, service) in services {
            if !service.enabled {
                continue;
            }
            let Some(kind) = choose(&name, &service) else {
                continue;
            };
            let legacy_id = match &kind {
                Chosen::File(path) => path.display().to_string(),
                Chosen::Journal(m) => journal::source_id(m),
            };
            let source_id = format!("{name}:{legacy_id}");
            tracing::info!(
                service = %name,
                source = %legacy_id,
                max_failures = service.max_failures,
                find_time = %crmonban_core::duration::format_duration(service.find_time),
                ban_time = %service.ban_time,
                "watching"
            );
            let count = Arc::new(Counters {
                service: name.clone(),
                source: source_id.clone(),
                lines: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                truncated: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                last_error: Mutex::new(None),
            });
            counters.push(Arc::clone(&count));
            let service_name: Arc<str> = Arc::from(name.as_str());
            let positions = Arc::clone(&shared.positions);
            let shared_for_task = Shared {
                outlet: Arc::clone(&shared.outlet),
                positions: Arc::clone(&shared.positions),
                options: shared.options.clone(),
                stop: shared.stop.clone(),
            };
            tasks.push(tokio::spawn(async move {
                let skip_resume = shared_for_task.options.skip_resume;
                let (saved, resume) =
                    match load(&*positions, &source_id, &legacy_id, skip_resume).await {
                        Ok(found) => found,
                        Err(e) => {
                            count.fail(format!(
                            "cannot load the read position of {source_id} (reading it as new): {e}"
                        ));
                            (None, None)
                        }
                    };
                let delivery = Delivery::new(&shared_for_task, service_name, count, saved, resume);
                match kind {
                    Chosen::File(path) => file::run(path, source_id, delivery).await,
                    Chosen::Journal(m) => journal::run(m, source_id, delivery).await,
                }
            }));
        }
        (
            rx,
            SourcesHandle {
                stop: stop_tx,
                tasks,
                counters,
                acked,
            },
        )
    }
}

/// The read-through position and resume point of `source_id`, taking over a position saved
/// under the key used before positions were per service (`legacy_id`).
async fn load(
    positions: &dyn PositionStore,
    source_id: &str,
    legacy_id: &str,
    skip_resume: bool,
) -> Result<(Option<SourcePosition>, Option<SourcePosition>), String> {
    let saved = match positions.load(source_id).await? {
        Some(saved) => Some(saved),
        None => positions.load(legacy_id).await?.map(|p| SourcePosition {
            source: source_id.to_owned(),
            ..p
        }),
    };
    let resume = match &saved {
        Some(_) if !skip_resume => positions.load_resume(source_id).await?,
        _ => None,
    };
    Ok((saved, resume))
}

enum Chosen {
    File(PathBuf),
    Journal(JournalMatch),
}

/// `auto` is decided once, at start: the file when it exists, else the journal when a match is
/// known, else the file (waited for). A file that appears later does not take over from the
/// journal, which already carries the same messages; a restart re-decides.
fn choose(name: &str, service: &ServiceConfig) -> Option<Chosen> {
    let file = service.log_path.clone().map(Chosen::File);
    let journal = service.journal_match.clone().map(Chosen::Journal);
    let chosen = match service.source {
        LogSource::File => file,
        LogSource::Journal => journal,
        LogSource::Auto => match (&service.log_path, journal) {
            (Some(path), Some(journal)) if !path.exists() => Some(journal),
            (_, journal) => file.or(journal),
        },
    };
    if chosen.is_none() {
        tracing::error!(
            service = name,
            "no log source: neither log_path nor journal_match"
        );
    }
    chosen
}

/// Stops the sources and reports their counters.
pub struct SourcesHandle {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    counters: Vec<Arc<Counters>>,
    acked: Arc<AtomicU64>,
}

impl SourcesHandle {
    /// The consumer's hold on position saving; it holds anything only when the sources were
    /// started with [`SourceOptions::acknowledged`].
    pub fn acknowledger(&self) -> Acknowledger {
        Acknowledger(Arc::clone(&self.acked))
    }

    /// Stops every source and waits until each has saved the position after the last line it
    /// handed over. Drain the receiver afterwards (until `None`) so that those lines are
    /// processed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::error!("a log source task failed: {e}");
            }
        }
    }

    /// Counters per source, in the order the services were given.
    pub fn stats(&self) -> Vec<SourceStats> {
        self.counters.iter().map(|c| c.snapshot()).collect()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere while holding one of these small locks leaves consistent data.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
