use std::sync::Arc;
use std::time::Duration;

use super::*;

fn queue(max_events: usize, max_bytes: usize) -> TargetQueue {
    TargetQueue::new(QueueLimits {
        max_events,
        max_bytes,
    })
}

fn texts(batch: &Batch) -> Vec<&str> {
    batch.lines.iter().map(|l| &**l).collect()
}

#[test]
fn drops_the_oldest_lines_over_the_event_limit() {
    let q = queue(3, DEFAULT_MAX_BYTES);
    for i in 0..5 {
        q.push(format!("line {i}"));
    }
    assert_eq!(q.len(), 3);
    assert_eq!(texts(&q.peek(10)), ["line 2", "line 3", "line 4"]);
    assert_eq!(q.snapshot().dropped, 2);
    assert_eq!(q.bytes(), 18);
}

#[test]
fn drops_the_oldest_lines_over_the_byte_limit() {
    let q = queue(100, 10);
    q.push("aaaa".to_owned());
    q.push("bbbb".to_owned());
    assert_eq!(q.bytes(), 8);
    q.push("cccc".to_owned());
    assert_eq!(texts(&q.peek(10)), ["bbbb", "cccc"]);
    assert_eq!(q.bytes(), 8);
    assert_eq!(q.stats().dropped.load(Ordering::Relaxed), 1);
    // A line over the whole budget takes everything with it, itself included.
    q.push("x".repeat(11));
    assert!(q.is_empty());
    assert_eq!(q.bytes(), 0);
    assert_eq!(q.snapshot().dropped, 4);
}

#[test]
fn a_batch_is_taken_without_removing_it_and_acknowledged_in_part() {
    let q = queue(10, DEFAULT_MAX_BYTES);
    for i in 0..5 {
        q.push(format!("{i}"));
    }
    let batch = q.peek(3);
    assert_eq!(texts(&batch), ["0", "1", "2"]);
    assert_eq!(q.len(), 5, "taking a batch removes nothing");
    assert_eq!(texts(&q.peek(3)), ["0", "1", "2"], "the same batch again");
    assert_eq!(batch.through(0), None);
    // Two of three got through.
    assert_eq!(q.ack(batch.through(2).unwrap()), 2);
    assert_eq!(texts(&q.peek(10)), ["2", "3", "4"]);
    let batch = q.peek(10);
    assert_eq!(
        q.ack(batch.through(99).unwrap()),
        3,
        "through is capped at the batch"
    );
    assert!(q.is_empty());
    assert!(q.peek(10).lines.is_empty());
}

#[test]
fn an_acknowledgement_after_an_overflow_keeps_newer_lines() {
    let q = queue(3, DEFAULT_MAX_BYTES);
    for i in 0..3 {
        q.push(format!("old {i}"));
    }
    let batch = q.peek(2);
    assert_eq!(texts(&batch), ["old 0", "old 1"]);
    // While the batch is being sent, the queue overflows: "old 0..2" are dropped.
    for i in 0..3 {
        q.push(format!("new {i}"));
    }
    assert_eq!(q.ack(batch.through(2).unwrap()), 0);
    assert_eq!(texts(&q.peek(10)), ["new 0", "new 1", "new 2"]);

    // A partial overflow: only the lines still at the front are removed.
    let q = queue(3, DEFAULT_MAX_BYTES);
    for i in 0..3 {
        q.push(format!("a{i}"));
    }
    let batch = q.peek(3);
    q.push("b0".to_owned()); // drops a0
    assert_eq!(q.ack(batch.through(3).unwrap()), 2);
    assert_eq!(texts(&q.peek(10)), ["b0"]);
    assert_eq!(q.snapshot().dropped, 1);
}

#[tokio::test]
async fn a_push_wakes_the_waiting_worker() {
    let q = Arc::new(queue(3, DEFAULT_MAX_BYTES));
    let waiter = tokio::spawn({
        let q = Arc::clone(&q);
        async move { q.wait_nonempty().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !waiter.is_finished(),
        "an empty queue keeps the worker waiting"
    );
    q.push("x".to_owned());
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("woken")
        .unwrap();
    // Non-empty: returns at once.
    tokio::time::timeout(Duration::from_secs(10), q.wait_nonempty())
        .await
        .expect("returns at once");
}

#[test]
fn the_snapshot_shows_counters_and_the_last_error_on_one_bounded_line() {
    let q = queue(3, DEFAULT_MAX_BYTES);
    q.push("x".to_owned());
    let stats = q.stats();
    stats.sent.fetch_add(5, Ordering::Relaxed);
    stats.rejected.fetch_add(2, Ordering::Relaxed);
    stats.failures.fetch_add(7, Ordering::Relaxed);
    stats.up.store(false, Ordering::Relaxed);
    let long = format!("first\nsecond\r\n\tthird\u{7} {}", "é".repeat(400));
    stats.set_last_error(&long);
    let snapshot = q.snapshot();
    let error = snapshot.last_error.clone().unwrap();
    assert!(error.starts_with("first second third "), "{error}");
    assert!(error.len() <= MAX_ERROR_BYTES);
    assert!(!error.chars().any(char::is_control));
    assert_eq!(
        snapshot,
        StatsSnapshot {
            sent: 5,
            dropped: 0,
            rejected: 2,
            failures: 7,
            queued: 1,
            up: false,
            last_error: Some(error),
        }
    );
}

#[test]
fn default_limits() {
    let limits = QueueLimits::default();
    assert_eq!(limits.max_bytes, 8 * 1024 * 1024);
    assert_eq!(
        limits.max_events,
        crmonban_core::config::DEFAULT_SIEM_QUEUE_SIZE
    );
    assert!(queue(1, 1).snapshot().up, "up until an attempt fails");
}
