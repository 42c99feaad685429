//! `[fleet]` between two daemons, each in a network namespace of its own with its own bus and
//! database, through a real PostgreSQL started by the test: a ban made with crmonctl on one is
//! in the other's kernel within a second (measured), an unban follows, the other's whitelist
//! vetoes, `crmonctl status` shows the fleet; a node restarted after missing 10,000 bans
//! catches up in one batch, and bans of a node it does not accept are ignored; a PostgreSQL
//! outage stops no ban; a password file others may read refuses the start, naming it. They
//! panic without root.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crmonban_testutil::{NetNs, PATIENCE, Postgres, PrivateBus, wait_until};
use support::*;

fn fleet_config(pg: &Postgres, node: &str) -> String {
    format!(
        "\n[fleet]\nenabled = true\nurl = \"{}\"\nnode_name = \"{node}\"\nheartbeat = \"1s\"\n",
        pg.url()
    )
}

fn node(pg: &Postgres, name: &str, extra: &str) -> Daemon {
    Daemon::start_on(
        NetNs::new(&format!("fl-{name}")),
        PrivateBus::system_like(&policy_file()),
        &format!("{}{extra}", fleet_config(pg, name)),
    )
}

/// Waits until each of `daemons` says it is connected to the fleet.
fn wait_connected(daemons: &[&Daemon]) {
    for daemon in daemons {
        wait_until("the fleet connected", PATIENCE, || {
            let status = text(&daemon.ctl(&["status"]).stdout);
            status
                .contains("fleet:                 connected to")
                .then_some(())
        })
        .unwrap_or_else(|w| panic!("{w}\n{}", daemon.log()));
    }
}

#[test]
fn root_a_ban_on_one_daemon_is_enforced_on_the_other_within_a_second() {
    let pg = Postgres::start();
    let a = node(&pg, "a", "");
    let b = node(&pg, "b", "");
    wait_connected(&[&a, &b]);
    let started = Instant::now();
    assert!(a.ctl(&["ban", "203.0.113.7", "-d", "1h"]).status.success());
    wait_until("the ban in b's kernel", Duration::from_secs(1), || {
        b.set_contains("blocked_v4", "203.0.113.7").then_some(())
    })
    .unwrap_or_else(|w| panic!("{w}\nb:\n{}", b.log()));
    eprintln!(
        "crmonctl ban on a -> in b's nftables set: {:?}",
        started.elapsed()
    );
    let listed = text(&b.ctl(&["list"]).stdout);
    assert!(listed.contains("fleet:a"), "{listed}");

    assert!(a.ctl(&["unban", "203.0.113.7"]).status.success());
    wait_until("the unban in b's kernel", PATIENCE, || {
        (!b.set_contains("blocked_v4", "203.0.113.7")).then_some(())
    })
    .unwrap();

    // b's whitelist vetoes a's ban of b's trusted network.
    assert!(
        b.ctl(&["whitelist", "add", "10.9.0.0/16", "-c", "b's office"])
            .status
            .success()
    );
    assert!(a.ctl(&["ban", "10.9.1.1", "-d", "1h"]).status.success());
    assert!(a.ctl(&["ban", "203.0.113.99", "-d", "1h"]).status.success());
    wait_until("the marker ban in b's kernel", PATIENCE, || {
        b.set_contains("blocked_v4", "203.0.113.99").then_some(())
    })
    .unwrap();
    assert!(!b.set_contains("blocked_v4", "10.9.1.1"));
    let status = text(&b.ctl(&["status"]).stdout);
    assert!(status.contains("fleet_vetoed:          1"), "{status}");
    assert!(status.contains("fleet_lag:             0"), "{status}");

    // What the fleet holds, asked from either node.
    let nodes = text(&b.ctl(&["fleet", "nodes"]).stdout);
    let names: Vec<&str> = nodes
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["a", "b"], "{nodes}");
    assert!(
        nodes.lines().skip(1).all(|l| l.ends_with("alive")),
        "{nodes}"
    );
    let bans = text(&b.ctl(&["fleet", "bans"]).stdout);
    let row = bans
        .lines()
        .find(|l| l.starts_with("203.0.113.99"))
        .unwrap_or_else(|| panic!("{bans}"));
    assert!(row.contains(" a "), "{bans}");
    assert!(!bans.contains("203.0.113.7 "), "unbanned: {bans}");
}

#[test]
fn root_fleet_queries_without_a_fleet_say_so() {
    let daemon = Daemon::start("");
    let out = daemon.ctl(&["fleet", "nodes"]);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stderr);
    assert!(said.contains("the fleet is not enabled"), "{said}");
    assert!(text(&daemon.ctl(&["status"]).stdout).contains("fleet:                 off"));
}

#[test]
fn root_a_password_file_others_may_read_refuses_the_start() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("fleet.password");
    std::fs::write(&password, "not-used\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o644)).unwrap();
    let host = NetNs::new("fl-pw");
    let mut daemon = Daemon {
        child: None,
        dir: tempfile::tempdir().unwrap(),
        config: Default::default(),
        bus: PrivateBus::system_like(&policy_file()),
        host,
        mount_ns_of: None,
        crmonctl_for_others: Default::default(),
    };
    daemon.config = daemon.dir.path().join("config.toml");
    write_config(
        &daemon.config,
        daemon.dir.path(),
        &format!(
            "{}password_file = \"{}\"\n",
            fleet_config(&pg, "a"),
            password.display()
        ),
    );
    daemon.launch(&[]);
    let status = daemon.wait_exit();
    assert!(!status.success());
    let log = daemon.log();
    assert!(
        log.contains("password_file") && log.contains("group or others may read it (mode 644)"),
        "{log}"
    );
    assert!(!log.contains("not-used"), "{log}");
}

/// PostgreSQL going away stops no local ban: the publication waits in a's outbox (status says
/// so) and reaches b when the database is back.
#[test]
fn root_a_fleet_outage_stops_no_ban_and_publication_resumes() {
    let mut pg = Postgres::start();
    let a = node(&pg, "a", "");
    let b = node(&pg, "b", "");
    wait_connected(&[&a, &b]);
    pg.stop();
    assert!(a.ctl(&["ban", "203.0.113.66", "-d", "1h"]).status.success());
    assert!(
        a.set_contains("blocked_v4", "203.0.113.66"),
        "local bans go on"
    );
    wait_until("a's publication queued", PATIENCE, || {
        let status = text(&a.ctl(&["status"]).stdout);
        status.contains("fleet_outbox:          1").then_some(())
    })
    .unwrap_or_else(|w| panic!("{w}\n{}", text(&a.ctl(&["status"]).stdout)));
    assert!(!b.set_contains("blocked_v4", "203.0.113.66"));
    pg.start_again();
    wait_until(
        "the ban on b after the outage",
        Duration::from_secs(60),
        || b.set_contains("blocked_v4", "203.0.113.66").then_some(()),
    )
    .unwrap_or_else(|w| panic!("{w}\na:\n{}\nb:\n{}", a.log(), b.log()));
    wait_until("a's outbox empty", PATIENCE, || {
        let status = text(&a.ctl(&["status"]).stdout);
        status.contains("fleet_outbox:          0").then_some(())
    })
    .unwrap();
}

/// Bans published to the fleet by `node` in one statement, as its publisher does (one
/// transaction, one notification): `count` addresses of 198.18.0.0/15 from `first`.
fn publish_as(pg: &Postgres, node: &str, first: u32, count: u32) {
    pg.psql(&format!(
        "WITH added AS (
           INSERT INTO fleet_changes (node, kind, target, reason, service, expires_at, created_at)
           SELECT '{node}', 'ban', '198.18.' || (i / 256) || '.' || (i % 256), 'seen on {node}',
                  'ssh', extract(epoch FROM now())::bigint + 3600, extract(epoch FROM now())::bigint
             FROM generate_series({first}, {last}) AS i
           RETURNING id)
         SELECT pg_notify('crmonban_fleet', max(id)::text) FROM added",
        last = first + count - 1
    ));
}

#[test]
fn root_a_node_back_after_missing_10000_bans_catches_up_in_one_batch_and_ignores_unaccepted_nodes()
{
    let pg = Postgres::start();
    let mut b = node(&pg, "b", "accept = [\"a\"]\n");
    wait_connected(&[&b]);
    // A node b does not accept: ignored, live.
    publish_as(&pg, "c", 60_000, 5);
    wait_until("b to read c's bans", PATIENCE, || {
        let status = text(&b.ctl(&["status"]).stdout);
        status.contains("fleet_ignored:         5").then_some(())
    })
    .unwrap_or_else(|w| panic!("{w}\n{}", text(&b.ctl(&["status"]).stdout)));
    assert!(b.set_elements("blocked_v4").is_empty());

    // b is down while a publishes 10,000 bans.
    b.signal("TERM");
    assert!(b.wait_exit().success());
    publish_as(&pg, "a", 0, 10_000);
    let started = Instant::now();
    b.spawn(&[]);
    wait_until("b to hold a's 10,000 bans", Duration::from_secs(60), || {
        (b.set_elements("blocked_v4").len() == 10_000).then_some(())
    })
    .unwrap_or_else(|w| panic!("{w}\n{}", b.log()));
    eprintln!(
        "b restarted -> 10,000 missed bans in its nftables set: {:?}",
        started.elapsed()
    );
    assert!(b.set_contains("blocked_v4", "198.18.39.15"));
    assert!(!b.set_contains("blocked_v4", "198.18.234.96"), "c's ban");
    let log = b.log();
    let batches: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("banned in one batch"))
        .collect();
    assert_eq!(batches.len(), 1, "{log}");
    assert!(batches[0].contains("banned=10000"), "{}", batches[0]);
    let listed = text(&b.ctl(&["list"]).stdout);
    let row = listed
        .lines()
        .find(|l| l.starts_with("198.18.0.0 "))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(row.contains("fleet:a"), "{row}");
}
