//! What the engine remembers besides bans: the activity log is complete under a burst (or its
//! losses counted), and events and activity are bounded by the retention settings.

mod common;

use std::time::{Duration, Instant};

use common::*;
use crmonban_core::{Event, EventKind, Service};
use crmonban_engine::{EngineOptions, Retention};

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
