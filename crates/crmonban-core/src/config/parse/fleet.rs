//! Reading `[fleet]`.

use super::*;
use crate::config::document::quoted_list;

pub(super) fn read_fleet(d: &mut Diagnostics<'_>, mut t: Table<'_, '_>, fleet: &mut FleetConfig) {
    if let Some(v) = t.bool(d, "enabled") {
        fleet.enabled = v;
    }
    let url = t.get("url");
    if let Some(v) = &url
        && let Some(text) = v.str(d)
    {
        let postgres = text.starts_with("postgres://") || text.starts_with("postgresql://");
        if !(text.is_empty() || postgres) {
            d.error(&v.span, &v.path, "not a PostgreSQL URL: it starts with postgres:// (e.g. \"postgres://crmonban@db.example.org/crmonban?sslmode=verify-full\")");
        } else {
            if has_password(text) {
                d.warn(&v.span, &v.path, "the URL holds a password: config.toml is read by anyone who may read the configuration; move it to password_file (mode 600)");
            }
            fleet.url = text.to_owned();
        }
    }
    for (key, slot) in [
        ("url_file", &mut fleet.url_file),
        ("password_file", &mut fleet.password_file),
    ] {
        if let Some(v) = t.get(key)
            && let Some(p) = path(d, &v)
        {
            *slot = Some(p);
        }
    }
    if let Some(v) = t.get("node_name")
        && let Some(name) = v.non_empty_str(d)
    {
        if is_node_name(name) {
            fleet.node_name = Some(name.to_owned());
        } else {
            d.error(&v.span, &v.path, format!("{name:?} is not a node name: a letter or digit, then letters, digits, '.', '_' or '-', at most 63"));
        }
    }
    if let Some(v) = t.get("share")
        && let Some(items) = v.array(d, "an array of ban sources")
    {
        let mut share = BTreeSet::new();
        for item in &items {
            let Some(name) = item.str(d) else { continue };
            let name = if name == "manual" { "dbus" } else { name };
            if SHAREABLE_SOURCES.contains(&name) {
                share.insert(name.to_owned());
            } else {
                d.error(
                    &item.span,
                    &item.path,
                    format!(
                        "{name:?} is not a ban source a node shares; one of {}, manual",
                        quoted_list(&SHAREABLE_SOURCES)
                    ),
                );
            }
        }
        fleet.share = share;
    }
    if let Some(v) = t.get("accept")
        && let Some(items) = v.array(d, "an array of node names, or [\"*\"]")
    {
        let names: Vec<&str> = items.iter().filter_map(|item| item.str(d)).collect();
        if names == ["*"] {
            fleet.accept = None;
        } else {
            let mut accept = BTreeSet::new();
            for (item, name) in items.iter().zip(&names) {
                if *name == "*" {
                    d.error(
                        &item.span,
                        &item.path,
                        "\"*\" stands alone: [\"*\"] accepts every node",
                    );
                } else if is_node_name(name) {
                    accept.insert((*name).to_owned());
                } else {
                    d.error(
                        &item.span,
                        &item.path,
                        format!("{name:?} is not a node name"),
                    );
                }
            }
            fleet.accept = Some(accept);
        }
    }
    if let Some(v) = t.get("min_ban_time").and_then(|v| seconds(d, &v, 0)) {
        fleet.min_ban_time = v;
    }
    if let Some(v) = t.integer(d, "max_publish_rate", 1..=100_000) {
        fleet.max_publish_rate = u32::try_from(v).unwrap_or(fleet.max_publish_rate);
    }
    if let Some(v) = t.integer(d, "escalate_after", 0..=1_000) {
        fleet.escalate_after = u32::try_from(v).unwrap_or(fleet.escalate_after);
    }
    if let Some(v) = t.get("escalate_factor").and_then(|v| v.number(d, 1.0)) {
        fleet.escalate_factor = v;
    }
    let window = t.get("escalate_window");
    if let Some(v) = window.as_ref().and_then(|v| seconds(d, v, 60)) {
        fleet.escalate_window = v;
    }
    let prune_after = t.get("prune_after");
    if let Some(v) = prune_after.as_ref().and_then(|v| seconds(d, v, 0)) {
        fleet.prune_after = v;
    }
    if !fleet.prune_after.is_zero() && fleet.prune_after < fleet.escalate_window {
        let v = prune_after.as_ref().or(window.as_ref());
        let (span, key) = v.map_or((t.span.clone(), "fleet.prune_after".to_owned()), |v| {
            (v.span.clone(), v.path.clone())
        });
        d.error(
            &span,
            &key,
            "prune_after is shorter than escalate_window: the reports escalation counts would be pruned; make prune_after at least as long (or 0: never prune)",
        );
    }
    if let Some(v) = t.get("heartbeat").and_then(|v| seconds(d, &v, 1)) {
        fleet.heartbeat = v;
    }
    if fleet.enabled && fleet.url.is_empty() && fleet.url_file.is_none() {
        let span = url.as_ref().map_or(t.span.clone(), |v| v.span.clone());
        d.error(
            &span,
            "fleet.url",
            "the fleet is enabled but no url (or url_file) says where its database is",
        );
    }
    t.finish(d);
}

/// Whether a URL's authority holds `user:password@`.
fn has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}
