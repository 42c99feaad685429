//! Storage faults under the engine, on a real tmpfs that fills up: bans and unbans are enforced
//! at once however the database fails, their records wait in order and are written by
//! themselves once space is freed. Panics without root (it mounts the tmpfs).

mod common;

use std::time::{Duration, Instant};

use common::*;
use crmonban_engine::Engine;
use crmonban_store::Store;
use crmonban_testutil::SmallDisk;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_a_full_disk_never_refuses_a_ban_and_the_records_follow_once_freed() {
    let disk = SmallDisk::mount(4);
    let store = Store::open(&disk.path().join("crmonban.db")).await.unwrap();
    let fw = SharedBackend::new();
    let engine = Engine::start(quick_options(), Box::new(fw.clone()), store.clone())
        .await
        .unwrap();
    engine
        .ban(request("198.51.100.1", secs(600)))
        .await
        .unwrap();
    disk.fill();

    // Enough bans that every pooled connection meets the full disk.
    let targets: Vec<String> = (0..200).map(|i| format!("203.0.113.{}", i % 250)).collect();
    for (i, target) in targets.iter().enumerate() {
        let ban = engine.ban(request(target, secs(600 + i as u64))).await;
        assert!(ban.is_ok(), "ban refused on a full disk: {ban:?}");
        assert!(fw.contains(target), "{target} not in the kernel");
    }
    assert!(engine.unban(&t("198.51.100.1"), "unban").await.unwrap());
    assert!(!fw.contains("198.51.100.1"));
    let stats = engine.record_stats();
    assert!(stats.pending > 0 && stats.failed > 0, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");

    disk.free();
    let until = Instant::now() + PATIENCE;
    while engine.record_stats().pending > 0 {
        assert!(
            Instant::now() < until,
            "records still waiting: {:?}",
            engine.record_stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The records are in the store, in order: the unban after the ban.
    let now = crmonban_core::unix_now();
    assert!(
        store
            .active_ban(&t("198.51.100.1"), now)
            .await
            .unwrap()
            .is_none()
    );
    let history = store.ban_history(&t("198.51.100.1")).await.unwrap();
    assert_eq!(history.len(), 1);
    for target in &targets {
        assert!(
            store.active_ban(&t(target), now).await.unwrap().is_some(),
            "{target} not recorded"
        );
    }
    engine.shutdown().await;
}
