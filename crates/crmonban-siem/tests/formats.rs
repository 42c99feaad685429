//! The four encoders checked from the outside:
//! - golden files, compared byte for byte (`CRMONBAN_BLESS=1 cargo test` rewrites them after a
//!   deliberate change; review the diff);
//! - independent parsers (`tests/parsers`, written from the specifications) reading back every
//!   field of hand-picked and generated hostile events: what a SIEM would see;
//! - the rules every line obeys: one line, no control character (LEEF's tab delimiter
//!   excepted), RFC 5424 header fields within their lengths.
//!
//! Free text comes back exactly, up to [`clip`] and the documented visible form of control
//! characters (`#` and three octal digits) in the formats that cannot carry them.

mod parsers;

use std::fs;
use std::net::IpAddr;
use std::path::Path;

use crmonban_core::Target;
use crmonban_siem::format::{self, SiemFormat, Wrap, cef, json, leef, rfc5424};
use crmonban_siem::{Action, MAX_TEXT_BYTES, Origin, SiemEvent, clip};
use proptest::prelude::*;
use serde_json::{Value, json};

use parsers::civil;

/// 2026-11-25T16:19:59.123456Z.
const AT: i64 = 1_795_623_599_123_456;

fn origin() -> Origin {
    Origin {
        hostname: "web1.example.net".to_owned(),
        app_name: "crmonband".to_owned(),
        procid: 4242,
        version: "0.1.0".to_owned(),
    }
}

fn target(text: &str) -> Option<Target> {
    Some(Target::parse(text).expect(text))
}

fn ban(target_text: &str, secs: Option<u64>) -> SiemEvent {
    let mut event = SiemEvent::new(Action::BanAdded, AT);
    event.target = target(target_text);
    event.service = Some("ssh".to_owned());
    event.source = Some("detector".to_owned());
    event.reason = "5 failed logins within 600 s".to_owned();
    if let Some(secs) = secs {
        event.duration_secs = Some(secs);
        event.expires_at = Some(AT / 1_000_000 + secs as i64);
    }
    event.offence = Some(1);
    event.port = Some(22);
    event.intel = Some("DE, AS24940 Hetzner Online GmbH, hosting".to_owned());
    event
}

fn with_reason(mut event: SiemEvent, reason: &str) -> SiemEvent {
    event.reason = reason.to_owned();
    event
}

/// Every action, then every kind of target and hostile text.
fn cases() -> Vec<(&'static str, SiemEvent, Origin)> {
    let mut removed = SiemEvent::new(Action::BanRemoved, AT);
    removed.target = target("203.0.113.5");
    removed.service = Some("ssh".to_owned());
    removed.source = Some("dbus".to_owned());
    removed.reason = "lifted by an operator".to_owned();

    let mut attack = SiemEvent::new(Action::AttackDetected, AT);
    attack.target = target("198.51.100.23");
    attack.service = Some("nginx".to_owned());
    attack.attack_kind = Some("failed_auth".to_owned());
    attack.count = 3;
    attack.port = Some(443);
    attack.reason = "POST /wp-login.php 401".to_owned();

    let mut whitelisted = SiemEvent::new(Action::WhitelistAdded, AT);
    whitelisted.target = target("10.0.0.0/8");
    whitelisted.reason = "office network".to_owned();

    let mut unlisted = SiemEvent::new(Action::WhitelistRemoved, AT);
    unlisted.target = target("2001:db8:1::/48");

    let started = with_reason(
        SiemEvent::new(Action::DaemonStarted, AT),
        "restored 12 bans",
    );
    let stopping = with_reason(SiemEvent::new(Action::DaemonStopping, AT), "SIGTERM");

    let mut permanent_v6 = ban("2001:db8::dead:beef", None);
    permanent_v6.offence = Some(3);
    permanent_v6.intel = None;

    let mut hostile_fields = ban("203.0.113.9", Some(60));
    hostile_fields.service = Some("ssh\"] [x@1 a=\"b\"]\n".to_owned());
    hostile_fields.attack_kind = Some("kind=|\tsev=10".to_owned());
    hostile_fields.source = Some("fleet:web1\\evil".to_owned());
    hostile_fields.intel = Some("AS1 \"Evil] Corp\"\r\nsev=10 é".to_owned());

    let hostile_origin = Origin {
        hostname: "bad host é\n".to_owned(),
        app_name: "crmon band".to_owned(),
        procid: 1,
        version: "0.1.0|beta\\1\n".to_owned(),
    };

    let mut far_future = ban("203.0.113.7", Some(u64::MAX));
    far_future.at_micros = i64::MAX;
    far_future.expires_at = Some(i64::MAX);

    let mut empty_text = SiemEvent::new(Action::AttackDetected, 0);
    empty_text.target = target("192.0.2.1");
    empty_text.service = Some(String::new());
    empty_text.attack_kind = Some(String::new());
    empty_text.intel = Some(String::new());

    let long = format!("{}{}", "A".repeat(4000), "é日🎉".repeat(700));
    assert!(long.len() > 10_000);

    vec![
        (
            "ban added, timed, IPv4",
            ban("203.0.113.5", Some(600)),
            origin(),
        ),
        ("ban removed", removed, origin()),
        ("attack detected, coalesced", attack, origin()),
        ("whitelist added, IPv4 network", whitelisted, origin()),
        (
            "whitelist removed, IPv6 network, no reason",
            unlisted,
            origin(),
        ),
        ("daemon started", started, origin()),
        ("daemon stopping", stopping, origin()),
        ("ban added, permanent, IPv6", permanent_v6, origin()),
        (
            "ban added, timed, IPv4 network",
            ban("192.0.2.0/24", Some(86_400)),
            origin(),
        ),
        (
            "ban added, permanent, IPv6 network",
            ban("2001:db8:dead::/64", None),
            origin(),
        ),
        (
            "address-like user names and delimiters in the reason",
            with_reason(
                ban("203.0.113.9", Some(600)),
                "invalid user 10.0.0.1 from 203.0.113.9 src=6.6.6.6 a=b|c]d\"e\\f \\= \\\\",
            ),
            origin(),
        ),
        (
            "line breaks in the reason",
            with_reason(
                ban("203.0.113.9", Some(600)),
                "first\nCEF:0|forged|x|1|ban-added|Ban added|10|src=6.6.6.6\r\n<13>1 - forged - - - - msg\rlast",
            ),
            origin(),
        ),
        (
            "tabs in the reason",
            with_reason(
                ban("203.0.113.9", Some(600)),
                "a\tsrc=6.6.6.6\tsev=10\tcat=forged",
            ),
            origin(),
        ),
        (
            "non-ASCII reason",
            with_reason(
                ban("203.0.113.9", Some(600)),
                "utilisateur é, 日本語, 🎉 emoji",
            ),
            origin(),
        ),
        (
            "C0 and C1 controls in the reason",
            with_reason(
                ban("203.0.113.9", Some(600)),
                "nul\u{0}bel\u{7}esc\u{1b}[31mdel\u{7f}nel\u{85}csi\u{9b}apc\u{9f}end",
            ),
            origin(),
        ),
        (
            "10 kB reason, clipped",
            with_reason(ban("203.0.113.9", Some(600)), &long),
            origin(),
        ),
        (
            "hostile service, kind, source and intel",
            hostile_fields,
            origin(),
        ),
        (
            "hostile origin",
            with_reason(SiemEvent::new(Action::DaemonStarted, AT), "x"),
            hostile_origin,
        ),
        (
            "before the epoch",
            with_reason(SiemEvent::new(Action::DaemonStopping, -1), ""),
            origin(),
        ),
        ("clock beyond year 9999", far_future, origin()),
        ("empty optional text", empty_text, origin()),
    ]
}

// ---------------------------------------------------------------------------------------
// Golden files.

fn golden(file: &str, content: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(file);
    if std::env::var_os("CRMONBAN_BLESS").is_some_and(|v| v == "1") {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        return;
    }
    let expected = fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with CRMONBAN_BLESS=1 to write it",
            path.display()
        )
    });
    if expected == content.as_bytes() {
        return;
    }
    let expected = String::from_utf8_lossy(&expected);
    let differs = expected
        .lines()
        .zip(content.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b);
    match differs {
        Some((n, (want, got))) => panic!(
            "{} differs at line {}:\n  golden:  {want:?}\n  encoded: {got:?}\n(CRMONBAN_BLESS=1 rewrites it after a deliberate change)",
            path.display(),
            n + 1
        ),
        None => panic!(
            "{}: {} lines in the golden file, {} encoded",
            path.display(),
            expected.lines().count(),
            content.lines().count()
        ),
    }
}

fn golden_of(encode: impl Fn(&SiemEvent, &Origin) -> String) -> String {
    let mut out = String::new();
    for (name, event, origin) in cases() {
        let line = encode(&event, &origin);
        assert!(!line.contains(['\n', '\r']), "{name}: {line:?}");
        out.push_str(&format!("# {name}\n{line}\n"));
    }
    out
}

#[test]
fn cef_matches_its_golden_file() {
    golden("cef.golden", &golden_of(cef::encode));
}

#[test]
fn leef_matches_its_golden_file() {
    golden("leef.golden", &golden_of(leef::encode));
}

#[test]
fn syslog_matches_its_golden_file() {
    golden(
        "syslog.golden",
        &golden_of(|e, o| rfc5424::encode(e, o, rfc5424::DEFAULT_FACILITY)),
    );
}

#[test]
fn json_matches_its_golden_file() {
    golden("json.golden", &golden_of(json::encode));
}

#[test]
fn syslog_wrapping_matches_its_golden_file() {
    let mut out = String::new();
    for (name, event, origin) in cases() {
        for (format, body) in [
            ("cef", cef::encode(&event, &origin)),
            ("leef", leef::encode(&event, &origin)),
            ("json", json::encode(&event, &origin)),
        ] {
            let line = rfc5424::wrap(&event, &origin, 10, &body);
            out.push_str(&format!("# {name} / {format}\n{line}\n"));
        }
    }
    golden("wrap.golden", &out);
}

// ---------------------------------------------------------------------------------------
// What every format must give back.

/// `text` with control characters (except `keep`) in the documented visible form.
fn visible(text: &str, keep: &[char]) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && !keep.contains(&c) {
                format!("#{:03o}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Optional free text as the encoders write it: absent when empty, clipped.
fn text(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| clip(t).into_owned())
}

fn reason(event: &SiemEvent) -> Option<String> {
    text(&Some(event.reason.clone()))
}

fn in_calendar(at_micros: i64) -> bool {
    (civil::FIRST_MICROS..=civil::LAST_MICROS).contains(&at_micros)
}

fn assert_one_line(line: &str, tab_allowed: bool) {
    for c in line.chars() {
        assert!(
            !c.is_control() || (tab_allowed && c == '\t'),
            "control character {c:?} in {line:?}"
        );
    }
}

fn pairs(list: &[(&str, String)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// The sentence of syslog's MSG and ECS `message`, as the format documentation gives it.
fn sentence(event: &SiemEvent, origin: &Origin) -> String {
    let target = event.target.map_or("-".to_owned(), |t| t.to_string());
    let mut sentence = match event.action {
        Action::BanAdded => match (event.duration_secs, event.expires_at) {
            (Some(secs), _) => format!("banned {target} for {secs} s"),
            (None, Some(end)) => match civil::format_rfc3339_secs(end) {
                Some(end) => format!("banned {target} until {end}"),
                None => format!("banned {target}"),
            },
            (None, None) => format!("banned {target} permanently"),
        },
        Action::BanRemoved => format!("unbanned {target}"),
        Action::AttackDetected => format!(
            "detected {} from {target}",
            text(&event.attack_kind).unwrap_or("attack".to_owned())
        ),
        Action::WhitelistAdded => format!("whitelisted {target}"),
        Action::WhitelistRemoved => format!("removed {target} from the whitelist"),
        Action::DaemonStarted => format!("{} started", origin.app_name),
        Action::DaemonStopping => format!("{} stopping", origin.app_name),
    };
    if event.count > 1 {
        sentence.push_str(&format!(" ({} times)", event.count));
    }
    if let Some(service) = text(&event.service) {
        sentence.push_str(&format!(" ({service})"));
    }
    if let Some(reason) = reason(event) {
        sentence.push_str(&format!(": {reason}"));
    }
    sentence
}

fn check_cef(event: &SiemEvent, origin: &Origin) {
    let line = cef::encode(event, origin);
    assert_one_line(&line, false);
    let parsed = parsers::cef::parse(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(
        [
            parsed.version.as_str(),
            &parsed.vendor,
            &parsed.product,
            &parsed.class_id,
            &parsed.name,
            &parsed.severity
        ],
        [
            "0",
            "crmonban",
            "crmonban",
            event.action.id(),
            event.action.name(),
            &event.action.severity().to_string()
        ],
    );
    assert_eq!(parsed.device_version, visible(&origin.version, &[]));

    let value = |t: &str| visible(t, &['\n', '\r']);
    let mut want: Vec<(&str, String)> = vec![
        ("rt", event.at_micros.div_euclid(1000).to_string()),
        (
            "act",
            match event.action {
                Action::BanAdded => "ban",
                Action::BanRemoved => "unban",
                Action::AttackDetected => "detect",
                Action::WhitelistAdded => "whitelist-add",
                Action::WhitelistRemoved => "whitelist-remove",
                Action::DaemonStarted => "start",
                Action::DaemonStopping => "stop",
            }
            .to_owned(),
        ),
    ];
    match event.target {
        Some(Target::Addr(IpAddr::V4(ip))) => want.push(("src", ip.to_string())),
        Some(Target::Addr(IpAddr::V6(ip))) => {
            want.push(("c6a2", ip.to_string()));
            want.push(("c6a2Label", "Source IPv6 Address".to_owned()));
        }
        _ => {}
    }
    if let Some(port) = event.port {
        want.push(("dpt", port.to_string()));
    }
    if let Some(service) = text(&event.service) {
        want.push(("destinationServiceName", value(&service)));
    }
    if let Some(reason) = reason(event) {
        want.push(("reason", value(&reason)));
    }
    let custom = [
        ("cs1", "Ban Source", text(&event.source)),
        ("cs2", "Attack Kind", text(&event.attack_kind)),
        ("cs3", "Intel", text(&event.intel)),
        ("cs4", "Target", event.target.map(|t| t.to_string())),
        (
            "cs5",
            "Ban Type",
            (event.action == Action::BanAdded).then(|| {
                if event.expires_at.is_none() {
                    "permanent".to_owned()
                } else {
                    "timed".to_owned()
                }
            }),
        ),
        (
            "cn1",
            "Ban Duration Seconds",
            event
                .duration_secs
                .filter(|s| *s <= i64::MAX as u64)
                .map(|s| s.to_string()),
        ),
        ("cn2", "Offence", event.offence.map(|o| o.to_string())),
    ];
    let labels: Vec<String> = custom.iter().map(|(k, _, _)| format!("{k}Label")).collect();
    for ((key, label, content), label_key) in custom.iter().zip(&labels) {
        if let Some(content) = content {
            want.push((label_key.as_str(), (*label).to_owned()));
            want.push((*key, value(content)));
        }
    }
    if let Some(end) = event.expires_at.and_then(|e| e.checked_mul(1000)) {
        want.push(("end", end.to_string()));
    }
    want.push(("dvchost", value(&origin.hostname)));
    want.push(("dvcpid", origin.procid.to_string()));
    want.push(("deviceProcessName", value(&origin.app_name)));
    want.push(("cnt", event.count.to_string()));
    assert_eq!(parsed.extension, pairs(&want), "{line}");
}

fn check_leef(event: &SiemEvent, origin: &Origin) {
    let line = leef::encode(event, origin);
    assert_one_line(&line, true);
    let parsed = parsers::leef::parse(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let header = |t: &str| {
        t.chars()
            .map(|c| {
                if c == '|' {
                    "#174".to_owned()
                } else {
                    visible(&c.to_string(), &[])
                }
            })
            .collect::<String>()
    };
    assert_eq!(
        [
            parsed.version.as_str(),
            &parsed.vendor,
            &parsed.product,
            &parsed.product_version,
            &parsed.event_id
        ],
        [
            "2.0",
            "crmonban",
            "crmonban",
            &header(&origin.version),
            event.action.id()
        ]
    );
    // The header declares the tab, and nothing before the attributes holds one.
    assert_eq!(parsed.delimiter, '\t');
    let header_end = line.match_indices('|').nth(5).unwrap().0;
    assert!(line[..header_end].ends_with("|x09") && !line[..header_end].contains('\t'));

    let mut attributes = parsed.attributes.clone();
    if in_calendar(event.at_micros) {
        let (time, format) = (attributes.remove(0), attributes.remove(0));
        assert_eq!(time.0, "devTime");
        assert_eq!(
            civil::leef_millis(&time.1),
            Some(event.at_micros.div_euclid(1000)),
            "{time:?}"
        );
        assert_eq!(
            format,
            (
                "devTimeFormat".to_owned(),
                "MMM dd yyyy HH:mm:ss.SSS z".to_owned()
            )
        );
    }
    let value = |t: &str| visible(t, &[]);
    let mut want: Vec<(&str, String)> = vec![
        ("cat", event.action.id().to_owned()),
        ("sev", event.action.severity().clamp(1, 10).to_string()),
    ];
    if let Some(Target::Addr(ip)) = event.target {
        want.push(("src", ip.to_string()));
    }
    if let Some(port) = event.port {
        want.push(("dstPort", port.to_string()));
    }
    if let Some(target) = event.target {
        want.push(("target", target.to_string()));
    }
    for (key, content) in [
        ("service", text(&event.service)),
        ("attackKind", text(&event.attack_kind)),
        ("source", text(&event.source)),
        ("reason", reason(event)),
    ] {
        if let Some(content) = content {
            want.push((key, value(&content)));
        }
    }
    if let Some(secs) = event.duration_secs {
        want.push(("duration", secs.to_string()));
    }
    if let Some(end) = event.expires_at.and_then(civil::format_rfc3339_secs) {
        want.push(("expiresAt", end));
    }
    if event.action == Action::BanAdded {
        want.push(("permanent", event.expires_at.is_none().to_string()));
    }
    if let Some(offence) = event.offence {
        want.push(("offence", offence.to_string()));
    }
    want.push(("count", event.count.to_string()));
    if let Some(intel) = text(&event.intel) {
        want.push(("intel", value(&intel)));
    }
    want.push(("devHost", value(&origin.hostname)));
    assert_eq!(attributes, pairs(&want), "{line}");
}

fn check_syslog(event: &SiemEvent, origin: &Origin, facility: u8) {
    let line = rfc5424::encode(event, origin, facility);
    assert_one_line(&line, false);
    let parsed = parsers::syslog::parse(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(
        parsed.prival,
        facility * 8 + event.action.syslog_severity(),
        "{line}"
    );
    assert_eq!(parsed.version, "1");
    match &parsed.timestamp {
        Some(ts) => assert_eq!(civil::rfc3339_micros(ts), Some(event.at_micros), "{ts}"),
        None => assert!(!in_calendar(event.at_micros), "{line}"),
    }
    assert_eq!(parsed.procid, Some(origin.procid.to_string()));
    assert_eq!(parsed.msgid.as_deref(), Some(event.action.id()));
    // Clean names pass unchanged (the parser has checked the others' lengths and characters);
    // `-` alone is the NILVALUE, which a parser reads as no name.
    let clean =
        |name: &str| !name.is_empty() && name != "-" && name.bytes().all(|b| b.is_ascii_graphic());
    if clean(&origin.hostname) && origin.hostname.len() <= 255 {
        assert_eq!(parsed.hostname.as_deref(), Some(origin.hostname.as_str()));
    }
    if clean(&origin.app_name) && origin.app_name.len() <= 48 {
        assert_eq!(parsed.app_name.as_deref(), Some(origin.app_name.as_str()));
    }

    let [element] = &parsed.structured_data[..] else {
        panic!("one SD-ELEMENT expected: {line}");
    };
    assert_eq!(element.id, "crmonban@32473");
    let value = |t: &str| visible(t, &[]);
    let mut want: Vec<(&str, String)> = vec![("action", event.action.id().to_owned())];
    if let Some(target) = event.target {
        want.push(("target", target.to_string()));
        if let Target::Addr(ip) = target {
            want.push(("ip", ip.to_string()));
        }
    }
    if let Some(service) = text(&event.service) {
        want.push(("service", value(&service)));
    }
    if let Some(port) = event.port {
        want.push(("port", port.to_string()));
    }
    for (key, content) in [
        ("kind", text(&event.attack_kind)),
        ("source", text(&event.source)),
        ("reason", reason(event)),
    ] {
        if let Some(content) = content {
            want.push((key, value(&content)));
        }
    }
    if let Some(secs) = event.duration_secs {
        want.push(("duration", secs.to_string()));
    }
    if let Some(end) = event.expires_at.and_then(civil::format_rfc3339_secs) {
        want.push(("expires", end));
    }
    if event.action == Action::BanAdded {
        want.push(("permanent", event.expires_at.is_none().to_string()));
    }
    if let Some(offence) = event.offence {
        want.push(("offence", offence.to_string()));
    }
    want.push(("count", event.count.to_string()));
    if let Some(intel) = text(&event.intel) {
        want.push(("intel", value(&intel)));
    }
    assert_eq!(element.params, pairs(&want), "{line}");

    let msg = visible(&sentence(event, origin), &[]);
    assert_eq!(
        parsed.msg,
        Some(parsers::syslog::Msg {
            bom: !msg.is_ascii(),
            text: msg
        }),
        "{line}"
    );
}

fn check_json(event: &SiemEvent, origin: &Origin) {
    let line = json::encode(event, origin);
    assert_one_line(&line, false);
    let parsed: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));

    let (kind, category, kinds): (&str, &[&str], &[&str]) = match event.action {
        Action::BanAdded => ("alert", &["intrusion_detection", "network"], &["denied"]),
        Action::AttackDetected => ("alert", &["intrusion_detection"], &["info"]),
        Action::BanRemoved => ("event", &["configuration"], &["deletion"]),
        Action::WhitelistAdded => ("event", &["configuration"], &["creation"]),
        Action::WhitelistRemoved => ("event", &["configuration"], &["deletion"]),
        Action::DaemonStarted => ("event", &["process"], &["start"]),
        Action::DaemonStopping => ("event", &["process"], &["end"]),
    };
    let mut want = json!({
        "ecs": { "version": "8.17.0" },
        "event": {
            "kind": kind,
            "category": category,
            "type": kinds,
            "action": event.action.id(),
            "severity": event.action.severity(),
            "module": "crmonban",
            "dataset": "crmonban.events",
        },
        "observer": {
            "hostname": origin.hostname,
            "product": "crmonban",
            "vendor": "crmonban",
            "version": origin.version,
            "type": "ips",
        },
        "message": sentence(event, origin),
        "crmonban": { "schema": 1, "count": event.count },
    });
    match parsed.get("@timestamp").and_then(Value::as_str) {
        Some(at) => {
            assert_eq!(civil::rfc3339_micros(at), Some(event.at_micros), "{at}");
            want["@timestamp"] = json!(at);
            if event.action == Action::BanAdded {
                want["event"]["start"] = json!(at);
            }
        }
        None => assert!(!in_calendar(event.at_micros), "{line}"),
    }
    if let Some(reason) = reason(event) {
        want["event"]["reason"] = json!(reason);
    }
    if let Some(target) = event.target {
        want["source"] = json!({ "address": target.to_string() });
        want["crmonban"]["target"] = json!(target.to_string());
        if let Target::Addr(ip) = target {
            want["source"]["ip"] = json!(ip.to_string());
            want["related"] = json!({ "ip": [ip.to_string()] });
        }
    }
    if let Some(port) = event.port {
        want["destination"] = json!({ "port": port });
        want["crmonban"]["port"] = json!(port);
    }
    if let Some(service) = text(&event.service) {
        want["service"] = json!({ "name": service });
    }
    if let Some(source) = text(&event.source) {
        want["crmonban"]["source"] = json!(source);
    }
    if let Some(kind) = text(&event.attack_kind) {
        want["crmonban"]["attack_kind"] = json!(kind);
    }
    if let Some(offence) = event.offence {
        want["crmonban"]["offence"] = json!(offence);
    }
    if let Some(secs) = event.duration_secs.filter(|s| *s <= i64::MAX as u64) {
        want["crmonban"]["duration_secs"] = json!(secs);
    }
    if let Some(end) = event.expires_at.and_then(civil::format_rfc3339_secs) {
        want["crmonban"]["expires_at"] = json!(end);
        if event.action == Action::BanAdded {
            want["event"]["end"] = json!(end);
        }
    }
    if event.action == Action::BanAdded {
        want["crmonban"]["permanent"] = json!(event.expires_at.is_none());
        if let Some(nanos) = event
            .duration_secs
            .and_then(|s| s.checked_mul(1_000_000_000))
        {
            want["event"]["duration"] = json!(nanos);
        }
    }
    if let Some(intel) = text(&event.intel) {
        want["crmonban"]["intel"] = json!(intel);
    }
    assert_eq!(parsed, want, "{line}");
}

fn check_wrap(event: &SiemEvent, origin: &Origin) {
    for (kind, body) in [
        (SiemFormat::Cef, cef::encode(event, origin)),
        (SiemFormat::Leef, leef::encode(event, origin)),
        (SiemFormat::Json, json::encode(event, origin)),
    ] {
        let line = rfc5424::wrap(event, origin, 10, &body);
        assert_one_line(&line, kind == SiemFormat::Leef);
        let parsed = parsers::syslog::parse(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert_eq!(parsed.prival, 80 + event.action.syslog_severity());
        assert_eq!(parsed.msgid.as_deref(), Some(event.action.id()));
        assert!(parsed.structured_data.is_empty(), "{line}");
        // A body in its own format is MSG-ANY: no BOM in front of `CEF:`, `LEEF:` or `{`.
        assert_eq!(
            parsed.msg,
            Some(parsers::syslog::Msg {
                bom: false,
                text: body.clone()
            })
        );
        // `render` is the one entry point the sinks use; it writes JSON for syslog in ASCII,
        // the same value.
        let rendered = format::render(kind, event, origin, Wrap::Syslog { facility: 10 });
        if kind == SiemFormat::Json {
            let parsed = parsers::syslog::parse(&rendered).unwrap();
            let msg = parsed.msg.unwrap();
            assert!(!msg.bom && msg.text.is_ascii(), "{rendered}");
            let value: Value = serde_json::from_str(&msg.text).unwrap();
            assert_eq!(value, serde_json::from_str::<Value>(&body).unwrap());
        } else {
            assert_eq!(rendered, line);
        }
        assert_eq!(format::render(kind, event, origin, Wrap::Bare), body);
    }
    assert_eq!(
        format::render(SiemFormat::Syslog, event, origin, Wrap::Bare),
        rfc5424::encode(event, origin, rfc5424::DEFAULT_FACILITY)
    );
}

fn check_all(event: &SiemEvent, origin: &Origin) {
    check_cef(event, origin);
    check_leef(event, origin);
    check_syslog(event, origin, rfc5424::DEFAULT_FACILITY);
    check_syslog(event, origin, 23);
    check_json(event, origin);
    check_wrap(event, origin);
}

#[test]
fn every_case_reads_back_through_independent_parsers() {
    for (name, event, origin) in cases() {
        eprintln!("case: {name}");
        check_all(&event, &origin);
    }
}

#[test]
fn a_10_kb_reason_is_clipped_in_every_format() {
    let event = with_reason(ban("203.0.113.9", Some(600)), &"x".repeat(10_240));
    let clipped = clip(&event.reason);
    assert!(clipped.len() <= MAX_TEXT_BYTES && clipped.ends_with(" bytes]"));
    // CEF and LEEF carry the reason once; JSON (event.reason, message) and syslog (the
    // structured data, the sentence) twice. The marker's final `]` is escaped in syslog's
    // structured data.
    let kept = clipped.strip_suffix(']').unwrap();
    for (line, times) in [
        (cef::encode(&event, &origin()), 1),
        (leef::encode(&event, &origin()), 1),
        (json::encode(&event, &origin()), 2),
        (rfc5424::encode(&event, &origin(), 4), 2),
    ] {
        assert_eq!(line.matches(kept).count(), times, "{line}");
        assert!(line.len() < (times + 1) * MAX_TEXT_BYTES, "{}", line.len());
    }
}

#[test]
fn forged_fields_in_free_text_stay_inside_their_value() {
    let event = with_reason(
        ban("203.0.113.9", Some(600)),
        "x src=6.6.6.6 cnt=99\tsev=10\tsrc=6.6.6.6\" ip=\"6.6.6.6\"] [evil@1 a=\"b\"]\n<13>1 -",
    );
    let cef = parsers::cef::parse(&cef::encode(&event, &origin())).unwrap();
    let cef_src: Vec<_> = cef
        .extension
        .iter()
        .filter(|(k, _)| k == "src" || k == "cnt")
        .collect();
    assert_eq!(
        cef_src,
        [
            &("src".to_owned(), "203.0.113.9".to_owned()),
            &("cnt".to_owned(), "1".to_owned())
        ]
    );
    let leef = parsers::leef::parse(&leef::encode(&event, &origin())).unwrap();
    let leef_src: Vec<_> = leef
        .attributes
        .iter()
        .filter(|(k, _)| k == "src" || k == "sev")
        .collect();
    assert_eq!(
        leef_src,
        [
            &("sev".to_owned(), "7".to_owned()),
            &("src".to_owned(), "203.0.113.9".to_owned())
        ]
    );
    let syslog = parsers::syslog::parse(&rfc5424::encode(&event, &origin(), 4)).unwrap();
    assert_eq!(syslog.structured_data.len(), 1);
    let ips: Vec<_> = syslog.structured_data[0]
        .params
        .iter()
        .filter(|(k, _)| k == "ip")
        .collect();
    assert_eq!(ips, [&("ip".to_owned(), "203.0.113.9".to_owned())]);
    let json: Value = serde_json::from_str(&json::encode(&event, &origin())).unwrap();
    assert_eq!(json["source"]["ip"], "203.0.113.9");
    assert_eq!(json["event"]["reason"], event.reason.as_str());
}

// ---------------------------------------------------------------------------------------
// Generated hostile events.

fn hostile_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => (0x20u8..0x7f).prop_map(char::from),
        4 => prop::sample::select(vec![
            '=', '|', ']', '[', '"', '\\', '\n', '\r', '\t', ' ', '#', '\0', '\u{1b}', '\u{7f}',
            '\u{85}', '\u{9f}', 'é', '日', '🎉', '\u{feff}', '\u{2028}',
        ]),
        1 => any::<char>(),
    ]
}

fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::collection::vec(hostile_char(), 0..48).prop_map(String::from_iter),
        1 => (prop::collection::vec(hostile_char(), 1..6), 400usize..3000)
            .prop_map(|(chunk, n)| chunk.iter().cycle().take(n).collect()),
    ]
}

fn hostile_target() -> impl Strategy<Value = Option<Target>> {
    prop_oneof![
        Just(None),
        any::<u32>().prop_map(|a| target(&std::net::Ipv4Addr::from(a).to_string())),
        any::<u128>().prop_map(|a| target(&std::net::Ipv6Addr::from(a).to_string())),
        (any::<u32>(), 0u8..=32)
            .prop_map(|(a, p)| target(&format!("{}/{p}", std::net::Ipv4Addr::from(a)))),
        (any::<u128>(), 0u8..=128)
            .prop_map(|(a, p)| target(&format!("{}/{p}", std::net::Ipv6Addr::from(a)))),
    ]
}

prop_compose! {
    fn hostile_event()(
        action in prop::sample::select(Action::ALL.to_vec()),
        at_micros in prop_oneof![
            4 => civil::FIRST_MICROS..=civil::LAST_MICROS,
            1 => any::<i64>(),
        ],
        target in hostile_target(),
        service in prop::option::of(hostile_text()),
        attack_kind in prop::option::of(hostile_text()),
        source in prop::option::of(hostile_text()),
        reason in hostile_text(),
        duration_secs in prop::option::of(any::<u64>()),
        expires_at in prop::option::of(prop_oneof![0i64..5_000_000_000, any::<i64>()]),
        offence in prop::option::of(any::<u32>()),
        count in 1u32..,
        intel in prop::option::of(hostile_text()),
        port in prop::option::of(any::<u16>()),
    ) -> SiemEvent {
        SiemEvent {
            at_micros, action, target, service, attack_kind, source, reason, duration_secs,
            expires_at, offence, count, intel, port,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn hostile_events_read_back_exactly_up_to_clip_and_visible_controls(
        event in hostile_event(),
        hostname in hostile_text(),
        version in hostile_text(),
    ) {
        let origin = Origin::new(&hostname, &version);
        check_all(&event, &origin);
    }
}
