//! The worker loop with real sinks: retries with backoff, permanent refusals, batches halved
//! on 413, a bounded queue while the target hangs or is gone, delivery once it is back, and
//! draining on stop.

mod sink_support;

use std::sync::Arc;
use std::time::Duration;

use crmonban_core::config::{Secret, SiemTarget, SyslogProtocol};
use crmonban_siem::queue::{QueueLimits, TargetQueue};
use crmonban_siem::sink::Sink;
use crmonban_siem::worker::{Backoff, run_with};
use serde_json::Value;
use sink_support::{eventually, network, read_frames, syslog};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wiremock::matchers::method;
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

const FAST: Backoff = Backoff {
    base: Duration::from_millis(20),
    cap: Duration::from_millis(100),
};

struct Running {
    queue: Arc<TargetQueue>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    fn start(sink: Sink, max_events: usize, backoff: Backoff, drain: Duration) -> Running {
        let queue = Arc::new(TargetQueue::new(QueueLimits::events(max_events)));
        Running::with_queue(sink, queue, backoff, drain)
    }

    fn with_queue(
        sink: Sink,
        queue: Arc<TargetQueue>,
        backoff: Backoff,
        drain: Duration,
    ) -> Running {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run_with(sink, Arc::clone(&queue), stopped, drain, backoff));
        Running { queue, stop, task }
    }

    /// Stops the worker and waits for it (failing after the test's patience).
    async fn stop(self) -> Arc<TargetQueue> {
        // Err when the worker has returned already (it was stopped before).
        let _ = self.stop.send(true);
        tokio::time::timeout(sink_support::PATIENCE, self.task)
            .await
            .expect("the worker returns")
            .unwrap();
        self.queue
    }
}

fn webhook(url: String, batch_size: usize, timeout_secs: u64) -> Sink {
    Sink::build(&SiemTarget::Webhook {
        url,
        headers: vec![(
            "Authorization".to_owned(),
            Secret::new("Bearer s3cret-token"),
        )],
        headers_file: None,
        batch_size,
        timeout_secs,
    })
    .unwrap()
}

fn event(n: usize) -> String {
    format!(r#"{{"n":{n}}}"#)
}

/// The `n` of each event each request carried, request by request.
async fn posted(server: &MockServer) -> Vec<Vec<u64>> {
    let requests = server.received_requests().await.unwrap();
    requests
        .iter()
        .map(|r| match r.body_json::<Value>().unwrap() {
            Value::Array(items) => items.iter().map(|i| i["n"].as_u64().unwrap()).collect(),
            object => vec![object["n"].as_u64().unwrap()],
        })
        .collect()
}

#[tokio::test]
async fn a_failed_post_is_retried_after_the_pause_the_server_asks_for() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let worker = Running::start(
        webhook(server.uri(), 1, 5),
        100,
        FAST,
        Duration::from_secs(1),
    );
    worker.queue.push(event(0));
    eventually("the failure", || worker.queue.snapshot().failures == 1).await;
    let failed_at = tokio::time::Instant::now();
    let snapshot = worker.queue.snapshot();
    assert!(!snapshot.up);
    assert_eq!(snapshot.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(snapshot.queued, 1, "kept for the retry");
    eventually("the delivery", || worker.queue.snapshot().sent == 1).await;
    assert!(
        failed_at.elapsed() >= Duration::from_millis(900),
        "Retry-After: 1 honoured, not the 20 ms backoff: {:?}",
        failed_at.elapsed()
    );
    let queue = worker.stop().await;
    let snapshot = queue.snapshot();
    assert!(snapshot.up);
    assert_eq!(
        (snapshot.sent, snapshot.failures, snapshot.queued),
        (1, 1, 0)
    );
    assert_eq!(posted(&server).await, [vec![0], vec![0]]);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_they_pass() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let worker = Running::start(
        webhook(server.uri(), 2, 5),
        100,
        FAST,
        Duration::from_secs(1),
    );
    for n in 0..3 {
        worker.queue.push(event(n));
    }
    eventually("the delivery", || worker.queue.snapshot().sent == 3).await;
    let queue = worker.stop().await;
    assert_eq!(queue.snapshot().failures, 3);
    let requests = posted(&server).await;
    assert_eq!(
        requests.len(),
        5,
        "one request at a time, no storm: {requests:?}"
    );
    assert_eq!(requests[3], [0, 1]);
    assert_eq!(requests[4], [2]);
}

#[tokio::test]
async fn a_refused_event_is_dropped_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_string("invalid token s3cret-token"))
        .expect(1)
        .mount(&server)
        .await;
    let worker = Running::start(
        webhook(server.uri(), 1, 5),
        100,
        FAST,
        Duration::from_secs(1),
    );
    worker.queue.push(event(0));
    eventually("the refusal", || worker.queue.snapshot().rejected == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let queue = worker.stop().await;
    server.verify().await;
    let snapshot = queue.snapshot();
    assert_eq!(
        (snapshot.sent, snapshot.failures, snapshot.queued),
        (0, 0, 0)
    );
    assert_eq!(
        snapshot.last_error.as_deref(),
        Some("HTTP 400: invalid token <redacted>")
    );
}

/// Answers 413 to arrays of more than two events.
struct AtMostTwo;

impl Match for AtMostTwo {
    fn matches(&self, request: &Request) -> bool {
        matches!(request.body_json::<Value>(), Ok(Value::Array(items)) if items.len() <= 2)
    }
}

#[tokio::test]
async fn a_batch_too_large_is_sent_again_in_halves() {
    let server = MockServer::start().await;
    Mock::given(AtMostTwo)
        .respond_with(ResponseTemplate::new(200))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(413))
        .mount(&server)
        .await;
    let queue = Arc::new(TargetQueue::new(QueueLimits::events(100)));
    for n in 0..5 {
        queue.push(event(n));
    }
    let worker = Running::with_queue(
        webhook(server.uri(), 4, 5),
        queue,
        FAST,
        Duration::from_secs(1),
    );
    eventually("the delivery", || worker.queue.snapshot().sent == 5).await;
    let queue = worker.stop().await;
    let snapshot = queue.snapshot();
    assert_eq!((snapshot.rejected, snapshot.failures), (0, 0));
    assert_eq!(
        posted(&server).await,
        [vec![0, 1, 2, 3], vec![0, 1], vec![2, 3], vec![4]]
    );
}

#[tokio::test]
async fn a_single_event_too_large_is_refused() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(413))
        .expect(1)
        .mount(&server)
        .await;
    let worker = Running::start(
        webhook(server.uri(), 1, 5),
        100,
        FAST,
        Duration::from_secs(1),
    );
    worker.queue.push(event(0));
    eventually("the refusal", || worker.queue.snapshot().rejected == 1).await;
    let queue = worker.stop().await;
    server.verify().await;
    assert_eq!(queue.snapshot().last_error.as_deref(), Some("HTTP 413"));
}

#[tokio::test]
async fn a_hanging_server_times_out_and_the_queue_stays_bounded() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .mount(&server)
        .await;
    let max_events = 10;
    let worker = Running::start(
        webhook(server.uri(), 1, 1),
        max_events,
        FAST,
        Duration::ZERO,
    );
    for n in 0..3 * max_events {
        worker.queue.push(event(n));
        assert!(worker.queue.len() <= max_events);
    }
    let snapshot = worker.queue.snapshot();
    assert_eq!(snapshot.dropped, 2 * max_events as u64);
    assert_eq!(snapshot.queued, max_events);
    eventually("a timed-out attempt", || {
        worker.queue.snapshot().failures >= 1
    })
    .await;
    let snapshot = worker.queue.snapshot();
    assert_eq!(snapshot.last_error.as_deref(), Some("no answer within 1 s"));
    assert!(!snapshot.up);
    assert_eq!(snapshot.sent, 0);
    // Stopping does not wait for the hanging request beyond the drain time (none here).
    let started = tokio::time::Instant::now();
    let queue = worker.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(queue.len(), max_events);
}

#[tokio::test]
async fn a_collector_that_comes_back_gets_what_is_still_queued_oldest_first() {
    let port = sink_support::free_port();
    let address = format!("127.0.0.1:{port}");
    let max_events = 8;
    let sink = syslog(network(&address, SyslogProtocol::Tcp, None));
    let worker = Running::start(sink, max_events, FAST, Duration::from_secs(1));
    for n in 0..3 * max_events {
        worker.queue.push(format!("event {n}"));
    }
    eventually("failed attempts", || worker.queue.snapshot().failures >= 2).await;
    let snapshot = worker.queue.snapshot();
    assert_eq!(snapshot.queued, max_events);
    assert_eq!(snapshot.dropped, 2 * max_events as u64);
    assert!(!snapshot.up);
    let error = snapshot.last_error.unwrap();
    assert!(error.contains("Connection refused"), "{error}");

    // The collector starts on the same port.
    let listener = TcpListener::bind(&address).await.unwrap();
    let (mut stream, _) = tokio::time::timeout(sink_support::PATIENCE, listener.accept())
        .await
        .expect("the worker reconnects")
        .unwrap();
    let expected: Vec<String> = (2 * max_events..3 * max_events)
        .map(|n| format!("event {n}"))
        .collect();
    assert_eq!(read_frames(&mut stream, max_events).await, expected);
    eventually("the acknowledgement", || {
        worker.queue.snapshot().sent == max_events as u64
    })
    .await;
    assert!(worker.queue.snapshot().up);

    // Events pushed now go straight through on the same connection.
    worker.queue.push("live".to_owned());
    assert_eq!(read_frames(&mut stream, 1).await, ["live"]);
    let queue = worker.stop().await;
    assert_eq!(queue.len(), 0);
}

#[tokio::test]
async fn on_stop_what_is_queued_is_sent_before_returning() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let queue = Arc::new(TargetQueue::new(QueueLimits::events(1000)));
    for n in 0..200 {
        queue.push(format!("event {n}"));
    }
    let sink = syslog(network(&address, SyslogProtocol::Tcp, None));
    let worker = Running::with_queue(sink, queue, FAST, Duration::from_secs(10));
    // Stopped at once: the queue is drained all the same.
    worker.stop.send(true).unwrap();
    let (mut stream, _) = listener.accept().await.unwrap();
    let frames = read_frames(&mut stream, 200).await;
    let queue = worker.stop().await;
    assert_eq!(frames.first().map(String::as_str), Some("event 0"));
    assert_eq!(frames.last().map(String::as_str), Some("event 199"));
    assert_eq!(queue.snapshot().sent, 200);
    assert!(queue.is_empty());
}

#[tokio::test]
async fn on_stop_an_absent_target_is_given_the_drain_time_and_no_more() {
    let address = format!("127.0.0.1:{}", sink_support::free_port());
    let sink = syslog(network(&address, SyslogProtocol::Tcp, None));
    // A long backoff: stopping must cut the pause short, then give up at the drain's end.
    let slow = Backoff {
        base: Duration::from_secs(600),
        cap: Duration::from_secs(600),
    };
    let worker = Running::start(sink, 100, slow, Duration::from_millis(500));
    for n in 0..3 {
        worker.queue.push(format!("event {n}"));
    }
    eventually("a failed attempt", || worker.queue.snapshot().failures >= 1).await;
    let started = tokio::time::Instant::now();
    let queue = worker.stop().await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400), "drained for {took:?}");
    assert!(took < Duration::from_secs(5), "drained for {took:?}");
    assert_eq!(queue.len(), 3, "nothing lost from the queue itself");
    assert!(
        queue.snapshot().failures >= 2,
        "it tried again while draining"
    );
}
