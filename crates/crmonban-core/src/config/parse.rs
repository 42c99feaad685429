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
use crate::{EventKind, Target};

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

/// Whole seconds, at least `min`.
pub(super) fn seconds(d: &mut Diagnostics<'_>, v: &Value<'_, '_>, min: i128) -> Option<Duration> {
    let n = v.integer(d, min..=MAX_SECS)?;
    u64::try_from(n).ok().map(Duration::from_secs)
}

/// Seconds where 0 means permanent.
pub(super) fn ban_duration(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<BanDuration> {
    let n = v.integer(d, 0..=MAX_SECS)?;
    u32::try_from(n).ok().map(BanDuration::from_secs)
}

/// A string naming one value of a [`string_enum`](super::schema) type.
fn choice<T: FromStr<Err = UnknownChoice>>(
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

fn nft_name(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<NftName> {
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
fn target(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<Target> {
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
fn networks(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<Vec<Target>> {
    let items = v.array(d, "an array of addresses or CIDRs")?;
    if items.is_empty() {
        d.error(&v.span, &v.path, "must list at least one address or CIDR");
        return None;
    }
    let parsed: Vec<Option<Target>> = items.iter().map(|item| target(d, item)).collect();
    parsed.into_iter().collect()
}

/// A key that turns on something this version does not do yet: accepted (so a configuration
/// written for a later version still starts), never silently.
fn not_yet(d: &mut Diagnostics<'_>, v: &Value<'_, '_>, what: &str) {
    d.warn(
        &v.span,
        &v.path,
        format!("{what} is not implemented in this version yet: this setting has no effect"),
    );
}

pub(super) fn is_identifier(text: &str) -> bool {
    text.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Reports the second and later use of a name within one list.
fn check_unique(
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

fn read_general(d: &mut Diagnostics<'_>, mut t: Table<'_, '_>, general: &mut GeneralConfig) {
    if let Some(v) = t.get("db_path").and_then(|v| path(d, &v)) {
        general.db_path = v;
    }
    if let Some(v) = t.get("pid_file").and_then(|v| path(d, &v)) {
        general.pid_file = v;
    }
    if let Some(v) = t.get("log_level").and_then(|v| choice(d, &v)) {
        general.log_level = v;
    }
    if let Some(v) = t.get("auto_intel")
        && let Some(on) = v.bool(d)
    {
        general.auto_intel = on;
        if on {
            not_yet(d, &v, "intel gathering");
        }
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

fn read_nftables(d: &mut Diagnostics<'_>, mut t: Table<'_, '_>, nft: &mut NftablesConfig) {
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

fn read_intel(d: &mut Diagnostics<'_>, mut t: Table<'_, '_>, intel: &mut IntelConfig) {
    for (key, slot, what) in [
        ("geoip_enabled", &mut intel.geoip_enabled, "GeoIP lookup"),
        (
            "rdns_enabled",
            &mut intel.rdns_enabled,
            "reverse DNS lookup",
        ),
        ("whois_enabled", &mut intel.whois_enabled, "WHOIS lookup"),
    ] {
        if let Some(v) = t.get(key)
            && let Some(on) = v.bool(d)
        {
            *slot = on;
            if on {
                not_yet(d, &v, what);
            }
        }
    }
    if let Some(v) = t.get("timeout_secs").and_then(|v| seconds(d, &v, 1)) {
        intel.timeout = v;
    }
    for (key, slot) in [
        ("shodan_api_key", &mut intel.shodan_api_key),
        ("abuseipdb_api_key", &mut intel.abuseipdb_api_key),
    ] {
        if let Some(v) = t.get(key) {
            // An empty key is refused rather than read as "unset": leave the key out for that.
            if let Some(text) = v.non_empty_str(d) {
                *slot = Some(Secret::new(text));
                not_yet(d, &v, "this intel service");
            }
        }
    }
    if let Some(v) = t.get("geoip_city_db").and_then(|v| path(d, &v)) {
        intel.geoip_city_db = v;
    }
    if let Some(v) = t.get("geoip_asn_db").and_then(|v| path(d, &v)) {
        intel.geoip_asn_db = v;
    }
    t.finish(d);
}

fn read_services(
    d: &mut Diagnostics<'_>,
    mut t: Table<'_, '_>,
    config: &mut Config,
    catalog: &ServiceCatalog,
) {
    let default_ban = config.general.default_ban_duration;
    let mut written: BTreeMap<String, String> = BTreeMap::new();
    for (name, key_span, value) in t.all() {
        if !is_identifier(name) {
            d.error(
                &key_span,
                &value.path,
                "a service name must start with a letter and use only letters, digits, `_` and `-`",
            );
            continue;
        }
        let Some(table) = value.table(d) else {
            continue;
        };
        // An alias (`[services.sshd]`) configures the pack's service (`ssh`).
        let pack = catalog.find(name);
        let key = pack.map_or_else(|| name.to_owned(), |p| p.name.clone());
        if let Some(first) = written.insert(key.clone(), name.to_owned()) {
            d.error(
                &key_span,
                &value.path,
                format!(
                    "[services.{first}] and [services.{name}] are the same service ({key}):                      keep one"
                ),
            );
            continue;
        }
        let mut service = config
            .services
            .get(&key)
            .cloned()
            .unwrap_or_else(|| ServiceConfig::custom(default_ban));
        read_service(d, table, name, catalog, &mut service);
        config.services.insert(key, service);
    }
    t.finish(d);
}

fn read_service(
    d: &mut Diagnostics<'_>,
    mut t: Table<'_, '_>,
    name: &str,
    catalog: &ServiceCatalog,
    service: &mut ServiceConfig,
) {
    let builtin = service.pack.is_some();
    if let Some(v) = t.bool(d, "enabled") {
        service.enabled = v;
    }
    if let Some(v) = t.get("log_path").and_then(|v| path(d, &v)) {
        service.log_path = Some(v);
    }
    let source_given = t.get("source");
    if let Some(v) = source_given.as_ref().and_then(|v| choice(d, v)) {
        service.source = v;
    }
    let journal_given = t.get("journal_match");
    if let Some(v) = &journal_given
        && let Some(text) = v.str(d)
    {
        match JournalMatch::parse(text) {
            Ok(m) => service.journal_match = Some(m),
            Err(e) => d.error(&v.span, &v.path, e.to_string()),
        }
    }
    if let Some(v) = t.get("max_failures")
        && let Some(n) = v.integer(d, 1..=i128::from(u32::MAX))
    {
        service.max_failures = u32::try_from(n).unwrap_or(service.max_failures);
    }
    if let Some(v) = t.get("find_time").and_then(|v| seconds(d, &v, 1)) {
        service.find_time = v;
    }
    if let Some(v) = t.get("ban_time").and_then(|v| ban_duration(d, &v)) {
        service.ban_time = v;
    }
    if let Some(v) = t.integer(d, "ipv6_prefix", 1..=128) {
        service.ipv6_prefix = u8::try_from(v).ok();
    }
    let mut patterns_given = 0;
    if let Some(v) = t.get("patterns")
        && let Some(tables) = v.tables(d)
    {
        let mut seen = BTreeSet::new();
        patterns_given = tables.len();
        service.patterns = tables
            .into_iter()
            .filter_map(|pt| read_pattern(d, pt, &mut seen))
            .collect();
    }

    // Where the lines come from must be known, whatever the source says.
    let here = t.span.clone();
    let path = t.path.clone();
    match service.source {
        LogSource::File if service.log_path.is_none() => {
            d.error(&here, &path, "source = \"file\" needs `log_path`");
        }
        LogSource::Journal if service.journal_match.is_none() => d.error(
            &here,
            &path,
            format!(
                "source = \"journal\" needs `journal_match`, e.g. \"_SYSTEMD_UNIT={name}.service\""
            ),
        ),
        LogSource::Auto if service.log_path.is_none() && service.journal_match.is_none() => {
            d.error(
                &here,
                &path,
                format!(
                    "needs `log_path` (or source = \"journal\" with `journal_match`): \
                     no service pack is named `{name}`, so crmonban knows no log for it"
                ),
            );
        }
        _ => {}
    }
    if service.source == LogSource::File
        && let Some(v) = &journal_given
    {
        d.warn(&v.span, &v.path, "ignored: source is \"file\"");
    }
    if !builtin && patterns_given == 0 {
        d.error(
            &here,
            &path,
            format!(
                "needs at least one [[{path}.patterns]]: no service pack is named `{name}`, \
                 so crmonban has no patterns for it{}",
                match super::document::nearest(name, &catalog.all_names()) {
                    Some(near) => format!(" (did you mean `{near}`?)"),
                    None => " (`crmonband check-config` lists the service packs)".to_owned(),
                }
            ),
        );
    }
    t.finish(d);
}

fn read_pattern(
    d: &mut Diagnostics<'_>,
    mut t: Table<'_, '_>,
    seen: &mut BTreeSet<String>,
) -> Option<Pattern> {
    let name = t
        .require(d, "name", "a short name for the pattern")
        .and_then(|v| {
            let name = v.non_empty_str(d)?;
            check_unique(d, seen, name, &v);
            Some(name)
        });
    let regex = t.require(
        d,
        "regex",
        "with a named group `ip`, e.g. 'from (?P<ip>\\S+)'",
    );
    let event_type = match t.get("event_type") {
        None => Some(EventKind::FailedAuth),
        Some(v) => v.non_empty_str(d).and_then(|text| {
            if is_identifier(text) {
                text.parse::<EventKind>().ok()
            } else {
                d.error(
                    &v.span,
                    &v.path,
                    format!(
                        "{text:?} is not a valid event type: start with a letter, then use \
                         letters, digits, `_` and `-` (e.g. \"failed_auth\")"
                    ),
                );
                None
            }
        }),
    };
    let pattern = regex.and_then(|v| {
        let source = v.str(d)?;
        match Pattern::new(name.unwrap_or_default(), source, EventKind::FailedAuth) {
            Ok(pattern) => Some(pattern),
            Err(e) => {
                d.error(&v.span, &v.path, e.to_string());
                None
            }
        }
    });
    t.finish(d);
    let (_, mut pattern, event_type) = (name?, pattern?, event_type?);
    pattern.event_type = event_type;
    Some(pattern)
}

fn read_dbus(d: &mut Diagnostics<'_>, mut t: Table<'_, '_>, dbus: &mut DbusConfig) {
    if let Some(v) = t.bool(d, "enabled") {
        dbus.enabled = v;
    }
    if let Some(v) = t.bool(d, "system_bus") {
        dbus.system_bus = v;
    }
    t.finish(d);
}

fn read_zones(d: &mut Diagnostics<'_>, mut t: Table<'_, '_>, zones: &mut ZonesConfig) {
    if let Some(v) = t.bool(d, "enabled") {
        zones.enabled = v;
    }
    if let Some(v) = t.get("config_file")
        && let Some(p) = path(d, &v)
    {
        zones.config_file = Some(p);
    }
    if let Some(v) = t.integer(d, "whitelist_threshold", 0..=100) {
        zones.whitelist_threshold = u8::try_from(v).unwrap_or(zones.whitelist_threshold);
    }
    if let Some(v) = t.get("zones")
        && let Some(tables) = v.tables(d)
    {
        let mut seen = BTreeSet::new();
        let threshold = zones.whitelist_threshold;
        zones.zones = tables
            .into_iter()
            .filter_map(|zt| read_zone(d, zt, threshold, &mut seen))
            .collect();
    }
    t.finish(d);
}

fn read_zone(
    d: &mut Diagnostics<'_>,
    mut t: Table<'_, '_>,
    threshold: u8,
    seen: &mut BTreeSet<String>,
) -> Option<Zone> {
    let name = t.require(d, "name", "the zone's name").and_then(|v| {
        let name = v.non_empty_str(d)?;
        check_unique(d, seen, name, &v);
        Some(name.to_owned())
    });
    let trust_level = t
        .require(d, "trust_level", "0 (hostile) to 100 (trusted)")
        .and_then(|v| v.integer(d, 0..=100))
        .and_then(|n| u8::try_from(n).ok());
    let networks = t
        .require(d, "networks", "addresses or CIDRs, e.g. [\"10.0.0.0/8\"]")
        .and_then(|v| networks(d, &v));
    let implicit_whitelist = t.get("implicit_whitelist").map(|v| v.bool(d));
    t.finish(d);
    let (name, trust_level, networks) = (name?, trust_level?, networks?);
    let implicit_whitelist = match implicit_whitelist {
        None => trust_level >= threshold,
        Some(given) => given?,
    };
    Some(Zone {
        name,
        trust_level,
        networks,
        implicit_whitelist,
    })
}

fn read_siem(d: &mut Diagnostics<'_>, mut t: Table<'_, '_>, siem: &mut SiemConfig) {
    let enabled = t.get("enabled");
    if let Some(v) = enabled.as_ref().and_then(|v| v.bool(d)) {
        siem.enabled = v;
    }
    if let Some(v) = t.get("format").and_then(|v| choice(d, &v)) {
        siem.format = v;
    }
    if let Some(v) = t.get("targets")
        && let Some(tables) = v.tables(d)
    {
        siem.targets = tables
            .into_iter()
            .filter_map(|tt| read_siem_target(d, tt))
            .collect();
    }
    if siem.enabled
        && let Some(v) = &enabled
    {
        not_yet(d, v, "SIEM export");
    }
    if siem.enabled
        && siem.targets.is_empty()
        && let Some(v) = &enabled
    {
        d.warn(
            &v.span,
            &v.path,
            "SIEM export is enabled but there is no [[siem.targets]]: nothing will be sent",
        );
    }
    t.finish(d);
}

fn read_siem_target(d: &mut Diagnostics<'_>, mut t: Table<'_, '_>) -> Option<SiemTarget> {
    const TYPES: &[&str] = &["file", "syslog", "webhook"];
    let kind = t
        .require(d, "type", "one of \"file\", \"syslog\", \"webhook\"")
        .and_then(|v| v.choice(d, TYPES));
    // Without a known `type` the table's other keys cannot be judged: return before finish().
    let target = match kind? {
        "file" => t
            .require(d, "path", "the file events are appended to")
            .and_then(|v| path(d, &v))
            .map(|path| SiemTarget::File { path }),
        "syslog" => match t.get("socket") {
            None => Some(SiemTarget::Syslog {
                socket: PathBuf::from(DEFAULT_SYSLOG_SOCKET),
            }),
            Some(v) => path(d, &v).map(|socket| SiemTarget::Syslog { socket }),
        },
        _ => {
            let url = t
                .require(
                    d,
                    "url",
                    "where events are POSTed, e.g. \"https://siem.example.com/api\"",
                )
                .and_then(|v| webhook_url(d, &v));
            let headers = match t.get("headers") {
                None => Some(Vec::new()),
                Some(v) => headers(d, &v),
            };
            url.zip(headers)
                .map(|(url, headers)| SiemTarget::Webhook { url, headers })
        }
    };
    t.finish(d);
    target
}

fn webhook_url(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<String> {
    let url = v.non_empty_str(d)?;
    let lower = url.to_ascii_lowercase();
    let (rest, plain) = if let Some(rest) = lower.strip_prefix("https://") {
        (rest, false)
    } else if let Some(rest) = lower.strip_prefix("http://") {
        (rest, true)
    } else {
        d.error(
            &v.span,
            &v.path,
            format!("must be an http:// or https:// URL, found {url:?}"),
        );
        return None;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let problem = if host.is_empty() || host.starts_with(':') {
        Some("has no host")
    } else if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("must not contain spaces or control characters")
    } else {
        None
    };
    if let Some(problem) = problem {
        d.error(&v.span, &v.path, format!("{url:?} {problem}"));
        return None;
    }
    if plain {
        d.warn(
            &v.span,
            &v.path,
            "plain http:// sends events (and any Authorization header) unencrypted; prefer https://",
        );
    }
    Some(url.to_owned())
}

/// `headers = [["Name", "value"], ...]` as in the original, or `headers = { Name = "value" }`.
fn headers(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<Vec<(String, Secret)>> {
    // (where, key path, name, value) of every header, checked together below.
    let mut given = Vec::new();
    let mut ok = true;
    if let DeValue::Table(_) = v.value {
        let mut table = v.table(d)?;
        for (name, key_span, value) in table.all() {
            match value.str(d) {
                Some(text) => given.push((key_span, value.path.clone(), name, text)),
                None => ok = false,
            }
        }
    } else {
        let expected =
            "an array of [name, value] pairs, e.g. [[\"Authorization\", \"Bearer token\"]]";
        for item in v.array(d, expected)? {
            match item.array(d, "a [name, value] pair").as_deref() {
                Some([name, value]) => match (name.str(d), value.str(d)) {
                    (Some(n), Some(t)) => given.push((name.span.clone(), item.path.clone(), n, t)),
                    _ => ok = false,
                },
                Some(other) => {
                    d.error(
                        &item.span,
                        &item.path,
                        format!(
                            "expected a [name, value] pair, found {} elements",
                            other.len()
                        ),
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }
    }
    let mut headers = Vec::new();
    for (span, path, name, value) in given {
        if !is_header_name(name) {
            d.error(
                &span,
                &path,
                format!("{name:?} is not a valid HTTP header name"),
            );
            ok = false;
        } else if value.contains(['\r', '\n', '\0']) {
            d.error(
                &span,
                &path,
                format!("the value of header {name:?} contains a line break"),
            );
            ok = false;
        } else {
            headers.push((name.to_owned(), Secret::new(value)));
        }
    }
    ok.then_some(headers)
}

/// RFC 9110 `token`.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

fn read_ebpf(d: &mut Diagnostics<'_>, mut t: Table<'_, '_>, ebpf: &mut EbpfConfig) {
    let enabled = t.get("enabled");
    if let Some(v) = enabled.as_ref().and_then(|v| v.bool(d)) {
        ebpf.enabled = v;
    }
    let pin_path = t.get("pin_path");
    if let Some(p) = pin_path.as_ref().and_then(|v| path(d, v)) {
        ebpf.pin_path = p;
    }
    let method = t.get("method");
    if let Some(v) = &method {
        match v.value {
            DeValue::String(_) => {
                if let Some(m) = choice(d, v) {
                    ebpf.method = m;
                }
            }
            DeValue::Table(_) => {
                // The original README's form: [ebpf.method] with `path` (and here `type`).
                if let Some(mut mt) = v.table(d) {
                    ebpf.method = EbpfMethod::Mapfile;
                    if let Some(m) = mt.get("type").and_then(|v| choice(d, &v)) {
                        ebpf.method = m;
                    }
                    if let Some(p) = mt.get("path") {
                        if let Some(given) = &pin_path {
                            d.error(
                                &given.span,
                                &given.path,
                                "the map path is given twice: keep either `pin_path` here or \
                                 `path` in [ebpf.method]",
                            );
                        }
                        if let Some(p) = path(d, &p) {
                            ebpf.pin_path = p;
                        }
                    }
                    mt.finish(d);
                }
            }
            _ => v.wrong_type(
                d,
                "a string (\"xdp\", \"mapfile\", \"disabled\") or an [ebpf.method] table",
            ),
        }
    }
    if let Some(v) = t.get("sync_interval_secs").and_then(|v| seconds(d, &v, 1)) {
        ebpf.sync_interval = v;
    }
    if let Some(v) = t.integer(d, "max_entries", 1..=i128::from(u32::MAX)) {
        ebpf.max_entries = u32::try_from(v).unwrap_or(ebpf.max_entries);
    }
    if ebpf.enabled
        && let Some(v) = &enabled
    {
        not_yet(d, v, "the eBPF fast path");
    }
    if ebpf.enabled
        && ebpf.method == EbpfMethod::Disabled
        && let Some(v) = method.as_ref().or(enabled.as_ref())
    {
        d.warn(
            &v.span,
            &v.path,
            "eBPF is enabled but its method is \"disabled\": no fast path",
        );
    }
    t.finish(d);
}

fn read_whitelist(d: &mut Diagnostics<'_>, mut t: Table<'_, '_>, whitelist: &mut WhitelistConfig) {
    if let Some(v) = t.bool(d, "enabled") {
        whitelist.enabled = v;
    }
    if let Some(v) = t.get("cache_ttl_secs").and_then(|v| seconds(d, &v, 0)) {
        whitelist.cache_ttl = v;
    }
    if let Some(v) = t.get("sources")
        && let Some(tables) = v.tables(d)
    {
        whitelist.sources = tables
            .into_iter()
            .filter_map(|st| read_whitelist_source(d, st))
            .collect();
    }
    t.finish(d);
}

fn read_whitelist_source(d: &mut Diagnostics<'_>, mut t: Table<'_, '_>) -> Option<WhitelistSource> {
    const TYPES: &[&str] = &["database", "zones", "networks", "file", "daemon"];
    let kind = t
        .require(
            d,
            "type",
            "one of \"database\", \"zones\", \"networks\", \"file\", \"daemon\"",
        )
        .and_then(|v| v.choice(d, TYPES));
    let source = match kind? {
        "database" => Some(WhitelistSource::Database),
        "zones" => Some(WhitelistSource::Zones),
        "daemon" => read_daemon_source(d, &mut t).map(WhitelistSource::Daemon),
        "networks" => t
            .require(d, "networks", "addresses or CIDRs, e.g. [\"10.0.0.0/8\"]")
            .and_then(|v| networks(d, &v))
            .map(WhitelistSource::Networks),
        _ => {
            let path = t
                .require(d, "path", "a file with one address or CIDR per line")
                .and_then(|v| path(d, &v));
            let watch = match t.get("watch") {
                None => Some(true),
                Some(v) => v.bool(d),
            };
            path.zip(watch)
                .map(|(path, watch)| WhitelistSource::File { path, watch })
        }
    };
    t.finish(d);
    source
}

/// The keys of a `daemon` source. Every key is checked before the source is put together,
/// so that a source with several mistakes gets them all reported.
fn read_daemon_source(d: &mut Diagnostics<'_>, t: &mut Table<'_, '_>) -> Option<DaemonSource> {
    let bus = match t.get("bus") {
        None => Some(DaemonBus::System),
        Some(v) => daemon_bus(d, &v),
    };
    let name = t
        .require(
            d,
            "name",
            "the bus name of the service to ask, e.g. \"org.example.Trust\"",
        )
        .and_then(|v| dbus_checked(d, &v, dbus_names::well_known_name));
    let path = match t.get("path") {
        None => Some("/".to_owned()),
        Some(v) => dbus_checked(d, &v, dbus_names::object_path),
    };
    let interface = t
        .require(
            d,
            "interface",
            "the interface of the method, e.g. \"org.example.Trust\"",
        )
        .and_then(|v| dbus_checked(d, &v, dbus_names::interface_name));
    let method = t
        .require(
            d,
            "method",
            "a method taking the address as a string and returning a boolean, e.g. \"IsTrusted\"",
        )
        .and_then(|v| dbus_checked(d, &v, dbus_names::member_name));
    let max_ms = i128::try_from(MAX_DAEMON_SOURCE_TIMEOUT.as_millis()).unwrap_or(i128::MAX);
    let timeout = match t.get("timeout_ms") {
        None => Some(DEFAULT_DAEMON_SOURCE_TIMEOUT),
        Some(v) => v
            .integer(d, 1..=max_ms)
            .and_then(|n| u64::try_from(n).ok())
            .map(Duration::from_millis),
    };
    Some(DaemonSource {
        bus: bus?,
        name: name?,
        path: path?,
        interface: interface?,
        method: method?,
        timeout: timeout?,
    })
}

/// `"system"`, `"session"` or a D-Bus address.
fn daemon_bus(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<DaemonBus> {
    match v.non_empty_str(d)? {
        "system" => Some(DaemonBus::System),
        "session" => Some(DaemonBus::Session),
        text if text.contains(':') => {
            dbus_checked(d, v, dbus_names::bus_address).map(DaemonBus::Address)
        }
        text => {
            let shown: String = text.chars().take(64).collect();
            d.error(
                &v.span,
                &v.path,
                format!(
                    "must be \"system\", \"session\" or a D-Bus address such as \
                     \"unix:path=/run/example/bus\"; found {shown:?}"
                ),
            );
            None
        }
    }
}

/// A string that `check` accepts (one of the [`dbus_names`] rules); its message otherwise.
fn dbus_checked(
    d: &mut Diagnostics<'_>,
    v: &Value<'_, '_>,
    check: fn(&str) -> Result<(), String>,
) -> Option<String> {
    let text = v.non_empty_str(d)?;
    match check(text) {
        Ok(()) => Some(text.to_owned()),
        Err(message) => {
            d.error(&v.span, &v.path, message);
            None
        }
    }
}
