//! Reading `[services.NAME]`: a service's source, thresholds and patterns, over the catalog's
//! pack defaults.

use super::*;

pub(super) fn read_services(
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

pub(super) fn read_service(
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
    if let Some(v) = t.get("port").and_then(|v| ports(d, &v)) {
        service.ports = v;
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
                match crate::config::document::nearest(name, &catalog.all_names()) {
                    Some(near) => format!(" (did you mean `{near}`?)"),
                    None => " (`crmonband check-config` lists the service packs)".to_owned(),
                }
            ),
        );
    }
    t.finish(d);
}

pub(super) fn read_pattern(
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
