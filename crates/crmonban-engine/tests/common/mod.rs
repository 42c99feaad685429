//! Shared helpers for the engine's integration tests: a recording firewall the test can still
//! reach after the engine took it, a store in a temporary directory, and waiting for events.

#![allow(dead_code)] // each test file uses a different part

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crmonban_core::config::{BanDuration, Config};
use crmonban_core::{BanSource, Target};
use crmonban_engine::{
    BanRequest, Engine, EngineBuilder, EngineEvent, EngineOptions, RecordingBackend as Recording,
    Running,
};
use crmonban_firewall::{
    ApplyReport, Call, ChangeSet, Element, FirewallBackend, FirewallError, RecordingBackend,
};
use crmonban_store::Store;
pub use crmonban_testutil::PATIENCE;
use tempfile::TempDir;
use tokio::sync::broadcast;

pub fn t(s: &str) -> Target {
    Target::parse(s).unwrap()
}

/// The `i`-th of many stored addresses: even ones IPv4 from 12.0.0.0, odd ones IPv6 from
/// 2001:db8::.
pub fn seeded_address(i: u32) -> Target {
    if i.is_multiple_of(2) {
        Target::from(std::net::Ipv4Addr::from(0x0C00_0000 + i))
    } else {
        Target::from(std::net::Ipv6Addr::from(
            0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i),
        ))
    }
}

/// A [`RecordingBackend`] shared between the engine (which owns a clone) and the test.
/// `delay` makes every apply take that long, like a real nft transaction.
#[derive(Clone, Default)]
pub struct SharedBackend {
    inner: Arc<Mutex<RecordingBackend>>,
    delay: Duration,
}

impl SharedBackend {
    pub fn new() -> SharedBackend {
        SharedBackend::default()
    }

    pub fn with_apply_delay(delay: Duration) -> SharedBackend {
        SharedBackend {
            delay,
            ..SharedBackend::default()
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, RecordingBackend> {
        self.inner.lock().unwrap()
    }

    pub fn contains(&self, target: &str) -> bool {
        self.lock().contains(&t(target))
    }

    /// What the kernel would hold now (empty while the layout is missing).
    pub fn elements(&self) -> Vec<Element> {
        self.lock().list().unwrap_or_default()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls().to_vec()
    }

    pub fn apply_calls(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| matches!(c, Call::Apply(_)))
            .count()
    }

    pub fn replace_all_calls(&self) -> Vec<Vec<Element>> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::ReplaceAll(elements) => Some(elements),
                _ => None,
            })
            .collect()
    }
}

impl FirewallBackend for SharedBackend {
    fn ensure_layout(&mut self) -> Result<(), FirewallError> {
        self.lock().ensure_layout()
    }
    fn apply(&mut self, changes: &ChangeSet) -> Result<ApplyReport, FirewallError> {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        self.lock().apply(changes)
    }
    fn replace_all(&mut self, elements: &[Element]) -> Result<ApplyReport, FirewallError> {
        self.lock().replace_all(elements)
    }
    fn layout_present(&mut self) -> Result<bool, FirewallError> {
        self.lock().layout_present()
    }
    fn list(&mut self) -> Result<Vec<Element>, FirewallError> {
        self.lock().list()
    }
    fn teardown(&mut self) -> Result<(), FirewallError> {
        self.lock().teardown()
    }
    fn describe(&self) -> String {
        "shared recording backend (test)".into()
    }
}

/// A TCP server on 127.0.0.1 that accepts, reads what the client sends first and then says
/// nothing for two minutes (a WHOIS server or webhook that hangs); counts connections.
pub async fn silent_server() -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                tokio::time::sleep(Duration::from_secs(120)).await;
            });
        }
    });
    (addr, connections)
}

/// A store in a fresh temporary directory (kept alive by the returned guard).
pub async fn temp_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("crmonban.db")).await.unwrap();
    (dir, store)
}

/// `config` running over a recording firewall and a store in `dir`, without log sources.
pub async fn start_without_detection(config: Config, dir: &TempDir) -> Running {
    EngineBuilder::new(config)
        .firewall(Box::new(Recording::new()))
        .store(Store::open(&dir.path().join("crmonban.db")).await.unwrap())
        .without_detection()
        .start()
        .await
        .unwrap()
}

/// A detector's ten-minute ssh ban of 11.0.0.`i` (and on: 11.0.1.0 for 256).
pub fn ssh_ban_of(i: u32) -> BanRequest {
    BanRequest {
        target: Target::Addr(std::net::Ipv4Addr::from(0x0B00_0000 + i).into()),
        duration: Some(BanDuration::from_secs(600)),
        reason: "test".into(),
        source: BanSource::Detector,
        service: Some("ssh".into()),
    }
}

/// Options with short periods so tests do not wait long.
pub fn quick_options() -> EngineOptions {
    EngineOptions {
        expiry_interval: Duration::from_millis(200),
        repair_interval: Duration::from_millis(200),
        ..EngineOptions::default()
    }
}

/// An engine over a shared recording backend and a temporary store.
pub struct Harness {
    pub dir: TempDir,
    pub store: Store,
    pub fw: SharedBackend,
    pub engine: Engine,
    pub events: broadcast::Receiver<EngineEvent>,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(quick_options(), SharedBackend::new()).await
    }

    pub async fn start_with(options: EngineOptions, fw: SharedBackend) -> Harness {
        let (dir, store) = temp_store().await;
        let engine = Engine::start(options, Box::new(fw.clone()), store.clone())
            .await
            .unwrap();
        let events = engine.subscribe();
        Harness {
            dir,
            store,
            fw,
            engine,
            events,
        }
    }
}

pub fn request(target: &str, duration: Option<BanDuration>) -> BanRequest {
    BanRequest {
        target: t(target),
        duration,
        reason: "test".into(),
        source: BanSource::Dbus,
        service: None,
    }
}

pub fn secs(n: u64) -> Option<BanDuration> {
    Some(BanDuration::Timed(Duration::from_secs(n)))
}

/// The next event that `matches`, skipping others; panics after [`PATIENCE`] (generous: a
/// loaded machine must not fail a correct engine).
pub async fn wait_for(
    events: &mut broadcast::Receiver<EngineEvent>,
    what: &str,
    matches: impl Fn(&EngineEvent) -> bool,
) -> EngineEvent {
    let wait = PATIENCE;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(event)) if matches(&event) => return event,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(broadcast::error::RecvError::Closed)) => {
                panic!("event bus closed waiting for {what}")
            }
            Err(_) => panic!("no {what} within {wait:?}"),
        }
    }
}

/// Every event already waiting, without blocking.
pub fn drain(events: &mut broadcast::Receiver<EngineEvent>) -> Vec<EngineEvent> {
    let mut out = Vec::new();
    while let Ok(event) = events.try_recv() {
        out.push(event);
    }
    out
}
