//! SIEM export through a running engine over a recording firewall and a real store: events
//! land in a file target in order (daemon started first, stopping last, attacks coalesced with
//! their count), a webhook that never answers delays no ban and holds a bounded queue with
//! its drops counted, and a reload keeps what is queued, reopens files and refuses a bad
//! headers file without changing anything.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{silent_server, ssh_ban_of, start_without_detection};
use crmonban_core::config::{BanDuration, Config, SiemFormat, SiemTarget, SiemTargetConfig};
use crmonban_core::{Event, EventKind, Service, Target};
use serde_json::Value;

fn target(name: &str, kind: SiemTarget) -> SiemTargetConfig {
    SiemTargetConfig {
        name: name.into(),
        format: None,
        queue_size: None,
        kind,
    }
}

fn file_config(path: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.general.auto_intel = false;
    config.siem.enabled = true;
    config.siem.format = SiemFormat::Json;
    config.siem.hostname = Some("engine-test".into());
    config.siem.targets = vec![target(
        "file",
        SiemTarget::File {
            path: path.to_path_buf(),
        },
    )];
    config
}

/// The file's events, once `done` holds for them.
async fn events_until(path: &std::path::Path, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let events: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        if done(&events) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "waited for events; have:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn actions(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event"]["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_a_file_in_order_with_attacks_coalesced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("siem.log");
    let mut config = file_config(&path);
    config.siem.attack_interval_secs = 1;
    let running = start_without_detection(config, &dir).await;
    let engine = running.engine();

    engine.ban(ssh_ban_of(1)).await.unwrap();
    let attack = Event {
        addr: "203.0.113.9".parse().unwrap(),
        service: Service::new("ssh"),
        kind: EventKind::FailedAuth,
        time: None,
    };
    // A flood of 50 from one address: its first at once, the other 49 in one event after
    // the interval.
    for _ in 0..50 {
        engine.report_attack(&attack).await;
    }
    let target = Target::parse("198.51.100.0/24").unwrap();
    engine.whitelist_add(&target, "office").await.unwrap();
    engine.unban(&ssh_ban_of(1).target, "unban").await.unwrap();
    let events = events_until(&path, |e| {
        e.iter()
            .filter(|e| e["event"]["action"] == "attack-detected")
            .count()
            == 2
    })
    .await;
    let attacks: Vec<u64> = events
        .iter()
        .filter(|e| e["event"]["action"] == "attack-detected")
        .map(|e| e["crmonban"]["count"].as_u64().unwrap())
        .collect();
    assert_eq!(attacks, [1, 49], "{events:#?}");
    assert_eq!(
        actions(&events)[..5],
        [
            "daemon-started",
            "ban-added",
            "attack-detected",
            "whitelist-added",
            "ban-removed"
        ]
    );
    assert_eq!(events[1]["source"]["ip"], "11.0.0.1");
    assert_eq!(events[1]["crmonban"]["source"], "detector");
    // The service's one port (ssh's pack: 22) is the attacked port.
    assert_eq!(events[1]["destination"]["port"], 22);
    assert_eq!(events[2]["destination"]["port"], 22);
    assert_eq!(events[3]["crmonban"]["target"], "198.51.100.0/24");
    assert_eq!(events[3]["event"]["reason"], "office");
    assert_eq!(events[0]["observer"]["hostname"], "engine-test");

    running.shutdown().await;
    let events = events_until(&path, |e| {
        e.last()
            .is_some_and(|e| e["event"]["action"] == "daemon-stopping")
    })
    .await;
    let stats = running.siem().stats();
    assert_eq!(stats.targets[0].stats.sent, events.len() as u64);
    assert_eq!(stats.dropped(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_never_answers_delays_no_ban_and_its_queue_stays_bounded() {
    let (server, connections) = silent_server().await;
    let mut config = Config::default();
    config.general.auto_intel = false;
    config.siem.enabled = true;
    config.siem.queue_size = 20;
    config.siem.targets = vec![target(
        "hook",
        SiemTarget::Webhook {
            url: format!("http://{server}/events"),
            headers: Vec::new(),
            headers_file: None,
            batch_size: 1,
            timeout_secs: 60,
        },
    )];
    let dir = tempfile::tempdir().unwrap();
    let running = start_without_detection(config, &dir).await;
    let engine = running.engine();

    let mut slowest = Duration::ZERO;
    for i in 0..200 {
        let one = Instant::now();
        engine.ban(ssh_ban_of(i)).await.unwrap();
        slowest = slowest.max(one.elapsed());
    }
    // The server holds the one request in flight for 60 s: a ban that waited would show it.
    assert!(slowest < Duration::from_secs(2), "a ban waited {slowest:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = running.siem().stats();
        let t = &stats.targets[0].stats;
        // 201 events (started + 200 bans): one in flight (still queued), 20 held, the rest
        // dropped oldest first.
        if t.dropped == 181 {
            assert_eq!(t.queued, 20, "{t:?}");
            assert_eq!(t.sent, 0, "{t:?}");
            break;
        }
        assert!(Instant::now() < deadline, "{t:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "one request at a time"
    );
    // Shutting down gives up on it within the drain time, not the 60 s timeout.
    let stopping = Instant::now();
    running.shutdown().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopping.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_reopens_files_keeps_queues_and_refuses_a_bad_headers_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("siem.log");
    let config = file_config(&path);
    let running = start_without_detection(config.clone(), &dir).await;
    running.engine().ban(ssh_ban_of(1)).await.unwrap();
    events_until(&path, |e| e.len() == 2).await;

    // Rotated by the administrator, then SIGHUP: the next event goes to a new file.
    std::fs::rename(&path, dir.path().join("siem.log.1")).unwrap();
    running.reconfigure(config.clone()).await.unwrap();
    running.engine().ban(ssh_ban_of(2)).await.unwrap();
    let events = events_until(&path, |e| !e.is_empty()).await;
    assert_eq!(actions(&events), ["ban-added"]);
    assert_eq!(events[0]["source"]["ip"], "11.0.0.2");

    // A headers file that does not exist refuses the whole reload.
    let mut bad = config.clone();
    bad.siem.targets.push(target(
        "hook",
        SiemTarget::Webhook {
            url: "https://siem.example.com/".into(),
            headers: Vec::new(),
            headers_file: Some(dir.path().join("missing.headers")),
            batch_size: 1,
            timeout_secs: 5,
        },
    ));
    bad.general.default_ban_duration = BanDuration::from_secs(77);
    let refused = running.reconfigure(bad).await.unwrap_err().to_string();
    assert!(
        refused.contains("hook") && refused.contains("missing.headers"),
        "{refused}"
    );
    assert_eq!(running.siem().stats().targets.len(), 1);
    assert_ne!(
        running.config().await.general.default_ban_duration,
        BanDuration::from_secs(77)
    );
    running.shutdown().await;
}
