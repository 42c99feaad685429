//! crmonban-core owns the vocabulary every other crmonban crate speaks: what can be banned
//! ([`Target`]), what a ban is ([`Ban`]), what a detector reports ([`Event`], [`EventKind`],
//! [`Service`]), and the configuration schema ([`config`]) with its defaults and validation.
//!
//! This crate does no I/O and knows nothing of tokio, nftables or SQLite: everything here is
//! plain data and pure functions, so that an embedding firewall can use the types without
//! pulling in the daemon. Values are parsed once at the edge (`Target::parse`,
//! `config::Config::from_toml_str`) and the rest of the code never handles raw strings.
//!
//! # Example
//!
//! ```
//! use crmonban_core::config::{BanDuration, Config};
//! use crmonban_core::{Normalisation, Target};
//!
//! // A target is parsed and normalised once; what changed is reported.
//! let (target, notes) = Target::parse_reporting("10.1.2.3/8").unwrap();
//! assert_eq!(target.to_string(), "10.0.0.0/8");
//! assert!(matches!(notes[..], [Normalisation::HostBitsCleared { .. }]));
//! assert!(target.contains("10.200.0.1".parse().unwrap()));
//! assert!(Target::parse("not-an-address").is_err());
//!
//! // A configuration: what the text does not set keeps its default.
//! let text = "[general]\ndefault_ban_duration = 600\n\n[services.ssh]\nmax_failures = 3\n";
//! let config = Config::from_toml_str(text, "config.toml").unwrap();
//! assert_eq!(config.general.default_ban_duration, BanDuration::from_secs(600));
//! let (name, ssh) = config.service("sshd").unwrap(); // a pack's alias finds its service
//! assert_eq!((name, ssh.max_failures), ("ssh", 3));
//!
//! // Every error of the text at once, each with its file, line and key.
//! let errors = Config::from_toml_str("[services.ssh]\nmax_failures = 0\n", "config.toml")
//!     .unwrap_err();
//! assert!(errors.to_string().starts_with("config.toml:2: services.ssh.max_failures: "));
//! ```

#![warn(missing_docs)]

pub mod ban;
pub mod config;
pub mod duration;
pub mod event;
pub mod http;
pub mod target;
pub mod text;

pub use ban::{Ban, BanSource, unix_now};
pub use config::{Config, ConfigError, ConfigErrors, ConfigWarning};
pub use event::{Event, EventKind, Service};
pub use target::{Normalisation, Target, TargetError};
