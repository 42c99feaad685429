//! crmonban-zones owns the one question every ban path asks first: **may this target be
//! banned, and if not, what protects it?** ([`BanPolicy`]). Its answer combines
//! - the special-purpose ranges no host may ban (loopback, unspecified, link-local,
//!   multicast, limited broadcast);
//! - the host's own addresses (kept current by the engine);
//! - zones (`[zones]`, and more in `config_file`): every address belongs to its most specific
//!   zone, whose trust level decides whether it is protected and how long its bans last;
//! - the whitelist sources of `[[whitelist.sources]]`: `database` (crmonctl whitelist),
//!   `networks`, `file` (one address or CIDR per line), all in one longest-prefix table; and
//!   `daemon` ([`DaemonSource`]), another service asked over D-Bus, which the engine asks on
//!   the ban path only (it is asynchronous and bounded by its timeout).
//!
//! A network target is refused when it shares any address with something protected, either
//! way round: banning 10.0.0.0/8 around a trusted 10.1.0.0/16 would lock that network out as
//! surely as banning it. Lookups cost a walk of the prefix trie (well under a microsecond with
//! 100,000 entries), so detection can ask before it counts a failure.
//!
//! This crate reads the files its sources name; it starts no task and watches nothing by
//! itself: the engine rebuilds the [`Policy`] when a source changes and swaps it in whole.
//!
//! # Example
//!
//! ```
//! use crmonban_core::{Config, Target};
//! use crmonban_zones::{Policy, Refusal};
//!
//! let text = r#"
//! [zones]
//! enabled = true
//!
//! [[zones.zones]]
//! name = "office"
//! trust_level = 90
//! networks = ["10.1.0.0/16"]
//! "#;
//! let config = Config::from_toml_str(text, "config.toml").unwrap();
//! // No whitelist entries in the database; this host has one address.
//! let host = vec!["192.0.2.1".parse().unwrap()];
//! let (policy, problems) = Policy::from_config(&config, Vec::new(), host).unwrap();
//! assert!(problems.is_empty());
//!
//! let t = |text: &str| Target::parse(text).unwrap();
//! assert!(policy.check(&t("203.0.113.7")).is_ok());
//! assert!(matches!(policy.check(&t("127.0.0.1")), Err(Refusal::Reserved { .. })));
//! assert!(matches!(policy.check(&t("192.0.2.1")), Err(Refusal::HostAddress { .. })));
//! // The office's trust level is above `whitelist_threshold` (80): it is protected, and so is
//! // any network around it.
//! let refusal = policy.check(&t("10.0.0.0/8")).unwrap_err();
//! assert!(matches!(refusal, Refusal::Whitelisted { .. }));
//! assert_eq!(
//!     refusal.to_string(),
//!     "10.0.0.0/8 contains whitelisted 10.1.0.0/16 (zone office (trust 90): 10.1.0.0/16)"
//! );
//! ```

#![warn(missing_docs)]

mod daemon;
mod file;
mod policy;
mod prefixes;
mod reserved;
mod zones;
mod zones_file;

pub use daemon::{DEFAULT_CACHE_CAPACITY, DaemonAnswer, DaemonSource, DaemonSourceError, NoAnswer};
pub use file::{FileProblem, read_whitelist_file};
pub use policy::{Entry, Origin, Policy, PolicyProblem, Refusal, ZoneInfo};
pub use prefixes::PrefixTable;
pub use zones_file::{ZonesFileError, load_zones, read_zones_file, resolve_zones};

use crmonban_core::Target;

/// "May this target be banned?" The engine asks its [`Policy`] on every path (detector,
/// D-Bus, restore, future blocklists and fleet), and then, when an embedding program supplies
/// one, that program's own policy: an embedder can add vetoes, never lift the built-in ones.
pub trait BanPolicy: Send + Sync {
    /// `Ok` when `target` may be banned; otherwise the refusal, naming what protects it.
    fn check(&self, target: &Target) -> Result<(), Refusal>;
}

impl BanPolicy for Policy {
    fn check(&self, target: &Target) -> Result<(), Refusal> {
        Policy::check(self, target)
    }
}
