//! JSON lines: one object per event, with Elastic Common Schema (ECS 8.17) field names where
//! ECS has one and crmonban's own `crmonban.*` namespace for the rest. The object is built
//! with serde_json (nested objects, keys in sorted order), so every string is escaped the way
//! JSON says; fields the event does not have are left out, never `null`.
//!
//! # Schema, version 1 (`crmonban.schema`)
//!
//! | field | type | value |
//! |---|---|---|
//! | `@timestamp` | string | event time, RFC 3339 UTC with six fraction digits (`2026-11-25T16:19:59.123456Z`) |
//! | `ecs.version` | string | `8.17.0` |
//! | `event.kind` | string | `alert` for ban added and attack detected (a detection by a system outside the Elastic Stack), else `event` |
//! | `event.category` | array | ban added `[intrusion_detection, network]`; attack detected `[intrusion_detection]`; ban removed and whitelist changes `[configuration]`; daemon `[process]` |
//! | `event.type` | array | ban added `[denied]`; attack detected `[info]`; ban removed `[deletion]`; whitelist added `[creation]`, removed `[deletion]`; daemon started `[start]`, stopping `[end]` |
//! | `event.action` | string | [`Action::id`] |
//! | `event.severity` | number | [`Action::severity`] (0-10) |
//! | `event.reason` | string | the reason or whitelist comment |
//! | `event.module` | string | `crmonban` |
//! | `event.dataset` | string | `crmonban.events` |
//! | `event.start`, `event.end` | string | ban added: the event time and the ban's end (RFC 3339 UTC) |
//! | `event.duration` | number | ban added: the ban's length in nanoseconds (ECS unit) |
//! | `source.address` | string | the target as written, address or CIDR network |
//! | `source.ip` | string | the target, when it is one address |
//! | `related.ip` | array | the target, when it is one address |
//! | `destination.port` | number | the service's port |
//! | `service.name` | string | the service (`ssh`, `nginx`, ...) |
//! | `observer.hostname` | string | this host ([`Origin::hostname`]) |
//! | `observer.product`, `observer.vendor` | string | `crmonban` |
//! | `observer.version` | string | crmonban's version |
//! | `observer.type` | string | `ips` |
//! | `message` | string | the human sentence, as in the syslog format (`banned 203.0.113.5 for 600 s (ssh): ...`) |
//! | `crmonban.schema` | number | `1`; raised when a field changes meaning or type |
//! | `crmonban.target` | string | the target as written |
//! | `crmonban.port` | number | the service's port |
//! | `crmonban.source` | string | who asked for the ban or removal (`detector`, `dbus`, `fleet:web1`) |
//! | `crmonban.attack_kind` | string | the attack's kind |
//! | `crmonban.count` | number | occurrences the event stands for (always present) |
//! | `crmonban.offence` | number | 1 for the target's first ban, 2 for its second, ... |
//! | `crmonban.duration_secs` | number | the ban's length in seconds (left out above 2^63 - 1, which Elasticsearch's `long` cannot hold) |
//! | `crmonban.expires_at` | string | the ban's end, RFC 3339 UTC in whole seconds |
//! | `crmonban.permanent` | boolean | ban added only |
//! | `crmonban.intel` | string | the address's intel summary |
//!
//! Free text is cut with [`crate::clip`]; empty text is left out. serde_json escapes the C0
//! controls (`\n`, `\u0001`, ...); DEL and the C1 controls, which JSON allows raw, are written
//! as `\u007f`, `\u0085`, ... as well, so the line holds no control character at all.

use std::fmt::Write as _;

use crmonban_core::Target;
use serde_json::{Map, Value};

use super::rfc5424::{present, sentence, time};
use crate::{Action, Origin, SiemEvent, clip};

/// The ECS version the field names follow.
pub const ECS_VERSION: &str = "8.17.0";

/// The version of crmonban's JSON schema (`crmonban.schema`).
pub const SCHEMA_VERSION: u32 = 1;

/// `event` as one JSON object on one line, no line ending.
pub fn encode(event: &SiemEvent, origin: &Origin) -> String {
    let mut root = Map::new();
    if let Some(at) = time::rfc3339_micros(event.at_micros) {
        root.insert("@timestamp".into(), at.into());
    }
    root.insert("ecs".into(), object([("version", ECS_VERSION.into())]));
    root.insert("event".into(), Value::Object(event_fields(event)));
    if let Some(target) = event.target {
        let mut source = Map::new();
        source.insert("address".into(), target.to_string().into());
        if let Target::Addr(ip) = target {
            source.insert("ip".into(), ip.to_string().into());
            root.insert(
                "related".into(),
                object([("ip", Value::Array(vec![ip.to_string().into()]))]),
            );
        }
        root.insert("source".into(), Value::Object(source));
    }
    if let Some(port) = event.port {
        root.insert("destination".into(), object([("port", port.into())]));
    }
    if let Some(service) = present(&event.service) {
        root.insert("service".into(), object([("name", service.into())]));
    }
    root.insert(
        "observer".into(),
        object([
            ("hostname", origin.hostname.as_str().into()),
            ("product", "crmonban".into()),
            ("vendor", "crmonban".into()),
            ("version", origin.version.as_str().into()),
            ("type", "ips".into()),
        ]),
    );
    root.insert("message".into(), sentence(event, origin).into());
    root.insert("crmonban".into(), Value::Object(crmonban_fields(event)));
    without_raw_controls(Value::Object(root).to_string())
}

/// The `event.*` object.
fn event_fields(event: &SiemEvent) -> Map<String, Value> {
    let (kind, categories, types): (&str, &[&str], &[&str]) = match event.action {
        Action::BanAdded => ("alert", &["intrusion_detection", "network"], &["denied"]),
        Action::AttackDetected => ("alert", &["intrusion_detection"], &["info"]),
        Action::BanRemoved => ("event", &["configuration"], &["deletion"]),
        Action::WhitelistAdded => ("event", &["configuration"], &["creation"]),
        Action::WhitelistRemoved => ("event", &["configuration"], &["deletion"]),
        Action::DaemonStarted => ("event", &["process"], &["start"]),
        Action::DaemonStopping => ("event", &["process"], &["end"]),
    };
    let mut fields = Map::new();
    fields.insert("kind".into(), kind.into());
    fields.insert("category".into(), strings(categories));
    fields.insert("type".into(), strings(types));
    fields.insert("action".into(), event.action.id().into());
    fields.insert("severity".into(), event.action.severity().into());
    fields.insert("module".into(), "crmonban".into());
    fields.insert("dataset".into(), "crmonban.events".into());
    if !event.reason.is_empty() {
        fields.insert("reason".into(), clip(&event.reason).into());
    }
    if event.action == Action::BanAdded {
        if let Some(start) = time::rfc3339_micros(event.at_micros) {
            fields.insert("start".into(), start.into());
        }
        if let Some(end) = event.expires_at.and_then(time::rfc3339_secs) {
            fields.insert("end".into(), end.into());
        }
        if let Some(nanos) = event
            .duration_secs
            .and_then(|s| s.checked_mul(1_000_000_000))
        {
            fields.insert("duration".into(), nanos.into());
        }
    }
    fields
}

/// The `crmonban.*` object.
fn crmonban_fields(event: &SiemEvent) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("schema".into(), SCHEMA_VERSION.into());
    if let Some(target) = event.target {
        fields.insert("target".into(), target.to_string().into());
    }
    if let Some(port) = event.port {
        fields.insert("port".into(), port.into());
    }
    if let Some(source) = present(&event.source) {
        fields.insert("source".into(), source.into());
    }
    if let Some(kind) = present(&event.attack_kind) {
        fields.insert("attack_kind".into(), kind.into());
    }
    fields.insert("count".into(), event.count.into());
    if let Some(offence) = event.offence {
        fields.insert("offence".into(), offence.into());
    }
    // Elasticsearch stores integers as signed 64-bit `long`: a longer ban is no length.
    if let Some(secs) = event.duration_secs.filter(|s| i64::try_from(*s).is_ok()) {
        fields.insert("duration_secs".into(), secs.into());
    }
    if let Some(end) = event.expires_at.and_then(time::rfc3339_secs) {
        fields.insert("expires_at".into(), end.into());
    }
    if event.action == Action::BanAdded {
        fields.insert("permanent".into(), event.is_permanent_ban().into());
    }
    if let Some(intel) = present(&event.intel) {
        fields.insert("intel".into(), intel.into());
    }
    fields
}

fn object<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    )
}

fn strings(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| Value::from(*s)).collect())
}

/// `json` with DEL and C1 control characters written as `\uXXXX`. They can only occur inside
/// strings (JSON's own syntax is printable ASCII), where the escape means the same character.
fn without_raw_controls(json: String) -> String {
    if !json.chars().any(char::is_control) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if c.is_control() {
            // Writing into a String cannot fail.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// `json` with every non-ASCII character written as a `\uXXXX` escape (UTF-16, surrogate
/// pairs beyond the BMP): the same JSON value in pure ASCII, for transports that would
/// otherwise have to mark UTF-8 (syslog's BOM). Non-ASCII text occurs only inside strings,
/// where the escape means the same character.
pub fn to_ascii(json: &str) -> std::borrow::Cow<'_, str> {
    if json.is_ascii() {
        return std::borrow::Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                // Writing into a String cannot fail.
                let _ = std::fmt::Write::write_fmt(&mut out, format_args!("\\u{unit:04x}"));
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
