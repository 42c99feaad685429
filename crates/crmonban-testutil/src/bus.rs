//! A private `dbus-daemon` per test, configured like the system bus, and running commands as
//! another user so that a test can be an unprivileged caller.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// `nobody` / `nogroup` on Debian: an unprivileged caller for tests.
pub const NOBODY: u32 = 65534;

/// A `dbus-daemon` of its own, listening on a unix socket in a temporary directory; killed, and
/// the directory removed, on drop.
///
/// [`PrivateBus::system_like`] mirrors `/usr/share/dbus-1/system.conf`: EXTERNAL auth only,
/// nobody may own a name and method calls are denied unless an included policy file punches a
/// hole, signals and requested replies pass. [`PrivateBus::open`] allows everything (any name,
/// any call), for tests of a service's own checks or of a client without a policy in the way.
///
/// The bus runs as the test's user: under root, as the system bus policy expects (only root may
/// own `org.crmonban.Daemon`), and callers started with [`command_as`] connect as themselves.
#[derive(Debug)]
pub struct PrivateBus {
    child: Child,
    address: String,
    dir: tempfile::TempDir,
}

impl PrivateBus {
    /// A system-like bus that includes `policy` (e.g. `dbus/org.crmonban.Daemon.conf`).
    pub fn system_like(policy: &Path) -> PrivateBus {
        let policy = policy
            .canonicalize()
            .unwrap_or_else(|e| panic!("policy file {}: {e}", policy.display()));
        let rules = format!(
            r#"  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include>{}</include>
"#,
            xml_escape(&policy.to_string_lossy())
        );
        PrivateBus::start(&rules)
    }

    /// A bus that lets anyone own any name and call anything.
    pub fn open() -> PrivateBus {
        PrivateBus::start(
            r#"  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
"#,
        )
    }

    fn start(rules: &str) -> PrivateBus {
        // Other users (see `command_as`) must reach the socket inside.
        let dir = tempdir_for_everyone("crmb-bus-");
        let socket = dir.path().join("bus");
        let mut config = String::from(
            "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \
             \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig>\n  \
             <type>system</type>\n",
        );
        let _ = writeln!(
            config,
            "  <listen>unix:path={}</listen>\n  <auth>EXTERNAL</auth>",
            xml_escape(&socket.to_string_lossy())
        );
        config.push_str(rules);
        config.push_str("</busconfig>\n");
        let config_path = dir.path().join("bus.conf");
        std::fs::write(&config_path, config).expect("write the bus configuration");
        let (child, address) = PrivateBus::run_daemon(dir.path());
        PrivateBus {
            child,
            address,
            dir,
        }
    }

    /// Stops the bus daemon (by its pid) and starts a new one on the same socket: every client
    /// loses its connection, and the address stays valid for new ones.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(self.dir.path().join("bus"));
        let (child, address) = PrivateBus::run_daemon(self.dir.path());
        assert_eq!(address, self.address, "the restarted bus listens elsewhere");
        self.child = child;
    }

    /// Runs dbus-daemon with `dir`'s configuration; its address without the guid (a restarted
    /// bus has another, and clients check a guid they are given).
    fn run_daemon(dir: &Path) -> (Child, String) {
        let config_path = dir.join("bus.conf");
        let log_path = dir.join("dbus-daemon.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("bus log file");

        let mut child = Command::new("dbus-daemon")
            .arg("--nofork")
            .arg("--nopidfile")
            .arg("--print-address")
            .arg(format!("--config-file={}", config_path.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run dbus-daemon (package dbus): {e}"));
        // The address is printed once the socket listens; EOF means the daemon gave up.
        let mut address = String::new();
        let read =
            BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut address);
        let address = address.trim().to_owned();
        if read.is_err() || address.is_empty() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "dbus-daemon did not start: {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        let address = address
            .split(',')
            .filter(|part| !part.starts_with("guid="))
            .collect::<Vec<_>>()
            .join(",");
        (child, address)
    }

    /// The bus's D-Bus address (`unix:path=/tmp/crmb-bus-.../bus`), for
    /// `DBUS_SYSTEM_BUS_ADDRESS`, `--address` or `zbus::connection::Builder::address`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The directory holding the socket, the configuration and the daemon's log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What dbus-daemon wrote to stderr so far (policy warnings, rejected messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dbus-daemon.log")).unwrap_or_default()
    }

    /// The path of the generated configuration.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("bus.conf")
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A [`Command`] for `program` that runs as `uid`/`gid` with no supplementary groups (root
/// drops them when it changes uid), so a test can call a service as an unprivileged user such
/// as [`NOBODY`]. Needs root. The environment is inherited; `HOME` is set to `/` so nothing the
/// program writes lands in root's home.
///
/// A `program` given as a path must be executable by that user, directories included: a
/// binary of this build sits under the target directory, which is out of other users' reach
/// when the checkout is in a mode-700 home such as Debian's `/root`. Panics naming what blocks
/// it; run an [`ExecutableCopy`] instead. A bare name is looked up in `PATH` (system programs
/// such as `dbus-send`).
///
/// A command rather than a closure: forking the multi-threaded test harness and running Rust
/// code in the child is not async-signal-safe; exec'ing a program is.
pub fn command_as(program: impl AsRef<OsStr>, uid: u32, gid: u32) -> Command {
    crate::require_root();
    let program = program.as_ref();
    let path = Path::new(program);
    if path.components().count() > 1
        && let Some(why) = execute_denied(path, uid, gid)
    {
        panic!(
            "uid {uid} cannot run {}: {why}; run a copy made with \
             crmonban_testutil::ExecutableCopy::of instead",
            path.display()
        );
    }
    let mut command = Command::new(program);
    command.uid(uid).gid(gid).env("HOME", "/");
    command
}

/// A program of this build placed where every user can reach it: a hard link (or, across
/// file systems, a copy) in a new mode-0755 directory under the system's temporary directory,
/// removed on drop. For [`command_as`] when the build's own path is out of other users' reach
/// (which still checks that the program's own mode lets them run it).
#[derive(Debug)]
pub struct ExecutableCopy {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl ExecutableCopy {
    /// Places `program` (a path) in a directory every user can enter. Panics when that is not
    /// possible, e.g. when `TMPDIR` itself is private.
    pub fn of(program: impl AsRef<Path>) -> ExecutableCopy {
        let program = program.as_ref();
        let name = program
            .file_name()
            .unwrap_or_else(|| panic!("{} names no file", program.display()));
        let dir = tempdir_for_everyone("crmb-exec-");
        let path = dir.path().join(name);
        // A hard link shares the program's inode, mode included (cargo's outputs are 0755); a
        // copy keeps the mode too.
        if std::fs::hard_link(program, &path).is_err() {
            std::fs::copy(program, &path)
                .unwrap_or_else(|e| panic!("copy {} for other users: {e}", program.display()));
        }
        ExecutableCopy { path, _dir: dir }
    }

    /// The copy's path, runnable by any user.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A new mode-0755 directory under the system's temporary directory, removed on drop, that
/// every user can enter. Panics when the temporary directory itself is out of their reach.
pub(crate) fn tempdir_for_everyone(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("a temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod a temporary directory");
    if let Some(why) = execute_denied(dir.path(), NOBODY, NOBODY) {
        panic!(
            "{} is out of other users' reach ({why}); point TMPDIR to a directory everyone may \
             enter, such as /tmp",
            dir.path().display()
        );
    }
    dir
}

/// Why `uid`/`gid` (without supplementary groups) may not execute (or, for a directory,
/// enter) `path`, judged by the permission bits of every directory down to it and of `path`
/// itself: the first thing that blocks, or `None`. (ACLs are not consulted; test machines do
/// not set them on these paths.)
fn execute_denied(path: &Path, uid: u32, gid: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let path = match path.canonicalize() {
        Ok(path) => path,
        Err(e) => return Some(format!("{}: {e}", path.display())),
    };
    // Owner, group or other bits: the first class that applies decides, as in the kernel.
    let searchable = |meta: &std::fs::Metadata| {
        let shift = if meta.uid() == uid {
            6
        } else if meta.gid() == gid {
            3
        } else {
            0
        };
        meta.mode() & (0o1 << shift) != 0
    };
    for dir in path.ancestors().skip(1) {
        let meta = std::fs::metadata(dir).ok()?;
        if !searchable(&meta) {
            return Some(format!(
                "directory {} is mode {:o} (owner uid {})",
                dir.display(),
                meta.mode() & 0o7777,
                meta.uid()
            ));
        }
    }
    let meta = std::fs::metadata(&path).ok()?;
    if !searchable(&meta) {
        return Some(format!(
            "{} is mode {:o}",
            path.display(),
            meta.mode() & 0o7777
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_bus_starts_and_cleans_up() {
        let bus = PrivateBus::open();
        assert!(bus.address().starts_with("unix:path="), "{}", bus.address());
        let dir = bus.dir().to_owned();
        let out = Command::new("dbus-send")
            .args([
                &format!("--bus={}", bus.address()),
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.GetId",
            ])
            .output()
            .expect("dbus-send");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        drop(bus);
        assert!(!dir.exists(), "{} was not removed", dir.display());
    }

    #[test]
    fn root_a_program_in_a_private_directory_is_refused_and_its_copy_runs() {
        crate::require_root();
        let private = tempfile::tempdir().unwrap();
        std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let program = private.path().join("whoami-test");
        std::fs::write(&program, "#!/bin/sh\nid -u\n").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();

        let refused = std::panic::catch_unwind(|| command_as(&program, NOBODY, NOBODY));
        let message = refused.expect_err("a mode-700 directory must be refused");
        let message = message
            .downcast_ref::<String>()
            .expect("a formatted panic message");
        assert!(
            message.contains(&format!("{} is mode 700", private.path().display())),
            "{message}"
        );

        let copy = ExecutableCopy::of(&program);
        let out = command_as(copy.path(), NOBODY, NOBODY).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            NOBODY.to_string()
        );
        let dir = copy.path().parent().unwrap().to_owned();
        drop(copy);
        assert!(!dir.exists(), "{} was not removed", dir.display());
    }

    #[test]
    fn root_system_like_bus_lets_only_the_policy_own_names() {
        crate::require_root();
        let policy = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            policy.path(),
            "<busconfig><policy user=\"root\"><allow own=\"org.crmonban.Test\"/></policy></busconfig>",
        )
        .unwrap();
        let bus = PrivateBus::system_like(policy.path());
        let request_name = |uid: u32| {
            command_as("dbus-send", uid, uid)
                .args([
                    &format!("--bus={}", bus.address()),
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.RequestName",
                    "string:org.crmonban.Test",
                    "uint32:0",
                ])
                .output()
                .expect("dbus-send")
        };
        let root = request_name(0);
        assert!(
            root.status.success(),
            "{}",
            String::from_utf8_lossy(&root.stderr)
        );
        let nobody = request_name(NOBODY);
        assert!(!nobody.status.success());
        assert!(
            String::from_utf8_lossy(&nobody.stderr)
                .contains("org.freedesktop.DBus.Error.AccessDenied"),
            "{}",
            String::from_utf8_lossy(&nobody.stderr)
        );
    }
}
