//! `crmonctl import-fail2ban` as an administrator leaving fail2ban runs it.
//!
//! The configuration tests read fail2ban's own default jail files: Debian's `fail2ban` package,
//! downloaded with `apt-get download` and unpacked with `dpkg-deb -x` once (kept under the
//! target directory), never committed here. They fail, never skip, when that is impossible.
//! On top of them go tests/fixtures/fail2ban/ (a realistic jail.local, a
//! jail.d/defaults-debian.conf like Debian's, a filter of our own). The configuration written
//! must parse with crmonban's own parser, with exactly the values and the report expected.
//!
//! The `--bans` tests build a database shaped as fail2ban 0.11+ creates it, with active,
//! expired and permanent bans and protected addresses, and import it into the fake daemon of
//! tests/support and — as root — into a real crmonband on a private bus. One more has the
//! database written by a real fail2ban-server: the same package's Python code, run from the
//! unpacked tree with Debian's python3 (not installed; its files, socket and dummy action in a
//! temporary directory), banning for real from sshd log lines and `fail2ban-client banip`.

// Shared with tests/cli.rs, which uses the rest of it.
#[allow(dead_code)]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crmonban_core::config::{BanDuration, Config, LogSource, WhitelistSource};
use crmonban_core::{Target, unix_now};
use crmonban_testutil::PrivateBus;
use support::{Callers, FakeDaemon, NOW, Run, crmonctl, run_at};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fail2ban")
}

fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Debian's fail2ban package unpacked: its /etc/fail2ban. Downloaded once per target
/// directory; a failure to get it fails the test.
fn debian_fail2ban() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fail2ban-debian");
        let etc = cache.join("etc/fail2ban");
        if !etc.join("jail.conf").is_file() {
            let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
            let out = run(Command::new("apt-get")
                .args(["download", "-q", "fail2ban"])
                .current_dir(work.path()));
            assert!(
                out.status.success(),
                "`apt-get download fail2ban` failed (this test needs Debian's fail2ban package; \
                 run `apt-get update` first): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let deb = std::fs::read_dir(work.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.extension().is_some_and(|e| e == "deb"))
                .expect("apt-get download wrote no .deb");
            let unpacked = work.path().join("root");
            let out = run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked));
            assert!(
                out.status.success(),
                "dpkg-deb -x {} failed: {}",
                deb.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            // Another test process may have won the race; either copy will do.
            let _ = std::fs::rename(&unpacked, &cache);
        }
        assert!(
            etc.join("jail.conf").is_file(),
            "no jail.conf in {}",
            etc.display()
        );
        etc
    })
}

/// A fail2ban directory to convert: Debian's files, then `overlay`'s, then `extra` files.
fn fail2ban_dir(overlay: Option<&Path>, extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(debian_fail2ban(), dir.path());
    if let Some(overlay) = overlay {
        copy_tree(overlay, dir.path());
    }
    for (name, text) in extra {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `crmonctl import-fail2ban DIR args...`, with DIR shown as `DIR` in the output.
fn import(dir: &Path, args: &[&str]) -> Run {
    let r: Run = run(crmonctl().arg("import-fail2ban").arg(dir).args(args)).into();
    let shown = dir.display().to_string();
    Run {
        code: r.code,
        stdout: r.stdout.replace(&shown, "DIR"),
        stderr: r.stderr.replace(&shown, "DIR"),
    }
}

fn parse(text: &str) -> Config {
    Config::from_toml_str(text, "converted").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The version of the package the expectations below were written for.
fn assert_debian_12_fail2ban() {
    let jail_conf = std::fs::read_to_string(debian_fail2ban().join("jail.conf")).unwrap();
    let paths = std::fs::read_to_string(debian_fail2ban().join("paths-debian.conf")).unwrap();
    assert!(
        jail_conf.contains("banaction = iptables-multiport") && !paths.contains("sshd_backend"),
        "these expectations are those of Debian 12's fail2ban 1.0.2 (iptables-multiport, \
         sshd from /var/log/auth.log): update them for the package apt-get offers here"
    );
}

#[test]
fn debian_defaults_become_ssh_from_auth_log() {
    assert_debian_12_fail2ban();
    let dir = fail2ban_dir(None, &[]);
    let r = import(dir.path(), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let config = parse(&r.stdout);
    let ssh = &config.services["ssh"];
    assert!(ssh.enabled);
    assert_eq!(
        ssh.log_path.as_deref(),
        Some(Path::new("/var/log/auth.log"))
    );
    assert_eq!(ssh.source, LogSource::File);
    assert_eq!(ssh.max_failures, 5);
    assert_eq!(ssh.find_time.as_secs(), 600);
    assert_eq!(
        ssh.ban_time,
        BanDuration::Timed(std::time::Duration::from_secs(600))
    );
    let enabled: Vec<&str> = config
        .services
        .iter()
        .filter(|(_, s)| s.enabled)
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(enabled, ["ssh"]);
    assert_eq!(config.general.ban_time_increment, 1.0);
    assert_eq!(
        r.stderr,
        "read from DIR: paths-common.conf, paths-debian.conf, jail.conf, jail.d/defaults-debian.conf\n\
         enabled jails: [sshd] -> services.ssh\n\
         not carried over (no equivalent in crmonban):\n  \
         DIR/jail.conf:143: [DEFAULT] usedns = warn: crmonban's patterns match addresses only: a \
         host name in a log line is never looked up (jails: sshd)\n\
         carried over with a difference:\n  \
         DIR/jail.conf:208: [DEFAULT] banaction = iptables-multiport: crmonban bans in its own \
         nftables sets (table inet crmonban, input and forward hooks): every port and protocol of \
         the address, IPv4 and IPv6, restored at start (jails: sshd)\n"
    );
}

#[test]
fn every_jail_of_debian_enabled() {
    assert_debian_12_fail2ban();
    let dir = fail2ban_dir(None, &[("jail.local", "[DEFAULT]\nenabled = true\n")]);
    let r = import(dir.path(), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let config = parse(&r.stdout);
    // Every reference of jail.conf resolves: nothing is reported as undefined.
    assert!(!r.stderr.contains("is not defined"), "{}", r.stderr);
    let summary = r.stderr.lines().nth(1).unwrap();
    let converted: Vec<&str> = summary
        .trim_start_matches("enabled jails: ")
        .split(", ")
        .filter(|j| !j.ends_with("not converted"))
        .collect();
    assert_eq!(
        converted,
        [
            "[sshd] -> services.ssh",
            "[dropbear] -> services.dropbear",
            "[apache-auth] -> services.apache",
            "[apache-badbots] -> services.apache-badbots",
            "[apache-noscript] -> services.apache-noscript",
            "[apache-overflows] -> services.apache-overflows",
            "[nginx-http-auth] -> services.nginx",
            "[nginx-limit-req] -> services.nginx",
            "[nginx-botsearch] -> services.nginx-botsearch",
            "[nginx-bad-request] -> services.nginx-bad-request",
            "[proftpd] -> services.proftpd",
            "[pure-ftpd] -> services.pure-ftpd",
            "[vsftpd] -> services.vsftpd",
            "[courier-smtp] -> services.courier-auth",
            "[postfix] -> services.postfix",
            "[postfix-rbl] -> services.postfix",
            "[sendmail-auth] -> services.sendmail-auth",
            "[sendmail-reject] -> services.sendmail-auth",
            "[dovecot] -> services.dovecot",
            "[exim] -> services.exim",
            "[courier-auth] -> services.courier-auth",
            "[postfix-sasl] -> services.postfix",
            "[asterisk] -> services.asterisk",
            "[mysqld-auth] -> services.mysqld-auth",
            "[recidive] -> services.recidive",
        ]
    );
    // Each jail without a pack is named in the report.
    let not_converted: Vec<&str> = summary
        .split(", ")
        .filter_map(|j| j.strip_suffix(" -> not converted"))
        .collect();
    assert!(not_converted.len() > 50, "{summary}");
    for jail in not_converted {
        assert!(
            r.stderr.contains(&format!(
                "DIR/jail.local:2: {jail}: no crmonban service pack"
            )),
            "{jail} is not reported:\n{}",
            r.stderr
        );
    }
    assert!(config.services.values().filter(|s| s.enabled).count() >= 19);
    assert_eq!(config.services["apache-badbots"].max_failures, 1);
    assert_eq!(
        config.services["apache-badbots"].ban_time,
        BanDuration::Timed(std::time::Duration::from_secs(48 * 3600))
    );
    assert_eq!(config.services["recidive"].find_time.as_secs(), 86_400);
    assert!(
        r.stderr.contains(
            "[postfix-rbl]: crmonban's `postfix` service covers this jail and [postfix] \
             together; the values of [postfix] are kept, not this jail's maxretry 1"
        ),
        "{}",
        r.stderr
    );
}

const REALISTIC_TOML: &str = r#"# crmonban configuration converted from fail2ban's DIR by `crmonctl import-fail2ban`.
# Read: paths-common.conf, paths-debian.conf, jail.conf, jail.d/defaults-debian.conf, jail.local.
# Each value names the fail2ban setting it comes from; every key not written here keeps
# crmonban's default (docs/CONFIG.md). What had no equivalent was reported when this
# file was written (docs/MIGRATING-FROM-FAIL2BAN.md). Check it with
# `crmonband -c FILE check-config`.

[general]
# bantime = 1h (jail.local:10)
default_ban_duration = "1h"
# bantime.increment of [sshd]: the n-th repeat ban lasts ban_time x 2.0^n
ban_time_increment = 2.0
# bantime.maxtime, or the last of bantime.multipliers
max_ban_time = "28d"

[services.ssh]
# fail2ban jail [sshd]
enabled = true
# backend = systemd (jail.d/defaults-debian.conf:10)
source = "journal"
# maxretry = 3 (jail.local:19)
max_failures = 3
# findtime = 1h (jail.local:20)
find_time = "1h"
# bantime = 1h (jail.local:10)
ban_time = "1h"
# port = 2222 (jail.local:18)
port = 2222

[services.nginx]
# fail2ban jail [nginx-http-auth]
enabled = true
# logpath = /var/log/nginx/example.org-error.log /var/log/nginx/shop.example.org-error.log (jail.local:28)
log_path = "/var/log/nginx/example.org-error.log"
# backend = auto (jail.local:27)
source = "file"
# maxretry = 4 (jail.local:30)
max_failures = 4
# findtime = 15m (jail.local:11)
find_time = "15m"
# bantime = 1h (jail.local:10)
ban_time = "1h"

[services.postfix]
# fail2ban jail [postfix]
enabled = true
# backend = systemd (jail.local:36)
source = "journal"
# maxretry = 5 (jail.conf:108)
max_failures = 5
# findtime = 15m (jail.local:11)
find_time = "15m"
# bantime = 2h (jail.local:37)
ban_time = "2h"

[services.recidive]
# fail2ban jail [recidive]
enabled = true
# maxretry = 3 (jail.local:43)
max_failures = 3
# findtime = 1d (jail.local:42)
find_time = "1d"
# bantime = -1 (jail.local:41)
ban_time = "permanent"

# ignoreip of the jails; loopback and link-local addresses are always protected.
# crmonban's own sources are listed too: writing any source replaces the defaults.
[[whitelist.sources]]
type = "database"

[[whitelist.sources]]
type = "zones"

[[whitelist.sources]]
type = "networks"
networks = ["192.0.2.0/24", "2001:db8:1::/48", "198.51.100.7", "203.0.113.0/24", "198.51.100.0/24"]
"#;

const REALISTIC_REPORT: &str = "\
read from DIR: paths-common.conf, paths-debian.conf, jail.conf, jail.d/defaults-debian.conf, jail.local
enabled jails: [sshd] -> services.ssh, [nginx-http-auth] -> services.nginx, [postfix] -> services.postfix, [recidive] -> services.recidive, [gitea] -> not converted
not carried over (no equivalent in crmonban):
  DIR/jail.conf:143: [DEFAULT] usedns = warn: crmonban's patterns match addresses only: a host name in a log line is never looked up (jails: nginx-http-auth, postfix, recidive, sshd)
  DIR/jail.local:6: [DEFAULT] ignoreip = monitor.example.org: a host name: crmonban's whitelist takes addresses and networks; add the host's addresses (crmonctl whitelist add ADDR) (jails: postfix, recidive, sshd)
  DIR/jail.local:15: [DEFAULT] action = sendmail-whois-lines: crmonban sends no mail: its [siem] targets (webhook, syslog, file) carry every ban (jails: nginx-http-auth, postfix, recidive, sshd)
  DIR/jail.local:28: [nginx-http-auth] logpath = /var/log/nginx/shop.example.org-error.log: not read: crmonban reads one file per service, and reads /var/log/nginx/example.org-error.log for this one
  DIR/jail.local:46: [gitea]: no crmonban service pack for its filter `gitea` (DIR/filter.d/gitea.local): not converted (a service of your own with patterns from its failregex would replace it)
carried over with a difference:
  bantime.overalljails: unset or false: fail2ban counted an address's earlier bans in the same jail only, crmonban counts them in every service (jails: sshd)
  DIR/jail.conf:824: [recidive] logpath = /var/log/fail2ban.log: crmonban's recidive counts crmonban's own bans (its log or journal), not fail2ban's log: its default source is kept
  DIR/jail.conf:825: [recidive] banaction = nftables[type=allports]: crmonban bans in its own nftables sets (table inet crmonban, input and forward hooks): every port and protocol of the address, IPv4 and IPv6, restored at start
  DIR/jail.d/defaults-debian.conf:5: [DEFAULT] banaction = nftables: crmonban bans in its own nftables sets (table inet crmonban, input and forward hooks): every port and protocol of the address, IPv4 and IPv6, restored at start (jails: nginx-http-auth, postfix, sshd)
  DIR/jail.local:21: [sshd] mode = aggressive: filter mode aggressive: crmonban's `ssh` pack has one set of patterns (`crmonband explain --service ssh` shows what it matches)
  DIR/jail.local:26: [nginx-http-auth]: no bantime.increment here, but crmonban's escalation ([general] ban_time_increment) applies to every service: this one's repeat bans grow too
  DIR/jail.local:32: [nginx-http-auth] ignoreip = 198.51.100.0/24: crmonban's whitelist protects these addresses from every service, not only this one
  DIR/jail.local:35: [postfix]: no bantime.increment here, but crmonban's escalation ([general] ban_time_increment) applies to every service: this one's repeat bans grow too
";

#[test]
fn realistic_jail_local() {
    assert_debian_12_fail2ban();
    let dir = fail2ban_dir(Some(&fixtures()), &[]);
    let r = import(dir.path(), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, REALISTIC_TOML);
    assert_eq!(r.stderr, REALISTIC_REPORT);

    let config = parse(&r.stdout);
    let secs = |s: u64| BanDuration::Timed(std::time::Duration::from_secs(s));
    assert_eq!(config.general.default_ban_duration, secs(3600));
    assert_eq!(config.general.ban_time_increment, 2.0);
    assert_eq!(
        config.general.max_ban_time,
        Some(std::time::Duration::from_secs(28 * 86_400))
    );
    let ssh = &config.services["ssh"];
    assert_eq!(
        (
            ssh.enabled,
            ssh.source,
            ssh.max_failures,
            ssh.find_time.as_secs(),
            ssh.ban_time
        ),
        (true, LogSource::Journal, 3, 3600, secs(3600))
    );
    assert_eq!(ssh.ports, [2222]);
    assert!(ssh.journal_match.is_some(), "the pack's journal_match");
    let nginx = &config.services["nginx"];
    assert_eq!(
        (
            nginx.enabled,
            nginx.source,
            nginx.max_failures,
            nginx.find_time.as_secs()
        ),
        (true, LogSource::File, 4, 900)
    );
    assert_eq!(
        nginx.log_path.as_deref(),
        Some(Path::new("/var/log/nginx/example.org-error.log"))
    );
    let postfix = &config.services["postfix"];
    assert_eq!(
        (
            postfix.enabled,
            postfix.source,
            postfix.max_failures,
            postfix.ban_time
        ),
        (true, LogSource::Journal, 5, secs(7200))
    );
    let recidive = &config.services["recidive"];
    assert_eq!(
        (
            recidive.enabled,
            recidive.max_failures,
            recidive.find_time.as_secs()
        ),
        (true, 3, 86_400)
    );
    assert_eq!(recidive.ban_time, BanDuration::Permanent);
    assert_eq!(
        config.whitelist.sources[2],
        WhitelistSource::Networks(
            [
                "192.0.2.0/24",
                "2001:db8:1::/48",
                "198.51.100.7",
                "203.0.113.0/24",
                "198.51.100.0/24"
            ]
            .iter()
            .map(|t| Target::parse(t).unwrap())
            .collect()
        )
    );
    assert_eq!(config.services.values().filter(|s| s.enabled).count(), 4);
}

#[test]
fn output_file_is_written_once_unless_forced() {
    let dir = fail2ban_dir(Some(&fixtures()), &[]);
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("crmonban/config.toml");
    let file_arg = file.to_str().unwrap();
    let r = import(dir.path(), &["-o", file_arg]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "");
    assert!(r.stderr.ends_with(&format!("wrote {file_arg}\n")), "{r:?}");
    let written = std::fs::read_to_string(&file).unwrap();
    parse(&written);

    std::fs::write(&file, "# mine\n").unwrap();
    let r = import(dir.path(), &["-o", file_arg]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr,
        format!("crmonctl: {file_arg} exists: it is kept (--force overwrites it)\n")
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "# mine\n");

    let r = import(dir.path(), &["-o", file_arg, "--force"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), written);

    let r: Run = run(crmonctl().args(["import-fail2ban", "--force"])).into();
    assert_eq!(r.code, 2, "--force needs -o: {r:?}");
}

#[test]
fn errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let r = import(dir.path(), &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr,
        "crmonctl: DIR: no jail.conf, jail.local or jail.d/*.conf there: is it fail2ban's \
         configuration directory?\n"
    );
    std::fs::write(
        dir.path().join("jail.local"),
        "[DEFAULT]\nbantime = 1h\n[sshd]\nenabled = true\nenabled = false\n",
    )
    .unwrap();
    let r = import(dir.path(), &[]);
    assert_eq!(
        (r.code, r.stderr.as_str(), r.stdout.as_str()),
        (
            1,
            "crmonctl: DIR/jail.local:5: `enabled` is set twice in section [sshd] of this file\n",
            ""
        )
    );
    // Values fail2ban would refuse are reported with their place, and the rest converted.
    std::fs::write(
        dir.path().join("jail.local"),
        "[sshd]\nenabled = true\nfilter = sshd\nmaxretry = many\nbantime = soon\n\
         logpath = %(nowhere)s\nbackend = auto\n",
    )
    .unwrap();
    let r = import(dir.path(), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    parse(&r.stdout);
    for line in [
        "  DIR/jail.local:4: [sshd] maxretry = many: not a whole number of at least 1: crmonban's default is kept\n",
        "  DIR/jail.local:5: [sshd] bantime = soon: not a fail2ban time (\"soon\" is not a time unit): crmonban's default is kept\n",
        "  DIR/jail.local:6: [sshd] logpath = %(nowhere)s: %(nowhere)s is not defined: ignored\n",
    ] {
        assert!(r.stderr.contains(line), "{line}\n{}", r.stderr);
    }
}

/// A database shaped as fail2ban 0.11+ creates it (schema version 4).
const FAIL2BAN_SCHEMA: &str = "
CREATE TABLE fail2banDb(version INTEGER);
INSERT INTO fail2banDb(version) VALUES (4);
CREATE TABLE jails(name TEXT NOT NULL UNIQUE, enabled INTEGER NOT NULL DEFAULT 1);
CREATE INDEX jails_name ON jails(name);
CREATE TABLE logs(jail TEXT NOT NULL, path TEXT, firstlinemd5 TEXT, lastfilepos INTEGER DEFAULT 0,
    FOREIGN KEY(jail) REFERENCES jails(name) ON DELETE CASCADE,
    UNIQUE(jail, path), UNIQUE(jail, path, firstlinemd5));
CREATE TABLE bans(jail TEXT NOT NULL, ip TEXT, timeofban INTEGER NOT NULL,
    bantime INTEGER NOT NULL, bancount INTEGER NOT NULL default 1, data JSON,
    FOREIGN KEY(jail) REFERENCES jails(name));
CREATE INDEX bans_jail_timeofban_ip ON bans(jail, timeofban);
CREATE INDEX bans_jail_ip ON bans(jail, ip);
CREATE INDEX bans_ip ON bans(ip);
CREATE TABLE bips(ip TEXT NOT NULL, jail TEXT NOT NULL, timeofban INTEGER NOT NULL,
    bantime INTEGER NOT NULL, bancount INTEGER NOT NULL default 1, data JSON,
    PRIMARY KEY(ip, jail), FOREIGN KEY(jail) REFERENCES jails(name));
CREATE INDEX bips_timeofban ON bips(timeofban);
CREATE INDEX bips_ip ON bips(ip);
";

/// The bans of the database: (ip, jail, seconds before now, bantime).
const BANS: &[(&str, &str, i64, i64)] = &[
    ("192.0.2.10", "sshd", 100, 600),
    ("192.0.2.11", "sshd", 7200, 600),
    ("192.0.2.12", "recidive", 86_400, -1),
    ("192.0.2.13", "sshd", 60, 600),
    ("192.0.2.13", "recidive", 60, 604_800),
    ("127.0.0.1", "sshd", 10, 600),
    ("198.51.100.5", "nginx-http-auth", 10, 600),
    ("2001:db8::7", "postfix", 10, 3600),
    ("192.0.2.14", "sshd", 10, 600),
];

/// Writes a fail2ban database with [`BANS`] (and an older, ended ban of 192.0.2.10 in `bans`
/// only, as fail2ban keeps its history there) at `path`.
fn fail2ban_db(path: &Path) {
    on_sqlite(path, true, async |conn| {
        sqlx::raw_sql(FAIL2BAN_SCHEMA)
            .execute(&mut *conn)
            .await
            .unwrap();
        let now = unix_now();
        for jail in ["sshd", "recidive", "nginx-http-auth", "postfix"] {
            sqlx::query("INSERT INTO jails(name, enabled) VALUES (?, 1)")
                .bind(jail)
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        let history = [("192.0.2.10", "sshd", 90_000i64, 600i64)];
        for (table, rows) in [("bans", &history[..]), ("bans", BANS), ("bips", BANS)] {
            for (ip, jail, ago, bantime) in rows {
                let sql = if table == "bans" {
                    "INSERT INTO bans(jail, ip, timeofban, bantime, bancount, data) \
                     VALUES (?, ?, ?, ?, 1, '{\"failures\": 5}')"
                } else {
                    "INSERT INTO bips(jail, ip, timeofban, bantime, bancount, data) \
                     VALUES (?, ?, ?, ?, 1, '{\"failures\": 5}')"
                };
                sqlx::query(sql)
                    .bind(jail)
                    .bind(ip)
                    .bind(now - ago)
                    .bind(bantime)
                    .execute(&mut *conn)
                    .await
                    .unwrap();
            }
        }
    });
}

#[test]
fn bans_are_imported_with_the_time_they_have_left() {
    let bus = PrivateBus::open();
    let daemon = FakeDaemon::start(bus.address(), None, Callers::Trusted);
    let a = bus.address();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fail2ban.sqlite3");
    fail2ban_db(&db);
    let r = run_at(a, &["ban", "192.0.2.14", "-d", "7d"]);
    assert_eq!(r.code, 0, "{r:?}");

    let db_arg = format!("--bans={}", db.display());
    let r = run_at(a, &["import-fail2ban", &db_arg]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        format!(
            "{}: 9 bans (the latest of each address and jail), 1 expired (skipped)\n\
             sent to crmonban: 7 addresses (each with its longest ban)\n\
             imported: 5\n\
             already banned at least as long: 1\n\
             refused: 1\n  \
             127.0.0.1 (jail sshd): org.crmonban.Error.Protected: 127.0.0.1 is a loopback address\n",
            db.display()
        )
    );
    let state = daemon.state.lock().unwrap();
    let ban = |ip: &str| {
        let b = state
            .bans
            .iter()
            .find(|b| b.0 == ip)
            .unwrap_or_else(|| panic!("{ip}"));
        (b.1.clone(), if b.4 == 0 { 0 } else { b.4 - NOW })
    };
    let (reason, secs) = ban("192.0.2.10");
    assert_eq!(reason, "fail2ban:sshd");
    assert!((490..=500).contains(&secs), "{secs}");
    assert_eq!(ban("192.0.2.12"), ("fail2ban:recidive".to_owned(), 0));
    let (reason, secs) = ban("192.0.2.13");
    assert_eq!(reason, "fail2ban:recidive");
    assert!((604_730..=604_740).contains(&secs), "{secs}");
    assert_eq!(ban("2001:db8::7").0, "fail2ban:postfix");
    assert!(!state.bans.iter().any(|b| b.0 == "192.0.2.11"), "expired");
    assert!(!state.bans.iter().any(|b| b.0 == "127.0.0.1"), "protected");
    drop(state);

    // Not a fail2ban database, no database: exit 1 with the reason.
    let r = run_at(
        a,
        &[
            "import-fail2ban",
            &format!("--bans={}", dir.path().join("none").display()),
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("none: no such file"), "{r:?}");
    let other = dir.path().join("other.sqlite3");
    std::fs::write(&other, "").unwrap();
    let r = run_at(
        a,
        &["import-fail2ban", &format!("--bans={}", other.display())],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("not a fail2ban database"), "{r:?}");
}

/// The root of Debian's unpacked fail2ban package (its /etc/fail2ban is [`debian_fail2ban`]).
fn debian_fail2ban_root() -> &'static Path {
    debian_fail2ban()
        .ancestors()
        .nth(2)
        .expect("the package's etc/fail2ban has a root")
}

/// Debian's python3: fail2ban's programs start with `#!/usr/bin/python3`, and fail2ban 1.0.2
/// needs a Python that still has `asyncore` (3.11 has; 3.12 removed it), so whatever other
/// python3 is first on PATH is not used. `cargo xtask test` installs it.
const PYTHON3: &str = "/usr/bin/python3";

/// `fail2ban-<program>` of Debian's package run from the unpacked tree (not installed): its
/// Python code on PYTHONPATH, configuration `conf`, control socket `socket`. fail2ban reads
/// syslog times as local time: TZ=UTC, as the lines written by [`syslog_time`].
fn fail2ban_command(program: &str, conf: &Path, socket: &Path) -> Command {
    assert!(
        Path::new(PYTHON3).is_file(),
        "{PYTHON3} is missing: this test runs Debian's fail2ban with Debian's python3 \
         (apt-get install python3, or run `cargo xtask test`, which installs it)"
    );
    let root = debian_fail2ban_root();
    let mut cmd = Command::new(PYTHON3);
    cmd.arg(root.join("usr/bin").join(format!("fail2ban-{program}")))
        .arg("-c")
        .arg(conf)
        .arg("-s")
        .arg(socket)
        .env("PYTHONPATH", root.join("usr/lib/python3/dist-packages"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PYTHONHOME")
        .env_remove("PYTHONSTARTUP")
        .env("TZ", "UTC");
    cmd
}

/// A real fail2ban-server of Debian's package, in the foreground as a child of the test,
/// everything it writes (database, socket, pid file, log, the dummy action's file) in `dir`;
/// killed (by its pid) and reaped when dropped, if it has not stopped by then.
struct Fail2banServer {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Fail2banServer {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn conf(&self) -> PathBuf {
        self.path("conf")
    }

    fn socket(&self) -> PathBuf {
        self.path("fail2ban.sock")
    }

    /// What the server wrote: its stderr, then its log.
    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.path(name)).unwrap_or_default();
        format!(
            "--- server output:\n{}--- fail2ban.log:\n{}",
            read("server.out"),
            read("fail2ban.log")
        )
    }

    /// `fail2ban-client ARGS` against this server; panics (with the server's logs) unless it
    /// succeeds, returns its stdout.
    fn client(&self, args: &[&str]) -> String {
        let out = run(fail2ban_command("client", &self.conf(), &self.socket()).args(args));
        assert!(
            out.status.success(),
            "fail2ban-client {} failed: {}{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The addresses `fail2ban-client status JAIL` lists as banned.
    fn banned(&self, jail: &str) -> Vec<String> {
        let status = self.client(&["status", jail]);
        let list = status
            .lines()
            .find_map(|l| l.split_once("Banned IP list:"))
            .unwrap_or_else(|| panic!("no banned list in the status of {jail}:\n{status}"))
            .1;
        let mut ips: Vec<String> = list.split_whitespace().map(str::to_owned).collect();
        ips.sort();
        ips
    }

    /// `fail2ban-client stop`, then waits for the process to exit.
    fn stop(&mut self) {
        assert_eq!(self.client(&["stop"]).trim(), "Shutdown successful");
        let status = crmonban_testutil::wait_until(
            "fail2ban-server to exit",
            crmonban_testutil::PATIENCE,
            || self.child.try_wait().unwrap(),
        )
        .unwrap_or_else(|waited| panic!("{waited}\n{}", self.logs()));
        assert!(
            status.success(),
            "fail2ban-server: {status}\n{}",
            self.logs()
        );
    }
}

impl Drop for Fail2banServer {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `Dec  4 18:51:58`: a unix time as rsyslog's traditional format writes it (in UTC).
fn syslog_time(unix: i64) -> String {
    // 2026-12-04T18:51:58Z
    let rfc3339 = crmonban_dbus::rfc3339_utc(unix);
    let month: usize = rfc3339[5..7].parse().unwrap();
    let day: u32 = rfc3339[8..10].parse().unwrap();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!("{} {day:>2} {}", months[month - 1], &rfc3339[11..19])
}

/// Appends `lines` to the log file at `path`, as rsyslog does.
fn append(path: &Path, lines: &[String]) {
    use std::io::Write;
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for line in lines {
        writeln!(log, "{line}").unwrap();
    }
}

/// Starts Debian's fail2ban-server with Debian's /etc/fail2ban plus a fail2ban.local keeping
/// all its files in a temporary directory and a jail.local with two jails polling log files of
/// that directory: [sshd] (bantime 1h, maxretry 3) on an auth.log and [recidive] (bantime -1,
/// permanent) on fail2ban's own log, both with the `dummy` action, which writes to a file of
/// that directory. Nothing of the host is touched: no firewall, nothing under /var or /run.
fn start_fail2ban() -> Fail2banServer {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let conf = dir.path().join("conf");
    copy_tree(debian_fail2ban(), &conf);
    for (name, text) in [
        (
            "fail2ban.local",
            format!(
                "[DEFAULT]\nlogtarget = {d}/fail2ban.log\nsocket = {d}/fail2ban.sock\n\
                 pidfile = {d}/fail2ban.pid\ndbfile = {d}/fail2ban.sqlite3\n"
            ),
        ),
        // The dummy action's only file (Debian's default is /var/run/fail2ban/fail2ban.dummy).
        (
            "action.d/dummy.local",
            format!("[Init]\ntarget = {d}/fail2ban.dummy\n"),
        ),
        (
            "jail.local",
            format!(
                "[DEFAULT]\nbackend = polling\nbanaction = dummy\nbanaction_allports = dummy\n\n\
                 [sshd]\nenabled = true\nlogpath = {d}/auth.log\nmaxretry = 3\nfindtime = 10m\n\
                 bantime = 1h\n\n\
                 [recidive]\nenabled = true\nlogpath = {d}/fail2ban.log\nbantime = -1\n"
            ),
        ),
    ] {
        std::fs::write(conf.join(name), text).unwrap();
    }
    for log in ["auth.log", "fail2ban.log"] {
        std::fs::write(dir.path().join(log), "").unwrap();
    }
    let socket = dir.path().join("fail2ban.sock");

    // What fail2ban will run, as its client resolves the configuration: the dummy action
    // writing to our directory, and nothing else (no iptables, no nft).
    let out = run(fail2ban_command("client", &conf, &socket).arg("-d"));
    assert!(
        out.status.success(),
        "fail2ban-client -d: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = String::from_utf8_lossy(&out.stdout);
    let actions: Vec<&str> = dump.lines().filter(|l| l.contains("'addaction'")).collect();
    assert_eq!(
        actions,
        [
            "['set', 'sshd', 'addaction', 'dummy']",
            "['set', 'recidive', 'addaction', 'dummy']"
        ],
        "{dump}"
    );
    for word in ["iptables", "nft", "/var/", "/run/"] {
        assert!(!dump.contains(word), "fail2ban would use {word}:\n{dump}");
    }
    assert!(dump.contains(&format!("'{d}/fail2ban.dummy'")), "{dump}");

    let out = std::fs::File::create(dir.path().join("server.out")).unwrap();
    let child = fail2ban_command("server", &conf, &socket)
        .arg("-p")
        .arg(dir.path().join("fail2ban.pid"))
        .args(["-f", "-x", "start"])
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start fail2ban-server: {e}"));
    let mut server = Fail2banServer { child, dir };
    crmonban_testutil::wait_until(
        "fail2ban-server to answer",
        crmonban_testutil::PATIENCE,
        || {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("fail2ban-server exited ({status}):\n{}", server.logs());
            }
            let out = run(fail2ban_command("client", &server.conf(), &server.socket())
                .args(["status", "recidive"]));
            out.status.success().then_some(())
        },
    )
    .unwrap_or_else(|waited| panic!("{waited}\n{}", server.logs()));
    // The server answering is the child (its pid file), not another fail2ban.
    let pid = std::fs::read_to_string(server.path("fail2ban.pid")).unwrap();
    assert_eq!(pid.trim(), server.child.id().to_string());
    server
}

/// `crmonctl import-fail2ban CONF --bans=DB` into a fake daemon of its own: its output, and
/// the bans the daemon got as (address, reason, seconds; 0 when permanent), sorted.
fn import_into_fake_daemon(conf: &Path, db: &Path) -> (String, Vec<(String, String, i64)>) {
    let bus = PrivateBus::open();
    let daemon = FakeDaemon::start(bus.address(), None, Callers::Trusted);
    let r = run_at(
        bus.address(),
        &[
            "import-fail2ban",
            conf.to_str().unwrap(),
            &format!("--bans={}", db.display()),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let state = daemon.state.lock().unwrap();
    let mut bans: Vec<(String, String, i64)> = state
        .bans
        .iter()
        .map(|b| {
            (
                b.0.clone(),
                b.1.clone(),
                if b.4 == 0 { 0 } else { b.4 - NOW },
            )
        })
        .collect();
    bans.sort();
    (r.stdout, bans)
}

/// fail2ban's `jails` table: (name, enabled), sorted.
fn jails_in(db: &Path) -> Vec<(String, i64)> {
    on_sqlite(db, false, async |conn| {
        sqlx::query_as("SELECT name, enabled FROM jails ORDER BY name")
            .fetch_all(conn)
            .await
            .unwrap()
    })
}

/// Runs `work` on a connection to the SQLite file `path` (created when `create`, else opened
/// read-only), on a runtime of its own; closes the connection after.
fn on_sqlite<T>(
    path: &Path,
    create: bool,
    work: impl AsyncFnOnce(&mut sqlx::sqlite::SqliteConnection) -> T,
) -> T {
    use sqlx::Connection;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
        let options = if create {
            options.create_if_missing(true)
        } else {
            options.read_only(true)
        };
        let mut conn = sqlx::sqlite::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        let result = work(&mut conn).await;
        conn.close().await.unwrap();
        result
    })
}

/// A real fail2ban (Debian's package, run from its unpacked tree as a child of the test) bans
/// for real: failed ssh logins in an auth.log it polls (IPv4 and IPv6), `banip` into both
/// jails, `unbanip` from one jail or the other. Its database is then imported twice, as the
/// migration guide says (while fail2ban runs) and after `fail2ban-client stop` (which leaves
/// the bans in `bips` but marks every jail disabled): the same bans arrive, each with the time
/// fail2ban gave it left, permanent for the bantime = -1 jail, the unbanned ones not at all.
#[test]
fn bans_written_by_a_real_fail2ban_server_are_imported() {
    let mut server = start_fail2ban();
    let started = unix_now();

    // Three failed passwords (sshd's maxretry) from each of three addresses, as sshd logs them.
    let attackers = ["192.0.2.10", "192.0.2.11", "2001:db8::5"];
    let lines: Vec<String> = (0..3)
        .flat_map(|n| {
            attackers.iter().enumerate().map(move |(i, ip)| {
                let port = 50_000 + 100 * i + n;
                format!(
                    "{} web1 sshd[{}]: Failed password for root from {ip} port {port} ssh2",
                    syslog_time(unix_now()),
                    4_000 + port,
                )
            })
        })
        .collect();
    append(&server.path("auth.log"), &lines);
    let mut expected_by_sshd: Vec<String> = attackers.iter().map(|ip| ip.to_string()).collect();
    expected_by_sshd.sort();
    crmonban_testutil::wait_until(
        "fail2ban to ban the three attackers",
        crmonban_testutil::PATIENCE,
        || (server.banned("sshd") == expected_by_sshd).then_some(()),
    )
    .unwrap_or_else(|waited| panic!("{waited}\n{}", server.logs()));

    // By hand: into [sshd] (1h) and [recidive] (permanent); .40 into both, then out of
    // [recidive] again; .11 (banned for its log lines) out of [sshd]. fail2ban also takes a
    // network, and an ID that is no address at all (what a filter's <F-ID> may capture).
    let set = |jail: &str, what: &str, ips: &[&str]| {
        let args: Vec<&str> = [jail, what]
            .into_iter()
            .chain(ips.iter().copied())
            .collect();
        server
            .client(&[&["set"], &args[..]].concat())
            .trim()
            .to_owned()
    };
    let v4 = ["192.0.2.20", "192.0.2.30", "192.0.2.40"];
    assert_eq!(set("sshd", "banip", &v4), "3");
    assert_eq!(set("sshd", "banip", &["198.51.100.0/24", "mallory"]), "2");
    assert_eq!(
        set("recidive", "banip", &["2001:db8::20", v4[1], v4[2]]),
        "3"
    );
    assert_eq!(set("recidive", "unbanip", &["192.0.2.40"]), "1");
    assert_eq!(set("sshd", "unbanip", &["192.0.2.11"]), "1");
    assert_eq!(
        server.banned("sshd"),
        [
            "192.0.2.10",
            "192.0.2.20",
            "192.0.2.30",
            "192.0.2.40",
            "198.51.100.0/24",
            "2001:db8::5",
            "mallory"
        ]
    );
    assert_eq!(server.banned("recidive"), ["192.0.2.30", "2001:db8::20"]);

    let conf = server.conf();
    let db = server.path("fail2ban.sqlite3");
    let check = |when: &str, (stdout, bans): (String, Vec<(String, String, i64)>)| {
        // fail2ban's `bips`: the latest ban of each address and jail, .30 in both jails.
        assert_eq!(
            stdout,
            format!(
                "{}: 9 bans (the latest of each address and jail), 0 expired (skipped)\n\
                 sent to crmonban: 8 addresses (each with its longest ban)\n\
                 imported: 7\n\
                 already banned at least as long: 0\n\
                 refused: 1\n  \
                 mallory (jail sshd): org.crmonban.Error.InvalidAddress: mallory is not an IP \
                 address or CIDR\n",
                db.display()
            ),
            "{when}"
        );
        // [sshd]'s bans were made after `started` for 3600 s: what is left of them now,
        // give or take the second fail2ban rounds its time of ban to.
        let elapsed = unix_now() - started;
        let hour_left = |secs: i64| (3600 - elapsed - 1..=3601).contains(&secs);
        let shown: Vec<(&str, &str, i64)> = bans
            .iter()
            .map(|(ip, reason, secs)| (ip.as_str(), reason.as_str(), *secs))
            .collect();
        let ips: Vec<&str> = shown.iter().map(|b| b.0).collect();
        assert_eq!(
            ips,
            [
                "192.0.2.10",
                "192.0.2.20",
                "192.0.2.30",
                "192.0.2.40",
                "198.51.100.0/24",
                "2001:db8::20",
                "2001:db8::5"
            ],
            "{when}: {shown:?}"
        );
        for (ip, reason, secs) in &shown {
            match *ip {
                "192.0.2.30" | "2001:db8::20" => {
                    assert_eq!((*reason, *secs), ("fail2ban:recidive", 0), "{when}: {ip}");
                }
                _ => {
                    assert_eq!(*reason, "fail2ban:sshd", "{when}: {ip}");
                    assert!(
                        hour_left(*secs),
                        "{when}: {ip}: {secs} s left after {elapsed} s"
                    );
                }
            }
        }
    };
    check("while fail2ban runs", import_into_fake_daemon(&conf, &db));
    assert_eq!(jails_in(&db), [("recidive".into(), 1), ("sshd".into(), 1)]);
    server.stop();
    assert_eq!(jails_in(&db), [("recidive".into(), 0), ("sshd".into(), 0)]);
    check(
        "after fail2ban stopped",
        import_into_fake_daemon(&conf, &db),
    );
}

/// crmonband of this build: a test of crmonctl alone does not build the daemon's package, so
/// it is brought up to date here (cargo answers at once when it is current).
fn crmonband_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("crmonband");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", "crmonband", "--bin", "crmonband"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .status()
        .unwrap();
    assert!(status.success(), "building crmonband failed");
    path
}

/// crmonband started in a network namespace of its own; killed (by its pid) when dropped.
struct RealDaemon {
    child: std::process::Child,
    log: PathBuf,
}

impl RealDaemon {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RealDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn root_bans_are_imported_into_a_real_daemon() {
    crmonban_testutil::require_root();
    let crmonband = crmonband_path();
    let host = crmonban_testutil::NetNs::new("f2b-host");
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dbus/org.crmonban.Daemon.conf");
    let bus = PrivateBus::system_like(&policy);
    let a = bus.address();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[general]\ndb_path = \"{d}/crmonban.db\"\npid_file = \"{d}/crmonband.pid\"\n\
             state_dir = \"{d}\"\n\n[[whitelist.sources]]\ntype = \"database\"\n\n\
             [[whitelist.sources]]\ntype = \"networks\"\nnetworks = [\"198.51.100.0/24\"]\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("daemon.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let child = host.run(|| {
        Command::new(&crmonband)
            .arg("-c")
            .arg(&config)
            .args(["start", "-f"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", a)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap()
    });
    let mut daemon = RealDaemon { child, log };
    crmonban_testutil::wait_until("crmonband to answer", crmonban_testutil::PATIENCE, || {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            panic!("crmonband exited ({status}):\n{}", daemon.log());
        }
        (run_at(a, &["status"]).code == 0).then_some(())
    })
    .unwrap_or_else(|waited| panic!("{waited}:\n{}", daemon.log()));

    let db = dir.path().join("fail2ban.sqlite3");
    fail2ban_db(&db);
    let r = run_at(a, &["ban", "192.0.2.14", "-d", "7d"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run_at(a, &["import-fail2ban", &format!("--bans={}", db.display())]);
    assert_eq!(r.code, 0, "{r:?}\n{}", daemon.log());
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[..5],
        [
            format!(
                "{}: 9 bans (the latest of each address and jail), 1 expired (skipped)",
                db.display()
            )
            .as_str(),
            "sent to crmonban: 7 addresses (each with its longest ban)",
            "imported: 4",
            "already banned at least as long: 1",
            "refused: 2",
        ],
        "{}",
        r.stdout
    );
    // The daemon's own reasons, as the migration guide shows them.
    assert_eq!(
        lines[5..],
        [
            "  127.0.0.1 (jail sshd): org.crmonban.Error.Protected: cannot ban 127.0.0.1: \
             127.0.0.1 is a loopback address",
            "  198.51.100.5 (jail nginx-http-auth): org.crmonban.Error.Whitelisted: cannot ban \
             198.51.100.5: 198.51.100.5 is whitelisted (networks source: 198.51.100.0/24)",
        ],
        "{}",
        r.stdout
    );

    // What the daemon holds: the reasons, the time left, permanent bans without an end.
    let r = run_at(a, &["list", "-f", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let bans: Vec<serde_json::Value> = serde_json::from_str(&r.stdout).unwrap();
    let ban = |ip: &str| {
        let b = bans
            .iter()
            .find(|b| b["ip"] == ip)
            .unwrap_or_else(|| panic!("{ip} is not banned: {}", r.stdout));
        let (at, until) = (
            b["banned_at"].as_i64().unwrap(),
            b["expires_at"].as_i64().unwrap(),
        );
        let reason = b["reason"].as_str().unwrap().to_owned();
        (reason, if until == 0 { 0 } else { until - at })
    };
    let (reason, secs) = ban("192.0.2.10");
    assert_eq!(reason, "fail2ban:sshd");
    assert!((480..=500).contains(&secs), "{secs}");
    assert_eq!(ban("192.0.2.12"), ("fail2ban:recidive".to_owned(), 0));
    let (reason, secs) = ban("192.0.2.13");
    assert_eq!(reason, "fail2ban:recidive");
    assert!((604_720..=604_740).contains(&secs), "{secs}");
    assert_eq!(ban("2001:db8::7").0, "fail2ban:postfix");
    assert_eq!(ban("192.0.2.14").1, 7 * 86_400, "the longer ban stays");
    assert_eq!(bans.len(), 5, "{}", r.stdout);

    // And the kernel enforces them.
    let v4 = host.nft(&["list", "set", "inet", "crmonban", "blocked_v4"]);
    for ip in ["192.0.2.10", "192.0.2.12", "192.0.2.13", "192.0.2.14"] {
        assert!(v4.contains(ip), "{ip} not in the kernel:\n{v4}");
    }
    for ip in ["192.0.2.11", "127.0.0.1", "198.51.100.5"] {
        assert!(!v4.contains(ip), "{ip} in the kernel:\n{v4}");
    }
    let v6 = host.nft(&["list", "set", "inet", "crmonban", "blocked_v6"]);
    assert!(v6.contains("2001:db8::7"), "{v6}");
}
