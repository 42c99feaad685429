//! [`EngineEvent`]: what the engine tells its subscribers (D-Bus signals, SIEM, intel, XDP
//! sync). The bus is a bounded broadcast: a subscriber that reads too slowly loses the oldest
//! events (its next `recv` says how many) and never delays a ban.

use std::net::IpAddr;

use crmonban_core::{Ban, Target};

/// One thing that happened in the engine.
#[derive(Clone, Debug)]
pub enum EngineEvent {
    /// A ban is in force in the kernel and recorded in the store.
    BanAdded { ban: Ban },
    /// A ban ended; `reason` is `"expired"`, `"unban"`, `"flush"`, `"whitelisted"` or the
    /// unban caller's own reason.
    BanRemoved { target: Target, reason: String },
    /// A detector reported a hostile act (see [`Engine::report_attack`](crate::Engine::report_attack)).
    AttackDetected {
        addr: IpAddr,
        service: String,
        kind: String,
    },
    /// [`Engine::start`](crate::Engine::start) finished: bans are restored, tasks run.
    DaemonStarted,
    /// [`Engine::shutdown`](crate::Engine::shutdown) began.
    DaemonStopping,
    /// The nftables layout had disappeared and was re-created with `bans` bans.
    LayoutRepaired { bans: usize },
}
