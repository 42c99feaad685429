//! A real PostgreSQL server ([`Postgres`]) for the fleet tests: Debian's server binaries,
//! `initdb` run as the `postgres` user into a temporary directory, the server listening on a
//! unix socket in that directory only (no TCP port: reachable from every network namespace
//! through the file system, from none through the network), trust authentication for the role
//! `crmonban`. [`Postgres::stop`] and [`Postgres::start_again`] take it away and bring it back
//! with its data, for the fault tests. Stopped by its PID on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::{PATIENCE, command_as, wait_until};

/// The port number in the socket's name (`.s.PGSQL.<port>`); nothing listens on TCP.
const PORT: u16 = 5432;

/// A running PostgreSQL; see the module documentation.
pub struct Postgres {
    child: Option<Child>,
    dir: tempfile::TempDir,
    bin: PathBuf,
    uid: u32,
    gid: u32,
}

impl Postgres {
    /// Initialises a cluster and starts the server; waits until it accepts connections.
    pub fn start() -> Postgres {
        crate::require_root();
        let bin = server_bin();
        let (uid, gid) = postgres_user();
        let dir = crate::bus::tempdir_for_everyone("crmb-pg-");
        let data = dir.path().join("data");
        let socket = dir.path().join("socket");
        for owned in [&data, &socket] {
            std::fs::create_dir(owned).unwrap();
            nix::unistd::chown(owned, Some(uid.into()), Some(gid.into())).unwrap();
        }
        let out = command_as(bin.join("initdb"), uid, gid)
            .args([
                "-U",
                "crmonban",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut postgres = Postgres {
            child: None,
            dir,
            bin,
            uid,
            gid,
        };
        postgres.start_again();
        postgres
    }

    /// Starts the server (again) on the same data; waits until it accepts connections.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "PostgreSQL is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("postgres.log"))
            .unwrap();
        let child = command_as(self.bin.join("postgres"), self.uid, self.gid)
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-k")
            .arg(self.socket_dir())
            .args(["-p", &PORT.to_string(), "-c", "listen_addresses="])
            // A test database: durability is not what is tested.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting postgres");
        self.child = Some(child);
        let socket = self.socket_dir().to_owned();
        let bin = self.bin.clone();
        wait_until("PostgreSQL to accept connections", PATIENCE, || {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("postgres exited ({status}):\n{}", self.log());
            }
            Command::new(bin.join("pg_isready"))
                .arg("-h")
                .arg(&socket)
                .args(["-p", &PORT.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success())
                .then_some(())
        })
        .unwrap_or_else(|waited| panic!("{waited}:\n{}", self.log()));
    }

    /// Stops the server (fast shutdown: connections are cut), keeping its data.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let stopped = wait_until("PostgreSQL to stop", PATIENCE, || {
            child.try_wait().ok().flatten().map(|_| ())
        });
        if stopped.is_err() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The URL of database `postgres` as role `crmonban`, over the unix socket.
    pub fn url(&self) -> String {
        format!(
            "postgres://crmonban@localhost:{PORT}/postgres?host={}",
            self.socket_dir().display()
        )
    }

    /// The directory of the server's socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    /// `psql -c sql` as role crmonban; its output (unaligned, tuples only).
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(self.socket_dir())
            .args(["-p", &PORT.to_string(), "-U", "crmonban", "-d", "postgres"])
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql -c {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The server's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Debian's server binaries (`/usr/lib/postgresql/<version>/bin`), the newest installed.
fn server_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server (Debian package postgresql; cargo xtask deps installs it)")
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no /usr/lib/postgresql/<version>/bin/postgres")
}

/// The uid and gid of the `postgres` user the package creates.
fn postgres_user() -> (u32, u32) {
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .expect("the postgres user (Debian package postgresql creates it)");
    (user.uid.as_raw(), user.gid.as_raw())
}
