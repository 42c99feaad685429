//! The engine's protection: what may never be banned (the policy of crmonban-zones, built from
//! the whitelist sources, zones and this host's addresses), the whitelist kept in the store,
//! and lifting the bans a new policy refuses.

use super::*;

impl Engine {
    /// Ok when `target` may be banned; otherwise the refusal a ban would get
    /// ([`EngineError::Protected`] or [`EngineError::Whitelisted`]).
    pub fn check_protected(&self, target: &Target) -> Result<(), EngineError> {
        self.inner.protection_read().check(target)
    }

    /// Whitelists `target` in the database (false when it already was). Every ban the new
    /// entry forbids — of addresses or networks inside it, or networks around it — is ended
    /// with reason "whitelisted", each with an activity entry saying what was lifted and why.
    pub async fn whitelist_add(&self, target: &Target, comment: &str) -> Result<bool, EngineError> {
        Ok(self.whitelist_add_lifting(target, comment).await?.0)
    }

    /// [`Engine::whitelist_add`], also returning the bans the new entry lifted, each with why
    /// (a /24 ban is lifted by whitelisting one address inside it: a ban may never cover a
    /// trusted address).
    #[instrument(name = "whitelist_add", skip_all, fields(target = %target))]
    pub async fn whitelist_add_lifting(
        &self,
        target: &Target,
        comment: &str,
    ) -> Result<(bool, Vec<(Target, String)>), EngineError> {
        let inner = &self.inner;
        inner.ensure_running()?;
        // Exclusive: no ban may be checked against the old policy and applied after the sweep
        // below.
        let _all = inner.gate.write().await;
        inner.ensure_running()?;
        let added = inner.store.whitelist_add(target, comment).await?;
        inner.rebuild_policy(None).await?;
        if added {
            info!(comment, "whitelisted");
            inner.record(
                unix_now(),
                "whitelist_add",
                Some(*target),
                comment.to_owned(),
            );
            inner
                .emit(EngineEvent::WhitelistChanged {
                    target: *target,
                    added: true,
                    comment: comment.to_owned(),
                })
                .await;
        }
        let lifted = inner.lift_refused_locked().await;
        Ok((added, lifted))
    }

    /// Removes `target` from the database's whitelist; false when it was not there.
    #[instrument(name = "whitelist_remove", skip_all, fields(target = %target))]
    pub async fn whitelist_remove(&self, target: &Target) -> Result<bool, EngineError> {
        let inner = &self.inner;
        inner.ensure_running()?;
        let _all = inner.gate.write().await;
        inner.ensure_running()?;
        let removed = inner.store.whitelist_remove(target).await?;
        inner.rebuild_policy(None).await?;
        if removed {
            info!("removed from the whitelist");
            inner.record(unix_now(), "whitelist_remove", Some(*target), String::new());
            inner
                .emit(EngineEvent::WhitelistChanged {
                    target: *target,
                    added: false,
                    comment: String::new(),
                })
                .await;
        }
        Ok(removed)
    }

    /// The database's whitelist entries, oldest first.
    pub async fn whitelist(&self) -> Result<Vec<WhitelistEntry>, EngineError> {
        Ok(self.inner.store.whitelist_list().await?)
    }

    /// Every entry of every whitelist source in force (database, networks, files, protecting
    /// zones), in address order.
    pub fn protected_entries(&self) -> Vec<Entry> {
        self.inner.protection_read().policy.entries()
    }

    /// The zone `target` belongs to (its most specific one), with the zone's network.
    pub fn zone_of(&self, target: &Target) -> Option<(Target, ZoneInfo)> {
        self.inner
            .protection_read()
            .policy
            .zone_of(target)
            .map(|(net, zone)| (net, zone.clone()))
    }

    /// Replaces the whitelist sources and zones at once (a reload): the new policy is built
    /// (files read again), swapped in, and every active ban it now refuses is lifted. Returns
    /// the problems found in the sources; what could be read applies. A zones file that cannot
    /// be used fails the call and changes nothing.
    #[instrument(name = "reconfigure_protection", skip_all)]
    pub async fn reconfigure_protection(
        &self,
        whitelist: WhitelistConfig,
        zones: ZonesConfig,
    ) -> Result<Vec<PolicyProblem>, EngineError> {
        let inner = &self.inner;
        inner.ensure_running()?;
        let zones = tokio::task::spawn_blocking(move || resolve_zones(&zones))
            .await
            .map_err(|_| EngineError::Stopped)??;
        let _all = inner.gate.write().await;
        inner.ensure_running()?;
        let files = watched_files(&whitelist);
        let before = watched_files(&lock(&inner.policy_sources).0);
        let problems = inner.rebuild_policy(Some((whitelist, zones))).await?;
        inner.lift_refused_locked().await;
        if files != before {
            *lock(&inner.file_watch) = watch_files(Arc::downgrade(inner), files);
        }
        Ok(problems)
    }

    /// Rebuilds the policy from the same sections (a whitelist file changed on disk) and lifts
    /// the bans it now refuses.
    pub async fn refresh_protection(&self) -> Result<Vec<PolicyProblem>, EngineError> {
        self.inner.refresh_protection().await
    }
}

impl Inner {
    /// Builds the policy again from the database and the sections (`new` replaces them),
    /// keeping the host's addresses, and swaps it in. Call with the gate held exclusively.
    pub(super) async fn rebuild_policy(
        &self,
        new: Option<(WhitelistConfig, ZonesConfig)>,
    ) -> Result<Vec<PolicyProblem>, EngineError> {
        let database: Vec<(Target, String)> = self
            .store
            .whitelist_list()
            .await?
            .into_iter()
            .map(|entry| (entry.target, entry.comment))
            .collect();
        let replaced = new.is_some();
        let (whitelist, zones) = {
            let mut sources = lock(&self.policy_sources);
            if let Some(new) = new {
                *sources = new;
            }
            sources.clone()
        };
        // New daemon sources only when the configuration changed: a database entry keeps the
        // connections and their caches.
        let daemons = replaced.then(|| daemon_sources(&whitelist));
        let host = self.protection_read().policy.host_addresses().to_vec();
        // Files are read off the runtime's threads.
        let (policy, problems) =
            tokio::task::spawn_blocking(move || Policy::build(&whitelist, &zones, database, host))
                .await
                .map_err(|_| EngineError::Stopped)??;
        report_policy(&policy, &problems);
        let mut protection = self.protection_write();
        protection.policy = policy;
        if let Some(daemons) = daemons {
            protection.daemons = daemons;
        }
        Ok(problems)
    }

    /// Ends every active ban the policy now refuses (reason "whitelisted" or "protected"),
    /// recording one activity entry per lifted ban. Returns each lifted target with why. Call
    /// with the gate held exclusively.
    pub(super) async fn lift_refused_locked(&self) -> Vec<(Target, String)> {
        let mut lifted = Vec::new();
        let refused: Vec<(Target, EngineError)> = {
            let protection = self.protection_read();
            self.index_read()
                .targets()
                .filter_map(|banned| protection.check(&banned).err().map(|e| (banned, e)))
                .collect()
        };
        for (banned, refusal) in refused {
            match self.unban_locked(&banned, lift_reason(&refusal)).await {
                Ok(_) => {
                    info!(target = %banned, %refusal, "ban lifted: the target is protected now");
                    self.record(
                        unix_now(),
                        "lift",
                        Some(banned),
                        format!("ban lifted: {refusal}"),
                    );
                    lifted.push((banned, refusal.to_string()));
                }
                Err(error) => {
                    warn!(%banned, %error, "cannot end a ban that the policy now refuses; it stays until unbanned")
                }
            }
        }
        lifted
    }
}
