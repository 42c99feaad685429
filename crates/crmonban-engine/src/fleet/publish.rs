//! This node's side of publishing: [`queue`] turns the engine's events into outbox rows in
//! the node's SQLite database (bans of shared sources, unbans), [`send`] drains the outbox into
//! the fleet database, rate-limited, with backoff while the fleet is down, beats the heart,
//! and prunes the fleet's old changes hourly (beside it, never holding a publication up).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crmonban_core::unix_now;
use crmonban_store::{ChangeKind, FleetStore, Publication};
use tokio::sync::watch;

use super::{FleetOptions, Shared, connect, pause};
use crate::{Engine, EngineEvent, Overflow};

/// Events the queue subscription holds before the engine waits (lossless).
const SUBSCRIPTION: usize = 4_096;
/// Outbox rows read per round.
const PAGE: u32 = 1_000;
/// How often a node offers to prune the fleet's changes (one node at a time does).
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

/// The reason of unbans this node makes when applying a peer's unban (never published again).
pub(crate) const FLEET_UNBAN: &str = "fleet unban";

/// Writes each shared ban and each unban to the outbox.
pub(super) async fn queue(
    engine: Engine,
    options: Arc<FleetOptions>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut events = engine.subscribe_lossless(SUBSCRIPTION, Overflow::Wait);
    let mut batch = Vec::new();
    // Once asked to stop, what the subscription already holds is still queued: no ban made
    // before the stop is left unpublished.
    let mut stopping = false;
    loop {
        let received = if stopping {
            let waiting = events.recv_many(&mut batch, 512);
            tokio::time::timeout(Duration::ZERO, waiting)
                .await
                .unwrap_or(0)
        } else {
            tokio::select! {
                n = events.recv_many(&mut batch, 512) => n,
                _ = stop.changed() => {
                    stopping = true;
                    continue;
                }
            }
        };
        if received == 0 {
            return;
        }
        let publications: Vec<Publication> = batch
            .drain(..)
            .filter_map(|event| publication_of(&event, &options))
            .collect();
        if publications.is_empty() {
            continue;
        }
        // A database fault: retried until it takes them (the events wait meanwhile).
        loop {
            match engine.store().outbox_push(&publications, unix_now()).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!("fleet: cannot queue publications: {e}; retrying");
                    if !pause(&mut stop, Duration::from_secs(1)).await {
                        return;
                    }
                }
            }
        }
        shared
            .outbox
            .fetch_add(publications.len() as u64, Ordering::Relaxed);
        shared.queued.notify_one();
    }
}

/// What `event` publishes, if anything: bans of a shared source lasting at least
/// `min_ban_time`; unbans other than expiries (peers know when a ban ends) and other than
/// this node applying a peer's unban.
fn publication_of(event: &EngineEvent, options: &FleetOptions) -> Option<Publication> {
    match event {
        EngineEvent::BanAdded { ban } => {
            let source = ban.source.as_str();
            if source.starts_with("fleet") || !options.share.contains(source) {
                return None;
            }
            if let Some(end) = ban.expires_at
                && end.saturating_sub(ban.banned_at) < options.min_ban_time.as_secs() as i64
            {
                return None;
            }
            Some(Publication {
                kind: ChangeKind::Ban,
                target: ban.target,
                reason: ban.reason.chars().take(512).collect(),
                service: ban.service.clone(),
                first_seen: None,
                last_seen: Some(ban.banned_at),
                expires_at: ban.expires_at,
            })
        }
        EngineEvent::BanRemoved { target, reason } => {
            if reason == "expired" || reason == FLEET_UNBAN {
                return None;
            }
            Some(Publication {
                kind: ChangeKind::Unban,
                target: *target,
                reason: reason.chars().take(512).collect(),
                service: None,
                first_seen: None,
                last_seen: None,
                expires_at: None,
            })
        }
        _ => None,
    }
}

/// Sends the outbox to the fleet database and beats the heart, until stopped.
pub(super) async fn send(
    engine: Engine,
    options: Arc<FleetOptions>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let version = env!("CARGO_PKG_VERSION");
    let rate = options.max_publish_rate.max(1);
    // Hourly across reconnections too (a flapping link does not prune at each one).
    let mut pruning = Pruning::default();
    'connect: loop {
        let Some(fleet) = connect(&options, &shared, &mut stop).await else {
            return;
        };
        let mut last_beat: Option<tokio::time::Instant> = None;
        loop {
            pruning.offer(&fleet, &options);
            if last_beat.is_none_or(|at| at.elapsed() >= options.heartbeat) {
                if let Err(e) = fleet.heartbeat(&options.node, version, unix_now()).await {
                    shared.failed("cannot send the heartbeat", &e);
                    fleet.close().await;
                    if !pause(&mut stop, Duration::from_secs(1)).await {
                        return;
                    }
                    continue 'connect;
                }
                last_beat = Some(tokio::time::Instant::now());
            }
            // At most `rate` a second: one page of at most `rate`, then the rest of the second.
            let started = tokio::time::Instant::now();
            let waiting = match engine.store().outbox_peek(rate.min(PAGE)).await {
                Ok(waiting) => waiting,
                Err(e) => {
                    tracing::warn!("fleet: cannot read the outbox: {e}");
                    Vec::new()
                }
            };
            if let Some((last, _)) = waiting.last() {
                let last = *last;
                let publications: Vec<Publication> = waiting.into_iter().map(|(_, p)| p).collect();
                match fleet
                    .publish(&options.node, &publications, unix_now())
                    .await
                {
                    Ok(_) => {
                        shared.recovered();
                        let sent = publications.len() as u64;
                        shared.published.fetch_add(sent, Ordering::Relaxed);
                        // Sent: a crash before this line sends them again (a ban published
                        // twice is harmless: applying one is idempotent).
                        if let Err(e) = engine.store().outbox_remove(last).await {
                            tracing::warn!("fleet: cannot clear sent publications: {e}");
                        }
                        let left = engine.store().outbox_len().await.unwrap_or(0);
                        shared.outbox.store(left, Ordering::Relaxed);
                    }
                    Err(e) => {
                        shared.failed("cannot publish", &e);
                        fleet.close().await;
                        if !pause(&mut stop, Duration::from_secs(1)).await {
                            return;
                        }
                        continue 'connect;
                    }
                }
                let rest = Duration::from_secs(1).saturating_sub(started.elapsed());
                if publications.len() as u32 >= rate && !pause(&mut stop, rest).await {
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = shared.queued.notified() => {}
                _ = tokio::time::sleep(options.heartbeat) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// The fleet's hourly pruning, run beside the sender on a clone of its store.
#[derive(Default)]
struct Pruning {
    last: Option<tokio::time::Instant>,
    running: Option<tokio::task::JoinHandle<()>>,
}

impl Pruning {
    /// Starts a prune when one is due (`prune_after` set, an hour since the last, none running).
    fn offer(&mut self, fleet: &FleetStore, options: &FleetOptions) {
        if options.prune_after.is_zero()
            || self.last.is_some_and(|at| at.elapsed() < PRUNE_EVERY)
            || self
                .running
                .as_ref()
                .is_some_and(|task| !task.is_finished())
        {
            return;
        }
        self.last = Some(tokio::time::Instant::now());
        let horizon = i64::try_from(options.prune_after.as_secs()).unwrap_or(i64::MAX);
        let before = unix_now().saturating_sub(horizon);
        let fleet = fleet.clone();
        self.running = Some(tokio::spawn(async move {
            match fleet.prune(before).await {
                Ok(Some(0)) => {}
                Ok(Some(rows)) => {
                    tracing::info!(rows, "fleet: pruned changes that no longer say anything")
                }
                Ok(None) => tracing::debug!("fleet: another node is pruning"),
                Err(e) => tracing::warn!("fleet: cannot prune: {e}"),
            }
        }));
    }
}

impl Drop for Pruning {
    fn drop(&mut self) {
        if let Some(task) = &self.running {
            task.abort();
        }
    }
}
