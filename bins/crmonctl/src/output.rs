//! Formatting for people (aligned tables, UTC times, durations) and for programs (JSON with
//! fixed keys). Nothing here talks to the bus.

use std::io::Write;

use crmonban_core::text::shorten;
use crmonban_dbus::{BanInfo, IntelSummaryInfo, LogInfo, ProtectedInfo, rfc3339_utc};
use serde::Serialize;
use zbus::Variant;

/// `text` with control characters (escape sequences, newlines) written as escapes, so that
/// nothing a daemon relays (a comment, a log detail) can drive the terminal.
pub fn escape_control(text: &str) -> String {
    crmonban_core::text::escape_control(text).into_owned()
}

/// Left-aligned columns separated by two spaces, widths from the widest cell; no trailing
/// blanks.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| escape_control(cell)).collect())
        .collect();
    let rows = &rows;
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i + 1 < row.len() {
                line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `key  value` lines with the keys aligned.
pub fn key_values(pairs: &[(String, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let pad = " ".repeat(width - key.chars().count());
        let line = format!("{key}:{pad}  {value}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Unix seconds as RFC 3339 UTC, 0 as `permanent` (for expiry times).
pub fn expiry_text(unix_secs: i64) -> String {
    if unix_secs == 0 {
        "permanent".to_owned()
    } else {
        rfc3339_utc(unix_secs)
    }
}

/// `3600` as `1h`, `90061` as `1d 1h 1m 1s`; 0 as `permanent` (ban durations): the form
/// `crmonctl ban -d` reads back.
pub fn duration_text(secs: u64) -> String {
    crmonban_core::duration::format((secs != 0).then_some(secs))
}

/// Writes to stdout; a closed pipe (`crmonctl list | head -1`) is not an error.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// One ban in `list -f json`. The keys and their types are a contract for scripts:
/// `ip` (string, address or CIDR), `reason` (string), `source` (string), `banned_at` and
/// `expires_at` (numbers, unix seconds UTC; `expires_at` 0 = permanent). Keys may be added,
/// never renamed or removed.
///
/// Added with intel: `country` (ISO code) and `asn` (number) and `as_org` (string) when the
/// daemon has intel cached about the address, else absent.
#[derive(Serialize)]
struct BanJson<'a> {
    ip: &'a str,
    reason: &'a str,
    source: &'a str,
    banned_at: i64,
    expires_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    asn: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    as_org: Option<&'a str>,
}

/// Cached intel of banned addresses, by address (from `GetIntelSummaries`).
pub type Summaries = std::collections::HashMap<String, IntelSummaryInfo>;

/// One entry in `whitelist list -f json`: `network`, `source`, `comment`, `added_at` (the
/// daemon's text: unix seconds for database entries, empty for the other sources).
#[derive(Serialize)]
struct WhitelistJson<'a> {
    network: &'a str,
    source: &'a str,
    comment: &'a str,
    added_at: &'a str,
}

/// One entry in `logs -f json`: `time` (number, unix seconds), `action`, `target`, `detail`.
#[derive(Serialize)]
struct LogJson<'a> {
    time: i64,
    action: &'a str,
    target: &'a str,
    detail: &'a str,
}

fn json_lines<T: Serialize>(items: &[T]) -> String {
    let mut text = serde_json::to_string_pretty(items).expect("plain structs serialize");
    text.push('\n');
    text
}

pub fn bans_json(bans: &[BanInfo], intel: &Summaries) -> String {
    let items: Vec<BanJson<'_>> = bans
        .iter()
        .map(|(ip, reason, source, banned_at, expires_at)| {
            let known = intel.get(ip);
            BanJson {
                ip,
                reason,
                source,
                banned_at: *banned_at,
                expires_at: *expires_at,
                country: known.map(|k| k.1.as_str()).filter(|c| !c.is_empty()),
                asn: known.map(|k| k.2).filter(|n| *n > 0),
                as_org: known.map(|k| k.3.as_str()).filter(|o| !o.is_empty()),
            }
        })
        .collect();
    json_lines(&items)
}

pub fn bans_table(bans: &[BanInfo], intel: &Summaries) -> String {
    let rows: Vec<Vec<String>> = bans
        .iter()
        .map(|(ip, reason, source, banned_at, expires_at)| {
            let known = intel.get(ip);
            let country = known
                .map(|k| escape_control(&k.1))
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "-".into());
            let asn = match known {
                Some((_, _, asn, org)) if *asn > 0 && !org.is_empty() => {
                    format!("AS{asn} {}", escape_control(&shorten(org, 24)))
                }
                Some((_, _, asn, _)) if *asn > 0 => format!("AS{asn}"),
                _ => "-".into(),
            };
            vec![
                ip.clone(),
                country,
                asn,
                reason.clone(),
                source.clone(),
                rfc3339_utc(*banned_at),
                expiry_text(*expires_at),
            ]
        })
        .collect();
    table(
        &[
            "IP",
            "COUNTRY",
            "ASN",
            "REASON",
            "SOURCE",
            "BANNED AT",
            "EXPIRES",
        ],
        &rows,
    )
}

/// The whitelist's `added_at` for people: unix seconds become RFC 3339; anything else is
/// shown as the daemon sent it.
fn added_at_text(added_at: &str) -> String {
    added_at
        .parse::<i64>()
        .map_or_else(|_| added_at.to_owned(), rfc3339_utc)
}

pub fn whitelist_table(entries: &[ProtectedInfo]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|(net, source, comment, added_at)| {
            vec![
                net.clone(),
                source.clone(),
                comment.clone(),
                added_at_text(added_at),
            ]
        })
        .collect();
    table(&["NETWORK", "SOURCE", "COMMENT", "ADDED AT"], &rows)
}

pub fn whitelist_json(entries: &[ProtectedInfo]) -> String {
    let items: Vec<WhitelistJson<'_>> = entries
        .iter()
        .map(|(network, source, comment, added_at)| WhitelistJson {
            network,
            source,
            comment,
            added_at,
        })
        .collect();
    json_lines(&items)
}

pub fn logs_table(entries: &[LogInfo]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|(time, action, target, detail)| {
            vec![
                rfc3339_utc(*time),
                action.clone(),
                target.clone(),
                detail.clone(),
            ]
        })
        .collect();
    table(&["TIME", "ACTION", "TARGET", "DETAIL"], &rows)
}

pub fn logs_json(entries: &[LogInfo]) -> String {
    let items: Vec<LogJson<'_>> = entries
        .iter()
        .map(|(time, action, target, detail)| LogJson {
            time: *time,
            action,
            target,
            detail,
        })
        .collect();
    json_lines(&items)
}

/// A JSON document as `key  value` lines: nested objects become dotted keys, arrays of
/// scalars a comma-separated list. Text that is not JSON is returned as is.
pub fn json_as_key_values(text: &str) -> String {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return format!("{}\n", text.trim_end());
    };
    let mut pairs = Vec::new();
    flatten("", &value, &mut pairs);
    if pairs.is_empty() {
        return String::new();
    }
    key_values(&pairs)
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&key(k), v, out);
            }
        }
        Value::Array(items) if items.iter().all(|v| !v.is_object() && !v.is_array()) => {
            let list: Vec<String> = items.iter().map(scalar_text).collect();
            out.push((prefix.to_owned(), list.join(", ")));
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&key(&i.to_string()), v, out);
            }
        }
        scalar => out.push((prefix.to_owned(), scalar_text(scalar))),
    }
}

fn scalar_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// A `Status()` value for people: strings bare, lists comma-separated.
pub fn variant_text(value: &Variant<'_>) -> String {
    match value {
        Variant::Str(s) => s.to_string(),
        Variant::Bool(b) => b.to_string(),
        Variant::Variant(inner) => variant_text(inner),
        Variant::Array(items) => items
            .inner()
            .iter()
            .map(variant_text)
            .collect::<Vec<_>>()
            .join(", "),
        other => variant_u64(other).map_or_else(|| other.to_string(), |n| n.to_string()),
    }
}

/// A list `Status()` value joined with `separator` (its items may contain commas), escaped;
/// "none" when empty.
pub fn variant_list(value: &Variant<'_>, separator: &str) -> String {
    let items: Vec<String> = match value {
        Variant::Array(items) => items
            .inner()
            .iter()
            .map(|i| escape_control(&variant_text(i)))
            .collect(),
        Variant::Variant(inner) => return variant_list(inner, separator),
        other => vec![escape_control(&variant_text(other))],
    };
    if items.is_empty() {
        "none".into()
    } else {
        items.join(separator)
    }
}

/// An integer `Status()` value of any width and signedness, if non-negative.
pub fn variant_u64(value: &Variant<'_>) -> Option<u64> {
    match value {
        Variant::U8(n) => Some(u64::from(*n)),
        Variant::U16(n) => Some(u64::from(*n)),
        Variant::U32(n) => Some(u64::from(*n)),
        Variant::U64(n) => Some(*n),
        Variant::I16(n) => u64::try_from(*n).ok(),
        Variant::I32(n) => u64::try_from(*n).ok(),
        Variant::I64(n) => u64::try_from(*n).ok(),
        Variant::Variant(inner) => variant_u64(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_line_up() {
        let text = table(
            &["IP", "REASON"],
            &[
                vec!["192.0.2.7".into(), "ssh".into()],
                vec!["2001:db8::/32".into(), "".into()],
            ],
        );
        assert_eq!(
            text,
            "IP             REASON\n192.0.2.7      ssh\n2001:db8::/32\n"
        );
    }

    #[test]
    fn durations_and_expiry() {
        assert_eq!(duration_text(0), "permanent");
        assert_eq!(duration_text(3600), "1h");
        assert_eq!(duration_text(90_061), "1d 1h 1m 1s");
        assert_eq!(expiry_text(0), "permanent");
        assert_eq!(expiry_text(86_400), "1970-01-02T00:00:00Z");
    }

    #[test]
    fn bans_json_has_fixed_keys_in_order() {
        let bans = vec![(
            "192.0.2.7".to_owned(),
            "test".to_owned(),
            "dbus".to_owned(),
            100,
            0,
        )];
        let none = Summaries::new();
        let value: serde_json::Value = serde_json::from_str(&bans_json(&bans, &none)).unwrap();
        assert_eq!(
            value,
            serde_json::json!([{"ip": "192.0.2.7", "reason": "test", "source": "dbus",
                                "banned_at": 100, "expires_at": 0}])
        );
        // Cached intel adds its keys after the others.
        let known: Summaries = [(
            "192.0.2.7".to_owned(),
            (
                "192.0.2.7".to_owned(),
                "NL".to_owned(),
                64496,
                "Example B.V.".to_owned(),
            ),
        )]
        .into();
        let value: serde_json::Value = serde_json::from_str(&bans_json(&bans, &known)).unwrap();
        assert_eq!(
            (&value[0]["country"], &value[0]["asn"], &value[0]["as_org"]),
            (
                &serde_json::json!("NL"),
                &serde_json::json!(64496),
                &serde_json::json!("Example B.V.")
            )
        );
        let table = bans_table(&bans, &known);
        assert!(
            table.contains("COUNTRY") && table.contains("AS64496 Example B.V."),
            "{table}"
        );
        let text = bans_json(&bans, &none);
        let order: Vec<usize> = [
            "\"ip\"",
            "\"reason\"",
            "\"source\"",
            "\"banned_at\"",
            "\"expires_at\"",
        ]
        .iter()
        .map(|k| text.find(k).unwrap())
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert_eq!(bans_json(&[], &none), "[]\n");
    }

    #[test]
    fn json_flattens_for_people() {
        let text =
            json_as_key_values(r#"{"ip":"192.0.2.7","geo":{"country":"NL"},"ports":[22,80]}"#);
        assert_eq!(
            text,
            "geo.country:  NL\nip:           192.0.2.7\nports:        22, 80\n"
        );
        assert_eq!(json_as_key_values("not json"), "not json\n");
    }

    #[test]
    fn whitelist_times_are_readable() {
        assert_eq!(added_at_text("0"), "1970-01-01T00:00:00Z");
        assert_eq!(
            added_at_text("2026-01-01T00:00:00Z"),
            "2026-01-01T00:00:00Z"
        );
    }
}
