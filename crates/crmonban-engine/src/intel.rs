//! Intel after the ban: [`IntelService`] learns who attacked without ever slowing a ban
//! (DESIGN.md §7). It hears [`EngineEvent::BanAdded`] on a lossless subscription that drops
//! rather than waits, and puts each banned address in a bounded queue of its own that drops
//! the *oldest* waiting address when full (the newest attacker is the most interesting one);
//! every drop is counted. A dispatcher gathers at most `[intel] concurrency` addresses at a
//! time (crmonban-intel's [`Gatherer`], every source bounded by its timeout), caches each
//! result in the store's intel table for `cache_ttl_secs`, reports detector bans to AbuseIPDB
//! when that is on, and gives the engine a one-line summary that later bans of the same
//! address carry in their reason. A hanging WHOIS or DNS server therefore holds at most
//! `concurrency` gathers; the queue before them stays bounded and bans never wait for it.
//!
//! `crmonctl intel` asks through [`IntelService::intel`]: the cached record when fresh, else
//! a gather now (at most [`ON_DEMAND`] at once).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crmonban_core::config::IntelConfig;
use crmonban_core::{Ban, BanSource, Target, unix_now};
use crmonban_intel::{Gatherer, Intel, Problem, Source, gather_deadline};
use crmonban_store::StoreError;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::locks::{lock, read, write};
use crate::{Engine, EngineEvent, Overflow};

/// Gathers asked for by `crmonctl intel` at the same time, at most.
pub const ON_DEMAND: usize = 8;
/// Events the subscription holds before it drops (counted with the queue's drops).
const SUBSCRIPTION: usize = 4096;
/// Addresses whose summary the engine remembers for later ban reasons.
const SUMMARIES: usize = 10_000;
/// How often old cached intel is pruned, and how many rows are kept at most.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const MAX_CACHED: u64 = 200_000;

/// Why [`IntelService::intel`] could not answer.
#[derive(Debug, thiserror::Error)]
pub enum IntelQueryError {
    /// No source is configured.
    #[error(
        "intel is not enabled: turn on a source in [intel] (geoip_enabled, rdns_enabled, \
         whois_enabled, or an AbuseIPDB/Shodan key)"
    )]
    NotEnabled,
    /// A network was given.
    #[error("{0} is a network: intel is gathered about single addresses")]
    NotAnAddress(Target),
    /// Too many gathers are running for callers already.
    #[error("{ON_DEMAND} intel requests are being gathered already; try again shortly")]
    Busy,
    /// The cache could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counters of the intel service, for `crmonctl stats` and status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IntelStats {
    /// Addresses waiting now.
    pub waiting: u64,
    /// Addresses dropped because the queue (or its subscription) was full.
    pub dropped: u64,
    /// Addresses gathered.
    pub gathered: u64,
    /// Addresses whose cached intel was still fresh.
    pub from_cache: u64,
    /// Sources that failed for an address (each counted).
    pub source_failures: u64,
    /// Results the store did not take.
    pub store_failures: u64,
    /// Bans reported to AbuseIPDB, reports that failed, and reports the limits skipped.
    pub reported: u64,
    /// Reports AbuseIPDB did not take.
    pub report_failures: u64,
    /// Reports skipped by the daily budget or the 15-minute rule.
    pub reports_skipped: u64,
}

/// One banned address to learn about (and perhaps report).
struct Job {
    ip: IpAddr,
    gather: bool,
    report: Option<(Option<String>, String)>,
}

/// The intel side of a running engine; see the module documentation.
pub struct IntelService {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    stop: watch::Sender<bool>,
}

struct Shared {
    engine: Engine,
    gatherer: RwLock<Arc<Gatherer>>,
    settings: RwLock<Settings>,
    queue: Mutex<VecDeque<Job>>,
    wake: Notify,
    on_demand: Semaphore,
    subscription_dropped: AtomicU64,
    dropped: AtomicU64,
    gathered: AtomicU64,
    from_cache: AtomicU64,
    source_failures: AtomicU64,
    store_failures: AtomicU64,
    reported: AtomicU64,
    report_failures: AtomicU64,
}

#[derive(Clone)]
struct Settings {
    config: IntelConfig,
    auto: bool,
    history: Duration,
    concurrency: Arc<Semaphore>,
}

impl IntelService {
    /// Starts the service's tasks on the current runtime: `auto` is `[general] auto_intel`,
    /// `history` how long cached intel is kept at most (`[general] history_days`).
    pub fn start(
        engine: &Engine,
        config: &IntelConfig,
        auto: bool,
        history: Duration,
    ) -> IntelService {
        let gatherer = Gatherer::new(config);
        log_sources(&gatherer, auto);
        let shared = Arc::new(Shared {
            engine: engine.clone(),
            gatherer: RwLock::new(Arc::new(gatherer)),
            settings: RwLock::new(Settings {
                config: config.clone(),
                auto,
                history,
                concurrency: Arc::new(Semaphore::new(config.concurrency)),
            }),
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            on_demand: Semaphore::new(ON_DEMAND),
            subscription_dropped: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            gathered: AtomicU64::new(0),
            from_cache: AtomicU64::new(0),
            source_failures: AtomicU64::new(0),
            store_failures: AtomicU64::new(0),
            reported: AtomicU64::new(0),
            report_failures: AtomicU64::new(0),
        });
        let (stop, _) = watch::channel(false);
        let events = engine.subscribe_lossless(SUBSCRIPTION, Overflow::DropNewest);
        let tasks = vec![
            tokio::spawn(listen(Arc::clone(&shared), events, stop.subscribe())),
            tokio::spawn(dispatch(Arc::clone(&shared), stop.subscribe())),
            tokio::spawn(prune(Arc::clone(&shared), stop.subscribe())),
        ];
        IntelService {
            shared,
            tasks: Mutex::new(tasks),
            stop,
        }
    }

    /// Applies a new configuration: the sources are built again (key files and lists
    /// re-read), queued addresses stay queued, gathers in flight finish on the old sources.
    pub fn reconfigure(&self, config: &IntelConfig, auto: bool, history: Duration) {
        let gatherer = Gatherer::new(config);
        log_sources(&gatherer, auto);
        *write(&self.shared.gatherer) = Arc::new(gatherer);
        let mut settings = write(&self.shared.settings);
        let concurrency = if settings.config.concurrency == config.concurrency {
            Arc::clone(&settings.concurrency)
        } else {
            Arc::new(Semaphore::new(config.concurrency))
        };
        *settings = Settings {
            config: config.clone(),
            auto,
            history,
            concurrency,
        };
    }

    /// What is known about `ip`: the cached record while it is fresh (unless `refresh`),
    /// else gathered now (bounded by the sources' timeouts) and cached.
    pub async fn intel(&self, target: &Target, refresh: bool) -> Result<Intel, IntelQueryError> {
        let Target::Addr(ip) = *target else {
            return Err(IntelQueryError::NotAnAddress(*target));
        };
        let settings = self.shared.settings();
        if !settings.config.any_source() {
            return Err(IntelQueryError::NotEnabled);
        }
        if !refresh && let Some(intel) = self.shared.cached(ip, &settings.config).await? {
            return Ok(intel);
        }
        let _permit = self
            .shared
            .on_demand
            .try_acquire()
            .map_err(|_| IntelQueryError::Busy)?;
        let gatherer = self.shared.gatherer();
        let mut intel = self.shared.gather(&gatherer, ip, &settings.config).await;
        // Say why a source gave nothing (a missing database and how to get it) to the one
        // asking, without storing it with every record.
        intel.problems.extend(gatherer.problems());
        Ok(intel)
    }

    /// The cached record of `target` while it is fresh; never gathers.
    pub async fn cached(&self, target: &Target) -> Result<Option<Intel>, IntelQueryError> {
        let Target::Addr(ip) = *target else {
            return Err(IntelQueryError::NotAnAddress(*target));
        };
        let settings = self.shared.settings();
        if !settings.config.any_source() {
            return Err(IntelQueryError::NotEnabled);
        }
        Ok(self.shared.cached(ip, &settings.config).await?)
    }

    /// The sources in use, and what is wrong with them now.
    pub fn sources(&self) -> (Vec<Source>, Vec<String>) {
        let gatherer = self.shared.gatherer();
        let problems = gatherer.problems().into_iter().map(|p| p.message).collect();
        (gatherer.sources(), problems)
    }

    /// The service's counters.
    pub fn stats(&self) -> IntelStats {
        let s = &self.shared;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        IntelStats {
            waiting: lock(&s.queue).len() as u64,
            dropped: load(&s.dropped) + load(&s.subscription_dropped),
            gathered: load(&s.gathered),
            from_cache: load(&s.from_cache),
            source_failures: load(&s.source_failures),
            store_failures: load(&s.store_failures),
            reported: load(&s.reported),
            report_failures: load(&s.report_failures),
            reports_skipped: s.gatherer().reports_skipped(),
        }
    }

    /// Stops the tasks; gathers in flight are abandoned (their addresses were banned
    /// already; intel is best effort).
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks: Vec<_> = lock(&self.tasks).drain(..).collect();
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Drop for IntelService {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

impl Shared {
    fn gatherer(&self) -> Arc<Gatherer> {
        Arc::clone(&read(&self.gatherer))
    }

    fn settings(&self) -> Settings {
        read(&self.settings).clone()
    }

    /// Queues what a new ban asks for: intel when `auto_intel` is on, a report when
    /// reporting is on and a detector decided the ban. Networks are not gathered about.
    fn enqueue(&self, ban: &Ban) {
        let Target::Addr(ip) = ban.target else {
            return;
        };
        let gather = read(&self.settings).auto;
        let report = (ban.source == BanSource::Detector && self.gatherer().reports())
            .then(|| (ban.service.clone(), ban.reason.clone()));
        if !gather && report.is_none() {
            return;
        }
        let capacity = read(&self.settings).config.queue_size;
        {
            let mut queue = lock(&self.queue);
            while queue.len() >= capacity {
                queue.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            queue.push_back(Job { ip, gather, report });
        }
        self.wake.notify_one();
    }

    /// The cached record of `ip` if it is younger than `cache_ttl_secs`.
    async fn cached(&self, ip: IpAddr, config: &IntelConfig) -> Result<Option<Intel>, StoreError> {
        let Some((json, at)) = self.engine.store().get_intel(&ip.to_string()).await? else {
            return Ok(None);
        };
        let age = unix_now().saturating_sub(at);
        if u64::try_from(age).is_ok_and(|age| Duration::from_secs(age) < config.cache_ttl) {
            match serde_json::from_str::<Intel>(&json) {
                Ok(intel) => return Ok(Some(intel)),
                Err(e) => debug!(%ip, %e, "cached intel does not parse; gathering again"),
            }
        }
        Ok(None)
    }

    /// Gathers about `ip` (bounded by the sources' own limits and, as a backstop, by
    /// [`gather_deadline`]), caches the result and tells the engine its summary.
    async fn gather(&self, gatherer: &Gatherer, ip: IpAddr, config: &IntelConfig) -> Intel {
        let now = unix_now();
        let intel =
            match tokio::time::timeout(gather_deadline(config), gatherer.gather(ip, now)).await {
                Ok(intel) => intel,
                Err(_) => {
                    let mut intel = Intel::empty(ip, now);
                    intel.problems.push(Problem {
                        source: Source::Whois,
                        message: "gathering took longer than every source's limit together".into(),
                    });
                    intel
                }
            };
        self.gathered.fetch_add(1, Ordering::Relaxed);
        self.source_failures
            .fetch_add(intel.problems.len() as u64, Ordering::Relaxed);
        self.engine.note_intel_summary(ip, intel.summary());
        match serde_json::to_string(&intel) {
            Ok(json) => {
                if let Err(e) = self
                    .engine
                    .store()
                    .put_intel(&ip.to_string(), &json, now)
                    .await
                {
                    self.store_failures.fetch_add(1, Ordering::Relaxed);
                    debug!(%ip, %e, "cannot cache intel");
                }
            }
            Err(e) => warn!(%ip, %e, "cannot encode intel"),
        }
        intel
    }

    /// One queued address: cached or gathered, then reported.
    async fn process(&self, job: Job) {
        let settings = self.settings();
        let gatherer = self.gatherer();
        // Nothing to learn (GeoIP on by default, its files absent): not even a cache read, so
        // that a default daemon's bans cost the database nothing more.
        if job.gather && gatherer.can_learn() {
            match self.cached(job.ip, &settings.config).await {
                Ok(Some(intel)) => {
                    self.from_cache.fetch_add(1, Ordering::Relaxed);
                    self.engine.note_intel_summary(job.ip, intel.summary());
                }
                _ => {
                    self.gather(&gatherer, job.ip, &settings.config).await;
                }
            }
        }
        if let Some((service, reason)) = job.report {
            match gatherer.report(job.ip, service.as_deref(), &reason).await {
                Ok(true) => {
                    self.reported.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => {}
                Err(e) => {
                    self.report_failures.fetch_add(1, Ordering::Relaxed);
                    debug!(ip = %job.ip, %e, "AbuseIPDB report failed");
                }
            }
        }
    }
}

/// Moves new bans from the engine's event stream into the queue.
async fn listen(
    shared: Arc<Shared>,
    mut events: crate::EventStream,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(EngineEvent::BanAdded { ban }) => shared.enqueue(&ban),
                Some(_) => {}
                None => return,
            },
            _ = stop.changed() => return,
        }
        shared
            .subscription_dropped
            .store(events.dropped(), Ordering::Relaxed);
    }
}

/// Runs queued jobs, at most `concurrency` at a time. A permit is taken before a job leaves
/// the queue, so that while every gather hangs the waiting jobs stay in the queue, where the
/// oldest is dropped when it is full.
async fn dispatch(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut running = JoinSet::new();
    'jobs: loop {
        while running.try_join_next().is_some() {}
        let concurrency = Arc::clone(&read(&shared.settings).concurrency);
        let permit = loop {
            tokio::select! {
                permit = Arc::clone(&concurrency).acquire_owned() => break permit,
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = stop.changed() => break 'jobs,
            }
        };
        let Ok(permit) = permit else { break };
        let job = loop {
            if let Some(job) = lock(&shared.queue).pop_front() {
                break job;
            }
            tokio::select! {
                _ = shared.wake.notified() => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = stop.changed() => break 'jobs,
            }
        };
        let shared = Arc::clone(&shared);
        running.spawn(async move {
            shared.process(job).await;
            drop(permit);
        });
    }
    running.abort_all();
}

/// Deletes cached intel older than the history, and beyond [`MAX_CACHED`] rows.
async fn prune(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stop.changed() => return,
        }
        let history = read(&shared.settings).history;
        let before =
            unix_now().saturating_sub(i64::try_from(history.as_secs()).unwrap_or(i64::MAX));
        match shared.engine.store().prune_intel(before, MAX_CACHED).await {
            Ok(0) => {}
            Ok(n) => debug!(rows = n, "pruned cached intel"),
            Err(e) => debug!(%e, "cannot prune cached intel"),
        }
    }
}

/// Logs which sources are on and what is wrong with them, once per start or reload.
fn log_sources(gatherer: &Gatherer, auto: bool) {
    let sources: Vec<&str> = gatherer.sources().iter().map(|s| s.as_str()).collect();
    info!(
        auto_intel = auto,
        sources = %sources.join(", "),
        reports = gatherer.reports(),
        "intel"
    );
    // The GeoIP files' state is logged by GeoIP itself, as it finds or changes.
    for problem in gatherer.setup_problems() {
        warn!(source = %problem.source, "intel: {}", problem.message);
    }
}

/// The summaries the engine appends to later ban reasons of the same address: bounded,
/// the oldest forgotten first.
#[derive(Default)]
pub(crate) struct Summaries {
    map: HashMap<IpAddr, Arc<str>>,
    order: VecDeque<IpAddr>,
}

impl Summaries {
    pub(crate) fn get(&self, ip: &IpAddr) -> Option<Arc<str>> {
        self.map.get(ip).cloned()
    }

    /// `reason`, with what intel said about the address when it is known: "... [DE, AS24940
    /// Hetzner Online GmbH, hosting]". Networks keep their reason.
    pub(crate) fn reason(&self, target: &Target, reason: &str) -> String {
        match target {
            Target::Addr(ip) => match self.map.get(ip) {
                Some(summary) => format!("{reason} [{summary}]"),
                None => reason.to_owned(),
            },
            Target::Net(_) => reason.to_owned(),
        }
    }

    pub(crate) fn put(&mut self, ip: IpAddr, summary: Option<String>) {
        let Some(summary) = summary else {
            if self.map.remove(&ip).is_some() {
                self.order.retain(|known| *known != ip);
            }
            return;
        };
        if self.map.insert(ip, summary.into()).is_none() {
            self.order.push_back(ip);
            while self.order.len() > SUMMARIES {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_stay_bounded_and_forget_the_oldest() {
        let mut s = Summaries::default();
        let ip = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0B00_0000 + i));
        for i in 0..(SUMMARIES as u32 + 10) {
            s.put(ip(i), Some(format!("AS{i}")));
        }
        assert_eq!(s.map.len(), SUMMARIES);
        assert!(s.get(&ip(0)).is_none());
        assert_eq!(s.get(&ip(SUMMARIES as u32 + 9)).as_deref(), Some("AS10009"));
        s.put(ip(SUMMARIES as u32 + 9), None);
        assert!(s.get(&ip(SUMMARIES as u32 + 9)).is_none());
        assert_eq!(s.order.len(), s.map.len());
    }
}
