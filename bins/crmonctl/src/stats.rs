//! `crmonctl stats` for people: the daemon's `GetStats` JSON (docs/DBUS.md) as a summary, the
//! bans and attacks of the last day as sparklines, and aligned tables of the top attackers,
//! services, countries and networks; SIEM export and the XDP fast path in sections of their
//! own ([`paths`]); keys of a newer daemon follow as `key: value` lines. `--json` prints the
//! JSON as it came.

mod paths;

use serde_json::{Map, Value};

use crate::output::{duration_text, key_values, table};

/// The keys this module lays out itself; every other is listed after them.
const SHOWN: &[&str] = &[
    "active_bans",
    "permanent_bans",
    "network_bans",
    "bans_by_source",
    "events_processed",
    "uptime_seconds",
    "window_seconds",
    "events_by_service",
    "top_attackers",
    "top_countries",
    "top_networks",
    "bans_per_hour",
    "events_per_hour",
    // Every country's count, for `crmonctl report`'s map; top_countries has the top ones.
    "events_by_country",
    "siem",
    "xdp",
];

/// The sparkline's levels, lowest first; an hour without bans is a space.
const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// `json` (GetStats JSON) laid out for a terminal; text that is not a JSON object as it is.
pub fn stats_text(json: &str) -> String {
    let Ok(Value::Object(stats)) = serde_json::from_str::<Value>(json) else {
        return format!("{}\n", json.trim_end());
    };
    let number = |key: &str| stats.get(key).and_then(Value::as_u64);
    let window = number("window_seconds").map_or_else(
        || "the window".to_owned(),
        |secs| format!("last {}", duration_text(secs)),
    );
    let mut sections = Vec::new();

    let mut summary = Vec::new();
    if let Some(active) = number("active_bans") {
        let mut detail = Vec::new();
        if let Some(n) = number("permanent_bans") {
            detail.push(format!("{n} permanent"));
        }
        if let Some(n) = number("network_bans") {
            detail.push(format!("{n} networks"));
        }
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", detail.join(", "))
        };
        summary.push(("active bans".to_owned(), format!("{active}{detail}")));
    }
    if let Some(Value::Object(sources)) = stats.get("bans_by_source") {
        summary.push(("by source".to_owned(), counts_inline(sources)));
    }
    if let Some(n) = number("events_processed") {
        summary.push(("events processed".to_owned(), n.to_string()));
    }
    if let Some(secs) = number("uptime_seconds") {
        summary.push(("uptime".to_owned(), duration_text(secs)));
    }
    if !summary.is_empty() {
        sections.push(key_values(&summary));
    }

    for (key, what) in [("bans_per_hour", "Bans"), ("events_per_hour", "Attacks")] {
        let Some(Value::Array(hours)) = stats.get(key) else {
            continue;
        };
        let counts: Vec<u64> = hours.iter().filter_map(Value::as_u64).collect();
        if !counts.is_empty() {
            let peak = counts.iter().copied().max().unwrap_or(0);
            sections.push(format!(
                "{what} per hour, last {} h (oldest first; peak {peak}, total {})\n[{}]\n",
                counts.len(),
                counts.iter().sum::<u64>(),
                sparkline(&counts)
            ));
        }
    }

    let rows = |key: &str| match stats.get(key) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_object).collect(),
        _ => Vec::new(),
    };
    let attackers: Vec<&Map<String, Value>> = rows("top_attackers");
    if !attackers.is_empty() {
        let body: Vec<Vec<String>> = attackers
            .iter()
            .map(|a| {
                let network = match (
                    a.get("asn").and_then(Value::as_u64),
                    text(a, "organization"),
                ) {
                    (Some(asn), org) if !org.is_empty() => format!("AS{asn} {org}"),
                    (Some(asn), _) => format!("AS{asn}"),
                    (None, org) => org,
                };
                vec![
                    text(a, "ip"),
                    text(a, "events"),
                    text(a, "country"),
                    network,
                ]
            })
            .collect();
        sections.push(format!(
            "Top attackers ({window})\n{}",
            table(&["ADDRESS", "EVENTS", "COUNTRY", "NETWORK"], &body)
        ));
    }
    if let Some(Value::Object(services)) = stats.get("events_by_service")
        && !services.is_empty()
    {
        let mut services: Vec<(&String, u64)> = services
            .iter()
            .map(|(name, n)| (name, n.as_u64().unwrap_or(0)))
            .collect();
        services.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let body: Vec<Vec<String>> = services
            .iter()
            .map(|(name, n)| vec![(*name).clone(), n.to_string()])
            .collect();
        sections.push(format!(
            "Top services ({window})\n{}",
            table(&["SERVICE", "EVENTS"], &body)
        ));
    }
    for (key, title, first) in [
        ("top_countries", "Top countries", "COUNTRY"),
        ("top_networks", "Top networks", "NETWORK"),
    ] {
        let origins = rows(key);
        if origins.is_empty() {
            continue;
        }
        let body: Vec<Vec<String>> = origins
            .iter()
            .map(|o| {
                let name = text(o, "name");
                let origin = if name.is_empty() {
                    text(o, "origin")
                } else {
                    format!("{} {name}", text(o, "origin"))
                };
                vec![origin, text(o, "events"), text(o, "addresses")]
            })
            .collect();
        sections.push(format!(
            "{title} ({window})\n{}",
            table(&[first, "EVENTS", "ADDRESSES"], &body)
        ));
    }

    sections.extend(paths::siem_section(&stats));
    sections.extend(paths::xdp_section(&stats));

    let rest: Map<String, Value> = stats
        .iter()
        .filter(|(key, _)| !SHOWN.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if !rest.is_empty() {
        sections.push(crate::output::json_as_key_values(
            &Value::Object(rest).to_string(),
        ));
    }
    sections.join("\n")
}

/// `{"dbus": 2, "detector": 1}` as `detector 1, dbus 2` (most first).
fn counts_inline(counts: &Map<String, Value>) -> String {
    let mut pairs: Vec<(&String, u64)> = counts
        .iter()
        .map(|(k, v)| (k, v.as_u64().unwrap_or(0)))
        .collect();
    pairs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if pairs.is_empty() {
        return "none".to_owned();
    }
    pairs
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A field as text: strings as they are, numbers written out, null or absent empty.
fn text(object: &Map<String, Value>, key: &str) -> String {
    match object.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// One character per count, scaled to the largest: a space for none, else one of [`LEVELS`]
/// (any count above zero gets at least the lowest).
pub fn sparkline(counts: &[u64]) -> String {
    let peak = counts.iter().copied().max().unwrap_or(0);
    counts
        .iter()
        .map(|&n| {
            if n == 0 {
                ' '
            } else {
                let level = (n.saturating_mul(LEVELS.len() as u64) - 1) / peak;
                LEVELS[usize::try_from(level).unwrap_or(0).min(LEVELS.len() - 1)]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sparkline_scales_to_the_peak_and_shows_empty_hours_as_spaces() {
        assert_eq!(sparkline(&[0, 1, 2, 4, 8]), " ▁▂▄█");
        assert_eq!(sparkline(&[0, 0]), "  ");
        assert_eq!(sparkline(&[1, 1000]), "▁█");
        assert_eq!(sparkline(&[]), "");
    }

    #[test]
    fn stats_are_laid_out_as_summary_sparkline_and_tables() {
        let json = r#"{"active_bans":3,"permanent_bans":1,"network_bans":1,
            "bans_by_source":{"dbus":2,"detector":1},"events_processed":120,
            "uptime_seconds":3600,"window_seconds":86400,
            "events_by_service":{"nginx":2,"ssh":118},
            "top_attackers":[{"ip":"192.0.2.7","events":40,"country":"DE","asn":24940,
                              "organization":"Hetzner Online GmbH"},
                             {"ip":"2001:db8::1","events":3,"country":null,"asn":null,
                              "organization":null}],
            "top_countries":[{"origin":"DE","name":null,"events":40,"addresses":1}],
            "top_networks":[{"origin":"AS24940","name":"Hetzner Online GmbH","events":40,
                             "addresses":1}],
            "bans_per_hour":[0,0,1,4],"events_per_hour":[8,0,0,2],"events_by_country":{"DE":40},
            "siem":{"enabled":false,"missed":0,"targets":[]}}"#;
        let out = stats_text(json);
        for line in [
            "active bans:       3 (1 permanent, 1 networks)",
            "by source:         dbus 2, detector 1",
            "events processed:  120",
            "uptime:            1h",
            "Bans per hour, last 4 h (oldest first; peak 4, total 5)",
            "[  ▂█]",
            "Attacks per hour, last 4 h (oldest first; peak 8, total 10)",
            "[█  ▂]",
            "Top attackers (last 1d)",
            "ADDRESS      EVENTS  COUNTRY  NETWORK",
            "192.0.2.7    40      DE       AS24940 Hetzner Online GmbH",
            "2001:db8::1  3",
            "Top services (last 1d)",
            "ssh      118",
            "nginx    2",
            "Top countries (last 1d)",
            "DE       40      1",
            "Top networks (last 1d)",
            "AS24940 Hetzner Online GmbH  40      1",
            "SIEM export: off",
        ] {
            assert!(
                out.lines().any(|l| l == line),
                "no line {line:?} in:\n{out}"
            );
        }
        // Services most first, whatever the JSON's order.
        assert!(out.find("ssh      118").unwrap() < out.find("nginx    2").unwrap());
        assert_eq!(stats_text("not json"), "not json\n");
    }
}
