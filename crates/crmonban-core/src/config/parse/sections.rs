//! Reading the smaller sections: `[dbus]`, `[metrics]`, `[zones]`, `[ebpf]` and `[whitelist]`.

use super::*;

pub(super) fn read_dbus(d: &mut Diagnostics<'_>, mut t: Table<'_, '_>, dbus: &mut DbusConfig) {
    if let Some(v) = t.bool(d, "enabled") {
        dbus.enabled = v;
    }
    if let Some(v) = t.bool(d, "system_bus") {
        dbus.system_bus = v;
    }
    t.finish(d);
}

pub(super) fn read_metrics(
    d: &mut Diagnostics<'_>,
    mut t: Table<'_, '_>,
    metrics: &mut MetricsConfig,
) {
    if let Some(v) = t.bool(d, "enabled") {
        metrics.enabled = v;
    }
    if let Some(v) = t.get("listen")
        && let Some(text) = v.non_empty_str(d)
    {
        match text.parse::<std::net::SocketAddr>() {
            Ok(addr) => metrics.listen = addr,
            Err(_) => d.error(
                &v.span,
                &v.path,
                format!(
                    "`{text}` is not an address and port (e.g. \"127.0.0.1:9717\" or \"[::1]:9717\")"
                ),
            ),
        }
    }
    t.finish(d);
}

pub(super) fn read_zones(d: &mut Diagnostics<'_>, mut t: Table<'_, '_>, zones: &mut ZonesConfig) {
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

pub(super) fn read_zone(
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

pub(super) fn webhook_url(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<String> {
    http_url(
        d,
        v,
        "plain http:// sends events (and any Authorization header) unencrypted; prefer https://",
    )
}

/// An http:// or https:// URL with a host; `plain_warning` is the warning for http://.
pub(super) fn http_url(
    d: &mut Diagnostics<'_>,
    v: &Value<'_, '_>,
    plain_warning: &str,
) -> Option<String> {
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
        d.warn(&v.span, &v.path, plain_warning);
    }
    Some(url.to_owned())
}

/// `headers = [["Name", "value"], ...]` as in the original, or `headers = { Name = "value" }`.
pub(super) fn headers(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<Vec<(String, Secret)>> {
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
pub(super) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

pub(super) fn read_ebpf(d: &mut Diagnostics<'_>, mut t: Table<'_, '_>, ebpf: &mut EbpfConfig) {
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
    let interfaces = t.get("interfaces");
    if let Some(v) = &interfaces {
        ebpf.interfaces = interface_names(d, v).unwrap_or_default();
    }
    if let Some(v) = t.get("xdp_mode").and_then(|v| choice(d, &v)) {
        ebpf.xdp_mode = v;
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
    if ebpf.active()
        && interfaces.is_none()
        && let Some(v) = &enabled
    {
        d.error(
            &v.span,
            &v.path,
            "the XDP fast path needs the interfaces to attach to: add e.g. \
             interfaces = [\"eth0\"] to [ebpf]",
        );
    }
    t.finish(d);
}

/// A non-empty array of network interface names, each once.
fn interface_names(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<Vec<String>> {
    let items = v.array(d, "an array of interface names, e.g. [\"eth0\"]")?;
    let mut names: Vec<String> = Vec::new();
    for item in &items {
        let name = item.str(d)?;
        // IFNAMSIZ is 16 with the NUL; the kernel refuses '/', ':' and blanks in names.
        if name.is_empty()
            || name.len() > 15
            || name == "."
            || name == ".."
            || name
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        {
            d.error(
                &item.span,
                &item.path,
                format!("{name:?} is not a network interface name (1 to 15 bytes, no '/', ':' or blanks)"),
            );
            return None;
        }
        if names.iter().any(|n| n == name) {
            d.error(
                &item.span,
                &item.path,
                format!("interface {name:?} is listed twice"),
            );
            return None;
        }
        names.push(name.to_owned());
    }
    if names.is_empty() {
        d.error(&v.span, &v.path, "must name at least one interface");
        return None;
    }
    Some(names)
}

pub(super) fn read_whitelist(
    d: &mut Diagnostics<'_>,
    mut t: Table<'_, '_>,
    whitelist: &mut WhitelistConfig,
) {
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

pub(super) fn read_whitelist_source(
    d: &mut Diagnostics<'_>,
    mut t: Table<'_, '_>,
) -> Option<WhitelistSource> {
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
pub(super) fn read_daemon_source(
    d: &mut Diagnostics<'_>,
    t: &mut Table<'_, '_>,
) -> Option<DaemonSource> {
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
pub(super) fn daemon_bus(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<DaemonBus> {
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
pub(super) fn dbus_checked(
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
