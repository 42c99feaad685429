//! The pattern vocabulary the matcher runs, defined with the service packs in
//! [`crmonban_core::config::pack`] (the built-in packs are data files shipped in the binary;
//! docs/PACKS.md describes the format). This module re-exports it, and says how a pack regex
//! keeps the address out of an attacker's reach.
//!
//! # Where the address comes from
//!
//! Every regex is matched against the *message* of a line — what follows the syslog header
//! (`sshd[1234]: `), nginx's `[error] pid#tid: *cid ` or Apache's date — and is anchored with
//! `^` on text the program itself writes. The address is `<IP>`, and text an attacker controls
//! is captured in a named group ([`ATTACKER_GROUPS`]: `user`, `keyid`, `request`, ...):
//!
//! - when attacker text comes *before* the address (sshd's `... for USER from ADDR port N
//!   ssh2`), the regex ends with `$` (the loader refuses it otherwise) and spells out what the
//!   service writes after the address, so the address is the one whose remainder is the
//!   service's own; a user name that imitates the tail is followed by the real tail, which its
//!   imitation cannot account for;
//! - when attacker text can come both before and after the address (a certificate's key id in
//!   sshd's extra information), the matcher also runs the pattern with the first attacker
//!   group lazy: if the first and the last reading of the line put the address in different
//!   places, the line is ambiguous and refused ([`crate::matcher::MatcherStats::ambiguous`]);
//! - when the address comes right after fixed text (`Unable to negotiate with`, Apache's
//!   `[client ADDR:PORT]` header, postfix's `HOST[ADDR]`), whatever follows is irrelevant.
//!
//! The `ip` capture is only a candidate: `[0-9A-Fa-f:.]+`, then parsed as an
//! [`std::net::IpAddr`] (never a host name); a capture that does not parse is no match. Every
//! pack's sample lines are run again with each attacker group rewritten to forge another
//! address ([`crate::packs::verify`]); a pattern that yields the forged address is refused.

pub use crmonban_core::config::pack::{
    ATTACKER_GROUPS, ConnectionId, Envelope, IP_GROUP, PORT_GROUP, PackPattern, Step, expand,
};
