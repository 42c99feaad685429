//! A real systemd-journald for journal-source tests, in a mount namespace of its own so that
//! nothing of the host's `/run` or `/var/log/journal` is touched: its namespace gets a fresh
//! tmpfs on `/run` (sockets, volatile journal, and a configuration drop-in: volatile storage,
//! no kernel messages, no forwarding, no rate limit). Programs reach it through that namespace
//! ([`Journald::enter`]), or its syslog socket through `/proc/PID/root` ([`Journald::dev_log`]).
//! Killed, with its namespace, on drop.
//!
//! What it needs of the machine, found on fresh Debian 12 roots: only the `systemd` package
//! (journald, journalctl), util-linux's `unshare`/`nsenter` and a root directory that is a
//! mount point (`cargo xtask test` checks that). It does not need `/dev/kmsg`, a console, a
//! machine id or a running systemd: journald's own messages go to a file of the test
//! ([`Journald::own_log`]), shown whenever something it was waited for does not happen.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{PATIENCE, enter_mount_namespace, wait_until};

const JOURNALD: &str = "/lib/systemd/systemd-journald";

/// See the module docs.
pub struct Journald {
    child: Child,
    dir: tempfile::TempDir,
}

impl Journald {
    /// Starts journald and waits for its sockets. Panics (never skips) without root or
    /// without systemd's journald.
    pub fn start() -> Journald {
        crate::require_root();
        assert!(
            Path::new(JOURNALD).exists(),
            "{JOURNALD} is missing: install the systemd package (cargo xtask test does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("journald.conf");
        std::fs::write(
            &conf,
            "[Journal]\nStorage=volatile\nReadKMsg=no\nForwardToSyslog=no\nForwardToKMsg=no\n\
             ForwardToConsole=no\nForwardToWall=no\nRateLimitBurst=0\n",
        )
        .unwrap();
        let script = format!(
            "set -e; mount -t tmpfs tmpfs /run; \
             mkdir -p /run/systemd/journald.conf.d /run/log; \
             cp {conf} /run/systemd/journald.conf.d/zz-crmonban-test.conf; \
             exec {JOURNALD}",
            conf = conf.display()
        );
        let own_log = std::fs::File::create(dir.path().join("journald.log")).unwrap();
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            // journald writes its own messages to /dev/kmsg, or else to the console; neither
            // may exist (containers) and a console may block. Standard error is ours.
            .env("SYSTEMD_LOG_TARGET", "console")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(own_log)
            .spawn()
            .expect("start systemd-journald (unshare from util-linux)");
        let mut journald = Journald { child, dir };
        let socket = journald.root().join("run/systemd/journal/socket");
        wait_until("systemd-journald to create its sockets", PATIENCE, || {
            if let Some(status) = journald.child.try_wait().unwrap() {
                panic!(
                    "systemd-journald exited ({status}) before creating its sockets:\n{}",
                    journald.own_log()
                );
            }
            (socket.exists() && journald.dev_log().exists()).then_some(())
        })
        .unwrap_or_else(|waited| panic!("{waited}; journald said:\n{}", journald.own_log()));
        journald
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What journald (and the `unshare` that started it) wrote about itself so far.
    pub fn own_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("journald.log")).unwrap_or_default()
    }

    /// The root directory as journald sees it.
    fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid()))
    }

    /// journald's syslog socket (what `/dev/log` is on a systemd host), reachable from here.
    pub fn dev_log(&self) -> PathBuf {
        self.root().join("run/systemd/journal/dev-log")
    }

    /// A command that runs `program` with this journal as the system journal (see
    /// [`enter_mount_namespace`]; the network namespace is the caller's).
    pub fn enter(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        enter_mount_namespace(self.pid(), program)
    }

    /// A `journalctl` in `dir` that reads this journal: for code that runs journalctl itself.
    pub fn journalctl_shim(&self, dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("journalctl");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nexec nsenter --target {} --mount --root -- journalctl \"$@\"\n",
                self.pid()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Logs `message` as `identifier[pid]` through the syslog socket, as sshd's syslog(3) does,
    /// and waits until journald has stored it.
    pub fn log(&self, identifier: &str, pid: u32, message: &str) {
        let before = self.entries(identifier).len();
        let out = Command::new("logger")
            .arg("--socket")
            .arg(self.dev_log())
            .args(["-t", identifier, &format!("--id={pid}"), "--", message])
            .output()
            .expect("run logger");
        assert!(out.status.success(), "logger: {out:?}");
        let mut entries = Vec::new();
        wait_until(&format!("journald to store {message:?}"), PATIENCE, || {
            entries = self.entries(identifier);
            (entries.len() > before).then_some(())
        })
        .unwrap_or_else(|waited| {
            panic!(
                "{waited}; journalctl found {} entries of {identifier} (before: {before}):\n{}\n\
                 journald said:\n{}",
                entries.len(),
                entries.join("\n"),
                self.own_log()
            )
        });
    }

    /// The MESSAGE of every entry of `identifier`, oldest first. Panics when journalctl fails.
    pub fn entries(&self, identifier: &str) -> Vec<String> {
        let out = self
            .enter("journalctl")
            .args([
                "--output=cat",
                "--no-pager",
                "--quiet",
                &format!("SYSLOG_IDENTIFIER={identifier}"),
            ])
            .output()
            .expect("run journalctl");
        assert!(
            out.status.success(),
            "journalctl in journald's namespace failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_journald_stores_what_is_logged_and_only_its_namespace_sees_it() {
        let journal = Journald::start();
        let message = format!("crmonban-testutil probe {}", std::process::id());
        journal.log("crmb-probe", 42, &message);
        assert_eq!(journal.entries("crmb-probe"), vec![message.clone()]);
        // Through the shim too, as code that runs journalctl itself sees it.
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(journal.journalctl_shim(dir.path()))
            .args(["--output=cat", "--no-pager", "SYSLOG_IDENTIFIER=crmb-probe"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), message);
        // The host's /run is untouched: journald's is a file system of its own.
        use std::os::unix::fs::MetadataExt;
        let dev = |path: PathBuf| std::fs::metadata(&path).unwrap().dev();
        assert_ne!(dev(journal.root().join("run")), dev(PathBuf::from("/run")));
    }
}
