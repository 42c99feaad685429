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
