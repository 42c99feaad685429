//! Unit tests of `http.rs`.
use super::*;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "k3y-s3cr3t-0123456789abcdef";

fn client(base: &str, timeout: Duration) -> ApiClient {
    ApiClient::new("TestAPI", base, Secret::new(KEY), timeout).expect("client")
}

#[test]
fn retry_after_is_capped_at_a_day() {
    let now = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777);
    assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
    assert_eq!(retry_after("999999", now), Some(MAX_RETRY_AFTER));
    assert_eq!(retry_after("soon", now), None);
}

#[test]
fn clean_text_strips_controls_and_cuts_at_a_character_boundary() {
    assert_eq!(
        clean_text("  a\r\n\tb\u{1b}[31m c\u{7}  ", 100),
        "a b[31m c"
    );
    assert_eq!(clean_text("ééé", 5), "éé");
    assert_eq!(
        clean_text(&"x".repeat(1000), MAX_TEXT_BYTES).len(),
        MAX_TEXT_BYTES
    );
}

#[test]
fn bad_base_urls_are_refused_with_the_service_named() {
    for bad in ["api.example.com", "ftp://example.com", "http://x/?a=1"] {
        let err = ApiClient::new("TestAPI", bad, Secret::new(KEY), Duration::from_secs(1))
            .expect_err(bad)
            .to_string();
        assert!(
            err.starts_with(&format!("TestAPI base URL {bad:?}: ")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_hanging_server_is_cut_at_the_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let api = client(&server.uri(), Duration::from_millis(300));
    let started = Instant::now();
    let url = api.url("/slow", &[("key", KEY)]).expect("url");
    let err = api.send(api.get(url, &[]), &[]).await.expect_err("timeout");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, IntelError::Timeout { .. }), "{err:?}");
    assert_eq!(err.to_string(), "TestAPI: no answer within 300ms");
}

#[tokio::test]
async fn a_refused_connection_is_io_without_url_or_key() {
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let api = client(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2));
    let url = api
        .url("/shodan/host/203.0.113.7", &[("key", KEY)])
        .expect("url");
    let err = api.send(api.get(url, &[]), &[]).await.expect_err("refused");
    let text = err.to_string();
    assert!(matches!(err, IntelError::Io { .. }), "{err:?}");
    assert!(text.starts_with("TestAPI: "), "{text}");
    assert!(!text.contains(KEY) && !text.contains("/shodan"), "{text}");
    assert!(!format!("{err:?}").contains(KEY));
}

#[tokio::test]
async fn other_statuses_are_refusals_with_a_clean_excerpt_and_no_key() {
    let server = MockServer::start().await;
    Mock::given(path("/echo"))
        .respond_with(ResponseTemplate::new(500).set_body_string(format!(
            "<html>\n\u{1b}[31mInternal error for /echo?key={KEY}\n{}",
            "x".repeat(5000)
        )))
        .mount(&server)
        .await;
    Mock::given(path("/json"))
        .respond_with(
            ResponseTemplate::new(422)
                .set_body_string(r#"{"errors":[{"detail":"The ip address must be a valid IPv4 or IPv6 address.","status":422}]}"#),
        )
        .mount(&server)
        .await;
    let api = client(&server.uri(), Duration::from_secs(2));
    let url = api.url("/echo", &[("key", KEY)]).expect("url");
    let err = api.send(api.get(url, &[]), &[]).await.expect_err("500");
    let text = err.to_string();
    assert!(
        text.starts_with("TestAPI: HTTP 500: <html> [31mInternal error for /echo?key=<key>"),
        "{text}"
    );
    assert!(!text.contains(KEY) && !text.contains('\n') && !text.contains('\u{1b}'));
    assert!(text.len() < 300, "{}", text.len());

    let url = api.url("/json", &[]).expect("url");
    let err = api.send(api.get(url, &[]), &[]).await.expect_err("422");
    assert_eq!(
        err.to_string(),
        "TestAPI: HTTP 422: The ip address must be a valid IPv4 or IPv6 address."
    );
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    let server = MockServer::start().await;
    Mock::given(path("/moved"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("Location", "http://198.51.100.1/steal"),
        )
        .mount(&server)
        .await;
    let api = client(&server.uri(), Duration::from_secs(2));
    let url = api.url("/moved", &[]).expect("url");
    let err = api
        .send(api.get(url, &[("Key", KEY)]), &[])
        .await
        .expect_err("redirect");
    assert_eq!(err.to_string(), "TestAPI: HTTP 302 (redirect not followed)");
}

/// A server that streams an endless chunked body, without Content-Length.
async fn endless_chunked_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request).await;
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
        // 64 × 64 KiB = 4 MiB, far past the limit; the client hangs up first.
        for _ in 0..64 {
            if stream.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_whether_announced_or_streamed() {
    let server = MockServer::start().await;
    Mock::given(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b' '; MAX_BODY_BYTES + 1]))
        .mount(&server)
        .await;
    let api = client(&server.uri(), Duration::from_secs(5));
    let url = api.url("/big", &[]).expect("url");
    let err = api.send(api.get(url, &[]), &[]).await.expect_err("big");
    assert_eq!(
        err.to_string(),
        "TestAPI answer: malformed answer: larger than 1048576 bytes; not read further"
    );

    let api = client(&endless_chunked_server().await, Duration::from_secs(5));
    let url = api.url("/stream", &[]).expect("url");
    let err = api.send(api.get(url, &[]), &[]).await.expect_err("stream");
    assert!(matches!(err, IntelError::Malformed { .. }), "{err:?}");
}

#[tokio::test]
async fn requests_carry_our_user_agent_and_forms_are_encoded() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&server)
        .await;
    let api = client(&server.uri(), Duration::from_secs(2));
    let url = api.url("/report", &[]).expect("url");
    let answer = api
        .send(
            api.post_form(url, &[], &[("comment", "a b&c=d é"), ("ip", "2001:db8::1")]),
            &[],
        )
        .await
        .expect("answer");
    assert_eq!(answer.status, StatusCode::OK);
    let requests = server.received_requests().await.expect("recorded");
    let request = &requests[0];
    assert_eq!(
        request
            .headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok()),
        Some(concat!("crmonban/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(
        String::from_utf8_lossy(&request.body),
        "comment=a+b%26c%3Dd+%C3%A9&ip=2001%3Adb8%3A%3A1"
    );
}

#[test]
fn an_https_client_builds_on_rustls_with_the_system_certificates() {
    // No provider is installed by anyone else in this process: ApiClient installs ring's.
    let client = ApiClient::new(
        "Test",
        "https://api.example.net/v1",
        Secret::new("k"),
        Duration::from_secs(1),
    );
    assert!(client.is_ok(), "{:?}", client.err());
    assert!(rustls::crypto::CryptoProvider::get_default().is_some());
}
