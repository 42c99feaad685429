//! Partial damage to crmonban's ruleset by someone else, on the real daemon in a namespace of
//! its own: a flushed set, a deleted element, a rule whose verdict was changed to accept. Each
//! is noticed and repaired within 5 s. Every test panics without root.

mod support;

use std::time::{Duration, Instant};

use support::*;

/// How soon a repair must come.
const REPAIR_WITHIN: Duration = Duration::from_secs(5);

fn ban(daemon: &Daemon, target: &str) {
    let out = daemon.ctl(&["ban", target, "-d", "0", "-r", "repair test"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Waits up to [`REPAIR_WITHIN`] for `repaired`; panics naming `what`.
fn repaired_within(daemon: &Daemon, what: &str, repaired: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !repaired() {
        assert!(
            started.elapsed() < REPAIR_WITHIN,
            "{what} not repaired within {REPAIR_WITHIN:?}:\n{}\ndaemon:\n{}",
            daemon.host.nft(&["list", "table", "inet", "crmonban"]),
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

/// The handle of the rule of `chain` that looks up `set`.
fn rule_handle(daemon: &Daemon, chain: &str, set: &str) -> String {
    let listing = daemon
        .host
        .nft(&["-a", "list", "chain", "inet", "crmonban", chain]);
    let line = listing
        .lines()
        .find(|l| l.contains(&format!("@{set} ")))
        .unwrap_or_else(|| panic!("no rule for @{set}:\n{listing}"));
    line.rsplit("# handle ").next().unwrap().trim().to_owned()
}

#[test]
fn root_partial_damage_to_the_ruleset_is_repaired_within_five_seconds() {
    let daemon = Daemon::start("");
    let singles: Vec<String> = (1..=20).map(|i| format!("198.51.100.{i}")).collect();
    for target in &singles {
        ban(&daemon, target);
    }
    for target in [
        "2001:db8::1",
        "2001:db8::2",
        "203.0.113.0/24",
        "2001:db8:1::/48",
    ] {
        ban(&daemon, target);
    }
    let all_v4 = || {
        let set = daemon.set_elements("blocked_v4");
        singles.iter().all(|s| set.contains(s))
    };
    assert!(all_v4());

    daemon
        .host
        .nft(&["flush", "set", "inet", "crmonban", "blocked_v4"]);
    let took = repaired_within(&daemon, "a flushed set", all_v4);
    eprintln!("flushed set repaired in {took:?}");

    daemon.host.nft(&[
        "delete",
        "element",
        "inet",
        "crmonban",
        "blocked_v6",
        "{ 2001:db8::2 }",
    ]);
    let took = repaired_within(&daemon, "a deleted element", || {
        daemon.set_contains("blocked_v6", "2001:db8::2")
    });
    eprintln!("deleted element repaired in {took:?}");

    daemon
        .host
        .nft(&["flush", "set", "inet", "crmonban", "blocked_v6_net"]);
    let took = repaired_within(&daemon, "a flushed network set", || {
        daemon.set_contains("blocked_v6_net", "2001:db8:1::/48")
    });
    eprintln!("flushed network set repaired in {took:?}");

    for chain in ["input", "forward"] {
        let handle = rule_handle(&daemon, chain, "blocked_v4");
        daemon.host.nft(&[
            "replace",
            "rule",
            "inet",
            "crmonban",
            chain,
            "handle",
            &handle,
            "ip",
            "saddr",
            "@blocked_v4",
            "counter",
            "accept",
        ]);
        let took = repaired_within(&daemon, "a rule changed to accept", || {
            let listing = daemon
                .host
                .nft(&["list", "chain", "inet", "crmonban", chain]);
            let rules: Vec<&str> = listing
                .lines()
                .filter(|l| l.contains("@blocked_v4 "))
                .collect();
            rules.len() == 1 && rules[0].trim_end().ends_with(" drop")
        });
        eprintln!("{chain} rule changed to accept repaired in {took:?}");
        assert!(all_v4(), "the repair lost bans");
    }
}
