//! `crmonband start`: the daemon's process concerns — background mode, pid file, logging,
//! systemd readiness, signals (SIGTERM/SIGINT stop, SIGHUP reloads) — around the engine and
//! the D-Bus service. Bans stay in the kernel when the daemon stops; the next start restores
//! them from the database.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use crmonban_engine::EngineBuilder;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tracing::{error, info, warn};

use crate::config_file;
use crate::state::Shared;

/// Runs the daemon until a stop signal or a D-Bus Stop. Without `foreground`, forks into the
/// background first and returns in the parent once the daemon is ready (or failed).
pub fn start(config_path: Option<&Path>, foreground: bool) -> Result<ExitCode> {
    crmonban_engine::use_few_malloc_arenas();
    let loaded = config_file::load(config_path)?;
    let config = &loaded.config;
    refuse_if_running(&config.general.pid_file)?;
    let ready_pipe = if foreground {
        None
    } else {
        match daemonize()? {
            Daemonized::Parent(code) => return Ok(code),
            Daemonized::Child(pipe) => Some(pipe),
        }
    };
    // From here on, nothing is created before the stop and reload signals are ours.
    StopSignals::hold()?;
    let log_file = if foreground {
        None
    } else {
        Some(crate::logging::open_file(&config.general.state_dir)?)
    };
    crate::logging::init(config.general.log_level.as_str(), log_file);
    for w in &loaded.warnings {
        warn!("{w}");
    }
    let mut ready = Readiness(ready_pipe);
    let outcome = run(loaded, config_path.is_some(), &mut ready);
    if let Err(e) = &outcome {
        error!("{e:#}");
        ready.failed(&format!("{e:#}"));
    }
    outcome.map(|()| ExitCode::SUCCESS)
}

fn run(loaded: config_file::Loaded, explicit: bool, ready: &mut Readiness) -> Result<()> {
    let config = loaded.config;
    let pid_file = PidFile::create(&config.general.pid_file)?;
    // The firewall backend is created on this thread: its libnftables socket and the engine's
    // firewall thread (spawned by Engine::start) live in this process's network namespace.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let signals = {
        let _context = runtime.enter();
        StopSignals::install()?
    };
    let result = runtime.block_on(async {
        // Before anything changes: another instance on the bus would lose its name or leave
        // this one unreachable.
        if config.dbus.enabled {
            crate::bus::refuse_if_name_owned(config.dbus.system_bus).await?;
        }
        let dbus = config.dbus.clone();
        // Bound before the engine starts: a port in use stops the start with nothing changed.
        let metrics = if config.metrics.enabled {
            Some(crate::metrics::bind(config.metrics.listen)?)
        } else {
            None
        };
        let running = EngineBuilder::new(config)
            .utc_offset(crate::explain::local_utc_offset())
            .start()
            .await?;
        info!(
            active_bans = running.engine().active_ban_count(),
            "bans restored; protecting"
        );
        let shared = Arc::new(Shared {
            running,
            config_path: loaded.path.clone(),
            config_explicit: explicit,
            stop: Notify::new(),
            metrics: std::sync::Mutex::new(None),
        });
        if metrics.is_some() {
            shared.replace_metrics(metrics);
        }
        let bus = dbus
            .enabled
            .then(|| crate::bus::spawn(shared.clone(), dbus.system_bus));
        // Ready means answering on the bus (`start` in the background returns then); a bus
        // that is not there does not hold the start up for long: it is retried meanwhile.
        if let Some(bus) = &bus
            && !bus.wait_ready(BUS_READY_WAIT).await
        {
            warn!(
                "the bus is not reachable yet; ready without it, and connecting in the background"
            );
        }
        ready.ready();
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        wait_for_stop(&shared, signals).await;
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        info!("stopping; bans stay in the kernel");
        shared.replace_metrics(None);
        shared.running.shutdown().await;
        if let Some(bus) = bus {
            bus.finish().await;
        }
        Ok(())
    });
    drop(pid_file);
    result
}

/// How long readiness waits for the bus name.
const BUS_READY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// SIGTERM and SIGINT (stop) and SIGHUP (reload). Their default action ends the process at
/// once, so a signal that arrives while the daemon starts (systemd stopping it, logrotate's
/// reload, an impatient admin) would kill it half-way: pid file left behind, no
/// DaemonStopping, an unfinished restore. So they are held (blocked) right after the fork,
/// before anything is created, and released once their handlers exist; one that came
/// meanwhile is handled then: a stop once start-up is complete, a reload likewise. Threads
/// inherit the block, so only the main thread receives them, which is enough; children get an
/// empty mask from `std::process::Command`.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn set() -> nix::sys::signal::SigSet {
        use nix::sys::signal::{SigSet, Signal};
        let mut set = SigSet::empty();
        for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
            set.add(signal);
        }
        set
    }

    /// Blocks the signals in the calling thread (and every thread it starts later).
    fn hold() -> Result<()> {
        StopSignals::set()
            .thread_block()
            .context("blocking SIGTERM, SIGINT and SIGHUP during start-up")
    }

    /// Installs the handlers (inside a tokio runtime context), then releases the signals
    /// held since [`StopSignals::hold`].
    fn install() -> Result<StopSignals> {
        let signals = StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        };
        StopSignals::set()
            .thread_unblock()
            .context("releasing SIGTERM, SIGINT and SIGHUP")?;
        Ok(signals)
    }
}

/// Waits for SIGTERM, SIGINT or a D-Bus Stop; SIGHUP reloads the configuration meanwhile.
async fn wait_for_stop(shared: &Arc<Shared>, signals: StopSignals) {
    let StopSignals {
        mut term,
        mut int,
        mut hup,
    } = signals;
    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM"); return; }
            _ = int.recv() => { info!("SIGINT"); return; }
            _ = shared.stop.notified() => { info!("stop requested over D-Bus"); return; }
            _ = hup.recv() => {
                info!("SIGHUP: reloading the configuration");
                if let Err(e) = shared.reload().await {
                    error!("{e:#}");
                }
            }
        }
    }
}

/// The pid file, removed on drop (clean stop). A stale file from a killed daemon is replaced.
struct PidFile(PathBuf);

impl PidFile {
    fn create(path: &Path) -> Result<PidFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing pid file {}", path.display()))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Refuses to start when the pid file names a live crmonband process.
fn refuse_if_running(pid_file: &Path) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return Ok(());
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return Ok(());
    };
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if pid != std::process::id() && comm.trim() == "crmonband" {
        bail!(
            "crmonband is already running (pid {pid}, from {}); stop it first",
            pid_file.display()
        );
    }
    Ok(())
}

enum Daemonized {
    Parent(ExitCode),
    Child(OwnedFd),
}

/// Forks; the child detaches (new session, stdio on /dev/null) and keeps the write end of a
/// pipe on which it reports readiness. The parent waits for that report so that `crmonband
/// start` returns only once the daemon protects the host, or fails with the daemon's error.
fn daemonize() -> Result<Daemonized> {
    use nix::fcntl::OFlag;
    use nix::unistd::{ForkResult, fork, pipe2, setsid};
    // Close-on-exec: children the daemon starts (journalctl, nft) must not hold the write end,
    // or the waiting parent would never see it close.
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).context("creating the readiness pipe")?;
    // SAFETY: no other thread exists yet (the runtime starts after this), so the child may run
    // arbitrary code.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut report = String::new();
            let _ = File::from(read_end).read_to_string(&mut report);
            if report == "ready" {
                println!("crmonband started in the background (pid {child})");
                Ok(Daemonized::Parent(ExitCode::SUCCESS))
            } else if report.is_empty() {
                eprintln!("crmonband: the daemon exited before it was ready");
                Ok(Daemonized::Parent(ExitCode::FAILURE))
            } else {
                eprintln!("crmonband: {report}");
                Ok(Daemonized::Parent(ExitCode::FAILURE))
            }
        }
        ForkResult::Child => {
            drop(read_end);
            setsid().context("setsid")?;
            std::env::set_current_dir("/")?;
            let null = OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?;
            for fd in 0..=2 {
                // SAFETY: duplicating a valid descriptor onto the standard ones.
                unsafe { nix::libc::dup2(null.as_raw_fd(), fd) };
            }
            Ok(Daemonized::Child(write_end))
        }
    }
}

/// The background child's report to the waiting parent (nothing in the foreground).
struct Readiness(Option<OwnedFd>);

impl Readiness {
    fn ready(&mut self) {
        self.send("ready");
    }
    fn failed(&mut self, why: &str) {
        self.send(why);
    }
    fn send(&mut self, what: &str) {
        if let Some(fd) = self.0.take() {
            let _ = File::from(fd).write_all(what.as_bytes());
        }
    }
}
