//! The fleet between engines of one process (each with its own SQLite store and recording
//! firewall) through a real PostgreSQL started by the test: a ban on one node reaches the
//! other within a second, unbans follow, each node's own protection and the fleet whitelist
//! veto, unaccepted nodes are ignored, an outage loses nothing, and a node that missed
//! thousands of bans catches up in one transaction. They panic without root (PostgreSQL runs
//! as its own user).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use crmonban_core::{BanSource, unix_now};
use crmonban_engine::{
    Accept, BanRequest, Engine, FleetConnectOptions, FleetOptions, FleetService, FleetStore,
};
use crmonban_testutil::Postgres;

fn options(pg: &Postgres, node: &str, accept: Accept) -> FleetOptions {
    FleetOptions {
        node: node.into(),
        connect: pg.url().parse::<FleetConnectOptions>().unwrap(),
        share: BTreeSet::from(["dbus".to_owned(), "detector".to_owned()]),
        accept,
        min_ban_time: Duration::from_secs(60),
        max_publish_rate: 1_000,
        escalate_after: 0,
        escalate_factor: 1.0,
        escalate_window: Duration::from_secs(3_600),
        prune_after: Duration::ZERO,
        heartbeat: Duration::from_secs(1),
    }
}

fn manual(target: &str, secs_: u64) -> BanRequest {
    BanRequest {
        target: t(target),
        duration: secs(secs_),
        reason: "seen on a".into(),
        source: BanSource::Dbus,
        service: None,
    }
}

/// Waits (polling) until `check` holds; the time it took.
async fn within(what: &str, patience: Duration, check: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < patience,
            "waited {patience:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

fn banned(engine: &Engine, target: &str) -> bool {
    engine.is_banned(&t(target))
}

#[tokio::test(flavor = "multi_thread")]
async fn root_bans_and_unbans_travel_and_each_node_keeps_its_own_protection() {
    let pg = Postgres::start();
    let a = Harness::start().await;
    let b = Harness::start().await;
    let fa = FleetService::start(a.engine.clone(), options(&pg, "a", Accept::All));
    let fb = FleetService::start(
        b.engine.clone(),
        options(&pg, "b", Accept::Nodes(BTreeSet::from(["a".to_owned()]))),
    );
    within("both connected", PATIENCE, || {
        fa.stats().connected && fb.stats().connected
    })
    .await;

    // A ban on a is enforced on b within a second, as the fleet's.
    a.engine.ban(manual("203.0.113.7", 3_600)).await.unwrap();
    let took = within("the ban on b", Duration::from_secs(1), || {
        banned(&b.engine, "203.0.113.7")
    })
    .await;
    eprintln!("a ban on a was enforced on b after {took:?}");
    let on_b = b.engine.active_ban(&t("203.0.113.7")).unwrap();
    assert_eq!(on_b.source.as_str(), "fleet:a");
    assert!(on_b.reason.contains("(from a)"), "{}", on_b.reason);
    let left = on_b.expires_at.unwrap() - unix_now();
    assert!((3_500..=3_600).contains(&left), "{left}");
    assert!(b.fw.contains("203.0.113.7"));

    // Unbans travel; b's own bans are never lifted by a peer.
    b.engine.ban(manual("198.51.100.4", 3_600)).await.unwrap();
    a.engine.ban(manual("198.51.100.4", 3_600)).await.unwrap();
    a.engine.unban(&t("203.0.113.7"), "unban").await.unwrap();
    a.engine.unban(&t("198.51.100.4"), "unban").await.unwrap();
    within("the unban on b", Duration::from_secs(2), || {
        !banned(&b.engine, "203.0.113.7")
    })
    .await;
    assert!(banned(&b.engine, "198.51.100.4"), "b's own ban stays");
    // ...and b lifting a fleet ban it applied is not echoed back to a as a's unban.

    // b's whitelist vetoes a's ban of b's trusted network; a still bans it itself.
    b.engine
        .whitelist_add(&t("10.9.0.0/16"), "b's office")
        .await
        .unwrap();
    a.engine.ban(manual("10.9.1.1", 3_600)).await.unwrap();
    // The whole internet, or a network holding b's loopback: refused by b.
    a.engine.ban(manual("203.0.113.99", 3_600)).await.unwrap();
    within("the marker ban on b", Duration::from_secs(2), || {
        banned(&b.engine, "203.0.113.99")
    })
    .await;
    assert!(!banned(&b.engine, "10.9.1.1"));
    assert!(banned(&a.engine, "10.9.1.1"));
    assert!(fb.stats().vetoed >= 1, "{:?}", fb.stats());

    // The fleet whitelist: no node applies a peer's ban inside it.
    let fleet = FleetStore::connect(&pg.url()).await.unwrap();
    fleet
        .whitelist_add(&t("172.16.0.0/12"), "the fleet's own", unix_now())
        .await
        .unwrap();
    a.engine.ban(manual("172.20.0.5", 3_600)).await.unwrap();
    a.engine.ban(manual("203.0.113.100", 3_600)).await.unwrap();
    within("the second marker on b", Duration::from_secs(2), || {
        banned(&b.engine, "203.0.113.100")
    })
    .await;
    assert!(!banned(&b.engine, "172.20.0.5"));

    // A node b does not accept: its bans are ignored; a accepts every node.
    let c = Harness::start().await;
    let fc = FleetService::start(c.engine.clone(), options(&pg, "c", Accept::All));
    c.engine.ban(manual("192.0.2.77", 3_600)).await.unwrap();
    within("c's ban on a", Duration::from_secs(2), || {
        banned(&a.engine, "192.0.2.77")
    })
    .await;
    assert!(!banned(&b.engine, "192.0.2.77"));
    within("b ignoring c", Duration::from_secs(2), || {
        fb.stats().ignored >= 1
    })
    .await;

    // Bans shorter than min_ban_time, and the fleet's own bans, are not published.
    a.engine.ban(manual("192.0.2.200", 30)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!banned(&b.engine, "192.0.2.200"));
    let published_by_b: Vec<_> = fleet
        .changes_after(0, 1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|change| change.node == "b")
        .map(|change| change.change.target.to_string())
        .collect();
    assert_eq!(
        published_by_b,
        ["198.51.100.4"],
        "b publishes only its own bans"
    );

    let nodes: Vec<String> = fleet
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(nodes, ["a", "b", "c"]);
    fc.shutdown().await;
    fa.shutdown().await;
    fb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn root_an_outage_stops_no_ban_and_loses_no_publication() {
    let mut pg = Postgres::start();
    let a = Harness::start().await;
    let b = Harness::start().await;
    let fa = FleetService::start(a.engine.clone(), options(&pg, "a", Accept::All));
    let fb = FleetService::start(b.engine.clone(), options(&pg, "b", Accept::All));
    within("both connected", PATIENCE, || {
        fa.stats().connected && fb.stats().connected
    })
    .await;
    pg.stop();
    // Local banning goes on; the publication waits in a's outbox.
    a.engine.ban(manual("203.0.113.50", 3_600)).await.unwrap();
    assert!(a.fw.contains("203.0.113.50"));
    within("the publication queued", PATIENCE, || {
        fa.stats().outbox >= 1
    })
    .await;
    assert!(!banned(&b.engine, "203.0.113.50"));
    pg.start_again();
    within(
        "the ban on b after the outage",
        Duration::from_secs(30),
        || banned(&b.engine, "203.0.113.50"),
    )
    .await;
    assert_eq!(a.store.outbox_len().await.unwrap(), 0);
    fa.shutdown().await;
    fb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn root_a_node_back_from_an_outage_catches_up_in_one_transaction() {
    let pg = Postgres::start();
    let a = Harness::start().await;
    let b = Harness::start().await;
    let fa = FleetService::start(a.engine.clone(), options(&pg, "a", Accept::All));
    within("a connected", PATIENCE, || fa.stats().connected).await;
    // b is away while a bans 5,000 addresses.
    a.engine
        .ban_many(
            (0..5_000)
                .map(|i| BanRequest {
                    target: seeded_address(i),
                    duration: secs(3_600),
                    reason: "a blocklist".into(),
                    source: BanSource::Dbus,
                    service: None,
                })
                .collect(),
        )
        .await
        .unwrap();
    within("a's publications sent", Duration::from_secs(30), || {
        fa.stats().published >= 5_000
    })
    .await;
    let applies_before = b.fw.apply_calls();
    let fb = FleetService::start(b.engine.clone(), options(&pg, "b", Accept::All));
    let took = within("b caught up", Duration::from_secs(30), || {
        b.engine.active_ban_count() == 5_000
    })
    .await;
    eprintln!("b applied 5,000 missed bans in {took:?}");
    assert_eq!(b.fw.apply_calls(), applies_before + 1, "one transaction");
    // Its position is kept: a restart applies nothing again.
    within("b's position saved", PATIENCE, || {
        fb.stats().applied_id == fb.stats().fleet_id && fb.stats().fleet_id > 0
    })
    .await;
    fb.shutdown().await;
    let fb = FleetService::start(b.engine.clone(), options(&pg, "b", Accept::All));
    within("b connected again", PATIENCE, || fb.stats().connected).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        b.fw.apply_calls(),
        applies_before + 1,
        "nothing applied twice"
    );
    fa.shutdown().await;
    fb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn root_a_ban_held_by_enough_nodes_is_escalated() {
    let pg = Postgres::start();
    let a = Harness::start().await;
    let c = Harness::start().await;
    let b = Harness::start().await;
    let fa = FleetService::start(a.engine.clone(), options(&pg, "a", Accept::All));
    // c applies nobody's bans: it sees the attacker itself, as an independent report.
    let fc = FleetService::start(
        c.engine.clone(),
        options(&pg, "c", Accept::Nodes(BTreeSet::new())),
    );
    let mut escalating = options(&pg, "b", Accept::All);
    escalating.escalate_after = 2;
    escalating.escalate_factor = 4.0;
    let fb = FleetService::start(b.engine.clone(), escalating);
    within("all connected", PATIENCE, || {
        fa.stats().connected && fb.stats().connected && fc.stats().connected
    })
    .await;
    a.engine.ban(manual("203.0.113.8", 600)).await.unwrap();
    within("a's ban on b", Duration::from_secs(2), || {
        banned(&b.engine, "203.0.113.8")
    })
    .await;
    let once = b.engine.active_ban(&t("203.0.113.8")).unwrap();
    assert!(once.expires_at.unwrap() - unix_now() <= 600);
    // A second node reports it: b applies it four times as long.
    c.engine.ban(manual("203.0.113.8", 600)).await.unwrap();
    within("the escalated ban on b", Duration::from_secs(2), || {
        b.engine
            .active_ban(&t("203.0.113.8"))
            .and_then(|ban| ban.expires_at)
            .is_some_and(|end| end - unix_now() > 2_000)
    })
    .await;
    fa.shutdown().await;
    fb.shutdown().await;
    fc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn root_a_node_prunes_what_no_longer_says_anything_and_keeps_bans_in_force() {
    let pg = Postgres::start();
    let fleet = FleetStore::connect(&pg.url()).await.unwrap();
    let now = unix_now();
    let days = |n: i64| now - n * 86_400;
    let ban = |target: &str, expires_at: Option<i64>| crmonban_store::Publication {
        kind: crmonban_store::ChangeKind::Ban,
        target: t(target),
        reason: "r".into(),
        service: None,
        first_seen: None,
        last_seen: None,
        expires_at,
    };
    let unban = crmonban_store::Publication {
        kind: crmonban_store::ChangeKind::Unban,
        ..ban("192.0.2.1", None)
    };
    // Three days old: a ban and its unban, a ban that ended; a permanent ban still in force.
    fleet
        .publish(
            "old",
            &[
                ban("192.0.2.1", None),
                unban,
                ban("192.0.2.2", Some(days(3) + 3_600)),
                ban("192.0.2.3", None),
            ],
            days(3),
        )
        .await
        .unwrap();
    // Yesterday's ended ban is inside the horizon: kept.
    fleet
        .publish("old", &[ban("192.0.2.4", Some(days(1)))], days(1) - 60)
        .await
        .unwrap();
    let a = Harness::start().await;
    let mut pruning = options(&pg, "a", Accept::All);
    pruning.prune_after = Duration::from_secs(2 * 86_400);
    let fa = FleetService::start(a.engine.clone(), pruning);
    let left = || async {
        let rows = fleet.changes_after(0, 100).await.unwrap();
        rows.iter()
            .map(|c| c.change.target.to_string())
            .collect::<Vec<_>>()
    };
    let mut waited = Duration::ZERO;
    while left().await.len() != 2 && waited < PATIENCE {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    assert_eq!(left().await, ["192.0.2.3", "192.0.2.4"]);
    // The permanent ban in force was applied, as the only one still saying something.
    within("the old permanent ban on a", PATIENCE, || {
        banned(&a.engine, "192.0.2.3")
    })
    .await;
    fa.shutdown().await;
}
