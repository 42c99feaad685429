//! The first step of a start: every ban in force, from the store into the kernel, before
//! anything else about them is read.
//!
//! When the kernel holds bans of ours (a restart of the daemon), they are replaced in ONE
//! transaction: every ban stays enforced throughout, and the sets end up holding exactly the
//! store's. When it holds nothing of ours (the first start after a boot, or in a new network
//! namespace), nothing is enforced until the restore is in, and one transaction would keep it
//! that way until the last row is read and the kernel has inserted everything: the restore is
//! sent in parts instead, one transaction each, while the store is still being read. The
//! kernel inserts part n while SQLite reads part n+1 on the other core, each part is enforced
//! as soon as it is in, and a million bans are all in ~0.4 s sooner (docs/BENCHMARKS.md,
//! daemon). Should a part fail, the restore is done again in one transaction.

use std::collections::HashSet;

use crmonban_core::Target;
use crmonban_firewall::{ApplyReport, Change, ChangeSet, Element};
use crmonban_store::Store;
use tokio::sync::mpsc;
use tracing::warn;

use super::Protection;
use crate::EngineError;
use crate::firewall_thread::FirewallThread;

/// Addresses in each part of a restore in parts (one transaction each).
const PART: usize = 50_000;

/// What the restore put in the kernel, and what it refused.
pub(super) struct Enforced {
    /// Every part's report added up.
    pub(super) report: ApplyReport,
    /// Stored bans of targets protected now: not enforced; the caller ends them.
    pub(super) refused: Vec<(Target, EngineError)>,
}

impl Enforced {
    /// The refused targets, for leaving them out of the index.
    pub(super) fn refused_targets(&self) -> HashSet<Target> {
        self.refused.iter().map(|(target, _)| *target).collect()
    }
}

/// Puts every ban in force at `now` (but those `protection` refuses) in the kernel: in parts
/// when the kernel holds nothing of ours, else in one transaction (see the module's doc).
pub(super) async fn enforce_stored_bans(
    kernel: &FirewallThread,
    store: &Store,
    protection: &Protection,
    now: i64,
) -> Result<Enforced, EngineError> {
    if kernel.holds_nothing().await? {
        match in_parts(kernel, store, protection, now).await? {
            Ok(enforced) => return Ok(enforced),
            Err(error) => warn!(
                %error,
                "a part of the restore failed; restoring every ban again in one transaction"
            ),
        }
    }
    in_one_transaction(kernel, store, protection, now).await
}

async fn in_one_transaction(
    kernel: &FirewallThread,
    store: &Store,
    protection: &Protection,
    now: i64,
) -> Result<Enforced, EngineError> {
    let mut elements = Vec::new();
    let mut refused = Vec::new();
    store
        .for_each_active_target(now, |target, expires_at| match protection.check(&target) {
            Ok(()) => elements.push(Element::until(target, expires_at)),
            Err(refusal) => refused.push((target, refusal)),
        })
        .await?;
    let report = kernel.replace_all(elements).await?;
    Ok(Enforced { report, refused })
}

/// The restore in parts: the store's reader hands parts of [`PART`] addresses to a feeder
/// that sends them to the firewall thread one after the other, the first creating the layout
/// with room for every ban the store may hold. Networks go last, together: each transaction
/// with networks rewrites the interval sets whole. The outer error is the store's; the inner
/// one a part the kernel did not take (the parts before it stay in).
async fn in_parts(
    kernel: &FirewallThread,
    store: &Store,
    protection: &Protection,
    now: i64,
) -> Result<Result<Enforced, EngineError>, EngineError> {
    let expected = store.active_bans_bound().await?;
    let (parts, mut received) = mpsc::unbounded_channel::<Vec<Element>>();
    let reader = async move {
        let mut part = Vec::with_capacity(PART.min(expected));
        let mut networks = Vec::new();
        let mut refused = Vec::new();
        let read = store
            .for_each_active_target(now, |target, expires_at| {
                if let Err(refusal) = protection.check(&target) {
                    refused.push((target, refusal));
                    return;
                }
                let element = Element::until(target, expires_at);
                if matches!(target, Target::Net(_)) {
                    networks.push(element);
                    return;
                }
                part.push(element);
                if part.len() == PART {
                    // A feeder that stopped has failed; its error ends the restore in parts.
                    let _ = parts.send(std::mem::replace(&mut part, Vec::with_capacity(PART)));
                }
            })
            .await;
        for last in [part, networks] {
            if !last.is_empty() {
                let _ = parts.send(last);
            }
        }
        read.map(|_| refused)
    };
    let feeder = async {
        let mut report = ApplyReport::default();
        let mut first = true;
        while let Some(part) = received.recv().await {
            let done = if first {
                kernel.replace_all_expecting(part, expected).await
            } else {
                let changes: ChangeSet = part.into_iter().map(Change::Add).collect();
                kernel.apply_alone(changes).await
            };
            first = false;
            add_up(&mut report, done?);
        }
        if first {
            // Nothing to restore: the layout, empty.
            add_up(
                &mut report,
                kernel.replace_all_expecting(Vec::new(), 0).await?,
            );
        }
        Ok::<_, EngineError>(report)
    };
    let (read, fed) = tokio::join!(reader, feeder);
    let refused = read?;
    Ok(fed.map(|report| Enforced { report, refused }))
}

/// Adds the counts of `part` to `total`.
fn add_up(total: &mut ApplyReport, part: ApplyReport) {
    total.added += part.added;
    total.removed += part.removed;
    total.interval_elements += part.interval_elements;
    total.networks_merged += part.networks_merged;
    total.skipped_expired += part.skipped_expired;
    total.transactions += part.transactions;
    total.refused.extend(part.refused);
}
