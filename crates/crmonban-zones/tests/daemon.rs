//! The `daemon` whitelist source against a real (private) dbus-daemon and a real service on
//! it: `org.example.Trust.IsTrusted(s) -> b` trusts 192.0.2.1 and 2001:db8::1, distrusts
//! everything else, and hangs for 5 s on 192.0.2.99; it counts the questions that reach it.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crmonban_core::config::{self, DaemonBus};
use crmonban_testutil::{PATIENCE, PrivateBus};
use crmonban_zones::{DaemonAnswer, DaemonSource, NoAnswer};

const NAME: &str = "org.example.Trust";
const PATH: &str = "/org/example/Trust";
/// For questions that must be answered: long enough for a loaded machine.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
const HOUR: Duration = Duration::from_secs(3600);

struct Trust {
    calls: Arc<AtomicUsize>,
}

#[zbus::interface(name = "org.example.Trust")]
impl Trust {
    async fn is_trusted(&self, address: String) -> bool {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match address.as_str() {
            "192.0.2.1" | "2001:db8::1" => true,
            "192.0.2.99" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                true
            }
            _ => false,
        }
    }

    async fn not_a_boolean(&self, _address: String) -> String {
        "yes".into()
    }
}

/// The service on `bus` (a D-Bus address), and its call counter.
async fn serve(bus: &str) -> (zbus::Connection, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let connection = zbus::connection::Builder::address(bus)
        .name(NAME)
        .serve_at(
            PATH,
            Trust {
                calls: calls.clone(),
            },
        )
        .build()
        .await
        .expect("serve org.example.Trust");
    (connection, calls)
}

fn config(bus: &str, timeout: Duration) -> config::DaemonSource {
    config::DaemonSource {
        bus: DaemonBus::Address(bus.to_owned()),
        name: NAME.into(),
        path: PATH.into(),
        interface: NAME.into(),
        method: "IsTrusted".into(),
        timeout,
    }
}

fn source(bus: &str, timeout: Duration, cache_ttl: Duration) -> DaemonSource {
    DaemonSource::new(&config(bus, timeout), cache_ttl).expect("a valid source")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn calls(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

#[tokio::test]
async fn answers_come_from_the_service_and_are_cached() {
    let bus = PrivateBus::open();
    let (_service, counter) = serve(bus.address()).await;
    let source = source(bus.address(), ANSWER_TIMEOUT, HOUR);

    assert_eq!(
        source.is_trusted(ip("192.0.2.1")).await,
        DaemonAnswer::Trusted
    );
    assert_eq!(
        source.is_trusted(ip("192.0.2.2")).await,
        DaemonAnswer::NotTrusted
    );
    assert_eq!(
        source.is_trusted(ip("2001:db8::1")).await,
        DaemonAnswer::Trusted
    );
    assert_eq!(calls(&counter), 3);
    assert_eq!(source.cached(), 3);

    // Asked again, trusted and not trusted alike come from the cache; a mapped address is
    // the IPv4 address.
    assert_eq!(
        source.is_trusted(ip("192.0.2.1")).await,
        DaemonAnswer::Trusted
    );
    assert_eq!(
        source.is_trusted(ip("192.0.2.2")).await,
        DaemonAnswer::NotTrusted
    );
    assert_eq!(
        source.is_trusted(ip("::ffff:192.0.2.1")).await,
        DaemonAnswer::Trusted
    );
    assert_eq!(calls(&counter), 3, "a cached answer reached the service");
}

#[tokio::test]
async fn without_a_ttl_every_question_reaches_the_service() {
    let bus = PrivateBus::open();
    let (_service, counter) = serve(bus.address()).await;
    let source = source(bus.address(), ANSWER_TIMEOUT, Duration::ZERO);
    for _ in 0..3 {
        assert!(source.is_trusted(ip("192.0.2.1")).await.is_trusted());
    }
    assert_eq!((calls(&counter), source.cached()), (3, 0));
}

#[tokio::test]
async fn a_hanging_service_is_unanswered_within_the_timeout_and_not_cached() {
    let bus = PrivateBus::open();
    let (_service, counter) = serve(bus.address()).await;
    let timeout = Duration::from_secs(1);
    let source = source(bus.address(), timeout, HOUR);
    // Connected, so the hanging question below is the whole of the wait.
    assert!(source.is_trusted(ip("192.0.2.1")).await.is_trusted());

    let start = Instant::now();
    let answer = source.is_trusted(ip("192.0.2.99")).await;
    let took = start.elapsed();
    assert_eq!(answer, DaemonAnswer::Unanswered(NoAnswer::Timeout(timeout)));
    assert!(!answer.is_trusted());
    assert!(
        took < timeout + Duration::from_secs(1),
        "took {took:?} with a timeout of {timeout:?}"
    );
    assert_eq!(source.cached(), 1, "an unanswered question was cached");

    // Asked again, the service is asked again (through a new connection: the old one left a
    // question hanging).
    let answer = source.is_trusted(ip("192.0.2.99")).await;
    assert_eq!(answer, DaemonAnswer::Unanswered(NoAnswer::Timeout(timeout)));
    eventually("the second question to reach the service", || {
        calls(&counter) == 3
    })
    .await;
}

#[tokio::test]
async fn answers_expire_after_the_ttl() {
    let bus = PrivateBus::open();
    let (_service, counter) = serve(bus.address()).await;
    let ttl = Duration::from_millis(200);
    let source = source(bus.address(), ANSWER_TIMEOUT, ttl);
    let start = Instant::now();
    assert!(source.is_trusted(ip("192.0.2.1")).await.is_trusted());
    assert_eq!(calls(&counter), 1);
    loop {
        assert!(source.is_trusted(ip("192.0.2.1")).await.is_trusted());
        if calls(&counter) == 2 {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the answer was still cached after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The cache held the answer for the whole TTL (it was stored after `start`).
    assert!(
        start.elapsed() >= ttl,
        "expired after {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn an_absent_service_is_unanswered_until_it_appears() {
    let bus = PrivateBus::open();
    let timeout = Duration::from_secs(2);
    let source = source(bus.address(), timeout, HOUR);
    let start = Instant::now();
    let answer = source.is_trusted(ip("192.0.2.1")).await;
    assert!(
        start.elapsed() < timeout + Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    match &answer {
        DaemonAnswer::Unanswered(NoAnswer::Failed(reason)) => assert!(
            reason.contains("org.freedesktop.DBus.Error.ServiceUnknown"),
            "{reason}"
        ),
        other => panic!("expected the bus's ServiceUnknown, got {other:?}"),
    }
    assert_eq!(source.cached(), 0);

    let (_service, counter) = serve(bus.address()).await;
    assert_eq!(
        source.is_trusted(ip("192.0.2.1")).await,
        DaemonAnswer::Trusted
    );
    assert_eq!(calls(&counter), 1);
}

#[tokio::test]
async fn a_reply_that_is_not_a_boolean_is_unanswered() {
    let bus = PrivateBus::open();
    let (_service, _counter) = serve(bus.address()).await;
    let source = DaemonSource::new(
        &config::DaemonSource {
            method: "NotABoolean".into(),
            ..config(bus.address(), ANSWER_TIMEOUT)
        },
        HOUR,
    )
    .unwrap();
    assert_eq!(
        source.is_trusted(ip("192.0.2.1")).await,
        DaemonAnswer::Unanswered(NoAnswer::BadReply("s".into()))
    );
    let unknown = DaemonSource::new(
        &config::DaemonSource {
            method: "Nonexistent".into(),
            ..config(bus.address(), ANSWER_TIMEOUT)
        },
        HOUR,
    )
    .unwrap();
    match unknown.is_trusted(ip("192.0.2.1")).await {
        DaemonAnswer::Unanswered(NoAnswer::Failed(reason)) => {
            assert!(reason.contains("UnknownMethod"), "{reason}")
        }
        other => panic!("expected UnknownMethod, got {other:?}"),
    }
    assert_eq!((source.cached(), unknown.cached()), (0, 0));
}

#[tokio::test]
async fn the_cache_stays_bounded_forgetting_the_oldest_answer() {
    let bus = PrivateBus::open();
    let (_service, counter) = serve(bus.address()).await;
    let source = source(bus.address(), ANSWER_TIMEOUT, HOUR).with_cache_capacity(4);
    for i in 1..=10 {
        let answer = source.is_trusted(ip(&format!("198.51.100.{i}"))).await;
        assert_eq!(answer, DaemonAnswer::NotTrusted);
        assert!(source.cached() <= 4, "{} answers cached", source.cached());
    }
    assert_eq!(calls(&counter), 10);
    source.is_trusted(ip("198.51.100.10")).await;
    assert_eq!(calls(&counter), 10, "the newest answer was forgotten");
    source.is_trusted(ip("198.51.100.1")).await;
    assert_eq!(calls(&counter), 11, "the oldest answer was kept");
}

/// The bus is reached through a path that first leads nowhere, then to one dbus-daemon, then
/// (that daemon gone) to another: the source connects when it can and again after losing
/// its connection.
#[tokio::test]
async fn the_source_connects_when_it_can_and_again_after_losing_the_bus() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bus");
    let address = format!("unix:path={}", socket.display());
    let source = source(&address, ANSWER_TIMEOUT, Duration::ZERO);

    match source.is_trusted(ip("192.0.2.1")).await {
        DaemonAnswer::Unanswered(NoAnswer::Connect { bus, .. }) => {
            assert_eq!(bus, format!("the bus at {address}"))
        }
        other => panic!("expected a connection failure, got {other:?}"),
    }

    let first = PrivateBus::open();
    point(&socket, &first);
    let (_service, counter) = serve(first.address()).await;
    assert_eq!(
        source.is_trusted(ip("192.0.2.1")).await,
        DaemonAnswer::Trusted
    );
    assert_eq!(calls(&counter), 1);

    drop(first);
    let second = PrivateBus::open();
    point(&socket, &second);
    let (_service, counter) = serve(second.address()).await;
    let start = Instant::now();
    while source.is_trusted(ip("192.0.2.1")).await != DaemonAnswer::Trusted {
        assert!(
            start.elapsed() < PATIENCE,
            "no answer over the new bus after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(calls(&counter) >= 1);
}

/// Makes `link` lead to `bus`'s socket.
fn point(link: &Path, bus: &PrivateBus) {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(bus.dir().join("bus"), link).expect("symlink to the bus socket");
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < PATIENCE,
            "waited {:?} for {what}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the source logs, captured from a subscriber set for this (single-threaded) test.
#[derive(Clone, Default)]
struct Log(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn questions_left_unanswered_are_warned_about_once_a_minute() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let bus = PrivateBus::open();
    let source = source(bus.address(), ANSWER_TIMEOUT, HOUR);
    for last in 1..=3 {
        let answer = source.is_trusted(ip(&format!("192.0.2.{last}"))).await;
        assert!(matches!(answer, DaemonAnswer::Unanswered(_)), "{answer:?}");
    }
    let text = log.text();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(
        warnings[0].contains(&format!(
            "whitelist daemon source {NAME} {PATH} {NAME}.IsTrusted on the bus at {} did not \
             answer for 192.0.2.1: the call failed: org.freedesktop.DBus.Error.ServiceUnknown",
            bus.address()
        )),
        "{text}"
    );
    assert!(
        warnings[0].ends_with("192.0.2.1 is not trusted for this decision"),
        "{text}"
    );
}
