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
    let expected = r#"{"line":2,"ip":"192.0.2.7","service":"ssh","kind":"invalid_user","time":"2026-11-25T16:19:51Z","pattern":"ssh-invalid-user"}
{"line":3,"ip":"192.0.2.7","service":"ssh","kind":"invalid_user","time":"2026-11-25T16:19:52Z","pattern":"ssh-failed-invalid-user"}
{"line":5,"ip":"2001:db8::7","service":"ssh","kind":"failed_auth","time":"2026-11-25T16:19:54Z","pattern":"ssh-failed-auth"}
{"line":6,"ip":"192.0.2.7","service":"ssh","kind":"failed_auth","time":"2026-11-25T16:19:55Z","pattern":"ssh-failed-auth"}
{"line":7,"ip":"192.0.2.7","service":"ssh","kind":"probe","time":"2026-11-25T16:19:56Z","pattern":"ssh-closed-preauth"}
{"line":8,"ip":"203.0.113.5","service":"ssh","kind":"failed_auth","time":null,"pattern":"ssh-failed-auth"}
{"summary":{"lines":8,"matched":6,"ips":3,"would_ban":["192.0.2.7"],"too_long":0,"invalid_utf8":0,"protected":0,"ambiguous":0,"addresses":[{"ip":"192.0.2.7","lines":4},{"ip":"203.0.113.5","lines":1},{"ip":"2001:db8::7","lines":1}],"patterns":[{"pattern":"ssh-failed-auth","lines":3},{"pattern":"ssh-closed-preauth","lines":1},{"pattern":"ssh-failed-invalid-user","lines":1},{"pattern":"ssh-invalid-user","lines":1}],"missed":[]}}
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
        "lines: 8  matched: 6  addresses: 3  would ban: 1\nwould ban: 192.0.2.7\n\
         lines per pattern:\n          3  ssh-failed-auth\n          1  ssh-closed-preauth\n\
         \x20         1  ssh-failed-invalid-user\n          1  ssh-invalid-user\n\
         lines per address (the 20 busiest):\n          4  192.0.2.7\n          1  203.0.113.5\n\
         \x20         1  2001:db8::7\n"
    );
    let (out, _) = run(MIXED.as_bytes(), ExplainMode::Human);
    let rows: Vec<&str> = out.lines().collect();
    assert!(rows[0].trim_start().starts_with("line  time"), "{out}");
    assert!(
        rows[1].starts_with("       2  2026-11-25T16:19:51Z  192.0.2.7 "),
        "{out}"
    );
    assert!(rows[1].contains("ssh-invalid-user"));
    assert_eq!(rows.len(), 1 + 6 + 2 + 5 + 4);
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
        "{\"summary\":{\"lines\":0,\"matched\":0,\"ips\":0,\"would_ban\":[],\"too_long\":0,\"invalid_utf8\":0,\"protected\":0,\"ambiguous\":0,\"addresses\":[],\"patterns\":[],\"missed\":[]}}\n"
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
    assert!(String::from_utf8(out).unwrap().starts_with(
        "lines: 8  matched: 6  addresses: 3  would ban: 0\n\
             protected (whitelisted, trusted zone or reserved; not counted): 4 lines\n"
    ));
}

fn run_with(input: &[u8], missed: bool) -> (String, explain::ExplainSummary) {
    let options = explain::ExplainOptions {
        mode: ExplainMode::Json,
        ctx: ExplainContext {
            line: LineContext::at(NOW),
            ..Default::default()
        },
        protected: &|_| false,
        missed,
    };
    let mut out = Vec::new();
    let summary = explain::run_with("ssh", &ssh(), Cursor::new(input), &mut out, &options).unwrap();
    (String::from_utf8(out).unwrap(), summary)
}

/// `journalctl -o json` and `-o export` are read as entries: identifier, pid and time come
/// from the journal's fields, and another program's entry is not the service's.
#[test]
fn journal_json_and_export_input() {
    let json = concat!(
        r#"{"__CURSOR":"s=1","__REALTIME_TIMESTAMP":"1795623599000000","_PID":"812","SYSLOG_IDENTIFIER":"sshd","MESSAGE":"Failed password for root from 192.0.2.7 port 22 ssh2"}"#,
        "\n",
        r#"{"__CURSOR":"s=2","__REALTIME_TIMESTAMP":"1795623600000000","_PID":"9","SYSLOG_IDENTIFIER":"cron","MESSAGE":"Failed password for root from 198.18.0.66 port 22 ssh2"}"#,
        "\n",
        r#"{"__CURSOR":"s=3","__REALTIME_TIMESTAMP":"1795623601000000","_PID":"813","_COMM":"sshd-session","MESSAGE":[73,110,118,97,108,105,100,32,117,115,101,114,32,255,32,102,114,111,109,32,49,57,50,46,48,46,50,46,56,32,112,111,114,116,32,49]}"#,
        "\n",
    );
    let (out, summary) = run_with(json.as_bytes(), false);
    assert_eq!(summary.lines, 3);
    assert_eq!(
        summary.addresses,
        [
            ("192.0.2.7".parse().unwrap(), 1),
            ("192.0.2.8".parse().unwrap(), 1)
        ],
        "{out}"
    );
    assert!(
        out.contains(
            r#""ip":"192.0.2.7","service":"ssh","kind":"failed_auth","time":"2026-11-25T16:19:59Z""#
        ),
        "{out}"
    );

    // The same entries in export format, one of them with a binary MESSAGE.
    let mut export = Vec::new();
    export.extend_from_slice(b"__CURSOR=s=1\n__REALTIME_TIMESTAMP=1795623599000000\n_PID=812\nSYSLOG_IDENTIFIER=sshd\nMESSAGE=Failed password for root from 192.0.2.7 port 22 ssh2\n\n");
    export.extend_from_slice(b"__CURSOR=s=2\n_PID=9\nSYSLOG_IDENTIFIER=cron\nMESSAGE=Failed password for root from 198.18.0.66 port 22 ssh2\n\n");
    let binary = b"Invalid user \xff\nx from 192.0.2.8 port 1";
    export.extend_from_slice(b"__CURSOR=s=3\n__REALTIME_TIMESTAMP=1795623601000000\n_PID=813\nSYSLOG_IDENTIFIER=sshd\nMESSAGE\n");
    export.extend_from_slice(&(binary.len() as u64).to_le_bytes());
    export.extend_from_slice(binary);
    export.extend_from_slice(b"\n\n");
    let (out, summary) = run_with(&export, false);
    assert_eq!(summary.lines, 3, "{out}");
    assert_eq!(
        summary.addresses,
        [
            ("192.0.2.7".parse().unwrap(), 1),
            ("192.0.2.8".parse().unwrap(), 1)
        ],
        "{out}"
    );
}

/// --missed groups the service's unmatched lines by their first words; other programs' lines
/// are not the service's.
#[test]
fn missed_lines_are_grouped_by_shape() {
    let log = "\
Nov 25 16:20:59 host sshd[1235]: Postponed keyboard-interactive for invalid user b from 192.0.2.8 port 2 ssh2 [preauth]
Nov 25 16:21:59 host sshd[1236]: Postponed keyboard-interactive for invalid user c from 192.0.2.9 port 3 ssh2 [preauth]
Nov 25 16:21:59 host CRON[1]: pam_unix(cron:session): session opened for user root
Nov 25 16:22:59 host sshd[1237]: Accepted password for bob from 192.0.2.7 port 22 ssh2
Nov 25 16:22:59 host sshd[1237]: Invalid user x from 192.0.2.7 port 22
";
    let (_, summary) = run_with(log.as_bytes(), true);
    assert_eq!(
        summary
            .missed
            .iter()
            .map(|m| (m.shape.as_str(), m.lines))
            .collect::<Vec<_>>(),
        [
            ("Postponed keyboard-interactive for", 2),
            ("Accepted password for", 1)
        ]
    );
    assert!(summary.missed[0].example.contains("user b from 192.0.2.8"));
    let (_, without) = run_with(log.as_bytes(), false);
    assert!(without.missed.is_empty());
}
