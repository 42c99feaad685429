//! Ban latency of crmonban next to its peers, in one run on one machine (root; run by
//! `cargo xtask bench`). The real daemons — `crmonband start -f`, sshguard (Debian's script
//! and its `sshg-*` pipeline with the `sshg-fw-nft-sets` backend) and `fail2ban-server`
//! (pyinotify backend, then polling) — each run in a network namespace of their own, tail an
//! auth.log of their own and ban after 3 failed sshd logins in nftables.
//!
//! The method is the same for every tool. Each round appends two failed logins from a fresh
//! address, pauses (the tool counts them), then appends the decisive third line and starts
//! the clock; the clock stops when the address reaches the kernel. The kernel is watched the
//! same way for all: a netlink socket in the tool's namespace, subscribed to the nf_tables
//! notifications (`NFNLGRP_NFTABLES`), which the kernel sends once the transaction holding
//! the element has committed; the listener thread timestamps each `NEWSETELEM` and decodes its
//! addresses. A readiness ban and warm-up rounds (the first ban may create a peer's table)
//! are not counted.
//!
//! The peers come from Debian 12's packages, unpacked without being installed (no service
//! starts) by `cargo xtask bench` into `target/bench-tools/root` (`$CRMONBAN_BENCH_TOOLS/root`
//! when set). A peer that is missing or does not ban fails the bench, saying why. Prints
//! `name: value` lines.

#[path = "support/shipped.rs"]
mod shipped;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crmonban_testutil::{NetNs, PrivateBus, require_root};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, setsockopt,
    socket, sockopt,
};
use nix::sys::time::TimeVal;
use nix::unistd::Pid;

/// Timed rounds for crmonban and sshguard (the same for both: their ratio is the target).
const ROUNDS: usize = 200;
/// Timed rounds for each fail2ban backend (hundreds of milliseconds each).
const FAIL2BAN_ROUNDS: usize = 30;
/// Rounds after the readiness ban that are not counted.
const WARM_UP: usize = 2;
/// Between the second failure and the decisive third: long enough for every tool to have
/// read and counted the first two (fail2ban's polling backend aside, which polls).
const PAUSE: Duration = Duration::from_millis(200);
/// How long one ban may take before the bench fails.
const BAN_LIMIT: Duration = Duration::from_secs(30);
/// How long a tool may take to start banning at all.
const START_LIMIT: Duration = Duration::from_secs(90);
/// The failures after which every tool bans.
const THRESHOLD: u32 = 3;
/// `PATH` for the peers' shells (`nft` is in /usr/sbin).
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() {
    require_root();
    let tree = unpacked_peers();
    let python = if Path::new("/usr/bin/python3").exists() {
        PathBuf::from("/usr/bin/python3")
    } else {
        PathBuf::from("python3")
    };
    let crmonban = measure("crmonban", 0, ROUNDS, start_crmonband);
    let sshguard = measure("sshguard", 1, ROUNDS, |ns, dir, log| {
        start_sshguard(ns, dir, log, &tree)
    });
    let pyinotify = measure("fail2ban_pyinotify", 2, FAIL2BAN_ROUNDS, |ns, dir, log| {
        start_fail2ban(ns, dir, log, &tree, &python, "pyinotify")
    });
    let polling = measure("fail2ban_polling", 3, FAIL2BAN_ROUNDS, |ns, dir, log| {
        start_fail2ban(ns, dir, log, &tree, &python, "polling")
    });
    let ours = crmonban.median;
    for figures in [&crmonban, &sshguard, &pyinotify, &polling] {
        println!("{}_rounds: {}", figures.tool, figures.rounds);
        println!(
            "{}_line_to_kernel_median: {}",
            figures.tool,
            ms(figures.median)
        );
        println!("{}_line_to_kernel_p99: {}", figures.tool, ms(figures.p99));
    }
    for figures in [&sshguard, &pyinotify, &polling] {
        println!(
            "{}_over_crmonban_median: {:.1}",
            figures.tool,
            figures.median.as_secs_f64() / ours.as_secs_f64()
        );
    }
}

/// Debian's sshguard, fail2ban and python3-pyinotify, unpacked; panics naming what is missing.
fn unpacked_peers() -> PathBuf {
    let dir = std::env::var_os("CRMONBAN_BENCH_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/bench-tools"));
    let tree = dir.join("root");
    for needed in [
        "usr/sbin/sshguard",
        "usr/libexec/sshguard/sshg-fw-nft-sets",
        "usr/bin/fail2ban-server",
        "etc/fail2ban/jail.conf",
        "usr/lib/python3/dist-packages/pyinotify.py",
    ] {
        assert!(
            tree.join(needed).exists(),
            "{} is missing: this bench runs sshguard and fail2ban from Debian's packages unpacked \
             there. `cargo xtask bench` unpacks them; by hand: cd {} && apt-get download \
             sshguard fail2ban python3-pyinotify && for p in *.deb; do dpkg -x $p root; done",
            tree.join(needed).display(),
            dir.display()
        );
    }
    tree
}

/// One tool's figures.
struct Figures {
    tool: &'static str,
    rounds: usize,
    median: Duration,
    p99: Duration,
}

/// Starts a tool in a fresh namespace through `start` (namespace, its directory, the auth.log
/// it must tail), waits until it bans, and times `rounds` bans. Address block `block` of
/// 198.18.0.0/15 (set aside for benchmarks) is the tool's own.
fn measure(
    tool: &'static str,
    block: u32,
    rounds: usize,
    start: impl FnOnce(&NetNs, &Path, &Path) -> Daemon,
) -> Figures {
    eprintln!("peers: {tool}: starting");
    let ns = NetNs::new("peers");
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("auth.log");
    std::fs::write(
        &log_path,
        format!(
            "{} bench sshd[1]: Server listening on 0.0.0.0 port 22.\n",
            syslog_stamp()
        ),
    )
    .unwrap();
    // Listening before the tool starts: nothing it adds can be missed.
    let kernel = KernelWatch::start(&ns);
    let mut daemon = start(&ns, dir.path(), &log_path);
    let mut writer = LogWriter {
        log: OpenOptions::new().append(true).open(&log_path).unwrap(),
        next_address: 0xC612_0000 + block * 0x4000,
        next_pid: 1000,
    };
    let started = Instant::now();
    // The tool may not tail the file yet (lines before that are lost to it): try until a ban.
    loop {
        daemon.check_running();
        let addr = writer.attempt();
        if kernel.wait(addr, Duration::from_secs(5)).is_some() {
            break;
        }
        assert!(
            started.elapsed() < START_LIMIT,
            "{tool} did not ban within {} s of starting: {}",
            START_LIMIT.as_secs(),
            daemon.logs()
        );
    }
    eprintln!(
        "peers: {tool}: first ban {:.1} s after start; timing {rounds} rounds",
        started.elapsed().as_secs_f64()
    );
    let mut times: Vec<Duration> = (0..WARM_UP + rounds)
        .map(|_| {
            let addr = writer.two_failures();
            std::thread::sleep(PAUSE);
            assert!(
                kernel.seen(addr).is_none(),
                "{tool} banned {addr} after {} failures; the threshold is {THRESHOLD}",
                THRESHOLD - 1
            );
            let start = writer.decisive(addr);
            let Some(at) = kernel.wait(addr, BAN_LIMIT) else {
                daemon.check_running();
                panic!(
                    "{tool} did not ban {addr} within {} s: {}",
                    BAN_LIMIT.as_secs(),
                    daemon.logs()
                );
            };
            at.saturating_duration_since(start)
        })
        .skip(WARM_UP)
        .collect();
    drop(daemon);
    drop(kernel);
    drop(ns);
    times.sort();
    let pick = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    Figures {
        tool,
        rounds,
        median: pick(0.5),
        p99: pick(0.99),
    }
}

/// Appends sshd's failed logins, one `write` per line as a syslog daemon does.
struct LogWriter {
    log: File,
    next_address: u32,
    next_pid: u32,
}

impl LogWriter {
    /// A fresh address. Every other one: an interval set (sshguard's) marks the end of `A/32`
    /// with the element A+1, which must not look like the next round's address.
    fn fresh_address(&mut self) -> IpAddr {
        self.next_address += 2;
        IpAddr::V4(Ipv4Addr::from(self.next_address))
    }

    fn failure(&mut self, addr: IpAddr) {
        self.next_pid += 1;
        let line = format!(
            "{} bench sshd[{}]: Failed password for invalid user x from {addr} port {} ssh2\n",
            syslog_stamp(),
            self.next_pid,
            30_000 + self.next_pid % 30_000
        );
        self.log.write_all(line.as_bytes()).unwrap();
    }

    /// A fresh address's failures short of the threshold.
    fn two_failures(&mut self) -> IpAddr {
        let addr = self.fresh_address();
        for _ in 1..THRESHOLD {
            self.failure(addr);
        }
        addr
    }

    /// The failure that reaches the threshold; returns when it was written.
    fn decisive(&mut self, addr: IpAddr) -> Instant {
        self.failure(addr);
        Instant::now()
    }

    /// A whole round, untimed (readiness).
    fn attempt(&mut self) -> IpAddr {
        let addr = self.two_failures();
        std::thread::sleep(PAUSE);
        self.decisive(addr);
        addr
    }
}

/// `Dec  3 16:19:59` for now (UTC; every tool runs with `TZ=UTC`), as rsyslog writes it.
fn syslog_stamp() -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let now = crmonban_core::unix_now();
    let (_, month, day) = crmonban_detect::time::civil_from_days(now.div_euclid(86_400));
    let secs = now.rem_euclid(86_400);
    format!(
        "{} {day:>2} {:02}:{:02}:{:02}",
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

// ---------------------------------------------------------------------------------------------
// The tools

/// The real `crmonband start -f` on a private system-like bus, as `daemon.rs` runs it.
fn start_crmonband(ns: &NetNs, dir: &Path, log: &Path) -> Daemon {
    let bus = PrivateBus::system_like(&workspace().join("dbus/org.crmonban.Daemon.conf"));
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[general]\ndb_path = \"{d}/crmonban.db\"\npid_file = \"{d}/crmonband.pid\"\n\
             state_dir = \"{d}\"\nlog_level = \"info\"\n\n\
             [services.ssh]\nlog_path = \"{log}\"\nsource = \"file\"\nmax_failures = {THRESHOLD}\n\
             find_time = 86400\nban_time = 86400\n",
            d = dir.display(),
            log = log.display()
        ),
    )
    .unwrap();
    let mut command = Command::new(shipped::daemon_binary());
    command
        .args(["-c", config.to_str().unwrap(), "start", "-f"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .env("NO_COLOR", "1");
    let mut daemon = Daemon::spawn(ns, "crmonband", command, dir.join("crmonband.out"), vec![]);
    daemon.bus = Some(bus);
    daemon
}

/// Debian's `sshguard` script, pointed at a configuration of our own and at the unpacked
/// tree: it runs `sshg-logtail FILE | sshg-parser | sshg-blocker FLAGS | sshg-fw-nft-sets`.
fn start_sshguard(ns: &NetNs, dir: &Path, log: &Path, tree: &Path) -> Daemon {
    let original = std::fs::read_to_string(tree.join("usr/sbin/sshguard")).unwrap();
    let libexec = tree.join("usr/libexec/sshguard");
    let config = dir.join("sshguard.conf");
    let mut script = original.clone();
    for (from, to) in [
        (
            "config=\"/etc/sshguard/sshguard.conf\"",
            format!("config=\"{}\"", config.display()),
        ),
        (
            "libexec=\"/usr/libexec/sshguard\"",
            format!("libexec=\"{}\"", libexec.display()),
        ),
    ] {
        assert!(
            script.contains(from),
            "{} no longer sets {from}: this bench cannot point it at its own files",
            tree.join("usr/sbin/sshguard").display()
        );
        script = script.replace(from, &to);
    }
    let script_path = dir.join("sshguard");
    std::fs::write(&script_path, script).unwrap();
    std::fs::write(dir.join("whitelist"), "127.0.0.0/8\n::1/128\n").unwrap();
    // Debian's defaults but for the log (a file instead of the journal) and the times; every
    // attack scores 10.
    std::fs::write(
        &config,
        format!(
            "BACKEND=\"{libexec}/sshg-fw-nft-sets\"\nFILES=\"{log}\"\nTHRESHOLD={threshold}\n\
             BLOCK_TIME=86400\nDETECTION_TIME=86400\nWHITELIST_FILE=\"{dir}/whitelist\"\n\
             PID_FILE=\"{dir}/sshguard.pid\"\n",
            libexec = libexec.display(),
            log = log.display(),
            threshold = THRESHOLD * 10,
            dir = dir.display()
        ),
    )
    .unwrap();
    let mut command = Command::new("/bin/sh");
    command.arg(&script_path);
    Daemon::spawn(ns, "sshguard", command, dir.join("sshguard.out"), vec![])
}

/// `fail2ban-server -xf start` from the unpacked tree, with Debian's configuration copied and
/// a jail.local of our own: jail sshd on our log, the given backend, nftables.
fn start_fail2ban(
    ns: &NetNs,
    dir: &Path,
    log: &Path,
    tree: &Path,
    python: &Path,
    backend: &str,
) -> Daemon {
    let conf = dir.join("fail2ban");
    copy_tree(&tree.join("etc/fail2ban"), &conf);
    let server_log = dir.join("fail2ban.log");
    let socket = dir.join("fail2ban.sock");
    let pid_file = dir.join("fail2ban.pid");
    std::fs::write(
        conf.join("fail2ban.local"),
        format!(
            "[DEFAULT]\nloglevel = INFO\nlogtarget = {}\nsocket = {}\npidfile = {}\n\
             dbfile = :memory:\n",
            server_log.display(),
            socket.display(),
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::write(
        conf.join("jail.local"),
        format!(
            "[DEFAULT]\nbanaction = nftables-multiport\nbanaction_allports = nftables-allports\n\n\
             [sshd]\nenabled = true\nbackend = {backend}\nlogpath = {}\nmaxretry = {THRESHOLD}\n\
             findtime = 1d\nbantime = 1d\n",
            log.display()
        ),
    )
    .unwrap();
    let mut command = Command::new(python);
    command
        .arg(tree.join("usr/bin/fail2ban-server"))
        .arg("-xf")
        .arg("-c")
        .arg(&conf)
        .arg("-s")
        .arg(&socket)
        .arg("-p")
        .arg(&pid_file)
        .arg("start")
        .env("PYTHONPATH", tree.join("usr/lib/python3/dist-packages"));
    Daemon::spawn(
        ns,
        "fail2ban-server",
        command,
        dir.join("fail2ban.out"),
        vec![server_log],
    )
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

/// A tool's process, started in a namespace as the leader of a process group of its own (so
/// sshguard's `kill 0` and what fail2ban starts stay within it). Stopped on drop, panics
/// included: SIGTERM, then SIGKILL to what is left of its group.
struct Daemon {
    name: &'static str,
    child: Child,
    /// Its stdout and stderr, then any log of its own.
    logs: Vec<PathBuf>,
    /// crmonband's bus, stopped after it.
    bus: Option<PrivateBus>,
}

impl Daemon {
    fn spawn(
        ns: &NetNs,
        name: &'static str,
        mut command: Command,
        output: PathBuf,
        mut logs: Vec<PathBuf>,
    ) -> Daemon {
        let out = File::create(&output).unwrap();
        command
            .env("TZ", "UTC")
            .env("PATH", PATH)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        let child = ns
            .run(|| command.spawn())
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        logs.insert(0, output);
        Daemon {
            name,
            child,
            logs,
            bus: None,
        }
    }

    /// Panics with its logs when it has exited.
    fn check_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}): {}", self.name, self.logs());
        }
    }

    /// The last lines of its output and logs, for a failure message.
    fn logs(&self) -> String {
        let mut text = String::new();
        for path in &self.logs {
            let content = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = content.lines().collect();
            text += &format!("\n--- {} (last lines) ---\n", path.display());
            text += &lines[lines.len().saturating_sub(25)..].join("\n");
        }
        text
    }

    /// Whether the process has exited (a zombie not yet reaped keeps its pid, and so its
    /// group id, from being reused).
    fn exited(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .ok()
            .and_then(|stat| {
                stat.rsplit_once(") ")
                    .and_then(|(_, rest)| rest.chars().next())
            })
            .is_none_or(|state| state == 'Z' || state == 'X')
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.exited() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // What is left of its group (sshguard's pipeline, an `nft` fail2ban started), or the
        // process itself when it did not stop in time.
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = self.child.wait();
        self.bus.take();
    }
}

// ---------------------------------------------------------------------------------------------
// The kernel, watched the same way for every tool

/// `NFNLGRP_NFTABLES`: the multicast group of nf_tables change notifications.
const NFNLGRP_NFTABLES: u32 = 7;
/// `NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWSETELEM`.
const NEWSETELEM: u16 = (10 << 8) | 12;
/// Message header and `nfgenmsg` before an nf_tables message's attributes.
const HEADERS: usize = 16 + 4;
/// `NFTA_SET_ELEM_LIST_ELEMENTS`; in each element `NFTA_SET_ELEM_KEY` (holding
/// `NFTA_DATA_VALUE`) and `NFTA_SET_ELEM_FLAGS` with `NFT_SET_ELEM_INTERVAL_END`.
const LIST_ELEMENTS: u16 = 3;
const ELEM_KEY: u16 = 1;
const ELEM_FLAGS: u16 = 3;
const DATA_VALUE: u16 = 1;
const INTERVAL_END: u32 = 1;
/// `NLA_TYPE_MASK`: an attribute's type without the nested and byte-order bits.
const ATTRIBUTE_TYPE: u16 = 0x3fff;

/// When each address first appeared in a set of the namespace.
#[derive(Default)]
struct Seen {
    at: Mutex<(HashMap<IpAddr, Instant>, Option<String>)>,
    changed: Condvar,
}

/// A thread reading the nf_tables notifications of one namespace.
struct KernelWatch {
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl KernelWatch {
    fn start(ns: &NetNs) -> KernelWatch {
        // A netlink socket belongs to the namespace it was opened in, whoever reads it later.
        let socket = ns
            .run(open_notification_socket)
            .unwrap_or_else(|e| panic!("cannot listen to nf_tables notifications: {e}"));
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || listen(&socket, &seen, &stop))
        };
        KernelWatch {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self, addr: IpAddr) -> Option<Instant> {
        let state = self.seen.at.lock().unwrap();
        if let Some(error) = &state.1 {
            panic!("{error}");
        }
        state.0.get(&addr).copied()
    }

    /// When `addr` reached the kernel, waiting for it at most `limit`.
    fn wait(&self, addr: IpAddr, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        let mut state = self.seen.at.lock().unwrap();
        loop {
            if let Some(error) = &state.1 {
                panic!("{error}");
            }
            if let Some(at) = state.0.get(&addr) {
                return Some(*at);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            state = self.seen.changed.wait_timeout(state, left).unwrap().0;
        }
    }
}

impl Drop for KernelWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn open_notification_socket() -> nix::Result<OwnedFd> {
    let socket = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )?;
    bind(
        socket.as_raw_fd(),
        &NetlinkAddr::new(0, 1 << (NFNLGRP_NFTABLES - 1)),
    )?;
    setsockopt(&socket, sockopt::RcvBufForce, &(8 << 20))?;
    // Wakes up now and then to see whether it should stop.
    setsockopt(&socket, sockopt::ReceiveTimeout, &TimeVal::new(0, 100_000))?;
    Ok(socket)
}

fn listen(socket: &OwnedFd, seen: &Seen, stop: &AtomicBool) {
    let mut buf = vec![0u8; 1 << 20];
    while !stop.load(Ordering::Relaxed) {
        let received = recv(socket.as_raw_fd(), &mut buf, MsgFlags::empty());
        let now = Instant::now();
        let n = match received {
            Ok(n) => n,
            Err(Errno::EAGAIN | Errno::EINTR) => continue,
            Err(e) => {
                // ENOBUFS: notifications were dropped, so a ban could go unseen.
                seen.at.lock().unwrap().1 = Some(format!("reading nf_tables notifications: {e}"));
                seen.changed.notify_all();
                return;
            }
        };
        let mut state = seen.at.lock().unwrap();
        for message in messages(&buf[..n]) {
            if message.0 == NEWSETELEM {
                for addr in added_addresses(message.1) {
                    state.0.entry(addr).or_insert(now);
                }
            }
        }
        drop(state);
        seen.changed.notify_all();
    }
}

/// The netlink messages of one datagram: (type, body after the message header).
fn messages(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = u32::from_ne_bytes(data.get(..4)?.try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(data.get(4..6)?.try_into().ok()?);
        let message = data.get(..len).filter(|_| len >= 16)?;
        data = data.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some((kind, &message[16..]))
    })
}

/// The netlink attributes in `data`: (type, value).
fn attributes(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes(data.get(..2)?.try_into().ok()?));
        let kind = u16::from_ne_bytes(data.get(2..4)?.try_into().ok()?) & ATTRIBUTE_TYPE;
        let attribute = data.get(..len).filter(|_| len >= 4)?;
        data = data.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some((kind, &attribute[4..]))
    })
}

/// The addresses a `NEWSETELEM` body adds (an interval's end element is not one).
fn added_addresses(body: &[u8]) -> Vec<IpAddr> {
    let attrs = body.get(HEADERS - 16..).unwrap_or_default();
    attributes(attrs)
        .filter(|(kind, _)| *kind == LIST_ELEMENTS)
        .flat_map(|(_, list)| attributes(list))
        .filter_map(|(_, element)| {
            let mut key = None;
            let mut flags = 0;
            for (kind, value) in attributes(element) {
                match kind {
                    ELEM_KEY => {
                        key = attributes(value)
                            .find(|(kind, _)| *kind == DATA_VALUE)
                            .and_then(|(_, bytes)| address(bytes));
                    }
                    ELEM_FLAGS => {
                        flags = value.try_into().map(u32::from_be_bytes).unwrap_or(0);
                    }
                    _ => {}
                }
            }
            key.filter(|_| flags & INTERVAL_END == 0)
        })
        .collect()
}

fn address(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}
