//! A real PostgreSQL server ([`Postgres`]) for the fleet tests: Debian's server binaries,
//! `initdb` run as the `postgres` user into a temporary directory, the server
//! ([`Postgres::start`]) listening on a unix socket in that directory only (no TCP port:
//! reachable from every network namespace through the file system, from none through the
//! network), trust authentication for the role `crmonban`. [`Postgres::stop`] and
//! [`Postgres::start_again`] take it away and bring it back with its data, for the fault
//! tests. Stopped by its PID on drop.
//!
//! [`Postgres::start_tls`] starts one that also listens on TCP, on 127.0.0.1 of the host at a
//! free port, with TLS only: a certificate for `localhost` and 127.0.0.1 made by `openssl` at
//! start and signed by a throwaway CA ([`Postgres::ca_file`]); a second, unrelated CA
//! ([`Postgres::other_ca_file`]) for the tests that must see verification fail; and a
//! `pg_hba.conf` that trusts `crmonban` over TLS, rejects TCP without it and keeps the unix
//! socket as it was ([`Postgres::tcp_url`]).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::{PATIENCE, command_as, wait_until};

/// The port number in the socket's name (`.s.PGSQL.<port>`) of a server without TCP.
const SOCKET_ONLY_PORT: u16 = 5432;

/// Who may connect how when the server listens on TCP too: anyone on the unix socket, and
/// on 127.0.0.1 only through TLS (the first matching line decides).
const TLS_HBA: &str = "\
local all all trust
hostssl all all 127.0.0.1/32 trust
hostnossl all all 127.0.0.1/32 reject
";

/// A running PostgreSQL; see the module documentation.
pub struct Postgres {
    child: Option<Child>,
    dir: tempfile::TempDir,
    bin: PathBuf,
    uid: u32,
    gid: u32,
    /// The port in the socket's name, and on 127.0.0.1 when `tls` is set.
    port: u16,
    /// Whether the server also listens on 127.0.0.1, with TLS.
    tls: bool,
}

impl Postgres {
    /// Initialises a cluster and starts the server on its unix socket only; waits until it
    /// accepts connections.
    pub fn start() -> Postgres {
        Self::init_and_start(false)
    }

    /// Like [`Postgres::start`], and also listening on TCP (127.0.0.1, a free port) with TLS
    /// required; see the module documentation.
    pub fn start_tls() -> Postgres {
        Self::init_and_start(true)
    }

    fn init_and_start(tls: bool) -> Postgres {
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
        let port = if tls {
            // initdb wrote a pg_hba.conf owned by postgres; writing it keeps owner and mode.
            std::fs::write(data.join("pg_hba.conf"), TLS_HBA).unwrap();
            let certificates = dir.path().join("tls");
            std::fs::create_dir(&certificates).unwrap();
            crate::certs::make(&certificates, true);
            // PostgreSQL refuses a key others may read, or one it does not own.
            let key = certificates.join("server.key");
            nix::unistd::chown(&key, Some(uid.into()), Some(gid.into())).unwrap();
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            free_port()
        } else {
            SOCKET_ONLY_PORT
        };
        let mut postgres = Postgres {
            child: None,
            dir,
            bin,
            uid,
            gid,
            port,
            tls,
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
        let mut command = command_as(self.bin.join("postgres"), self.uid, self.gid);
        command
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-k")
            .arg(self.socket_dir())
            .args(["-p", &self.port.to_string()])
            // A test database: durability is not what is tested.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200"]);
        if self.tls {
            let file = |name: &str| self.tls_dir().join(name).display().to_string();
            command
                .args(["-c", "listen_addresses=127.0.0.1", "-c", "ssl=on"])
                .args(["-c", &format!("ssl_cert_file={}", file("server.pem"))])
                .args(["-c", &format!("ssl_key_file={}", file("server.key"))]);
        } else {
            command.args(["-c", "listen_addresses="]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting postgres");
        self.child = Some(child);
        let socket = self.socket_dir().to_owned();
        let bin = self.bin.clone();
        let port = self.port.to_string();
        wait_until("PostgreSQL to accept connections", PATIENCE, || {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("postgres exited ({status}):\n{}", self.log());
            }
            Command::new(bin.join("pg_isready"))
                .arg("-h")
                .arg(&socket)
                .args(["-p", &port, "-q"])
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
            "postgres://crmonban@localhost:{}/postgres?host={}",
            self.port,
            self.socket_dir().display()
        )
    }

    /// The URL of database `postgres` as role `crmonban` over TCP, `localhost` and the
    /// server's port, without a query: the caller adds `?sslmode=...`. Panics unless started
    /// by [`Postgres::start_tls`].
    pub fn tcp_url(&self) -> String {
        format!("postgres://crmonban@localhost:{}/postgres", self.tcp_port())
    }

    /// The TCP port on 127.0.0.1 (see [`Postgres::tcp_url`]).
    pub fn tcp_port(&self) -> u16 {
        self.expect_tls();
        self.port
    }

    /// The CA that signed the server's certificate (for `localhost` and 127.0.0.1), PEM.
    pub fn ca_file(&self) -> PathBuf {
        self.tls_dir().join("ca.pem")
    }

    /// A CA that signed nothing the server presents, PEM: verification against it must fail.
    pub fn other_ca_file(&self) -> PathBuf {
        self.tls_dir().join("other-ca.pem")
    }

    /// The directory of the certificates and keys.
    fn tls_dir(&self) -> PathBuf {
        self.expect_tls();
        self.dir.path().join("tls")
    }

    fn expect_tls(&self) {
        assert!(
            self.tls,
            "no TCP, no TLS: start the server with Postgres::start_tls"
        );
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
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "crmonban",
                "-d",
                "postgres",
            ])
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

/// A port on 127.0.0.1 that nothing listens on now (the kernel's choice for an ephemeral
/// bind); the server binds it a moment later.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}
