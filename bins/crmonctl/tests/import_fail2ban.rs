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
//! tests/support and — as root — into a real crmonband on a private bus.

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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        let mut conn = sqlx::sqlite::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::raw_sql(FAIL2BAN_SCHEMA)
            .execute(&mut conn)
            .await
            .unwrap();
        let now = unix_now();
        for jail in ["sshd", "recidive", "nginx-http-auth", "postfix"] {
            sqlx::query("INSERT INTO jails(name, enabled) VALUES (?, 1)")
                .bind(jail)
                .execute(&mut conn)
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
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
        conn.close().await.unwrap();
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
