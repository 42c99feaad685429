//! The engine over a recording firewall and a real SQLite store: what a ban, an unban, a
//! flush, a refusal, a restart, an expiry and a repair leave in the kernel, the store and on
//! the event bus.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use crmonban_core::config::{BanDuration, Config};
use crmonban_core::{Ban, BanSource, Event, EventKind, Service, unix_now};
use crmonban_engine::{Engine, EngineError, EngineEvent, EngineOptions};
use crmonban_firewall::{
    ApplyReport, Call, Change, ChangeSet, Element, Expiry, FirewallBackend, FirewallError,
};
use sqlx::Connection;
use tokio::task::JoinSet;

fn refused() -> FirewallError {
    FirewallError::Refused {
        message: "test refuses".into(),
        element: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ban_is_in_the_kernel_the_store_and_on_the_bus() {
    let mut h = Harness::start().await;
    let before = unix_now();
    let ban = h
        .engine
        .ban(request("198.51.100.7", secs(600)))
        .await
        .unwrap();
    assert_eq!(ban.target, t("198.51.100.7"));
    assert_eq!(ban.offence, 1);
    assert_eq!(ban.source, BanSource::Dbus);
    let expires = ban.expires_at.expect("timed");
    assert!((before + 600..=unix_now() + 601).contains(&expires));

    let event = wait_for(&mut h.events, "BanAdded", |e| {
        matches!(e, EngineEvent::BanAdded { .. })
    })
    .await;
    assert!(matches!(event, EngineEvent::BanAdded { ban: ref b } if **b == ban));
    assert!(h.fw.contains("198.51.100.7"));
    assert_eq!(
        h.store
            .active_ban(&t("198.51.100.7"), unix_now())
            .await
            .unwrap(),
        Some(ban.clone())
    );
    assert!(h.engine.is_banned(&t("198.51.100.7")));
    assert!(!h.engine.is_banned(&t("198.51.100.8")));
    assert_eq!(h.engine.active_bans(), vec![ban.clone()]);
    assert_eq!(h.engine.active_ban_count(), 1);
    assert_eq!(h.engine.active_ban(&t("198.51.100.7")), Some(ban));

    // The activity log is written off the ban path; it arrives shortly after.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let log = h.store.recent_activity(10).await.unwrap();
        if log
            .iter()
            .any(|e| e.action == "ban" && e.target == Some(t("198.51.100.7")))
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no ban in {log:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ban_without_duration_takes_the_default_and_a_network_covers_its_addresses() {
    let options = EngineOptions {
        default_ban: BanDuration::Permanent,
        ..quick_options()
    };
    let h = Harness::start_with(options, SharedBackend::new()).await;
    let ban = h.engine.ban(request("203.0.113.0/24", None)).await.unwrap();
    assert_eq!(ban.expires_at, None);
    assert!(h.engine.is_banned(&t("203.0.113.77")));
    assert!(h.engine.is_banned(&t("203.0.113.128/25")));
    assert!(!h.engine.is_banned(&t("203.0.112.1")));
    assert!(h.fw.contains("203.0.113.0/24"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_firewall_leaves_no_row_and_no_event() {
    let mut h = Harness::start().await;
    h.fw.lock().refuse_with(Some(refused()));
    let error = h
        .engine
        .ban(request("198.51.100.9", secs(60)))
        .await
        .unwrap_err();
    assert!(
        matches!(error, EngineError::Firewall(FirewallError::Refused { .. })),
        "{error:?}"
    );
    assert!(error.to_string().contains("test refuses"), "{error}");
    assert!(
        h.store
            .ban_history(&t("198.51.100.9"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!h.engine.is_banned(&t("198.51.100.9")));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !drain(&mut h.events)
            .iter()
            .any(|e| matches!(e, EngineEvent::BanAdded { .. }))
    );

    h.fw.lock().refuse_with(None);
    h.engine
        .ban(request("198.51.100.9", secs(60)))
        .await
        .unwrap();
    assert!(h.fw.contains("198.51.100.9"));
}

/// Kernel first, record follows: a database that refuses a ban's record for good (here a
/// trigger; a damaged schema) neither refuses nor rolls back the ban. The record is dropped and
/// counted; the ban is enforced and listed.
#[tokio::test(flavor = "multi_thread")]
async fn a_record_the_database_refuses_for_good_leaves_the_ban_enforced_and_counted() {
    let h = Harness::start().await;
    let first = h.engine.ban(request("203.0.113.77", None)).await.unwrap();
    assert_eq!(first.expires_at, Some(first.banned_at + 3600));

    let url = format!("sqlite://{}", h.store.path().display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_test_bans BEFORE INSERT ON bans
         WHEN NEW.target IN ('203.0.113.66', '203.0.113.77')
         BEGIN SELECT RAISE(ABORT, 'test refuses this row'); END",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let ban = h
        .engine
        .ban(request("203.0.113.66", secs(60)))
        .await
        .unwrap();
    assert!(h.fw.contains("203.0.113.66"));
    assert!(h.engine.is_banned(&t("203.0.113.66")));
    assert!(
        h.store
            .ban_history(&t("203.0.113.66"))
            .await
            .unwrap()
            .is_empty()
    );
    // A longer re-ban is enforced too.
    let longer = h
        .engine
        .ban(request("203.0.113.77", secs(7200)))
        .await
        .unwrap();
    let kept: Vec<_> =
        h.fw.elements()
            .into_iter()
            .filter(|e| e.target == t("203.0.113.77"))
            .collect();
    assert_eq!(
        kept,
        vec![Element::until(t("203.0.113.77"), longer.expires_at)]
    );
    let stats = h.engine.record_stats();
    assert_eq!((stats.pending, stats.dropped), (0, 2), "{stats:?}");
    let mut bans = h.engine.active_bans();
    bans.sort_by_key(|b| b.target);
    assert_eq!(bans, vec![ban, longer]);
}

#[tokio::test(flavor = "multi_thread")]
async fn unban_and_flush_announce_their_reasons() {
    let mut h = Harness::start().await;
    for target in ["198.51.100.1", "198.51.100.2", "2001:db8::3"] {
        h.engine.ban(request(target, secs(600))).await.unwrap();
    }
    assert!(h.engine.unban(&t("198.51.100.1"), "unban").await.unwrap());
    let event = wait_for(&mut h.events, "BanRemoved", |e| {
        matches!(e, EngineEvent::BanRemoved { .. })
    })
    .await;
    assert!(
        matches!(event, EngineEvent::BanRemoved { ref target, ref reason } if *target == t("198.51.100.1") && reason == "unban"),
        "{event:?}"
    );
    assert!(!h.fw.contains("198.51.100.1"));
    assert!(!h.engine.is_banned(&t("198.51.100.1")));
    assert!(
        !h.engine.unban(&t("198.51.100.1"), "unban").await.unwrap(),
        "not banned any more"
    );

    assert_eq!(h.engine.flush().await.unwrap(), 2);
    let mut flushed = Vec::new();
    for _ in 0..2 {
        match wait_for(&mut h.events, "BanRemoved", |e| {
            matches!(e, EngineEvent::BanRemoved { .. })
        })
        .await
        {
            EngineEvent::BanRemoved { target, reason } => {
                assert_eq!(reason, "flush");
                flushed.push(target);
            }
            other => panic!("{other:?}"),
        }
    }
    flushed.sort();
    assert_eq!(flushed, vec![t("198.51.100.2"), t("2001:db8::3")]);
    assert!(!h.fw.contains("198.51.100.2") && !h.fw.contains("2001:db8::3"));
    assert_eq!(h.engine.active_ban_count(), 0);
    assert_eq!(h.store.count_active(unix_now()).await.unwrap(), 0);
    let history = h.store.ban_history(&t("2001:db8::3")).await.unwrap();
    assert_eq!(history[0].unban_reason.as_deref(), Some("flush"));
    let history = h.store.ban_history(&t("198.51.100.1")).await.unwrap();
    assert_eq!(history[0].unban_reason.as_deref(), Some("unban"));
}

#[tokio::test(flavor = "multi_thread")]
async fn protected_targets_are_refused_naming_why() {
    let h = Harness::start().await;
    let mut cases = vec![
        ("127.0.0.1", "127.0.0.1 is a loopback address".to_owned()),
        ("::1", "::1 is a loopback address".to_owned()),
        ("fe80::1", "fe80::1 is a link-local address".to_owned()),
        (
            "169.254.1.1",
            "169.254.1.1 is a link-local address".to_owned(),
        ),
        ("224.0.0.1", "224.0.0.1 is a multicast address".to_owned()),
        ("ff02::1", "ff02::1 is a multicast address".to_owned()),
        ("0.0.0.0", "0.0.0.0 is the unspecified address".to_owned()),
        (
            "255.255.255.255",
            "255.255.255.255 is the limited broadcast address".to_owned(),
        ),
        (
            "0.0.0.0/0",
            "0.0.0.0/0 contains 127.0.0.0/8 (loopback addresses)".to_owned(),
        ),
        ("::/0", "::/0 contains ::1 (loopback addresses)".to_owned()),
        (
            "127.0.0.0/16",
            "127.0.0.0/16 lies in 127.0.0.0/8 (loopback addresses)".to_owned(),
        ),
    ];
    // This host's own addresses (as getifaddrs reports them), and a network around one. On a
    // host with loopback only this part checks nothing; root_engine.rs checks it in a netns.
    let own = crmonban_engine::host_addresses()
        .unwrap()
        .into_iter()
        .find(|a| {
            let s = a.to_string();
            !a.is_loopback() && !s.starts_with("fe80") && !s.starts_with("169.254")
        });
    let leaked = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    if let Some(addr) = own {
        cases.push((
            leaked(addr.to_string()),
            format!("{addr} is an address of this host"),
        ));
        let around = if addr.is_ipv4() {
            format!("{addr}/16")
        } else {
            format!("{addr}/48")
        };
        let net = t(&around);
        cases.push((
            leaked(net.to_string()),
            format!("{net} contains this host's address {addr}"),
        ));
    }
    let calls_before = h.fw.apply_calls();
    for (target, why) in &cases {
        let error = h.engine.ban(request(target, secs(60))).await.unwrap_err();
        assert!(
            matches!(error, EngineError::Protected { .. }),
            "{target}: {error:?}"
        );
        assert!(
            error.to_string().contains(why.as_str()),
            "{target}: {error}"
        );
        assert!(h.engine.check_protected(&t(target)).is_err());
        assert!(h.store.ban_history(&t(target)).await.unwrap().is_empty());
    }
    assert_eq!(
        h.fw.apply_calls(),
        calls_before,
        "nothing reached the kernel"
    );
    h.engine.check_protected(&t("198.51.100.1")).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn whitelisted_networks_are_refused_until_removed() {
    let mut h = Harness::start().await;
    h.engine
        .ban(request("198.18.7.9", secs(600)))
        .await
        .unwrap();
    assert!(
        h.engine
            .whitelist_add(&t("198.18.7.0/24"), "office")
            .await
            .unwrap()
    );
    // The existing ban is one the whitelist now forbids: it ends.
    let event = wait_for(&mut h.events, "BanRemoved", |e| {
        matches!(e, EngineEvent::BanRemoved { .. })
    })
    .await;
    assert!(
        matches!(event, EngineEvent::BanRemoved { ref target, ref reason } if *target == t("198.18.7.9") && reason == "whitelisted"),
        "{event:?}"
    );
    assert!(!h.fw.contains("198.18.7.9"));
    assert!(
        !h.engine
            .whitelist_add(&t("198.18.7.0/24"), "again")
            .await
            .unwrap()
    );
    let list = h.engine.whitelist().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].target, t("198.18.7.0/24"));
    assert_eq!(list[0].comment, "office");

    for (target, message) in [
        (
            "198.18.7.9",
            "198.18.7.9 is whitelisted (database: 198.18.7.0/24)",
        ),
        (
            "198.18.7.0/24",
            "198.18.7.0/24 is whitelisted (database: 198.18.7.0/24)",
        ),
        (
            "198.18.0.0/16",
            "198.18.0.0/16 contains whitelisted 198.18.7.0/24 (database: 198.18.7.0/24)",
        ),
    ] {
        let error = h.engine.ban(request(target, secs(60))).await.unwrap_err();
        assert!(
            matches!(&error, EngineError::Whitelisted { entry, .. } if entry.target == t("198.18.7.0/24")),
            "{target}: {error:?}"
        );
        assert!(error.to_string().contains(message), "{error}");
    }

    assert!(
        h.engine
            .whitelist_remove(&t("198.18.7.0/24"))
            .await
            .unwrap()
    );
    assert!(
        !h.engine
            .whitelist_remove(&t("198.18.7.0/24"))
            .await
            .unwrap()
    );
    h.engine.ban(request("198.18.7.9", secs(60))).await.unwrap();
    assert!(h.fw.contains("198.18.7.9"));
}

fn stored_ban(target: &str, banned_at: i64, expires_at: Option<i64>) -> Ban {
    Ban {
        target: t(target),
        reason: "earlier run".into(),
        source: BanSource::Detector,
        service: Some("ssh".into()),
        banned_at,
        expires_at,
        offence: 1,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn start_restores_active_bans_in_one_transaction() {
    let (_dir, store) = temp_store().await;
    let now = unix_now();
    let permanent = stored_ban("198.51.100.10", now - 100, None);
    let timed = stored_ban("2001:db8::10", now - 100, Some(now + 3600));
    let expired = stored_ban("198.51.100.12", now - 7200, Some(now - 3600));
    let network = stored_ban("203.0.113.0/24", now - 50, Some(now + 600));
    let loopback = stored_ban("127.0.0.1", now - 50, None);
    for ban in [&permanent, &timed, &expired, &network, &loopback] {
        store.record_ban(ban).await.unwrap();
    }

    let fw = SharedBackend::new();
    let engine = Engine::start(quick_options(), Box::new(fw.clone()), store.clone())
        .await
        .unwrap();
    let replaced = fw.replace_all_calls();
    assert_eq!(replaced.len(), 1, "one transaction: {:?}", fw.calls());
    let mut got = replaced[0].clone();
    got.sort_by_key(|e| e.target);
    let mut want = vec![
        Element::until(permanent.target, None),
        Element::until(timed.target, timed.expires_at),
        Element::until(network.target, network.expires_at),
    ];
    want.sort_by_key(|e| e.target);
    assert_eq!(got, want);
    assert_eq!(
        got.iter()
            .find(|e| e.target == timed.target)
            .map(|e| e.expiry),
        Some(Expiry::At(now + 3600)),
        "the timed ban keeps its end"
    );
    assert!(fw.contains("198.51.100.10") && fw.contains("2001:db8::10"));
    assert!(!fw.contains("198.51.100.12"));

    assert_eq!(engine.active_ban_count(), 3);
    assert!(engine.is_banned(&t("203.0.113.9")));
    let history = store.ban_history(&t("198.51.100.12")).await.unwrap();
    assert_eq!(history[0].unban_reason.as_deref(), Some("expired"));
    let history = store.ban_history(&t("127.0.0.1")).await.unwrap();
    assert_eq!(
        history[0].unban_reason.as_deref(),
        Some("protected"),
        "a stored ban of a protected target is ended, not restored"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bans_expire_on_time_and_stay_in_the_history() {
    let mut h = Harness::start().await;
    h.engine
        .ban(request("198.51.100.20", secs(1)))
        .await
        .unwrap();
    h.engine
        .ban(request("198.51.100.21", secs(3600)))
        .await
        .unwrap();
    let event = wait_for(&mut h.events, "BanRemoved", |e| {
        matches!(e, EngineEvent::BanRemoved { .. })
    })
    .await;
    assert!(
        matches!(event, EngineEvent::BanRemoved { ref target, ref reason } if *target == t("198.51.100.20") && reason == "expired"),
        "{event:?}"
    );
    assert!(!h.engine.is_banned(&t("198.51.100.20")));
    assert!(h.engine.is_banned(&t("198.51.100.21")));
    assert_eq!(h.engine.active_ban_count(), 1);
    let history = h.store.ban_history(&t("198.51.100.20")).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].unban_reason.as_deref(), Some("expired"));
    assert_eq!(history[0].unbanned_at, history[0].ban.expires_at);

    // `crmonctl logs` shows the expiry with how long the ban lasted.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let log = h.store.recent_activity(10).await.unwrap();
        if let Some(entry) = log
            .iter()
            .find(|e| e.action == "expire" && e.target == Some(t("198.51.100.20")))
        {
            assert!(entry.detail.ends_with("lasted 1s)"), "{entry:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no expiry in {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flushed_ruleset_is_repaired_with_every_active_ban() {
    let mut h = Harness::start().await;
    h.engine
        .ban(request("198.51.100.30", secs(3600)))
        .await
        .unwrap();
    h.engine.ban(request("203.0.113.0/24", None)).await.unwrap();
    h.fw.lock().simulate_flush();
    assert!(!h.fw.contains("198.51.100.30"));
    let event = wait_for(&mut h.events, "LayoutRepaired", |e| {
        matches!(e, EngineEvent::LayoutRepaired { .. })
    })
    .await;
    assert!(
        matches!(event, EngineEvent::LayoutRepaired { bans: 2 }),
        "{event:?}"
    );
    assert!(h.fw.contains("198.51.100.30") && h.fw.contains("203.0.113.0/24"));
    assert_eq!(
        h.engine.repair_if_needed().await.unwrap(),
        None,
        "nothing to repair"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ban_that_finds_the_layout_gone_repairs_it_first() {
    let options = EngineOptions {
        repair_interval: Duration::from_secs(3600),
        ..quick_options()
    };
    let mut h = Harness::start_with(options, SharedBackend::new()).await;
    h.engine.ban(request("198.51.100.40", None)).await.unwrap();
    h.fw.lock().simulate_flush();
    h.engine.ban(request("198.51.100.41", None)).await.unwrap();
    assert!(h.fw.contains("198.51.100.40") && h.fw.contains("198.51.100.41"));
    wait_for(&mut h.events, "LayoutRepaired", |e| {
        matches!(e, EngineEvent::LayoutRepaired { bans: 1 })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_bans_are_batched_into_few_transactions() {
    // 1 ms per transaction, as nft takes: requests queue up behind one another.
    let h = Harness::start_with(
        quick_options(),
        SharedBackend::with_apply_delay(Duration::from_millis(1)),
    )
    .await;
    let mut bans = JoinSet::new();
    for i in 0..200u32 {
        let engine = h.engine.clone();
        let target = format!("10.{}.{}.{}", 100 + i / 65536, (i / 256) % 256, i % 256);
        bans.spawn(async move { engine.ban(request(&target, secs(600))).await });
    }
    let mut ok = 0;
    while let Some(result) = bans.join_next().await {
        result.unwrap().unwrap();
        ok += 1;
    }
    assert_eq!(ok, 200);
    let applies = h.fw.apply_calls();
    assert!(applies < 200, "{applies} transactions for 200 bans");
    assert_eq!(h.fw.elements().len(), 200);
    assert_eq!(h.store.count_active(unix_now()).await.unwrap(), 200);
    assert_eq!(h.engine.active_ban_count(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_refused_request_in_a_batch_fails_alone() {
    // Refuses any transaction that adds 10.250.0.0/16. Its first apply takes 300 ms, so that
    // the bans started meanwhile queue up and reach it as one combined batch.
    struct RefuseOne {
        fw: SharedBackend,
        applies: usize,
        refused_batches: Arc<AtomicUsize>,
    }
    impl FirewallBackend for RefuseOne {
        fn ensure_layout(&mut self) -> Result<(), FirewallError> {
            self.fw.ensure_layout()
        }
        fn apply(&mut self, changes: &ChangeSet) -> Result<ApplyReport, FirewallError> {
            self.applies += 1;
            if self.applies == 1 {
                std::thread::sleep(Duration::from_millis(300));
            }
            let bad = changes
                .changes
                .iter()
                .any(|c| matches!(c, Change::Add(e) if e.target == t("10.250.0.0/16")));
            if bad {
                if changes.len() > 1 {
                    self.refused_batches.fetch_add(1, Ordering::SeqCst);
                }
                return Err(refused());
            }
            self.fw.apply(changes)
        }
        fn replace_all(&mut self, elements: &[Element]) -> Result<ApplyReport, FirewallError> {
            self.fw.replace_all(elements)
        }
        fn layout_present(&mut self) -> Result<bool, FirewallError> {
            self.fw.layout_present()
        }
        fn list(&mut self) -> Result<Vec<Element>, FirewallError> {
            self.fw.list()
        }
        fn teardown(&mut self) -> Result<(), FirewallError> {
            self.fw.teardown()
        }
        fn describe(&self) -> String {
            "refuses 10.250.0.0/16".into()
        }
    }

    let (_dir, store) = temp_store().await;
    let fw = SharedBackend::new();
    let refused_batches = Arc::new(AtomicUsize::new(0));
    let backend = RefuseOne {
        fw: fw.clone(),
        applies: 0,
        refused_batches: refused_batches.clone(),
    };
    let engine = Engine::start(quick_options(), Box::new(backend), store)
        .await
        .unwrap();
    let first = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.ban(request("10.251.1.1", secs(600))).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut bans = JoinSet::new();
    for i in 0..50u32 {
        let engine = engine.clone();
        let target = if i == 25 {
            "10.250.0.0/16".to_owned()
        } else {
            format!("10.251.0.{i}")
        };
        bans.spawn(async move {
            let result = engine.ban(request(&target, secs(600))).await;
            (target, result)
        });
    }
    first.await.unwrap().unwrap();
    while let Some(result) = bans.join_next().await {
        let (target, result) = result.unwrap();
        if target == "10.250.0.0/16" {
            assert!(
                matches!(
                    result,
                    Err(EngineError::Firewall(FirewallError::Refused { .. }))
                ),
                "{result:?}"
            );
        } else {
            result.unwrap();
        }
    }
    assert!(
        refused_batches.load(Ordering::SeqCst) >= 1,
        "the bad request never came in a combined batch"
    );
    assert_eq!(engine.active_ban_count(), 50);
    assert_eq!(fw.elements().len(), 50);
    assert!(!engine.is_banned(&t("10.250.1.1")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_that_never_reads_does_not_slow_bans() {
    let options = EngineOptions {
        event_capacity: 4,
        ..quick_options()
    };
    let mut h = Harness::start_with(options, SharedBackend::new()).await;
    let started = std::time::Instant::now();
    for i in 0..50u32 {
        h.engine
            .ban(request(&format!("198.51.100.{}", 100 + i), secs(600)))
            .await
            .unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(matches!(
        h.events.recv().await,
        Err(tokio::sync::broadcast::error::RecvError::Lagged(_))
    ));
    assert_eq!(h.engine.active_ban_count(), 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn repeat_offenders_get_longer_bans() {
    // [general] as a user writes it: 60 s bans, doubled per earlier ban, at most a day.
    let mut config = Config::default();
    config.general.default_ban_duration = BanDuration::Timed(Duration::from_secs(60));
    config.general.ban_time_increment = 2.0;
    config.general.max_ban_time = Some(Duration::from_secs(86_400));
    let options_again = || {
        let from_config = EngineOptions::from_config(&config);
        EngineOptions {
            default_ban: from_config.default_ban,
            escalation: from_config.escalation,
            ..quick_options()
        }
    };
    let h = Harness::start_with(options_again(), SharedBackend::new()).await;
    let first = h.engine.ban(request("198.51.100.50", None)).await.unwrap();
    assert_eq!(first.offence, 1);
    assert_eq!(first.expires_at, Some(first.banned_at + 60));
    h.engine.unban(&t("198.51.100.50"), "unban").await.unwrap();
    let second = h.engine.ban(request("198.51.100.50", None)).await.unwrap();
    assert_eq!(second.offence, 2);
    assert_eq!(second.expires_at, Some(second.banned_at + 120));
    // Re-banning while banned for a shorter time (10 s x 2^2 = 40 s < 120 s) leaves the ban;
    // a longer one replaces the expiry (the store supersedes the older row).
    let kept = h
        .engine
        .ban(request("198.51.100.50", secs(10)))
        .await
        .unwrap();
    assert_eq!(kept, second);
    let third = h
        .engine
        .ban(request("198.51.100.50", secs(100)))
        .await
        .unwrap();
    assert_eq!(third.expires_at, Some(third.banned_at + 400));
    assert_eq!(h.engine.active_bans(), vec![third.clone()]);
    let history = h.store.ban_history(&t("198.51.100.50")).await.unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[1].unban_reason.as_deref(), Some("superseded"));
    // 30000 s x 2^3 = 240000 s is capped at max_ban_time.
    let fourth = h
        .engine
        .ban(request("198.51.100.50", secs(30_000)))
        .await
        .unwrap();
    assert_eq!(fourth.offence, 4);
    assert_eq!(fourth.expires_at, Some(fourth.banned_at + 86_400));
    assert_eq!(h.engine.active_bans(), vec![fourth.clone()]);
    assert_eq!(
        h.fw.elements()
            .into_iter()
            .find(|e| e.target == t("198.51.100.50"))
            .map(|e| e.expiry),
        fourth.expires_at.map(Expiry::At)
    );

    // Offence counts are kept in memory and survive a restart through the store's history.
    h.engine.shutdown().await;
    let engine = Engine::start(
        options_again(),
        Box::new(SharedBackend::new()),
        h.store.clone(),
    )
    .await
    .unwrap();
    engine.unban(&t("198.51.100.50"), "unban").await.unwrap();
    let fifth = engine.ban(request("198.51.100.50", None)).await.unwrap();
    assert_eq!(fifth.offence, 5);
    assert_eq!(fifth.expires_at, Some(fifth.banned_at + 60 * 16));
    let other = engine.ban(request("198.51.100.51", None)).await.unwrap();
    assert_eq!(other.offence, 1, "a first offender starts at one");
}

#[tokio::test(flavor = "multi_thread")]
async fn attacks_are_counted_and_announced() {
    let mut h = Harness::start().await;
    let event = Event {
        addr: "198.51.100.60".parse().unwrap(),
        service: Service::new("ssh"),
        kind: EventKind::FailedAuth,
        time: None,
    };
    h.engine.report_attack(&event).await;
    h.engine.report_attack(&event).await;
    assert_eq!(h.engine.events_processed(), 2);
    let seen = wait_for(&mut h.events, "AttackDetected", |e| {
        matches!(e, EngineEvent::AttackDetected { .. })
    })
    .await;
    assert!(
        matches!(seen, EngineEvent::AttackDetected { addr, ref service, ref kind, count: 1 }
            if addr == event.addr && service == "ssh" && kind == "failed_auth"),
        "{seen:?}"
    );
    assert!(h.engine.uptime() < Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_announces_itself_and_leaves_bans_in_the_kernel() {
    let (_dir, store) = temp_store().await;
    let fw = SharedBackend::new();
    let engine = Engine::start(quick_options(), Box::new(fw.clone()), store.clone())
        .await
        .unwrap();
    let mut events = engine.subscribe();
    engine.ban(request("198.51.100.70", None)).await.unwrap();
    assert!(engine.is_running());
    engine.shutdown().await;
    assert!(!engine.is_running());
    wait_for(&mut events, "DaemonStopping", |e| {
        matches!(e, EngineEvent::DaemonStopping)
    })
    .await;
    assert!(fw.contains("198.51.100.70"), "bans stay in the kernel");
    assert!(!fw.calls().contains(&Call::Teardown));
    assert!(matches!(
        engine.ban(request("198.51.100.71", None)).await,
        Err(EngineError::Stopped)
    ));
    assert!(matches!(
        engine.unban(&t("198.51.100.70"), "unban").await,
        Err(EngineError::Stopped)
    ));
    engine.shutdown().await; // twice is harmless
    let log = store.recent_activity(10).await.unwrap();
    assert!(log.iter().any(|e| e.action == "stop"), "{log:?}");

    // The next start restores it.
    let fw2 = SharedBackend::new();
    let engine = Engine::start(quick_options(), Box::new(fw2.clone()), store)
        .await
        .unwrap();
    assert!(fw2.contains("198.51.100.70"));
    assert!(engine.is_banned(&t("198.51.100.70")));
}

#[tokio::test(flavor = "multi_thread")]
async fn start_fails_when_the_firewall_cannot_restore() {
    let (_dir, store) = temp_store().await;
    let fw = SharedBackend::new();
    fw.lock()
        .refuse_with(Some(FirewallError::Unavailable("no nftables here".into())));
    let error = Engine::start(quick_options(), Box::new(fw), store)
        .await
        .err()
        .expect("start must fail");
    assert!(
        matches!(error, EngineError::Firewall(FirewallError::Unavailable(_))),
        "{error:?}"
    );
    assert!(error.to_string().contains("no nftables here"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn started_event_and_options_from_config() {
    let mut config = crmonban_core::Config::default();
    config.general.default_ban_duration = BanDuration::Timed(Duration::from_secs(77));
    let options = EngineOptions::from_config(&config);
    let (_dir, store) = temp_store().await;
    let (engine, mut events) =
        Engine::start_subscribed(options, Box::new(SharedBackend::new()), store)
            .await
            .unwrap();
    assert!(matches!(events.try_recv(), Ok(EngineEvent::DaemonStarted)));
    let ban = engine.ban(request("198.51.100.80", None)).await.unwrap();
    assert_eq!(ban.expires_at, Some(ban.banned_at + 77));
    assert!(!engine.firewall_description().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn shutdown_right_after_start_returns() {
    // On a current-thread runtime the tasks have not run once when shutdown begins.
    let (_dir, store) = temp_store().await;
    let engine = Engine::start(quick_options(), Box::new(SharedBackend::new()), store)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), engine.shutdown())
        .await
        .expect("shutdown hung");
}

/// A ban is only ever lengthened: a timed ban of a permanently banned target, or a shorter
/// one, leaves the ban as it is (and says so); a longer one replaces it.
#[tokio::test(flavor = "multi_thread")]
async fn a_ban_is_only_ever_lengthened() {
    let h = Harness::start().await;
    let (permanent, changed) = h
        .engine
        .ban_or_keep(crmonban_engine::BanRequest {
            duration: Some(crmonban_core::config::BanDuration::Permanent),
            ..request("203.0.113.9", secs(60))
        })
        .await
        .unwrap();
    assert!(changed && permanent.expires_at.is_none());
    let (kept, changed) = h
        .engine
        .ban_or_keep(request("203.0.113.9", secs(30)))
        .await
        .unwrap();
    assert!(!changed, "a 30 s ban shortened a permanent one");
    assert_eq!(kept.expires_at, None);

    let (first, _) = h
        .engine
        .ban_or_keep(request("203.0.113.10", secs(3600)))
        .await
        .unwrap();
    let (same, changed) = h
        .engine
        .ban_or_keep(request("203.0.113.10", secs(60)))
        .await
        .unwrap();
    assert!(!changed);
    assert_eq!(same.expires_at, first.expires_at);
    let (longer, changed) = h
        .engine
        .ban_or_keep(request("203.0.113.10", secs(7200)))
        .await
        .unwrap();
    assert!(changed);
    assert!(longer.expires_at > first.expires_at);
    let active = h.engine.active_bans();
    assert_eq!(active.len(), 2);
}
