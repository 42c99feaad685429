//! crmonban's D-Bus contract as code: the bus name, object path and interface, the wire tuples,
//! the error names, which members change state, the client proxy, and the caller check.
//!
//! The daemon (`crmonband`) serves `org.crmonban.Daemon` with a `#[zbus::interface]` object whose
//! methods return `Result<T, Error>`; clients (`crmonctl`, scripts through [`DaemonProxy`]) call
//! it. Both sides take every name from here, so the two cannot drift apart. This crate does no
//! I/O of its own beyond what a caller asks of it (connecting, [`authorize`]), spawns no tasks
//! and knows nothing of the engine.
//!
//! # Errors on the wire
//!
//! A method that fails replies with one of two families of D-Bus error names, both carried by
//! [`Error`]:
//!
//! - `org.crmonban.Error.*` (`InvalidAddress`, `Whitelisted`, `Protected`, `Firewall`,
//!   `Database`, `NotEnabled`, `Failed`), the message being the variant's string;
//! - `org.freedesktop.DBus.Error.AccessDenied` ([`Error::AccessDenied`], built with
//!   [`Error::access_denied`]) for a caller without the right to a
//!   [mutating](MUTATING_MEMBERS) member; the bus policy sends the same name.
//!
//! Server methods return `Result<T, Error>` (spell it `Result<..>`: `#[zbus::interface]`
//! recognises a fallible method by a last path segment named `Result`, so an alias does not
//! work):
//!
//! ```no_run
//! use crmonban_dbus::{Error, authorize};
//! use zbus::{Connection, message::Header};
//!
//! struct Daemon;
//!
//! #[zbus::interface(name = "org.crmonban.Daemon")]
//! impl Daemon {
//!     async fn ban(
//!         &self,
//!         ip: String,
//!         duration_secs: u32,
//!         reason: String,
//!         #[zbus(connection)] conn: &Connection,
//!         #[zbus(header)] hdr: Header<'_>,
//!     ) -> Result<bool, Error> {
//!         // org.freedesktop.DBus.Error.AccessDenied unless uid 0 or group crmonban.
//!         authorize(conn, &hdr).await?;
//!         if ip == "127.0.0.1" {
//!             // org.crmonban.Error.Protected
//!             return Err(Error::Protected(format!("{ip} is a loopback address")));
//!         }
//!         // A hand-made denial elsewhere: Err(Error::access_denied("..."))
//!         Ok(true)
//!     }
//! }
//! ```
//!
//! Client proxy methods return `Result<T, Error>` too: a reply named `org.crmonban.Error.X`
//! becomes `Error::X(message)`, `AccessDenied` becomes [`Error::AccessDenied`], and every other
//! failure — `ServiceUnknown` when no daemon runs, I/O errors — is [`Error::ZBus`], which
//! [`Error::is_unreachable`] and [`Error::dbus_name`] classify.
//!
//! # Example
//!
//! A client that lists the active bans (it needs a running daemon, so the example only
//! defines it), and the contract's pure parts, which run anywhere:
//!
//! ```
//! use crmonban_dbus::{BusChoice, DaemonProxy, Error, connect, is_mutating, rfc3339_utc};
//!
//! /// Prints every active ban of the daemon on the system bus.
//! async fn show_bans() -> Result<(), Error> {
//!     let connection = connect(BusChoice::System).await?;
//!     let daemon = DaemonProxy::new(&connection).await?;
//!     for (target, reason, source, banned_at, expires_at) in daemon.get_bans().await? {
//!         let until = match expires_at {
//!             0 => "permanent".to_owned(),
//!             end => rfc3339_utc(end),
//!         };
//!         println!("{target} since {} until {until} ({source}: {reason})", rfc3339_utc(banned_at));
//!     }
//!     Ok(())
//! }
//!
//! // Only uid 0 and group crmonban may call the members that change state.
//! assert!(is_mutating("Ban") && !is_mutating("GetBans"));
//! // Times travel as Unix seconds; clients print them as RFC 3339.
//! assert_eq!(rfc3339_utc(1_764_090_360), "2025-11-25T17:06:00Z");
//! let denied = Error::access_denied("uid 1000 is not in group crmonban");
//! assert_eq!(denied.dbus_name().as_deref(), Some("org.freedesktop.DBus.Error.AccessDenied"));
//! ```

#![warn(missing_docs)]

mod auth;
mod bus;
mod error;
mod proxy;
mod time;

pub use auth::{PRIVILEGED_GROUP, authorize, caller_may_mutate};
pub use bus::{BusChoice, connect};
pub use error::Error;
pub use proxy::*;
pub use time::rfc3339_utc;

/// The well-known bus name the daemon owns.
pub const BUS_NAME: &str = "org.crmonban.Daemon";
/// The path of the daemon's one object.
pub const OBJECT_PATH: &str = "/org/crmonban/Daemon";
/// The interface every member below belongs to.
pub const INTERFACE: &str = "org.crmonban.Daemon";
/// The prefix of crmonban's own error names (see [`Error`]).
pub const ERROR_PREFIX: &str = "org.crmonban.Error";
/// The standard error name a caller without the right to a mutating member receives, from the
/// bus policy or from the daemon's own check.
pub const ACCESS_DENIED: &str = "org.freedesktop.DBus.Error.AccessDenied";

/// One active ban as `GetBans` returns it (`(sssxx)`): ip or CIDR, reason, source, banned_at,
/// expires_at. Times are unix seconds (UTC); `expires_at` is 0 for a permanent ban.
pub type BanInfo = (String, String, String, i64, i64);

/// One whitelist entry as `GetWhitelist` returns it (`(sss)`): network (address or CIDR),
/// comment, added_at. `added_at` is unix seconds (UTC) written as decimal text (`"1764090360"`),
/// like every other time on this interface; it is a string only because the original
/// interface's tuple was `(sss)`. Clients format it (see [`rfc3339_utc`]) and show any
/// non-numeric value as is.
pub type WhitelistInfo = (String, String, String);

/// One entry of any whitelist source as `GetProtectedEntries` returns it (`(ssss)`): network
/// (address or CIDR), source (`database`, `networks source`, `file PATH:LINE`,
/// `zone NAME (trust N)`), comment, added_at (unix seconds as text for database entries, empty
/// for the others).
pub type ProtectedInfo = (String, String, String, String);

/// The most entries one `GetProtectedEntries` call returns; clients page with `offset`.
pub const PROTECTED_PAGE_MAX: u32 = 10_000;

/// The most bans one `GetBansPaged` call returns; clients page with `offset`.
pub const BANS_PAGE_MAX: u32 = 10_000;

/// The most bans `GetBans` returns (kept for compatibility; a reply with every one of 500,000
/// bans would not fit in a bus message). `GetBansPaged` lists them all.
pub const GET_BANS_MAX: usize = 100_000;

/// The longest address or CIDR argument accepted, in bytes (the longest IPv6 CIDR, even
/// bracketed or IPv4-mapped, is well under it). Longer ones are refused before any work, and
/// the error gives their size, never their text.
pub const MAX_TARGET_TEXT: usize = 64;

/// The longest reason or comment argument accepted, in bytes.
pub const MAX_NOTE_TEXT: usize = 256;

/// Most lifted bans `WhitelistAddLifting` lists (it always counts them all), which bounds its
/// reply when a wide entry lifts many bans.
pub const LIFTED_SHOWN_MAX: usize = 100;

/// One address's cached intel as `GetIntelSummaries` returns it (`(ssxs)`): address, country
/// code (empty when unknown), AS number (0 when unknown), organisation (empty when unknown).
pub type IntelSummaryInfo = (String, String, i64, String);

/// Addresses one `GetIntelSummaries` call answers for at most (a page of `GetBansPaged`).
pub const INTEL_SUMMARIES_MAX: usize = BANS_PAGE_MAX as usize;

/// The longest `GetIntel` reply, in bytes: every field of the record is bounded where it is
/// gathered; this is the backstop.
pub const INTEL_REPLY_MAX: usize = 64 * 1024;

/// One activity-log entry as `GetLogs` returns it (`(xsss)`): time (unix seconds), action
/// (`ban`, `unban`, `flush`, `reload`, ...), target (address or CIDR, empty when none), detail.
pub type LogInfo = (i64, String, String, String);

/// One node of the fleet as `GetFleetNodes` returns it (`(ssxx)`): name, crmonban version,
/// first and latest heartbeat (unix seconds).
pub type FleetNodeInfo = (String, String, i64, i64);

/// One ban in force in the fleet as `GetFleetBans` returns it (`(ssssxx)`): the node that made
/// it, target, reason, service (empty when none), when the fleet took it and when it ends
/// (unix seconds; 0 = never).
pub type FleetBanInfo = (String, String, String, String, i64, i64);

/// The most fleet bans one `GetFleetBans` call returns.
pub const FLEET_BANS_PAGE_MAX: u32 = 10_000;

/// Methods open to every local user: they change nothing.
pub const READ_ONLY_MEMBERS: &[&str] = &[
    "Status",
    "GetBans",
    "GetBansPaged",
    "IsBanned",
    "GetBan",
    "GetIntel",
    "GetIntelSummaries",
    "GetWhitelist",
    "GetProtectedEntries",
    "CheckProtected",
    "GetLogs",
    "GetStats",
    "GetFleetNodes",
    "GetFleetBans",
];

/// Methods that change state: only uid 0 and members of group [`PRIVILEGED_GROUP`] may call
/// them. The bus policy (`dbus/org.crmonban.Daemon.conf`) and [`authorize`] both enforce this.
pub const MUTATING_MEMBERS: &[&str] = &[
    "Ban",
    "Unban",
    "WhitelistAdd",
    "WhitelistAddLifting",
    "WhitelistRemove",
    "Flush",
    "Reload",
    "Stop",
];

/// The interface's properties (all read-only).
pub const PROPERTIES: &[&str] = &[
    "Running",
    "ActiveBanCount",
    "UptimeSeconds",
    "EventsProcessed",
];

/// The interface's signals.
pub const SIGNALS: &[&str] = &[
    "BanAdded",
    "BanRemoved",
    "AttackDetected",
    "DaemonStarted",
    "DaemonStopping",
];

/// Says whether `member` (a method of [`INTERFACE`]) needs uid 0 or group [`PRIVILEGED_GROUP`].
pub fn is_mutating(member: &str) -> bool {
    MUTATING_MEMBERS.contains(&member)
}

/// Keys of the `Status()` dictionary and the types of their values. A daemon may add keys;
/// clients ignore keys they do not know.
pub mod status_keys {
    /// `b`: always true when the daemon answers.
    pub const RUNNING: &str = "running";
    /// `s`: the daemon's version (`CARGO_PKG_VERSION`).
    pub const VERSION: &str = "version";
    /// `t`: seconds since the daemon started.
    pub const UPTIME_SECONDS: &str = "uptime_seconds";
    /// `t`: bans currently active.
    pub const ACTIVE_BANS: &str = "active_bans";
    /// `t`: events counted since start.
    pub const EVENTS_PROCESSED: &str = "events_processed";
    /// `as`: the names of the enabled services.
    pub const SERVICES: &str = "services";
    /// `u`: `[general] default_ban_duration` in seconds (0 = permanent). `crmonctl ban` without
    /// `-d` sends this value, or 3600 when the key is absent.
    pub const DEFAULT_BAN_DURATION: &str = "default_ban_duration";
    /// `t`: ban and unban records waiting for the database (it failed; the bans are enforced).
    pub const RECORDS_PENDING: &str = "records_pending";
    /// `t`: record writes that failed and were queued, since start.
    pub const RECORDS_FAILED: &str = "records_failed";
    /// `t`: records given up (refused for good by the database, or beyond the queue's bound).
    pub const RECORDS_DROPPED: &str = "records_dropped";
    /// `t`: event rows not recorded since start (queue full under a flood, database refused);
    /// the bans are not affected.
    pub const EVENTS_DROPPED: &str = "events_dropped";
    /// `t`: activity log entries not recorded since start.
    pub const ACTIVITY_DROPPED: &str = "activity_dropped";
    /// `t`: D-Bus signals not sent since start because the forwarder fell behind.
    pub const SIGNALS_DROPPED: &str = "signals_dropped";
    /// `as`: the intel sources in use (`geoip`, `rdns`, `whois`, `abuseipdb`, `shodan`).
    pub const INTEL_SOURCES: &str = "intel_sources";
    /// `as`: what is wrong with them (a missing GeoIP database and how to get it, ...).
    pub const INTEL_PROBLEMS: &str = "intel_problems";
    /// `t`: banned addresses dropped from the intel queue (full) since start.
    pub const INTEL_DROPPED: &str = "intel_dropped";
    /// `u`: SIEM targets exporting (0 when `[siem]` is off).
    pub const SIEM_TARGETS: &str = "siem_targets";
    /// `t`: events delivered to SIEM targets since start, all targets together.
    pub const SIEM_SENT: &str = "siem_sent";
    /// `t`: events dropped for SIEM targets (queues full, or the router behind) since start.
    pub const SIEM_DROPPED: &str = "siem_dropped";
    /// `as`: SIEM targets whose last attempt failed, each `name: last error`.
    pub const SIEM_FAILING: &str = "siem_failing";
    /// `s`: the XDP fast path: `off`, `running`, or `failed: <why>`.
    pub const XDP_STATE: &str = "xdp_state";
    /// `as`: each configured interface, `name: native|generic` (with why native was refused)
    /// or `name: not attached: <why>`.
    pub const XDP_INTERFACES: &str = "xdp_interfaces";
    /// `t`: IPv4 packets the XDP program dropped (since it was loaded; kept across restarts
    /// with `method = "mapfile"`).
    pub const XDP_DROPPED_V4: &str = "xdp_dropped_v4";
    /// `t`: IPv6 packets the XDP program dropped.
    pub const XDP_DROPPED_V6: &str = "xdp_dropped_v6";
    /// `t`: bans the XDP maps had no room for (`[ebpf] max_entries`); nftables enforces them.
    pub const XDP_NOT_MIRRORED: &str = "xdp_not_mirrored";
    /// `s`: the fleet (`[fleet]`): `off`, `connected to USER@HOST:PORT/DB as NODE`, or
    /// `connecting to ...: last error`.
    pub const FLEET: &str = "fleet";
    /// `t`: fleet changes not applied here yet (the newest the fleet had when last read,
    /// minus the last applied).
    pub const FLEET_LAG: &str = "fleet_lag";
    /// `t`: this node's publications waiting for the fleet database.
    pub const FLEET_OUTBOX: &str = "fleet_outbox";
    /// `t`: changes this node published since start.
    pub const FLEET_PUBLISHED: &str = "fleet_published";
    /// `t`: peers' bans applied here since start.
    pub const FLEET_APPLIED: &str = "fleet_applied";
    /// `t`: peers' bans this node's protection or the fleet whitelist refused, since start.
    pub const FLEET_VETOED: &str = "fleet_vetoed";
    /// `t`: changes of nodes this node does not accept (`[fleet] accept`), since start.
    pub const FLEET_IGNORED: &str = "fleet_ignored";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_partitioned() {
        for m in READ_ONLY_MEMBERS {
            assert!(
                !is_mutating(m),
                "{m} is listed as both read-only and mutating"
            );
        }
        let mut all: Vec<&str> = READ_ONLY_MEMBERS
            .iter()
            .chain(MUTATING_MEMBERS)
            .copied()
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(
            all.len(),
            22,
            "DESIGN.md §6 has 14 methods, and GetProtectedEntries, CheckProtected, \
             WhitelistAddLifting, GetBansPaged, GetBan, GetIntelSummaries, GetFleetNodes and \
             GetFleetBans: {all:?}"
        );
    }
}
