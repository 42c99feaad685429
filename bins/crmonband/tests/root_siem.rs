//! SIEM export through the real daemon, checked by the real receivers: a real rsyslog (unix
//! socket, UDP, TCP with octet counting, TLS) parses our RFC 5424 messages, their structured
//! data and JSON bodies into the fields we sent; a webhook receives JSON with its headers; a
//! file target is created 0640 and follows a rotation. A hostile ban reason survives every
//! format intact. Panics without root.

mod support;

use std::os::unix::fs::PermissionsExt;

use crmonban_testutil::{
    NetNs, PATIENCE, PrivateBus, RSYSLOG_TCP_PORT, RSYSLOG_TLS_PORT, RSYSLOG_UDP_PORT, Rsyslog,
    wait_until,
};
use serde_json::Value;
use support::*;

/// Quotes, brackets, backslashes, CEF/LEEF delimiters and non-ASCII (D-Bus refuses control
/// characters in a reason; the formats' tests cover them): every format must carry it
/// without forging a field.
const REASON: &str = "user \"root\"] x=1|y\\z end é";

fn sd(record: &Value) -> &Value {
    &record["vars"]["rfc5424-sd"]["crmonban@32473"]
}

#[test]
fn root_events_reach_rsyslog_a_webhook_and_a_file_intact() {
    let host = NetNs::new("d-siem");
    let rsyslog = Rsyslog::start_in(&host);
    let rt = runtime();
    let listener = host.run(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let hook = rt.block_on(async {
        let server = wiremock::MockServer::builder()
            .listener(listener)
            .start()
            .await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .and(wiremock::matchers::path("/events"))
            .respond_with(wiremock::ResponseTemplate::new(200))
            .mount(&server)
            .await;
        server
    });
    let files = tempfile::tempdir().unwrap();
    let siem_log = files.path().join("siem.log");
    let headers = files.path().join("hook.headers");
    std::fs::write(
        &headers,
        "# token kept out of the config\nX-Api-Key: s3cr3t\n",
    )
    .unwrap();
    let config = format!(
        r#"
[siem]
enabled = true
format = "cef"
hostname = "edge-test"
attack_interval_secs = 0

[[siem.targets]]
type = "file"
path = "{log}"
format = "json"

[[siem.targets]]
name = "unix"
type = "syslog"
socket = "{socket}"
format = "syslog"
facility = "authpriv"

[[siem.targets]]
name = "tcp"
type = "syslog"
address = "127.0.0.1:{RSYSLOG_TCP_PORT}"
protocol = "tcp"
format = "json"

[[siem.targets]]
name = "tls"
type = "syslog"
address = "localhost:{RSYSLOG_TLS_PORT}"
tls = true
tls_ca_file = "{ca}"

[[siem.targets]]
name = "udp"
type = "syslog"
address = "127.0.0.1:{RSYSLOG_UDP_PORT}"
format = "leef"
facility = "local4"

[[siem.targets]]
name = "hook"
type = "webhook"
url = "{hook}/events"
headers = [["Authorization", "Bearer t0k3n"]]
headers_file = "{headers}"
"#,
        log = siem_log.display(),
        socket = rsyslog.socket().display(),
        ca = rsyslog.ca_file().display(),
        hook = hook.uri(),
        headers = headers.display(),
    );
    let mut daemon = Daemon::start_on(host, PrivateBus::system_like(&policy_file()), &config);

    let out = daemon.ctl(&["ban", "203.0.113.7", "-d", "600", "-r", REASON]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The unix socket, format syslog: rsyslog's RFC 5424 parser and mmpstrucdata.
    let unix = rsyslog.wait_for("the ban over the unix socket", |r| {
        r["input"] == "imuxsock" && r["msgid"] == "ban-added"
    });
    assert_eq!(unix["hostname"], "edge-test", "{unix:#}");
    assert_eq!(unix["app"], "crmonband", "{unix:#}");
    assert_eq!(unix["facility"], "10", "authpriv: {unix:#}");
    assert_eq!(unix["severity"], "4", "ban added is a warning: {unix:#}");
    let procid: u32 = unix["procid"].as_str().unwrap().parse().unwrap();
    assert_eq!(procid, daemon.child.as_ref().unwrap().id(), "{unix:#}");
    let params = sd(&unix);
    assert_eq!(params["ip"], "203.0.113.7", "{unix:#}");
    assert_eq!(params["duration"], "600", "{unix:#}");
    assert_eq!(params["source"], "dbus", "{unix:#}");
    // rsyslog unescapes \" \] \\.
    assert_eq!(params["reason"], REASON, "{unix:#}");

    // TCP with octet counting, format json: mmjsonparse reads the MSG as JSON.
    let tcp = rsyslog.wait_for("the ban over TCP", |r| {
        r["input"] == "tcp" && r["msgid"] == "ban-added"
    });
    let json = &tcp["vars"]["json"];
    assert_eq!(json["source"]["ip"], "203.0.113.7", "{tcp:#}");
    assert_eq!(json["event"]["action"], "ban-added", "{tcp:#}");
    assert_eq!(json["event"]["reason"], REASON, "{tcp:#}");
    assert_eq!(json["observer"]["hostname"], "edge-test", "{tcp:#}");

    // TLS (RFC 5425), the [siem] default format: CEF as MSG.
    let tls = rsyslog.wait_for("the ban over TLS", |r| {
        r["input"] == "tls" && r["msgid"] == "ban-added"
    });
    let cef = tls["msg"].as_str().unwrap();
    assert!(cef.starts_with("CEF:0|crmonban|crmonban|"), "{tls:#}");
    assert!(cef.contains("src=203.0.113.7"), "{cef}");
    assert!(cef.contains("reason=user \"root\"] x\\=1|y\\\\z"), "{cef}");

    // UDP, LEEF 2.0 with a declared tab delimiter.
    let udp = rsyslog.wait_for("the ban over UDP", |r| {
        r["input"] == "udp" && r["msgid"] == "ban-added"
    });
    assert_eq!(udp["facility"], "20", "local4: {udp:#}");
    let leef = udp["msg"].as_str().unwrap();
    assert!(leef.starts_with("LEEF:2.0|crmonban|crmonban|"), "{leef}");
    assert!(leef.contains("|ban-added|x09|"), "{leef}");
    assert!(leef.contains("\tsrc=203.0.113.7"), "{leef}");

    // The webhook: headers from the config and from the file, one JSON object.
    let posted = wait_until("the webhook POST", PATIENCE, || {
        let requests = rt.block_on(hook.received_requests()).unwrap_or_default();
        requests.into_iter().find(|r| {
            serde_json::from_slice::<Value>(&r.body)
                .is_ok_and(|v| v["event"]["action"] == "ban-added")
        })
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()));
    assert_eq!(posted.headers["authorization"], "Bearer t0k3n");
    assert_eq!(posted.headers["x-api-key"], "s3cr3t");
    assert_eq!(posted.headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&posted.body).unwrap();
    assert_eq!(body["source"]["ip"], "203.0.113.7");
    assert_eq!(body["crmonban"]["duration_secs"], 600);

    // The file: JSON lines, 0640, the daemon's start first.
    let lines = wait_until("the ban in the file", PATIENCE, || {
        let text = std::fs::read_to_string(&siem_log).unwrap_or_default();
        text.contains("\"ban-added\"").then_some(text)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()));
    let events: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["event"]["action"], "daemon-started", "{lines}");
    assert_eq!(
        std::fs::metadata(&siem_log).unwrap().permissions().mode() & 0o777,
        0o640
    );

    // Rotated away: the next events go to a new file at the path.
    let rotated = files.path().join("siem.log.1");
    std::fs::rename(&siem_log, &rotated).unwrap();
    let out = daemon.ctl(&["whitelist", "add", "198.51.100.0/24", "-c", "office"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = daemon.ctl(&["unban", "203.0.113.7"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let fresh = wait_until("events in the new file", PATIENCE, || {
        let text = std::fs::read_to_string(&siem_log).ok()?;
        text.contains("\"ban-removed\"").then_some(text)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()));
    assert!(fresh.contains("\"whitelist-added\""), "{fresh}");
    assert!(
        !std::fs::read_to_string(&rotated)
            .unwrap()
            .contains("ban-removed")
    );
    let whitelisted = rsyslog.wait_for("the whitelist change over the unix socket", |r| {
        r["input"] == "imuxsock" && r["msgid"] == "whitelist-added"
    });
    assert_eq!(sd(&whitelisted)["target"], "198.51.100.0/24");
    assert_eq!(sd(&whitelisted)["reason"], "office");

    // The figures: every target delivered, nothing dropped.
    let stats: Value = serde_json::from_slice(&daemon.ctl(&["stats", "--json"]).stdout).unwrap();
    let targets = stats["siem"]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 6, "{stats:#}");
    for t in targets {
        assert!(t["sent"].as_u64().unwrap() >= 3, "{t}");
        assert_eq!(t["dropped"], 0, "{t}");
        assert_eq!(t["up"], true, "{t}");
    }
    let status = text(&daemon.ctl(&["status"]).stdout);
    assert!(
        status.contains("siem_targets:") && status.contains("siem_failing:"),
        "{status}"
    );

    // Stopping is told too, before the daemon exits.
    daemon.signal("TERM");
    daemon.wait_exit();
    let last = std::fs::read_to_string(&siem_log).unwrap();
    let last: Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"]["action"], "daemon-stopping");
    rsyslog.wait_for("the stop over TLS", |r| {
        r["input"] == "tls" && r["msgid"] == "daemon-stopping"
    });
}

/// The journal's entries of `identifier` as journalctl's JSON objects.
fn journal_entries(journald: &crmonban_testutil::Journald, identifier: &str) -> Vec<Value> {
    let out = journald
        .enter("journalctl")
        .args(["--output=json", "--no-pager", "--quiet"])
        .arg(format!("SYSLOG_IDENTIFIER={identifier}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn root_journalds_dev_log_gets_the_local_form_it_parses() {
    let journald = crmonban_testutil::Journald::start();
    let config = format!(
        r#"
[siem]
enabled = true
format = "cef"

[[siem.targets]]
name = "journal"
type = "syslog"
socket = "{dev_log}"
facility = "authpriv"

[[siem.targets]]
name = "journal-syslog"
type = "syslog"
socket = "{dev_log}"
format = "syslog"
"#,
        dev_log = journald.dev_log().display(),
    );
    let daemon = Daemon::start(&config);
    let out = daemon.ctl(&["ban", "203.0.113.8", "-d", "600", "-r", "port scan"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // journald does not parse RFC 5424: each message comes in the local form, so the
    // journal files it under crmonband with its pid, priority and facility.
    let pid = daemon.child.as_ref().unwrap().id().to_string();
    let entries = wait_until("the ban in the journal", PATIENCE, || {
        let entries = journal_entries(&journald, "crmonband");
        let bans = entries
            .iter()
            .filter(|e| {
                e["MESSAGE"]
                    .as_str()
                    .is_some_and(|m| m.contains("203.0.113.8"))
            })
            .count();
        (bans >= 2).then_some(entries)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", daemon.log(), journald.own_log()));
    let cef = entries
        .iter()
        .find(|e| {
            e["MESSAGE"]
                .as_str()
                .is_some_and(|m| m.starts_with("CEF:0|") && m.contains("|ban-added|"))
        })
        .unwrap_or_else(|| panic!("{entries:#?}"));
    let message = cef["MESSAGE"].as_str().unwrap();
    assert!(message.contains("|ban-added|Ban added|7|"), "{message}");
    assert!(message.contains("src=203.0.113.8"), "{message}");
    assert_eq!(cef["SYSLOG_PID"], pid.as_str(), "{cef:#}");
    assert_eq!(cef["PRIORITY"], "4", "{cef:#}");
    assert_eq!(cef["SYSLOG_FACILITY"], "10", "{cef:#}");
    // The syslog format keeps its structured data at the start of the message.
    let structured = entries
        .iter()
        .find(|e| {
            e["MESSAGE"]
                .as_str()
                .is_some_and(|m| m.starts_with("[crmonban@32473 action=\"ban-added\""))
        })
        .unwrap_or_else(|| panic!("{entries:#?}"));
    let message = structured["MESSAGE"].as_str().unwrap();
    assert!(
        message.contains(" ip=\"203.0.113.8\"") && message.ends_with("port scan"),
        "{message}"
    );
    assert_eq!(
        structured["SYSLOG_FACILITY"], "4",
        "auth by default: {structured:#}"
    );
}
