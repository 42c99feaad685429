//! The engine's background work: expiry, repair of the ruleset (whole or partly damaged),
//! this host's addresses, records waiting for the database, and history retention; each runs
//! on its own period ([`run_every`]) until the engine stops.

use super::*;

impl Inner {
    pub(super) async fn refresh_host_addresses(&self) {
        match self.kernel.host_addresses().await {
            Ok(Ok(addrs)) => {
                debug!(count = addrs.len(), "host addresses read");
                let changed = {
                    let mut protection = self.protection_write();
                    let changed = protection.policy.set_host_addresses(addrs);
                    if changed {
                        info!(
                            addresses = %protection.policy.host_addresses_summary(),
                            "the host's addresses changed; never banned"
                        );
                    }
                    changed
                };
                if changed {
                    let _all = self.gate.write().await;
                    self.lift_refused_locked().await;
                }
            }
            Ok(Err(error)) => {
                warn!(%error, "cannot read this host's addresses; keeping the previous list")
            }
            Err(_) => {}
        }
    }

    /// Ends what the store says has expired and drops it from the index.
    pub(super) async fn expire_due(&self) -> Result<usize, EngineError> {
        let now = unix_now();
        let expired = self.store.expire_due(now).await?;
        if expired.is_empty() {
            return Ok(0);
        }
        let removed: Vec<Ban> = {
            let mut index = self.index_write();
            expired
                .into_iter()
                .filter(|ban| index.remove_exact(ban))
                .collect()
        };
        for (i, ban) in removed.iter().enumerate() {
            let lasted = crmonban_core::duration::format(
                ban.expires_at
                    .map(|end| u64::try_from(end - ban.banned_at).unwrap_or(0)),
            );
            // Each expiry is logged; a wave of them is summed up after the first few.
            if i < EXPIRIES_LOGGED {
                info!(target = %ban.target, reason = %ban.reason, %lasted, "ban expired");
            } else {
                debug!(target = %ban.target, "ban expired");
            }
            // And kept in the activity log (`crmonctl logs`), a wave up to what one write takes.
            if i < EXPIRIES_RECORDED {
                self.record(
                    now,
                    "expire",
                    Some(ban.target),
                    format!("{} (source {}, lasted {lasted})", ban.reason, ban.source),
                );
            }
            self.emit(EngineEvent::BanRemoved {
                target: ban.target,
                reason: "expired".to_owned(),
            })
            .await;
        }
        if removed.len() > EXPIRIES_RECORDED {
            self.record(
                now,
                "expire",
                None,
                format!(
                    "{} more bans expired at the same time",
                    removed.len() - EXPIRIES_RECORDED
                ),
            );
        }
        if removed.len() > EXPIRIES_LOGGED {
            info!(
                more = removed.len() - EXPIRIES_LOGGED,
                "more bans expired at the same time (each at debug level)"
            );
        }
        Ok(removed.len())
    }

    pub(super) async fn repair_if_needed(&self) -> Result<Option<usize>, EngineError> {
        self.ensure_running()?;
        self.refresh_host_addresses().await;
        if self.kernel.layout_present().await? {
            // The layout is whole; its sets may still have lost elements.
            return self.repair_elements_if_needed().await;
        }
        let _all = self.gate.write().await;
        // Another caller may have repaired while we waited.
        if self.kernel.layout_present().await? {
            return Ok(None);
        }
        let now = unix_now();
        let elements = self.index_read().elements(now);
        let bans = elements.len();
        self.kernel
            .set_whole_generation(self.kernel.generation().await?);
        self.rebuild(elements).await?;
        warn!(
            bans,
            "the nftables layout had disappeared or was altered (flushed, a rule changed by someone else?); re-created it with every active ban"
        );
        self.metrics.repaired("layout");
        self.record(
            now,
            "repair",
            None,
            format!("nftables layout re-created with {bans} bans"),
        );
        self.emit(EngineEvent::LayoutRepaired { bans }).await;
        Ok(Some(bans))
    }
}

impl Inner {
    /// When the ruleset changed since the last check (someone else committed), finds whether
    /// bans that must be in the kernel are gone (an external `nft flush set` or `delete
    /// element`) and then rebuilds everything from the index. Holds the gate, so that no ban or
    /// unban moves the sets meanwhile. Sets of up to [`COUNTED_UP_TO`] bans each are counted
    /// (a dump of their elements, exact); larger ones are checked by looking up
    /// [`SAMPLED_BANS`] bans drawn at random, one by one: the kernel lists a hash set in rounds
    /// of ~32 KiB, each walking it from the start, so counting a million takes ~45 s (with
    /// every ban waiting) where the sample takes milliseconds. A flush is found either way; a
    /// few elements deleted by hand from a set larger than that may be missed by one check.
    pub(super) async fn repair_elements_if_needed(&self) -> Result<Option<usize>, EngineError> {
        let generation = self.kernel.generation().await?;
        if generation.is_some() && generation == self.kernel.whole_generation() {
            return Ok(None);
        }
        let _all = self.gate.write().await;
        // Read before checking: a change by someone else after it makes the next check look
        // again instead of being taken for whole.
        let checked_at = self.kernel.generation().await?;
        let now = unix_now();
        let elements = self.index_read().elements(now);
        let needed = minimum_counts(&elements, now);
        let short: Vec<String> = if needed[..2].iter().all(|&n| n <= COUNTED_UP_TO) {
            let Some(counts) = self.kernel.element_counts().await? else {
                return Ok(None);
            };
            SET_KINDS
                .iter()
                .zip(counts.iter().zip(needed.iter()))
                .filter(|(_, (have, need))| have < need)
                .map(|(kind, (have, need))| format!("{kind}: {have} of at least {need}"))
                .collect()
        } else {
            let sample = sample_of(&elements, now);
            let sampled = sample.len();
            let Some(found) = self.kernel.lookup(sample).await? else {
                return Ok(None);
            };
            let missing = found.iter().filter(|f| f.is_none()).count();
            if missing == 0 {
                Vec::new()
            } else {
                vec![format!(
                    "{missing} of {sampled} bans sampled (of {}) not in the kernel",
                    elements.len()
                )]
            }
        };
        self.kernel.set_whole_generation(checked_at);
        if short.is_empty() {
            return Ok(None);
        }
        let bans = elements.len();
        self.rebuild(elements).await?;
        warn!(
            bans,
            missing = %short.join(", "),
            "bans had been removed from crmonban's sets by someone else; rebuilt them with every active ban"
        );
        self.metrics.repaired("elements");
        self.record(
            now,
            "repair",
            None,
            format!("sets rebuilt with {bans} bans ({})", short.join(", ")),
        );
        self.emit(EngineEvent::LayoutRepaired { bans }).await;
        Ok(Some(bans))
    }
}

impl Inner {
    /// Deletes events and activity entries beyond the retention bounds.
    pub(super) async fn prune_history(&self) -> Result<(), EngineError> {
        let retention = self.settings_read().retention;
        let age = i64::try_from(retention.max_age.as_secs()).unwrap_or(i64::MAX);
        let before = unix_now().saturating_sub(age);
        let events = self
            .store
            .prune_events(before, retention.max_event_rows)
            .await?;
        let activity = self
            .store
            .prune_activity(before, retention.max_activity_rows)
            .await?;
        if events + activity > 0 {
            debug!(
                events,
                activity, "history beyond the retention bounds deleted"
            );
        }
        Ok(())
    }

    /// Rebuilds the sets from the index, sized for half as many again as it holds, after a ban
    /// found an address set full (`why`). Holding the gate, so that no ban or unban runs
    /// between reading the index and the rebuild; a caller that saw `growths` rebuilds before
    /// it finds them moved on (another refused ban grew the sets meanwhile) and only retries.
    pub(super) async fn grow_sets(&self, growths: u64, why: &str) -> Result<(), EngineError> {
        let _all = self.gate.write().await;
        self.ensure_running()?;
        if self.set_growths.load(Ordering::Acquire) != growths {
            return Ok(());
        }
        let now = unix_now();
        let elements = self.index_read().elements(now);
        let bans = elements.len();
        let started = std::time::Instant::now();
        self.rebuild(elements).await?;
        self.set_growths.fetch_add(1, Ordering::AcqRel);
        warn!(
            bans,
            %why,
            took_ms = started.elapsed().as_millis(),
            "an nftables address set was full; rebuilt the sets larger with every active ban"
        );
        self.metrics.repaired("grown");
        self.record(
            now,
            "repair",
            None,
            format!("sets rebuilt larger with {bans} bans (an address set was full)"),
        );
        Ok(())
    }

    /// Replaces the whole layout with `elements`. The rebuild is one transaction, over which
    /// the firewall thread carries the generation set just before as "whole"; if it fails,
    /// nothing is known whole and the next check counts again.
    pub(super) async fn rebuild(&self, elements: Vec<Element>) -> Result<(), EngineError> {
        let rebuilt = self.kernel.replace_all(elements).await;
        if rebuilt.is_err() {
            self.kernel.set_whole_generation(None);
        }
        rebuilt.map(drop)
    }
}

/// Address sets holding at most this many bans are counted by the consistency check (a dump
/// of ~0.1 s at this size, growing with the square of it); larger ones are sampled.
pub(super) const COUNTED_UP_TO: usize = 50_000;

/// Bans looked up, one by one, by the consistency check of sets too large to count (~5 µs each).
pub(super) const SAMPLED_BANS: usize = 4_096;

/// [`SAMPLED_BANS`] targets drawn at random (with replacement) from `elements`, leaving out
/// those about to expire (the kernel may have dropped them already).
fn sample_of(elements: &[Element], now: i64) -> Vec<Target> {
    let lasting: Vec<&Element> = elements
        .iter()
        .filter(|e| !e.expiry.is_past(now + 2))
        .collect();
    if lasting.is_empty() {
        return Vec::new();
    }
    (0..SAMPLED_BANS.min(lasting.len()))
        .map(|_| lasting[fastrand::usize(..lasting.len())].target)
        .collect()
}

/// The sets in the order of [`crmonban_firewall::FirewallBackend::element_counts`].
pub(super) const SET_KINDS: [&str; 4] = [
    "IPv4 addresses",
    "IPv6 addresses",
    "IPv4 networks",
    "IPv6 networks",
];

/// The fewest elements each set must hold for `elements`: every single address that is not
/// about to expire, and at least one interval when any network is banned (merged neighbours
/// make one interval).
pub(super) fn minimum_counts(elements: &[Element], now: i64) -> [usize; 4] {
    let mut counts = [0; 4];
    for element in elements {
        if element.expiry.is_past(now + 2) {
            continue;
        }
        match element.target {
            Target::Addr(addr) => counts[usize::from(addr.is_ipv6())] += 1,
            Target::Net(net) => {
                let i = 2 + usize::from(matches!(net, ipnet::IpNet::V6(_)));
                counts[i] = 1;
            }
        }
    }
    counts
}

/// The background jobs.
#[derive(Clone, Copy, Debug)]
pub(super) enum Periodic {
    Expiry,
    Repair,
    HostAddresses,
    Records,
    Retention,
}

impl Periodic {
    /// The job's name in metrics.
    fn name(self) -> &'static str {
        match self {
            Periodic::Expiry => "expiry",
            Periodic::Repair => "repair",
            Periodic::HostAddresses => "host_addresses",
            Periodic::Records => "records",
            Periodic::Retention => "retention",
        }
    }
}

/// Re-reads the host's addresses whenever the kernel says they changed (and at the poll
/// period in any case); without a subscription, at the poll period only. The blocking
/// netlink reads run on a thread of their own, which ends within a poll period of the
/// engine stopping.
pub(super) async fn follow_host_addresses(
    engine: Weak<Inner>,
    stop: watch::Receiver<bool>,
    events: Option<AddressEvents>,
) {
    let Some(events) = events else {
        let period = match engine.upgrade() {
            Some(inner) => inner.options.host_address_poll,
            None => return,
        };
        return run_every(engine, stop, period, Periodic::HostAddresses).await;
    };
    let mut stop = stop;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let reader = std::thread::Builder::new()
        .name("crmonban-addr".into())
        .spawn(move || {
            while !tx.is_closed() {
                match events.wait() {
                    Ok(_) => {
                        // Full: a refresh is already due.
                        let _ = tx.try_send(());
                    }
                    Err(error) => {
                        warn!(%error, "following address changes failed; the host's addresses are no longer re-read on change");
                        return;
                    }
                }
            }
        });
    if let Err(error) = reader {
        warn!(%error, "cannot start the address-change reader");
        return;
    }
    loop {
        tokio::select! {
            got = rx.recv() => if got.is_none() { return },
            _ = stop.changed() => return,
        }
        let Some(inner) = engine.upgrade() else {
            return;
        };
        inner.refresh_host_addresses().await;
    }
}

/// Runs `job` every `period` until the engine stops or is dropped. Holds only a weak
/// reference between runs, so dropping every [`Engine`] handle ends the task (and with the
/// engine the firewall thread).
/// `stop` is subscribed before the task is spawned, so a shutdown that comes before its
/// first poll is still seen.
pub(super) async fn run_every(
    engine: Weak<Inner>,
    mut stop: watch::Receiver<bool>,
    period: Duration,
    job: Periodic,
) {
    let mut ticker = tokio::time::interval(period.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; start and restore have just done each job.
    ticker.tick().await;
    let mut failing = false;
    loop {
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(inner) = engine.upgrade() else {
            return;
        };
        let result = match job {
            Periodic::Expiry => inner.expire_due().await.map(drop),
            Periodic::Repair => inner.repair_if_needed().await.map(drop),
            Periodic::HostAddresses => {
                inner.refresh_host_addresses().await;
                Ok(())
            }
            Periodic::Records => inner
                .records
                .flush(&inner.store)
                .await
                .map(drop)
                .map_err(EngineError::from),
            Periodic::Retention => inner.prune_history().await,
        };
        if let Err(error) = &result
            && !matches!(error, EngineError::Stopped)
        {
            inner.metrics.job_failed(job.name());
        }
        match result {
            Ok(()) => failing = false,
            Err(EngineError::Stopped) => return,
            Err(error) if !failing => {
                failing = true;
                warn!(?job, %error, "background job failed; retrying every period");
            }
            Err(error) => debug!(?job, %error, "background job still failing"),
        }
    }
}
