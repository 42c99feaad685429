//! The daemon under a hostile load of its own API, in a namespace of its own: eight local
//! clients hammering Ban and Status do not starve another client. Panics without root.

mod support;

use std::time::{Duration, Instant};

use support::*;

/// Eight connections ban and ask Status as fast as they can for five seconds; a ninth asks
/// Status every 20 ms meanwhile: its 99th percentile answer time stays under 100 ms.
#[test]
fn root_eight_hammering_clients_leave_others_answered_within_100_ms() {
    let daemon = Daemon::start("");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (latencies, bans) = runtime.block_on(async {
        let until = Instant::now() + Duration::from_secs(5);
        let mut hammers = Vec::new();
        for client in 0..8u32 {
            let proxy = proxy(&daemon.bus).await;
            hammers.push(tokio::spawn(async move {
                let mut n = 0u32;
                while Instant::now() < until {
                    let target = std::net::Ipv4Addr::from(0x0b00_0000 + (client << 16) + n);
                    proxy
                        .ban(&target.to_string(), 600, "load")
                        .await
                        .expect("a ban under load");
                    proxy.status().await.expect("Status under load");
                    n += 1;
                }
                n
            }));
        }
        let observer = proxy(&daemon.bus).await;
        let mut latencies = Vec::new();
        while Instant::now() < until {
            let asked = Instant::now();
            observer.status().await.expect("the observer's Status");
            latencies.push(asked.elapsed());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut bans = 0;
        for hammer in hammers {
            bans += hammer.await.unwrap();
        }
        (latencies, bans)
    });
    let mut sorted = latencies.clone();
    sorted.sort();
    let p99 = sorted[sorted.len() * 99 / 100];
    eprintln!(
        "{bans} bans by 8 clients in 5 s; observer: {} answers, median {:?}, p99 {p99:?}",
        sorted.len(),
        sorted[sorted.len() / 2]
    );
    assert!(
        sorted.len() > 50,
        "the observer got only {} answers",
        sorted.len()
    );
    assert!(bans > 100, "the hammering clients made only {bans} bans");
    assert!(
        p99 < Duration::from_millis(100),
        "p99 {p99:?} (median {:?})",
        sorted[sorted.len() / 2]
    );
}
