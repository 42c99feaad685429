//! The configuration schema (`/etc/crmonban/config.toml`): the typed [`Config`] and its
//! defaults ([`schema`]), parsing with every problem reported at once as
//! `file:line: key.path: message` ([`Config::from_toml_str`], [`ConfigErrors`]), and the
//! commented default file that `crmonband gen-config` prints ([`DEFAULT_CONFIG_TOML`]).
//!
//! Parse, don't validate: what comes out holds compiled regexes, [`Target`](crate::Target)s,
//! paths, durations and enums, never raw strings. Like the rest of the crate this module does
//! no I/O: callers read the file and pass its text.

pub mod catalog;
mod dbus_names;
mod document;
mod error;
pub mod pack;
mod parse;
pub mod schema;

pub use catalog::ServiceCatalog;
pub use error::{ConfigError, ConfigErrors, ConfigWarning};
pub use pack::Pack;
pub use schema::*;

/// The commented default configuration, as `crmonband gen-config` writes it. Parsing it gives
/// exactly [`Config::default`].
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default-config.toml");

impl Config {
    /// Parses configuration text. `origin` names the text in messages (usually the file path).
    /// On failure every error is returned, sorted by line. Warnings are dropped; use
    /// [`Config::from_toml_str_with_warnings`] to show them.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
        Self::from_toml_str_with_warnings(text, origin).map(|(config, _)| config)
    }

    /// Like [`Config::from_toml_str`], also returning notes about an accepted configuration
    /// (a CIDR whose host bits were cleared, a webhook over plain http, ...), sorted by line.
    pub fn from_toml_str_with_warnings(
        text: &str,
        origin: &str,
    ) -> Result<(Config, Vec<ConfigWarning>), ConfigErrors> {
        parse::parse(text, origin, ServiceCatalog::builtin())
    }

    /// Like [`Config::from_toml_str_with_warnings`], with the services of `catalog` (the
    /// built-in packs and those of `[general] services_dir`) instead of the built-in ones.
    pub fn from_toml_str_with_catalog(
        text: &str,
        origin: &str,
        catalog: &ServiceCatalog,
    ) -> Result<(Config, Vec<ConfigWarning>), ConfigErrors> {
        parse::parse(text, origin, catalog)
    }
}

#[cfg(test)]
mod tests;
