//! A fake crmonband for crmonctl's tests: the `org.crmonban.Daemon` interface over an
//! in-memory list of bans, served by zbus on a private bus from a thread of its own, plus
//! helpers to run the crmonctl binary. It refuses loopback targets with
//! `org.crmonban.Error.Protected`, and — when started with [`Callers::Checked`] — checks callers
//! with `crmonban_dbus::authorize` like the real daemon (which only root can pass, so the
//! unprivileged round-trip tests use [`Callers::Trusted`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use crmonban_dbus::{
    BUS_NAME, BanInfo, Error, LogInfo, OBJECT_PATH, ProtectedInfo, WhitelistInfo, authorize,
    status_keys,
};
use crmonban_testutil::ExecutableCopy;
use zbus::message::Header;
use zbus::{Connection, OwnedVariant, Variant};

/// What the fake daemon holds; tests may read it directly.
#[derive(Debug, Default)]
pub struct State {
    pub bans: Vec<BanInfo>,
    pub whitelist: Vec<WhitelistInfo>,
    pub logs: Vec<LogInfo>,
    /// Every method call that reached the daemon, by member name.
    pub calls: Vec<String>,
    pub stopped: bool,
    /// What GetStats answers, when set (else a small fixed object).
    pub stats: Option<String>,
}

/// Fixed "now" of the fake daemon, so that outputs are predictable.
pub const NOW: i64 = 1_764_090_360; // 2025-11-25T17:06:00Z

/// Whether the fake daemon checks who calls its mutating members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Callers {
    /// Like crmonband: `crmonban_dbus::authorize` in every method.
    Checked,
    /// Anyone may do anything (tests that run without root).
    Trusted,
}

struct Daemon {
    state: Arc<Mutex<State>>,
    default_ban_duration: Option<u32>,
    callers: Callers,
}

fn check_target(text: &str) -> Result<IpAddr, Error> {
    let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| Error::InvalidAddress(format!("{text} is not an IP address or CIDR")))?;
    if !prefix.is_empty() && prefix.parse::<u8>().is_err() {
        return Err(Error::InvalidAddress(format!("{text}: bad prefix length")));
    }
    Ok(ip)
}

impl Daemon {
    async fn authorize(&self, conn: &Connection, hdr: &Header<'_>) -> Result<(), Error> {
        match self.callers {
            Callers::Checked => authorize(conn, hdr).await,
            Callers::Trusted => Ok(()),
        }
    }

    fn record(&self, member: &str) -> std::sync::MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap();
        state.calls.push(member.to_owned());
        state
    }
}

#[zbus::interface(name = "org.crmonban.Daemon")]
impl Daemon {
    async fn status(&self) -> Result<HashMap<String, OwnedVariant>, Error> {
        let state = self.record("Status");
        let owned = |v: Variant<'_>| OwnedVariant::try_from(v).expect("plain value");
        let mut status = HashMap::new();
        status.insert(status_keys::RUNNING.into(), owned(Variant::from(true)));
        status.insert(
            status_keys::VERSION.into(),
            owned(Variant::from("0.0.0-fake")),
        );
        status.insert(
            status_keys::UPTIME_SECONDS.into(),
            owned(Variant::from(3725u64)),
        );
        status.insert(
            status_keys::ACTIVE_BANS.into(),
            owned(Variant::from(state.bans.len() as u64)),
        );
        status.insert(
            status_keys::EVENTS_PROCESSED.into(),
            owned(Variant::from(42u64)),
        );
        status.insert(
            status_keys::SERVICES.into(),
            owned(Variant::from(vec!["ssh", "nginx"])),
        );
        if let Some(secs) = self.default_ban_duration {
            status.insert(
                status_keys::DEFAULT_BAN_DURATION.into(),
                owned(Variant::from(secs)),
            );
        }
        Ok(status)
    }

    async fn ban(
        &self,
        ip: String,
        duration_secs: u32,
        reason: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<bool, Error> {
        self.authorize(conn, &hdr).await?;
        let addr = check_target(&ip)?;
        if addr.is_loopback() {
            return Err(Error::Protected(format!("{ip} is a loopback address")));
        }
        let mut state = self.record("Ban");
        if state.bans.iter().any(|b| b.0 == ip) {
            return Ok(false);
        }
        let expires_at = if duration_secs == 0 {
            0
        } else {
            NOW + i64::from(duration_secs)
        };
        let reason = if reason.is_empty() {
            "manual ban".to_owned()
        } else {
            reason
        };
        state
            .logs
            .insert(0, (NOW, "ban".into(), ip.clone(), reason.clone()));
        state
            .bans
            .push((ip, reason, "dbus".into(), NOW, expires_at));
        Ok(true)
    }

    async fn unban(
        &self,
        ip: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<bool, Error> {
        self.authorize(conn, &hdr).await?;
        let mut state = self.record("Unban");
        let before = state.bans.len();
        state.bans.retain(|b| b.0 != ip);
        Ok(state.bans.len() < before)
    }

    async fn get_bans(&self) -> Result<Vec<BanInfo>, Error> {
        Ok(self.record("GetBans").bans.clone())
    }

    async fn get_bans_paged(&self, offset: u32, limit: u32) -> Result<Vec<BanInfo>, Error> {
        Ok(self
            .record("GetBansPaged")
            .bans
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn is_banned(&self, ip: String) -> Result<bool, Error> {
        Ok(self.record("IsBanned").bans.iter().any(|b| b.0 == ip))
    }

    async fn get_intel(&self, ip: String, refresh: bool) -> Result<String, Error> {
        drop(self.record("GetIntel"));
        check_target(&ip)?;
        Ok(format!(
            r#"{{"ip":"{ip}","gathered_at":1705314600,"location":{{"country":"Netherlands","country_code":"NL"}},"network":{{"asn":64496,"organization":"Example B.V."}},"flags":{{"hosting":{refresh}}}}}"#
        ))
    }

    async fn whitelist_add(
        &self,
        net: String,
        comment: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<bool, Error> {
        self.authorize(conn, &hdr).await?;
        check_target(&net)?;
        let mut state = self.record("WhitelistAdd");
        if state.whitelist.iter().any(|w| w.0 == net) {
            return Ok(false);
        }
        state.whitelist.push((net, comment, NOW.to_string()));
        Ok(true)
    }

    /// Lifts the bans of exactly `net` or, for a single address, of a /24 ban around it
    /// (enough to show the client's output; the real daemon asks its policy).
    async fn whitelist_add_lifting(
        &self,
        net: String,
        comment: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(bool, u32, Vec<(String, String)>), Error> {
        self.authorize(conn, &hdr).await?;
        let ip = check_target(&net)?;
        let mut state = self.record("WhitelistAddLifting");
        let added = !state.whitelist.iter().any(|w| w.0 == net);
        if added {
            state
                .whitelist
                .push((net.clone(), comment, NOW.to_string()));
        }
        let around = match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                format!("{}.{}.{}.0/24", o[0], o[1], o[2])
            }
            IpAddr::V6(_) => String::new(),
        };
        let mut lifted = Vec::new();
        state.bans.retain(|b| {
            let hit = b.0 == net || b.0 == around;
            if hit {
                lifted.push((
                    b.0.clone(),
                    format!(
                        "cannot ban {0}: {0} contains whitelisted {net} (database: {net})",
                        b.0
                    ),
                ));
            }
            !hit
        });
        Ok((added, lifted.len() as u32, lifted))
    }

    async fn whitelist_remove(
        &self,
        net: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<bool, Error> {
        self.authorize(conn, &hdr).await?;
        let mut state = self.record("WhitelistRemove");
        let before = state.whitelist.len();
        state.whitelist.retain(|w| w.0 != net);
        Ok(state.whitelist.len() < before)
    }

    async fn get_whitelist(&self) -> Result<Vec<WhitelistInfo>, Error> {
        Ok(self.record("GetWhitelist").whitelist.clone())
    }

    async fn get_protected_entries(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<ProtectedInfo>, Error> {
        let state = self.record("GetProtectedEntries");
        Ok(state
            .whitelist
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .map(|(net, comment, added_at)| {
                (
                    net.clone(),
                    "database".into(),
                    comment.clone(),
                    added_at.clone(),
                )
            })
            .collect())
    }

    async fn check_protected(&self, ip: String) -> Result<(bool, String), Error> {
        check_target(&ip)?;
        let state = self.record("CheckProtected");
        Ok(match state.whitelist.iter().find(|w| w.0 == ip) {
            Some(w) => (true, format!("{ip} is whitelisted (database: {})", w.0)),
            None => (false, format!("{ip} is not protected: it may be banned")),
        })
    }

    async fn get_logs(&self, limit: u32) -> Result<Vec<LogInfo>, Error> {
        let state = self.record("GetLogs");
        Ok(state.logs.iter().take(limit as usize).cloned().collect())
    }

    async fn get_stats(&self) -> Result<String, Error> {
        let state = self.record("GetStats");
        if let Some(stats) = &state.stats {
            return Ok(stats.clone());
        }
        Ok(format!(
            r#"{{"active_bans":{},"bans_by_source":{{"dbus":{}}},"top_services":["ssh"]}}"#,
            state.bans.len(),
            state.bans.len()
        ))
    }

    async fn flush(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<u32, Error> {
        self.authorize(conn, &hdr).await?;
        let mut state = self.record("Flush");
        let n = state.bans.len() as u32;
        state.bans.clear();
        Ok(n)
    }

    async fn reload(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<bool, Error> {
        self.authorize(conn, &hdr).await?;
        drop(self.record("Reload"));
        Ok(true)
    }

    async fn stop(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(), Error> {
        self.authorize(conn, &hdr).await?;
        self.record("Stop").stopped = true;
        Ok(())
    }

    #[zbus(property)]
    fn running(&self) -> bool {
        true
    }

    #[zbus(property)]
    fn active_ban_count(&self) -> u64 {
        self.state.lock().unwrap().bans.len() as u64
    }
}

/// The fake daemon, serving until dropped.
pub struct FakeDaemon {
    pub state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeDaemon {
    /// Serves `org.crmonban.Daemon` on the bus at `address`; `Status()` reports
    /// `default_ban_duration` when given.
    pub fn start(address: &str, default_ban_duration: Option<u32>, callers: Callers) -> FakeDaemon {
        let state = Arc::new(Mutex::new(State::default()));
        let daemon = Daemon {
            state: state.clone(),
            default_ban_duration,
            callers,
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let address = address.to_owned();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let conn = zbus::connection::Builder::address(address.as_str())
                    .name(BUS_NAME)
                    .serve_at(OBJECT_PATH, daemon)
                    .build()
                    .await;
                match conn {
                    Ok(_serving) => {
                        ready_tx.send(Ok(())).unwrap();
                        let _ = shutdown_rx.await;
                    }
                    Err(e) => ready_tx.send(Err(e.to_string())).unwrap(),
                }
            });
        });
        ready_rx
            .recv()
            .expect("fake daemon thread")
            .unwrap_or_else(|e| panic!("fake daemon cannot serve: {e}"));
        FakeDaemon {
            state,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The crmonctl binary under test.
pub fn crmonctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crmonctl"))
}

/// What a run of crmonctl produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().expect("exited, not killed"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `crmonctl --address <address> args...`.
pub fn run_at(address: &str, args: &[&str]) -> Run {
    crmonctl()
        .arg("--address")
        .arg(address)
        .args(args)
        .output()
        .expect("run crmonctl")
        .into()
}

/// crmonctl where every user can run it (the target directory may sit in a private home).
pub fn crmonctl_for_others() -> ExecutableCopy {
    ExecutableCopy::of(env!("CARGO_BIN_EXE_crmonctl"))
}

/// Runs `crmonctl args...` (a [`crmonctl_for_others`] copy) as `uid` (same gid) with
/// `DBUS_SYSTEM_BUS_ADDRESS=address`.
pub fn run_as(crmonctl: &ExecutableCopy, uid: u32, address: &str, args: &[&str]) -> Run {
    crmonban_testutil::command_as(crmonctl.path(), uid, uid)
        .env("DBUS_SYSTEM_BUS_ADDRESS", address)
        .args(args)
        .output()
        .expect("run crmonctl")
        .into()
}
