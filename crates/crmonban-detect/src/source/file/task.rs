//! The task of one file source: rounds of reading (on the blocking pool while catching up,
//! in place while tailing), handing the lines over, and waiting for inotify (linemux) or the
//! periodic re-check.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::Tail;
use crate::source::{Delivery, SourceLine, Stopped, unix_micros};

/// The task of one file source.
pub(in crate::source) async fn run(path: PathBuf, source: String, mut delivery: Delivery) {
    let saved = delivery.current.clone();
    let mut tail = Some(Tail::new(
        path.clone(),
        source.clone(),
        delivery.options.max_line,
        saved,
    ));
    let mut watcher: Option<linemux::MuxedEvents> = None;
    let mut warned_missing = false;
    let mut first_round = true;
    // The last round read the file to its end: the next one only has what was appended since.
    let mut steady = false;
    let poll = delivery.options.poll_interval;
    loop {
        if delivery.stopping() {
            break;
        }
        if watcher.is_none() {
            watcher = watch(&path).await;
        }
        let Some(mut owned) = tail.take() else { break };
        let round = if steady {
            // Tailing a live log: a notification means a few new lines in the page cache, read
            // in microseconds right here. A hop to the blocking pool cost ~0.1 ms of the ban
            // latency.
            let round = owned.round();
            tail = Some(owned);
            round
        } else {
            // Opening, resuming or catching up (up to ROUND_BYTES per round): the blocking pool.
            match tokio::task::spawn_blocking(move || {
                let round = owned.round();
                (owned, round)
            })
            .await
            {
                Ok((back, round)) => {
                    tail = Some(back);
                    round
                }
                Err(e) => {
                    delivery
                        .counters
                        .fail(format!("reading {} failed: {e}", path.display()));
                    break;
                }
            }
        };
        steady = round.reading && !round.more && round.error.is_none();
        if let Some(error) = round.error {
            delivery.counters.fail(error);
        } else if round.reading {
            delivery.counters.recovered();
        }
        for skipped in &round.skipped {
            delivery.counters.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(service = %delivery.service, "{skipped}");
        }
        if round.missing && !warned_missing {
            warned_missing = true;
            tracing::warn!(
                service = %delivery.service,
                path = %path.display(),
                "log file does not exist yet; it will be read from its start when it appears"
            );
        }
        let received_at = unix_micros();
        let mut stopped = false;
        for line in round.lines {
            let line = SourceLine {
                service: std::sync::Arc::clone(&delivery.service),
                line: line.bytes,
                truncated: line.truncated,
                position: line.position,
                received_at,
                time: None,
                fields: None,
                before: None,
                replayed: false,
                seq: 0,
            };
            if let Err(Stopped) = delivery.send(line).await {
                stopped = true;
                break;
            }
        }
        if stopped {
            break;
        }
        if let Some(position) = round.position {
            delivery.advance(position);
        }
        if first_round && round.reading {
            // The starting point is worth saving at once: lines written from now on are new.
            first_round = false;
            delivery.save_consumed().await;
        }
        if round.more {
            continue;
        }
        // Wait for a notification, the periodic re-check, or a stop.
        let until = tokio::time::Instant::now() + poll;
        loop {
            tokio::select! {
                biased;
                _ = delivery.stop.changed() => break,
                event = next_event(&mut watcher) => {
                    if event { break }
                }
                _ = tokio::time::sleep_until(until) => break,
                _ = delivery.save_tick.tick() => delivery.save_consumed().await,
            }
        }
    }
    delivery.save_latest().await;
}

async fn watch(path: &Path) -> Option<linemux::MuxedEvents> {
    let mut events = linemux::MuxedEvents::new().ok()?;
    match events.add_file(path).await {
        Ok(_) => Some(events),
        Err(e) => {
            tracing::debug!(path = %path.display(), "no file notifications yet (re-checking periodically): {e}");
            None
        }
    }
}

/// `true` on a notification; on an error or an empty watch the watch is dropped (and rebuilt
/// at the next round) and this waits forever, leaving the periodic re-check to wake us.
async fn next_event(watcher: &mut Option<linemux::MuxedEvents>) -> bool {
    let Some(events) = watcher.as_mut() else {
        return std::future::pending().await;
    };
    match events.next_event().await {
        Ok(Some(_)) => true,
        Ok(None) | Err(_) => {
            *watcher = None;
            std::future::pending().await
        }
    }
}
