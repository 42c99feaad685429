//! Many bans at once ([`Engine::ban_many`]): a fleet node catching up with what it missed, a
//! blocklist. The same rules as one ban (protection checked for each target, escalation, a
//! ban only ever lengthened), but one kernel transaction, one database transaction, and the
//! engine's gate held exclusively while they run rather than a lock per target.

use std::collections::HashMap;

use super::*;

/// What [`Engine::ban_many`] did.
#[derive(Debug, Default)]
pub struct BulkBanReport {
    /// The bans now in force (new or lengthened), as recorded.
    pub banned: Vec<Ban>,
    /// Requests left as they were: the target was already banned at least as long.
    pub kept: usize,
    /// Requests refused, with why (a protected or whitelisted target...).
    pub refused: Vec<(Target, EngineError)>,
}

impl Engine {
    /// Bans every target of `requests` that may be banned, in ONE nftables transaction and
    /// one database transaction (its record queued on a database fault, as for one ban); a
    /// target given twice counts once, with the last request. Each ban is announced
    /// ([`EngineEvent::BanAdded`]). A refusal of one target refuses only that target; an error
    /// of the kernel refuses the whole batch (nothing applied).
    #[instrument(name = "ban_many", skip_all, fields(requests = requests.len()))]
    pub async fn ban_many(&self, requests: Vec<BanRequest>) -> Result<BulkBanReport, EngineError> {
        let growths = self.inner.set_growths.load(Ordering::Acquire);
        match self.inner.try_ban_many(&requests).await {
            Err(EngineError::Firewall(FirewallError::LayoutMissing(why))) => {
                warn!(%why, "the nftables layout is gone; repairing it, then banning again");
                self.inner.repair_if_needed().await?;
                self.inner.try_ban_many(&requests).await
            }
            Err(EngineError::Firewall(FirewallError::SetFull(why))) => {
                self.inner.grow_sets(growths, &why).await?;
                self.inner.try_ban_many(&requests).await
            }
            other => other,
        }
    }
}

impl Inner {
    async fn try_ban_many(&self, requests: &[BanRequest]) -> Result<BulkBanReport, EngineError> {
        self.ensure_running()?;
        let _all = self.gate.write().await;
        self.ensure_running()?;
        let mut report = BulkBanReport::default();
        // The last request for a target wins.
        let mut wanted: HashMap<Target, &BanRequest> = HashMap::with_capacity(requests.len());
        for request in requests {
            wanted.insert(request.target, request);
        }
        let (checked, daemons) = {
            let protection = self.protection_read();
            let mut checked = Vec::with_capacity(wanted.len());
            for request in requests {
                // In the order given, once per target.
                if !wanted
                    .get(&request.target)
                    .is_some_and(|last| std::ptr::eq(*last, request))
                {
                    continue;
                }
                match protection.check(&request.target) {
                    Ok(()) => checked.push(request),
                    Err(refusal) => report.refused.push((request.target, refusal)),
                }
            }
            (checked, protection.daemons.clone())
        };
        let now = unix_now();
        let mut bans = Vec::with_capacity(checked.len());
        for request in checked {
            if let Err(refusal) = ask_daemons(&daemons, &request.target).await {
                report.refused.push((request.target, refusal));
                continue;
            }
            let previous = lock(&self.offences).get(&request.target);
            let duration = {
                let settings = self.settings_read();
                let requested = request.duration.unwrap_or(settings.default_ban);
                settings.escalation.duration(requested, previous)
            };
            let reason = lock(&self.intel_summaries).reason(&request.target, &request.reason);
            let ban = Ban {
                target: request.target,
                reason,
                source: request.source.clone(),
                service: request.service.clone(),
                banned_at: now,
                expires_at: expires_at(now, duration),
                offence: previous.saturating_add(1),
            };
            let kept = self
                .index_read()
                .get(&request.target)
                .filter(|old| old.is_active_at(now))
                .is_some_and(|old| match (old.expires_at, ban.expires_at) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(old_end), Some(new_end)) => old_end >= new_end,
                });
            if kept {
                report.kept += 1;
            } else {
                bans.push(ban);
            }
        }
        if bans.is_empty() {
            return Ok(report);
        }
        let changes: ChangeSet = bans
            .iter()
            .map(|ban| crmonban_firewall::Change::Add(element_of(ban)))
            .collect();
        self.kernel.apply(changes).await?;

        // Kernel first, records follow.
        self.records.write_bans(&self.store, bans.clone()).await;
        {
            let mut offences = lock(&self.offences);
            for ban in &bans {
                offences.bump(&ban.target);
            }
        }
        {
            let mut index = self.index_write();
            for ban in &bans {
                index.insert(ban);
            }
        }
        info!(
            banned = bans.len(),
            kept = report.kept,
            refused = report.refused.len(),
            "banned in one batch"
        );
        for ban in &bans {
            debug!(target = %ban.target, source = %ban.source, reason = %ban.reason, "banned");
            self.record(
                now,
                "ban",
                Some(ban.target),
                format!(
                    "{} (source {}, offence {}, in a batch of {})",
                    ban.reason,
                    ban.source,
                    ban.offence,
                    bans.len()
                ),
            );
            self.emit(EngineEvent::BanAdded {
                ban: Arc::new(ban.clone()),
            })
            .await;
        }
        report.banned = bans;
        Ok(report)
    }
}
