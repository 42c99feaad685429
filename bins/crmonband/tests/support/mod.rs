//! What the daemon's end-to-end tests share: [`Daemon`] runs `crmonband start -f` inside a
//! network namespace of its own, on a private dbus-daemon configured like the system bus with
//! the shipped policy file, with helpers to drive it through `crmonctl` and D-Bus and to reach
//! it from an attacker's namespace.

#![allow(dead_code)] // each test file uses its own part

pub mod seed;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crmonban_dbus::DaemonProxy;
use crmonban_testutil::{
    End, ExecutableCopy, NOBODY, NetNs, PATIENCE, PrivateBus, command_as, connect, wait_until,
};

pub const ATTACKER_V4: &str = "10.77.0.1";
pub const HOST_V4: &str = "10.77.0.2";

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn policy_file() -> PathBuf {
    workspace().join("dbus/org.crmonban.Daemon.conf")
}

/// The crmonctl binary of this build, brought up to date once per test process: a test of
/// this package alone does not rebuild another package's binary, and an old crmonctl would
/// test old code (cargo answers at once when it is current).
pub fn crmonctl_path() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let deps = std::env::current_exe().unwrap();
            let path = deps
                .parent()
                .and_then(Path::parent)
                .unwrap()
                .join("crmonctl");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "crmonctl", "--bin", "crmonctl"])
                .current_dir(workspace())
                .status()
                .unwrap();
            assert!(status.success(), "building crmonctl failed");
            assert!(path.exists(), "no crmonctl at {}", path.display());
            path
        })
        .clone()
}

/// One daemon with its namespace, bus and state directory.
pub struct Daemon {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub bus: PrivateBus,
    pub host: NetNs,
    /// A process whose mount namespace and root the daemon runs in, e.g. a test journald.
    pub mount_ns_of: Option<u32>,
    /// crmonctl where uid 65534 can run it (made on first use).
    pub crmonctl_for_others: std::sync::OnceLock<ExecutableCopy>,
}

impl Daemon {
    /// A host namespace with the daemon running on a system-like bus with the shipped policy.
    pub fn start(extra_config: &str) -> Daemon {
        Daemon::start_on(
            NetNs::new("d-host"),
            PrivateBus::system_like(&policy_file()),
            extra_config,
        )
    }

    pub fn start_on(host: NetNs, bus: PrivateBus, extra_config: &str) -> Daemon {
        Daemon::start_in(host, bus, extra_config, None)
    }

    pub fn start_in(
        host: NetNs,
        bus: PrivateBus,
        extra_config: &str,
        mount_ns_of: Option<u32>,
    ) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        write_config(&config, dir.path(), extra_config);
        let mut daemon = Daemon {
            child: None,
            dir,
            config,
            bus,
            host,
            mount_ns_of,
            crmonctl_for_others: std::sync::OnceLock::new(),
        };
        daemon.spawn(&[]);
        daemon
    }

    /// Starts `crmonband -c config start -f` from a thread inside the host namespace, and waits
    /// until it answers on the bus.
    pub fn spawn(&mut self, env: &[(&str, &str)]) {
        self.launch(env);
        self.wait_answering();
    }

    /// Starts the daemon without waiting for anything.
    pub fn launch(&mut self, env: &[(&str, &str)]) {
        let log = std::fs::File::create(self.dir.path().join("daemon.log")).unwrap();
        let child = self.host.run(|| {
            let mut command = match self.mount_ns_of {
                // nsenter execs the daemon: the child's pid is the daemon's.
                Some(pid) => {
                    crmonban_testutil::enter_mount_namespace(pid, env!("CARGO_BIN_EXE_crmonband"))
                }
                None => Command::new(env!("CARGO_BIN_EXE_crmonband")),
            };
            command
                .args(["-c", self.config.to_str().unwrap(), "start", "-f"])
                .env("DBUS_SYSTEM_BUS_ADDRESS", self.bus.address())
                .env("RUST_LOG", "info")
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap()
        });
        self.child = Some(child);
    }

    pub fn wait_answering(&mut self) {
        wait_until("crmonband to answer on the bus", PATIENCE, || {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("crmonband exited early ({status}):\n{}", self.log());
            }
            self.ctl(&["status"]).status.success().then_some(())
        })
        .unwrap_or_else(|waited| panic!("{waited}:\n{}", self.log()));
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn ctl_command(&self, program: Command) -> Command {
        let mut cmd = program;
        cmd.env("DBUS_SYSTEM_BUS_ADDRESS", self.bus.address());
        cmd
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_command(Command::new(crmonctl_path()))
            .args(args)
            .output()
            .unwrap()
    }

    pub fn ctl_as_nobody(&self, args: &[&str]) -> Output {
        let crmonctl = self
            .crmonctl_for_others
            .get_or_init(|| ExecutableCopy::of(crmonctl_path()));
        self.ctl_command(command_as(crmonctl.path(), NOBODY, NOBODY))
            .args(args)
            .output()
            .unwrap()
    }

    pub fn signal(&self, name: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        crmonban_testutil::run("kill", &[&format!("-{name}"), &pid]);
    }

    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().unwrap();
        let status = wait_until("crmonband to exit", PATIENCE, || child.try_wait().unwrap())
            .unwrap_or_else(|waited| panic!("{waited}:\n{}", self.log()));
        self.child = None;
        status
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("crmonban.db")
    }

    /// The elements of one of crmonban's sets (addresses or networks, without their timeouts).
    pub fn set_elements(&self, set: &str) -> std::collections::BTreeSet<String> {
        let listing = self.host.nft(&["list", "set", "inet", "crmonban", set]);
        let Some(start) = listing.find("elements = {") else {
            return Default::default();
        };
        let body = &listing[start + "elements = {".len()..];
        let body = &body[..body.find('}').unwrap_or(body.len())];
        body.split(',')
            .filter_map(|element| element.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }

    pub fn set_contains(&self, set: &str, what: &str) -> bool {
        self.host
            .nft(&["list", "set", "inet", "crmonban", set])
            .contains(what)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn write_config(path: &Path, dir: &Path, extra: &str) {
    std::fs::write(
        path,
        format!(
            "[general]\ndb_path = \"{d}/crmonban.db\"\npid_file = \"{d}/crmonband.pid\"\nstate_dir = \"{d}\"\n{extra}\n",
            d = dir.display()
        ),
    )
    .unwrap();
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub async fn proxy(bus: &PrivateBus) -> DaemonProxy<'static> {
    let conn = zbus::connection::Builder::address(bus.address())
        .build()
        .await
        .unwrap();
    DaemonProxy::new(&conn).await.unwrap()
}

/// An attacker namespace linked to the daemon's host namespace.
pub fn attacker_for(host: &NetNs) -> NetNs {
    let attacker = NetNs::new("d-atk");
    connect(
        End {
            ns: &attacker,
            v4: "10.77.0.1/24",
            v6: "fd77::1/64",
        },
        End {
            ns: host,
            v4: "10.77.0.2/24",
            v6: "fd77::2/64",
        },
    );
    attacker
}
