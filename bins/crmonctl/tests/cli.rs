//! crmonctl as a user runs it: the binary against a private bus, with no daemon, with a fake
//! daemon (tests/support), and — as root — with the shipped bus policy and an unprivileged
//! caller (uid 65534).

mod support;

use std::path::PathBuf;

use crmonban_testutil::{NOBODY, PrivateBus};
use support::{Callers, FakeDaemon, NOW, Run, crmonctl, crmonctl_for_others, run_as, run_at};

fn policy_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dbus/org.crmonban.Daemon.conf")
}

fn run(args: &[&str]) -> Run {
    crmonctl().args(args).output().expect("run crmonctl").into()
}

#[test]
fn usage_errors_exit_2() {
    let flush = run(&["flush"]);
    assert_eq!(flush.code, 2, "{flush:?}");
    assert!(flush.stderr.contains("--yes"), "{flush:?}");
    let ban = run(&["ban"]);
    assert_eq!(ban.code, 2, "{ban:?}");
    assert!(ban.stderr.contains("<IP|CIDR>"), "{ban:?}");
    for args in [
        &["frobnicate"][..],
        &["ban", "192.0.2.7", "-d", "soon"],
        &["ban", "192.0.2.7", "-d", "3mo"],
        &["ban", "192.0.2.7", "-d", "1h 30"],
        &["ban", "192.0.2.7", "-d", "200y"],
        &["list", "-f", "xml"],
        &["--system", "--session", "status"],
        &["--address", "not-an-address", "status"],
        &["whitelist"],
    ] {
        let r = run(args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{args:?}: {r:?}");
    }
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        &["--help"][..],
        &["status", "--help"],
        &["stop", "--help"],
        &["reload", "--help"],
        &["ban", "--help"],
        &["unban", "--help"],
        &["list", "--help"],
        &["intel", "--help"],
        &["whitelist", "--help"],
        &["whitelist", "add", "--help"],
        &["whitelist", "rm", "--help"],
        &["whitelist", "list", "--help"],
        &["logs", "--help"],
        &["stats", "--help"],
        &["flush", "--help"],
    ] {
        let r = run(args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        assert!(r.stdout.contains("Usage: crmonctl"), "{args:?}: {r:?}");
    }
}

#[test]
fn no_daemon_exits_3_and_says_so() {
    let bus = PrivateBus::open();
    let r = run_at(bus.address(), &["status"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(
        r.stderr,
        format!(
            "crmonban is not running (no org.crmonban.Daemon on the bus at {})\n",
            bus.address()
        )
    );
    // The system bus by default, found through DBUS_SYSTEM_BUS_ADDRESS.
    let r: Run = crmonctl()
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .args(["list"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(
        r.stderr,
        "crmonban is not running (no org.crmonban.Daemon on the system bus)\n"
    );
    // No bus at all: a socket path where nothing listens.
    let nothing = bus.dir().join("nothing-here");
    let r = run_at(
        &format!("unix:path={}", nothing.display()),
        &["ban", "192.0.2.7"],
    );
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.starts_with(
            "crmonban is not running (no org.crmonban.Daemon on the bus at unix:path="
        ),
        "{r:?}"
    );
}

#[test]
fn ban_then_list_shows_it_in_every_format() {
    let bus = PrivateBus::open();
    let daemon = FakeDaemon::start(bus.address(), None, Callers::Trusted);
    let a = bus.address();

    let r = run_at(a, &["ban", "192.0.2.7", "-d", "60", "-r", "test"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "banned 192.0.2.7 for 1m\n"),
        "{r:?}"
    );

    // Durations with units, as crmonctl prints them back.
    for (duration, said) in [
        ("1h30m", "for 1h 30m"),
        ("7d", "for 7d"),
        ("90s", "for 1m 30s"),
        ("permanent", "permanently"),
    ] {
        let r = run_at(a, &["ban", "192.0.2.8", "-d", duration]);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, format!("banned 192.0.2.8 {said}\n").as_str()),
            "-d {duration}: {r:?}"
        );
        let r = run_at(a, &["unban", "192.0.2.8"]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let r = run(&["ban", "192.0.2.8", "-d", "3mo"]);
    assert!(
        r.stderr
            .contains("\"mo\" in \"3mo\" is not a unit; use s, m, h, d or w"),
        "{r:?}"
    );

    let r = run_at(a, &["list", "-f", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let json: serde_json::Value = serde_json::from_str(&r.stdout).expect("list -f json is JSON");
    assert_eq!(
        json,
        serde_json::json!([{
            "ip": "192.0.2.7", "reason": "test", "source": "dbus",
            "banned_at": NOW, "expires_at": NOW + 60
        }])
    );

    let r = run_at(
        a,
        &[
            "ban",
            "2001:db8:1234::/48",
            "-d",
            "0",
            "-r",
            "permanent scanner",
        ],
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "banned 2001:db8:1234::/48 permanently\n"),
        "{r:?}"
    );

    let r = run_at(a, &["list", "-f", "simple"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "192.0.2.7\n2001:db8:1234::/48\n"),
        "{r:?}"
    );

    let r = run_at(a, &["list"]);
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{r:?}");
    // Every column starts where its header starts, in every row.
    let header = lines[0];
    let columns: Vec<usize> = ["IP", "REASON", "SOURCE", "BANNED AT", "EXPIRES"]
        .iter()
        .map(|h| {
            header
                .find(h)
                .unwrap_or_else(|| panic!("{h} in {header:?}"))
        })
        .collect();
    let expected_cells = [
        [
            "192.0.2.7",
            "test",
            "dbus",
            "2025-11-25T17:06:00Z",
            "2025-11-25T17:07:00Z",
        ],
        [
            "2001:db8:1234::/48",
            "permanent scanner",
            "dbus",
            "2025-11-25T17:06:00Z",
            "permanent",
        ],
    ];
    for (line, cells) in lines[1..].iter().zip(expected_cells) {
        for (start, cell) in columns.iter().zip(cells) {
            assert_eq!(
                line.get(*start..*start + cell.len()),
                Some(cell),
                "{line:?} at {start}"
            );
            assert!(*start == 0 || line[..*start].ends_with("  "), "{line:?}");
        }
        assert_eq!(line.trim_end(), *line, "no trailing blanks");
    }

    assert_eq!(daemon.state.lock().unwrap().bans.len(), 2);
}

#[test]
fn ban_without_duration_sends_the_daemons_default_or_3600() {
    let bus = PrivateBus::open();
    let daemon = FakeDaemon::start(bus.address(), Some(600), Callers::Trusted);
    let r = run_at(bus.address(), &["ban", "192.0.2.8"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "banned 192.0.2.8 for 10m\n"),
        "{r:?}"
    );
    let ban = daemon.state.lock().unwrap().bans[0].clone();
    assert_eq!((ban.1.as_str(), ban.4 - ban.3), ("manual ban", 600));
    drop(daemon);

    let daemon = FakeDaemon::start(bus.address(), None, Callers::Trusted);
    let r = run_at(bus.address(), &["ban", "192.0.2.9"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "banned 192.0.2.9 for 1h\n"),
        "{r:?}"
    );
    let ban = daemon.state.lock().unwrap().bans[0].clone();
    assert_eq!(ban.4 - ban.3, 3600);
}

#[test]
fn refusals_exit_1_with_the_dbus_error_name() {
    let bus = PrivateBus::open();
    let _daemon = FakeDaemon::start(bus.address(), None, Callers::Trusted);
    let r = run_at(bus.address(), &["ban", "127.0.0.1"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr,
        "crmonctl: refused: org.crmonban.Error.Protected: 127.0.0.1 is a loopback address\n"
    );
    assert!(r.stdout.is_empty());
    let r = run_at(bus.address(), &["ban", "not-an-ip"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr,
        "crmonctl: refused: org.crmonban.Error.InvalidAddress: not-an-ip is not an IP address or CIDR\n"
    );
    let r = run_at(bus.address(), &["unban", "192.0.2.7"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "crmonctl: 192.0.2.7 was not banned\n"),
        "{r:?}"
    );
    let r = run_at(bus.address(), &["whitelist", "rm", "192.0.2.0/24"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "crmonctl: 192.0.2.0/24 was not whitelisted\n"),
        "{r:?}"
    );
}

#[test]
fn every_command_round_trips() {
    let bus = PrivateBus::open();
    let daemon = FakeDaemon::start(bus.address(), Some(0), Callers::Trusted);
    let a = bus.address();
    let ok = |args: &[&str]| -> String {
        let r = run_at(a, args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        assert!(r.stderr.is_empty(), "{args:?}: {r:?}");
        r.stdout
    };

    let status = ok(&["status"]);
    for line in [
        "running:           true",
        "version:           0.0.0-fake",
        "uptime_seconds:    1h 2m 5s",
        "active_bans:       0",
        "events_processed:  42",
        "services:          ssh, nginx",
        "default_ban_duration:  permanent",
    ] {
        let (key, value) = line.split_once(':').unwrap();
        let found = status
            .lines()
            .find(|l| l.starts_with(&format!("{key}:")))
            .unwrap_or_else(|| panic!("{key} in {status}"));
        assert_eq!(
            found.split_once(':').unwrap().1.trim(),
            value.trim(),
            "{status}"
        );
    }
    assert_eq!(ok(&["list"]), "no active bans\n");
    assert_eq!(ok(&["list", "-f", "json"]), "[]\n");
    assert_eq!(ok(&["ban", "192.0.2.7"]), "banned 192.0.2.7 permanently\n");
    assert_eq!(
        ok(&["ban", "192.0.2.7"]),
        "192.0.2.7 was already banned at least as long (unban it first to shorten the ban)\n"
    );

    assert_eq!(
        ok(&["whitelist", "add", "198.51.100.0/24", "-c", "office"]),
        "whitelisted 198.51.100.0/24\n"
    );
    assert_eq!(
        ok(&["whitelist", "add", "198.51.100.0/24"]),
        "198.51.100.0/24 was already whitelisted\n"
    );
    assert_eq!(
        ok(&["whitelist", "list"]),
        "NETWORK          SOURCE    COMMENT  ADDED AT\n198.51.100.0/24  database  office   2025-11-25T17:06:00Z\n"
    );
    let wl: serde_json::Value =
        serde_json::from_str(&ok(&["whitelist", "list", "-f", "json"])).unwrap();
    assert_eq!(
        wl,
        serde_json::json!([{"network": "198.51.100.0/24", "source": "database", "comment": "office", "added_at": NOW.to_string()}])
    );
    assert_eq!(
        ok(&["whitelist", "check", "198.51.100.0/24"]),
        "protected: 198.51.100.0/24 is whitelisted (database: 198.51.100.0/24)\n"
    );
    assert_eq!(
        ok(&["whitelist", "check", "192.0.2.99"]),
        "192.0.2.99 is not protected: it may be banned\n"
    );
    assert_eq!(
        ok(&["whitelist", "rm", "198.51.100.0/24"]),
        "removed 198.51.100.0/24 from the whitelist\n"
    );

    assert_eq!(
        ok(&["logs", "-l", "5"]),
        "TIME                  ACTION  TARGET     DETAIL\n2025-11-25T17:06:00Z  ban     192.0.2.7  manual ban\n"
    );
    let logs: serde_json::Value = serde_json::from_str(&ok(&["logs", "-o", "json"])).unwrap();
    assert_eq!(logs[0]["time"], NOW);
    // Whitelisting one address says which ban around it was lifted.
    assert_eq!(
        ok(&["ban", "203.0.113.0/24"]),
        "banned 203.0.113.0/24 permanently\n"
    );
    assert_eq!(
        ok(&["whitelist", "add", "203.0.113.9"]),
        "whitelisted 203.0.113.9\nlifted the ban of 203.0.113.0/24: cannot ban 203.0.113.0/24: \
         203.0.113.0/24 contains whitelisted 203.0.113.9 (database: 203.0.113.9)\n"
    );
    assert_eq!(
        ok(&["whitelist", "rm", "203.0.113.9"]),
        "removed 203.0.113.9 from the whitelist\n"
    );

    let intel = ok(&["intel", "192.0.2.7"]);
    assert_eq!(
        intel,
        "IP: 192.0.2.7\nGathered: 2024-01-15 10:30:00 UTC\n--- Location ---\n\
         Country: Netherlands (NL)\n--- Network ---\nASN: AS64496 (Example B.V.)\n\
         ISP: Example B.V.\n"
    );
    let intel: serde_json::Value =
        serde_json::from_str(&ok(&["intel", "192.0.2.7", "-r", "-j"])).unwrap();
    assert_eq!(intel["flags"]["hosting"], true, "-r asks for a refresh");

    let stats = ok(&["stats"]);
    assert!(stats.contains("active bans:  1\n"), "{stats}");
    assert!(stats.contains("by source:    dbus 1\n"), "{stats}");
    // A key this crmonctl does not lay out is listed after the rest.
    assert!(stats.contains("top_services:  ssh\n"), "{stats}");
    let stats: serde_json::Value = serde_json::from_str(&ok(&["stats", "--json"])).unwrap();
    assert_eq!(stats["active_bans"], 1);

    assert_eq!(ok(&["unban", "192.0.2.7"]), "unbanned 192.0.2.7\n");
    ok(&["ban", "192.0.2.10"]);
    ok(&["ban", "192.0.2.11"]);
    assert_eq!(ok(&["flush", "--yes"]), "lifted 2 bans\n");
    assert_eq!(ok(&["reload"]), "configuration reloaded\n");
    assert_eq!(ok(&["stop"]), "crmonban is stopping\n");
    assert!(daemon.state.lock().unwrap().stopped);
}

#[test]
fn root_policy_lets_everyone_read_and_only_root_change() {
    crmonban_testutil::require_root();
    let ctl = crmonctl_for_others();
    let bus = PrivateBus::system_like(&policy_file());
    let daemon = FakeDaemon::start(bus.address(), None, Callers::Checked);
    let a = bus.address();

    // Read-only members are open to uid 65534.
    for args in [
        &["status"][..],
        &["list"],
        &["whitelist", "list"],
        &["logs"],
        &["stats"],
        &["intel", "192.0.2.1"],
    ] {
        let r = run_as(&ctl, NOBODY, a, args);
        assert_eq!(r.code, 0, "nobody {args:?}: {r:?}\n{}", bus.log());
    }
    let reads = daemon.calls().len();

    // Mutating members are refused by the bus itself: the daemon never sees the call.
    for args in [
        &["ban", "192.0.2.7", "-d", "60"][..],
        &["unban", "192.0.2.7"],
        &["whitelist", "add", "192.0.2.0/24"],
        &["whitelist", "rm", "192.0.2.0/24"],
        &["flush", "--yes"],
        &["reload"],
        &["stop"],
    ] {
        let r = run_as(&ctl, NOBODY, a, args);
        assert_eq!(r.code, 1, "nobody {args:?}: {r:?}");
        assert!(
            r.stderr
                .starts_with("crmonctl: refused: org.freedesktop.DBus.Error.AccessDenied: "),
            "nobody {args:?}: {r:?}"
        );
    }
    // `ban` without -d reads Status first; nothing else reached the daemon.
    let after: Vec<String> = daemon.calls()[reads..].to_vec();
    assert!(after.iter().all(|c| c == "Status"), "{after:?}");
    assert!(daemon.state.lock().unwrap().bans.is_empty());

    // Root may.
    let r = run_as(&ctl, 0, a, &["ban", "192.0.2.7", "-d", "60"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run_as(&ctl, 0, a, &["unban", "192.0.2.7"]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn root_daemon_refuses_nobody_when_the_policy_is_missing() {
    crmonban_testutil::require_root();
    let ctl = crmonctl_for_others();
    // An open bus stands for a missing or edited policy file: the daemon's own check remains.
    let bus = PrivateBus::open();
    let daemon = FakeDaemon::start(bus.address(), None, Callers::Checked);
    let r = run_as(
        &ctl,
        NOBODY,
        bus.address(),
        &["ban", "192.0.2.7", "-d", "60"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr,
        "crmonctl: refused: org.freedesktop.DBus.Error.AccessDenied: Ban needs uid 0 or group crmonban\n"
    );
    assert!(daemon.state.lock().unwrap().bans.is_empty());
    let r = run_as(&ctl, NOBODY, bus.address(), &["list", "-f", "simple"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
}

#[test]
fn root_no_daemon_on_a_system_like_bus_exits_3_for_anyone() {
    crmonban_testutil::require_root();
    let ctl = crmonctl_for_others();
    let bus = PrivateBus::system_like(&policy_file());
    for uid in [0, NOBODY] {
        for args in [&["status"][..], &["ban", "192.0.2.7", "-d", "1"]] {
            let r = run_as(&ctl, uid, bus.address(), args);
            assert_eq!(r.code, 3, "uid {uid} {args:?}: {r:?}");
            assert_eq!(
                r.stderr,
                "crmonban is not running (no org.crmonban.Daemon on the system bus)\n"
            );
        }
    }
}
