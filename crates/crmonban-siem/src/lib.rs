//! crmonban-siem owns **telling a SIEM**: what the engine did (bans added and removed, attacks
//! seen, whitelist changes, the daemon starting and stopping), written in the formats security
//! teams' tools parse —
//! - ArcSight CEF ([`format::cef`]), IBM QRadar LEEF 2.0 ([`format::leef`]), RFC 5424 syslog
//!   with structured data ([`format::rfc5424`]) and JSON lines compatible with the Elastic
//!   Common Schema ([`format::json`]), each escaping every value the way its specification
//!   says, so that a hostile user name or reason can never forge a field or a line;
//! - sent to files (appended, reopened after rotation), syslog (unix datagram or stream
//!   sockets, UDP, TCP with octet counting, TLS) and webhooks (HTTP POST of JSON with retries,
//!   backoff and jitter) by [`sink`];
//! - through a bounded queue per target ([`queue::TargetQueue`]) that drops the oldest event
//!   and counts it when a target is slow or gone, and delivers what is still queued when it
//!   comes back.
//!
//! This crate formats and sends; it starts no task. The engine subscribes to its own event
//! stream, turns events into [`SiemEvent`]s, pushes them onto each target's queue and runs
//! each target's [`worker::run`] future: a slow target never delays a ban.

#![warn(missing_docs)]

mod event;
pub mod format;
pub mod queue;
pub mod sink;
pub mod worker;

pub use event::{Action, MAX_TEXT_BYTES, Origin, SiemEvent, clip};
