//! Starting the engine: the firewall thread, the restore of every active ban (restore.rs;
//! adopting the kernel's bans when the database has no history), the protection policy, and
//! the background tasks.

use super::*;

impl Engine {
    /// Starts the engine: spawns the firewall thread (from the calling thread, whose network
    /// namespace it keeps), restores every active ban from the store (in ONE transaction when
    /// the kernel holds bans of ours, which also drops kernel elements the store does not
    /// know; in parts while the store is read when it holds none), loads the whitelist and this host's addresses, and starts the expiry, repair
    /// and host-address tasks on the current tokio runtime. Emits
    /// [`EngineEvent::DaemonStarted`] at the end.
    ///
    /// Bans in the store whose target is protected now (whitelisted since, or this host's
    /// address) are ended with reason "whitelisted" or "protected" instead of restored.
    ///
    /// Call it from within a tokio runtime; the engine's tasks run there. No subscriber can
    /// exist before it returns, so nobody sees that `DaemonStarted`: use
    /// [`Engine::start_subscribed`] for a receiver that does.
    pub async fn start(
        options: EngineOptions,
        firewall: Box<dyn FirewallBackend>,
        store: Store,
    ) -> Result<Engine, EngineError> {
        Engine::start_subscribed(options, firewall, store)
            .await
            .map(|(engine, _)| engine)
    }

    /// [`Engine::start`], also returning a receiver subscribed before
    /// [`EngineEvent::DaemonStarted`] was sent (the daemon forwards it as a D-Bus signal).
    #[instrument(name = "engine_start", skip_all)]
    pub async fn start_subscribed(
        options: EngineOptions,
        firewall: Box<dyn FirewallBackend>,
        store: Store,
    ) -> Result<(Engine, broadcast::Receiver<EngineEvent>), EngineError> {
        // Zones are configuration: a zones file that cannot be used stops the start here, before
        // anything changes, and the file is not read again when the policy is rebuilt.
        let zones = resolve_zones(&options.zones)?;
        let kernel = FirewallThread::spawn(firewall)?;
        // Subscribed here, on the embedder's thread, so that it hears this network namespace.
        let address_events = match AddressEvents::subscribe(options.host_address_poll) {
            Ok(events) => Some(events),
            Err(error) => {
                warn!(%error, "cannot follow address changes; the host's addresses are re-read every {:?} instead", options.host_address_poll);
                None
            }
        };
        let host = match kernel.host_addresses().await? {
            Ok(addrs) => addrs,
            Err(error) => {
                warn!(%error, "cannot read this host's addresses; only the special ranges and the whitelist are protected until the next refresh");
                Vec::new()
            }
        };
        let database = store
            .whitelist_list()
            .await?
            .into_iter()
            .map(|entry| (entry.target, entry.comment));
        let (policy, problems) = Policy::build(&options.whitelist, &zones, database, host)?;
        report_policy(&policy, &problems);
        let protection = Protection {
            policy,
            extra: options.extra_policy.clone(),
            daemons: daemon_sources(&options.whitelist),
        };
        info!(
            addresses = %protection.policy.host_addresses_summary(),
            "the host's own addresses are never banned"
        );

        let restore_started = std::time::Instant::now();
        let now = unix_now();
        adopt_kernel_bans(&kernel, &store, &protection, now).await?;
        let expired = store.expire_due(now).await?;
        // Enforce first: the targets and ends alone go to the kernel (restore.rs), and only
        // then are the details read into the compact index and the offence counts (reading
        // them while the kernel inserts made the insertion a third slower on two cores). A
        // million bans are never held as `Ban`s all at once.
        let enforced = restore::enforce_stored_bans(&kernel, &store, &protection, now).await?;
        let enforced_ms = restore_started.elapsed().as_millis() as u64;
        // The policy was asked once per ban above; the details skip what it refused.
        let refused_targets = enforced.refused_targets();
        let mut index = BanIndex::default();
        store
            .for_each_active_ban(now, |ban| {
                if !refused_targets.contains(&ban.target) {
                    index.insert(&ban);
                }
            })
            .await?;
        let mut offences = Offences::default();
        store
            .for_each_offence_count(|target, n| offences.add(&target, n))
            .await?;
        let mut lifted = Vec::new();
        let report = enforced.report;
        for (target, refusal) in enforced.refused {
            let reason = lift_reason(&refusal);
            warn!(%target, %refusal, "not restoring a ban of a protected target; ending it");
            store.end_ban(&target, now, reason).await?;
            lifted.push((target, refusal.to_string()));
        }
        info!(
            restored = index.len(),
            offenders = offences.len(),
            expired_while_stopped = expired.len(),
            interval_elements = report.interval_elements,
            transactions = report.transactions,
            firewall = kernel.description(),
            enforced_ms,
            elapsed_ms = restore_started.elapsed().as_millis() as u64,
            "active bans restored"
        );

        let (activity, activity_queue) = ActivityLog::new();
        let (events, first_subscriber) = broadcast::channel(options.event_capacity.max(1));
        let (stop, _) = watch::channel(false);
        let restored_count = index.len();
        let policy_sources = (options.whitelist.clone(), zones);
        let settings = Settings::of(&options);
        let inner = Arc::new(Inner {
            options,
            kernel,
            store: store.clone(),
            index: RwLock::new(index),
            offences: Mutex::new(offences),
            protection: RwLock::new(protection),
            policy_sources: Mutex::new(policy_sources),
            file_watch: Mutex::new(None),
            events,
            lossless: Subscribers::default(),
            gate: tokio::sync::RwLock::new(()),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            activity,
            records: Records::default(),
            intel_summaries: Mutex::new(Summaries::default()),
            settings: RwLock::new(settings),
            events_processed: AtomicU64::new(0),
            metrics: crate::Metrics::default(),
            events_dropped: AtomicU64::new(0),
            set_growths: AtomicU64::new(0),
            started: Instant::now(),
            stopped: AtomicBool::new(false),
            stop,
            tasks: Mutex::new(Vec::new()),
        });

        // The background tasks outlive the start: their spans are roots, not under engine_start.
        let tasks = vec![
            tokio::spawn(
                write_activity(store, activity_queue, inner.stop.subscribe())
                    .instrument(info_span!(parent: None, "activity_log")),
            ),
            tokio::spawn(
                run_every(
                    Arc::downgrade(&inner),
                    inner.stop.subscribe(),
                    inner.options.expiry_interval,
                    Periodic::Expiry,
                )
                .instrument(info_span!(parent: None, "expiry")),
            ),
            tokio::spawn(
                run_every(
                    Arc::downgrade(&inner),
                    inner.stop.subscribe(),
                    inner.options.repair_interval,
                    Periodic::Repair,
                )
                .instrument(info_span!(parent: None, "repair")),
            ),
            tokio::spawn(
                run_every(
                    Arc::downgrade(&inner),
                    inner.stop.subscribe(),
                    RECORDS_RETRY,
                    Periodic::Records,
                )
                .instrument(info_span!(parent: None, "records")),
            ),
            tokio::spawn(
                run_every(
                    Arc::downgrade(&inner),
                    inner.stop.subscribe(),
                    inner.options.retention.every,
                    Periodic::Retention,
                )
                .instrument(info_span!(parent: None, "retention")),
            ),
            tokio::spawn(
                follow_host_addresses(
                    Arc::downgrade(&inner),
                    inner.stop.subscribe(),
                    address_events,
                )
                .instrument(info_span!(parent: None, "host_addresses")),
            ),
        ];
        *lock(&inner.tasks) = tasks;
        *lock(&inner.file_watch) = watch_files(
            Arc::downgrade(&inner),
            watched_files(&inner.options.whitelist),
        );

        inner.record(
            now,
            "start",
            None,
            format!("restored {restored_count} bans"),
        );
        for (target, why) in lifted {
            inner.record(now, "lift", Some(target), format!("not restored: {why}"));
        }
        if let Err(error) = inner.prune_history().await {
            warn!(%error, "cannot apply the history retention at start; retried every {:?}", inner.options.retention.every);
        }
        if let Err(error) = inner.store.release_memory().await {
            debug!(%error, "cannot release the database's page cache after the restore");
        }
        crate::memory::return_free_memory();
        inner.emit(EngineEvent::DaemonStarted).await;
        Ok((Engine { inner }, first_subscriber))
    }
}

/// A database without any ban history (just created: deleted or lost since the last run)
/// while crmonban's sets hold elements: the kernel's bans are adopted, recorded with their
/// remaining time, instead of being cleared by the restore. Protected targets are not adopted.
pub(super) async fn adopt_kernel_bans(
    kernel: &FirewallThread,
    store: &Store,
    protection: &Protection,
    now: i64,
) -> Result<(), EngineError> {
    if store.has_ban_history().await? {
        return Ok(());
    }
    let found = kernel.list().await?;
    if found.is_empty() {
        return Ok(());
    }
    let bans: Vec<Ban> = found
        .iter()
        .filter(|element| !element.expiry.is_past(now))
        .filter(|element| protection.check(&element.target).is_ok())
        .map(|element| Ban {
            target: element.target,
            reason: "adopted from the kernel: the database had no record of it".to_owned(),
            source: BanSource::Restore,
            service: None,
            banned_at: now,
            expires_at: match element.expiry {
                Expiry::At(at) => Some(at),
                Expiry::Never => None,
            },
            offence: 1,
        })
        .collect();
    warn!(
        adopted = bans.len(),
        in_kernel = found.len(),
        path = %store.path().display(),
        "the database has no ban history but crmonban's sets hold bans (was it deleted or replaced?): adopting them instead of clearing the sets"
    );
    store.record_bans(&bans).await?;
    Ok(())
}

/// Logs what a freshly built policy holds and every problem of its sources.
pub(super) fn report_policy(policy: &Policy, problems: &[PolicyProblem]) {
    for problem in problems {
        warn!(%problem, "protection policy");
    }
    info!(
        whitelist_entries = policy.whitelist_len(),
        protecting_zones = policy.protecting_zone_networks(),
        "protection policy in force"
    );
}
