//! The store on a real disk that fills up: a failed write is reported as "disk full" and leaves
//! no connection broken; once space is freed, writes succeed again without a restart. Panics
//! without root (it mounts a small tmpfs).

use crmonban_core::{Ban, BanSource, Target};
use crmonban_store::Store;
use crmonban_testutil::SmallDisk;

fn ban(n: u32) -> Ban {
    Ban {
        target: Target::from(std::net::Ipv4Addr::from(0x0b00_0000 + n)),
        reason: "x".repeat(200),
        source: BanSource::Detector,
        service: Some("ssh".to_owned()),
        banned_at: 1_700_000_000,
        expires_at: None,
        offence: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_a_full_disk_fails_writes_clearly_and_recording_resumes_when_freed() {
    let disk = SmallDisk::mount(4);
    let store = Store::open(&disk.path().join("crmonban.db")).await.unwrap();
    for n in 0..10 {
        store.record_ban(&ban(n)).await.unwrap();
    }
    disk.fill();
    let mut failures = 0;
    let mut messages = Vec::new();
    // Many writes, so that every pooled connection meets the full disk.
    for n in 10..2_000 {
        if let Err(e) = store.record_ban(&ban(n)).await {
            failures += 1;
            if messages.len() < 3 {
                messages.push(e.to_string());
            }
        }
    }
    assert!(failures > 0, "the disk never filled up");
    for message in &messages {
        assert!(message.contains("disk full"), "{message}");
    }
    disk.free();
    for n in 2_000..2_050 {
        if let Err(e) = store.record_ban(&ban(n)).await {
            panic!("a write failed after the disk was freed: {e}");
        }
    }
    assert!(store.count_active(1_700_000_001).await.unwrap() >= 60);
    store.close().await;
}
