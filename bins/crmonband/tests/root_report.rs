//! `crmonctl report --html` against the real daemon: attacks recorded in its database (with
//! the intel that places them), a ban made through crmonctl, and the page shows them — the
//! countries shaded on the map, the hour's attacks and ban in the charts, the attacker in the
//! table — from GetStats' `events_per_hour` and `events_by_country`. Reading is open to every
//! user, so an unprivileged user can make the report too. Panics without root.

mod support;

use support::*;

#[test]
fn root_report_shows_the_daemons_attacks_on_the_map_and_over_time() {
    let daemon = Daemon::start("");
    runtime().block_on(async {
        let store = crmonban_store::Store::open(&daemon.db()).await.unwrap();
        let now = crmonban_core::unix_now();
        let event = |addr: &str| crmonban_core::Event {
            addr: addr.parse().unwrap(),
            service: crmonban_core::Service::new("ssh"),
            kind: crmonban_core::EventKind::FailedAuth,
            time: Some(now - 60),
        };
        let mut events = Vec::new();
        events.extend((0..5).map(|_| event("192.0.2.7")));
        events.extend((0..3).map(|_| event("198.51.100.9")));
        // No intel: counted over time, not on the map.
        events.extend((0..2).map(|_| event("203.0.113.5")));
        store.record_events(&events).await.unwrap();
        for (addr, country, asn, org) in [
            ("192.0.2.7", "DE", 24940, "Hetzner <Online> GmbH"),
            ("198.51.100.9", "US", 15169, "Google LLC"),
        ] {
            let intel = format!(
                r#"{{"location":{{"country_code":"{country}"}},"network":{{"asn":{asn},"organization":"{org}"}}}}"#
            );
            store.put_intel(addr, &intel, now).await.unwrap();
        }
        store.close().await;
    });
    // An address of its own: the intel gathered after a ban must not replace the seeded one.
    let out = daemon.ctl(&["ban", "198.51.100.30", "-d", "1h"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = daemon.ctl(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        stats["events_by_country"],
        serde_json::json!({"DE": 5, "US": 3}),
        "{stats}"
    );
    let per_hour: Vec<u64> = stats["events_per_hour"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(per_hour.len(), 24, "{stats}");
    assert_eq!(per_hour[23], 10, "{stats}");

    let page = daemon.dir.path().join("report.html");
    let out = daemon.ctl(&["report", "--html", page.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("<path class=\"hit ").count(), 2, "DE and US");
    assert!(html.contains("data-cc=\"DE\""));
    assert!(html.contains("<title>Germany (DE): 5 attacks</title>"));
    assert!(html.contains("<title>United States (US): 3 attacks</title>"));
    assert_eq!(html.matches("<rect class=\"bar\"").count(), 48);
    assert!(
        html.contains(" UTC: 10 attacks</title>"),
        "the last hour's attacks"
    );
    assert!(html.contains(" UTC: 1 ban</title>"), "the last hour's ban");
    assert!(html.contains("<td>192.0.2.7</td><td class=\"n\">5</td><td>DE Germany</td>"));
    assert!(html.contains("AS24940 Hetzner &lt;Online&gt; GmbH"));
    assert!(!html.contains("<Online>"));

    // GetStats is read-only: anyone may make the report (here to standard output).
    let out = daemon.ctl_as_nobody(&["report", "--html", "-"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("<title>Germany (DE): 5 attacks</title>"));
}
