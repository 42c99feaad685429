//! crmonban-detect owns turning log text into [`crmonban_core::Event`]s and ban decisions:
//! log sources (files through linemux, the systemd journal) with saved read positions
//! ([`source`]), the built-in and user patterns of each service ([`patterns`], [`matcher`]),
//! timestamps taken from the lines themselves ([`time`]), counting failures in time windows
//! ([`decide`]), and the offline runner behind `crmonband explain` ([`explain`]).
//!
//! It does no firewall or database work: the engine persists positions and applies decisions.

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
