//! crmonban-core owns the vocabulary every other crmonban crate speaks: what can be banned
//! ([`Target`]), what a ban is ([`Ban`]), what a detector reports ([`Event`], [`EventKind`],
//! [`Service`]), and the configuration schema ([`config`]) with its defaults and validation.
//!
//! This crate does no I/O and knows nothing of tokio, nftables or SQLite: everything here is
//! plain data and pure functions, so that an embedding firewall can use the types without
//! pulling in the daemon. Values are parsed once at the edge (`Target::parse`,
//! `config::Config::from_toml_str`) and the rest of the code never handles raw strings.

pub mod ban;
pub mod config;
pub mod event;
pub mod target;
pub mod text;

pub use ban::{Ban, BanSource, unix_now};
pub use config::{Config, ConfigError, ConfigErrors, ConfigWarning};
pub use event::{Event, EventKind, Service};
pub use target::{Normalisation, Target, TargetError};
