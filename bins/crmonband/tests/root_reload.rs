//! Live reload on the real daemon, in a namespace of its own: each class of setting changed
//! by `crmonctl reload` or SIGHUP takes effect, bans in force are untouched, and a refused
//! reload (an invalid value, a key only a restart applies) changes nothing and names the key.
//! Every test panics without root.

mod support;

use std::io::Write;
use std::path::Path;

use crmonban_testutil::{PATIENCE, QUIET, wait_until};
use support::*;

fn syslog_now() -> String {
    let out = crmonban_testutil::run("date", &["+%b %e %H:%M:%S"]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// `n` failed sshd logins from `ip`, each in a connection of its own.
fn ssh_failures(log: &Path, ip: &str, n: u32, pid: &mut u32) {
    let time = syslog_now();
    for _ in 0..n {
        *pid += 1;
        append(
            log,
            &format!(
                "{time} host sshd[{pid}]: Failed password for root from {ip} port 4242 ssh2\n"
            ),
        );
    }
}

/// `n` failed POP3 logins from `ip`, each a session of its own.
fn dovecot_failures(log: &Path, ip: &str, n: u32, pid: &mut u32) {
    let time = syslog_now();
    for _ in 0..n {
        *pid += 1;
        append(
            log,
            &format!(
                "{time} mail dovecot: pop3-login: Aborted login (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip={ip}, lip=10.9.0.1, session=<s{pid}>\n"
            ),
        );
    }
}

fn services(auth: &Path, mail: &Path, max_failures: u32, dovecot: bool) -> String {
    format!(
        "default_ban_duration = {}\n\n[services.ssh]\nlog_path = \"{}\"\nsource = \"file\"\nmax_failures = {max_failures}\nfind_time = 600\nban_time = 600\n\n[services.dovecot]\nenabled = {dovecot}\nlog_path = \"{}\"\nsource = \"file\"\nmax_failures = 3\nfind_time = 600\nban_time = 600\n",
        if dovecot { 7200 } else { 3600 },
        auth.display(),
        mail.display()
    )
}

fn banned_soon(daemon: &Daemon, ip: &str) {
    wait_until(&format!("{ip} to be banned"), PATIENCE, || {
        daemon.set_contains("blocked_v4", ip).then_some(())
    })
    .unwrap_or_else(|waited| panic!("{waited}:\n{}", daemon.log()));
}

fn not_banned(daemon: &Daemon, ip: &str) {
    std::thread::sleep(QUIET);
    assert!(
        !daemon.set_contains("blocked_v4", ip),
        "{ip} was banned:\n{}",
        daemon.log()
    );
}

#[test]
fn root_reload_applies_every_class_of_setting_or_nothing() {
    let logs = tempfile::tempdir().unwrap();
    let auth = logs.path().join("auth.log");
    let mail = logs.path().join("mail.log");
    std::fs::write(&auth, "").unwrap();
    std::fs::write(&mail, "").unwrap();
    let daemon = Daemon::start(&services(&auth, &mail, 5, false));
    let mut pid = 100;

    // A manual ban in force before any reload, and a window of 3 of 5 failures.
    assert!(
        daemon
            .ctl(&["ban", "192.0.2.200", "-d", "0", "-r", "before"])
            .status
            .success()
    );
    ssh_failures(&auth, "198.51.100.1", 3, &mut pid);
    not_banned(&daemon, "198.51.100.1");
    let before = daemon.set_elements("blocked_v4");

    // Threshold 5 -> 3, dovecot added, default ban 1 h -> 2 h: `crmonctl reload`.
    write_config(
        &daemon.config,
        daemon.dir.path(),
        &services(&auth, &mail, 3, true),
    );
    let out = daemon.ctl(&["reload"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The window already at 3 failures reaches the new threshold at once.
    banned_soon(&daemon, "198.51.100.1");
    ssh_failures(&auth, "198.51.100.2", 3, &mut pid);
    banned_soon(&daemon, "198.51.100.2");
    dovecot_failures(&mail, "198.51.100.3", 3, &mut pid);
    banned_soon(&daemon, "198.51.100.3");
    let status = text(&daemon.ctl(&["status"]).stdout);
    assert!(status.contains("2h"), "default ban not 2 h:\n{status}");
    // Nothing in force before was touched.
    let after = daemon.set_elements("blocked_v4");
    assert!(before.is_subset(&after), "{before:?} -> {after:?}");
    assert!(daemon.set_contains("blocked_v4", "192.0.2.200"));

    // dovecot removed again: SIGHUP.
    write_config(
        &daemon.config,
        daemon.dir.path(),
        &services(&auth, &mail, 3, false),
    );
    daemon.signal("HUP");
    wait_until("the second reload", PATIENCE, || {
        (daemon
            .log()
            .matches("configuration reloaded and applied")
            .count()
            >= 2)
            .then_some(())
    })
    .unwrap_or_else(|waited| panic!("{waited}:\n{}", daemon.log()));
    dovecot_failures(&mail, "198.51.100.4", 3, &mut pid);
    not_banned(&daemon, "198.51.100.4");

    // An invalid value: refused, naming the key; the threshold stays 3.
    let good = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(
        &daemon.config,
        good.replace("max_failures = 3", "max_failures = \"three\""),
    )
    .unwrap();
    let out = daemon.ctl(&["reload"]);
    assert!(!out.status.success());
    let error = text(&out.stderr);
    assert!(error.contains("services.ssh.max_failures"), "{error}");
    ssh_failures(&auth, "198.51.100.5", 3, &mut pid);
    banned_soon(&daemon, "198.51.100.5");

    // A key only a restart applies: refused, naming it; nothing else applies either.
    std::fs::write(
        &daemon.config,
        format!(
            "{}\n[nftables]\ntable_name = \"other\"\n",
            good.replace("max_failures = 3", "max_failures = 10")
        ),
    )
    .unwrap();
    let out = daemon.ctl(&["reload"]);
    assert!(!out.status.success());
    let error = text(&out.stderr);
    assert!(
        error.contains("nftables.table_name") && error.contains("restart"),
        "{error}"
    );
    ssh_failures(&auth, "198.51.100.6", 3, &mut pid);
    banned_soon(&daemon, "198.51.100.6");
    let count_before_restart_refusal = daemon.set_elements("blocked_v4").len();
    assert_eq!(count_before_restart_refusal, after.len() + 2);
}
