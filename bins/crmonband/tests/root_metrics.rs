//! `[metrics]` end to end: a daemon in a namespace of its own serving Prometheus metrics,
//! scraped with a real HTTP client (reqwest) while it bans from a log and from crmonctl and
//! drops a banned attacker's packets; the output passes Debian's `promtool check metrics`;
//! OpenMetrics only when asked; reloads move the listener or are refused whole; a taken port
//! stops the start. They panic without root.

mod support;

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;

use crmonban_testutil::{NetNs, PATIENCE, PrivateBus, QUIET, udp_reaches, wait_until};
use support::*;

const ATTACKER_V4: &str = "10.77.0.1";
const HOST_V4: &str = "10.77.0.2";

/// An answer: status, content type, body.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

/// `method` on `http://addr/path` from inside `ns`, with `accept` when given.
fn http(ns: &NetNs, method: &str, url: &str, accept: Option<&str>) -> reqwest::Result<Answer> {
    ns.run(|| {
        runtime().block_on(async {
            // Plain HTTP only, but reqwest wants a provider (the workspace builds it without one).
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = reqwest::Client::builder().no_proxy().build()?;
            let mut request = client.request(method.parse().unwrap(), url);
            if let Some(accept) = accept {
                request = request.header("Accept", accept);
            }
            let response = request.send().await?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = response.text().await?;
            Ok(Answer {
                status,
                content_type,
                body,
            })
        })
    })
}

fn scrape(ns: &NetNs, port: u16) -> String {
    let answer = http(ns, "GET", &format!("http://127.0.0.1:{port}/metrics"), None)
        .unwrap_or_else(|e| panic!("scraping port {port}: {e}"));
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}

/// The value of the series written exactly as `series` (name and labels), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn promtool_check(text: &str) {
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; cargo xtask deps installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics failed:\n{}{}\n--- output ---\n{text}",
        text_of(&out.stdout),
        text_of(&out.stderr)
    );
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn failed_password(pid: u32, addr: &str) -> String {
    let out = crmonban_testutil::run("date", &["+%b %e %H:%M:%S"]);
    let time = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    format!(
        "{time} host sshd[{pid}]: Failed password for root from {addr} port {} ssh2\n",
        40_000 + pid
    )
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

#[test]
fn root_metrics_count_what_the_daemon_does_and_pass_promtool() {
    let host = NetNs::new("d-metrics");
    let attacker = attacker_for(&host);
    let logs = tempfile::tempdir().unwrap();
    let auth_log = logs.path().join("auth.log");
    append(&auth_log, "");
    let daemon = Daemon::start_on(
        host,
        PrivateBus::system_like(&policy_file()),
        &format!(
            "\n[metrics]\nenabled = true\nlisten = \"127.0.0.1:9717\"\n\
             [services.ssh]\nlog_path = \"{}\"\nsource = \"file\"\nmax_failures = 3\nfind_time = 600\nban_time = 600\n",
            auth_log.display()
        ),
    );
    let ns = &daemon.host;
    let first = scrape(ns, 9717);
    promtool_check(&first);
    assert_eq!(
        value(
            &first,
            "crmonban_active_bans{family=\"ipv4\",kind=\"address\"}"
        ),
        Some(0.0)
    );
    assert!(value(&first, "process_resident_memory_bytes").is_some_and(|rss| rss > 1e6));
    assert!(first.contains("crmonban_build_info{version=\""), "{first}");

    // Three failed logins: three events, one ban by the detector, timed from the line.
    for pid in 0..3 {
        append(&auth_log, &failed_password(1000 + pid, ATTACKER_V4));
    }
    wait_until("the detector's ban", PATIENCE, || {
        daemon.set_contains("blocked_v4", ATTACKER_V4).then_some(())
    })
    .unwrap_or_else(|w| panic!("{w}\n{}", daemon.log()));
    // A manual ban and unban through crmonctl, and one that stays.
    assert!(
        daemon
            .ctl(&["ban", "198.51.100.7", "-d", "1h"])
            .status
            .success()
    );
    assert!(daemon.ctl(&["unban", "198.51.100.7"]).status.success());
    assert!(daemon.ctl(&["ban", "2001:db8::/48"]).status.success());
    // The banned attacker's packets are dropped, and counted.
    let host_v4: IpAddr = HOST_V4.parse().unwrap();
    assert!(!udp_reaches(&attacker, ns, host_v4, QUIET));

    let text = scrape(ns, 9717);
    promtool_check(&text);
    let expect = |series: &str, wanted: f64| {
        assert_eq!(value(&text, series), Some(wanted), "{series} in:\n{text}");
    };
    expect(
        "crmonban_events_total{service=\"ssh\",kind=\"failed_auth\"}",
        3.0,
    );
    expect("crmonban_log_lines_read_total{service=\"ssh\"}", 3.0);
    expect(
        "crmonban_log_lines_skipped_total{service=\"ssh\",reason=\"too_long\"}",
        0.0,
    );
    expect("crmonban_bans_added_total{source=\"detector\"}", 1.0);
    expect("crmonban_bans_added_total{source=\"dbus\"}", 2.0);
    expect("crmonban_bans_removed_total{reason=\"unban\"}", 1.0);
    expect(
        "crmonban_active_bans{family=\"ipv4\",kind=\"address\"}",
        1.0,
    );
    expect(
        "crmonban_active_bans{family=\"ipv6\",kind=\"network\"}",
        1.0,
    );
    expect("crmonban_ban_latency_seconds_count", 1.0);
    expect("crmonban_detection_latency_seconds_count", 3.0);
    let latency = value(&text, "crmonban_ban_latency_seconds_sum").unwrap();
    assert!(latency > 0.0 && latency < 5.0, "ban latency {latency}");
    // What the kernel's counter says, the metric says.
    let listing = ns.nft(&["list", "chain", "inet", "crmonban", "input"]);
    let rule = listing
        .lines()
        .find(|l| l.contains("@blocked_v4 counter"))
        .unwrap();
    let words: Vec<&str> = rule.split_whitespace().collect();
    let (packets, bytes): (f64, f64) = (words[5].parse().unwrap(), words[7].parse().unwrap());
    assert!(packets >= 1.0, "{listing}");
    let dropped = value(
        &text,
        "crmonban_dropped_packets_total{path=\"nftables_input\",family=\"ipv4\"}",
    )
    .unwrap();
    // The v4 address set and network set rules are summed; only the address set dropped.
    assert_eq!(dropped, packets, "{listing}\n{text}");
    expect(
        "crmonban_dropped_bytes_total{path=\"nftables_input\",family=\"ipv4\"}",
        bytes,
    );
    expect("crmonban_queue_dropped_total{queue=\"records\"}", 0.0);
    expect("crmonban_queue_length{queue=\"intel\"}", 0.0);
    assert!(
        text.contains("# TYPE crmonban_events_total counter"),
        "{text}"
    );
    assert!(
        !text.contains("# EOF"),
        "the classic format has no EOF marker"
    );

    // Someone deletes crmonban's table: the daemon puts it back, and the repair is counted.
    let layout = "crmonban_ruleset_repairs_total{what=\"layout\"}";
    expect(layout, 0.0);
    ns.nft(&["delete", "table", "inet", "crmonban"]);
    wait_until("the repair counted", PATIENCE, || {
        (value(&scrape(ns, 9717), layout) == Some(1.0)).then_some(())
    })
    .unwrap_or_else(|w| panic!("{w}\n{}", daemon.log()));
    assert!(daemon.set_contains("blocked_v4", ATTACKER_V4));
}

#[test]
fn root_metrics_speak_http_plainly_and_openmetrics_only_when_asked() {
    let daemon = Daemon::start("\n[metrics]\nenabled = true\n");
    let ns = &daemon.host;
    let base = "http://127.0.0.1:9717";
    let plain = http(ns, "GET", &format!("{base}/metrics"), Some("*/*")).unwrap();
    assert_eq!(
        plain.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    // What Prometheus 2.x sends when it prefers OpenMetrics.
    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let open = http(
        ns,
        "GET",
        &format!("{base}/metrics"),
        Some(prometheus_accept),
    )
    .unwrap();
    assert_eq!(open.status, 200);
    assert!(
        open.content_type
            .starts_with("application/openmetrics-text; version=1.0.0"),
        "{}",
        open.content_type
    );
    assert!(open.body.ends_with("# EOF\n"), "{}", open.body);
    // OpenMetrics names a counter's family without `_total`, its samples with it.
    assert!(
        open.body.contains("# TYPE process_cpu_seconds counter\n"),
        "{}",
        open.body
    );
    assert!(
        open.body.contains("\nprocess_cpu_seconds_total "),
        "{}",
        open.body
    );
    let not_open = http(
        ns,
        "GET",
        &format!("{base}/metrics"),
        Some("application/openmetrics-text;q=0, text/plain"),
    )
    .unwrap();
    assert!(
        not_open.content_type.starts_with("text/plain"),
        "{}",
        not_open.content_type
    );
    let head = http(ns, "HEAD", &format!("{base}/metrics"), None).unwrap();
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(
        http(ns, "GET", &format!("{base}/nothing"), None)
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        http(ns, "POST", &format!("{base}/metrics"), None)
            .unwrap()
            .status,
        405
    );
    // A request head that never ends is cut off at 8 KiB, and the daemon goes on.
    let raw = ns.run(|| {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect("127.0.0.1:9717").unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(15)))
            .unwrap();
        let mut junk = b"GET /metrics HTTP/1.1\r\n".to_vec();
        junk.extend(std::iter::repeat_n(b'x', 20_000));
        let _ = stream.write_all(&junk);
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    });
    assert!(raw.starts_with("HTTP/1.1 400 "), "{raw}");
    assert_eq!(
        http(ns, "GET", &format!("{base}/metrics"), None)
            .unwrap()
            .status,
        200
    );
}

#[test]
fn root_metrics_follow_a_reload_or_refuse_it_whole() {
    let mut daemon = Daemon::start("\n[metrics]\nenabled = true\nlisten = \"127.0.0.1:9717\"\n");
    let rewrite = |daemon: &Daemon, metrics: &str| {
        write_config(&daemon.config, daemon.dir.path(), metrics);
    };
    // Moved.
    rewrite(
        &daemon,
        "\n[metrics]\nenabled = true\nlisten = \"127.0.0.1:9718\"\n",
    );
    let reload = daemon.ctl(&["reload"]);
    assert!(reload.status.success(), "{}", text(&reload.stderr));
    scrape(&daemon.host, 9718);
    assert!(http(&daemon.host, "GET", "http://127.0.0.1:9717/metrics", None).is_err());
    // To a port someone else holds: refused, and the endpoint stays where it was.
    let holder = daemon
        .host
        .run(|| std::net::TcpListener::bind("127.0.0.1:9719").unwrap());
    rewrite(
        &daemon,
        "\n[metrics]\nenabled = true\nlisten = \"127.0.0.1:9719\"\n",
    );
    let refused = daemon.ctl(&["reload"]);
    assert!(!refused.status.success());
    let message = text(&refused.stderr);
    assert!(
        message.contains("[metrics] listen = \"127.0.0.1:9719\": cannot listen"),
        "{message}"
    );
    scrape(&daemon.host, 9718);
    // Off.
    rewrite(&daemon, "\n[metrics]\nenabled = false\n");
    assert!(daemon.ctl(&["reload"]).status.success());
    assert!(http(&daemon.host, "GET", "http://127.0.0.1:9718/metrics", None).is_err());
    // A start on a taken port is refused, saying why.
    daemon.signal("TERM");
    daemon.wait_exit();
    rewrite(
        &daemon,
        "\n[metrics]\nenabled = true\nlisten = \"127.0.0.1:9719\"\n",
    );
    daemon.launch(&[]);
    let status = daemon.wait_exit();
    assert!(!status.success());
    assert!(
        daemon
            .log()
            .contains("[metrics] listen = \"127.0.0.1:9719\": cannot listen"),
        "{}",
        daemon.log()
    );
    drop(holder);
}

/// Every query of a Grafana target in `value` (recursively).
fn grafana_queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(expr)) = map.get("expr") {
                out.push(expr.clone());
            }
            map.values().for_each(|v| grafana_queries(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| grafana_queries(v, out)),
        _ => {}
    }
}

/// The metric names a query reads (histogram series by their family's name).
fn metric_names(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = query.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts = ["crmonban_", "process_"]
            .iter()
            .any(|p| query[i..].starts_with(p))
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if !starts {
            i += 1;
            continue;
        }
        let end = query[i..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(query.len(), |n| i + n);
        names.push(query[i..end].to_owned());
        i = end;
    }
    names
}

/// The dashboard in deploy/grafana reads only metrics the daemon exports (checked against a
/// live scrape after bans and drops), and every query is PromQL that promtool accepts.
#[test]
fn root_the_grafana_dashboard_reads_exported_metrics_in_valid_promql() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("deploy/grafana/crmonban.json")).unwrap(),
    )
    .unwrap();
    let mut queries = Vec::new();
    grafana_queries(&dashboard, &mut queries);
    assert!(queries.len() >= 20, "{queries:?}");

    let daemon = Daemon::start("\n[metrics]\nenabled = true\n");
    assert!(daemon.ctl(&["ban", "192.0.2.9"]).status.success());
    let text = scrape(&daemon.host, 9717);
    let exported: std::collections::BTreeSet<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect();
    let known = |name: &str| {
        exported.iter().any(|(n, kind)| {
            n == name
                || (kind == "histogram"
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(n.as_str())))
        })
    };
    // Series that only a detection, an attack or a failure creates are known by their
    // family: the events family is not in a fresh daemon's output.
    let later = ["crmonban_events_total"];
    for query in &queries {
        let names = metric_names(query);
        assert!(
            !names.is_empty(),
            "a query without a crmonban metric: {query}"
        );
        for name in names {
            assert!(
                known(&name) || later.contains(&name.as_str()),
                "the dashboard reads {name}, which the daemon does not export:\n{query}"
            );
        }
    }

    // Grafana's variables replaced, each query as a recording rule for promtool.
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    let mut yaml = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, query) in queries.iter().enumerate() {
        let promql = query
            .replace("$__rate_interval", "5m")
            .replace("$instance", ".*")
            .replace("$job", ".*");
        yaml.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: '{}'\n",
            promql.replace('\'', "''")
        ));
    }
    std::fs::write(&rules, yaml).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool check rules:\n{}{}",
        text_of(&out.stdout),
        text_of(&out.stderr)
    );
}
