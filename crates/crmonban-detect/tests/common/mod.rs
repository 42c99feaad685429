//! What the file and journal source tests share: quick source options, receiving a number of
//! lines before a deadline, checking that nothing more arrives, waiting for a condition, and a
//! clean stop.

use std::time::Duration;

use crmonban_detect::source::{SourceLine, SourceOptions, SourcesHandle};
use tokio::sync::mpsc::Receiver;
use tokio::time::{Instant, timeout};

/// Generous: the machine running the tests may be loaded.
pub const DEADLINE: Duration = crmonban_testutil::PATIENCE;

/// Short polling, saving and retry intervals, so that tests run quickly.
pub fn options() -> SourceOptions {
    SourceOptions {
        poll_interval: Duration::from_millis(100),
        save_interval: Duration::from_millis(100),
        retry_interval: Duration::from_millis(200),
        ..SourceOptions::default()
    }
}

/// A line as text, invalid bytes replaced (for messages and journal entries).
pub fn lossy(line: &SourceLine) -> String {
    String::from_utf8_lossy(&line.line).into_owned()
}

/// Receives exactly `n` lines, failing with what arrived when the deadline passes.
pub async fn recv(rx: &mut Receiver<SourceLine>, n: usize) -> Vec<SourceLine> {
    let until = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout_at(until, rx.recv()).await {
            Ok(Some(line)) => got.push(line),
            Ok(None) => panic!("channel closed after {:?}", lossy_all(&got)),
            Err(_) => panic!(
                "waited {DEADLINE:?} for {n} lines, got {:?}",
                lossy_all(&got)
            ),
        }
    }
    got
}

fn lossy_all(lines: &[SourceLine]) -> Vec<String> {
    lines.iter().map(lossy).collect()
}

/// Nothing more arrives for a while.
pub async fn assert_quiet(rx: &mut Receiver<SourceLine>) {
    if let Ok(Some(line)) = timeout(Duration::from_millis(400), rx.recv()).await {
        panic!("unexpected line {:?}", lossy(&line));
    }
}

pub async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let until = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < until, "waited {DEADLINE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Clean stop: shutdown, then drain until the channel closes; returns what was left.
pub async fn stop(handle: SourcesHandle, mut rx: Receiver<SourceLine>) -> Vec<String> {
    handle.shutdown().await;
    let mut rest = Vec::new();
    while let Some(line) = rx.recv().await {
        rest.push(lossy(&line));
    }
    rest
}
