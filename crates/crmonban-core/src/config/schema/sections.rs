//! The smaller sections: `[dbus]`, `[metrics]`, `[zones]`, `[ebpf]` and `[whitelist]`.

use super::*;

// ---------------------------------------------------------------------------------------------
// [dbus]

/// `[dbus]`: the daemon's control interface.
#[derive(Clone, Debug, PartialEq)]
pub struct DbusConfig {
    /// Default true.
    pub enabled: bool,
    /// The system bus (true) or the session bus. Default true.
    pub system_bus: bool,
}

impl Default for DbusConfig {
    fn default() -> DbusConfig {
        DbusConfig {
            enabled: true,
            system_bus: true,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// [metrics]

/// `[metrics]`: the Prometheus endpoint (`GET /metrics` over plain HTTP).
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsConfig {
    /// Default false: nothing listens unless asked.
    pub enabled: bool,
    /// Where to listen. Default 127.0.0.1:9717 (loopback only: the figures say who attacks
    /// and how the host defends itself; put a proxy with authentication in front to share).
    pub listen: std::net::SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> MetricsConfig {
        MetricsConfig {
            enabled: false,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9717)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// [zones]

/// `[zones]`: networks with a trust level; trusted zones are never banned.
#[derive(Clone, Debug, PartialEq)]
pub struct ZonesConfig {
    /// Default false.
    pub enabled: bool,
    /// More zones in a separate file, read by crmonban-zones. Default unset.
    pub config_file: Option<PathBuf>,
    /// Zones at or above this trust level are whitelisted unless they say otherwise.
    /// 0..=100, default 80.
    pub whitelist_threshold: u8,
    /// Default none.
    pub zones: Vec<Zone>,
}

impl Default for ZonesConfig {
    fn default() -> ZonesConfig {
        ZonesConfig {
            enabled: false,
            config_file: None,
            whitelist_threshold: 80,
            zones: Vec::new(),
        }
    }
}

/// `[[zones.zones]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Zone {
    /// Unique among the zones of the configuration.
    pub name: String,
    /// 0 (hostile) ..= 100 (fully trusted).
    pub trust_level: u8,
    /// The addresses and CIDRs of the zone; never empty.
    pub networks: Vec<Target>,
    /// Addresses of this zone are never banned. When the key is absent this is
    /// `trust_level >= whitelist_threshold`.
    pub implicit_whitelist: bool,
}

// ---------------------------------------------------------------------------------------------
// [ebpf]

string_enum! {
    /// `[ebpf] method` (or `[ebpf.method] type`).
    pub enum EbpfMethod {
        /// crmonban attaches its XDP program and keeps its maps in step with the bans; the
        /// maps are private to the daemon.
        Xdp = "xdp",
        /// As `xdp`, and the maps are pinned under `pin_path` for other programs to read
        /// (layout in docs/EBPF.md); they outlive a restart.
        Mapfile = "mapfile",
        /// No eBPF fast path.
        Disabled = "disabled",
    }
}

string_enum! {
    /// `[ebpf] xdp_mode`: where on the interface the program runs.
    pub enum XdpModeChoice {
        /// Native (in the driver), else generic, reported at warn.
        Auto = "auto",
        /// Native only: an interface whose driver has no XDP is an error.
        Native = "native",
        /// Generic (after the skb is built) only.
        Generic = "generic",
    }
}

/// `[ebpf]`: the optional XDP fast path in front of nftables.
#[derive(Clone, Debug, PartialEq)]
pub struct EbpfConfig {
    /// Default false.
    pub enabled: bool,
    /// Default `xdp` (used only once `enabled` is true).
    pub method: EbpfMethod,
    /// The directory the maps are pinned under with `method = "mapfile"` (`pin_path`, or
    /// `path` of the `[ebpf.method]` table). Default `/sys/fs/bpf/crmonban_blacklist`.
    pub pin_path: PathBuf,
    /// How often the maps are reconciled with the bans in force. Default 60 s.
    pub sync_interval: Duration,
    /// Capacity of each map (IPv4, IPv6). Default 10000.
    pub max_entries: u32,
    /// Interfaces the program is attached to; required when the fast path is on.
    pub interfaces: Vec<String>,
    /// Native, generic, or native with fallback. Default auto.
    pub xdp_mode: XdpModeChoice,
}

impl EbpfConfig {
    /// True when the fast path runs: enabled, with a method other than `disabled`.
    pub fn active(&self) -> bool {
        self.enabled && self.method != EbpfMethod::Disabled
    }
}

impl Default for EbpfConfig {
    fn default() -> EbpfConfig {
        EbpfConfig {
            enabled: false,
            method: EbpfMethod::Xdp,
            pin_path: PathBuf::from(DEFAULT_EBPF_PIN_PATH),
            sync_interval: Duration::from_secs(60),
            max_entries: 10_000,
            interfaces: Vec::new(),
            xdp_mode: XdpModeChoice::Auto,
        }
    }
}

/// `[ebpf] pin_path` when not given.
pub const DEFAULT_EBPF_PIN_PATH: &str = "/sys/fs/bpf/crmonban_blacklist";

// ---------------------------------------------------------------------------------------------
// [whitelist]

/// `[whitelist]`: addresses that are never banned, from several sources.
#[derive(Clone, Debug, PartialEq)]
pub struct WhitelistConfig {
    /// Default true.
    pub enabled: bool,
    /// How long an answer from the sources is reused. 0 = not cached. Default 300 s.
    pub cache_ttl: Duration,
    /// Default `[database, zones]`.
    pub sources: Vec<WhitelistSource>,
}

impl Default for WhitelistConfig {
    fn default() -> WhitelistConfig {
        WhitelistConfig {
            enabled: true,
            cache_ttl: Duration::from_secs(300),
            sources: vec![WhitelistSource::Database, WhitelistSource::Zones],
        }
    }
}

/// `[[whitelist.sources]]`, chosen by its `type` key.
#[derive(Clone, Debug, PartialEq)]
pub enum WhitelistSource {
    /// Entries added with `crmonctl whitelist add`.
    Database,
    /// Zones whose `implicit_whitelist` is true.
    Zones,
    /// Networks listed in the configuration.
    Networks(Vec<Target>),
    /// One address or CIDR per line (`#` comments); re-read on change when `watch`.
    File {
        /// The file (absolute).
        path: PathBuf,
        /// Re-read the file when it changes (default true).
        watch: bool,
    },
    /// Another service asked over D-Bus, one address at a time.
    Daemon(DaemonSource),
}

/// A `daemon` whitelist source: the method `interface.method(s) -> b` of object `path` of
/// service `name` on `bus`, called with the address as a string, answers whether that address
/// is trusted. Names and the path are checked against the D-Bus rules when parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonSource {
    /// Default the system bus.
    pub bus: DaemonBus,
    /// The service's well-known bus name, e.g. `org.example.Trust`.
    pub name: String,
    /// The object path. Default `/`.
    pub path: String,
    /// The interface, e.g. `org.example.Trust`.
    pub interface: String,
    /// The method (a member name, e.g. `IsTrusted`).
    pub method: String,
    /// How long one question may take, connecting included; an address the service does not
    /// answer for in time is not trusted for that decision. Default 200 ms, at most 10 s.
    pub timeout: Duration,
}

/// `bus` of a `daemon` whitelist source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonBus {
    /// `"system"`: `DBUS_SYSTEM_BUS_ADDRESS` when set, else the standard socket.
    System,
    /// `"session"`: the session bus of the user running crmonban.
    Session,
    /// A D-Bus address, e.g. `unix:path=/run/x/bus`.
    Address(String),
}

/// `timeout_ms` of a `daemon` source when not given.
pub const DEFAULT_DAEMON_SOURCE_TIMEOUT: Duration = Duration::from_millis(200);
/// The largest `timeout_ms` of a `daemon` source: a question holds up the ban that asked it.
pub const MAX_DAEMON_SOURCE_TIMEOUT: Duration = Duration::from_secs(10);

impl IntelConfig {
    /// Whether any source can be asked (for `crmonctl intel`): a lookup is on, or an API key
    /// (or key file) is set.
    pub fn any_source(&self) -> bool {
        self.geoip_enabled
            || self.rdns_enabled
            || self.whois_enabled
            || self.shodan_api_key.is_some()
            || self.shodan_api_key_file.is_some()
            || self.abuseipdb_api_key.is_some()
            || self.abuseipdb_api_key_file.is_some()
    }
}
