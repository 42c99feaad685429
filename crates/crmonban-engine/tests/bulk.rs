//! Engine::ban_many over a recording firewall and a real SQLite store: one kernel transaction
//! for the whole batch, protection checked per target, duplicates counted once, bans only ever
//! lengthened, every ban recorded and announced.

mod common;

use std::collections::BTreeSet;

use common::*;
use crmonban_core::{BanSource, unix_now};
use crmonban_engine::{BanRequest, EngineError, EngineEvent, Overflow};
use crmonban_firewall::{Call, Change};

fn fleet_request(target: crmonban_core::Target, secs_: u64) -> BanRequest {
    BanRequest {
        target,
        duration: secs(secs_),
        reason: "5 failures of ssh on web1".into(),
        source: BanSource::Other("fleet:web1".into()),
        service: Some("ssh".into()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_is_one_transaction_with_refusals_per_target() {
    let h = Harness::start().await;
    let mut stream = h.engine.subscribe_lossless(10_000, Overflow::Wait);
    let mut requests: Vec<BanRequest> = (0..1_000)
        .map(|i| fleet_request(seeded_address(i), 600))
        .collect();
    // Never banned: loopback; a network holding loopback; given twice: one target.
    requests.push(fleet_request(t("127.0.0.1"), 600));
    requests.push(fleet_request(t("0.0.0.0/0"), 600));
    requests.push(fleet_request(seeded_address(7), 900));
    let applies_before = h.fw.apply_calls();

    let report = h.engine.ban_many(requests).await.unwrap();
    assert_eq!(report.banned.len(), 1_000);
    assert_eq!(report.kept, 0);
    let refused: BTreeSet<String> = report.refused.iter().map(|(t, _)| t.to_string()).collect();
    assert_eq!(
        refused,
        BTreeSet::from(["127.0.0.1".to_owned(), "0.0.0.0/0".to_owned()])
    );
    assert!(
        report
            .refused
            .iter()
            .all(|(_, e)| matches!(e, EngineError::Protected { .. }))
    );
    // The last request for a target is the one made.
    let seventh = report
        .banned
        .iter()
        .find(|b| b.target == seeded_address(7))
        .unwrap();
    assert_eq!(seventh.expires_at.unwrap() - seventh.banned_at, 900);

    // One transaction in the kernel, holding all of them.
    assert_eq!(h.fw.apply_calls(), applies_before + 1);
    let Some(Call::Apply(changes)) = h.fw.calls().last().cloned() else {
        panic!("no apply")
    };
    assert_eq!(changes.len(), 1_000);
    assert!(changes.changes.iter().all(|c| matches!(c, Change::Add(_))));
    assert_eq!(h.engine.active_ban_count(), 1_000);
    // Recorded, with the source, and announced once each.
    let stored = h.store.active_bans(unix_now()).await.unwrap();
    assert_eq!(stored.len(), 1_000);
    assert!(stored.iter().all(|b| b.source.as_str() == "fleet:web1"));
    let mut announced = 0;
    while announced < 1_000 {
        match tokio::time::timeout(PATIENCE, stream.recv()).await {
            Ok(Some(EngineEvent::BanAdded { .. })) => announced += 1,
            Ok(Some(_)) => {}
            other => panic!("after {announced} BanAdded: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_only_lengthens_bans() {
    let h = Harness::start().await;
    let targets: Vec<_> = (0..10).map(seeded_address).collect();
    h.engine
        .ban_many(targets.iter().map(|t| fleet_request(*t, 3_600)).collect())
        .await
        .unwrap();
    let applies = h.fw.apply_calls();
    // Shorter: nothing changes, nothing reaches the kernel.
    let shorter = h
        .engine
        .ban_many(targets.iter().map(|t| fleet_request(*t, 60)).collect())
        .await
        .unwrap();
    assert_eq!((shorter.banned.len(), shorter.kept), (0, 10));
    assert_eq!(h.fw.apply_calls(), applies);
    // Longer for half: those five lengthened, in one more transaction.
    let longer = h
        .engine
        .ban_many(
            targets
                .iter()
                .enumerate()
                .map(|(i, t)| fleet_request(*t, if i < 5 { 7_200 } else { 60 }))
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!((longer.banned.len(), longer.kept), (5, 5));
    assert_eq!(h.fw.apply_calls(), applies + 1);
    assert!(longer.banned.iter().all(|b| b.offence == 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_the_kernel_refuses_changes_nothing() {
    let h = Harness::start().await;
    h.fw.lock()
        .refuse_with(Some(crmonban_firewall::FirewallError::Refused {
            message: "test refuses".into(),
            element: None,
        }));
    let err = h
        .engine
        .ban_many(
            (0..5)
                .map(|i| fleet_request(seeded_address(i), 60))
                .collect(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Firewall(_)), "{err}");
    assert_eq!(h.engine.active_ban_count(), 0);
    assert!(h.store.active_bans(unix_now()).await.unwrap().is_empty());
}
