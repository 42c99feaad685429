//! The typed configuration: one struct per TOML section, enums for every choice, and the
//! value types that carry a checked meaning ([`Pattern`], [`BanDuration`], [`NftName`],
//! [`JournalMatch`], [`Secret`]). Defaults live here, next to the fields they fill; they must
//! agree with `default-config.toml` (a test checks it).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use super::catalog::ServiceCatalog;
use super::pack::Pack;
use crate::{EventKind, Target};

pub use fleet::*;
pub use sections::*;
pub use services::*;
pub use siem::*;

/// The whole configuration, as read from `/etc/crmonban/config.toml` or built in when absent.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `[general]`.
    pub general: GeneralConfig,
    /// `[nftables]`.
    pub nftables: NftablesConfig,
    /// `[intel]`.
    pub intel: IntelConfig,
    /// Every service by its name (a pack's name, never an alias); every service of the
    /// catalog the configuration was read with is present, enabled or not.
    pub services: BTreeMap<String, ServiceConfig>,
    /// `[dbus]`.
    pub dbus: DbusConfig,
    /// `[metrics]`.
    pub metrics: MetricsConfig,
    /// `[fleet]`.
    pub fleet: FleetConfig,
    /// `[zones]`.
    pub zones: ZonesConfig,
    /// `[siem]`.
    pub siem: SiemConfig,
    /// `[ebpf]`.
    pub ebpf: EbpfConfig,
    /// `[whitelist]`.
    pub whitelist: WhitelistConfig,
}

impl Default for Config {
    fn default() -> Config {
        let general = GeneralConfig::default();
        let services = services_of(ServiceCatalog::builtin(), general.default_ban_duration);
        Config {
            general,
            nftables: NftablesConfig::default(),
            intel: IntelConfig::default(),
            services,
            dbus: DbusConfig::default(),
            metrics: MetricsConfig::default(),
            fleet: FleetConfig::default(),
            zones: ZonesConfig::default(),
            siem: SiemConfig::default(),
            ebpf: EbpfConfig::default(),
            whitelist: WhitelistConfig::default(),
        }
    }
}

/// The services of `catalog` with their packs' defaults.
pub(super) fn services_of(
    catalog: &ServiceCatalog,
    ban_time: BanDuration,
) -> BTreeMap<String, ServiceConfig> {
    catalog
        .packs()
        .map(|pack| (pack.name.clone(), ServiceConfig::from_pack(pack, ban_time)))
        .collect()
}

impl Config {
    /// The service `name` means (its name or an alias of its pack), with its name.
    pub fn service(&self, name: &str) -> Option<(&str, &ServiceConfig)> {
        self.services
            .get_key_value(name)
            .or_else(|| {
                self.services
                    .iter()
                    .find(|(_, s)| s.pack.as_ref().is_some_and(|p| p.answers_to(name)))
            })
            .map(|(n, s)| (n.as_str(), s))
    }

    /// The services that are switched on, by name.
    pub fn enabled_services(&self) -> impl Iterator<Item = (&str, &ServiceConfig)> {
        self.services
            .iter()
            .filter(|(_, service)| service.enabled)
            .map(|(name, service)| (name.as_str(), service))
    }
}

/// Declares a fieldless enum read from a fixed set of strings, with `as_str`, `ALL`,
/// `Display` and a `FromStr` whose error lists the allowed strings.
macro_rules! string_enum {
    ($(#[$meta:meta])* pub enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order the documentation lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// The strings the configuration accepts, in the order of [`Self::ALL`].
            pub const NAMES: &'static [&'static str] = &[$($text,)+];

            /// The string the configuration writes for this value (one of [`Self::NAMES`]).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownChoice;
            fn from_str(s: &str) -> Result<Self, UnknownChoice> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownChoice {
                        given: s.to_owned(),
                        allowed: $name::NAMES,
                    }),
                }
            }
        }
    };
}

// After the macro, which the sections use.
mod fleet;
mod sections;
pub(crate) mod services;
mod siem;

/// A string that is none of a setting's allowed values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "must be one of {}; found {given:?}",
    super::document::quoted_list(allowed)
)]
pub struct UnknownChoice {
    /// The string that was given.
    pub given: String,
    /// Every string the setting accepts.
    pub allowed: &'static [&'static str],
}

// ---------------------------------------------------------------------------------------------
// [general]

string_enum! {
    /// `[general] log_level`.
    pub enum LogLevel {
        /// Every message, the most verbose.
        Trace = "trace",
        /// Debug messages and everything above.
        Debug = "debug",
        /// Informational messages (bans, unbans, ...) and above.
        Info = "info",
        /// Warnings and errors only.
        Warn = "warn",
        /// Errors only.
        Error = "error",
    }
}

/// `[general]`: files, logging, and what a ban does by default.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneralConfig {
    /// SQLite database. Default `/var/lib/crmonban/crmonban.db`.
    pub db_path: PathBuf,
    /// Default `/run/crmonban/crmonband.pid` (the directory is made when missing; the unit's
    /// RuntimeDirectory=crmonban, writable under ProtectSystem=strict).
    pub pid_file: PathBuf,
    /// Default `info`.
    pub log_level: LogLevel,
    /// Gather intel (`[intel]`) about every newly banned address, after the ban. Default true.
    pub auto_intel: bool,
    /// For bans that name no duration, and for services without `ban_time`. Default 3600 s.
    pub default_ban_duration: BanDuration,
    /// More service packs (`*.toml`), read at start and reload; a pack there replaces the
    /// built-in one of the same name. Default `/etc/crmonban/services.d` (absent: none).
    pub services_dir: PathBuf,
    /// Where the daemon keeps other state (log positions, caches). Default `/var/lib/crmonban`.
    pub state_dir: PathBuf,
    /// A repeat offender's timed ban lasts `ban_time × ban_time_increment ^ earlier bans`.
    /// At least 1.0 and finite; default 1.0 (no escalation).
    pub ban_time_increment: f64,
    /// The longest an escalated ban becomes; `None` (`0` in the file) means no cap below the
    /// longest timed ban. Escalation never shortens a ban whose own length is already longer.
    /// Default 604800 s (7 days).
    pub max_ban_time: Option<Duration>,
    /// Most addresses the detector tracks per service before it evicts. Default
    /// [`DEFAULT_MAX_TRACKED_ADDRESSES`].
    pub max_tracked_addresses: usize,
    /// Events and activity log entries older than this are deleted (ban history is kept:
    /// escalation counts it). Default 30 days.
    pub history_days: u32,
    /// The events table keeps at most this many rows, the newest. Default 1,000,000.
    pub max_event_rows: u64,
    /// The activity log keeps at most this many entries, the newest. Default 100,000.
    pub max_activity_rows: u64,
}

/// The default of `[general] max_tracked_addresses`: what a hash index of 2^21 buckets holds
/// at its 7/8 load, so that 1,000,000 addresses are tracked without eviction. crmonban-detect's
/// `DEFAULT_MAX_TRACKED` is the same number (a test there checks it).
pub const DEFAULT_MAX_TRACKED_ADDRESSES: usize = (1 << 21) / 8 * 7;

impl Default for GeneralConfig {
    fn default() -> GeneralConfig {
        GeneralConfig {
            db_path: PathBuf::from("/var/lib/crmonban/crmonban.db"),
            pid_file: PathBuf::from("/run/crmonban/crmonband.pid"),
            log_level: LogLevel::Info,
            auto_intel: true,
            services_dir: PathBuf::from(DEFAULT_SERVICES_DIR),
            default_ban_duration: BanDuration::Timed(Duration::from_secs(3600)),
            state_dir: PathBuf::from("/var/lib/crmonban"),
            ban_time_increment: 1.0,
            max_ban_time: Some(Duration::from_secs(7 * 24 * 3600)),
            max_tracked_addresses: DEFAULT_MAX_TRACKED_ADDRESSES,
            history_days: 30,
            max_event_rows: 1_000_000,
            max_activity_rows: 100_000,
        }
    }
}

/// How long a ban lasts. In the configuration, as on D-Bus, `0` seconds means permanent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BanDuration {
    /// Never expires; `0` in the configuration and on D-Bus.
    Permanent,
    /// Never zero; at most `u32::MAX` seconds, so that it fits D-Bus' `duration_secs u`.
    Timed(Duration),
}

impl BanDuration {
    /// `0` is permanent, as in the D-Bus `Ban` method.
    pub fn from_secs(secs: u32) -> BanDuration {
        match secs {
            0 => BanDuration::Permanent,
            secs => BanDuration::Timed(Duration::from_secs(u64::from(secs))),
        }
    }

    /// Seconds, `0` for permanent (the D-Bus convention).
    pub fn as_secs(self) -> u32 {
        match self {
            BanDuration::Permanent => 0,
            BanDuration::Timed(d) => u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
        }
    }

    /// The length of the ban; `None` when permanent.
    pub fn duration(self) -> Option<Duration> {
        match self {
            BanDuration::Permanent => None,
            BanDuration::Timed(d) => Some(d),
        }
    }
}

impl fmt::Display for BanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BanDuration::Permanent => f.write_str("permanent"),
            BanDuration::Timed(d) => crate::duration::Written(Some(d.as_secs())).fmt(f),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// [nftables]

/// An nftables table, chain or set name that `nft` accepts unquoted and that leaves room for
/// the suffixes crmonban derives from it (`_net`): `[A-Za-z_][A-Za-z0-9_-]*`, at most
/// [`NftName::MAX_LEN`] characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NftName(String);

/// Why a string is not an [`NftName`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NftNameError {
    /// The name is empty.
    #[error("must not be empty")]
    Empty,
    /// The name is longer than [`NftName::MAX_LEN`]; holds the name.
    #[error("{0:?} is too long: at most 64 characters")]
    TooLong(String),
    /// The name starts with something other than an ASCII letter or `_`; holds the name.
    #[error("{0:?} must start with a letter or `_`")]
    BadStart(String),
    /// The name contains a character other than ASCII letters, digits, `_` and `-`.
    #[error("{name:?} contains {bad:?}: use only letters, digits, `_` and `-`")]
    BadChar {
        /// The whole name.
        name: String,
        /// The first character refused.
        bad: char,
    },
}

impl NftName {
    /// The longest name accepted, in characters.
    pub const MAX_LEN: usize = 64;

    /// Checks `name` against the rules above.
    pub fn new(name: &str) -> Result<NftName, NftNameError> {
        let mut chars = name.chars();
        match chars.next() {
            None => return Err(NftNameError::Empty),
            Some(c) if !(c.is_ascii_alphabetic() || c == '_') => {
                return Err(NftNameError::BadStart(name.to_owned()));
            }
            Some(_) => {}
        }
        if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
            return Err(NftNameError::BadChar {
                name: name.to_owned(),
                bad,
            });
        }
        if name.len() > Self::MAX_LEN {
            return Err(NftNameError::TooLong(name.to_owned()));
        }
        Ok(NftName(name.to_owned()))
    }

    /// For the built-in defaults, which are valid by construction.
    fn known(name: &'static str) -> NftName {
        debug_assert!(NftName::new(name).is_ok(), "{name}");
        NftName(name.to_owned())
    }

    /// The name as `nft` sees it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name of the interval set that holds CIDR bans next to the set `self`.
    pub fn net_set(&self) -> String {
        format!("{}_net", self.0)
    }
}

impl fmt::Display for NftName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[nftables]`: the names of everything crmonban owns in the kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct NftablesConfig {
    /// `table inet <table_name>`. Default `crmonban`.
    pub table_name: NftName,
    /// The input-hook chain. Default `input` (the forward-hook chain is always `forward`).
    pub chain_name: NftName,
    /// Set of banned IPv4 addresses; CIDR bans go to `<set_v4>_net`. Default `blocked_v4`.
    pub set_v4: NftName,
    /// Default `blocked_v6`.
    pub set_v6: NftName,
    /// Hook priority of both chains; lower runs earlier. Default -100.
    pub priority: i32,
}

impl Default for NftablesConfig {
    fn default() -> NftablesConfig {
        NftablesConfig {
            table_name: NftName::known("crmonban"),
            chain_name: NftName::known("input"),
            set_v4: NftName::known("blocked_v4"),
            set_v6: NftName::known("blocked_v6"),
            priority: -100,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// [intel]

/// A credential from the configuration. Its `Debug` does not show it, so that logging a
/// [`Config`] leaks no key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential so that `Debug` hides it.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `[intel]`: what is gathered about banned addresses (and about any address `crmonctl intel`
/// asks for). Gathering runs after the ban, never on its path.
#[derive(Clone, Debug, PartialEq)]
pub struct IntelConfig {
    /// Country, city and ASN from the local databases below; never a web service. Default
    /// true: it needs no key and no network, and a missing file only leaves those fields out.
    pub geoip_enabled: bool,
    /// Reverse DNS (with forward confirmation). Default false: it sends the address to the
    /// configured name servers.
    pub rdns_enabled: bool,
    /// WHOIS from IANA through the referrals. Default false: it sends the address to the
    /// registries, which rate-limit.
    pub whois_enabled: bool,
    /// Per lookup (each DNS query, WHOIS connection, HTTP request). Default 10 s.
    pub timeout: Duration,
    /// Shodan is queried only when a key is set (here or in `shodan_api_key_file`).
    pub shodan_api_key: Option<Secret>,
    /// AbuseIPDB is queried only when a key is set (here or in `abuseipdb_api_key_file`).
    pub abuseipdb_api_key: Option<Secret>,
    /// A file holding the Shodan key (first line), read at start and reload, so that the
    /// configuration can be world-readable. Exclusive with `shodan_api_key`.
    pub shodan_api_key_file: Option<PathBuf>,
    /// A file holding the AbuseIPDB key. Exclusive with `abuseipdb_api_key`.
    pub abuseipdb_api_key_file: Option<PathBuf>,
    /// Default `https://api.shodan.io`.
    pub shodan_url: String,
    /// Default `https://api.abuseipdb.com/api/v2`.
    pub abuseipdb_url: String,
    /// Report our bans to AbuseIPDB (needs its key). Default false.
    pub abuseipdb_report: bool,
    /// Most reports sent per day (AbuseIPDB's free tier accepts 1,000). Default 1000.
    pub abuseipdb_reports_per_day: u32,
    /// City or Country database (GeoLite2 or DB-IP, `.mmdb`). Default
    /// `/var/lib/GeoIP/GeoLite2-City.mmdb`, where Debian's geoipupdate writes it.
    pub geoip_city_db: PathBuf,
    /// ASN database. Default `/var/lib/GeoIP/GeoLite2-ASN.mmdb`.
    pub geoip_asn_db: PathBuf,
    /// Name servers for reverse DNS (`ip` or `ip:port`); empty (the default) reads
    /// `/etc/resolv.conf`.
    pub dns_servers: Vec<SocketAddr>,
    /// The first WHOIS server (`host` or `host:port`). Default `whois.iana.org`.
    pub whois_server: String,
    /// Most WHOIS queries to one server per minute. Default 20.
    pub whois_queries_per_minute: u32,
    /// How long gathered intel is reused before it is gathered again. Default 1 day.
    pub cache_ttl: Duration,
    /// Banned addresses waiting for intel at most; beyond, the oldest waiting is dropped
    /// (and counted). Default 1000.
    pub queue_size: usize,
    /// Addresses gathered at the same time. Default 4.
    pub concurrency: usize,
    /// More hosting ASNs (`ASN name` per line) on top of the shipped list. Default unset.
    pub hosting_asn_file: Option<PathBuf>,
}

impl Default for IntelConfig {
    fn default() -> IntelConfig {
        IntelConfig {
            geoip_enabled: true,
            rdns_enabled: false,
            whois_enabled: false,
            timeout: Duration::from_secs(10),
            shodan_api_key: None,
            abuseipdb_api_key: None,
            shodan_api_key_file: None,
            abuseipdb_api_key_file: None,
            shodan_url: "https://api.shodan.io".into(),
            abuseipdb_url: "https://api.abuseipdb.com/api/v2".into(),
            abuseipdb_report: false,
            abuseipdb_reports_per_day: 1000,
            geoip_city_db: PathBuf::from("/var/lib/GeoIP/GeoLite2-City.mmdb"),
            geoip_asn_db: PathBuf::from("/var/lib/GeoIP/GeoLite2-ASN.mmdb"),
            dns_servers: Vec::new(),
            whois_server: "whois.iana.org".into(),
            whois_queries_per_minute: 20,
            cache_ttl: Duration::from_secs(86_400),
            queue_size: 1000,
            concurrency: 4,
            hosting_asn_file: None,
        }
    }
}

#[cfg(test)]
mod tests;
