//! crmonban-detect owns turning log text into [`crmonban_core::Event`]s and ban decisions:
//! log sources (files through linemux, the systemd journal) with saved read positions
//! ([`source`]), the built-in and user patterns of each service ([`patterns`], [`matcher`]),
//! timestamps taken from the lines themselves ([`time`]), counting failures in time windows
//! ([`decide`]), and the offline runner behind `crmonband explain` ([`explain`]).
//!
//! It does no firewall or database work: the engine persists positions and applies decisions.
//!
//! # Example
//!
//! Two failed sshd logins from one address, matched and counted as the daemon does:
//!
//! ```
//! use crmonban_core::Service;
//! use crmonban_core::config::Config;
//! use crmonban_detect::{Decider, DeciderOptions, Decision, LineContext, LineOutcome};
//! use crmonban_detect::ServiceMatcher;
//!
//! let config = Config::from_toml_str("[services.ssh]\nmax_failures = 2\n", "config.toml").unwrap();
//! let (name, ssh) = config.service("ssh").unwrap();
//! let matcher = ServiceMatcher::new(name, ssh).unwrap();
//! let mut decider = Decider::from_config(&config, DeciderOptions::default());
//! // When the lines are read (Unix seconds, 2026-11-26): the year of a BSD syslog stamp.
//! let ctx = LineContext::at(1_795_651_200);
//!
//! let lines = [
//!     "Nov 25 16:19:59 host sshd[1234]: Failed password for root from 192.0.2.7 port 51234 ssh2",
//!     "Nov 25 16:20:04 host sshd[1240]: Failed password for root from 192.0.2.7 port 51240 ssh2",
//! ];
//! let mut decisions = Vec::new();
//! for line in lines {
//!     let LineOutcome::Match(hit) = matcher.match_line(line.as_bytes(), &ctx) else {
//!         panic!("not matched: {line}");
//!     };
//!     assert_eq!((hit.addr.to_string(), &*hit.pattern), ("192.0.2.7".into(), "ssh-failed-auth"));
//!     decisions.extend(decider.observe(&Service::new(name), &hit, ctx.now));
//! }
//! // The second failure within find_time reaches max_failures: a ban.
//! let [Decision::Ban { target, failures, .. }] = &decisions[..] else {
//!     panic!("{decisions:?}");
//! };
//! assert_eq!((target.to_string(), *failures), ("192.0.2.7".into(), 2));
//! ```

#![warn(missing_docs)]

pub mod decide;
pub mod error;
pub mod explain;
pub mod matcher;
pub mod packs;
pub mod patterns;
pub mod source;
pub mod time;

pub use decide::{AttackCoalescer, Decider, DeciderOptions, Decision, WindowCounter};
pub use error::DetectError;
pub use explain::{ExplainContext, ExplainMode, ExplainSummary};
pub use matcher::{AttemptKey, Hit, LineContext, LineOutcome, ServiceMatcher, SkipReason};

/// FNV-1a, 64 bits: a hash of our own for values that are stored (a log's first line in a
/// saved position) or compared across runs, where std's hasher may change between releases.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
