//! A real systemd-journald for journal-source tests, in a mount namespace of its own so that
//! nothing of the host's `/run` or `/var/log/journal` is touched: its namespace gets a fresh
//! tmpfs on `/run` (sockets, volatile journal, and a configuration drop-in: volatile storage,
//! no kernel messages, no forwarding, no rate limit). Programs reach it through that namespace
//! ([`Journald::enter`]: `nsenter --mount`), or its syslog socket through
//! `/proc/PID/root` ([`Journald::dev_log`]). Killed, with its namespace, on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const JOURNALD: &str = "/lib/systemd/systemd-journald";

/// See the module docs.
pub struct Journald {
    child: Child,
    _dir: tempfile::TempDir,
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
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start systemd-journald");
        let journald = Journald { child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !journald.root().join("run/systemd/journal/socket").exists()
            || !journald.dev_log().exists()
        {
            assert!(
                Instant::now() < deadline,
                "systemd-journald did not create its sockets"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        journald
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The root directory as journald sees it.
    fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid()))
    }

    /// journald's syslog socket (what `/dev/log` is on a systemd host), reachable from here.
    pub fn dev_log(&self) -> PathBuf {
        self.root().join("run/systemd/journal/dev-log")
    }

    /// `nsenter --mount=<journald's namespace> -- program`: a command that sees this journal
    /// as the system journal (the network namespace is the caller's).
    pub fn enter(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--mount=/proc/{}/ns/mnt", self.pid()))
            .arg("--")
            .arg(program);
        command
    }

    /// A `journalctl` in `dir` that reads this journal: for code that runs journalctl itself.
    pub fn journalctl_shim(&self, dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("journalctl");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nexec nsenter --mount=/proc/{}/ns/mnt -- journalctl \"$@\"\n",
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
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.entries(identifier).len() <= before {
            assert!(
                Instant::now() < deadline,
                "journald did not store {message:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The MESSAGE of every entry of `identifier`, oldest first.
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
