//! The package in a pristine Debian 12, booted under a real systemd: debootstrap makes the root
//! (minbase, systemd, dbus, nftables), `dpkg -i` installs the package as an administrator would,
//! `systemd-nspawn -b --private-network` boots it (a network namespace of the container's own,
//! gone with it; the host's ruleset is never touched), and inside it the hardened unit runs,
//! `crmonctl status` answers over the system bus, a ban reaches the kernel, and sshd's failures
//! written to the journal are banned. Needs root and Debian's mirror; fails without them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The mirror debootstrap reads (Debian's own redirector).
const MIRROR: &str = "http://deb.debian.org/debian";
/// What the root holds besides minbase: an init, a bus, and the package's dependencies.
const INCLUDE: &str = "systemd,systemd-sysv,dbus,nftables,libelf1,zlib1g";

/// A booted container: powered off and reaped on drop, even when the test fails.
struct Container {
    nspawn: Child,
    leader: u32,
}

impl Container {
    fn boot(root: &Path, log: &Path) -> Container {
        let machine = format!("crmb-test-{}", std::process::id());
        let nspawn = Command::new("systemd-nspawn")
            .args([
                "-q",
                "-b",
                "--private-network",
                "--register=no",
                "--keep-unit",
            ])
            .arg(format!("--machine={machine}"))
            .arg("-D")
            .arg(root)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("systemd-nspawn (Debian's systemd-container; cargo xtask deps installs it)");
        let pid = nspawn.id();
        let leader = wait_for("the container's init", Duration::from_secs(30), || {
            let children =
                std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
            children.split_whitespace().next()?.parse().ok()
        });
        Container { nspawn, leader }
    }

    /// `program args...` inside the container, as root, in all its namespaces.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-a", program])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("nsenter {program}: {e}"))
    }

    fn run_ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.run(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} in the container failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn journal(&self) -> String {
        String::from_utf8_lossy(
            &self
                .run("journalctl", &["-u", "crmonban", "--no-pager", "-n", "60"])
                .stdout,
        )
        .into_owned()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // SIGTERM asks nspawn to power the container off; SIGKILL if it does not in time.
        let pid = self.nspawn.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

fn wait_for<T>(what: &str, patience: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "waited {patience:?} for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn debootstrap(root: &Path) {
    let out = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            &format!("--include={INCLUDE}"),
            "bookworm",
        ])
        .arg(root)
        .arg(MIRROR)
        .output()
        .expect("debootstrap (cargo xtask deps installs it)");
    assert!(
        out.status.success(),
        "debootstrap of Debian 12 from {MIRROR} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A scratch directory under target/tmp (the root is large, and /tmp may be a small tmpfs).
fn scratch() -> tempfile::TempDir {
    let base = crate::workspace_root().join("target/tmp");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

#[test]
fn root_the_package_installs_in_debian_and_bans_under_systemd() {
    assert!(
        is_root(),
        "this test needs root (debootstrap, chroot, systemd-nspawn)"
    );
    let package = crate::deb::built_package();
    let dir = scratch();
    let root: PathBuf = dir.path().join("root");
    debootstrap(&root);

    // Installed as an administrator installs it.
    std::fs::copy(&package, root.join("tmp/crmonban.deb")).unwrap();
    let installed = Command::new("chroot")
        .arg(&root)
        .args(["dpkg", "-i", "/tmp/crmonban.deb"])
        .output()
        .unwrap();
    assert!(
        installed.status.success(),
        "dpkg -i failed:\n{}{}",
        String::from_utf8_lossy(&installed.stdout),
        String::from_utf8_lossy(&installed.stderr)
    );
    let groups = std::fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(
        groups.lines().any(|l| l.starts_with("crmonban:")),
        "{groups}"
    );
    assert!(
        // A symlink to /lib/...: its target exists only inside the root.
        std::fs::symlink_metadata(
            root.join("etc/systemd/system/multi-user.target.wants/crmonban.service")
        )
        .is_ok(),
        "the unit is enabled"
    );

    let container = Container::boot(&root, &dir.path().join("console.log"));
    wait_for(
        "crmonban.service to be active",
        Duration::from_secs(60),
        || {
            let state = container.run("systemctl", &["is-active", "crmonban"]);
            (String::from_utf8_lossy(&state.stdout).trim() == "active").then_some(())
        },
    );
    wait_for("crmonctl status to answer", Duration::from_secs(30), || {
        container
            .run("crmonctl", &["status"])
            .status
            .success()
            .then_some(())
    });
    let status = container.run_ok("crmonctl", &["status"]);
    assert!(status.contains("services:              ssh"), "{status}");

    // The sandbox is the unit's: only CAP_NET_ADMIN and CAP_DAC_READ_SEARCH are bounded.
    let pid = container.run_ok(
        "systemctl",
        &["show", "crmonban", "-p", "MainPID", "--value"],
    );
    let proc_status = container.run_ok("cat", &[&format!("/proc/{}/status", pid.trim())]);
    let bounding = proc_status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(str::trim)
        .unwrap_or_default();
    assert_eq!(bounding, "0000000000001004", "{proc_status}");

    // A ban through the bus reaches the container's kernel.
    container.run_ok("crmonctl", &["ban", "192.0.2.9", "-d", "1h"]);
    let set = container.run_ok("nft", &["list", "set", "inet", "crmonban", "blocked_v4"]);
    assert!(set.contains("192.0.2.9"), "{set}");

    // sshd's failures in the journal (a unit called ssh.service, as Debian's sshd runs) are
    // seen through journalctl inside the sandbox, and banned.
    container.run_ok(
        "systemd-run",
        &[
            "--wait",
            "-q",
            "-u",
            "ssh",
            "-p",
            "SyslogIdentifier=sshd",
            "sh",
            "-c",
            "for p in 1 2 3 4 5 6; do echo \"Failed password for root from 203.0.113.5 port 4000$p ssh2\"; done; sleep 1",
        ],
    );
    wait_for(
        "the journal attacker's ban",
        Duration::from_secs(20),
        || {
            let set = container.run_ok("nft", &["list", "set", "inet", "crmonban", "blocked_v4"]);
            set.contains("203.0.113.5").then_some(())
        },
    );

    // ExecReload: a good file reloads; a bad one fails the reload, saying why, and the daemon
    // goes on with the old configuration.
    container.run_ok("systemctl", &["reload", "crmonban"]);
    let config = root.join("etc/crmonban/config.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{good}\n[general]\nbogus = 1\n")).unwrap();
    let refused = container.run("systemctl", &["reload", "crmonban"]);
    assert!(!refused.status.success(), "a bad file must fail the reload");
    assert!(
        container.journal().contains("reload refused"),
        "{}",
        container.journal()
    );
    container.run_ok("systemctl", &["is-active", "crmonban"]);
    std::fs::write(&config, good).unwrap();

    // A stop leaves the bans in the kernel.
    container.run_ok("systemctl", &["stop", "crmonban"]);
    let set = container.run_ok("nft", &["list", "set", "inet", "crmonban", "blocked_v4"]);
    assert!(
        set.contains("203.0.113.5"),
        "bans stay after a stop:\n{set}"
    );
    let restarts = container.run_ok("systemctl", &["show", "crmonban", "-p", "NRestarts"]);
    assert_eq!(restarts.trim(), "NRestarts=0", "{}", container.journal());
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
