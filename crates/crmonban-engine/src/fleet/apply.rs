//! Applying the fleet's changes here ([`follow`]): read the changes after the last one applied
//! (on a notification, and every [`POLL`]), keep those of accepted peers, veto what the fleet
//! whitelist covers, escalate bans many nodes reported, ban through [`Engine::ban_many`] a page at
//! a time, unban only bans the unbanning peer made, and save how far it got.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crmonban_core::config::BanDuration;
use crmonban_core::{BanSource, Target, unix_now};
use crmonban_store::{ChangeKind, FleetChange, FleetStore, StoreError};
use tokio::sync::watch;

use super::publish::FLEET_UNBAN;
use super::{FleetOptions, POLL, Shared, connect, pause};
use crate::{BanRequest, Engine, EngineError};

/// Changes read (and banned in one transaction) per page.
const PAGE: i64 = 10_000;
/// The shortest time between two reads of the fleet's changes.
const READ_GAP: Duration = Duration::from_millis(100);

/// Follows the fleet until stopped, reconnecting after faults.
pub(super) async fn follow(
    engine: Engine,
    options: Arc<FleetOptions>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let Some(fleet) = connect(&options, &shared, &mut stop).await else {
            return;
        };
        let result = follow_connected(&engine, &options, &shared, &fleet, &mut stop).await;
        shared.connected.store(false, Ordering::Relaxed);
        fleet.close().await;
        match result {
            Ok(()) => return,
            Err(e) => shared.failed("lost the fleet", &e),
        }
        if !pause(&mut stop, Duration::from_secs(1)).await {
            return;
        }
    }
}

/// `Ok` when asked to stop; an error when the connection failed.
async fn follow_connected(
    engine: &Engine,
    options: &FleetOptions,
    shared: &Shared,
    fleet: &FleetStore,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let mut listener = fleet.listener().await?;
    shared.connected.store(true, Ordering::Relaxed);
    let key = fleet.server();
    let mut applied = engine.store().fleet_cursor(&key).await?.unwrap_or(0);
    // The newest id a notification announced (publications commit in id order, so all
    // below it are readable); asked of the database after a poll or an odd payload.
    let mut announced: Option<i64> = None;
    loop {
        let read_at = tokio::time::Instant::now();
        let newest = match announced.take() {
            Some(id) => id.max(applied),
            None => fleet.last_id().await?,
        };
        shared.fleet_id.store(newest, Ordering::Relaxed);
        if applied > newest {
            // A fleet database made anew: its numbers started again.
            tracing::warn!(
                applied,
                newest,
                "fleet: the fleet database is new; reading it from the start"
            );
            applied = 0;
        }
        while applied < newest {
            let changes = fleet.changes_after(applied, PAGE).await?;
            let Some(last) = changes.last().map(|c| c.id) else {
                break;
            };
            apply_page(engine, options, shared, fleet, &changes).await?;
            applied = last;
            engine
                .store()
                .set_fleet_cursor(&key, applied, unix_now())
                .await?;
            shared.applied_id.store(applied, Ordering::Relaxed);
        }
        shared.applied_id.store(applied, Ordering::Relaxed);
        tokio::select! {
            notification = listener.recv() => {
                let first = notification.map_err(|source| StoreError::Query { action: "listen to the fleet", source })?;
                // At most one read every READ_GAP: a busy fleet's commits are read in
                // batches (each node's reads, times every node, are the fleet database's
                // load), an idle fleet's first ban at once.
                if !pause(stop, READ_GAP.saturating_sub(read_at.elapsed())).await {
                    return Ok(());
                }
                // What else arrived meanwhile is read now, in the same pass.
                let mut newest = first.payload().parse::<i64>().ok();
                while let Some(more) = listener.next_buffered() {
                    newest = newest.zip(more.payload().parse::<i64>().ok()).map(|(a, b)| a.max(b));
                }
                announced = newest;
            }
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => return Ok(()),
        }
    }
}

/// Applies one page of changes, in order: runs of bans in one [`Engine::ban_many`] each.
async fn apply_page(
    engine: &Engine,
    options: &FleetOptions,
    shared: &Shared,
    fleet: &FleetStore,
    changes: &[FleetChange],
) -> Result<(), StoreError> {
    let whitelist: Vec<Target> = fleet
        .whitelist()
        .await?
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    let now = unix_now();
    let reports = reports(options, fleet, changes, now).await?;
    let mut bans: Vec<BanRequest> = Vec::new();
    for change in changes {
        if change.node == options.node {
            continue;
        }
        if !options.accept.accepts(&change.node) {
            shared.ignored.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let target = change.change.target;
        match change.change.kind {
            ChangeKind::Ban => {
                let Some(duration) = remaining(change.change.expires_at, now) else {
                    continue; // ended already
                };
                if whitelist.iter().any(|w| overlaps(w, &target)) {
                    shared.vetoed.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%target, node = %change.node, "fleet: a peer's ban of a fleet-whitelisted network; not applied");
                    continue;
                }
                let duration = escalated(options, reports.get(&target).copied(), duration);
                bans.push(BanRequest {
                    target,
                    duration: Some(duration),
                    reason: format!("{} (from {})", change.change.reason, change.node),
                    source: BanSource::Other(format!("fleet:{}", change.node)),
                    service: change.change.service.clone(),
                });
            }
            ChangeKind::Unban => {
                ban_all(engine, shared, &mut bans).await;
                let made_by_peer = engine
                    .active_ban(&target)
                    .is_some_and(|ban| ban.source.as_str() == format!("fleet:{}", change.node));
                if made_by_peer {
                    match engine.unban(&target, FLEET_UNBAN).await {
                        Ok(_) => {}
                        Err(e) => tracing::warn!(%target, "fleet: cannot apply an unban: {e}"),
                    }
                }
            }
        }
    }
    ban_all(engine, shared, &mut bans).await;
    Ok(())
}

/// Bans `bans` in one batch (emptying it); refusals by this node's policy are counted.
async fn ban_all(engine: &Engine, shared: &Shared, bans: &mut Vec<BanRequest>) {
    if bans.is_empty() {
        return;
    }
    match engine.ban_many(std::mem::take(bans)).await {
        Ok(report) => {
            shared
                .applied
                .fetch_add(report.banned.len() as u64, Ordering::Relaxed);
            shared
                .vetoed
                .fetch_add(report.refused.len() as u64, Ordering::Relaxed);
            for (target, why) in &report.refused {
                tracing::info!(%target, "fleet: a peer's ban not applied: {why}");
            }
        }
        Err(EngineError::Stopped) => {}
        Err(e) => tracing::warn!("fleet: cannot apply peers' bans: {e}"),
    }
}

/// How long a ban ending at `expires_at` still lasts at `now` (`None` when it has ended).
fn remaining(expires_at: Option<i64>, now: i64) -> Option<BanDuration> {
    match expires_at {
        None => Some(BanDuration::Permanent),
        Some(end) if end > now => Some(BanDuration::Timed(Duration::from_secs(
            u64::try_from(end - now).unwrap_or(0),
        ))),
        Some(_) => None,
    }
}

/// How many nodes reported each target the page bans for a time, in one query; empty when
/// escalation is off.
async fn reports(
    options: &FleetOptions,
    fleet: &FleetStore,
    changes: &[FleetChange],
    now: i64,
) -> Result<HashMap<Target, u32>, StoreError> {
    if options.escalate_after == 0 || options.escalate_factor <= 1.0 {
        return Ok(HashMap::new());
    }
    let mut targets: Vec<Target> = changes
        .iter()
        .filter(|c| c.change.kind == ChangeKind::Ban && c.change.expires_at.is_some())
        .filter(|c| c.node != options.node && options.accept.accepts(&c.node))
        .map(|c| c.change.target)
        .collect();
    targets.sort_unstable();
    targets.dedup();
    let window = i64::try_from(options.escalate_window.as_secs()).unwrap_or(i64::MAX);
    fleet
        .reporters(&targets, now.saturating_sub(window), now)
        .await
}

/// `duration`, `escalate_factor` times as long when at least `escalate_after` nodes reported
/// the target (permanent bans stay permanent).
fn escalated(options: &FleetOptions, reporters: Option<u32>, duration: BanDuration) -> BanDuration {
    let BanDuration::Timed(length) = duration else {
        return duration;
    };
    if options.escalate_after == 0 || reporters.unwrap_or(0) < options.escalate_after {
        return duration;
    }
    BanDuration::Timed(Duration::from_secs_f64(
        length.as_secs_f64() * options.escalate_factor.max(1.0),
    ))
}

/// Whether two targets share an address (one contains the other).
fn overlaps(a: &Target, b: &Target) -> bool {
    let net = |t: &Target| match t {
        Target::Addr(ip) => ipnet::IpNet::from(*ip),
        Target::Net(n) => *n,
    };
    let (a, b) = (net(a), net(b));
    a.contains(&b.network()) || b.contains(&a.network())
}
