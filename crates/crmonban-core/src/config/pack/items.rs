//! Reading a pack's `[[patterns]]` and `[[tests]]` tables: each pattern's regex checked (it
//! compiles after `<IP>`/`<PORT>` expansion and captures the address), each test line tied to
//! a pattern that exists.

use super::*;

pub(super) fn read_pattern(
    d: &mut Diagnostics<'_>,
    mut t: Table<'_, '_>,
    seen: &mut BTreeSet<String>,
) -> Option<PackPattern> {
    let line = d.line_of(t.span.start);
    let name = t
        .require(d, "name", "the pattern's name, e.g. \"ssh-failed-auth\"")
        .and_then(|v| {
            let name = identifier(d, &v)?;
            if !seen.insert(name.clone()) {
                d.error(
                    &v.span,
                    &v.path,
                    format!("the name {name:?} is used twice; names must be unique"),
                );
            }
            Some(name)
        });
    let kind = t
        .require(
            d,
            "kind",
            "e.g. \"failed_auth\", \"invalid_user\", \"probe\"",
        )
        .and_then(|v| {
            let text = identifier(d, &v)?;
            EventKind::from_str(&text).ok()
        });
    let step = match t.get("step") {
        None => Some(Step::Each),
        Some(v) => match v.str(d)? {
            "try" => Some(Step::Try),
            "context" => Some(Step::Context),
            "each" => Some(Step::Each),
            other => {
                d.error(
                    &v.span,
                    &v.path,
                    format!("unknown step {other:?}; expected \"try\", \"context\" or \"each\""),
                );
                None
            }
        },
    };
    let connection = match t.get("connection") {
        None => Some(ConnectionId::None),
        Some(v) => match v.str(d)? {
            "none" => Some(ConnectionId::None),
            "pid" => Some(ConnectionId::Pid),
            "session" => Some(ConnectionId::Session),
            other => {
                d.error(
                    &v.span,
                    &v.path,
                    format!(
                        "unknown connection {other:?}; expected \"none\", \"pid\" or \"session\""
                    ),
                );
                None
            }
        },
    };
    let prefixes = t
        .require(d, "prefixes", "the texts a matching message starts with")
        .and_then(|v| {
            let items = v.array(d, "an array of strings")?;
            if items.is_empty() {
                d.error(&v.span, &v.path, "must list at least one prefix");
                return None;
            }
            let list: Vec<String> = items
                .iter()
                .filter_map(|item| item.non_empty_str(d).map(str::to_owned))
                .collect();
            (list.len() == items.len()).then_some(list)
        });
    let needle = t
        .get("needle")
        .and_then(|v| v.non_empty_str(d).map(str::to_owned));
    let regex = t
        .require(
            d,
            "regex",
            "anchored with ^, capturing the address with <IP>",
        )
        .and_then(|v| {
            let source = v.str(d)?;
            match check_regex(source) {
                Ok(()) => Some(source.to_owned()),
                Err(why) => {
                    d.error(&v.span, &v.path, why);
                    None
                }
            }
        });
    t.finish(d);
    Some(PackPattern {
        name: name?,
        kind: kind?,
        step: step?,
        connection: connection?,
        prefixes: prefixes?,
        needle,
        regex: regex?,
        line,
    })
}

/// The rules every pack regex follows; see docs/PACKS.md.
fn check_regex(source: &str) -> Result<(), String> {
    if !source.starts_with('^') {
        return Err("must start with ^: patterns are anchored on text the service writes".into());
    }
    if source.matches("<IP>").count() != 1 {
        return Err("must contain <IP> exactly once (the address group)".into());
    }
    if source.contains("(?P<ip>") || source.contains("(?<ip>") {
        return Err("write the address as <IP>, not as an ip group of your own".into());
    }
    let compiled = regex::bytes::Regex::new(&expand(source)).map_err(|e| {
        format!(
            "invalid regex: {}",
            crate::config::schema::services::one_line(&e)
        )
    })?;
    for name in compiled.capture_names().flatten() {
        let known = ["ip", "port", "session"].contains(&name) || ATTACKER_GROUPS.contains(&name);
        if !known {
            return Err(format!(
                "unknown group `{name}`: the groups are ip, port, session and the attacker \
                 texts {}",
                quoted_list(ATTACKER_GROUPS)
            ));
        }
    }
    // The address must be the last match of its context when attacker text comes before it:
    // such a regex ends with $ so that nothing after the service's own text can move it.
    let ip_at = source.find("<IP>").unwrap_or(0);
    let attacker_before = ATTACKER_GROUPS
        .iter()
        .any(|g| source[..ip_at].contains(&format!("(?P<{g}>")));
    if attacker_before && !source.ends_with('$') {
        return Err(
            "attacker text comes before <IP>: the regex must end with $ so that the address is \
             the one the service wrote last"
                .into(),
        );
    }
    Ok(())
}

pub(super) fn read_test(
    d: &mut Diagnostics<'_>,
    mut t: Table<'_, '_>,
    patterns: &BTreeSet<String>,
) -> Option<PackTest> {
    let line = d.line_of(t.span.start);
    let text = t
        .require(d, "line", "a log line as the service writes it")
        .and_then(|v| v.str(d).map(str::to_owned));
    let ip = match t.get("ip") {
        None => Some(None),
        Some(v) => {
            let text = v.str(d)?;
            match text.parse::<IpAddr>() {
                Ok(ip) => Some(Some(ip)),
                Err(_) => {
                    d.error(&v.span, &v.path, format!("{text:?} is not an IP address"));
                    None
                }
            }
        }
    };
    let pattern = match t.get("pattern") {
        None => Some(None),
        Some(v) => {
            let name = v.str(d)?;
            if patterns.contains(name) {
                Some(Some(name.to_owned()))
            } else {
                d.error(
                    &v.span,
                    &v.path,
                    format!("no pattern {name:?} in this pack"),
                );
                None
            }
        }
    };
    let origin = t
        .require(d, "origin", "where this line's format comes from")
        .and_then(|v| v.non_empty_str(d).map(str::to_owned));
    t.finish(d);
    Some(PackTest {
        text: text?,
        ip: ip?,
        pattern: pattern?,
        origin: origin?,
        line,
    })
}
