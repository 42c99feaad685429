//! Tests of configuration parsing as a user sees it: what a file turns into, and the exact
//! `file:line: key: message` lines `check-config` would print.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::{EventKind, Target};

const ORIGIN: &str = "config.toml";

fn parse(text: &str) -> Config {
    match Config::from_toml_str(text, ORIGIN) {
        Ok(config) => config,
        Err(errors) => panic!("expected a valid config, got:\n{errors}"),
    }
}

fn warnings(text: &str) -> Vec<String> {
    match Config::from_toml_str_with_warnings(text, ORIGIN) {
        Ok((_, warnings)) => warnings.iter().map(ToString::to_string).collect(),
        Err(errors) => panic!("expected a valid config, got:\n{errors}"),
    }
}

/// Every error line, as `check-config` prints them.
fn errors(text: &str) -> Vec<String> {
    match Config::from_toml_str(text, ORIGIN) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(errors) => errors.errors().iter().map(ToString::to_string).collect(),
    }
}

/// The one error of `text`.
fn error(text: &str) -> String {
    let all = errors(text);
    assert_eq!(all.len(), 1, "expected one error, got {all:#?}");
    all.into_iter().next().unwrap_or_default()
}

fn t(s: &str) -> Target {
    Target::parse(s).unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ---------------------------------------------------------------------------------------------
// Defaults.

#[test]
fn defaults_are_the_original_readme_values_and_safe_choices() {
    let c = Config::default();
    assert_eq!(
        c.general.db_path,
        PathBuf::from("/var/lib/crmonban/crmonban.db")
    );
    assert_eq!(
        c.general.pid_file,
        PathBuf::from("/run/crmonban/crmonband.pid")
    );
    assert_eq!(c.general.log_level, LogLevel::Info);
    // Intel after each ban, from what needs no key and no network: local GeoIP.
    assert!(c.general.auto_intel);
    assert_eq!(c.general.default_ban_duration, BanDuration::from_secs(3600));
    assert_eq!(c.general.state_dir, PathBuf::from("/var/lib/crmonban"));

    assert_eq!(c.nftables.table_name.as_str(), "crmonban");
    assert_eq!(c.nftables.chain_name.as_str(), "input");
    assert_eq!(c.nftables.set_v4.as_str(), "blocked_v4");
    assert_eq!(c.nftables.set_v6.as_str(), "blocked_v6");
    assert_eq!(c.nftables.priority, -100);

    assert!(c.intel.geoip_enabled && !c.intel.rdns_enabled && !c.intel.whois_enabled);
    assert!(!c.intel.abuseipdb_report);
    assert_eq!(c.intel.whois_server, "whois.iana.org");
    assert!(c.intel.dns_servers.is_empty());
    assert_eq!(c.intel.cache_ttl, secs(86_400));
    assert_eq!(c.intel.timeout, secs(10));
    assert_eq!(c.intel.shodan_api_key, None);
    assert_eq!(c.intel.abuseipdb_api_key, None);
    assert_eq!(
        c.intel.geoip_city_db,
        PathBuf::from("/var/lib/GeoIP/GeoLite2-City.mmdb")
    );
    assert_eq!(
        c.intel.geoip_asn_db,
        PathBuf::from("/var/lib/GeoIP/GeoLite2-ASN.mmdb")
    );

    // Every built-in pack is a service, ssh alone enabled.
    let names: Vec<&str> = c.services.keys().map(String::as_str).collect();
    let mut packs = builtin_services();
    packs.sort_unstable();
    assert_eq!(names, packs);
    for classic in ["apache", "dovecot", "nginx", "postfix", "ssh"] {
        assert!(names.contains(&classic), "{classic}");
    }
    let enabled: Vec<&str> = c.enabled_services().map(|(n, _)| n).collect();
    assert_eq!(enabled, ["ssh"]);
    let ssh = &c.services["ssh"];
    assert!(ssh.enabled);
    assert_eq!(ssh.log_path, Some(PathBuf::from("/var/log/auth.log")));
    assert_eq!(ssh.source, LogSource::Auto);
    assert!(ssh.journal_match.is_some());
    assert_eq!(ssh.max_failures, 5);
    assert_eq!(ssh.find_time, secs(600));
    assert_eq!(ssh.ban_time, BanDuration::from_secs(3600));
    assert!(ssh.patterns.is_empty());
    for (name, service) in &c.services {
        assert!(
            service.log_path.is_some() || service.journal_match.is_some(),
            "{name} has no default source"
        );
    }
    for (name, log) in [
        ("nginx", "/var/log/nginx/error.log"),
        ("apache", "/var/log/apache2/error.log"),
        ("postfix", "/var/log/mail.log"),
        ("dovecot", "/var/log/mail.log"),
    ] {
        assert!(!c.services[name].enabled, "{name}");
        assert_eq!(
            c.services[name].log_path,
            Some(PathBuf::from(log)),
            "{name}"
        );
    }
    assert_eq!(
        c.enabled_services()
            .map(|(name, _)| name)
            .collect::<Vec<_>>(),
        ["ssh"]
    );

    assert!(c.dbus.enabled && c.dbus.system_bus);
    assert!(!c.zones.enabled);
    assert_eq!(c.zones.whitelist_threshold, 80);
    assert!(c.zones.zones.is_empty() && c.zones.config_file.is_none());
    assert!(!c.siem.enabled && c.siem.targets.is_empty());
    assert!(!c.ebpf.enabled);
    assert!(c.whitelist.enabled);
    assert_eq!(c.whitelist.cache_ttl, secs(300));
    assert_eq!(
        c.whitelist.sources,
        [WhitelistSource::Database, WhitelistSource::Zones]
    );
}

#[test]
fn the_default_file_parses_to_exactly_the_defaults() {
    let (config, warnings) =
        Config::from_toml_str_with_warnings(DEFAULT_CONFIG_TOML, "default-config.toml")
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config, Config::default());
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn the_default_file_shows_every_key() {
    for key in [
        "db_path",
        "pid_file",
        "log_level",
        "auto_intel",
        "default_ban_duration",
        "services_dir",
        "state_dir",
        "ban_time_increment",
        "max_ban_time",
        "max_tracked_addresses",
        "history_days",
        "max_event_rows",
        "max_activity_rows",
        "ipv6_prefix",
        "table_name",
        "chain_name",
        "set_v4",
        "set_v6",
        "priority",
        "geoip_enabled",
        "rdns_enabled",
        "whois_enabled",
        "timeout_secs",
        "shodan_api_key",
        "abuseipdb_api_key",
        "geoip_city_db",
        "geoip_asn_db",
        "log_path",
        "source",
        "journal_match",
        "max_failures",
        "find_time",
        "ban_time",
        "[[services.ssh.patterns]]",
        "regex",
        "event_type",
        "system_bus",
        "config_file",
        "whitelist_threshold",
        "[[zones.zones]]",
        "trust_level",
        "networks",
        "implicit_whitelist",
        "format",
        "[[siem.targets]]",
        "socket",
        "url",
        "headers",
        "method",
        "pin_path",
        "[ebpf.method]",
        "sync_interval_secs",
        "max_entries",
        "cache_ttl_secs",
        "[[whitelist.sources]]",
        "watch",
        "interface",
        "timeout_ms",
        "bus = ",
        "\"daemon\"",
        "\"file\"",
        "\"networks\"",
        "\"webhook\"",
        "\"syslog\"",
    ] {
        assert!(
            DEFAULT_CONFIG_TOML.contains(key),
            "default file lacks {key}"
        );
    }
}

#[test]
fn an_empty_file_is_the_defaults() {
    assert_eq!(parse(""), Config::default());
    assert_eq!(parse("# only a comment\n"), Config::default());
}

// ---------------------------------------------------------------------------------------------
// Complete files.

const FULL: &str = r#"
[general]
db_path = "/srv/crmonban/db.sqlite"
pid_file = "/run/crmonban.pid"
log_level = "debug"
auto_intel = false
default_ban_duration = 7200
state_dir = "/srv/crmonban"
ban_time_increment = 1.5
max_ban_time = 86400
max_tracked_addresses = 50000

[nftables]
table_name = "ips"
chain_name = "in_filter"
set_v4 = "bad4"
set_v6 = "bad6"
priority = -200

[intel]
geoip_enabled = false
rdns_enabled = true
whois_enabled = false
timeout_secs = 3
shodan_api_key = "shodan-key"
abuseipdb_api_key = "abuse-key"
geoip_city_db = "/usr/share/GeoIP/City.mmdb"
geoip_asn_db = "/usr/share/GeoIP/ASN.mmdb"
cache_ttl_secs = 600
shodan_url = "https://shodan.example/api/"
abuseipdb_url = "http://127.0.0.1:8080/api/v2"
abuseipdb_report = true
abuseipdb_reports_per_day = 100
dns_servers = ["192.0.2.53", "[2001:db8::53]:5353"]
whois_server = "whois.example.net:4343"
whois_queries_per_minute = 5
queue_size = 50
concurrency = 2
hosting_asn_file = "/etc/crmonban/hosting.txt"

[services.ssh]
enabled = true
log_path = "/var/log/secure"
source = "file"
max_failures = 3
find_time = 300
ban_time = 0
ipv6_prefix = 64

[[services.ssh.patterns]]
name = "pubkey_probe"
regex = 'Connection closed by authenticating user \S+ (?<ip>[0-9a-fA-F:.]+)'
event_type = "probe"

[services.gitea]
source = "journal"
journal_match = "_SYSTEMD_UNIT=gitea.service"
max_failures = 10
find_time = 60

[[services.gitea.patterns]]
name = "failed_login"
regex = 'Failed authentication attempt for .* from (?P<ip>\S+)'
event_type = "gitea_login"

[dbus]
enabled = false
system_bus = false

[zones]
enabled = true
config_file = "/etc/crmonban/zones.yaml"
whitelist_threshold = 70

[[zones.zones]]
name = "office"
trust_level = 75
networks = ["192.0.2.0/24", "2001:db8::/48"]

[[zones.zones]]
name = "lab"
trust_level = 90
networks = ["198.51.100.7"]
implicit_whitelist = false

[siem]
enabled = true
format = "leef"

[[siem.targets]]
type = "file"
path = "/var/log/crmonban/siem.log"

[[siem.targets]]
type = "syslog"

[[siem.targets]]
type = "syslog"
socket = "/run/systemd/journal/syslog"

[[siem.targets]]
type = "webhook"
url = "https://siem.example.com/api/events"
headers = [["Authorization", "Bearer token"], ["X-Source", "crmonban"]]

[[siem.targets]]
type = "webhook"
url = "https://other.example.com/"
headers = { X-Key = "k" }

[ebpf]
enabled = true
method = "mapfile"
pin_path = "/sys/fs/bpf/shared_blocklist"
sync_interval_secs = 30
max_entries = 65536
interfaces = ["eth0", "enp3s0f1"]
xdp_mode = "native"

[whitelist]
enabled = true
cache_ttl_secs = 0

[[whitelist.sources]]
type = "database"

[[whitelist.sources]]
type = "zones"

[[whitelist.sources]]
type = "networks"
networks = ["10.0.0.0/8", "fd00::/8"]

[[whitelist.sources]]
type = "file"
path = "/etc/crmonban/whitelist.txt"
watch = false

[[whitelist.sources]]
type = "file"
path = "/etc/crmonban/more.txt"

[[whitelist.sources]]
type = "daemon"
bus = "unix:path=/run/trust/bus"
name = "org.example.Trust"
path = "/org/example/Trust"
interface = "org.example.Trust"
method = "IsTrusted"
timeout_ms = 500

[[whitelist.sources]]
type = "daemon"
name = "org.example.Other"
interface = "org.example.Other1"
method = "Trusted"
"#;

#[test]
fn a_file_using_every_key_parses_to_the_expected_values() {
    let c = parse(FULL);

    let g = &c.general;
    assert_eq!(g.db_path, PathBuf::from("/srv/crmonban/db.sqlite"));
    assert_eq!(g.pid_file, PathBuf::from("/run/crmonban.pid"));
    assert_eq!(g.log_level, LogLevel::Debug);
    assert!(!g.auto_intel);
    assert_eq!(g.default_ban_duration, BanDuration::Timed(secs(7200)));
    assert_eq!(g.state_dir, PathBuf::from("/srv/crmonban"));
    assert_eq!(g.ban_time_increment, 1.5);
    assert_eq!(g.max_ban_time, Some(secs(86400)));
    assert_eq!(g.max_tracked_addresses, 50_000);

    let n = &c.nftables;
    assert_eq!(
        [
            n.table_name.as_str(),
            n.chain_name.as_str(),
            n.set_v4.as_str(),
            n.set_v6.as_str()
        ],
        ["ips", "in_filter", "bad4", "bad6"]
    );
    assert_eq!(n.priority, -200);

    let i = &c.intel;
    assert!(!i.geoip_enabled && i.rdns_enabled && !i.whois_enabled);
    assert_eq!(i.timeout, secs(3));
    assert_eq!(
        i.shodan_api_key.as_ref().map(Secret::expose),
        Some("shodan-key")
    );
    assert_eq!(i.abuseipdb_api_key, Some(Secret::new("abuse-key")));
    assert_eq!(i.geoip_city_db, PathBuf::from("/usr/share/GeoIP/City.mmdb"));
    assert_eq!(i.geoip_asn_db, PathBuf::from("/usr/share/GeoIP/ASN.mmdb"));
    assert_eq!(i.cache_ttl, secs(600));
    assert_eq!(i.shodan_url, "https://shodan.example/api");
    assert_eq!(i.abuseipdb_url, "http://127.0.0.1:8080/api/v2");
    assert!(i.abuseipdb_report);
    assert_eq!(i.abuseipdb_reports_per_day, 100);
    assert_eq!(
        i.dns_servers,
        [
            "192.0.2.53:53".parse().unwrap(),
            "[2001:db8::53]:5353".parse().unwrap()
        ]
    );
    assert_eq!(i.whois_server, "whois.example.net:4343");
    assert_eq!(i.whois_queries_per_minute, 5);
    assert_eq!((i.queue_size, i.concurrency), (50, 2));
    assert_eq!(
        i.hosting_asn_file,
        Some(PathBuf::from("/etc/crmonban/hosting.txt"))
    );

    let ssh = &c.services["ssh"];
    assert_eq!(
        *ssh,
        ServiceConfig {
            enabled: true,
            log_path: Some(PathBuf::from("/var/log/secure")),
            source: LogSource::File,
            // Kept from the built-in defaults: the section does not set it.
            journal_match: Config::default().services["ssh"].journal_match.clone(),
            max_failures: 3,
            find_time: secs(300),
            ban_time: BanDuration::Permanent,
            ipv6_prefix: Some(64),
            // Kept from the pack: the section does not set it.
            ports: vec![22],
            pack: ServiceCatalog::builtin().find("ssh").cloned(),
            patterns: vec![
                Pattern::new(
                    "pubkey_probe",
                    r"Connection closed by authenticating user \S+ (?<ip>[0-9a-fA-F:.]+)",
                    EventKind::Probe,
                )
                .unwrap()
            ],
        }
    );
    let gitea = &c.services["gitea"];
    assert_eq!(
        *gitea,
        ServiceConfig {
            enabled: true,
            log_path: None,
            source: LogSource::Journal,
            journal_match: Some(JournalMatch::parse("_SYSTEMD_UNIT=gitea.service").unwrap()),
            max_failures: 10,
            find_time: secs(60),
            // Not set: follows [general] default_ban_duration.
            ban_time: BanDuration::Timed(secs(7200)),
            ipv6_prefix: None,
            ports: Vec::new(),
            pack: None,
            patterns: vec![
                Pattern::new(
                    "failed_login",
                    r"Failed authentication attempt for .* from (?P<ip>\S+)",
                    "gitea_login".parse().unwrap(),
                )
                .unwrap()
            ],
        }
    );
    // Untouched built-ins also follow default_ban_duration.
    assert_eq!(c.services["nginx"].ban_time, BanDuration::Timed(secs(7200)));
    assert_eq!(c.services.len(), builtin_services().len() + 1);

    assert_eq!(
        c.dbus,
        DbusConfig {
            enabled: false,
            system_bus: false
        }
    );

    assert_eq!(
        c.zones,
        ZonesConfig {
            enabled: true,
            config_file: Some(PathBuf::from("/etc/crmonban/zones.yaml")),
            whitelist_threshold: 70,
            zones: vec![
                Zone {
                    name: "office".into(),
                    trust_level: 75,
                    networks: vec![t("192.0.2.0/24"), t("2001:db8::/48")],
                    // Absent: 75 >= whitelist_threshold 70.
                    implicit_whitelist: true,
                },
                Zone {
                    name: "lab".into(),
                    trust_level: 90,
                    networks: vec![t("198.51.100.7")],
                    implicit_whitelist: false,
                },
            ],
        }
    );

    let unix = |socket: &str| SiemTarget::Syslog {
        transport: SyslogTransport::Unix {
            socket: socket.into(),
            socket_type: UnixSocketType::Auto,
            header: SyslogHeader::Auto,
        },
        facility: SyslogFacility::Auth,
    };
    let target = |name: &str, kind: SiemTarget| SiemTargetConfig {
        name: name.into(),
        format: None,
        queue_size: None,
        kind,
    };
    let webhook = |url: &str, headers: Vec<(String, Secret)>| SiemTarget::Webhook {
        url: url.into(),
        headers,
        headers_file: None,
        batch_size: 1,
        timeout_secs: 10,
    };
    assert_eq!(
        c.siem,
        SiemConfig {
            enabled: true,
            format: SiemFormat::Leef,
            targets: vec![
                target(
                    "file /var/log/crmonban/siem.log",
                    SiemTarget::File {
                        path: "/var/log/crmonban/siem.log".into()
                    }
                ),
                target("syslog /dev/log", unix("/dev/log")),
                target(
                    "syslog /run/systemd/journal/syslog",
                    unix("/run/systemd/journal/syslog")
                ),
                target(
                    "webhook https://siem.example.com",
                    webhook(
                        "https://siem.example.com/api/events",
                        vec![
                            ("Authorization".into(), Secret::new("Bearer token")),
                            ("X-Source".into(), Secret::new("crmonban")),
                        ]
                    )
                ),
                target(
                    "webhook https://other.example.com",
                    webhook(
                        "https://other.example.com/",
                        vec![("X-Key".into(), Secret::new("k"))]
                    )
                ),
            ],
            ..SiemConfig::default()
        }
    );

    assert_eq!(
        c.ebpf,
        EbpfConfig {
            enabled: true,
            method: EbpfMethod::Mapfile,
            pin_path: "/sys/fs/bpf/shared_blocklist".into(),
            sync_interval: secs(30),
            max_entries: 65536,
            interfaces: vec!["eth0".to_owned(), "enp3s0f1".to_owned()],
            xdp_mode: XdpModeChoice::Native,
        }
    );

    assert_eq!(
        c.whitelist,
        WhitelistConfig {
            enabled: true,
            cache_ttl: Duration::ZERO,
            sources: vec![
                WhitelistSource::Database,
                WhitelistSource::Zones,
                WhitelistSource::Networks(vec![t("10.0.0.0/8"), t("fd00::/8")]),
                WhitelistSource::File {
                    path: "/etc/crmonban/whitelist.txt".into(),
                    watch: false
                },
                WhitelistSource::File {
                    path: "/etc/crmonban/more.txt".into(),
                    watch: true
                },
                WhitelistSource::Daemon(DaemonSource {
                    bus: DaemonBus::Address("unix:path=/run/trust/bus".into()),
                    name: "org.example.Trust".into(),
                    path: "/org/example/Trust".into(),
                    interface: "org.example.Trust".into(),
                    method: "IsTrusted".into(),
                    timeout: Duration::from_millis(500),
                }),
                WhitelistSource::Daemon(DaemonSource {
                    bus: DaemonBus::System,
                    name: "org.example.Other".into(),
                    path: "/".into(),
                    interface: "org.example.Other1".into(),
                    method: "Trusted".into(),
                    timeout: Duration::from_millis(200),
                }),
            ],
        }
    );
}

#[test]
fn the_full_file_warns_only_about_plain_http_and_hides_secrets_in_debug() {
    let warned: Vec<String> = warnings(FULL).iter().map(ToString::to_string).collect();
    assert_eq!(
        warned,
        [
            "config.toml:31: intel.abuseipdb_url: plain http:// sends the API key unencrypted; \
          prefer https://"
        ]
    );
    let debug = format!("{:?}", parse(FULL));
    for secret in ["shodan-key", "abuse-key", "Bearer token"] {
        assert!(!debug.contains(secret), "{secret} leaked into Debug");
    }
}

#[test]
fn ebpf_method_is_accepted_as_a_string_or_as_a_table() {
    let as_string =
        parse("[ebpf]\nenabled = true\nmethod = \"xdp\"\ninterfaces = [\"eth0\"]\n").ebpf;
    assert_eq!(as_string.method, EbpfMethod::Xdp);
    assert_eq!(as_string.pin_path, PathBuf::from(DEFAULT_EBPF_PIN_PATH));

    let table_with_path_only =
        parse("[ebpf]\nenabled = true\ninterfaces = [\"eth0\"]\n[ebpf.method]\npath = \"/sys/fs/bpf/x\"\n")
            .ebpf;
    assert_eq!(table_with_path_only.method, EbpfMethod::Mapfile);
    assert_eq!(
        table_with_path_only.pin_path,
        PathBuf::from("/sys/fs/bpf/x")
    );

    let table_with_type = parse("[ebpf.method]\ntype = \"xdp\"\npath = \"/sys/fs/bpf/y\"\n").ebpf;
    assert_eq!(table_with_type.method, EbpfMethod::Xdp);
    assert_eq!(table_with_type.pin_path, PathBuf::from("/sys/fs/bpf/y"));

    let inline = parse("[ebpf]\nmethod = { type = \"disabled\" }\n").ebpf;
    assert_eq!(inline.method, EbpfMethod::Disabled);
}

/// The original README's example sections, verbatim except that its `[ebpf]` section held both
/// `method = "mapfile"` and an `[ebpf.method]` table, which TOML cannot: the string is dropped
/// (mapfile is the table's default type), and `interfaces`, which the original has no notion of
/// and the fast path needs, is added.
const ORIGINAL_README: &str = r#"
[general]
db_path = "/var/lib/crmonban/crmonban.db"
pid_file = "/var/run/crmonban.pid"
log_level = "info" # trace, debug, info, warn, error
auto_intel = true # Gather intel automatically on ban
default_ban_duration = 3600 # Default ban duration in seconds

[nftables]
table_name = "crmonban"
chain_name = "input"
set_v4 = "blocked_v4"
set_v6 = "blocked_v6"
priority = -100 # Chain priority (lower = earlier)

[intel]
geoip_enabled = true
rdns_enabled = true
whois_enabled = true
timeout_secs = 10
# Optional API keys for enhanced intelligence
# shodan_api_key = "your-key"
# abuseipdb_api_key = "your-key"

[services.ssh]
enabled = true
log_path = "/var/log/auth.log"
max_failures = 5 # Failures before ban
find_time = 600 # Time window (seconds)
ban_time = 3600 # Ban duration (seconds)
[[services.ssh.patterns]]
name = "failed_password"
regex = 'Failed password for .* from (?P<ip>\d+\.\d+\.\d+\.\d+)'
event_type = "failed_auth"
[[services.ssh.patterns]]
name = "invalid_user"
regex = 'Invalid user .* from (?P<ip>\d+\.\d+\.\d+\.\d+)'
event_type = "invalid_user"

[dbus]
enabled = true # Enable D-Bus interface
system_bus = true # Use system bus (recommended for daemon)

[zones]
enabled = true
config_file = "/etc/crmonban/zones.yaml"
whitelist_threshold = 80 # Trust level for implicit whitelist
[[zones.zones]]
name = "internal"
trust_level = 80
networks = ["10.0.0.0/8", "192.168.0.0/16"]
implicit_whitelist = true
[[zones.zones]]
name = "external"
trust_level = 0
networks = ["0.0.0.0/0"]

[siem]
enabled = true
format = "cef" # cef, leef, syslog, json
[[siem.targets]]
type = "file"
path = "/var/log/crmonban/siem.log"
[[siem.targets]]
type = "syslog"
socket = "/dev/log"
[[siem.targets]]
type = "webhook"
url = "https://siem.example.com/api/events"
headers = [["Authorization", "Bearer token"]]

[ebpf]
enabled = true
interfaces = ["eth0"]
sync_interval_secs = 60 # Sync with nftables
max_entries = 10000
# For mapfile method:
[ebpf.method]
path = "/sys/fs/bpf/crmonban_blacklist"

[whitelist]
enabled = true
cache_ttl_secs = 300
[[whitelist.sources]]
type = "database" # Local crmonban whitelist
[[whitelist.sources]]
type = "zones" # Zone-based implicit whitelist
[[whitelist.sources]]
type = "networks"
networks = ["10.0.0.0/8", "172.16.0.0/12"]
[[whitelist.sources]]
type = "file"
path = "/etc/crmonban/whitelist.txt"
watch = true
[[whitelist.sources]]
type = "daemon" # Query external daemon via D-Bus (requires crrouter feature)
"#;

/// The original's `daemon` source named no service (it meant its own companion firewall
/// daemon, crrouter): it is refused with what to add, and the rest of the example parses.
#[test]
fn the_original_readme_example_parses_but_for_its_bare_daemon_source() {
    let line = ORIGINAL_README
        .lines()
        .position(|l| l.starts_with("type = \"daemon\""))
        .unwrap()
        + 1;
    let header = line - 1;
    assert_eq!(
        errors(ORIGINAL_README),
        [
            format!(
                "config.toml:{header}: whitelist.sources[4]: missing key `name` (the bus name of \
                 the service to ask, e.g. \"org.example.Trust\")"
            ),
            format!(
                "config.toml:{header}: whitelist.sources[4]: missing key `interface` (the \
                 interface of the method, e.g. \"org.example.Trust\")"
            ),
            format!(
                "config.toml:{header}: whitelist.sources[4]: missing key `method` (a method \
                 taking the address as a string and returning a boolean, e.g. \"IsTrusted\")"
            ),
        ]
    );
    let (before, after) = ORIGINAL_README.split_at(
        ORIGINAL_README
            .find("[[whitelist.sources]]\ntype = \"daemon\"")
            .unwrap(),
    );
    let c = parse(&format!(
        "{before}{}",
        after.replacen(
            "type = \"daemon\"",
            "type = \"daemon\"\nname = \"org.example.Trust\"\n\
             interface = \"org.example.Trust\"\nmethod = \"IsTrusted\"",
            1
        )
    ));
    let defaults = Config::default();
    // The example turns every lookup on; GeoIP and auto_intel are on by default.
    assert!(c.general.auto_intel && c.intel.geoip_enabled && c.intel.whois_enabled);
    // The example's pid file is the original's; ours moved to /run/crmonban/ (RuntimeDirectory
    // under the hardened unit). The rest of [general] is our defaults.
    assert_eq!(c.general.pid_file, PathBuf::from("/var/run/crmonban.pid"));
    assert_eq!(
        GeneralConfig {
            pid_file: defaults.general.pid_file.clone(),
            ..c.general.clone()
        },
        defaults.general
    );
    assert_eq!(c.nftables, defaults.nftables);
    assert_eq!(
        IntelConfig {
            rdns_enabled: false,
            whois_enabled: false,
            ..c.intel.clone()
        },
        defaults.intel
    );
    assert_eq!(c.dbus, defaults.dbus);
    let ssh = &c.services["ssh"];
    assert_eq!(
        ssh.patterns
            .iter()
            .map(|p| (p.name.as_str(), p.event_type.clone()))
            .collect::<Vec<_>>(),
        [
            ("failed_password", EventKind::FailedAuth),
            ("invalid_user", EventKind::InvalidUser)
        ]
    );
    let caps = ssh.patterns[0]
        .regex
        .captures("Failed password for root from 203.0.113.9 port 22 ssh2")
        .and_then(|c| c.name("ip"));
    assert_eq!(caps.map(|m| m.as_str()), Some("203.0.113.9"));
    assert_eq!(c.zones.zones.len(), 2);
    assert!(c.zones.zones[0].implicit_whitelist);
    assert!(!c.zones.zones[1].implicit_whitelist);
    assert_eq!(c.zones.zones[1].networks, [t("0.0.0.0/0")]);
    assert_eq!(c.siem.format, SiemFormat::Cef);
    assert_eq!(c.siem.targets.len(), 3);
    assert_eq!(c.ebpf.method, EbpfMethod::Mapfile);
    assert_eq!(
        c.ebpf.pin_path,
        PathBuf::from("/sys/fs/bpf/crmonban_blacklist")
    );
    assert_eq!(c.whitelist.sources.len(), 5);
}

#[test]
fn the_fast_path_needs_valid_interfaces() {
    assert_eq!(
        error("[ebpf]\nenabled = true\n"),
        "config.toml:2: ebpf.enabled: the XDP fast path needs the interfaces to attach to: add \
         e.g. interfaces = [\"eth0\"] to [ebpf]"
    );
    assert_eq!(
        error("[ebpf]\ninterfaces = [\"eth0\", \"a/b\"]\n"),
        "config.toml:2: ebpf.interfaces[1]: \"a/b\" is not a network interface name (1 to 15 \
         bytes, no '/', ':' or blanks)"
    );
    assert_eq!(
        error("[ebpf]\ninterfaces = [\"eth0\", \"eth0\"]\n"),
        "config.toml:2: ebpf.interfaces[1]: interface \"eth0\" is listed twice"
    );
    assert_eq!(
        error("[ebpf]\ninterfaces = []\n"),
        "config.toml:2: ebpf.interfaces: must name at least one interface"
    );
    assert_eq!(
        error("[ebpf]\nxdp_mode = \"offload\"\n"),
        "config.toml:2: ebpf.xdp_mode: must be one of \"auto\", \"native\", \"generic\"; found \
         \"offload\""
    );
    // Disabled, or off: no interface needed.
    assert!(
        parse("[ebpf]\nenabled = false\n")
            .ebpf
            .interfaces
            .is_empty()
    );
    assert!(
        parse("[ebpf]\nenabled = true\nmethod = \"disabled\"\n")
            .ebpf
            .interfaces
            .is_empty()
    );
}

#[test]
fn the_original_ebpf_section_as_written_is_refused_with_a_hint() {
    let original = "[ebpf]\nenabled = true\nmethod = \"mapfile\"\nmax_entries = 10000\n[ebpf.method]\npath = \"/sys/fs/bpf/crmonban_blacklist\"\n";
    let e = error(original);
    assert!(
        e.starts_with("config.toml:5: invalid TOML (column 7): duplicate key `method`"),
        "{e}"
    );
    assert!(e.contains("either `method = \"mapfile\"`"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Merging services.

#[test]
fn a_user_ssh_section_overrides_only_the_keys_it_sets() {
    let c = parse("[services.ssh]\nmax_failures = 3\n");
    let builtin = &Config::default().services["ssh"];
    let ssh = &c.services["ssh"];
    assert_eq!(ssh.max_failures, 3);
    assert_eq!(
        *ssh,
        ServiceConfig {
            max_failures: 3,
            ..builtin.clone()
        }
    );

    let c = parse("[services.nginx]\nenabled = true\n");
    assert!(c.services["nginx"].enabled);
    assert_eq!(
        c.services["nginx"].log_path,
        Some(PathBuf::from("/var/log/nginx/error.log"))
    );
    assert!(
        c.services["ssh"].enabled,
        "other services keep their defaults"
    );
}

#[test]
fn user_patterns_of_a_builtin_service_are_kept_in_order() {
    let c = parse(
        "[[services.dovecot.patterns]]\nname = \"a\"\nregex = 'rip=(?P<ip>\\S+)'\n\
         [[services.dovecot.patterns]]\nname = \"b\"\nregex = 'from (?<ip>\\S+)'\nevent_type = \"sasl\"\n",
    );
    let patterns = &c.services["dovecot"].patterns;
    assert_eq!(patterns.len(), 2);
    assert_eq!(
        patterns[0].event_type,
        EventKind::FailedAuth,
        "default event_type"
    );
    assert_eq!(patterns[1].event_type.as_str(), "sasl");
    assert!(
        !c.services["dovecot"].enabled,
        "adding patterns does not enable it"
    );
}

#[test]
fn default_ban_duration_reaches_services_without_ban_time() {
    let c = parse("[general]\ndefault_ban_duration = 0\n[services.postfix]\nban_time = 60\n");
    assert_eq!(c.services["ssh"].ban_time, BanDuration::Permanent);
    assert_eq!(c.services["postfix"].ban_time, BanDuration::from_secs(60));
}

#[test]
fn ban_time_zero_means_permanent() {
    let c = parse("[services.ssh]\nban_time = 0\n");
    assert_eq!(c.services["ssh"].ban_time, BanDuration::Permanent);
    assert_eq!(c.services["ssh"].ban_time.as_secs(), 0);
}

#[test]
fn a_new_service_needs_a_log_and_a_pattern() {
    let text = "[services.gitea]\nmax_failures = 3\n";
    assert_eq!(
        errors(text),
        [
            "config.toml:1: services.gitea: needs `log_path` (or source = \"journal\" with \
             `journal_match`): no service pack is named `gitea`, so crmonban knows no log for it",
            "config.toml:1: services.gitea: needs at least one [[services.gitea.patterns]]: \
             no service pack is named `gitea`, so crmonban has no patterns for it \
             (`crmonband check-config` lists the service packs)",
        ]
    );
    let e = error(
        "[services.gitea]\nsource = \"journal\"\n[[services.gitea.patterns]]\nname = \"x\"\nregex = '(?P<ip>\\S+)'\n",
    );
    assert_eq!(
        e,
        "config.toml:1: services.gitea: source = \"journal\" needs `journal_match`, e.g. \
         \"_SYSTEMD_UNIT=gitea.service\""
    );
    let e = error(
        "[services.ssh]\nsource = \"file\"\n[services.x]\nsource = \"file\"\n[[services.x.patterns]]\nname = \"p\"\nregex = '(?P<ip>.)'\n",
    );
    assert_eq!(
        e,
        "config.toml:3: services.x: source = \"file\" needs `log_path`"
    );
}

#[test]
fn a_new_service_with_a_log_and_a_pattern_is_enabled() {
    let c = parse(
        "[services.gitea]\nlog_path = \"/var/log/gitea/gitea.log\"\n\
         [[services.gitea.patterns]]\nname = \"login\"\nregex = 'from (?P<ip>\\S+)'\n",
    );
    assert!(c.services["gitea"].enabled);
    assert_eq!(c.services["gitea"].ban_time, BanDuration::from_secs(3600));
}

// ---------------------------------------------------------------------------------------------
// Each kind of error, with its line and key.

#[test]
fn toml_syntax_errors_give_line_and_column() {
    let e = error("[general]\nlog_level = \"info\nauto_intel = true\n");
    assert!(e.starts_with("config.toml:2: invalid TOML (column "), "{e}");
    let all = errors("[general]\na = \n\n[nftables\n");
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(
        all[0].starts_with("config.toml:2: invalid TOML"),
        "{all:#?}"
    );
    assert!(
        all[1].starts_with("config.toml:4: invalid TOML"),
        "{all:#?}"
    );
}

#[test]
fn unknown_keys_are_named_with_their_line_and_a_suggestion() {
    assert_eq!(
        error("[general]\nlog_level = \"info\"\nlog_levle = \"debug\"\n"),
        "config.toml:3: general.log_levle: unknown key (did you mean `log_level`?); known keys \
         here: db_path, pid_file, log_level, auto_intel, default_ban_duration, services_dir, state_dir, \
         ban_time_increment, max_ban_time, max_tracked_addresses, history_days, max_event_rows, \
         max_activity_rows"
    );
    let e = error("\n[firewall]\ntable = \"x\"\n");
    assert!(
        e.starts_with("config.toml:2: firewall: unknown section; sections are: general, nftables"),
        "{e}"
    );
    let e = error("[services.ssh]\nretries = 3\n");
    assert!(
        e.starts_with("config.toml:2: services.ssh.retries: unknown key;"),
        "{e}"
    );
    let e = error("[[siem.targets]]\ntype = \"file\"\npath = \"/x\"\nurl = \"https://a\"\n");
    assert_eq!(
        e,
        "config.toml:4: siem.targets[0].url: unknown key; known keys here: type, name, format, queue_size, path"
    );
    let e = error("[ebpf.method]\npath = \"/sys/fs/bpf/x\"\npinned = true\n");
    assert!(
        e.starts_with("config.toml:3: ebpf.method.pinned: unknown key"),
        "{e}"
    );
    let e = error("[[whitelist.sources]]\ntype = \"database\"\npath = \"/x\"\n");
    assert_eq!(
        e,
        "config.toml:3: whitelist.sources[0].path: unknown key; known keys here: type"
    );
}

// ---------------------------------------------------------------------------------------------
// The `daemon` whitelist source.

const DAEMON: &str = "[[whitelist.sources]]\ntype = \"daemon\"\nname = \"org.example.Trust\"\n\
                      interface = \"org.example.Trust\"\nmethod = \"IsTrusted\"\n";

fn daemon_source(text: &str) -> DaemonSource {
    match parse(text).whitelist.sources.as_slice() {
        [WhitelistSource::Daemon(source)] => source.clone(),
        other => panic!("expected one daemon source, got {other:?}"),
    }
}

#[test]
fn a_daemon_source_takes_its_defaults_and_every_kind_of_bus() {
    assert_eq!(
        daemon_source(DAEMON),
        DaemonSource {
            bus: DaemonBus::System,
            name: "org.example.Trust".into(),
            path: "/".into(),
            interface: "org.example.Trust".into(),
            method: "IsTrusted".into(),
            timeout: Duration::from_millis(200),
        }
    );
    assert_eq!(
        daemon_source(&format!("{DAEMON}bus = \"session\"\n")).bus,
        DaemonBus::Session
    );
    assert_eq!(
        daemon_source(&format!("{DAEMON}bus = \"system\"\ntimeout_ms = 10000\n")).timeout,
        Duration::from_secs(10)
    );
    assert_eq!(
        daemon_source(&format!("{DAEMON}bus = \"tcp:host=127.0.0.1,port=4000\"\n")).bus,
        DaemonBus::Address("tcp:host=127.0.0.1,port=4000".into())
    );
}

#[test]
fn a_daemon_source_needs_its_name_interface_and_method() {
    assert_eq!(
        errors("[[whitelist.sources]]\ntype = \"daemon\"\nname = \"org.example.Trust\"\n"),
        [
            "config.toml:1: whitelist.sources[0]: missing key `interface` (the interface of the \
             method, e.g. \"org.example.Trust\")",
            "config.toml:1: whitelist.sources[0]: missing key `method` (a method taking the \
             address as a string and returning a boolean, e.g. \"IsTrusted\")",
        ]
    );
    assert_eq!(
        error(&DAEMON.replace("name = \"org.example.Trust\"\n", "")),
        "config.toml:1: whitelist.sources[0]: missing key `name` (the bus name of the service to \
         ask, e.g. \"org.example.Trust\")"
    );
}

#[test]
fn a_daemon_source_refuses_names_the_bus_would_refuse() {
    let with = |key: &str, value: &str| {
        error(&format!(
            "[[whitelist.sources]]\ntype = \"daemon\"\nname = \"org.example.Trust\"\n\
             interface = \"org.example.Trust\"\nmethod = \"IsTrusted\"\n{key} = {value}\n"
        ))
    };
    assert_eq!(
        error(&DAEMON.replace("\"org.example.Trust\"\ni", "\"org..Trust\"\ni")),
        "config.toml:3: whitelist.sources[0].name: \"org..Trust\" is not a valid bus name: it has \
         an empty element (a `.` at either end, or two in a row) (e.g. \"org.example.Trust\")"
    );
    assert_eq!(
        error(&DAEMON.replace("\"org.example.Trust\"\ni", "\"Trust\"\ni")),
        "config.toml:3: whitelist.sources[0].name: \"Trust\" is not a valid bus name: it needs at \
         least two elements separated by `.` (e.g. \"org.example.Trust\")"
    );
    assert_eq!(
        with("path", "\"/org/example/\""),
        "config.toml:6: whitelist.sources[0].path: \"/org/example/\" is not a valid object path: \
         only the root path `/` may end with `/` (e.g. \"/org/example/Trust\")"
    );
    assert_eq!(
        error(&DAEMON.replace("\"IsTrusted\"", "\"org.example.IsTrusted\"")),
        "config.toml:5: whitelist.sources[0].method: \"org.example.IsTrusted\" is not a valid \
         method name: it must not contain `.`: give the interface in `interface` (e.g. \
         \"IsTrusted\")"
    );
    assert!(
        with("bus", "\"systme\"").starts_with(
            "config.toml:6: whitelist.sources[0].bus: must be \"system\", \"session\" or a D-Bus \
             address such as \"unix:path=/run/example/bus\"; found \"systme\""
        ),
        "{}",
        with("bus", "\"systme\"")
    );
    assert_eq!(
        with("bus", "\"unix:socket=/run/x\""),
        "config.toml:6: whitelist.sources[0].bus: \"unix:socket=/run/x\" is not a usable D-Bus \
         address: a unix address needs exactly one of `path=` and `abstract=` (e.g. \
         \"unix:path=/run/example/bus\")"
    );
    assert_eq!(
        with("timeout_ms", "0"),
        "config.toml:6: whitelist.sources[0].timeout_ms: must be greater than 0, found 0"
    );
    assert_eq!(
        with("timeout_ms", "10001"),
        "config.toml:6: whitelist.sources[0].timeout_ms: must be at most 10000, found 10001"
    );
}

#[test]
fn a_daemon_source_names_unknown_keys_and_reports_every_problem() {
    assert_eq!(
        error(&format!("{DAEMON}timout_ms = 5\n")),
        "config.toml:6: whitelist.sources[0].timout_ms: unknown key (did you mean `timeout_ms`?); \
         known keys here: type, bus, name, path, interface, method, timeout_ms"
    );
    assert_eq!(
        errors(
            "[[whitelist.sources]]\ntype = \"daemon\"\nname = \":1.5\"\ninterface = \"x\"\n\
             method = \"9\"\nobject = \"/\"\n"
        )
        .iter()
        .map(|e| e.split(':').take(2).collect::<Vec<_>>().join(":"))
        .collect::<Vec<_>>(),
        [
            "config.toml:3",
            "config.toml:4",
            "config.toml:5",
            "config.toml:6"
        ]
    );
}

#[test]
fn wrong_types_say_what_was_expected_and_found() {
    assert_eq!(
        error("[general]\nauto_intel = \"yes\"\n"),
        "config.toml:2: general.auto_intel: expected a boolean (true or false), found string \"yes\""
    );
    assert_eq!(
        error("[services.ssh]\nmax_failures = \"5\"\n"),
        "config.toml:2: services.ssh.max_failures: expected an integer, found string \"5\""
    );
    assert_eq!(
        error("[services.ssh]\nfind_time = 1.5\n"),
        "config.toml:2: services.ssh.find_time: expected an integer, found float 1.5"
    );
    assert_eq!(
        error("general = 3\n"),
        "config.toml:1: general: expected a table, found integer 3"
    );
    assert_eq!(
        error("[services.ssh.patterns]\nname = \"x\"\n"),
        "config.toml:1: services.ssh.patterns: expected an array of tables \
         ([[services.ssh.patterns]]), found table"
    );
    assert_eq!(
        error(
            "[zones]\n\n[[zones.zones]]\nname = \"a\"\ntrust_level = 1\nnetworks = \"10.0.0.0/8\"\n"
        ),
        "config.toml:6: zones.zones[0].networks: expected an array of addresses or CIDRs, found \
         string \"10.0.0.0/8\""
    );
    assert_eq!(
        error("[ebpf]\nmethod = 1\n"),
        "config.toml:2: ebpf.method: expected a string (\"xdp\", \"mapfile\", \"disabled\") or \
         an [ebpf.method] table, found integer 1"
    );
}

#[test]
fn counts_and_durations_must_be_positive() {
    assert_eq!(
        error("[services.ssh]\nenabled = true\nmax_failures = 0\n"),
        "config.toml:3: services.ssh.max_failures: must be greater than 0, found 0"
    );
    assert_eq!(
        error("[services.ssh]\nfind_time = 0\n"),
        "config.toml:2: services.ssh.find_time: must be greater than 0, found 0"
    );
    assert_eq!(
        error("[services.ssh]\nban_time = -1\n"),
        "config.toml:2: services.ssh.ban_time: must not be negative, found -1"
    );
    assert_eq!(
        error("[general]\ndefault_ban_duration = 4294967296\n"),
        "config.toml:2: general.default_ban_duration: must be at most 4294967295, found 4294967296"
    );
    assert_eq!(
        error("[intel]\ntimeout_secs = 0\n"),
        "config.toml:2: intel.timeout_secs: must be greater than 0, found 0"
    );
    assert_eq!(
        error("[ebpf]\nmax_entries = 0\n"),
        "config.toml:2: ebpf.max_entries: must be greater than 0, found 0"
    );
}

#[test]
fn lengths_may_be_written_with_units() {
    let c = parse(
        "[general]\ndefault_ban_duration = \"1d\"\nmax_ban_time = \"2w\"\n\
         [intel]\ntimeout_secs = \"15s\"\n\
         [services.ssh]\nfind_time = \"10m\"\nban_time = \"1h30m\"\n\
         [services.recidive]\nban_time = \"permanent\"\n",
    );
    assert_eq!(
        c.general.default_ban_duration,
        BanDuration::Timed(secs(86_400))
    );
    assert_eq!(c.general.max_ban_time, Some(secs(1_209_600)));
    assert_eq!(c.intel.timeout, secs(15));
    let ssh = &c.services["ssh"];
    assert_eq!(ssh.find_time, secs(600));
    assert_eq!(ssh.ban_time, BanDuration::Timed(secs(5400)));
    assert_eq!(c.services["recidive"].ban_time, BanDuration::Permanent);

    assert_eq!(
        error("[services.ssh]\nban_time = \"3mo\"\n"),
        "config.toml:2: services.ssh.ban_time: \"mo\" in \"3mo\" is not a unit; use s, m, h, d or w"
    );
    assert_eq!(
        error("[services.ssh]\nfind_time = \"permanent\"\n"),
        "config.toml:2: services.ssh.find_time: must be a length such as \"10m\", found \"permanent\""
    );
    assert_eq!(
        error("[services.ssh]\nfind_time = \"0s\"\n"),
        "config.toml:2: services.ssh.find_time: must be greater than 0, found \"0s\""
    );
    assert_eq!(
        error("[general]\ndefault_ban_duration = \"10000w\"\n"),
        "config.toml:2: general.default_ban_duration: \"10000w\" is longer than 4294967295 seconds"
    );
}

#[test]
fn escalation_and_tracking_keys_take_their_documented_values() {
    let c = Config::default();
    assert_eq!(c.general.ban_time_increment, 1.0);
    assert_eq!(c.general.max_ban_time, Some(secs(604_800)));
    assert_eq!(c.general.max_tracked_addresses, 1_835_008);
    assert!(c.services.values().all(|s| s.ipv6_prefix.is_none()));

    let c = parse(
        "[general]\nban_time_increment = 2\nmax_ban_time = 0\nmax_tracked_addresses = 1\n\
         [services.ssh]\nipv6_prefix = 128\n[services.nginx]\nipv6_prefix = 1\n",
    );
    assert_eq!(
        c.general.ban_time_increment, 2.0,
        "an integer factor is accepted"
    );
    assert_eq!(c.general.max_ban_time, None, "0 means no cap");
    assert_eq!(c.general.max_tracked_addresses, 1);
    assert_eq!(c.services["ssh"].ipv6_prefix, Some(128));
    assert_eq!(c.services["nginx"].ipv6_prefix, Some(1));
}

#[test]
fn escalation_and_tracking_keys_refuse_out_of_range_values() {
    assert_eq!(
        error("[general]\nban_time_increment = 0.5\n"),
        "config.toml:2: general.ban_time_increment: must be at least 1.0, found 0.5"
    );
    assert_eq!(
        error("[general]\n\nban_time_increment = nan\n"),
        "config.toml:3: general.ban_time_increment: must be a finite number, found float nan"
    );
    assert_eq!(
        error("[general]\nban_time_increment = \"2\"\n"),
        "config.toml:2: general.ban_time_increment: expected a number, found string \"2\""
    );
    assert_eq!(
        error("[general]\nmax_ban_time = -1\n"),
        "config.toml:2: general.max_ban_time: must not be negative, found -1"
    );
    assert_eq!(
        error("[general]\nmax_tracked_addresses = 0\n"),
        "config.toml:2: general.max_tracked_addresses: must be greater than 0, found 0"
    );
    assert_eq!(
        error("[services.ssh]\nipv6_prefix = 0\n"),
        "config.toml:2: services.ssh.ipv6_prefix: must be greater than 0, found 0"
    );
    assert_eq!(
        error("[services.ssh]\nenabled = true\nipv6_prefix = 129\n"),
        "config.toml:3: services.ssh.ipv6_prefix: must be at most 128, found 129"
    );
}

#[test]
fn regexes_must_compile_and_capture_ip() {
    assert_eq!(
        error("[[services.ssh.patterns]]\nname = \"a\"\nregex = 'Failed (?P<ip'\n"),
        "config.toml:3: services.ssh.patterns[0].regex: invalid regex: unclosed capture group \
         name (at character 14)"
    );
    assert_eq!(
        error("[[services.ssh.patterns]]\nname = \"a\"\nregex = 'from (\\S+)'\n"),
        "config.toml:3: services.ssh.patterns[0].regex: the regex has no named group `ip`: \
         capture the address with (?P<ip>...)"
    );
    assert_eq!(
        error("[[services.ssh.patterns]]\nname = \"a\"\n"),
        "config.toml:1: services.ssh.patterns[0]: missing key `regex` (with a named group `ip`, \
         e.g. 'from (?P<ip>\\S+)')"
    );
    assert_eq!(
        error(
            "[[services.ssh.patterns]]\nname = \"a\"\nregex = '(?P<ip>.)'\n[[services.ssh.patterns]]\nname = \"a\"\nregex = '(?P<ip>.)'\n"
        ),
        "config.toml:5: services.ssh.patterns[1].name: the name \"a\" is used twice; names must be unique"
    );
    assert_eq!(
        error(
            "[[services.ssh.patterns]]\nname = \"a\"\nregex = '(?P<ip>.)'\nevent_type = \"failed auth\"\n"
        ),
        "config.toml:4: services.ssh.patterns[0].event_type: \"failed auth\" is not a valid event \
         type: start with a letter, then use letters, digits, `_` and `-` (e.g. \"failed_auth\")"
    );
}

#[test]
fn addresses_use_the_target_parser_messages() {
    assert_eq!(
        error(
            "[[whitelist.sources]]\ntype = \"networks\"\nnetworks = [\"10.0.0.0/8\",\n  \"10.0.0.0/33\"]\n"
        ),
        "config.toml:4: whitelist.sources[0].networks[1]: invalid prefix length in \"10.0.0.0/33\": \
         \"33\" is not a number from 0 to 32"
    );
    assert_eq!(
        error("[[zones.zones]]\nname = \"z\"\ntrust_level = 10\nnetworks = [\"intranet\"]\n"),
        "config.toml:4: zones.zones[0].networks[0]: invalid address \"intranet\": expected an IPv4 \
         or IPv6 address, or a CIDR such as 192.0.2.0/24"
    );
    assert_eq!(
        error("[[whitelist.sources]]\ntype = \"networks\"\nnetworks = []\n"),
        "config.toml:3: whitelist.sources[0].networks: must list at least one address or CIDR"
    );
}

#[test]
fn normalised_networks_are_accepted_with_a_warning() {
    let text = "[[whitelist.sources]]\ntype = \"networks\"\nnetworks = [\"10.1.2.3/8\"]\n";
    assert_eq!(
        parse(text).whitelist.sources,
        [WhitelistSource::Networks(vec![t("10.0.0.0/8")])]
    );
    assert_eq!(
        warnings(text),
        [
            "config.toml:3: whitelist.sources[0].networks[0]: 10.1.2.3/8: host bits set, using \
          network 10.0.0.0/8"
        ]
    );
}

#[test]
fn enum_strings_list_the_allowed_values() {
    let cases = [
        (
            "[general]\nlog_level = \"verbose\"\n",
            "config.toml:2: general.log_level: must be one of \"trace\", \"debug\", \"info\", \
             \"warn\", \"error\"; found \"verbose\"",
        ),
        (
            "[services.ssh]\nsource = \"syslog\"\n",
            "config.toml:2: services.ssh.source: must be one of \"auto\", \"file\", \"journal\"; \
             found \"syslog\"",
        ),
        (
            "[siem]\nformat = \"xml\"\n",
            "config.toml:2: siem.format: must be one of \"cef\", \"leef\", \"syslog\", \"json\"; \
             found \"xml\"",
        ),
        (
            "[[siem.targets]]\ntype = \"kafka\"\nbrokers = 1\n",
            "config.toml:2: siem.targets[0].type: must be one of \"file\", \"syslog\", \
             \"webhook\"; found \"kafka\"",
        ),
        (
            "[ebpf]\nmethod = \"tc\"\n",
            "config.toml:2: ebpf.method: must be one of \"xdp\", \"mapfile\", \"disabled\"; found \
             \"tc\"",
        ),
        (
            "[ebpf.method]\ntype = \"tc\"\n",
            "config.toml:2: ebpf.method.type: must be one of \"xdp\", \"mapfile\", \"disabled\"; \
             found \"tc\"",
        ),
        (
            "[[whitelist.sources]]\ntype = \"ldap\"\n",
            "config.toml:2: whitelist.sources[0].type: must be one of \"database\", \"zones\", \
             \"networks\", \"file\", \"daemon\"; found \"ldap\"",
        ),
        (
            "[[whitelist.sources]]\nnetworks = [\"10.0.0.0/8\"]\n",
            "config.toml:1: whitelist.sources[0]: missing key `type` (one of \"database\", \
             \"zones\", \"networks\", \"file\", \"daemon\")",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(error(text), expected, "for:\n{text}");
    }
}

#[test]
fn trust_levels_are_percentages() {
    assert_eq!(
        error("[[zones.zones]]\nname = \"z\"\ntrust_level = 101\nnetworks = [\"10.0.0.0/8\"]\n"),
        "config.toml:3: zones.zones[0].trust_level: must be at most 100, found 101"
    );
    assert_eq!(
        error("[zones]\nwhitelist_threshold = 200\n"),
        "config.toml:2: zones.whitelist_threshold: must be at most 100, found 200"
    );
    assert_eq!(
        error("[[zones.zones]]\nname = \"z\"\nnetworks = [\"10.0.0.0/8\"]\n"),
        "config.toml:1: zones.zones[0]: missing key `trust_level` (0 (hostile) to 100 (trusted))"
    );
}

#[test]
fn nftables_names_follow_nft_rules() {
    assert_eq!(
        error("[nftables]\ntable_name = \"\"\n"),
        "config.toml:2: nftables.table_name: must not be empty"
    );
    assert_eq!(
        error("[nftables]\nset_v4 = \"blocked v4\"\n"),
        "config.toml:2: nftables.set_v4: \"blocked v4\" contains ' ': use only letters, digits, \
         `_` and `-`"
    );
    assert_eq!(
        error("[nftables]\nchain_name = \"1st\"\n"),
        "config.toml:2: nftables.chain_name: \"1st\" must start with a letter or `_`"
    );
    assert_eq!(
        error("[nftables]\nchain_name = \"forward\"\n"),
        "config.toml:2: nftables.chain_name: must not be \"forward\": crmonban's forward-hook chain \
         has that name"
    );
    assert_eq!(
        error("[nftables]\nset_v4 = \"x\"\nset_v6 = \"x_net\"\n"),
        "config.toml:3: nftables.set_v6: \"x_net\" clashes with set_v4 \"x\": the sets x, x_net, \
         x_net and x_net_net must all have different names"
    );
    assert!(error("[nftables]\nset_v6 = \"blocked_v4\"\n").contains("clashes with set_v4"));
}

#[test]
fn priority_must_fit_an_i32() {
    assert_eq!(
        error("[nftables]\npriority = 2147483648\n"),
        "config.toml:2: nftables.priority: must be at most 2147483647, found 2147483648"
    );
    assert_eq!(
        error("[nftables]\npriority = -2147483649\n"),
        "config.toml:2: nftables.priority: must be at least -2147483648, found -2147483649"
    );
    assert_eq!(
        parse("[nftables]\npriority = -2147483648\n")
            .nftables
            .priority,
        i32::MIN
    );
}

#[test]
fn siem_targets_need_their_keys() {
    assert_eq!(
        error("[siem]\nenabled = true\n[[siem.targets]]\ntype = \"file\"\n"),
        "config.toml:3: siem.targets[0]: missing key `path` (the file events are appended to)"
    );
    assert_eq!(
        error("[[siem.targets]]\ntype = \"webhook\"\n"),
        "config.toml:1: siem.targets[0]: missing key `url` (where events are POSTed, e.g. \
         \"https://siem.example.com/api\")"
    );
    assert_eq!(
        error("[[siem.targets]]\ntype = \"webhook\"\nurl = \"ftp://siem.example.com/\"\n"),
        "config.toml:3: siem.targets[0].url: must be an http:// or https:// URL, found \
         \"ftp://siem.example.com/\""
    );
    assert_eq!(
        error("[[siem.targets]]\ntype = \"webhook\"\nurl = \"https:///events\"\n"),
        "config.toml:3: siem.targets[0].url: \"https:///events\" has no host"
    );
    assert_eq!(
        error(
            "[[siem.targets]]\ntype = \"webhook\"\nurl = \"https://a\"\nheaders = [[\"Authorization\"]]\n"
        ),
        "config.toml:4: siem.targets[0].headers[0]: expected a [name, value] pair, found 1 elements"
    );
    assert_eq!(
        error(
            "[[siem.targets]]\ntype = \"webhook\"\nurl = \"https://a\"\nheaders = [[\"Bad Name\", \"v\"]]\n"
        ),
        "config.toml:4: siem.targets[0].headers[0]: \"Bad Name\" is not a valid HTTP header name"
    );
    assert_eq!(
        error("[[siem.targets]]\ntype = \"syslog\"\nsocket = \"dev/log\"\n"),
        "config.toml:3: siem.targets[0].socket: must be an absolute path, found \"dev/log\""
    );
}

#[test]
fn doubtful_but_valid_settings_give_warnings() {
    assert_eq!(
        warnings("[siem]\nenabled = true\n"),
        [
            "config.toml:2: siem.enabled: SIEM export is enabled but there is no [[siem.targets]]: \
          nothing will be sent"
        ]
    );
    assert_eq!(
        warnings("[[siem.targets]]\ntype = \"webhook\"\nurl = \"http://siem.lan/x\"\n"),
        [
            "config.toml:3: siem.targets[0].url: plain http:// sends events (and any Authorization \
          header) unencrypted; prefer https://"
        ]
    );
    assert_eq!(
        warnings("[ebpf]\nenabled = true\nmethod = \"disabled\"\n"),
        [
            "config.toml:3: ebpf.method: eBPF is enabled but its method is \"disabled\": no fast path"
        ]
    );
    assert_eq!(
        warnings(
            "[services.ssh]\nsource = \"file\"\njournal_match = \"_SYSTEMD_UNIT=x.service\"\n"
        ),
        ["config.toml:3: services.ssh.journal_match: ignored: source is \"file\""]
    );
}

#[test]
fn misc_value_errors() {
    assert_eq!(
        error("[general]\ndb_path = \"crmonban.db\"\n"),
        "config.toml:2: general.db_path: must be an absolute path, found \"crmonban.db\""
    );
    assert_eq!(
        error("[intel]\nshodan_api_key = \"\"\n"),
        "config.toml:2: intel.shodan_api_key: must not be empty"
    );
    assert_eq!(
        error("[services.ssh]\njournal_match = \"ssh.service\"\n"),
        "config.toml:2: services.ssh.journal_match: \"ssh.service\" is not FIELD=value (e.g. \
         _SYSTEMD_UNIT=ssh.service)"
    );
    assert_eq!(
        error("[services.\"my svc\"]\nlog_path = \"/x\"\n"),
        "config.toml:1: services.\"my svc\": a service name must start with a letter and use only \
         letters, digits, `_` and `-`"
    );
    assert_eq!(
        error("[ebpf]\npin_path = \"/sys/fs/bpf/a\"\n[ebpf.method]\npath = \"/sys/fs/bpf/b\"\n"),
        "config.toml:2: ebpf.pin_path: the map path is given twice: keep either `pin_path` here or \
         `path` in [ebpf.method]"
    );
}

// ---------------------------------------------------------------------------------------------
// Everything at once.

#[test]
fn every_problem_of_a_file_is_reported_at_once_in_line_order() {
    let text = r#"[general]
log_level = "loud"
colour = true

[nftables]
priority = 99999999999

[services.ssh]
max_failures = 0
find_time = "soon"

[[services.ssh.patterns]]
name = "p"
regex = 'from (\S+)'

[services.gitea]
enabled = true

[[zones.zones]]
name = "z"
trust_level = 150
networks = ["10.0.0.0/40"]

[[siem.targets]]
type = "file"

[ebpf]
method = "tc"
"#;
    let result = Config::from_toml_str(text, "/etc/crmonban/config.toml");
    let Err(errors) = result else {
        panic!("expected errors");
    };
    let located: Vec<(Option<usize>, &str)> = errors
        .errors()
        .iter()
        .map(|e| (e.line, e.key.as_str()))
        .collect();
    assert_eq!(
        located,
        [
            (Some(2), "general.log_level"),
            (Some(3), "general.colour"),
            (Some(6), "nftables.priority"),
            (Some(9), "services.ssh.max_failures"),
            (Some(10), "services.ssh.find_time"),
            (Some(14), "services.ssh.patterns[0].regex"),
            (Some(16), "services.gitea"),
            (Some(16), "services.gitea"),
            (Some(21), "zones.zones[0].trust_level"),
            (Some(22), "zones.zones[0].networks[0]"),
            (Some(24), "siem.targets[0]"),
            (Some(28), "ebpf.method"),
        ]
    );
    let shown = errors.to_string();
    assert_eq!(shown.lines().count(), 12);
    assert!(
        shown
            .lines()
            .all(|l| l.starts_with("/etc/crmonban/config.toml:")),
        "{shown}"
    );
    assert!(shown.contains(
        "/etc/crmonban/config.toml:9: services.ssh.max_failures: must be greater than 0, found 0"
    ));
}

#[test]
fn a_zones_config_file_is_accepted_without_a_warning() {
    let (config, warnings) = Config::from_toml_str_with_warnings(
        "[zones]\nenabled = true\nconfig_file = \"/etc/crmonban/zones.toml\"\n",
        "config.toml",
    )
    .unwrap();
    assert!(config.zones.config_file.is_some());
    // crmonban-zones reads the file (at start, reload and check-config).
    assert!(warnings.is_empty(), "{warnings:?}");
}

/// A pack's own limits are its service's defaults; [general] default_ban_duration does not
/// replace them, and [services.NAME] still does.
#[test]
fn a_packs_own_limits_are_its_services_defaults() {
    let c = parse("[general]\ndefault_ban_duration = 60\n");
    let recidive = &c.services["recidive"];
    assert_eq!(
        (recidive.max_failures, recidive.find_time, recidive.ban_time),
        (5, secs(86_400), BanDuration::from_secs(604_800))
    );
    assert_eq!(c.services["ssh"].ban_time, BanDuration::from_secs(60));
    let c = parse("[services.recidive]\nenabled = true\nban_time = 100\nfind_time = 3600\n");
    let recidive = &c.services["recidive"];
    assert!(recidive.enabled);
    assert_eq!(
        (recidive.max_failures, recidive.find_time, recidive.ban_time),
        (5, secs(3600), BanDuration::from_secs(100))
    );
}

/// docs/CONFIG.md documents every key the parser knows, section by section: the list comes from
/// the parser's own "known keys" message, so the reference cannot drift from the schema.
#[test]
fn config_md_documents_every_key_the_parser_knows() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CONFIG.md"))
        .unwrap();
    let sections = [
        "[general]",
        "[nftables]",
        "[intel]",
        "[services.ssh]",
        "[[services.ssh.patterns]]\nname = \"x\"\nregex = '(?P<ip>x)'",
        "[dbus]",
        "[zones]",
        "[[zones.zones]]\nname = \"z\"\nnetworks = [\"10.0.0.0/8\"]",
        "[siem]",
        "[[siem.targets]]\ntype = \"file\"\npath = \"/tmp/x\"",
        "[[siem.targets]]\ntype = \"syslog\"",
        "[[siem.targets]]\ntype = \"webhook\"\nurl = \"https://x.example\"",
        "[ebpf]",
        "[ebpf.method]",
        "[whitelist]",
        "[[whitelist.sources]]\ntype = \"networks\"\nnetworks = [\"10.0.0.0/8\"]",
    ];
    let mut missing = Vec::new();
    let mut checked = 0;
    for section in sections {
        let text = format!("{section}\nzz_not_a_key = 1\n");
        let message = match Config::from_toml_str(&text, "config.toml") {
            Ok(_) => panic!("{section}: an unknown key was accepted"),
            Err(errors) => errors.to_string(),
        };
        let known = message
            .split("known keys here: ")
            .nth(1)
            .unwrap_or_else(|| panic!("{section}: no list of known keys in {message}"));
        let known = known.lines().next().unwrap_or_default();
        for key in known.split(", ").map(str::trim).filter(|k| !k.is_empty()) {
            checked += 1;
            if !doc.contains(&format!("| `{key}` |")) {
                missing.push(format!("{section}: {key}"));
            }
        }
    }
    assert!(missing.is_empty(), "docs/CONFIG.md lacks: {missing:?}");
    // Every section answered with its list (the schema has about a hundred keys).
    assert!(checked > 60, "only {checked} keys checked");
}

#[test]
fn intel_keys_are_checked_and_name_what_is_wrong() {
    assert_eq!(
        error(
            "[intel]\nshodan_api_key = \"k\"\nshodan_api_key_file = \"/etc/crmonban/shodan.key\"\n"
        ),
        "config.toml:3: intel.shodan_api_key_file: set either shodan_api_key or \
         shodan_api_key_file, not both"
    );
    assert_eq!(
        error("[intel]\nabuseipdb_api_key = \"a key\"\n"),
        "config.toml:2: intel.abuseipdb_api_key: must not contain spaces or control characters"
    );
    assert_eq!(
        error("[intel]\nabuseipdb_url = \"ftp://example.com\"\n"),
        "config.toml:2: intel.abuseipdb_url: must be an http:// or https:// URL, found \
         \"ftp://example.com\""
    );
    assert_eq!(
        error("[intel]\ndns_servers = [\"ns1.example.net\"]\n"),
        "config.toml:2: intel.dns_servers[0]: expected \"ip\" or \"ip:port\" (IPv6 as \
         \"[ip]:port\"), found \"ns1.example.net\""
    );
    assert_eq!(
        error("[intel]\nwhois_server = \"whois.example.net:0\"\n"),
        "config.toml:2: intel.whois_server: expected a host name or address, optionally with \
         :port, found \"whois.example.net:0\""
    );
    assert_eq!(
        error("[intel]\nconcurrency = 0\n"),
        "config.toml:2: intel.concurrency: must be greater than 0, found 0"
    );
    let c = parse(
        "[intel]\nabuseipdb_api_key_file = \"/etc/crmonban/abuse.key\"\n\
         whois_server = \"[2001:db8::43]:4343\"\ndns_servers = [\"127.0.0.1:5353\"]\n",
    );
    assert_eq!(
        c.intel.abuseipdb_api_key_file,
        Some(PathBuf::from("/etc/crmonban/abuse.key"))
    );
    assert!(c.intel.any_source());
    assert_eq!(c.intel.whois_server, "[2001:db8::43]:4343");
    assert_eq!(c.intel.dns_servers, ["127.0.0.1:5353".parse().unwrap()]);
    assert!(warnings("[intel]\nrdns_enabled = true\nwhois_enabled = true\n").is_empty());
}

#[test]
fn siem_targets_read_every_transport_and_refuse_what_cannot_work() {
    let c = parse(
        "[siem]\nenabled = true\nformat = \"cef\"\nhostname = \"edge-1\"\nqueue_size = 500\n\
         attack_interval_secs = 0\n\
         [[siem.targets]]\ntype = \"syslog\"\naddress = \"[2001:db8::5]:6514\"\ntls = true\n\
         tls_ca_file = \"/etc/ssl/siem-ca.pem\"\nfacility = \"local3\"\nformat = \"leef\"\n\
         [[siem.targets]]\ntype = \"syslog\"\nsocket = \"/run/syslog.sock\"\n\
         socket_type = \"stream\"\nheader = \"rfc5424\"\nname = \"local\"\nqueue_size = 20\n\
         [[siem.targets]]\ntype = \"syslog\"\naddress = \"siem.example.com:514\"\n\
         [[siem.targets]]\ntype = \"webhook\"\n\
         url = \"https://user:pw@hooks.example.com/t/SECRET?k=1\"\n\
         headers_file = \"/etc/crmonban/hook.headers\"\nbatch_size = 50\ntimeout_secs = 3\n",
    );
    let s = &c.siem;
    assert_eq!(
        (
            s.format,
            s.hostname.as_deref(),
            s.queue_size,
            s.attack_interval_secs
        ),
        (SiemFormat::Cef, Some("edge-1"), 500, 0)
    );
    assert_eq!(s.targets[0].name, "syslog tls [2001:db8::5]:6514");
    assert_eq!(s.targets[0].format_or(s.format), SiemFormat::Leef);
    assert_eq!(
        s.targets[0].kind,
        SiemTarget::Syslog {
            transport: SyslogTransport::Network {
                address: "[2001:db8::5]:6514".into(),
                protocol: SyslogProtocol::Tcp,
                tls: Some(SyslogTls {
                    ca_file: Some("/etc/ssl/siem-ca.pem".into()),
                    ..SyslogTls::default()
                }),
            },
            facility: SyslogFacility::Local3,
        }
    );
    assert_eq!(SyslogFacility::Local3.code(), 19);
    assert_eq!(SyslogFacility::Auth.code(), 4);
    assert_eq!(
        (s.targets[1].name.as_str(), s.targets[1].queue_size),
        ("local", Some(20))
    );
    assert_eq!(s.targets[1].format_or(s.format), SiemFormat::Cef);
    assert!(matches!(
        &s.targets[2].kind,
        SiemTarget::Syslog {
            transport: SyslogTransport::Network {
                protocol: SyslogProtocol::Udp,
                tls: None,
                ..
            },
            ..
        }
    ));
    // The name of a webhook never carries credentials, a path or a query.
    assert_eq!(s.targets[3].name, "webhook https://hooks.example.com");
    assert_eq!(s.targets[3].format_or(SiemFormat::Leef), SiemFormat::Json);
    assert!(matches!(
        &s.targets[3].kind,
        SiemTarget::Webhook {
            batch_size: 50,
            timeout_secs: 3,
            headers_file: Some(_),
            ..
        }
    ));

    let target = |body: &str| error(&format!("[[siem.targets]]\n{body}"));
    assert_eq!(
        target("type = \"syslog\"\nsocket = \"/dev/log\"\naddress = \"h:514\"\n"),
        "config.toml:3: siem.targets[0].socket: give either `socket` (a local syslog socket) or \
         `address` (a remote collector), not both"
    );
    assert_eq!(
        target("type = \"syslog\"\naddress = \"2001:db8::5:514\"\n"),
        "config.toml:3: siem.targets[0].address: \"2001:db8::5:514\" is an IPv6 address without \
         brackets (write \"[2001:db8::1]:514\"); expected \"host:port\", e.g. \
         \"siem.example.com:514\""
    );
    assert_eq!(
        target("type = \"syslog\"\naddress = \"h:514\"\ntls = true\nprotocol = \"udp\"\n"),
        "config.toml:4: siem.targets[0].tls: TLS needs protocol = \"tcp\" (RFC 5425)"
    );
    assert_eq!(
        target("type = \"syslog\"\naddress = \"h:514\"\ntls_ca_file = \"/ca.pem\"\n"),
        "config.toml:4: siem.targets[0].tls_ca_file: applies only with `tls = true`"
    );
    assert_eq!(
        target("type = \"syslog\"\naddress = \"h:514\"\nheader = \"local\"\n"),
        "config.toml:4: siem.targets[0].header: applies to a local socket (`socket`) only; a \
         collector gets RFC 5424"
    );
    assert_eq!(
        target("type = \"syslog\"\nprotocol = \"tcp\"\n"),
        "config.toml:3: siem.targets[0].protocol: applies to a remote collector \
         (`address = \"host:port\"`) only"
    );
    assert_eq!(
        target("type = \"webhook\"\nurl = \"https://h.example\"\nformat = \"cef\"\n"),
        "config.toml:4: siem.targets[0].format: a webhook sends JSON; format \"cef\" is not \
         available here"
    );
    assert_eq!(
        target("type = \"syslog\"\nfacility = \"local9\"\n")
            .split(':')
            .take(3)
            .collect::<Vec<_>>(),
        ["config.toml", "3", " siem.targets[0].facility"]
    );
    assert_eq!(
        error("[siem]\nhostname = \"two words\"\n"),
        "config.toml:2: siem.hostname: \"two words\" is not a host name: 1 to 255 printable \
         ASCII characters without spaces"
    );
    assert_eq!(
        error(
            "[[siem.targets]]\ntype = \"file\"\npath = \"/a\"\nname = \"x\"\n\
             [[siem.targets]]\ntype = \"file\"\npath = \"/b\"\nname = \"x\"\n"
        ),
        "config.toml:8: siem.targets[1].name: the name \"x\" is used twice; names must be unique"
    );
}

#[test]
fn service_ports_come_from_the_pack_unless_the_section_gives_them() {
    let c = parse("[services.nginx]\nenabled = true\n[services.ssh]\nport = 2222\n");
    assert_eq!(c.services["nginx"].ports, [80, 443]);
    assert_eq!(c.services["ssh"].ports, [2222]);
    assert_eq!(c.services["dovecot"].ports, [110, 143, 993, 995]);
    assert!(c.services["recidive"].ports.is_empty());
    assert_eq!(
        parse("[services.ssh]\nport = [22, 2222]\n").services["ssh"].ports,
        [22, 2222]
    );
    assert_eq!(
        error("[services.ssh]\nport = 0\n"),
        "config.toml:2: services.ssh.port: must be greater than 0, found 0"
    );
    assert_eq!(
        error("[services.ssh]\nport = [22, 22]\n"),
        "config.toml:2: services.ssh.port: port 22 is listed twice"
    );
}

#[test]
fn metrics_are_off_on_loopback_by_default_and_listen_where_told() {
    let defaults = parse("");
    assert!(!defaults.metrics.enabled);
    assert_eq!(defaults.metrics.listen.to_string(), "127.0.0.1:9717");
    let config = parse("[metrics]\nenabled = true\nlisten = \"[::1]:9100\"\n");
    assert!(config.metrics.enabled);
    assert_eq!(config.metrics.listen.to_string(), "[::1]:9100");
    assert_eq!(
        error("[metrics]\nlisten = \"localhost\"\n"),
        "config.toml:2: metrics.listen: `localhost` is not an address and port \
         (e.g. \"127.0.0.1:9717\" or \"[::1]:9717\")"
    );
    assert!(error("[metrics]\nlisten = 9717\n").starts_with("config.toml:2: metrics.listen: "));
}

#[test]
fn fleet_is_off_and_shares_detector_and_manual_bans_by_default() {
    let fleet = parse("").fleet;
    assert!(!fleet.enabled);
    assert_eq!(
        fleet.share.iter().map(String::as_str).collect::<Vec<_>>(),
        ["dbus", "detector"]
    );
    assert_eq!(fleet.accept, None);
    assert_eq!(fleet.min_ban_time, secs(600));
    assert_eq!((fleet.escalate_after, fleet.escalate_factor), (3, 4.0));
    assert_eq!(
        (fleet.escalate_window, fleet.prune_after),
        (secs(86_400), secs(7 * 86_400))
    );
    let config = parse(
        "[fleet]\nenabled = true\nurl = \"postgres://crmonban@db.example.org/crmonban?sslmode=verify-full\"\n\
         password_file = \"/etc/crmonban/fleet.password\"\nnode_name = \"web1\"\n\
         share = [\"detector\", \"manual\"]\naccept = [\"web2\", \"web3\"]\nmin_ban_time = \"1h\"\n\
         max_publish_rate = 50\nescalate_after = 0\nheartbeat = \"10s\"\n\
         escalate_window = \"2h\"\nprune_after = \"0\"\n",
    );
    let fleet = config.fleet;
    assert!(fleet.enabled);
    assert_eq!(fleet.node_name.as_deref(), Some("web1"));
    assert_eq!(
        fleet.password_file,
        Some(PathBuf::from("/etc/crmonban/fleet.password"))
    );
    assert_eq!(
        fleet.accept.unwrap().into_iter().collect::<Vec<_>>(),
        ["web2", "web3"]
    );
    assert_eq!(
        (fleet.min_ban_time, fleet.heartbeat),
        (secs(3_600), secs(10))
    );
    assert_eq!((fleet.max_publish_rate, fleet.escalate_after), (50, 0));
    assert_eq!(
        (fleet.escalate_window, fleet.prune_after),
        (secs(7_200), secs(0))
    );
}

#[test]
fn fleet_mistakes_are_named() {
    assert_eq!(
        error("[fleet]\nenabled = true\n"),
        "config.toml:1: fleet.url: the fleet is enabled but no url (or url_file) says where its database is"
    );
    assert!(
        error("[fleet]\nurl = \"mysql://x@y/z\"\n")
            .starts_with("config.toml:2: fleet.url: not a PostgreSQL URL")
    );
    assert!(
        error("[fleet]\nshare = [\"fleet\"]\n").starts_with(
            "config.toml:2: fleet.share[0]: \"fleet\" is not a ban source a node shares"
        )
    );
    assert_eq!(
        error("[fleet]\naccept = [\"*\", \"web1\"]\n"),
        "config.toml:2: fleet.accept[0]: \"*\" stands alone: [\"*\"] accepts every node"
    );
    assert!(error("[fleet]\nnode_name = \"web 1\"\n").contains("is not a node name"));
    assert_eq!(
        error("[fleet]\nescalate_window = \"2d\"\nprune_after = \"1d\"\n"),
        "config.toml:3: fleet.prune_after: prune_after is shorter than escalate_window: the \
         reports escalation counts would be pruned; make prune_after at least as long (or 0: \
         never prune)"
    );
    assert!(
        error("[fleet]\nescalate_window = \"30s\"\n")
            .starts_with("config.toml:2: fleet.escalate_window: ")
    );
    assert_eq!(
        warnings("[fleet]\nurl = \"postgres://crmonban:hunter2@db/crmonban\"\n"),
        [
            "config.toml:2: fleet.url: the URL holds a password: config.toml is read by anyone who may read the configuration; move it to password_file (mode 600)"
        ]
    );
}
