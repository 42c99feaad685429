//! Unit tests of `whois.rs`.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("fixtures/", $name, ".txt")).to_vec()
    };
}

/// What a fixture server does once it has read the query.
enum Reply {
    Answer(Vec<u8>),
    /// Accepts, reads the query and says nothing for 60 s.
    Hang,
}

/// A WHOIS server on 127.0.0.1 answering every connection alike.
struct FixtureServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    queries: Arc<Mutex<Vec<String>>>,
}

impl FixtureServer {
    async fn start(reply: Reply) -> FixtureServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let connections = Arc::new(AtomicUsize::new(0));
        let queries = Arc::new(Mutex::new(Vec::new()));
        let reply = Arc::new(reply);
        let (counter, log) = (connections.clone(), queries.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let (reply, log) = (reply.clone(), log.clone());
                tokio::spawn(async move {
                    let mut query = Vec::new();
                    let mut buffer = [0u8; 512];
                    while !query.contains(&b'\n') && query.len() < 1024 {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => query.extend_from_slice(&buffer[..n]),
                        }
                    }
                    log.lock()
                        .expect("query log")
                        .push(String::from_utf8_lossy(&query).into_owned());
                    match &*reply {
                        Reply::Answer(bytes) => {
                            let _ = stream.write_all(bytes).await;
                            let _ = stream.shutdown().await;
                        }
                        Reply::Hang => tokio::time::sleep(Duration::from_secs(60)).await,
                    }
                });
            }
        });
        FixtureServer {
            addr,
            connections,
            queries,
        }
    }

    async fn answering(bytes: Vec<u8>) -> FixtureServer {
        FixtureServer::start(Reply::Answer(bytes)).await
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn queries(&self) -> Vec<String> {
        self.queries.lock().expect("query log").clone()
    }
}

fn client(options: WhoisOptions, routes: &[(&str, &FixtureServer)]) -> WhoisClient {
    let mut client = WhoisClient::new(options).expect("valid options");
    for (host, server) in routes {
        client.route(host, server.addr);
    }
    client
}

fn starting_at(start: &str) -> WhoisOptions {
    WhoisOptions {
        start: start.into(),
        timeout: Duration::from_millis(1000),
        ..WhoisOptions::default()
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

fn crlf(bytes: Vec<u8>) -> Vec<u8> {
    String::from_utf8(bytes)
        .expect("an ASCII fixture")
        .replace('\n', "\r\n")
        .into_bytes()
}

#[tokio::test]
async fn iana_refers_to_arin_whose_most_specific_network_is_kept() {
    let iana = FixtureServer::answering(fixture!("iana-8.8.8.8")).await;
    // ARIN ends its lines with CRLF.
    let arin = FixtureServer::answering(crlf(fixture!("arin-8.8.8.8"))).await;
    let client = client(
        starting_at("whois.iana.org"),
        &[("whois.iana.org", &iana), ("whois.arin.net", &arin)],
    );
    let whois = client.lookup(ip("8.8.8.8")).await.expect("a record");
    assert_eq!(whois.servers, ["whois.iana.org", "whois.arin.net"]);
    assert_eq!(whois.registry.as_deref(), Some("ARIN"));
    assert_eq!(whois.organization.as_deref(), Some("Google LLC"));
    assert_eq!(whois.network_name.as_deref(), Some("GOGL"));
    assert_eq!(whois.range.as_deref(), Some("8.8.8.0 - 8.8.8.255"));
    assert_eq!(whois.country.as_deref(), Some("US"));
    assert_eq!(
        whois.abuse_contact.as_deref(),
        Some("network-abuse@google.com")
    );
    // Each registry got the query it wants.
    assert_eq!(iana.queries(), ["8.8.8.8\r\n"]);
    assert_eq!(arin.queries(), ["n + 8.8.8.8\r\n"]);
}

#[tokio::test]
async fn iana_refers_to_ripe_whose_comment_gives_the_abuse_contact() {
    let iana = FixtureServer::answering(fixture!("iana-193.0.6.139")).await;
    let ripe = FixtureServer::answering(fixture!("ripe-193.0.6.139")).await;
    let client = client(
        starting_at("whois.iana.org"),
        &[("whois.iana.org", &iana), ("whois.ripe.net", &ripe)],
    );
    let whois = client.lookup(ip("193.0.6.139")).await.expect("a record");
    assert_eq!(whois.servers, ["whois.iana.org", "whois.ripe.net"]);
    assert_eq!(whois.registry.as_deref(), Some("RIPE"));
    assert_eq!(
        whois.organization.as_deref(),
        Some("Reseaux IP Europeens Network Coordination Centre (RIPE NCC)")
    );
    assert_eq!(whois.network_name.as_deref(), Some("RIPE-NCC"));
    assert_eq!(whois.range.as_deref(), Some("193.0.0.0 - 193.0.7.255"));
    assert_eq!(whois.country.as_deref(), Some("NL"));
    assert_eq!(whois.abuse_contact.as_deref(), Some("abuse@ripe.net"));
    assert_eq!(ripe.queries(), ["--no-personal 193.0.6.139\r\n"]);
}

#[tokio::test]
async fn ipv6_address_is_asked_of_iana_then_ripe() {
    let iana = FixtureServer::answering(fixture!("iana-2001-67c-2e8")).await;
    let ripe = FixtureServer::answering(fixture!("ripe-2001-67c-2e8")).await;
    let client = client(
        starting_at("whois.iana.org"),
        &[("whois.iana.org", &iana), ("whois.ripe.net", &ripe)],
    );
    let whois = client
        .lookup(ip("2001:67c:2e8:22::c100:68b"))
        .await
        .expect("a record");
    assert_eq!(whois.servers, ["whois.iana.org", "whois.ripe.net"]);
    assert_eq!(whois.range.as_deref(), Some("2001:67c:2e8::/48"));
    assert_eq!(whois.network_name.as_deref(), Some("RIPE-NCC"));
    assert_eq!(whois.country.as_deref(), Some("NL"));
    assert_eq!(whois.abuse_contact.as_deref(), Some("abuse@ripe.net"));
    assert_eq!(iana.queries(), ["2001:67c:2e8:22::c100:68b\r\n"]);
    assert_eq!(
        ripe.queries(),
        ["--no-personal 2001:67c:2e8:22::c100:68b\r\n"]
    );
}

#[tokio::test]
async fn apnic_abuse_contact_comes_from_the_irt_object() {
    let apnic = FixtureServer::answering(fixture!("apnic-202.12.29.1")).await;
    let client = client(
        starting_at("whois.apnic.net"),
        &[("whois.apnic.net", &apnic)],
    );
    let whois = client.lookup(ip("202.12.29.1")).await.expect("a record");
    assert_eq!(whois.servers, ["whois.apnic.net"]);
    assert_eq!(whois.registry.as_deref(), Some("APNIC"));
    assert_eq!(whois.abuse_contact.as_deref(), Some("abuse@apnic.net"));
    assert_eq!(
        whois.organization.as_deref(),
        Some("Asia Pacific Network Information Centre")
    );
    assert_eq!(whois.network_name.as_deref(), Some("APNIC-AP"));
    assert_eq!(whois.range.as_deref(), Some("202.12.28.0 - 202.12.29.255"));
    assert_eq!(whois.country.as_deref(), Some("AU"));
    assert_eq!(apnic.queries(), ["202.12.29.1\r\n"]);
}

#[tokio::test]
async fn lacnic_owner_and_abuse_c_email_are_read_from_a_latin1_answer() {
    let lacnic = FixtureServer::answering(fixture!("lacnic-200.1.114.5")).await;
    let client = client(
        starting_at("whois.lacnic.net"),
        &[("whois.lacnic.net", &lacnic)],
    );
    let whois = client.lookup(ip("200.1.114.5")).await.expect("a record");
    assert_eq!(whois.registry.as_deref(), Some("LACNIC"));
    assert_eq!(
        whois.organization.as_deref(),
        Some("Universidad Técnica Federico Santa María")
    );
    assert_eq!(whois.range.as_deref(), Some("200.1.112.0/20"));
    assert_eq!(whois.country.as_deref(), Some("CL"));
    assert_eq!(whois.abuse_contact.as_deref(), Some("abuse@usm.cl"));
    // LACNIC networks have no name.
    assert_eq!(whois.network_name, None);
}

#[tokio::test]
async fn afrinic_organisation_comes_from_the_org_object() {
    let afrinic = FixtureServer::answering(fixture!("afrinic-196.216.2.1")).await;
    let client = client(
        starting_at("whois.afrinic.net"),
        &[("whois.afrinic.net", &afrinic)],
    );
    let whois = client.lookup(ip("196.216.2.1")).await.expect("a record");
    assert_eq!(whois.registry.as_deref(), Some("AFRINIC"));
    assert_eq!(
        whois.organization.as_deref(),
        Some("African Network Information Center - (AFRINIC)")
    );
    assert_eq!(whois.network_name.as_deref(), Some("AFRINIC-Ops"));
    assert_eq!(whois.range.as_deref(), Some("196.216.2.0 - 196.216.3.255"));
    assert_eq!(whois.country.as_deref(), Some("MU"));
    assert_eq!(whois.abuse_contact.as_deref(), Some("abusepoc@afrinic.net"));
}

#[tokio::test]
async fn arin_legacy_block_is_referred_on_to_ripe() {
    let iana = FixtureServer::answering(fixture!("iana-192.162.140.10")).await;
    let arin = FixtureServer::answering(fixture!("arin-192.162.140.10")).await;
    let ripe = FixtureServer::answering(fixture!("ripe-192.162.140.10")).await;
    let client = client(
        starting_at("whois.iana.org"),
        &[
            ("whois.iana.org", &iana),
            ("whois.arin.net", &arin),
            ("whois.ripe.net", &ripe),
        ],
    );
    let whois = client.lookup(ip("192.162.140.10")).await.expect("a record");
    assert_eq!(
        whois.servers,
        ["whois.iana.org", "whois.arin.net", "whois.ripe.net"]
    );
    assert_eq!(whois.registry.as_deref(), Some("RIPE"));
    assert_eq!(whois.organization.as_deref(), Some("Example Hosting B.V."));
    assert_eq!(whois.network_name.as_deref(), Some("EXAMPLE-HOSTING-NET"));
    assert_eq!(
        whois.abuse_contact.as_deref(),
        Some("abuse@example-hosting.nl")
    );
}

#[tokio::test]
async fn referrals_stop_after_max_referrals() {
    let iana = FixtureServer::answering(fixture!("iana-192.162.140.10")).await;
    let arin = FixtureServer::answering(fixture!("arin-192.162.140.10")).await;
    let ripe = FixtureServer::answering(fixture!("ripe-192.162.140.10")).await;
    let client = client(
        WhoisOptions {
            max_referrals: 1,
            ..starting_at("whois.iana.org")
        },
        &[
            ("whois.iana.org", &iana),
            ("whois.arin.net", &arin),
            ("whois.ripe.net", &ripe),
        ],
    );
    let whois = client.lookup(ip("192.162.140.10")).await.expect("a record");
    assert_eq!(whois.servers, ["whois.iana.org", "whois.arin.net"]);
    assert_eq!(whois.registry.as_deref(), Some("ARIN"));
    assert_eq!(
        whois.organization.as_deref(),
        Some("RIPE Network Coordination Centre")
    );
    assert_eq!(ripe.connections(), 0);
}

#[tokio::test]
async fn a_referral_loop_stops_at_the_second_server() {
    let iana = FixtureServer::answering(fixture!("iana-8.8.8.8")).await;
    let mut looping = fixture!("arin-8.8.8.8");
    looping.extend_from_slice(b"\nReferralServer:  whois://whois.iana.org\n");
    let arin = FixtureServer::answering(looping).await;
    let client = client(
        starting_at("whois.iana.org"),
        &[("whois.iana.org", &iana), ("whois.arin.net", &arin)],
    );
    let whois = client.lookup(ip("8.8.8.8")).await.expect("a record");
    assert_eq!(whois.servers, ["whois.iana.org", "whois.arin.net"]);
    assert_eq!(whois.organization.as_deref(), Some("Google LLC"));
    assert_eq!(iana.connections(), 1);
    assert_eq!(arin.connections(), 1);
}

#[tokio::test]
async fn a_referral_to_another_port_or_to_an_address_is_not_followed() {
    let elsewhere = FixtureServer::answering(fixture!("ripe-193.0.6.139")).await;
    for referral in [
        "whois://whois.example-isp.net:6379".to_owned(),
        "whois://127.0.0.1".to_owned(),
        format!("whois://127.0.0.1:{}", elsewhere.addr.port()),
    ] {
        let mut answer = fixture!("arin-8.8.8.8");
        answer.extend_from_slice(format!("\nReferralServer:  {referral}\n").as_bytes());
        let arin = FixtureServer::answering(answer).await;
        let client = client(
            starting_at("whois.arin.net"),
            &[
                ("whois.arin.net", &arin),
                ("whois.example-isp.net", &elsewhere),
            ],
        );
        let whois = client.lookup(ip("8.8.8.8")).await.expect("ARIN's record");
        assert_eq!(whois.servers, ["whois.arin.net"], "{referral}");
        assert_eq!(whois.organization.as_deref(), Some("Google LLC"));
    }
    assert_eq!(elsewhere.connections(), 0);
}

#[tokio::test]
async fn a_refusal_is_an_error_and_the_server_is_left_alone() {
    let ripe = FixtureServer::answering(fixture!("ripe-error-201")).await;
    let client = client(starting_at("whois.ripe.net"), &[("whois.ripe.net", &ripe)]);
    match client.lookup(ip("193.0.6.139")).await {
        Err(IntelError::Refused { what, message }) => {
            assert_eq!(what, "whois.ripe.net:43");
            assert!(message.contains("ERROR:201: access denied"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let again = client.lookup(ip("193.0.6.139")).await;
    assert!(
        matches!(again, Err(IntelError::Refused { .. })),
        "{again:?}"
    );
    assert_eq!(ripe.connections(), 1);
}

#[tokio::test]
async fn a_rate_limit_answer_is_an_error_and_the_next_query_fails_without_connecting() {
    let arin = FixtureServer::answering(fixture!("arin-rate-limit")).await;
    let client = client(starting_at("whois.arin.net"), &[("whois.arin.net", &arin)]);
    match client.lookup(ip("8.8.8.8")).await {
        Err(IntelError::RateLimited { what, retry_after }) => {
            assert_eq!(what, "whois.arin.net:43");
            assert_eq!(retry_after, Some(BACKOFF));
        }
        other => panic!("expected rate-limited, got {other:?}"),
    }
    let started = Instant::now();
    let again = client.lookup(ip("8.8.4.4")).await;
    assert!(
        matches!(again, Err(IntelError::RateLimited { .. })),
        "{again:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(300));
    assert_eq!(arin.connections(), 1, "the server saw a second connection");
}

#[tokio::test]
async fn a_server_that_never_answers_is_cut_at_the_timeout() {
    let ripe = FixtureServer::start(Reply::Hang).await;
    let client = client(
        WhoisOptions {
            timeout: Duration::from_millis(500),
            ..starting_at("whois.ripe.net")
        },
        &[("whois.ripe.net", &ripe)],
    );
    let started = Instant::now();
    let result = client.lookup(ip("193.0.6.139")).await;
    let elapsed = started.elapsed();
    match result {
        Err(IntelError::Timeout { what, timeout }) => {
            assert_eq!(what, "whois.ripe.net:43");
            assert_eq!(timeout, Duration::from_millis(500));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(ripe.connections(), 1);
}

#[tokio::test]
async fn an_answer_over_the_size_limit_is_a_clear_error() {
    let huge = b"remarks:        padding padding padding padding padding\n".repeat(200);
    assert!(huge.len() > 4096);
    let ripe = FixtureServer::answering(huge).await;
    let client = client(
        WhoisOptions {
            max_answer_bytes: 4096,
            ..starting_at("whois.ripe.net")
        },
        &[("whois.ripe.net", &ripe)],
    );
    match client.lookup(ip("193.0.6.139")).await {
        Err(error @ IntelError::Malformed { .. }) => {
            let message = error.to_string();
            assert!(message.starts_with("whois.ripe.net:43 answer"), "{message}");
            assert!(message.contains("4096 bytes"), "{message}");
        }
        other => panic!("expected a size error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_per_server_budget_holds_back_the_query_over_the_limit() {
    let ripe = FixtureServer::answering(fixture!("ripe-193.0.6.139")).await;
    let client = client(
        WhoisOptions {
            per_server_per_minute: 2,
            timeout: Duration::from_millis(500),
            ..starting_at("whois.ripe.net")
        },
        &[("whois.ripe.net", &ripe)],
    );
    client
        .lookup(ip("193.0.6.139"))
        .await
        .expect("first within budget");
    client
        .lookup(ip("193.0.6.140"))
        .await
        .expect("second within budget");
    // Two a minute: the third would wait 30 s, longer than the 500 ms timeout.
    let started = Instant::now();
    match client.lookup(ip("193.0.6.141")).await {
        Err(error @ IntelError::RateLimited { .. }) => {
            let message = error.to_string();
            assert!(
                message.contains("whois_queries_per_minute = 2"),
                "{message}"
            );
            assert!(message.contains("retry after 30 s"), "{message}");
        }
        other => panic!("expected our own limit, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_millis(300));
    assert_eq!(ripe.connections(), 2);
}

#[tokio::test]
async fn a_query_waits_for_the_budget_when_the_wait_fits_in_the_timeout() {
    let ripe = FixtureServer::answering(fixture!("ripe-193.0.6.139")).await;
    let client = client(
        WhoisOptions {
            // Two a second: once the minute's 120 are spent, the next waits 500 ms.
            per_server_per_minute: 120,
            timeout: Duration::from_millis(1500),
            ..starting_at("whois.ripe.net")
        },
        &[("whois.ripe.net", &ripe)],
    );
    let now = Instant::now();
    for _ in 0..120 {
        let wait = client
            .limiter
            .admit("whois.ripe.net", now, Duration::from_secs(60))
            .expect("within the minute's budget");
        assert_eq!(wait, Duration::ZERO);
    }
    let started = Instant::now();
    let whois = client
        .lookup(ip("193.0.6.139"))
        .await
        .expect("a record after waiting");
    let elapsed = started.elapsed();
    assert_eq!(whois.network_name.as_deref(), Some("RIPE-NCC"));
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    assert_eq!(ripe.connections(), 1);
}

#[tokio::test]
async fn a_server_that_closes_without_answering_is_an_error() {
    let arin = FixtureServer::answering(Vec::new()).await;
    let client = client(starting_at("whois.arin.net"), &[("whois.arin.net", &arin)]);
    match client.lookup(ip("8.8.8.8")).await {
        Err(IntelError::Refused { what, message }) => {
            assert_eq!(what, "whois.arin.net:43");
            assert!(message.contains("without answering"), "{message}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn options_that_cannot_work_are_refused_with_the_reason() {
    for (options, expected) in [
        (starting_at("not a host"), "not a host name"),
        (starting_at("whois.iana.org:0"), "not a host name"),
        (
            WhoisOptions {
                per_server_per_minute: 0,
                ..WhoisOptions::default()
            },
            "whois_queries_per_minute",
        ),
        (
            WhoisOptions {
                timeout: Duration::ZERO,
                ..WhoisOptions::default()
            },
            "timeout",
        ),
    ] {
        match WhoisClient::new(options) {
            Err(error) => assert!(error.to_string().contains(expected), "{error}"),
            Ok(_) => panic!("accepted options with {expected} wrong"),
        }
    }
    let client = WhoisClient::new(starting_at("Whois.Example.NET:4343")).expect("host:port");
    assert_eq!(client.start.label(), "whois.example.net:4343");
}

#[test]
fn the_shipped_server_list_has_a_query_for_each_registry() {
    let queries = server_queries(SERVER_LIST).expect("the shipped list parses");
    assert_eq!(queries["whois.arin.net"], "n + $addr\r\n");
    assert_eq!(queries["whois.ripe.net"], "--no-personal $addr\r\n");
    for host in [
        "whois.iana.org",
        "whois.apnic.net",
        "whois.afrinic.net",
        "whois.lacnic.net",
    ] {
        assert_eq!(queries[host], "$addr\r\n", "{host}");
    }
    assert_eq!(registry_name("whois.lacnic.net"), "LACNIC");
    assert_eq!(registry_name("whois.registro.br"), "whois.registro.br");
}

#[test]
fn a_lookup_can_run_on_another_task() {
    fn assert_send<T: Send>(_: &T) {}
    let client = WhoisClient::new(WhoisOptions::default()).expect("defaults");
    let lookup = client.lookup(ip("192.0.2.1"));
    assert_send(&lookup);
}
