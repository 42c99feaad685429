//! Intel after the ban, through a running engine over a recording firewall and a real store,
//! against local servers: a WHOIS server that never answers holds neither a ban nor memory
//! (the queue drops its oldest and counts), and what is gathered lands in the cache.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{silent_server, ssh_ban_of, start_without_detection};
use crmonban_core::config::Config;
use crmonban_core::{BanSource, Target};
use crmonban_engine::BanRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A WHOIS server answering every query with `answer` and closing.
async fn answering_whois(answer: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut query = [0u8; 256];
                let _ = socket.read(&mut query).await;
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    addr
}

fn whois_only(server: SocketAddr, timeout: Duration) -> Config {
    let mut config = Config::default();
    config.general.auto_intel = true;
    config.intel.geoip_enabled = false;
    config.intel.whois_enabled = true;
    config.intel.whois_server = server.to_string();
    config.intel.timeout = timeout;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_whois_server_delays_no_ban_and_the_queue_stays_bounded() {
    let (server, connections) = silent_server().await;
    let mut config = whois_only(server, Duration::from_secs(30));
    config.intel.concurrency = 2;
    config.intel.queue_size = 10;
    let dir = tempfile::tempdir().unwrap();
    let running = start_without_detection(config, &dir).await;
    let engine = running.engine();

    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..100 {
        let one = Instant::now();
        engine.ban(ssh_ban_of(i)).await.unwrap();
        slowest = slowest.max(one.elapsed());
    }
    // The WHOIS server holds every gather for 30 s: a ban that waited on one would take that.
    assert!(
        slowest < Duration::from_secs(2),
        "a ban waited {slowest:?} while WHOIS hung"
    );
    assert_eq!(engine.active_ban_count(), 100);

    // Every ban reached the intel queue: two hang at the server, ten wait, the rest were
    // dropped oldest first and counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = running.intel().stats();
        if stats.dropped + stats.waiting == 98 && connections.load(Ordering::SeqCst) == 2 {
            assert_eq!(stats.waiting, 10, "{stats:?}");
            assert_eq!(stats.dropped, 88, "{stats:?}");
            assert_eq!(stats.gathered, 0, "{stats:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{stats:?}, {} connections",
            connections.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    running.shutdown().await;
}

const RIPE_ANSWER: &str = "\
% This is the RIPE Database query service.\r
% The objects are in RPSL format.\r
\r
% Abuse contact for '11.0.0.0 - 11.0.0.255' is 'abuse@example.net'\r
\r
inetnum:        11.0.0.0 - 11.0.0.255\r
netname:        EXAMPLE-NET\r
country:        NL\r
org:            ORG-EX1-RIPE\r
admin-c:        EX1-RIPE\r
status:         ASSIGNED PA\r
mnt-by:         EXAMPLE-MNT\r
source:         RIPE\r
\r
organisation:   ORG-EX1-RIPE\r
org-name:       Example Hosting B.V.\r
org-type:       LIR\r
country:        NL\r
source:         RIPE\r
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_fills_the_intel_cache_and_the_next_ban_carries_its_summary() {
    let server = answering_whois(RIPE_ANSWER).await;
    let config = whois_only(server, Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let running = start_without_detection(config, &dir).await;
    let engine = running.engine();
    let target = ssh_ban_of(0).target;

    engine.ban(ssh_ban_of(0)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let cached = loop {
        if let Some(intel) = running.intel().cached(&target).await.unwrap() {
            break intel;
        }
        assert!(Instant::now() < deadline, "{:?}", running.intel().stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let whois = cached.whois.expect("the WHOIS part");
    assert_eq!(whois.organization.as_deref(), Some("Example Hosting B.V."));
    assert_eq!(whois.abuse_contact.as_deref(), Some("abuse@example.net"));
    assert_eq!(whois.country.as_deref(), Some("NL"));
    assert_eq!(running.intel().stats().gathered, 1);

    // Unbanned and banned again: the reason now says who it is.
    assert!(engine.unban(&target, "unban").await.unwrap());
    let again = engine.ban(ssh_ban_of(0)).await.unwrap();
    assert_eq!(again.reason, "test [NL, Example Hosting B.V.]");
    // Fresh in the cache: not gathered a second time.
    let deadline = Instant::now() + Duration::from_secs(5);
    while running.intel().stats().from_cache == 0 {
        assert!(Instant::now() < deadline, "{:?}", running.intel().stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(running.intel().stats().gathered, 1);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_any_source_intel_is_not_enabled_and_nothing_is_queued() {
    let mut config = Config::default();
    config.intel.geoip_enabled = false;
    let dir = tempfile::tempdir().unwrap();
    let running = start_without_detection(config, &dir).await;
    let target = ssh_ban_of(1).target;
    running.engine().ban(ssh_ban_of(1)).await.unwrap();
    let err = running.intel().intel(&target, false).await.unwrap_err();
    assert!(err.to_string().contains("intel is not enabled"), "{err}");
    let network = Target::parse("11.0.0.0/24").unwrap();
    assert!(running.intel().intel(&network, false).await.is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = running.intel().stats();
    assert_eq!((stats.waiting, stats.gathered), (0, 0), "{stats:?}");
    running.shutdown().await;
}

const ABUSEIPDB_CHECK: &str = r#"{"data":{"ipAddress":"11.0.0.2","isPublic":true,"ipVersion":4,
"isWhitelisted":false,"abuseConfidenceScore":87,"countryCode":"US",
"usageType":"Data Center/Web Hosting/Transit","isp":"Example Cloud","domain":"example.net",
"totalReports":42,"numDistinctUsers":17,"lastReportedAt":"2026-12-02T10:00:00+00:00"}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detector_bans_are_reported_to_abuseipdb_once_and_manual_bans_never() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/check"))
        .and(header("Key", "test-key"))
        .respond_with(ResponseTemplate::new(200).set_body_string(ABUSEIPDB_CHECK))
        .mount(&api)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/report"))
        .and(header("Key", "test-key"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(r#"{"data":{"ipAddress":"11.0.0.2","abuseConfidenceScore":88}}"#),
        )
        .mount(&api)
        .await;
    let mut config = Config::default();
    config.intel.geoip_enabled = false;
    config.intel.abuseipdb_api_key = Some(crmonban_core::config::Secret::new("test-key"));
    config.intel.abuseipdb_url = format!("{}/api/v2", api.uri());
    config.intel.abuseipdb_report = true;
    let dir = tempfile::tempdir().unwrap();
    let running = start_without_detection(config, &dir).await;
    let engine = running.engine();

    engine.ban(ssh_ban_of(2)).await.unwrap();
    let manual = BanRequest {
        source: BanSource::Dbus,
        service: None,
        ..ssh_ban_of(3)
    };
    engine.ban(manual).await.unwrap();
    // Banned again at once: AbuseIPDB takes one report per address per 15 minutes.
    engine.unban(&ssh_ban_of(2).target, "unban").await.unwrap();
    engine.ban(ssh_ban_of(2)).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    while running.intel().stats().reported + running.intel().stats().reports_skipped < 2 {
        assert!(Instant::now() < deadline, "{:?}", running.intel().stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reports: Vec<String> = api
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path().ends_with("/report"))
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].contains("ip=11.0.0.2") && reports[0].contains("categories=18%2C22"),
        "{}",
        reports[0]
    );
    let stats = running.intel().stats();
    assert_eq!((stats.reported, stats.reports_skipped), (1, 1), "{stats:?}");

    // What AbuseIPDB said is cached, and its usage type makes the hosting flag.
    let intel = running
        .intel()
        .cached(&ssh_ban_of(2).target)
        .await
        .unwrap()
        .expect("cached");
    let abuse = intel.abuseipdb.as_ref().expect("the AbuseIPDB part");
    assert_eq!((abuse.confidence, abuse.total_reports), (87, 42));
    assert!(intel.flags.hosting, "{intel:?}");
    assert_eq!(
        intel.flags.hosting_reason.as_deref(),
        Some("AbuseIPDB usage type: Data Center/Web Hosting/Transit")
    );
    running.shutdown().await;
}
