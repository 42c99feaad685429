//! Turning configuration text into a [`Config`]: the schema walk over the spanned document,
//! starting from [`Config::default`] and overriding only the keys the file sets, so that a
//! `[services.ssh]` section merges over the built-in ssh defaults. Every problem is collected;
//! nothing stops at the first one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::catalog::ServiceCatalog;
use super::dbus_names;
use super::document::{Diagnostics, Table, Value};
use super::error::{ConfigErrors, ConfigWarning};
use super::schema::*;
use crate::duration;
use crate::{EventKind, Target};

mod fleet;
mod sections;
mod services;
mod siem;

use fleet::*;
use sections::*;
use services::*;
use siem::*;

/// The largest number of seconds any duration key takes: D-Bus carries durations as `u32`.
const MAX_SECS: i128 = u32::MAX as i128;

pub(super) fn parse(
    text: &str,
    origin: &str,
    catalog: &ServiceCatalog,
) -> Result<(Config, Vec<ConfigWarning>), ConfigErrors> {
    let mut d = Diagnostics::new(origin, text);
    let (document, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        // The document recovered from broken TOML has guessed values in it (a missing value
        // reads as 0): checking the schema against it would report problems the user did not
        // write. Report every syntax error, and only those.
        for error in &syntax_errors {
            report_syntax_error(&mut d, text, error);
        }
        return Err(finish_with_errors(d));
    }

    let mut config = Config::default();
    config.services = services_of(catalog, config.general.default_ban_duration);
    let mut root = Table::new(document.get_ref(), document.span(), String::new());
    if let Some(t) = root.table(&mut d, "general") {
        read_general(&mut d, t, &mut config.general);
    }
    if let Some(t) = root.table(&mut d, "nftables") {
        read_nftables(&mut d, t, &mut config.nftables);
    }
    if let Some(t) = root.table(&mut d, "intel") {
        read_intel(&mut d, t, &mut config.intel);
    }
    // Services without their own ban_time follow [general] default_ban_duration.
    for service in config.services.values_mut() {
        service.ban_time = service
            .pack
            .as_ref()
            .and_then(|p| p.ban_time)
            .unwrap_or(config.general.default_ban_duration);
    }
    if let Some(t) = root.table(&mut d, "services") {
        read_services(&mut d, t, &mut config, catalog);
    }
    if let Some(t) = root.table(&mut d, "dbus") {
        read_dbus(&mut d, t, &mut config.dbus);
    }
    if let Some(t) = root.table(&mut d, "metrics") {
        read_metrics(&mut d, t, &mut config.metrics);
    }
    if let Some(t) = root.table(&mut d, "fleet") {
        read_fleet(&mut d, t, &mut config.fleet);
    }
    if let Some(t) = root.table(&mut d, "zones") {
        read_zones(&mut d, t, &mut config.zones);
    }
    if let Some(t) = root.table(&mut d, "siem") {
        read_siem(&mut d, t, &mut config.siem);
    }
    if let Some(t) = root.table(&mut d, "ebpf") {
        read_ebpf(&mut d, t, &mut config.ebpf);
    }
    if let Some(t) = root.table(&mut d, "whitelist") {
        read_whitelist(&mut d, t, &mut config.whitelist);
    }
    root.finish(&mut d);

    if d.errors.is_empty() {
        let mut warnings = d.warnings;
        warnings.sort_by_key(|w| w.line);
        Ok((config, warnings))
    } else {
        Err(finish_with_errors(d))
    }
}

pub(super) fn finish_with_errors(d: Diagnostics<'_>) -> ConfigErrors {
    let mut errors = d.errors;
    let mut warnings = d.warnings;
    // Stable: problems on one line keep the order in which the schema found them.
    errors.sort_by_key(|e| e.line);
    warnings.sort_by_key(|w| w.line);
    ConfigErrors::new(errors, warnings)
}

pub(super) fn report_syntax_error(d: &mut Diagnostics<'_>, text: &str, error: &toml::de::Error) {
    let reason = error.message().replace('\n', " ");
    let Some(span) = error.span() else {
        d.error_at(None, "", format!("invalid TOML: {reason}"));
        return;
    };
    let mut message = format!(
        "invalid TOML (column {}): {reason}",
        d.column_of(span.start)
    );
    if reason == "duplicate key"
        && let Some(key) = text.get(span.clone())
    {
        message.push_str(&format!(" `{key}`"));
        let line_text = text
            .get(span.start..)
            .and_then(|rest| rest.lines().next())
            .unwrap_or("");
        let line_start = text
            .get(..span.start)
            .map_or("", |before| before.rsplit('\n').next().unwrap_or(""));
        if key == "method" && format!("{line_start}{line_text}").contains("ebpf") {
            message.push_str(
                ": give the eBPF method once, either `method = \"mapfile\"` (with `pin_path`) \
                 or an [ebpf.method] table with `type` and `path`",
            );
        }
    }
    d.error(&span, "", message);
}

// ---------------------------------------------------------------------------------------------
// Value conversions shared by the sections.

/// An absolute path.
pub(super) fn path(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<PathBuf> {
    let text = v.non_empty_str(d)?;
    let path = PathBuf::from(text);
    if !path.is_absolute() {
        d.error(
            &v.span,
            &v.path,
            format!("must be an absolute path, found {text:?}"),
        );
        return None;
    }
    Some(path)
}

/// A length of at least `min` seconds: whole seconds as an integer (`3600`), or a string with
/// units (`"90s"`, `"15m"`, `"1h"`, `"7d"`, `"1h30m"`: [`crate::duration`]), which may say
/// `"permanent"` only where `permanent` allows it.
fn length(
    d: &mut Diagnostics<'_>,
    v: &Value<'_, '_>,
    min: i128,
    permanent: bool,
) -> Option<duration::Length> {
    let DeValue::String(text) = v.value else {
        let n = v.integer(d, min..=MAX_SECS)?;
        return u64::try_from(n).ok().map(duration::Length::Secs);
    };
    let problem = match duration::parse(text, MAX_SECS as u64) {
        Ok(duration::Length::Permanent) if !permanent => {
            format!("must be a length such as \"10m\", found {text:?}")
        }
        Ok(duration::Length::Secs(n)) if i128::from(n) < min => {
            if min == 1 {
                format!("must be greater than 0, found {text:?}")
            } else {
                format!("must be at least {min} seconds, found {text:?}")
            }
        }
        Ok(length) => return Some(length),
        Err(e) => e.to_string(),
    };
    d.error(&v.span, &v.path, problem);
    None
}

/// A length of at least `min` seconds (see [`length`]).
pub(super) fn seconds(d: &mut Diagnostics<'_>, v: &Value<'_, '_>, min: i128) -> Option<Duration> {
    match length(d, v, min, false)? {
        duration::Length::Secs(n) => Some(Duration::from_secs(n)),
        duration::Length::Permanent => None,
    }
}

/// A ban's length (see [`length`]): `0` or `"permanent"` is permanent.
pub(super) fn ban_duration(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<BanDuration> {
    match length(d, v, 0, true)? {
        duration::Length::Permanent => Some(BanDuration::Permanent),
        duration::Length::Secs(n) => u32::try_from(n).ok().map(BanDuration::from_secs),
    }
}

/// `port = 22` or `port = [80, 443]`: ports from 1 to 65535, each once.
pub(super) fn ports(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<Vec<u16>> {
    let one = |d: &mut Diagnostics<'_>, v: &Value<'_, '_>| {
        v.integer(d, 1..=65_535).and_then(|n| u16::try_from(n).ok())
    };
    let ports: Vec<u16> = match v.value {
        DeValue::Array(_) => {
            let items = v.array(d, "a port or an array of ports, e.g. [80, 443]")?;
            let parsed: Vec<Option<u16>> = items.iter().map(|item| one(d, item)).collect();
            parsed.into_iter().collect::<Option<_>>()?
        }
        _ => vec![one(d, v)?],
    };
    let mut seen = BTreeSet::new();
    if let Some(twice) = ports.iter().find(|p| !seen.insert(**p)) {
        d.error(&v.span, &v.path, format!("port {twice} is listed twice"));
        return None;
    }
    Some(ports)
}

/// A string naming one value of a [`string_enum`](super::schema) type.
pub(super) fn choice<T: FromStr<Err = UnknownChoice>>(
    d: &mut Diagnostics<'_>,
    v: &Value<'_, '_>,
) -> Option<T> {
    let text = v.str(d)?;
    match text.parse() {
        Ok(value) => Some(value),
        Err(e) => {
            d.error(&v.span, &v.path, e.to_string());
            None
        }
    }
}

pub(super) fn nft_name(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<NftName> {
    let text = v.str(d)?;
    match NftName::new(text) {
        Ok(name) => Some(name),
        Err(e) => {
            d.error(&v.span, &v.path, e.to_string());
            None
        }
    }
}

/// An address or CIDR; normalisations (`10.1.2.3/8` read as `10.0.0.0/8`) become warnings.
pub(super) fn target(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<Target> {
    let text = v.str(d)?;
    match Target::parse_reporting(text) {
        Ok((target, notes)) => {
            for note in notes {
                d.warn(&v.span, &v.path, note.to_string());
            }
            Some(target)
        }
        Err(e) => {
            d.error(&v.span, &v.path, e.to_string());
            None
        }
    }
}

/// A non-empty array of addresses or CIDRs; `None` if any element is wrong.
pub(super) fn networks(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<Vec<Target>> {
    let items = v.array(d, "an array of addresses or CIDRs")?;
    if items.is_empty() {
        d.error(&v.span, &v.path, "must list at least one address or CIDR");
        return None;
    }
    let parsed: Vec<Option<Target>> = items.iter().map(|item| target(d, item)).collect();
    parsed.into_iter().collect()
}

pub(super) fn is_identifier(text: &str) -> bool {
    text.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Reports the second and later use of a name within one list.
pub(super) fn check_unique(
    d: &mut Diagnostics<'_>,
    seen: &mut BTreeSet<String>,
    name: &str,
    v: &Value<'_, '_>,
) {
    if !seen.insert(name.to_owned()) {
        d.error(
            &v.span,
            &v.path,
            format!("the name {name:?} is used twice; names must be unique"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Sections.

pub(super) fn read_general(
    d: &mut Diagnostics<'_>,
    mut t: Table<'_, '_>,
    general: &mut GeneralConfig,
) {
    if let Some(v) = t.get("db_path").and_then(|v| path(d, &v)) {
        general.db_path = v;
    }
    if let Some(v) = t.get("pid_file").and_then(|v| path(d, &v)) {
        general.pid_file = v;
    }
    if let Some(v) = t.get("log_level").and_then(|v| choice(d, &v)) {
        general.log_level = v;
    }
    if let Some(on) = t.bool(d, "auto_intel") {
        general.auto_intel = on;
    }
    if let Some(v) = t
        .get("default_ban_duration")
        .and_then(|v| ban_duration(d, &v))
    {
        general.default_ban_duration = v;
    }
    if let Some(v) = t.get("services_dir").and_then(|v| path(d, &v)) {
        general.services_dir = v;
    }
    if let Some(v) = t.get("state_dir").and_then(|v| path(d, &v)) {
        general.state_dir = v;
    }
    if let Some(v) = t.get("ban_time_increment").and_then(|v| v.number(d, 1.0)) {
        general.ban_time_increment = v;
    }
    if let Some(v) = t.get("max_ban_time").and_then(|v| seconds(d, &v, 0)) {
        // 0: no cap, as 0 means "no limit" for a ban's own length.
        general.max_ban_time = (!v.is_zero()).then_some(v);
    }
    if let Some(v) = t.get("max_tracked_addresses")
        && let Some(n) = v.integer(d, 1..=i128::from(u32::MAX))
    {
        general.max_tracked_addresses = usize::try_from(n).unwrap_or(general.max_tracked_addresses);
    }
    if let Some(v) = t.get("history_days")
        && let Some(n) = v.integer(d, 1..=36_500)
    {
        general.history_days = u32::try_from(n).unwrap_or(general.history_days);
    }
    if let Some(v) = t.get("max_event_rows")
        && let Some(n) = v.integer(d, 1..=i128::from(i64::MAX))
    {
        general.max_event_rows = u64::try_from(n).unwrap_or(general.max_event_rows);
    }
    if let Some(v) = t.get("max_activity_rows")
        && let Some(n) = v.integer(d, 1..=i128::from(i64::MAX))
    {
        general.max_activity_rows = u64::try_from(n).unwrap_or(general.max_activity_rows);
    }
    t.finish(d);
}

pub(super) fn read_nftables(
    d: &mut Diagnostics<'_>,
    mut t: Table<'_, '_>,
    nft: &mut NftablesConfig,
) {
    if let Some(v) = t.get("table_name").and_then(|v| nft_name(d, &v)) {
        nft.table_name = v;
    }
    if let Some(v) = t.get("chain_name") {
        match nft_name(d, &v) {
            // The forward-hook chain is always called `forward`.
            Some(name) if name.as_str() == "forward" => d.error(
                &v.span,
                &v.path,
                "must not be \"forward\": crmonban's forward-hook chain has that name",
            ),
            Some(name) => nft.chain_name = name,
            None => {}
        }
    }
    let v4 = t.get("set_v4");
    if let Some(name) = v4.as_ref().and_then(|v| nft_name(d, v)) {
        nft.set_v4 = name;
    }
    if let Some(v) = t.get("set_v6")
        && let Some(name) = nft_name(d, &v)
    {
        // The four sets must be distinct: set_v4, set_v6 and their `_net` interval sets.
        let v4 = &nft.set_v4;
        if name == *v4 || name.as_str() == v4.net_set() || name.net_set() == v4.as_str() {
            d.error(
                &v.span,
                &v.path,
                format!(
                    "{:?} clashes with set_v4 {:?}: the sets {v4}, {}, {name} and {} must all \
                     have different names",
                    name.as_str(),
                    v4.as_str(),
                    v4.net_set(),
                    name.net_set()
                ),
            );
        } else {
            nft.set_v6 = name;
        }
    }
    if let Some(v) = t.integer(d, "priority", i128::from(i32::MIN)..=i128::from(i32::MAX)) {
        nft.priority = i32::try_from(v).unwrap_or(nft.priority);
    }
    t.finish(d);
}

pub(super) fn read_intel(d: &mut Diagnostics<'_>, mut t: Table<'_, '_>, intel: &mut IntelConfig) {
    for (key, slot) in [
        ("geoip_enabled", &mut intel.geoip_enabled),
        ("rdns_enabled", &mut intel.rdns_enabled),
        ("whois_enabled", &mut intel.whois_enabled),
        ("abuseipdb_report", &mut intel.abuseipdb_report),
    ] {
        if let Some(on) = t.bool(d, key) {
            *slot = on;
        }
    }
    if let Some(v) = t.get("timeout_secs").and_then(|v| seconds(d, &v, 1)) {
        intel.timeout = v;
    }
    if let Some(v) = t.get("cache_ttl_secs").and_then(|v| seconds(d, &v, 0)) {
        intel.cache_ttl = v;
    }
    for (key, slot) in [
        ("shodan_api_key", &mut intel.shodan_api_key),
        ("abuseipdb_api_key", &mut intel.abuseipdb_api_key),
    ] {
        if let Some(v) = t.get(key) {
            // An empty key is refused rather than read as "unset": leave the key out for that.
            if let Some(text) = v.non_empty_str(d) {
                if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    d.error(
                        &v.span,
                        &v.path,
                        "must not contain spaces or control characters",
                    );
                } else {
                    *slot = Some(Secret::new(text));
                }
            }
        }
    }
    for (key, file_key, slot, has_key) in [
        (
            "shodan_api_key",
            "shodan_api_key_file",
            &mut intel.shodan_api_key_file,
            intel.shodan_api_key.is_some(),
        ),
        (
            "abuseipdb_api_key",
            "abuseipdb_api_key_file",
            &mut intel.abuseipdb_api_key_file,
            intel.abuseipdb_api_key.is_some(),
        ),
    ] {
        if let Some(v) = t.get(file_key)
            && let Some(file) = path(d, &v)
        {
            if has_key {
                d.error(
                    &v.span,
                    &v.path,
                    format!("set either {key} or {file_key}, not both"),
                );
            } else {
                *slot = Some(file);
            }
        }
    }
    for (key, slot) in [
        ("shodan_url", &mut intel.shodan_url),
        ("abuseipdb_url", &mut intel.abuseipdb_url),
    ] {
        if let Some(v) = t.get(key)
            && let Some(url) = sections::http_url(
                d,
                &v,
                "plain http:// sends the API key unencrypted; prefer https://",
            )
        {
            *slot = url.trim_end_matches('/').to_owned();
        }
    }
    if let Some(v) = t.integer(d, "abuseipdb_reports_per_day", 1..=1_000_000) {
        intel.abuseipdb_reports_per_day = u32::try_from(v).unwrap_or(u32::MAX);
    }
    if let Some(v) = t.get("geoip_city_db").and_then(|v| path(d, &v)) {
        intel.geoip_city_db = v;
    }
    if let Some(v) = t.get("geoip_asn_db").and_then(|v| path(d, &v)) {
        intel.geoip_asn_db = v;
    }
    if let Some(v) = t.get("dns_servers")
        && let Some(items) = v.array(d, "an array of addresses (\"ip\" or \"ip:port\")")
    {
        let mut servers = Vec::new();
        for item in items {
            if let Some(text) = item.non_empty_str(d) {
                match socket_address(text, 53) {
                    Some(addr) => servers.push(addr),
                    None => d.error(
                        &item.span,
                        &item.path,
                        format!(
                            "expected \"ip\" or \"ip:port\" (IPv6 as \"[ip]:port\"), found {text:?}"
                        ),
                    ),
                }
            }
        }
        intel.dns_servers = servers;
    }
    if let Some(v) = t.get("whois_server")
        && let Some(text) = v.non_empty_str(d)
    {
        if is_server_name(text) {
            intel.whois_server = text.to_owned();
        } else {
            d.error(
                &v.span,
                &v.path,
                format!("expected a host name or address, optionally with :port, found {text:?}"),
            );
        }
    }
    if let Some(v) = t.integer(d, "whois_queries_per_minute", 1..=10_000) {
        intel.whois_queries_per_minute = u32::try_from(v).unwrap_or(20);
    }
    if let Some(v) = t.integer(d, "queue_size", 1..=1_000_000) {
        intel.queue_size = usize::try_from(v).unwrap_or(1000);
    }
    if let Some(v) = t.integer(d, "concurrency", 1..=64) {
        intel.concurrency = usize::try_from(v).unwrap_or(4);
    }
    if let Some(v) = t.get("hosting_asn_file").and_then(|v| path(d, &v)) {
        intel.hosting_asn_file = Some(v);
    }
    t.finish(d);
}

/// "ip" (with `default_port`), "ip:port" or "[ipv6]:port".
fn socket_address(text: &str, default_port: u16) -> Option<std::net::SocketAddr> {
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Some(std::net::SocketAddr::new(ip, default_port));
    }
    text.parse().ok()
}

/// A WHOIS server: a host name or an address, with an optional port.
fn is_server_name(text: &str) -> bool {
    if socket_address(text, 43).is_some() {
        return true;
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    host_ok && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}
