//! What the engine remembers besides bans: the activity log is complete under a burst (or its
//! losses counted), and events and activity are bounded by the retention settings.

mod common;

use std::time::{Duration, Instant};

use common::*;
use crmonban_core::{Event, EventKind, Service};
use crmonban_engine::{EngineEvent, EngineOptions, Overflow, Retention};

/// 20,000 bans at once: every one has its activity entry, nothing was dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_bans_keeps_every_activity_entry() {
    let h = Harness::start().await;
    let mut tasks = Vec::new();
    for i in 0..20_000u32 {
        let engine = h.engine.clone();
        tasks.push(tokio::spawn(async move {
            let target = std::net::Ipv4Addr::from(0x0b00_0000 + i).to_string();
            engine.ban(request(&target, secs(600))).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let until = Instant::now() + PATIENCE;
    loop {
        let logged = h
            .store
            .recent_activity(100_000)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.action == "ban")
            .count();
        if logged == 20_000 {
            break;
        }
        assert!(
            Instant::now() < until,
            "{logged} of 20000 ban entries logged, {} dropped",
            h.engine.activity_dropped()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(h.engine.activity_dropped(), 0);
    assert_eq!(h.fw.elements().len(), 20_000);
}

/// Events and activity beyond the retention bounds are deleted by the engine's retention task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_pruned_to_its_bounds() {
    let options = EngineOptions {
        retention: Retention {
            max_age: Duration::from_secs(3600),
            max_event_rows: 100,
            max_activity_rows: 5,
            every: Duration::from_millis(100),
        },
        ..quick_options()
    };
    let h = Harness::start_with(options, SharedBackend::new()).await;
    let now = crmonban_core::unix_now();
    let events: Vec<Event> = (0..300)
        .map(|i| Event {
            addr: std::net::IpAddr::from(std::net::Ipv4Addr::from(0xc633_6400 + i)),
            service: Service::new("ssh"),
            kind: EventKind::FailedAuth,
            // A third of them older than the retention age.
            time: Some(if i < 100 { now - 7200 } else { now }),
        })
        .collect();
    h.store.record_events(&events).await.unwrap();
    for i in 0..20 {
        h.engine
            .ban(request(&format!("203.0.113.{i}"), secs(600)))
            .await
            .unwrap();
    }
    let until = Instant::now() + PATIENCE;
    loop {
        let events = h.store.recent_events(1000).await.unwrap().len();
        let activity = h.store.recent_activity(1000).await.unwrap().len();
        if events == 100 && activity == 5 {
            break;
        }
        assert!(
            Instant::now() < until,
            "{events} events and {activity} activity entries kept"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A flush of 100,000 bans: a lossless subscriber that asked to be waited for gets every
/// BanRemoved, in order; one that asked for drops (and never reads) counts every event it lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_of_100k_bans_reaches_a_lossless_subscriber_whole() {
    let (_dir, store) = temp_store().await;
    let now = crmonban_core::unix_now();
    let bans: Vec<crmonban_core::Ban> = (0..100_000u32)
        .map(|i| crmonban_core::Ban {
            target: crmonban_core::Target::from(std::net::Ipv4Addr::from(0x0b00_0000 + i)),
            reason: "bulk".into(),
            source: crmonban_core::BanSource::Dbus,
            service: None,
            banned_at: now,
            expires_at: Some(now + 3600),
            offence: 1,
        })
        .collect();
    store.record_bans(&bans).await.unwrap();
    let fw = SharedBackend::new();
    let engine = crmonban_engine::Engine::start(quick_options(), Box::new(fw.clone()), store)
        .await
        .unwrap();
    assert_eq!(engine.active_ban_count(), 100_000);
    let mut whole = engine.subscribe_lossless(1024, Overflow::Wait);
    let lossy = engine.subscribe_lossless(10, Overflow::DropNewest);
    let reader = tokio::spawn(async move {
        let mut removed = Vec::new();
        let mut batch = Vec::new();
        while removed.len() < 100_000 {
            batch.clear();
            if whole.recv_many(&mut batch, 4096).await == 0 {
                break;
            }
            for event in &batch {
                if let EngineEvent::BanRemoved { target, reason } = event {
                    assert_eq!(reason, "flush");
                    removed.push(*target);
                }
            }
        }
        removed
    });
    assert_eq!(engine.flush().await.unwrap(), 100_000);
    let removed = tokio::time::timeout(PATIENCE, reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(removed.len(), 100_000);
    let distinct: std::collections::HashSet<_> = removed.iter().collect();
    assert_eq!(distinct.len(), 100_000);
    // In the order the flush emitted them (address order).
    assert!(removed.windows(2).all(|w| w[0] < w[1]));
    assert!(lossy.dropped() >= 100_000 - 10, "{}", lossy.dropped());
    engine.shutdown().await;
}
