//! `explain` over a mixed file: exact JSON lines, summary counts, human and summary modes,
//! over-long lines and stdin-like readers.

use std::io::Cursor;

use crmonban_core::config::{BanDuration, ServiceConfig};
use crmonban_detect::explain::{self, ExplainContext, ExplainMode};
use crmonban_detect::matcher::LineContext;

// 2026-11-26T00:00:00Z
const NOW: i64 = 1_795_651_200;

fn ssh() -> ServiceConfig {
    let mut c = ServiceConfig::builtin("ssh", BanDuration::from_secs(3600)).unwrap();
    c.max_failures = 3;
    c
}

fn run(input: &[u8], mode: ExplainMode) -> (String, explain::ExplainSummary) {
    let ctx = ExplainContext {
        line: LineContext::at(NOW),
        ..Default::default()
    };
    let mut out = Vec::new();
    let summary = explain::run("ssh", &ssh(), Cursor::new(input), mode, &mut out, &ctx).unwrap();
    (String::from_utf8(out).unwrap(), summary)
}

const MIXED: &str = "\
Nov 25 16:19:50 host sshd[10]: Accepted publickey for bob from 198.51.100.1 port 5000 ssh2: ED25519 SHA256:x
Nov 25 16:19:51 host sshd[11]: Invalid user admin from 192.0.2.7 port 4001
Nov 25 16:19:52 host sshd[11]: Failed password for invalid user admin from 192.0.2.7 port 4001 ssh2
Nov 25 16:19:53 host CRON[12]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)
Nov 25 16:19:54 host sshd[13]: Failed password for root from 2001:db8::7 port 4002 ssh2
Nov 25 16:19:55 host sshd[14]: Failed password for root from 192.0.2.7 port 4003 ssh2
2026-11-25T16:19:56+00:00 host sshd[15]: Connection closed by 192.0.2.7 port 4004 [preauth]
Failed password for root from 203.0.113.5 port 1 ssh2
";

#[test]
fn json_lines_and_summary_exactly() {
    let (out, summary) = run(MIXED.as_bytes(), ExplainMode::Json);
    let expected = r#"{"line":2,"ip":"192.0.2.7","service":"ssh","kind":"invalid_user","time":"2026-11-25T16:19:51Z"}
{"line":3,"ip":"192.0.2.7","service":"ssh","kind":"invalid_user","time":"2026-11-25T16:19:52Z"}
{"line":5,"ip":"2001:db8::7","service":"ssh","kind":"failed_auth","time":"2026-11-25T16:19:54Z"}
{"line":6,"ip":"192.0.2.7","service":"ssh","kind":"failed_auth","time":"2026-11-25T16:19:55Z"}
{"line":7,"ip":"192.0.2.7","service":"ssh","kind":"probe","time":"2026-11-25T16:19:56Z"}
{"line":8,"ip":"203.0.113.5","service":"ssh","kind":"failed_auth","time":null}
{"summary":{"lines":8,"matched":6,"ips":3,"would_ban":["192.0.2.7"],"too_long":0,"invalid_utf8":0,"protected":0}}
"#;
    assert_eq!(out, expected);
    assert_eq!((summary.lines, summary.matched, summary.ips), (8, 6, 3));
    // Every line parses as JSON with the contract's keys.
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v.get("line").is_some() || v.get("summary").is_some());
    }
}

#[test]
fn summary_and_human_modes() {
    let (out, _) = run(MIXED.as_bytes(), ExplainMode::Summary);
    assert_eq!(
        out,
        "lines: 8  matched: 6  addresses: 3  would ban: 1\nwould ban: 192.0.2.7\n"
    );
    let (out, _) = run(MIXED.as_bytes(), ExplainMode::Human);
    let rows: Vec<&str> = out.lines().collect();
    assert!(rows[0].trim_start().starts_with("line  time"), "{out}");
    assert!(
        rows[1].starts_with("       2  2026-11-25T16:19:51Z  192.0.2.7 "),
        "{out}"
    );
    assert!(rows[1].contains("ssh-invalid-user"));
    assert_eq!(rows.len(), 1 + 6 + 2);
    // Columns line up: the address column starts at the same offset in every row.
    let col = rows[1].find("192.0.2.7").unwrap();
    assert_eq!(rows[3].find("2001:db8::7").unwrap(), col);
}

#[test]
fn over_long_lines_are_skipped_and_counted_and_numbering_continues() {
    let mut input = Vec::new();
    input.extend_from_slice(
        b"Nov 25 16:19:51 host sshd[11]: Invalid user a from 192.0.2.7 port 1\n",
    );
    input.extend(std::iter::repeat_n(b'x', 100_000));
    input.push(b'\n');
    input.extend(std::iter::repeat_n(b'y', 3 << 20)); // longer than the read buffer
    input.push(b'\n');
    input.extend_from_slice(
        b"Nov 25 16:19:51 host sshd[12]: Invalid user \xff from 192.0.2.8 port 1\n",
    );
    input.extend_from_slice(b"Nov 25 16:19:51 host sshd[13]: Invalid user b from 192.0.2.9 port 1"); // no final newline
    let (out, summary) = run(&input, ExplainMode::Json);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with(r#"{"line":1,"ip":"192.0.2.7""#));
    assert!(
        lines[1].starts_with(r#"{"line":4,"ip":"192.0.2.8""#),
        "{}",
        lines[1]
    );
    assert!(lines[2].starts_with(r#"{"line":5,"ip":"192.0.2.9""#));
    assert_eq!(
        (
            summary.lines,
            summary.matched,
            summary.too_long,
            summary.invalid_utf8
        ),
        (5, 3, 2, 1)
    );
    assert!(lines[3].contains(r#""too_long":2,"invalid_utf8":1"#));
}

#[test]
fn empty_input_and_unknown_service() {
    let (out, s) = run(b"", ExplainMode::Json);
    assert_eq!(
        out,
        "{\"summary\":{\"lines\":0,\"matched\":0,\"ips\":0,\"would_ban\":[],\"too_long\":0,\"invalid_utf8\":0,\"protected\":0}}\n"
    );
    assert_eq!(s.lines, 0);
    let err = explain::run(
        "myapp",
        &ServiceConfig::custom(BanDuration::from_secs(1)),
        Cursor::new(b""),
        ExplainMode::Json,
        &mut Vec::new(),
        &ExplainContext::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("services.myapp"), "{err}");
}

/// As in the daemon, a protected address is shown but never counted towards a ban.
#[test]
fn protected_addresses_are_not_counted() {
    let ctx = ExplainContext {
        line: LineContext::at(NOW),
        ..Default::default()
    };
    let trusted = crmonban_core::Target::parse("192.0.2.0/24").unwrap();
    let mut out = Vec::new();
    let summary = explain::run_protected(
        "ssh",
        &ssh(),
        Cursor::new(MIXED.as_bytes()),
        ExplainMode::Summary,
        &mut out,
        &ctx,
        &|target| trusted.covers(target),
    )
    .unwrap();
    assert_eq!((summary.matched, summary.protected), (6, 4));
    assert!(summary.would_ban.is_empty());
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "lines: 8  matched: 6  addresses: 3  would ban: 0\n\
         protected (whitelisted, trusted zone or reserved; not counted): 4 lines\n"
    );
}
