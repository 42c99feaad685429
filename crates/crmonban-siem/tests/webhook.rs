//! The webhook sink against a local HTTP server (wiremock): what it posts, and how each
//! answer is judged.

mod sink_support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crmonban_core::config::{Secret, SiemTarget};
use crmonban_siem::sink::{Failure, SendError, Sink};
use serde_json::json;
use sink_support::lines;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn webhook(url: String, batch_size: usize, headers_file: Option<PathBuf>) -> Sink {
    Sink::build(&SiemTarget::Webhook {
        url,
        headers: vec![
            (
                "Authorization".to_owned(),
                Secret::new("Bearer s3cret-token"),
            ),
            ("X-Source".to_owned(), Secret::new("crmonban-test")),
        ],
        headers_file,
        batch_size,
        timeout_secs: 1,
    })
    .unwrap()
}

fn events(count: usize) -> Vec<std::sync::Arc<str>> {
    (0..count)
        .map(|i| std::sync::Arc::from(format!(r#"{{"event":{{"action":"ban-added"}},"n":{i}}}"#)))
        .collect()
}

async fn failure(server: &MockServer, status: ResponseTemplate) -> SendError {
    Mock::given(method("POST"))
        .respond_with(status)
        .expect(1)
        .mount(server)
        .await;
    let mut sink = webhook(format!("{}/hook", server.uri()), 1, None);
    let e = sink.send(&events(1)).await.unwrap_err();
    server.verify().await;
    server.reset().await;
    e
}

#[tokio::test]
async fn posts_one_object_with_the_configured_headers() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let headers_file = dir.path().join("headers");
    std::fs::write(
        &headers_file,
        "# kept out of the config\nX-Api-Key: from-file\n",
    )
    .unwrap();
    Mock::given(method("POST"))
        .and(path("/in/events"))
        .and(header("authorization", "Bearer s3cret-token"))
        .and(header("x-source", "crmonban-test"))
        .and(header("x-api-key", "from-file"))
        .and(header("content-type", "application/json"))
        .and(header(
            "user-agent",
            concat!("crmonban/", env!("CARGO_PKG_VERSION")),
        ))
        .and(body_json(json!({"event": {"action": "ban-added"}, "n": 0})))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&server)
        .await;
    let mut sink = webhook(
        format!("{}/in/events?token=abc", server.uri()),
        1,
        Some(headers_file),
    );
    assert_eq!(sink.max_batch(), 1);
    assert_eq!(sink.describe(), format!("webhook {}", server.uri()));
    sink.send(&events(1)).await.unwrap();
    server.verify().await;
}

#[tokio::test]
async fn posts_an_array_when_batching() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_json(json!([
            {"event": {"action": "ban-added"}, "n": 0},
            {"event": {"action": "ban-added"}, "n": 1},
            {"event": {"action": "ban-added"}, "n": 2},
        ])))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    // One shape whatever the count: an array even of one.
    Mock::given(method("POST"))
        .and(body_json(
            json!([{"event": {"action": "ban-added"}, "n": 0}]),
        ))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let mut sink = webhook(server.uri(), 10, None);
    assert_eq!(sink.max_batch(), 10);
    sink.send(&events(3)).await.unwrap();
    sink.send(&events(1)).await.unwrap();
    server.verify().await;
}

#[tokio::test]
async fn answers_are_judged_by_status() {
    let server = MockServer::start().await;
    let retry = |after: Option<u64>| Failure::Retry {
        after: after.map(Duration::from_secs),
    };

    let e = failure(
        &server,
        ResponseTemplate::new(500).insert_header("Retry-After", "7"),
    )
    .await;
    assert_eq!((e.delivered, e.failure), (0, retry(Some(7))));
    assert_eq!(e.message, "HTTP 500");

    let e = failure(
        &server,
        ResponseTemplate::new(429).insert_header("Retry-After", "Thu, 01 Jan 1970 00:00:00 GMT"),
    )
    .await;
    assert_eq!(e.failure, retry(Some(0)), "a date in the past: no pause");

    let e = failure(
        &server,
        ResponseTemplate::new(503).insert_header("Retry-After", "999999"),
    )
    .await;
    assert_eq!(e.failure, retry(Some(3600)), "capped at an hour");

    let e = failure(&server, ResponseTemplate::new(408)).await;
    assert_eq!(e.failure, retry(None));

    let e = failure(&server, ResponseTemplate::new(413)).await;
    assert_eq!(e.failure, Failure::TooLarge);

    // A refusal: the body's start in the message, on one line, without our headers' values.
    let echo = format!(
        "bad event\n\u{1b}[31mAuthorization: Bearer s3cret-token rejected{}",
        "x".repeat(5000)
    );
    let e = failure(&server, ResponseTemplate::new(400).set_body_string(echo)).await;
    assert_eq!(e.failure, Failure::Reject);
    assert!(
        e.message
            .starts_with("HTTP 400: bad event [31mAuthorization: <redacted> rejected"),
        "{e:?}"
    );
    assert!(!e.message.contains("s3cret"));
    assert!(e.message.len() < 400);

    // Redirects are not followed.
    Mock::given(path("/elsewhere"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let location = format!("{}/elsewhere", server.uri());
    let e = failure(
        &server,
        ResponseTemplate::new(307).insert_header("Location", location.as_str()),
    )
    .await;
    assert_eq!(e.failure, retry(None));
    assert!(e.message.contains("redirects are not followed"), "{e:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let mut sink = webhook(server.uri(), 1, None);
    let start = Instant::now();
    let e = sink.send(&events(1)).await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(e.failure, Failure::Retry { after: None });
    assert_eq!(e.message, "no answer within 1 s");
}

#[tokio::test]
async fn no_server_is_a_failure_to_retry() {
    let port = sink_support::free_port();
    let mut sink = webhook(format!("http://127.0.0.1:{port}/hook?key=s3cret"), 1, None);
    let e = sink.send(&lines("x", 1)).await.unwrap_err();
    assert_eq!(e.failure, Failure::Retry { after: None });
    assert!(!e.message.contains("s3cret"), "{e:?}");
    assert!(
        !e.message.contains("/hook"),
        "no URL path in messages: {e:?}"
    );
    assert!(e.message.to_lowercase().contains("connect"), "{e:?}");
}
