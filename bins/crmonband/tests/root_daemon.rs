//! The daemon end to end, as an administrator meets it: `crmonband start -f` inside a network
//! namespace of its own, on a private dbus-daemon configured like the system bus with the
//! shipped policy file, driven by `crmonctl` and by a real D-Bus subscriber. Packets come from
//! a second namespace. Every test panics without root.

mod support;

use std::io::Read;
use std::net::IpAddr;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crmonban_core::Target;
use crmonban_dbus::{DaemonProxy, Error as DbusError};
use crmonban_testutil::{
    NOBODY, NetNs, PATIENCE, PrivateBus, QUIET, command_as, udp_reaches, wait_until,
};
use futures_util::StreamExt;
use support::*;

#[test]
fn root_ban_and_unban_through_crmonctl_reach_kernel_database_and_subscribers() {
    let daemon = Daemon::start("");
    let attacker = attacker_for(&daemon.host);
    let host_addr: IpAddr = HOST_V4.parse().unwrap();
    assert!(
        udp_reaches(&attacker, &daemon.host, host_addr, PATIENCE),
        "traffic must pass before the ban"
    );

    runtime().block_on(async {
        let proxy = proxy(&daemon.bus).await;
        let mut added = proxy.receive_ban_added().await.unwrap();
        let mut removed = proxy.receive_ban_removed().await.unwrap();
        // PropertiesChanged, as the introspection promises for ActiveBanCount.
        let mut count = proxy.receive_active_ban_count_changed().await;
        let mut next_count = async || {
            let change = tokio::time::timeout(PATIENCE, count.next())
                .await
                .expect("PropertiesChanged for ActiveBanCount")
                .unwrap();
            change.get().await.unwrap()
        };

        let out = daemon.ctl(&["ban", ATTACKER_V4, "-d", "600", "-r", "port scan"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let signal = tokio::time::timeout(PATIENCE, added.next())
            .await
            .unwrap()
            .unwrap();
        let args = signal.args().unwrap();
        assert_eq!(
            (args.ip, args.reason, args.source, args.duration_secs),
            (ATTACKER_V4, "port scan", "dbus", 600)
        );
        assert!(daemon.set_contains("blocked_v4", ATTACKER_V4));
        assert!(proxy.is_banned(ATTACKER_V4).await.unwrap());
        assert_eq!(next_count().await, 1);

        let store = crmonban_store::Store::open(&daemon.db()).await.unwrap();
        let row = store
            .active_ban(
                &Target::parse(ATTACKER_V4).unwrap(),
                crmonban_core::unix_now(),
            )
            .await
            .unwrap()
            .expect("a row for the ban");
        assert_eq!(row.reason, "port scan");
        assert!(
            !udp_reaches(&attacker, &daemon.host, host_addr, QUIET),
            "the banned peer still gets through"
        );

        let out = daemon.ctl(&["unban", ATTACKER_V4]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let signal = tokio::time::timeout(PATIENCE, removed.next())
            .await
            .unwrap()
            .unwrap();
        let args = signal.args().unwrap();
        assert_eq!((args.ip, args.reason), (ATTACKER_V4, "unban"));
        assert_eq!(next_count().await, 0);
        assert!(!daemon.set_contains("blocked_v4", ATTACKER_V4));
        assert!(
            udp_reaches(&attacker, &daemon.host, host_addr, PATIENCE),
            "traffic must pass after the unban"
        );
        let history = store
            .ban_history(&Target::parse(ATTACKER_V4).unwrap())
            .await
            .unwrap();
        assert_eq!(history[0].unban_reason.as_deref(), Some("unban"));
    });
}

#[test]
fn root_timed_ban_expires_with_signal_and_history() {
    let daemon = Daemon::start("");
    runtime().block_on(async {
        let proxy = proxy(&daemon.bus).await;
        let mut removed = proxy.receive_ban_removed().await.unwrap();
        assert!(proxy.ban("192.0.2.33", 2, "short").await.unwrap());
        assert!(daemon.set_contains("blocked_v4", "192.0.2.33"));
        let signal = tokio::time::timeout(PATIENCE, removed.next())
            .await
            .unwrap()
            .unwrap();
        let args = signal.args().unwrap();
        assert_eq!((args.ip, args.reason), ("192.0.2.33", "expired"));
        assert!(
            !daemon.set_contains("blocked_v4", "192.0.2.33"),
            "kernel and database disagree"
        );
        assert!(proxy.get_bans().await.unwrap().is_empty());
        let store = crmonban_store::Store::open(&daemon.db()).await.unwrap();
        let history = store
            .ban_history(&Target::parse("192.0.2.33").unwrap())
            .await
            .unwrap();
        assert_eq!(history.len(), 1, "expired bans are kept as history");
        assert_eq!(history[0].unban_reason.as_deref(), Some("expired"));
    });
    // The expiry is in the daemon's log, as the ban was.
    let log = daemon.log();
    assert!(
        log.lines()
            .any(|l| l.contains("ban expired") && l.contains("192.0.2.33")),
        "{log}"
    );
}

#[test]
fn root_kill_9_then_restart_restores_active_bans_only() {
    let mut daemon = Daemon::start("");
    runtime().block_on(async {
        let proxy = proxy(&daemon.bus).await;
        assert!(proxy.ban("198.51.100.1", 0, "permanent").await.unwrap());
        assert!(proxy.ban("198.51.100.2", 600, "ten minutes").await.unwrap());
        assert!(proxy.ban("198.51.100.3", 2, "two seconds").await.unwrap());
        assert!(proxy.ban("2001:db8::9", 600, "v6").await.unwrap());
        assert!(proxy.ban("203.0.113.0/24", 0, "network").await.unwrap());
    });
    daemon.signal("KILL");
    daemon.wait_exit();
    // Someone empties the sets while the daemon is down; the 2 s ban runs out meanwhile.
    daemon
        .host
        .nft(&["flush", "set", "inet", "crmonban", "blocked_v4"]);
    daemon.host.nft(&[
        "add",
        "element",
        "inet",
        "crmonban",
        "blocked_v4",
        "{ 192.0.2.250 }",
    ]);
    std::thread::sleep(Duration::from_millis(2500));
    daemon.spawn(&[]);

    let v4 = daemon
        .host
        .nft(&["list", "set", "inet", "crmonban", "blocked_v4"]);
    assert!(
        v4.contains("198.51.100.1") && v4.contains("198.51.100.2"),
        "{v4}"
    );
    assert!(
        !v4.contains("198.51.100.3"),
        "an expired ban was restored:\n{v4}"
    );
    assert!(
        !v4.contains("192.0.2.250"),
        "an element not in the database survived the restore:\n{v4}"
    );
    // The timed ban keeps its remaining time, not a fresh ten minutes.
    let timeout_line = v4
        .lines()
        .find(|l| l.contains("198.51.100.2"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        timeout_line.contains("expires 9m") || timeout_line.contains("expires 8m"),
        "{v4}"
    );
    assert!(daemon.set_contains("blocked_v6", "2001:db8::9"));
    assert!(daemon.set_contains("blocked_v4_net", "203.0.113.0/24"));
    let bans = runtime().block_on(async { proxy(&daemon.bus).await.get_bans().await.unwrap() });
    let ips: Vec<&str> = bans.iter().map(|b| b.0.as_str()).collect();
    assert_eq!(bans.len(), 4, "{ips:?}");
}

#[test]
fn root_flushed_ruleset_is_repaired_on_the_next_tick() {
    let daemon = Daemon::start("");
    runtime().block_on(async {
        let proxy = proxy(&daemon.bus).await;
        assert!(proxy.ban("192.0.2.44", 0, "keep me").await.unwrap());
    });
    daemon.host.nft(&["flush", "ruleset"]);
    // The repair tick is a few seconds; how soon is the engine tests' and the benchmarks'
    // business, this test only needs it to happen.
    wait_until("the flushed ruleset to be repaired", PATIENCE, || {
        let out = daemon
            .host
            .exec("nft", &["list", "set", "inet", "crmonban", "blocked_v4"]);
        (out.status.success() && text(&out.stdout).contains("192.0.2.44")).then_some(())
    })
    .unwrap_or_else(|waited| panic!("{waited}:\n{}", daemon.log()));
    let table = daemon.host.nft(&["list", "table", "inet", "crmonban"]);
    assert!(
        table.contains("hook input") && table.contains("hook forward"),
        "{table}"
    );
}

fn assert_denied(out: &Output, what: &str) {
    assert_eq!(out.status.code(), Some(1), "{what}: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("org.freedesktop.DBus.Error.AccessDenied"),
        "{what}: {}",
        text(&out.stderr)
    );
}

fn check_unprivileged_caller(daemon: &Daemon) {
    assert!(
        daemon
            .ctl(&["ban", "192.0.2.55", "-d", "600"])
            .status
            .success()
    );
    for (args, what) in [
        (&["ban", "192.0.2.56"][..], "Ban"),
        (&["unban", "192.0.2.55"][..], "Unban"),
        (&["flush", "--yes"][..], "Flush"),
        (&["stop"][..], "Stop"),
    ] {
        assert_denied(&daemon.ctl_as_nobody(args), what);
    }
    for args in [&["status"][..], &["list", "-f", "json"][..]] {
        let out = daemon.ctl_as_nobody(args);
        assert!(
            out.status.success(),
            "{args:?} as nobody: {}",
            text(&out.stderr)
        );
    }
    let list = text(&daemon.ctl_as_nobody(&["list", "-f", "simple"]).stdout);
    assert!(list.contains("192.0.2.55"), "{list}");
    // IsBanned and the properties, through dbus-send as nobody.
    for (member, arg, expect) in [
        (
            "org.crmonban.Daemon.IsBanned",
            Some("string:192.0.2.55"),
            "boolean true",
        ),
        ("org.freedesktop.DBus.Properties.Get", None, "uint64 1"),
    ] {
        let mut cmd = daemon.ctl_command(command_as("dbus-send", NOBODY, NOBODY));
        cmd.args([
            "--system",
            "--print-reply",
            "--dest=org.crmonban.Daemon",
            "/org/crmonban/Daemon",
            member,
        ]);
        match arg {
            Some(a) => cmd.arg(a),
            None => cmd.args(["string:org.crmonban.Daemon", "string:ActiveBanCount"]),
        };
        let out = cmd.output().unwrap();
        assert!(
            out.status.success() && text(&out.stdout).contains(expect),
            "{member}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    assert!(
        daemon.set_contains("blocked_v4", "192.0.2.55"),
        "a refused unban changed the kernel"
    );
}

#[test]
fn root_unprivileged_callers_may_read_but_not_change() {
    // With the shipped policy the bus refuses first.
    let daemon = Daemon::start("");
    check_unprivileged_caller(&daemon);
    // On a bus without any policy the daemon's own check refuses the same calls.
    let open = Daemon::start_on(NetNs::new("d-open"), PrivateBus::open(), "");
    check_unprivileged_caller(&open);
    assert!(
        !open.bus.log().contains("org.crmonban.Daemon.conf"),
        "the open bus must not include the policy"
    );
}

/// Oversized arguments from any caller are refused before any work, with an error that names
/// the argument and its size and never echoes it; the daemon stays on the bus and keeps
/// answering (a 33 MB address once got the daemon disconnected by an echoing error).
#[test]
fn root_oversized_arguments_are_refused_without_echo_and_the_daemon_stays() {
    let daemon = Daemon::start("");
    runtime().block_on(async {
        // 30 MiB: under the bus's 32 MiB message limit, so it reaches the daemon (an echo of
        // it in the error reply would go over the limit and cost the daemon its connection).
        let huge = "1".repeat(30 * 1024 * 1024);
        let started = std::time::Instant::now();
        match proxy(&daemon.bus).await.is_banned(&huge).await {
            Err(DbusError::InvalidAddress(msg)) => {
                assert!(
                    msg.len() < 300,
                    "the error echoes its input: {} bytes",
                    msg.len()
                );
                assert!(
                    msg.contains("ip") && msg.contains("31457280 bytes"),
                    "{msg}"
                );
            }
            other => panic!("IsBanned(30 MiB) gave {other:?}"),
        }
        // Over the bus's limit: the bus refuses it (and drops that client); the daemon is
        // not concerned.
        let too_big = "1".repeat(33 * 1024 * 1024);
        assert!(proxy(&daemon.bus).await.is_banned(&too_big).await.is_err());
        let proxy = proxy(&daemon.bus).await;
        let reason = "r".repeat(1024 * 1024);
        match proxy.ban("203.0.113.9", 60, &reason).await {
            Err(DbusError::ZBus(e)) => {
                let shown = format!("{e:?} {e}");
                assert!(shown.contains("InvalidArgs"), "{shown}");
                assert!(
                    shown.contains("reason") && shown.contains("1048576 bytes"),
                    "{shown}"
                );
                assert!(shown.len() < 600, "{}", shown.len());
            }
            other => panic!("Ban with a 1 MB reason gave {other:?}"),
        }
        // A line break or escape in a reason would forge lines of the daemon's own log.
        let forged = "x\n2026-12-03T09:36:15Z  INFO ban{target=198.18.0.66 source=dbus}: forged";
        for reason in [forged, "\u{1b}[2J"] {
            match proxy.ban("203.0.113.9", 60, reason).await {
                Err(DbusError::ZBus(e)) => {
                    let shown = format!("{e:?}");
                    assert!(shown.contains("control character"), "{shown}");
                    assert!(!shown.contains("198.18.0.66"), "{shown}");
                }
                other => panic!("Ban with reason {reason:?} gave {other:?}"),
            }
        }
        let comment = "c".repeat(100_000);
        match proxy.whitelist_add("203.0.113.10", &comment).await {
            Err(DbusError::ZBus(e)) => {
                let shown = format!("{e:?}");
                assert!(
                    shown.contains("InvalidArgs") && shown.contains("comment"),
                    "{shown}"
                )
            }
            other => panic!("WhitelistAdd with a 100 kB comment gave {other:?}"),
        }
        // Still on the bus and answering, quickly.
        let status = tokio::time::timeout(Duration::from_secs(5), proxy.status())
            .await
            .expect("Status within 5 s");
        assert!(status.is_ok(), "{status:?}");
        assert!(started.elapsed() < PATIENCE);
        assert!(proxy.get_bans().await.unwrap().is_empty());
        // Huge arguments cost their size while the message is read, no more: five more of
        // them keep the daemon's peak memory far from the gigabyte they once cost.
        for _ in 0..5 {
            assert!(proxy.is_banned(&huge).await.is_err());
        }
    });
    let pid = daemon.child.as_ref().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    eprintln!(
        "daemon peak RSS after 30 MiB arguments: {} MiB",
        peak_kb / 1024
    );
    assert!(peak_kb < 256 * 1024, "peak RSS {} MiB", peak_kb / 1024);
}

/// A second crmonband (another configuration, another table) on a bus where one already owns
/// the name refuses to start, saying who owns it, and changes nothing: the first keeps the
/// name and its bans.
#[test]
fn root_a_second_instance_refuses_to_start_while_one_owns_the_name() {
    let daemon = Daemon::start("");
    runtime().block_on(async {
        proxy(&daemon.bus)
            .await
            .ban("203.0.113.9", 600, "first")
            .await
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    write_config(
        &config,
        dir.path(),
        "\n[nftables]\ntable_name = \"crmb_second\"\n",
    );
    let out = daemon.host.run(|| {
        Command::new(env!("CARGO_BIN_EXE_crmonband"))
            .args(["-c", config.to_str().unwrap(), "start", "-f"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", daemon.bus.address())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    });
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("org.crmonban.Daemon is already owned")
            && stderr.contains("another crmonband"),
        "{stderr}"
    );
    assert!(
        !daemon.host.nft(&["list", "tables"]).contains("crmb_second"),
        "the refused instance set up its table"
    );
    runtime().block_on(async {
        let proxy = proxy(&daemon.bus).await;
        assert!(proxy.is_banned("203.0.113.9").await.unwrap());
    });
    assert!(daemon.set_contains("blocked_v4", "203.0.113.9"));
}

/// When the bus goes away and comes back (dbus-daemon restarted), the daemon takes its name
/// again by itself and answers; banning never stopped.
#[test]
fn root_the_daemon_reconnects_after_the_bus_restarts() {
    let mut daemon = Daemon::start("");
    daemon.bus.restart();
    let answered = wait_until("the daemon back on the restarted bus", PATIENCE, || {
        runtime().block_on(async {
            let conn = zbus::connection::Builder::address(daemon.bus.address())
                .build()
                .await
                .ok()?;
            let proxy = DaemonProxy::new(&conn).await.ok()?;
            proxy.status().await.ok()
        })
    });
    answered.unwrap_or_else(|waited| panic!("{waited}\n{}", daemon.log()));
    runtime().block_on(async {
        let proxy = proxy(&daemon.bus).await;
        assert!(proxy.ban("203.0.113.9", 600, "after").await.unwrap());
    });
    assert!(daemon.set_contains("blocked_v4", "203.0.113.9"));
    assert!(
        daemon.log().contains("lost the D-Bus connection"),
        "{}",
        daemon.log()
    );
}

/// GetBansPaged lists every ban in address order, page by page; crmonctl list pages through
/// it.
#[test]
fn root_bans_are_listed_in_pages_in_address_order() {
    let daemon = Daemon::start("");
    runtime().block_on(async {
        let proxy = proxy(&daemon.bus).await;
        for target in [
            "203.0.113.9",
            "2001:db8::5",
            "198.51.100.0/24",
            "203.0.113.1",
        ] {
            proxy.ban(target, 600, "paging").await.unwrap();
        }
        let first = proxy.get_bans_paged(0, 3).await.unwrap();
        let rest = proxy.get_bans_paged(3, 3).await.unwrap();
        let order: Vec<&str> = first.iter().chain(&rest).map(|b| b.0.as_str()).collect();
        assert_eq!(
            order,
            [
                "198.51.100.0/24",
                "203.0.113.1",
                "203.0.113.9",
                "2001:db8::5"
            ]
        );
        assert_eq!(rest.len(), 1, "fewer than asked: the end");
        assert!(proxy.get_bans_paged(4, 3).await.unwrap().is_empty());
        assert_eq!(proxy.get_bans().await.unwrap().len(), 4);
    });
    let out = daemon.ctl(&["list", "-f", "simple"]);
    assert_eq!(
        text(&out.stdout),
        "198.51.100.0/24\n203.0.113.1\n203.0.113.9\n2001:db8::5\n"
    );
}

#[test]
fn root_bad_requests_get_named_errors_and_the_daemon_keeps_answering() {
    let daemon = Daemon::start("");
    runtime().block_on(async {
        let proxy = proxy(&daemon.bus).await;
        for bad in ["not-an-ip", "10.0.0.0/33", "2001:db8::/129", ""] {
            match proxy.ban(bad, 60, "x").await {
                Err(DbusError::InvalidAddress(msg)) => assert!(msg.contains("ip"), "{msg}"),
                other => panic!("Ban({bad:?}) gave {other:?}"),
            }
        }
        for protected in ["127.0.0.1", "::1", "0.0.0.0/0"] {
            match proxy.ban(protected, 60, "x").await {
                Err(DbusError::Protected(msg)) => {
                    assert!(msg.contains(protected.split('/').next().unwrap()), "{msg}")
                }
                other => panic!("Ban({protected}) gave {other:?}"),
            }
        }
        assert!(proxy.status().await.is_ok(), "the daemon stopped answering");
    });
    // An address of the daemon's own interface.
    let _attacker = attacker_for(&daemon.host);
    // The engine re-reads the host's addresses on its repair tick, and says so when they change.
    wait_until("the daemon to see its new addresses", PATIENCE, || {
        daemon
            .log()
            .lines()
            .any(|l| {
                l.contains("addresses changed") && l.contains(HOST_V4) && l.contains("fd77::2")
            })
            .then_some(())
    })
    .unwrap_or_else(|waited| panic!("{waited}:\n{}", daemon.log()));
    runtime().block_on(async {
        let proxy = proxy(&daemon.bus).await;
        for own in [HOST_V4, "fd77::2", "10.77.0.0/24"] {
            match proxy.ban(own, 60, "x").await {
                Err(DbusError::Protected(_)) => {}
                other => panic!("Ban({own}) of the host's own address gave {other:?}"),
            }
        }
        let out = daemon.ctl(&["ban", "not-an-ip"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("org.crmonban.Error.InvalidAddress"),
            "{}",
            text(&out.stderr)
        );
        assert!(
            proxy.get_bans().await.unwrap().is_empty(),
            "a refused ban left something behind"
        );
    });
}

#[test]
fn root_invalid_config_refuses_start_and_sighup_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[general]\ndefault_ban_duration = \"soon\"\n\n[services.ssh]\nmax_failures = 0\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_crmonband"))
        .args(["-c", bad.to_str().unwrap(), "start", "-f"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(":2: general.default_ban_duration")
            && stderr.contains(":5: services.ssh.max_failures"),
        "{stderr}"
    );

    let daemon = Daemon::start("default_ban_duration = 77");
    let default_ban = || {
        runtime().block_on(async {
            let status = proxy(&daemon.bus).await.status().await.unwrap();
            u32::try_from(status["default_ban_duration"].clone()).unwrap()
        })
    };
    assert_eq!(default_ban(), 77);
    std::fs::write(&daemon.config, "[general]\nlog_levle = \"debug\"\n").unwrap();
    daemon.signal("HUP");
    wait_until("the refused reload to be reported", PATIENCE, || {
        daemon.log().contains("log_levle").then_some(())
    })
    .unwrap_or_else(|waited| {
        panic!(
            "{waited}; the refused reload must say why:\n{}",
            daemon.log()
        )
    });
    assert_eq!(
        default_ban(),
        77,
        "an invalid reload replaced the running config"
    );
    write_config(
        &daemon.config,
        daemon.dir.path(),
        "default_ban_duration = 88",
    );
    daemon.signal("HUP");
    wait_until("a valid reload to apply", PATIENCE, || {
        (default_ban() == 88).then_some(())
    })
    .unwrap_or_else(|waited| panic!("{waited}:\n{}", daemon.log()));
}

/// SIGHUP (logrotate's reload) and SIGTERM (systemd's stop) can come while the daemon is still
/// starting; their default action would kill it half-way, leaving its pid file behind.
#[test]
fn root_signals_during_start_up_are_handled_not_fatal() {
    let mut daemon = Daemon::start("");
    daemon.signal("TERM");
    assert!(daemon.wait_exit().success(), "{}", daemon.log());
    let pid_file = daemon.dir.path().join("crmonband.pid");
    let wait_pid_file = || {
        wait_until("the pid file", PATIENCE, || pid_file.exists().then_some(()))
            .unwrap_or_else(|waited| panic!("{waited}"));
    };

    // Reload requests from the moment the pid file exists until the daemon answers.
    daemon.launch(&[]);
    wait_pid_file();
    let pid = daemon.child.as_ref().unwrap().id().to_string();
    let answering = std::sync::atomic::AtomicBool::new(false);
    let sent = std::thread::scope(|s| {
        let hups = s.spawn(|| {
            let mut sent = 0;
            while !answering.load(std::sync::atomic::Ordering::Relaxed) {
                crmonban_testutil::run("kill", &["-HUP", &pid]);
                sent += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            sent
        });
        daemon.wait_answering();
        answering.store(true, std::sync::atomic::Ordering::Relaxed);
        hups.join().unwrap()
    });
    assert!(sent > 0);
    // Held during start-up, the reload runs once the daemon waits for signals.
    wait_until("the held SIGHUP to reload", PATIENCE, || {
        daemon
            .log()
            .contains("configuration reloaded")
            .then_some(())
    })
    .unwrap_or_else(|waited| panic!("{waited}:\n{}", daemon.log()));
    daemon.signal("TERM");
    assert!(daemon.wait_exit().success(), "{}", daemon.log());

    // A stop request as soon as the pid file exists: start-up completes, then a clean stop.
    daemon.launch(&[]);
    wait_pid_file();
    daemon.signal("TERM");
    let status = daemon.wait_exit();
    assert!(status.success(), "{status}:\n{}", daemon.log());
    assert!(!pid_file.exists(), "the pid file was left behind");
    assert!(daemon.log().contains("SIGTERM"), "{}", daemon.log());
}

#[test]
fn root_sigterm_announces_stopping_leaves_bans_and_removes_the_pid_file() {
    let mut daemon = Daemon::start("");
    let pid_file = daemon.dir.path().join("crmonband.pid");
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        daemon.child.as_ref().unwrap().id().to_string()
    );
    runtime().block_on(async {
        let proxy = proxy(&daemon.bus).await;
        assert!(proxy.ban("192.0.2.66", 0, "stays").await.unwrap());
        let mut stopping = proxy.receive_daemon_stopping().await.unwrap();
        daemon.signal("TERM");
        if tokio::time::timeout(PATIENCE, stopping.next())
            .await
            .is_err()
        {
            panic!("no DaemonStopping within {PATIENCE:?}:\n{}", daemon.log());
        }
    });
    let status = daemon.wait_exit();
    assert!(status.success(), "{status}:\n{}", daemon.log());
    assert!(!pid_file.exists(), "the pid file was left behind");
    assert!(
        daemon.set_contains("blocked_v4", "192.0.2.66"),
        "bans must stay in the kernel after a stop"
    );
}

#[test]
fn root_running_object_matches_the_shipped_introspection() {
    let daemon = Daemon::start("");
    let out = daemon
        .ctl_command(Command::new("dbus-send"))
        .args([
            "--system",
            "--print-reply=literal",
            "--dest=org.crmonban.Daemon",
            "/org/crmonban/Daemon",
            "org.freedesktop.DBus.Introspectable.Introspect",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let live = text(&out.stdout);
    let shipped =
        std::fs::read_to_string(workspace().join("dbus/org.crmonban.Daemon.xml")).unwrap();
    let section = |xml: &str| -> String {
        let start = xml
            .find("<interface name=\"org.crmonban.Daemon\">")
            .expect("interface in XML");
        let end = start + xml[start..].find("</interface>").unwrap();
        xml[start..end]
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        section(&live),
        section(&shipped),
        "the running object differs from dbus/org.crmonban.Daemon.xml"
    );
    // Every member of the original README, with its original names.
    for member in [
        "<method name=\"Status\">",
        "<method name=\"Ban\">",
        "<arg name=\"ip\" type=\"s\" direction=\"in\"/>",
        "<arg name=\"duration_secs\" type=\"u\" direction=\"in\"/>",
        "<arg name=\"reason\" type=\"s\" direction=\"in\"/>",
        "<method name=\"Unban\">",
        "<method name=\"GetBans\">",
        "<method name=\"IsBanned\">",
        "<property name=\"Running\" type=\"b\" access=\"read\">",
        "<property name=\"ActiveBanCount\" type=\"t\" access=\"read\"/>",
        "<property name=\"UptimeSeconds\" type=\"t\" access=\"read\">",
        "<property name=\"EventsProcessed\" type=\"t\" access=\"read\">",
        // Only ActiveBanCount announces its changes; the others say they do not.
        "<annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=\"const\"/>",
        "<annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=\"false\"/>",
        "<signal name=\"BanAdded\">",
        "<arg name=\"source\" type=\"s\"/>",
        "<signal name=\"BanRemoved\">",
        "<signal name=\"AttackDetected\">",
        "<arg name=\"service\" type=\"s\"/>",
        "<arg name=\"event_type\" type=\"s\"/>",
        "<signal name=\"DaemonStarted\">",
        "<signal name=\"DaemonStopping\">",
    ] {
        assert!(
            live.contains(member),
            "introspection lacks {member}:\n{live}"
        );
    }
}

#[test]
fn root_systemd_notify_ready_and_stopping() {
    let host = NetNs::new("d-notify");
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut daemon = Daemon {
        child: None,
        config: dir.path().join("config.toml"),
        dir,
        bus: PrivateBus::system_like(&policy_file()),
        host,
        mount_ns_of: None,
        crmonctl_for_others: std::sync::OnceLock::new(),
    };
    write_config(&daemon.config, daemon.dir.path(), "");
    daemon.spawn(&[("NOTIFY_SOCKET", socket_path.to_str().unwrap())]);
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).unwrap();
    assert!(text(&buf[..n]).contains("READY=1"), "{}", text(&buf[..n]));
    daemon.signal("TERM");
    let n = socket.recv(&mut buf).unwrap();
    assert!(
        text(&buf[..n]).contains("STOPPING=1"),
        "{}",
        text(&buf[..n])
    );
    daemon.wait_exit();
}

#[test]
fn root_background_start_returns_when_ready() {
    let host = NetNs::new("d-bg");
    let bus = PrivateBus::system_like(&policy_file());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    write_config(&config, dir.path(), "");
    let out = host.run(|| {
        Command::new(env!("CARGO_BIN_EXE_crmonband"))
            .args(["-c", config.to_str().unwrap(), "start"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
            .output()
            .unwrap()
    });
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("started in the background"),
        "{}",
        text(&out.stdout)
    );
    let pid: i32 = std::fs::read_to_string(dir.path().join("crmonband.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // It already answers: `start` returned only once the daemon was ready.
    let status = Command::new(crmonctl_path())
        .arg("status")
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", text(&status.stderr));
    let mut log = String::new();
    std::fs::File::open(dir.path().join("crmonband.log"))
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("bans restored"), "{log}");
    crmonban_testutil::run("kill", &["-TERM", &pid.to_string()]);
    // The daemon is not our child (it detached); it has stopped once /proc shows it gone or a
    // zombie waiting for init.
    let running = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.split_whitespace()
                .nth(2)
                .is_none_or(|state| state != "Z")
        })
    };
    wait_until("the background daemon to stop", PATIENCE, || {
        (!running(pid)).then_some(())
    })
    .unwrap_or_else(|waited| panic!("{waited}"));
}

/// Three failed password logins from `attacker` to the sshd on the host's port 2222, each over
/// a connection that must still get through (no ban before max_failures = 3).
fn three_failed_logins(daemon: &Daemon, attacker: &NetNs) {
    let host_addr: IpAddr = HOST_V4.parse().unwrap();
    for user in ["root", "admin", "nosuchuser"] {
        assert!(
            crmonban_testutil::tcp_connects(attacker, &daemon.host, host_addr, PATIENCE),
            "the attacker was cut off before max_failures:\n{}",
            daemon.log()
        );
        crmonban_testutil::failed_ssh_login(attacker, HOST_V4, 2222, user);
    }
}

/// The next BanAdded signal (waiting up to [`PATIENCE`]); the panic shows `evidence()` and the daemon's log.
async fn next_ban(
    added: &mut crmonban_dbus::BanAddedStream,
    daemon: &Daemon,
    evidence: impl FnOnce() -> String,
) -> crmonban_dbus::BanAdded {
    match tokio::time::timeout(PATIENCE, added.next()).await {
        Ok(Some(ban)) => ban,
        _ => panic!("no BanAdded; {}\ndaemon:\n{}", evidence(), daemon.log()),
    }
}

/// A host without rsyslog: sshd logs to a real systemd-journald, and the daemon (running in
/// that journald's mount namespace, so its `journalctl` reads that journal) bans from it.
#[test]
fn root_sshd_attacker_is_banned_from_the_journal() {
    let journal = crmonban_testutil::Journald::start();
    let host = NetNs::new("d-jrnl");
    let attacker = attacker_for(&host);
    let ssh_dir = tempfile::tempdir().unwrap();
    let _sshd =
        crmonban_testutil::Sshd::start_logging_to(&host, ssh_dir.path(), &journal.dev_log(), 2222);
    // No systemd here, so no _SYSTEMD_UNIT: match sshd by its command name (a trusted field).
    let daemon = Daemon::start_in(
        host,
        PrivateBus::system_like(&policy_file()),
        "\n[services.ssh]\nsource = \"journal\"\njournal_match = \"_COMM=sshd\"\nmax_failures = 3\nfind_time = 600\nban_time = 600\n",
        Some(journal.pid()),
    );
    let host_addr: IpAddr = HOST_V4.parse().unwrap();
    runtime().block_on(async {
        let proxy = proxy(&daemon.bus).await;
        let mut added = proxy.receive_ban_added().await.unwrap();
        three_failed_logins(&daemon, &attacker);
        let ban = next_ban(&mut added, &daemon, || {
            format!("journal:\n{}", journal.entries("sshd").join("\n"))
        })
        .await;
        let args = ban.args().unwrap();
        assert_eq!((args.ip, args.source), (ATTACKER_V4, "detector"));
        assert!(daemon.set_contains("blocked_v4", ATTACKER_V4));
        assert!(
            !crmonban_testutil::tcp_connects(&attacker, &daemon.host, host_addr, QUIET),
            "the banned attacker can still open a TCP connection"
        );
    });
    assert!(
        journal
            .entries("sshd")
            .iter()
            .any(|m| m.contains(&format!("from {ATTACKER_V4} port"))),
        "sshd's messages went to the journal"
    );
}

#[test]
fn root_sshd_attacker_is_banned_after_max_failures() {
    let host = NetNs::new("d-sshd");
    let attacker = attacker_for(&host);
    let ssh_dir = tempfile::tempdir().unwrap();
    let auth_log = ssh_dir.path().join("auth.log");
    let _sshd = crmonban_testutil::Sshd::start(&host, ssh_dir.path(), &auth_log, 2222);
    let daemon = Daemon::start_on(
        host,
        PrivateBus::system_like(&policy_file()),
        &format!(
            "\n[services.ssh]\nlog_path = \"{}\"\nsource = \"file\"\nmax_failures = 3\nfind_time = 600\nban_time = 600\n",
            auth_log.display()
        ),
    );
    let host_addr: IpAddr = HOST_V4.parse().unwrap();
    runtime().block_on(async {
        let proxy = proxy(&daemon.bus).await;
        let mut attacks = proxy.receive_attack_detected().await.unwrap();
        let mut added = proxy.receive_ban_added().await.unwrap();
        three_failed_logins(&daemon, &attacker);
        let attack = tokio::time::timeout(PATIENCE, attacks.next())
            .await
            .expect("no AttackDetected")
            .unwrap();
        let args = attack.args().unwrap();
        assert_eq!((args.ip, args.service), (ATTACKER_V4, "ssh"));
        let ban = next_ban(&mut added, &daemon, || {
            let log = std::fs::read_to_string(&auth_log).unwrap_or_default();
            format!("auth.log:\n{log}")
        })
        .await;
        let args = ban.args().unwrap();
        assert_eq!(
            (args.ip, args.source, args.duration_secs),
            (ATTACKER_V4, "detector", 600)
        );
        assert!(daemon.set_contains("blocked_v4", ATTACKER_V4));
        assert!(
            !crmonban_testutil::tcp_connects(&attacker, &daemon.host, host_addr, QUIET),
            "the banned attacker can still open a TCP connection"
        );
        let stats = proxy.get_stats().await.unwrap();
        assert!(stats.contains("\"ssh\""), "{stats}");
    });
    // The ban's line in the daemon's own log is what the recidive pack counts.
    let recidive = crmonban_core::config::ServiceConfig::builtin(
        "recidive",
        crmonban_core::config::BanDuration::from_secs(3600),
    )
    .unwrap();
    let matcher = crmonban_detect::matcher::ServiceMatcher::new("recidive", &recidive).unwrap();
    let log = daemon.log();
    let counted = log
        .lines()
        .filter(|line| {
            matches!(
                matcher.match_line(line.as_bytes(), &crmonban_detect::matcher::LineContext::default()),
                crmonban_detect::matcher::LineOutcome::Match(ref hit) if hit.addr.to_string() == ATTACKER_V4
            )
        })
        .count();
    assert_eq!(counted, 1, "recidive counts the ban once:\n{log}");
}

/// A real dovecot that writes its own log file (`log_path`): an IMAP brute force from the
/// attacker's namespace (wrong passwords, unknown users) is banned from the lines dovecot
/// really writes, and the banned address cannot connect any more.
#[test]
fn root_dovecot_attacker_is_banned_from_its_log_file() {
    let host = NetNs::new("d-dove");
    let attacker = attacker_for(&host);
    let dovecot = crmonban_testutil::Dovecot::start(&host, 10143);
    let daemon = Daemon::start_on(
        host,
        PrivateBus::system_like(&policy_file()),
        &format!(
            "\n[services.dovecot]\nenabled = true\nlog_path = \"{}\"\nsource = \"file\"\nmax_failures = 3\nfind_time = 600\nban_time = 600\n",
            dovecot.log.display()
        ),
    );
    let host_addr: IpAddr = HOST_V4.parse().unwrap();
    runtime().block_on(async {
        let proxy = proxy(&daemon.bus).await;
        let mut added = proxy.receive_ban_added().await.unwrap();
        // A wrong password and an unknown user, then a second connection's wrong password:
        // three tries make a ban (the last answer may be cut off by it).
        let answers = crmonban_testutil::imap_logins(
            &attacker,
            host_addr,
            dovecot.port,
            &[("bob", "wrong"), ("nosuchuser", "x")],
        );
        assert_eq!(answers.len(), 2, "{answers:?}");
        assert!(
            answers
                .iter()
                .all(|a| a.contains("NO [AUTHENTICATIONFAILED]")),
            "{answers:?}"
        );
        crmonban_testutil::imap_logins(&attacker, host_addr, dovecot.port, &[("bob", "again")]);
        let ban = next_ban(&mut added, &daemon, || {
            format!("dovecot.log:\n{}", dovecot.log_text())
        })
        .await;
        let args = ban.args().unwrap();
        assert_eq!((args.ip, args.source), (ATTACKER_V4, "detector"));
        assert!(args.reason.contains("dovecot"), "{}", args.reason);
        assert!(daemon.set_contains("blocked_v4", ATTACKER_V4));
        assert!(
            crmonban_testutil::imap_logins(&attacker, host_addr, dovecot.port, &[("bob", "x")])
                .is_empty(),
            "the banned attacker still reaches dovecot"
        );
    });
    assert!(
        dovecot
            .log_text()
            .contains(&format!("passwd-file(bob,{ATTACKER_V4},")),
        "dovecot logged the attempts itself:\n{}",
        dovecot.log_text()
    );
}

/// A whitelisted network's brute force is seen (AttackDetected) but never banned; a reload
/// without the source lets the next attack ban it; a reload that brings the source back lifts
/// that ban.
#[test]
fn root_a_whitelisted_network_is_detected_but_never_banned_and_reloads_apply() {
    let host = NetNs::new("d-wl");
    let attacker = attacker_for(&host);
    let ssh_dir = tempfile::tempdir().unwrap();
    let auth_log = ssh_dir.path().join("auth.log");
    let _sshd = crmonban_testutil::Sshd::start(&host, ssh_dir.path(), &auth_log, 2222);
    let services = format!(
        "\n[services.ssh]\nlog_path = \"{}\"\nsource = \"file\"\nmax_failures = 3\nfind_time = 600\nban_time = 600\n",
        auth_log.display()
    );
    let trusted = format!(
        "{services}\n[[whitelist.sources]]\ntype = \"database\"\n\n[[whitelist.sources]]\ntype = \"networks\"\nnetworks = [\"10.77.0.0/24\"]\n"
    );
    let mut daemon = Daemon::start_on(host, PrivateBus::system_like(&policy_file()), &trusted);
    let reload = |daemon: &mut Daemon, extra: &str, times: usize| {
        write_config(&daemon.config, daemon.dir.path(), extra);
        daemon.signal("HUP");
        wait_until("the reload", PATIENCE, || {
            (daemon.log().matches("configuration reloaded").count() >= times).then_some(())
        })
        .unwrap_or_else(|waited| panic!("{waited}:\n{}", daemon.log()));
    };
    runtime().block_on(async {
        let proxy = proxy(&daemon.bus).await;
        let mut attacks = proxy.receive_attack_detected().await.unwrap();
        let mut added = proxy.receive_ban_added().await.unwrap();
        three_failed_logins(&daemon, &attacker);
        let attack = tokio::time::timeout(PATIENCE, attacks.next())
            .await
            .expect("no AttackDetected from the whitelisted attacker")
            .unwrap();
        assert_eq!(attack.args().unwrap().ip, ATTACKER_V4);
        // Every failure was read (the log has all three) and none led to a ban.
        wait_until("sshd to log three failures", PATIENCE, || {
            let log = std::fs::read_to_string(&auth_log).unwrap_or_default();
            (log.matches(&format!("from {ATTACKER_V4} port")).count() >= 3).then_some(())
        })
        .unwrap_or_else(|waited| panic!("{waited}"));
        assert!(
            tokio::time::timeout(QUIET, added.next()).await.is_err(),
            "a whitelisted attacker was banned"
        );
        assert!(!daemon.set_contains("blocked_v4", ATTACKER_V4));
        let (protected, why) = proxy.check_protected(ATTACKER_V4).await.unwrap();
        assert!(protected);
        assert_eq!(
            why,
            "10.77.0.1 is whitelisted (networks source: 10.77.0.0/24)"
        );
    });

    // Without the source, the next three failures ban.
    reload(&mut daemon, &services, 1);
    runtime().block_on(async {
        let proxy = proxy(&daemon.bus).await;
        let mut added = proxy.receive_ban_added().await.unwrap();
        three_failed_logins(&daemon, &attacker);
        let ban = next_ban(&mut added, &daemon, || {
            std::fs::read_to_string(&auth_log).unwrap_or_default()
        })
        .await;
        assert_eq!(ban.args().unwrap().ip, ATTACKER_V4);
        assert!(daemon.set_contains("blocked_v4", ATTACKER_V4));
    });

    // The source back: the ban it covers is lifted.
    runtime().block_on(async {
        let proxy = proxy(&daemon.bus).await;
        let mut removed = proxy.receive_ban_removed().await.unwrap();
        reload(&mut daemon, &trusted, 2);
        let signal = tokio::time::timeout(PATIENCE, removed.next())
            .await
            .expect("no BanRemoved after the source came back")
            .unwrap();
        let args = signal.args().unwrap();
        assert_eq!((args.ip, args.reason), (ATTACKER_V4, "whitelisted"));
        assert!(!daemon.set_contains("blocked_v4", ATTACKER_V4));
        let out = daemon.ctl(&["whitelist", "list"]);
        assert!(
            text(&out.stdout).contains("10.77.0.0/24  networks source"),
            "{}",
            text(&out.stdout)
        );
    });
}

/// `crmonctl ban` says how long the ban really lasts: a repeat offender's ban is escalated
/// (`ban_time_increment`), and an existing longer ban is named when it is kept.
#[test]
fn root_crmonctl_ban_reports_the_true_length_after_escalation() {
    let daemon = Daemon::start("ban_time_increment = 2.0\n");
    let first = text(&daemon.ctl(&["ban", "198.51.100.30", "-d", "600"]).stdout);
    assert!(
        first.starts_with("banned 198.51.100.30 for 10m (until "),
        "{first}"
    );
    assert!(daemon.ctl(&["unban", "198.51.100.30"]).status.success());
    let second = text(&daemon.ctl(&["ban", "198.51.100.30", "-d", "600"]).stdout);
    assert!(
        second.starts_with("banned 198.51.100.30 for 20m (until ")
            && second.contains("longer than asked"),
        "{second}"
    );
    let kept = text(&daemon.ctl(&["ban", "198.51.100.30", "-d", "60"]).stdout);
    assert!(
        kept.starts_with("198.51.100.30 was already banned at least as long, for 20m (until "),
        "{kept}"
    );
}

/// GetStats' top attackers leave out what may never be banned (loopback, this host: what they
/// log is no attack on us), carry the country and network intel knows, and the window's
/// countries, networks and bans per hour come with them.
#[test]
fn root_stats_leave_protected_addresses_out_of_the_top_attackers() {
    let daemon = Daemon::start("");
    // Gives this host HOST_V4 (the daemon follows its address changes).
    let _attacker = attacker_for(&daemon.host);
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
        events.extend((0..50).map(|_| event("127.0.0.1")));
        events.extend((0..40).map(|_| event(HOST_V4)));
        events.extend((0..3).map(|_| event("192.0.2.7")));
        store.record_events(&events).await.unwrap();
        store
            .put_intel(
                "192.0.2.7",
                r#"{"location":{"country_code":"DE"},"network":{"asn":24940,"organization":"Hetzner Online GmbH"}}"#,
                now,
            )
            .await
            .unwrap();

        let proxy = proxy(&daemon.bus).await;
        let started = std::time::Instant::now();
        let stats: serde_json::Value = loop {
            let stats: serde_json::Value =
                serde_json::from_str(&proxy.get_stats().await.unwrap()).unwrap();
            // Until the daemon has seen HOST_V4 appear on this host.
            if stats["top_attackers"].as_array().unwrap().len() == 1
                || started.elapsed() > PATIENCE
            {
                break stats;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        let top = stats["top_attackers"].as_array().unwrap();
        assert_eq!(top.len(), 1, "{stats}");
        assert_eq!(top[0]["ip"], "192.0.2.7");
        assert_eq!(top[0]["events"], 3);
        assert_eq!(top[0]["country"], "DE");
        assert_eq!(top[0]["asn"], 24940);
        assert_eq!(stats["top_countries"][0]["origin"], "DE", "{stats}");
        assert_eq!(stats["top_networks"][0]["origin"], "AS24940", "{stats}");
        assert_eq!(stats["bans_per_hour"].as_array().unwrap().len(), 24);

        // And crmonctl lays it out as a table.
        let out = daemon.ctl(&["stats"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let shown = text(&out.stdout);
        assert!(
            shown
                .lines()
                .any(|l| l.starts_with("192.0.2.7") && l.contains("AS24940 Hetzner Online GmbH")),
            "{shown}"
        );
        assert!(!shown.contains("127.0.0.1") && !shown.contains(HOST_V4), "{shown}");
    });
}

/// `crmonctl watch` prints a ban and its unban as they happen; `crmonctl logs --follow` prints
/// the activity entries written after it started.
#[test]
fn root_watch_and_logs_follow_show_what_happens_as_it_happens() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let daemon = Daemon::start("");
    let spawn = |args: &[&str]| {
        daemon
            .ctl_command(Command::new(crmonctl_path()))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut watch = spawn(&["watch"]);
    let mut follow = spawn(&["logs", "--follow"]);
    // Lines of each, read on threads of their own, until the child is killed.
    let reader = |child: &mut std::process::Child| {
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    };
    let watched = reader(&mut watch);
    let followed = reader(&mut follow);
    let wait_for = |lines: &std::sync::mpsc::Receiver<String>, wanted: &dyn Fn(&str) -> bool| {
        let deadline = std::time::Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("no such line; saw {seen:?}");
    };
    // watch says it is watching once it has subscribed.
    wait_for(&watched, &|l| l.starts_with("watching crmonband"));
    let out = daemon.ctl(&["ban", "192.0.2.77", "-d", "1h", "-r", "watched"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = wait_for(&watched, &|l| l.contains(" ban "));
    assert!(line.contains("192.0.2.77 for 1h (dbus, watched)"), "{line}");
    let line = wait_for(&followed, &|l| l.contains("192.0.2.77"));
    assert!(line.contains("ban"), "{line}");
    let out = daemon.ctl(&["unban", "192.0.2.77"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = wait_for(&watched, &|l| l.contains(" unban "));
    assert!(line.contains("192.0.2.77 (unban)"), "{line}");
    let line = wait_for(&followed, &|l| l.contains("unban"));
    assert!(line.contains("192.0.2.77"), "{line}");
    for mut child in [watch, follow] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
