//! `crmonctl intel` for people: `GetIntel`'s JSON laid out as the original README showed it
//! (Location, Network, Flags), then WHOIS, threat intelligence and what failed. Read as plain
//! JSON (no dependency on the intel crate: crmonctl only talks D-Bus), every value escaped,
//! since it came from remote servers.

use crmonban_dbus::rfc3339_utc;

use crate::output::escape_control;

/// `crmonctl intel` for people, from `GetIntel`'s JSON: the original README's layout
/// (Location, Network, Flags), then WHOIS, threat intelligence and what failed. Every value
/// is escaped: it came from remote servers.
pub fn intel_text(json: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return format!("{}\n", escape_control(json));
    };
    let text = |path: &[&str]| -> Option<String> {
        let mut at = &v;
        for key in path {
            at = at.get(key)?;
        }
        match at {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) if s.is_empty() => None,
            serde_json::Value::String(s) => Some(escape_control(s)),
            serde_json::Value::Array(items) if items.is_empty() => None,
            serde_json::Value::Array(items) => Some(
                items
                    .iter()
                    .map(|i| match i {
                        serde_json::Value::String(s) => escape_control(s),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            other => Some(escape_control(&other.to_string())),
        }
    };
    let mut out = String::new();
    let mut line = |label: &str, value: Option<String>| {
        if let Some(value) = value {
            out.push_str(&format!("{label}: {value}\n"));
        }
    };
    line("IP", text(&["ip"]));
    line(
        "Gathered",
        v.get("gathered_at")
            .and_then(serde_json::Value::as_i64)
            .map(|t| rfc3339_utc(t).replace('T', " ").replace('Z', " UTC")),
    );
    let mut sections: Vec<(&str, Vec<(String, String)>)> = Vec::new();
    fn section(
        sections: &mut Vec<(&'static str, Vec<(String, String)>)>,
        title: &'static str,
        rows: Vec<(&str, Option<String>)>,
    ) {
        let rows: Vec<(String, String)> = rows
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect();
        if !rows.is_empty() {
            sections.push((title, rows));
        }
    }
    let country = match (
        text(&["location", "country"]),
        text(&["location", "country_code"]),
    ) {
        (Some(name), Some(code)) => Some(format!("{name} ({code})")),
        (name, code) => name.or(code),
    };
    let city = match (text(&["location", "city"]), text(&["location", "region"])) {
        (Some(city), Some(region)) => Some(format!("{city}, {region}")),
        (city, region) => city.or(region),
    };
    let coordinates = match (
        text(&["location", "latitude"]),
        text(&["location", "longitude"]),
    ) {
        (Some(lat), Some(lon)) => Some(format!("{lat}, {lon}")),
        _ => None,
    };
    section(
        &mut sections,
        "Location",
        vec![
            ("Country", country),
            ("City", city),
            ("Coordinates", coordinates),
            ("Timezone", text(&["location", "time_zone"])),
        ],
    );
    let asn = text(&["network", "asn"]).map(|n| match text(&["network", "organization"]) {
        Some(org) => format!("AS{n} ({org})"),
        None => format!("AS{n}"),
    });
    let isp = text(&["abuseipdb", "isp"])
        .or_else(|| text(&["whois", "organization"]))
        .or_else(|| text(&["network", "organization"]));
    let rdns = text(&["reverse_dns", "name"]).map(|name| {
        match v
            .pointer("/reverse_dns/forward_confirmed")
            .and_then(|c| c.as_bool())
        {
            Some(true) => format!("{name} (forward-confirmed)"),
            _ => format!("{name} (not forward-confirmed)"),
        }
    });
    section(
        &mut sections,
        "Network",
        vec![
            ("ASN", asn),
            ("Network", text(&["network", "network"])),
            ("ISP", isp),
            ("Reverse DNS", rdns),
        ],
    );
    let hosting = v
        .pointer("/flags/hosting")
        .and_then(|h| h.as_bool())
        .unwrap_or(false);
    if hosting {
        let reason =
            text(&["flags", "hosting_reason"]).map_or_else(String::new, |r| format!(" ({r})"));
        sections.push(("Flags", vec![("⚠ Hosting/Datacenter".to_owned(), reason)]));
    }
    let registry = text(&["whois", "registry"]).map(|r| match text(&["whois", "servers"]) {
        Some(servers) => format!("{r} (asked {})", servers.replace(", ", " → ")),
        None => r,
    });
    let range = match (text(&["whois", "network_name"]), text(&["whois", "range"])) {
        (Some(name), Some(range)) => Some(format!("{name} ({range})")),
        (name, range) => name.or(range),
    };
    section(
        &mut sections,
        "WHOIS",
        vec![
            ("Registry", registry),
            ("Organization", text(&["whois", "organization"])),
            ("Network", range),
            ("Country", text(&["whois", "country"])),
            ("Abuse contact", text(&["whois", "abuse_contact"])),
        ],
    );
    let abuse = v.get("abuseipdb").map(|_| {
        let mut parts = vec![format!(
            "confidence {}%",
            text(&["abuseipdb", "confidence"]).unwrap_or_else(|| "?".into())
        )];
        if let Some(reports) = text(&["abuseipdb", "total_reports"]) {
            parts.push(match text(&["abuseipdb", "distinct_users"]) {
                Some(users) => format!("{reports} reports from {users} users"),
                None => format!("{reports} reports"),
            });
        }
        if let Some(last) = text(&["abuseipdb", "last_reported_at"]) {
            parts.push(format!("last {last}"));
        }
        parts.join(", ")
    });
    section(
        &mut sections,
        "Threat",
        vec![
            ("AbuseIPDB", abuse),
            ("Usage type", text(&["abuseipdb", "usage_type"])),
            ("Open ports", text(&["shodan", "ports"])),
            ("Host names", text(&["shodan", "hostnames"])),
            ("Tags", text(&["shodan", "tags"])),
            ("Vulnerabilities", text(&["shodan", "vulns"])),
            ("OS", text(&["shodan", "os"])),
        ],
    );
    if let Some(problems) = v.get("problems").and_then(|p| p.as_array()) {
        let rows = problems
            .iter()
            .map(|p| {
                (
                    p.get("source")
                        .and_then(|s| s.as_str())
                        .map(escape_control)
                        .unwrap_or_default(),
                    p.get("message")
                        .and_then(|m| m.as_str())
                        .map(escape_control)
                        .unwrap_or_default(),
                )
            })
            .collect::<Vec<_>>();
        if !rows.is_empty() {
            sections.push(("Not available", rows));
        }
    }
    for (title, rows) in sections {
        out.push_str(&format!("--- {title} ---\n"));
        for (key, value) in rows {
            if value.is_empty() {
                out.push_str(&format!("{key}\n"));
            } else if key.starts_with('⚠') {
                out.push_str(&format!("{key}{value}\n"));
            } else {
                out.push_str(&format!("{key}: {value}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intel_reads_like_the_original_and_escapes_what_servers_sent() {
        let json = r#"{"ip":"8.8.8.8","gathered_at":1705314600,
            "location":{"country":"United States","country_code":"US","city":"Mountain View",
                        "region":"California","latitude":37.4056,"longitude":-122.0775,
                        "time_zone":"America/Los_Angeles"},
            "network":{"asn":15169,"organization":"Google LLC"},
            "reverse_dns":{"name":"dns.google","forward_confirmed":true},
            "whois":{"servers":["whois.iana.org","whois.arin.net"],"registry":"ARIN",
                     "organization":"Google LLC","network_name":"GOGL","range":"8.8.8.0 - 8.8.8.255",
                     "abuse_contact":"network-abuse@google.com\u001b[31m"},
            "flags":{"hosting":true,"hosting_reason":"AS15169 is a hosting network (Google)"},
            "problems":[{"source":"shodan","message":"api.shodan.io: rate-limited"}]}"#;
        let text = intel_text(json);
        for line in [
            "IP: 8.8.8.8\n",
            "Gathered: 2024-01-15 10:30:00 UTC\n",
            "--- Location ---\nCountry: United States (US)\nCity: Mountain View, California\n\
             Coordinates: 37.4056, -122.0775\nTimezone: America/Los_Angeles\n",
            "--- Network ---\nASN: AS15169 (Google LLC)\n",
            "Reverse DNS: dns.google (forward-confirmed)\n",
            "--- Flags ---\n⚠ Hosting/Datacenter (AS15169 is a hosting network (Google))\n",
            "Registry: ARIN (asked whois.iana.org → whois.arin.net)\n",
            "Network: GOGL (8.8.8.0 - 8.8.8.255)\n",
            "--- Not available ---\nshodan: api.shodan.io: rate-limited\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(!text.contains('\u{1b}'), "{text}");
    }
}
