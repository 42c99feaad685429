//! The composition root: [`EngineBuilder`] builds a running engine — firewall backend, store,
//! protection policy, detection — from a [`Config`] or from parts an embedder supplies, and
//! [`Running`] is that engine while it runs, with its live reconfiguration
//! ([`Running::reconfigure`]).
//!
//! A reload validates everything before it changes anything: keys that only a restart can
//! apply (the database, the nftables names, the bus, the XDP fast path) refuse it naming the
//! key; every service's patterns must compile; the protection policy must build. Then it applies, in this order: the
//! protection policy (swapped at once, bans it now covers lifted), ban lengths, escalation and
//! retention, and detection (thresholds, windows, services added or removed) — the detection
//! pipeline is stopped, saving every position, and started again on the new configuration from
//! those positions (no line is read twice or lost), keeping its failure windows under the new
//! thresholds (a window that reaches a lowered `max_failures` bans at once). Bans in force are
//! never touched by a reload.

use std::sync::Arc;

use crmonban_core::config::Config;
use crmonban_firewall::{FirewallBackend, Layout, NftBackend, NftOptions, Transport};
use crmonban_store::Store;
use crmonban_zones::{BanPolicy, PolicyProblem};
use tokio::sync::{Mutex, broadcast};
use tracing::info;

use crate::{
    Detection, DetectionError, Engine, EngineError, EngineEvent, EngineOptions, FleetConfigError,
    FleetOptions, FleetService, FleetStats, IntelService, SiemError, SiemService, XdpService,
};

/// Why an engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The nftables backend could not be created.
    #[error("the firewall backend: {0}")]
    Firewall(#[from] crmonban_firewall::FirewallError),
    /// The directory of `[general] db_path` could not be created.
    #[error("cannot create the database directory {path}: {source}")]
    Directory {
        /// The directory.
        path: std::path::PathBuf,
        /// Why it could not be created.
        source: std::io::Error,
    },
    /// The database at `[general] db_path` could not be opened.
    #[error(transparent)]
    Store(#[from] crmonban_store::StoreError),
    /// The engine did not start (see [`Engine::start`]).
    #[error("starting the engine: {0}")]
    Engine(#[from] EngineError),
    /// Detection did not start: a service's matcher cannot be built.
    #[error("starting detection: {0}")]
    Detection(#[from] DetectionError),
    /// A `[[siem.targets]]` cannot be built (a TLS or headers file).
    #[error(transparent)]
    Siem(#[from] SiemError),
    /// `[fleet]` cannot be used (a secret file others may read, a bad URL...).
    #[error(transparent)]
    Fleet(#[from] FleetConfigError),
}

/// Why a reconfiguration was refused; nothing of it was applied.
#[derive(Debug, thiserror::Error)]
pub enum ReconfigureError {
    /// A key that only a restart applies changed.
    #[error(
        "{key} changed ({from} -> {to}); it applies only at a restart: restart crmonband, or put the old value back"
    )]
    NeedsRestart {
        /// The dotted key, e.g. `general.db_path`.
        key: &'static str,
        /// The running value, as `Debug` writes it.
        from: String,
        /// The new value, as `Debug` writes it.
        to: String,
    },
    /// A service's patterns do not compile.
    #[error(transparent)]
    Detection(#[from] DetectionError),
    /// The protection policy could not be built (a zones file, a whitelist source).
    #[error("the protection policy: {0}")]
    Protection(EngineError),
    /// A `[[siem.targets]]` cannot be built (a TLS or headers file).
    #[error(transparent)]
    Siem(#[from] SiemError),
    /// `[fleet]` cannot be used.
    #[error(transparent)]
    Fleet(#[from] FleetConfigError),
}

/// What a reconfiguration applied.
#[derive(Debug, Default)]
pub struct Reconfigured {
    /// Problems of whitelist sources that were reported and skipped (the rest applies).
    pub problems: Vec<PolicyProblem>,
    /// The services detection watches now.
    pub services: Vec<String>,
}

/// Builds a [`Running`] engine.
pub struct EngineBuilder {
    config: Config,
    firewall: Option<Box<dyn FirewallBackend>>,
    store: Option<Store>,
    options: EngineOptions,
    utc_offset: i32,
    detection: bool,
}

impl EngineBuilder {
    /// An engine as `config` describes it: nftables through [`NftBackend`] with the
    /// configured layout, the SQLite store at `[general] db_path`, detection of every enabled
    /// service. Log times without a zone are read as UTC unless [`EngineBuilder::utc_offset`]
    /// says otherwise.
    pub fn new(config: Config) -> EngineBuilder {
        let options = EngineOptions::from_config(&config);
        EngineBuilder {
            config,
            firewall: None,
            store: None,
            options,
            utc_offset: 0,
            detection: true,
        }
    }

    /// Uses this firewall backend instead of nftables.
    pub fn firewall(mut self, backend: Box<dyn FirewallBackend>) -> EngineBuilder {
        self.firewall = Some(backend);
        self
    }

    /// Uses this store instead of opening `[general] db_path`.
    pub fn store(mut self, store: Store) -> EngineBuilder {
        self.store = Some(store);
        self
    }

    /// Adds the embedder's own vetoes after the built-in protection.
    pub fn extra_policy(mut self, policy: Arc<dyn BanPolicy>) -> EngineBuilder {
        self.options.extra_policy = Some(policy);
        self
    }

    /// Changes the engine options derived from the configuration (periods, capacities).
    pub fn options(mut self, change: impl FnOnce(&mut EngineOptions)) -> EngineBuilder {
        change(&mut self.options);
        self
    }

    /// The host's offset east of UTC in seconds, for log timestamps without a zone.
    pub fn utc_offset(mut self, seconds: i32) -> EngineBuilder {
        self.utc_offset = seconds;
        self
    }

    /// No log sources: bans come only from the API (an embedder with its own detection).
    pub fn without_detection(mut self) -> EngineBuilder {
        self.detection = false;
        self
    }

    /// Builds and starts everything; see [`Engine::start`] for what starting restores.
    pub async fn start(self) -> Result<Running, BuildError> {
        Ok(self.start_subscribed().await?.0)
    }

    /// [`EngineBuilder::start`], also returning a subscriber that hears
    /// [`EngineEvent::DaemonStarted`].
    pub async fn start_subscribed(
        self,
    ) -> Result<(Running, broadcast::Receiver<EngineEvent>), BuildError> {
        let EngineBuilder {
            config,
            firewall,
            store,
            options,
            utc_offset,
            detection,
        } = self;
        // Checked before anything starts: a bad target file refuses the start.
        let siem = SiemService::prepare(&config)?;
        let fleet = fleet_options(&config)?;
        let firewall = match firewall {
            Some(backend) => backend,
            None => {
                let backend = NftBackend::new(NftOptions {
                    layout: Layout::of(&config.nftables),
                    transport: Transport::Auto,
                    ..NftOptions::default()
                })?;
                info!("firewall: {}", backend.describe());
                Box::new(backend)
            }
        };
        let store = match store {
            Some(store) => store,
            None => {
                let db_path = &config.general.db_path;
                if let Some(dir) = db_path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| BuildError::Directory {
                        path: dir.to_path_buf(),
                        source,
                    })?;
                }
                Store::open(db_path).await?
            }
        };
        let (engine, subscriber) = Engine::start_subscribed(options, firewall, store).await?;
        let intel = IntelService::start(
            &engine,
            &config.intel,
            config.general.auto_intel,
            history(&config),
        );
        let siem = SiemService::start(&engine, siem).await;
        // After the restore: the maps are filled from the bans in force before attaching.
        let xdp = XdpService::start(&engine, &config.ebpf).await;
        let pipeline = if detection {
            Some(Detection::start(&engine, &config, utc_offset)?)
        } else {
            None
        };
        let fleet = fleet.map(|options| FleetService::start(engine.clone(), options));
        let running = Running {
            engine,
            intel,
            siem,
            xdp,
            state: Mutex::new(State {
                config,
                pipeline,
                fleet,
            }),
            utc_offset,
            detection,
        };
        Ok((running, subscriber))
    }
}

/// A running engine with its configuration and detection.
pub struct Running {
    engine: Engine,
    intel: IntelService,
    siem: SiemService,
    xdp: XdpService,
    state: Mutex<State>,
    utc_offset: i32,
    detection: bool,
}

struct State {
    config: Config,
    pipeline: Option<Detection>,
    /// The fleet service while `[fleet]` is enabled.
    fleet: Option<FleetService>,
}

impl Running {
    /// The engine: bans, unbans, whitelist, events.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Intel about attackers: gathered after bans, cached, asked by `crmonctl intel`.
    pub fn intel(&self) -> &IntelService {
        &self.intel
    }

    /// SIEM export: its targets' figures.
    pub fn siem(&self) -> &SiemService {
        &self.siem
    }

    /// The XDP fast path: its state, drop counters and interfaces.
    pub fn xdp(&self) -> &XdpService {
        &self.xdp
    }

    /// Every metric of the engine and of its services in a new registry: the instruments the
    /// engine updates as it works, and the figures read now (bans in force, what the drop
    /// rules and XDP dropped, queues). An embedder may register its own beside them, then
    /// [`encode_metrics`](crate::encode_metrics) it.
    pub async fn metrics_registry(&self) -> prometheus_client::registry::Registry {
        let mut registry = prometheus_client::registry::Registry::default();
        self.engine.metrics().register(&mut registry);
        let xdp = self.xdp.report();
        let scraped = crate::metrics::Scraped {
            bans: self.engine.ban_kind_counts(),
            rules: self.engine.drop_counters().await,
            xdp: (xdp.state == "running").then_some(xdp),
            intel: self.intel.stats(),
            siem: self.siem.stats(),
            records: self.engine.record_stats(),
            events_dropped: self.engine.events_dropped(),
            activity_dropped: self.engine.activity_dropped(),
            fleet: self.fleet().await.map(|(_, _, stats)| stats),
        };
        registry.register_collector(Box::new(scraped));
        registry
    }

    /// The fleet service's database (no password), this node's name and its figures, while
    /// `[fleet]` is enabled.
    pub async fn fleet(&self) -> Option<(String, String, FleetStats)> {
        let state = self.state.lock().await;
        let fleet = state.fleet.as_ref()?;
        Some((
            fleet.server().to_owned(),
            fleet.node().to_owned(),
            fleet.stats(),
        ))
    }

    /// Queries of the fleet database, while `[fleet]` is enabled.
    pub async fn fleet_queries(&self) -> Option<crate::FleetQueries> {
        self.state
            .lock()
            .await
            .fleet
            .as_ref()
            .map(FleetService::queries)
    }

    /// The configuration in force.
    pub async fn config(&self) -> Config {
        self.state.lock().await.config.clone()
    }

    /// Applies `new` as one step, or nothing: see the module documentation.
    pub async fn reconfigure(&self, new: Config) -> Result<Reconfigured, ReconfigureError> {
        let mut state = self.state.lock().await;
        needs_no_restart(&state.config, &new)?;
        Detection::check(&new)?;
        let siem = SiemService::prepare(&new)?;
        let fleet_changed = state.config.fleet != new.fleet;
        let fleet = if fleet_changed {
            fleet_options(&new)?
        } else {
            None
        };
        // The first change, itself all or nothing.
        let problems = self
            .engine
            .reconfigure_protection(new.whitelist.clone(), new.zones.clone())
            .await
            .map_err(ReconfigureError::Protection)?;
        self.engine
            .reconfigure_settings(&EngineOptions::from_config(&new));
        // Always: a reload re-reads the key files and lists even when the section is the same.
        self.intel
            .reconfigure(&new.intel, new.general.auto_intel, history(&new));
        if self.detection {
            // The services were checked above: starting cannot fail on them now.
            state.pipeline = Some(match state.pipeline.take() {
                Some(pipeline) => {
                    pipeline
                        .reconfigured(&self.engine, &new, self.utc_offset)
                        .await?
                }
                None => Detection::start(&self.engine, &new, self.utc_offset)?,
            });
        }
        // Files reopened, headers files re-read: a reload (SIGHUP) after a log rotation.
        self.siem.apply(siem).await;
        if fleet_changed {
            if let Some(old) = state.fleet.take() {
                old.shutdown().await;
            }
            state.fleet = fleet.map(|options| FleetService::start(self.engine.clone(), options));
        }
        let services = new
            .enabled_services()
            .map(|(name, _)| name.to_owned())
            .collect();
        state.config = new;
        Ok(Reconfigured { problems, services })
    }

    /// Stops detection, then the engine (bans stay in the kernel), and closes the store.
    /// Calls after the first do nothing.
    pub async fn shutdown(&self) {
        let pipeline = self.state.lock().await.pipeline.take();
        if let Some(pipeline) = pipeline {
            pipeline.shutdown().await;
        }
        self.intel.shutdown().await;
        if !self.engine.is_running() {
            return;
        }
        self.engine.shutdown().await;
        // After the engine: its last bans are in the outbox, sent at the next start.
        let fleet = self.state.lock().await.fleet.take();
        if let Some(fleet) = fleet {
            fleet.shutdown().await;
        }
        // After the engine: its last bans and unbans are mirrored; then off the interfaces.
        self.xdp.shutdown().await;
        // After the engine: its last events ("daemon stopping") are sent.
        self.siem.shutdown().await;
        // Checkpoints the WAL into the database file.
        self.engine.store().clone().close().await;
    }
}

/// The fleet options of `[fleet]` (its secret files read now), when it is enabled.
fn fleet_options(config: &Config) -> Result<Option<FleetOptions>, FleetConfigError> {
    if !config.fleet.enabled {
        return Ok(None);
    }
    FleetOptions::from_config(&config.fleet).map(Some)
}

/// How long cached intel is kept: the history of events and activity (`history_days`).
fn history(config: &Config) -> std::time::Duration {
    std::time::Duration::from_secs(u64::from(config.general.history_days) * 86_400)
}

/// Refuses a change to a key that only a restart applies.
fn needs_no_restart(old: &Config, new: &Config) -> Result<(), ReconfigureError> {
    fn check<T: PartialEq + std::fmt::Debug>(
        key: &'static str,
        old: &T,
        new: &T,
    ) -> Result<(), ReconfigureError> {
        if old == new {
            return Ok(());
        }
        Err(ReconfigureError::NeedsRestart {
            key,
            from: format!("{old:?}"),
            to: format!("{new:?}"),
        })
    }
    let (g, n) = (&old.general, &new.general);
    check("general.db_path", &g.db_path, &n.db_path)?;
    check("general.pid_file", &g.pid_file, &n.pid_file)?;
    check("general.state_dir", &g.state_dir, &n.state_dir)?;
    check("general.log_level", &g.log_level, &n.log_level)?;
    let (t, u) = (&old.nftables, &new.nftables);
    check("nftables.table_name", &t.table_name, &u.table_name)?;
    check("nftables.chain_name", &t.chain_name, &u.chain_name)?;
    check("nftables.set_v4", &t.set_v4, &u.set_v4)?;
    check("nftables.set_v6", &t.set_v6, &u.set_v6)?;
    check("nftables.priority", &t.priority, &u.priority)?;
    check("dbus.enabled", &old.dbus.enabled, &new.dbus.enabled)?;
    let (e, f) = (&old.ebpf, &new.ebpf);
    check("ebpf.enabled", &e.enabled, &f.enabled)?;
    check("ebpf.method", &e.method, &f.method)?;
    check("ebpf.interfaces", &e.interfaces, &f.interfaces)?;
    check("ebpf.xdp_mode", &e.xdp_mode, &f.xdp_mode)?;
    check("ebpf.pin_path", &e.pin_path, &f.pin_path)?;
    check(
        "ebpf.sync_interval_secs",
        &e.sync_interval,
        &f.sync_interval,
    )?;
    check("ebpf.max_entries", &e.max_entries, &f.max_entries)?;
    check(
        "dbus.system_bus",
        &old.dbus.system_bus,
        &new.dbus.system_bus,
    )?;
    Ok(())
}
