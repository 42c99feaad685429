//! The sections of `crmonctl stats` about where bans and events go besides nftables: SIEM
//! export (one row per target) and the XDP fast path (state, entries, drops per family, one
//! row per interface). Read from the `siem` and `xdp` objects of `GetStats` (docs/DBUS.md); a
//! path that is off is one line.

use serde_json::{Map, Value};

use super::text;
use crate::output::{key_values, table};

/// The SIEM export section, or `None` when the daemon reports no `siem` object.
pub fn siem_section(stats: &Map<String, Value>) -> Option<String> {
    let siem = stats.get("siem")?.as_object()?;
    if siem.get("enabled").and_then(Value::as_bool) != Some(true) {
        return Some("SIEM export: off\n".to_owned());
    }
    let targets: Vec<&Map<String, Value>> = siem
        .get("targets")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    let missed = number(siem, "missed");
    let mut out = format!(
        "SIEM export: {} target{}{}\n",
        targets.len(),
        if targets.len() == 1 { "" } else { "s" },
        if missed > 0 {
            format!(", {missed} events missed by the exporter")
        } else {
            String::new()
        }
    );
    if !targets.is_empty() {
        let rows: Vec<Vec<String>> = targets
            .iter()
            .map(|t| {
                let state = match t.get("up").and_then(Value::as_bool) {
                    Some(true) => "up",
                    Some(false) => "failing",
                    None => "",
                };
                vec![
                    text(t, "name"),
                    text(t, "format"),
                    state.to_owned(),
                    text(t, "sent"),
                    text(t, "dropped"),
                    text(t, "rejected"),
                    text(t, "failures"),
                    text(t, "queued"),
                    text(t, "last_error"),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "TARGET",
                "FORMAT",
                "STATE",
                "SENT",
                "DROPPED",
                "REJECTED",
                "FAILURES",
                "QUEUED",
                "LAST ERROR",
            ],
            &rows,
        ));
    }
    Some(out)
}

/// The XDP fast path section, or `None` when the daemon reports no `xdp` object.
pub fn xdp_section(stats: &Map<String, Value>) -> Option<String> {
    let xdp = stats.get("xdp")?.as_object()?;
    let state = text(xdp, "state");
    if state.is_empty() || state == "off" {
        return Some("XDP fast path: off\n".to_owned());
    }
    let method = text(xdp, "method");
    let mut out = if method.is_empty() {
        format!("XDP fast path: {state}\n")
    } else {
        format!("XDP fast path: {state} (maps: {method})\n")
    };
    let family = |key: &str, field: &str| {
        xdp.get(key)
            .and_then(Value::as_object)
            .map_or(0, |f| number(f, field))
    };
    let drops = |family: &str| {
        let of = xdp
            .get("dropped")
            .and_then(|d| d.get(family))
            .and_then(Value::as_object);
        let (packets, bytes) = of.map_or((0, 0), |f| (number(f, "packets"), number(f, "bytes")));
        format!("{packets} packets, {}", bytes_text(bytes))
    };
    let mut facts = vec![
        (
            "entries".to_owned(),
            format!(
                "{} IPv4, {} IPv6 (maps of {} entries)",
                family("entries", "ipv4"),
                family("entries", "ipv6"),
                number(xdp, "max_entries")
            ),
        ),
        ("dropped IPv4".to_owned(), drops("ipv4")),
        ("dropped IPv6".to_owned(), drops("ipv6")),
        (
            "reconciles".to_owned(),
            format!(
                "{} (the last took {} ms)",
                number(xdp, "reconciles"),
                number(xdp, "last_reconcile_ms")
            ),
        ),
    ];
    for (key, label) in [
        ("not_mirrored", "bans without room (nftables enforces them)"),
        ("missed", "ban changes missed (caught up by a reconcile)"),
    ] {
        let n = number(xdp, key);
        if n > 0 {
            facts.push((label.to_owned(), n.to_string()));
        }
    }
    out.push_str(&key_values(&facts));
    let mut rows: Vec<Vec<String>> = xdp
        .get("interfaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .map(|i| vec![text(i, "name"), text(i, "mode"), text(i, "fallback")])
        .collect();
    rows.extend(
        xdp.get("failed_interfaces")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .map(|f| {
                vec![
                    text(f, "name"),
                    "not attached".to_owned(),
                    text(f, "reason"),
                ]
            }),
    );
    if !rows.is_empty() {
        out.push_str(&table(&["INTERFACE", "MODE", "NOTE"], &rows));
    }
    Some(out)
}

fn number(object: &Map<String, Value>, key: &str) -> u64 {
    object.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// `5839000` as `5.6 MiB`; below 1 KiB in bytes.
fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    #[allow(clippy::cast_precision_loss)] // one decimal is shown
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn paths_that_are_off_take_one_line() {
        let stats = object(
            r#"{"siem":{"enabled":false,"missed":0,"targets":[]},
                "xdp":{"state":"off","method":"","dropped":{},"interfaces":[]}}"#,
        );
        assert_eq!(siem_section(&stats).unwrap(), "SIEM export: off\n");
        assert_eq!(xdp_section(&stats).unwrap(), "XDP fast path: off\n");
        assert_eq!(siem_section(&Map::new()), None);
        assert_eq!(xdp_section(&Map::new()), None);
    }

    #[test]
    fn siem_targets_and_xdp_interfaces_are_tables() {
        let stats = object(
            r#"{"siem":{"enabled":true,"missed":3,
                 "targets":[{"name":"syslog tls siem.example.com:6514","format":"cef",
                   "sent":812,"dropped":0,"rejected":0,"failures":2,"queued":0,"up":false,
                   "last_error":"connect: connection refused"}]},
                "xdp":{"state":"running","method":"xdp",
                 "dropped":{"ipv4":{"packets":91234,"bytes":5839000},
                            "ipv6":{"packets":12,"bytes":1032}},
                 "interfaces":[{"name":"eth0","mode":"native","fallback":null},
                               {"name":"veth1","mode":"generic","fallback":"no driver support"}],
                 "failed_interfaces":[{"name":"eth9","reason":"no such interface"}],
                 "entries":{"ipv4":2,"ipv6":1},"max_entries":10000,
                 "not_mirrored":4,"reconciles":14,"last_reconcile_ms":7,"missed":0}}"#,
        );
        let siem = siem_section(&stats).unwrap();
        for line in [
            "SIEM export: 1 target, 3 events missed by the exporter",
            "TARGET                            FORMAT  STATE    SENT  DROPPED  REJECTED  FAILURES  QUEUED  LAST ERROR",
            "syslog tls siem.example.com:6514  cef     failing  812   0        0         2         0       connect: connection refused",
        ] {
            assert!(siem.lines().any(|l| l == line), "no {line:?} in:\n{siem}");
        }
        let xdp = xdp_section(&stats).unwrap();
        for line in [
            "XDP fast path: running (maps: xdp)",
            "entries:                                     2 IPv4, 1 IPv6 (maps of 10000 entries)",
            "dropped IPv4:                                91234 packets, 5.6 MiB",
            "dropped IPv6:                                12 packets, 1.0 KiB",
            "reconciles:                                  14 (the last took 7 ms)",
            "bans without room (nftables enforces them):  4",
            "eth0       native",
            "veth1      generic       no driver support",
            "eth9       not attached  no such interface",
        ] {
            assert!(xdp.lines().any(|l| l == line), "no {line:?} in:\n{xdp}");
        }
        assert!(!xdp.contains("missed"), "{xdp}");
    }
}
