//! The client proxy for `org.crmonban.Daemon` (DESIGN.md §6). The member names are spelled out
//! (`name = "..."`) so that the wire names can be read, and grepped, here.

use std::collections::HashMap;

use zbus::OwnedVariant;

use crate::{
    BanInfo, Error, FleetBanInfo, FleetNodeInfo, IntelSummaryInfo, LogInfo, ProtectedInfo,
    WhitelistInfo,
};

/// `org.crmonban.Daemon` at `/org/crmonban/Daemon` on `org.crmonban.Daemon`.
///
/// Use [`DaemonProxy::new`] for the defaults, or `DaemonProxy::builder(&conn)` with
/// `.cache_properties(zbus::proxy::CacheProperties::No)` for a one-shot client that reads no
/// property (it then sends nothing before the first call).
///
/// Methods fail with [`Error`]: `org.crmonban.Error.*` replies become their variant, anything
/// else is [`Error::ZBus`].
#[zbus::proxy(
    interface = "org.crmonban.Daemon",
    default_service = "org.crmonban.Daemon",
    default_path = "/org/crmonban/Daemon"
)]
pub trait Daemon {
    /// `Status() -> a{sv}`: see [`status_keys`](crate::status_keys) for the keys.
    #[zbus(name = "Status")]
    fn status(&self) -> Result<HashMap<String, OwnedVariant>, Error>;

    /// `Ban(ip s, duration_secs u, reason s) -> b`: `ip` may be a CIDR; 0 = permanent; the
    /// daemon records source "dbus". False when the target was already banned at least as long (a ban is
    /// only ever lengthened; unban first to shorten one).
    #[zbus(name = "Ban")]
    fn ban(&self, ip: &str, duration_secs: u32, reason: &str) -> Result<bool, Error>;

    /// `Unban(ip s) -> b`: false when it was not banned.
    #[zbus(name = "Unban")]
    fn unban(&self, ip: &str) -> Result<bool, Error>;

    /// `GetBans() -> a(sssxx)`: every active ban.
    #[zbus(name = "GetBans")]
    fn get_bans(&self) -> Result<Vec<BanInfo>, Error>;

    /// `GetBansPaged(offset u, limit u) -> a(sssxx)`: active bans in address order, at most
    /// [`BANS_PAGE_MAX`](crate::BANS_PAGE_MAX) from `offset`; fewer than asked is the end.
    #[zbus(name = "GetBansPaged")]
    fn get_bans_paged(&self, offset: u32, limit: u32) -> Result<Vec<BanInfo>, Error>;

    /// `IsBanned(ip s) -> b`: true also when a banned CIDR contains `ip`.
    #[zbus(name = "IsBanned")]
    fn is_banned(&self, ip: &str) -> Result<bool, Error>;

    /// `GetBan(ip s) -> (b, (sssxx))`: the active ban of exactly `ip` (address or network)
    /// with its true expiry, after escalation; `false` and an empty record when it has none.
    #[zbus(name = "GetBan")]
    fn get_ban(&self, ip: &str) -> Result<(bool, BanInfo), Error>;

    /// `GetIntel(ip s, refresh b) -> s`: intel about `ip` as a JSON object; `refresh` skips the
    /// cache.
    #[zbus(name = "GetIntel")]
    fn get_intel(&self, ip: &str, refresh: bool) -> Result<String, Error>;

    /// `GetIntelSummaries(ips as) -> a(ssxs)`: for those of `ips` (at most
    /// [`INTEL_SUMMARIES_MAX`](crate::INTEL_SUMMARIES_MAX)) with cached intel: address,
    /// country code, AS number (0 when unknown) and organisation; for `crmonctl list`.
    #[zbus(name = "GetIntelSummaries")]
    fn get_intel_summaries(&self, ips: &[&str]) -> Result<Vec<IntelSummaryInfo>, Error>;

    /// `WhitelistAdd(net s, comment s) -> b`: false when it was already whitelisted.
    #[zbus(name = "WhitelistAdd")]
    fn whitelist_add(&self, net: &str, comment: &str) -> Result<bool, Error>;

    /// `WhitelistAddLifting(net s, comment s) -> (b u a(ss))`: as `WhitelistAdd`, then how
    /// many bans the entry lifted and the first [`LIFTED_SHOWN_MAX`](crate::LIFTED_SHOWN_MAX)
    /// of them (target, why).
    #[zbus(name = "WhitelistAddLifting")]
    fn whitelist_add_lifting(
        &self,
        net: &str,
        comment: &str,
    ) -> Result<(bool, u32, Vec<(String, String)>), Error>;

    /// `WhitelistRemove(net s) -> b`: false when it was not whitelisted.
    #[zbus(name = "WhitelistRemove")]
    fn whitelist_remove(&self, net: &str) -> Result<bool, Error>;

    /// `GetWhitelist() -> a(sss)`.
    #[zbus(name = "GetWhitelist")]
    fn get_whitelist(&self) -> Result<Vec<WhitelistInfo>, Error>;

    /// `GetProtectedEntries(offset u, limit u) -> a(ssss)`: entries of every whitelist source
    /// in force, in address order, from `offset`, at most `limit` (capped at
    /// [`PROTECTED_PAGE_MAX`](crate::PROTECTED_PAGE_MAX)); fewer than asked means the end.
    #[zbus(name = "GetProtectedEntries")]
    fn get_protected_entries(&self, offset: u32, limit: u32) -> Result<Vec<ProtectedInfo>, Error>;

    /// `CheckProtected(ip s) -> (bs)`: whether `ip` (an address or CIDR) may not be banned, and
    /// why (what protects it: a reserved range, the host, a whitelist source and entry).
    #[zbus(name = "CheckProtected")]
    fn check_protected(&self, ip: &str) -> Result<(bool, String), Error>;

    /// `GetLogs(limit u) -> a(xsss)`: the newest `limit` activity-log entries, newest first.
    #[zbus(name = "GetLogs")]
    fn get_logs(&self, limit: u32) -> Result<Vec<LogInfo>, Error>;

    /// `GetFleetNodes() -> a(ssxx)`: the fleet's nodes and their heartbeats (`NotEnabled`
    /// without `[fleet]`).
    #[zbus(name = "GetFleetNodes")]
    fn get_fleet_nodes(&self) -> Result<Vec<FleetNodeInfo>, Error>;

    /// `GetFleetBans(offset u, limit u) -> a(ssssxx)`: the fleet's bans in force, newest
    /// first, at most 10,000 a page.
    #[zbus(name = "GetFleetBans")]
    fn get_fleet_bans(&self, offset: u32, limit: u32) -> Result<Vec<FleetBanInfo>, Error>;

    /// `GetStats() -> s`: statistics as a JSON object.
    #[zbus(name = "GetStats")]
    fn get_stats(&self) -> Result<String, Error>;

    /// `Flush() -> u`: removes every active ban; returns how many.
    #[zbus(name = "Flush")]
    fn flush(&self) -> Result<u32, Error>;

    /// `Reload() -> b`: re-reads the configuration; false when the new one was refused (the
    /// old one stays in force).
    #[zbus(name = "Reload")]
    fn reload(&self) -> Result<bool, Error>;

    /// `Stop()`: the daemon replies, emits `DaemonStopping`, then exits.
    #[zbus(name = "Stop")]
    fn stop(&self) -> Result<(), Error>;

    /// Property `Running` (`b`): always true when the daemon answers (never changes).
    #[zbus(property(emits_changed_signal = "const"), name = "Running")]
    fn running(&self) -> zbus::Result<bool>;

    /// Property `ActiveBanCount` (`t`), announced with PropertiesChanged
    /// (`receive_active_ban_count_changed`).
    #[zbus(property, name = "ActiveBanCount")]
    fn active_ban_count(&self) -> zbus::Result<u64>;

    /// Property `UptimeSeconds` (`t`), read each time (no change signal).
    #[zbus(property(emits_changed_signal = "false"), name = "UptimeSeconds")]
    fn uptime_seconds(&self) -> zbus::Result<u64>;

    /// Property `EventsProcessed` (`t`), read each time (no change signal).
    #[zbus(property(emits_changed_signal = "false"), name = "EventsProcessed")]
    fn events_processed(&self) -> zbus::Result<u64>;

    /// Signal `BanAdded(ip s, reason s, source s, duration_secs u)`.
    #[zbus(signal, name = "BanAdded")]
    fn ban_added(
        &self,
        ip: &str,
        reason: &str,
        source: &str,
        duration_secs: u32,
    ) -> zbus::Result<()>;

    /// Signal `BanRemoved(ip s, reason s)`: reason e.g. "expired", "unban", "flush".
    #[zbus(signal, name = "BanRemoved")]
    fn ban_removed(&self, ip: &str, reason: &str) -> zbus::Result<()>;

    /// Signal `AttackDetected(ip s, service s, event_type s)`.
    #[zbus(signal, name = "AttackDetected")]
    fn attack_detected(&self, ip: &str, service: &str, event_type: &str) -> zbus::Result<()>;

    /// Signal `DaemonStarted()`.
    #[zbus(signal, name = "DaemonStarted")]
    fn daemon_started(&self) -> zbus::Result<()>;

    /// Signal `DaemonStopping()`.
    #[zbus(signal, name = "DaemonStopping")]
    fn daemon_stopping(&self) -> zbus::Result<()>;
}
