//! crmonban-engine is crmonban as a library: what the daemon runs and what another Rust
//! firewall embeds. It composes a [`crmonban_firewall::FirewallBackend`]
//! and the [`Store`] into an [`Engine`] that
//! - bans and unbans with the kernel and the database in agreement: a ban is in both or in
//!   neither (kernel first, record after, undo on failure);
//! - never bans a protected target (loopback, link-local, multicast, unspecified, broadcast,
//!   this host's own addresses, whitelisted networks, or a network containing any of them);
//! - restores every active ban at start (in ONE transaction when the kernel holds ours, in
//!   parts while the store is read when it holds none), expires bans on a timer, and
//!   re-creates the nftables layout when someone else deleted it;
//! - tells subscribers what happened over a bounded broadcast bus ([`EngineEvent`]) that
//!   never slows a ban.
//!
//! One OS thread owns the firewall backend (see `firewall_thread`); it batches concurrent bans into
//! one transaction. The background tasks run on the embedder's tokio runtime and end when
//! the engine is shut down or dropped. [`Detection`] runs crmonban-detect's log sources,
//! matchers and time windows over an engine; this crate parses no log text itself, talks no
//! D-Bus and handles no signals: those belong to crmonban-detect and the daemon.
//!
//! # Example
//!
//! An engine over the in-memory [`RecordingBackend`] instead of nftables (no root needed), a
//! database in a temporary directory, and no log sources: the program decides what to ban.
//!
//! ```
//! use crmonban_core::config::{BanDuration, Config};
//! use crmonban_core::{BanSource, Target};
//! use crmonban_engine::{BanRequest, EngineBuilder, EngineError, RecordingBackend, Store};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let dir = tempfile::tempdir()?;
//!     let running = EngineBuilder::new(Config::default())
//!         .firewall(Box::new(RecordingBackend::new()))
//!         .store(Store::open(&dir.path().join("crmonban.db")).await?)
//!         .without_detection()
//!         .start()
//!         .await?;
//!     let engine = running.engine();
//!
//!     let request = BanRequest {
//!         target: Target::parse("203.0.113.7")?,
//!         duration: Some(BanDuration::from_secs(600)),
//!         reason: "my own rule matched".into(),
//!         source: BanSource::Other("example".into()),
//!         service: None,
//!     };
//!     let ban = engine.ban(request.clone()).await?;
//!     assert_eq!((ban.offence, ban.expires_at.map(|end| end - ban.banned_at)), (1, Some(600)));
//!     assert!(engine.is_banned(&request.target));
//!
//!     // Loopback (and this host's addresses, and whitelisted networks) are never banned.
//!     let loopback = BanRequest { target: Target::parse("127.0.0.1")?, ..request.clone() };
//!     assert!(matches!(engine.ban(loopback).await, Err(EngineError::Protected { .. })));
//!
//!     assert!(engine.unban(&request.target, "done").await?);
//!     assert_eq!(engine.active_ban_count(), 0);
//!     running.shutdown().await;
//!     Ok(())
//! }
//! ```

#![warn(missing_docs)]

mod activity;
mod detection;
mod engine;
mod error;
mod events;
mod firewall_thread;
mod fleet;
mod host;
mod index;
mod intel;
mod locks;
mod memory;
mod metrics;
mod offences;
mod options;
mod positions;
mod protect;
mod records;
mod running;
mod siem;
mod watch;
mod xdp;

pub use detection::{Detection, DetectionError};
pub use engine::{BanRequest, BulkBanReport, Engine};
pub use error::EngineError;
pub use events::{EngineEvent, EventStream, Overflow};
pub use fleet::{Accept, FleetConfigError, FleetOptions, FleetQueries, FleetService, FleetStats};
pub use host::host_addresses;
pub use intel::{IntelQueryError, IntelService, IntelStats, ON_DEMAND};
pub use memory::use_few_malloc_arenas;
pub use metrics::{Format as MetricsFormat, Metrics, encode as encode_metrics};
pub use options::{EngineOptions, Escalation, FactorEscalation, NoEscalation, Retention};
pub use positions::StorePositions;
pub use records::RecordStats;
pub use siem::{PreparedSiem, SiemError, SiemService, SiemStats, SiemTargetStats};
pub use xdp::{DropCounters, InterfaceState, XdpMode, XdpReport, XdpService};
// The firewall and store types an embedder or the daemon handles, so that a program needs
// no direct dependency on those layers.
pub use crmonban_firewall::{
    ApplyReport, Change, ChangeSet, Element, Expiry, FirewallBackend, FirewallError, Layout,
    NftBackend, NftOptions, RecordingBackend, RuleCounter, Transport,
};
pub use crmonban_intel::{Intel, check_config as check_intel_config};
pub use crmonban_store::{
    AttackOrigin, FleetChange, FleetConnectOptions, FleetNode, FleetStore, IntelSummary, Store,
    StoreError,
};
/// The Prometheus client the metrics are made with, for an embedder's own registry and
/// instruments.
pub use prometheus_client;
pub use running::{BuildError, EngineBuilder, ReconfigureError, Reconfigured, Running};
