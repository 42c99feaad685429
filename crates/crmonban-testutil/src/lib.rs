//! Helpers for crmonban's privileged tests (dev-dependency only): network namespaces that are
//! removed on drop (even when the test panics), veth links between them, running code inside a
//! namespace on a thread of its own (`setns`, so the test thread and the host stay untouched),
//! and UDP/TCP probes that tell whether packets get through; a private `dbus-daemon` configured
//! like the system bus ([`PrivateBus`]) and commands run as another user ([`command_as`], with
//! [`ExecutableCopy`] for this build's own programs); a real OpenSSH server ([`Sshd`]) and a
//! real systemd-journald ([`Journald`]), each in a mount namespace of its own, and a real
//! Dovecot ([`Dovecot`]) with an IMAP client that fails logins ([`imap_logins`]); a small tmpfs
//! to fill up ([`SmallDisk`]); small GeoIP City, Country and ASN databases ([`mmdb`]); a real
//! rsyslog with UDP, TCP, TLS and unix socket inputs for the SIEM tests ([`Rsyslog`]).
//!
//! Privileged tests call [`require_root`] first: they fail, never skip, without root.

mod bus;
mod certs;
mod disk;
mod dovecot;
mod journal;
pub mod mmdb;
mod postgres;
mod rsyslog;
mod sshd;
pub use bus::{ExecutableCopy, NOBODY, PrivateBus, command_as};
pub use disk::SmallDisk;
pub use dovecot::{Dovecot, imap_logins};
pub use journal::Journald;
pub use postgres::Postgres;
pub use rsyslog::{RSYSLOG_TCP_PORT, RSYSLOG_TLS_PORT, RSYSLOG_UDP_PORT, Rsyslog};
pub use sshd::{Sshd, SyslogSink, failed_ssh_login};

use std::fs::File;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Panics unless the process runs as root: privileged tests must fail, not skip.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (network namespaces, nftables); run it through `cargo xtask test`"
    );
}

/// Runs a command and panics with its output when it fails.
pub fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// How long a test waits for something that must happen (a signal, a ban in the kernel, a
/// daemon answering, a packet passing): it takes milliseconds on an idle machine, so the limit
/// only matters when something is broken, and a loaded machine (CI on two cores, other tests
/// in parallel, `stress-ng`) must not fail a correct program.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// How long a test listens before concluding that something does not happen (a banned peer's
/// packet, an unexpected event). A longer wait only makes such a check stricter, never flaky.
pub const QUIET: Duration = Duration::from_millis(700);

/// Polls `probe` until it returns `Some`, for at most `limit` (every 10 ms at first, then
/// less often). `Err` says what was waited for and for how long, for the caller's panic
/// message. Use generous limits: they only matter when something is broken, and a loaded
/// machine (CI, two cores, other tests in parallel) is slow.
pub fn wait_until<T>(
    what: &str,
    limit: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if start.elapsed() >= limit {
            return Err(format!(
                "waited {:.1} s for {what}",
                start.elapsed().as_secs_f64()
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// A command that runs `program` in the mount namespace of process `pid` and under that
/// process's root directory (`nsenter --target PID --mount --root`). Entering a mount
/// namespace alone would put the program at the namespace's top, outside any chroot the
/// tests run in (a fresh root entered with `chroot`): it would see the wrong `/run` and none
/// of this build's files.
pub fn enter_mount_namespace(pid: u32, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new("nsenter");
    command
        .args(["--target", &pid.to_string(), "--mount", "--root", "--"])
        .arg(program);
    command
}

/// A named network namespace (`ip netns add`), deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl NetNs {
    /// Creates `crmb-<tag>-<pid>-<n>` with its loopback up.
    pub fn new(tag: &str) -> NetNs {
        require_root();
        let name = format!(
            "crmb-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns its result.
    /// Panics inside `f` are propagated.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter_current_thread();
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Moves the calling thread into this namespace. Use on threads the test owns (see
    /// [`NetNs::run`]); never on the test harness's thread.
    pub fn enter_current_thread(&self) {
        let file = File::open(format!("/run/netns/{}", self.name))
            .unwrap_or_else(|e| panic!("open namespace {}: {e}", self.name));
        // SAFETY: a valid namespace fd; only this thread changes namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "setns into {}: {}",
            self.name,
            std::io::Error::last_os_error()
        );
    }

    /// `ip netns exec <ns> program args...`, returning the output whatever the exit status.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {program}: {e}"))
    }

    /// Like [`NetNs::exec`] but panics on failure and returns stdout.
    pub fn exec_ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.exec(program, args);
        assert!(
            out.status.success(),
            "{program} {} in {} failed: {}",
            args.join(" "),
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip <args>` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        String::from_utf8_lossy(&run("ip", &full).stdout).into_owned()
    }

    /// `nft <args>` inside the namespace; panics on failure.
    pub fn nft(&self, args: &[&str]) -> String {
        self.exec_ok("nft", args)
    }

    /// Enables IPv4 and IPv6 forwarding (for router namespaces).
    pub fn enable_forwarding(&self) {
        self.exec_ok("sysctl", &["-q", "-w", "net.ipv4.ip_forward=1"]);
        self.exec_ok("sysctl", &["-q", "-w", "net.ipv6.conf.all.forwarding=1"]);
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Addresses of one end of a link.
#[derive(Clone, Copy, Debug)]
pub struct End<'a> {
    pub ns: &'a NetNs,
    pub v4: &'a str,
    pub v6: &'a str,
}

impl End<'_> {
    pub fn v4_addr(&self) -> IpAddr {
        self.v4
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .expect("v4 address/prefix")
    }
    pub fn v6_addr(&self) -> IpAddr {
        self.v6
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .expect("v6 address/prefix")
    }
}

/// Joins two namespaces with a veth pair, addresses both ends (IPv6 with `nodad`) and installs
/// permanent neighbour entries both ways, so a ban that drops neighbour solicitations does
/// not leave stale neighbour state behind. Returns the interface names (a side, b side).
pub fn connect(a: End<'_>, b: End<'_>) -> (String, String) {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let (ia, ib) = (format!("cva{n}"), format!("cvb{n}"));
    run(
        "ip",
        &[
            "link",
            "add",
            &ia,
            "netns",
            a.ns.name(),
            "type",
            "veth",
            "peer",
            "name",
            &ib,
            "netns",
            b.ns.name(),
        ],
    );
    for (end, ifname) in [(a, &ia), (b, &ib)] {
        end.ns.ip(&["addr", "add", end.v4, "dev", ifname]);
        end.ns
            .ip(&["-6", "addr", "add", end.v6, "dev", ifname, "nodad"]);
        end.ns.ip(&["link", "set", ifname, "up"]);
    }
    let mac = |ns: &NetNs, ifname: &str| -> String {
        let out = ns.ip(&["-br", "link", "show", ifname]);
        out.split_whitespace()
            .nth(2)
            .expect("mac in ip -br link")
            .to_owned()
    };
    let (mac_a, mac_b) = (mac(a.ns, &ia), mac(b.ns, &ib));
    for (ns, ifname, peer, peer_mac) in [(a.ns, &ia, b, &mac_b), (b.ns, &ib, a, &mac_a)] {
        for addr in [peer.v4_addr(), peer.v6_addr()] {
            ns.ip(&[
                "neigh",
                "replace",
                &addr.to_string(),
                "lladdr",
                peer_mac,
                "dev",
                ifname,
                "nud",
                "permanent",
            ]);
        }
    }
    (ia, ib)
}

/// The any-address, any-port socket address of `addr`'s family.
fn wildcard(addr: IpAddr) -> SocketAddr {
    let any: IpAddr = if addr.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    SocketAddr::new(any, 0)
}

/// Sends UDP datagrams from namespace `from` to `to_addr` (an address of namespace `to`) and
/// says whether any arrived within `wait`.
pub fn udp_reaches(from: &NetNs, to: &NetNs, to_addr: IpAddr, wait: Duration) -> bool {
    let bind = wildcard(to_addr);
    let receiver = to.run(|| UdpSocket::bind(bind).expect("bind receiver"));
    receiver.set_read_timeout(Some(wait)).unwrap();
    let port = receiver.local_addr().unwrap().port();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            from.enter_current_thread();
            let socket = UdpSocket::bind(bind).expect("bind sender");
            let deadline = Instant::now() + wait;
            while Instant::now() < deadline && !done.load(Ordering::Relaxed) {
                let _ = socket.send_to(b"crmonban-probe", SocketAddr::new(to_addr, port));
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let mut buf = [0u8; 64];
        let got =
            matches!(receiver.recv_from(&mut buf), Ok((n, _)) if &buf[..n] == b"crmonban-probe");
        done.store(true, Ordering::Relaxed);
        got
    })
}

/// Waits until `child`, a server started in `ns`, listens on TCP `port`; panics with its
/// stderr if it exits first, or after [`PATIENCE`].
pub(crate) fn wait_child_listening(
    child: &mut std::process::Child,
    ns: &NetNs,
    port: u16,
    name: &str,
) {
    let wanted = format!(":{port}");
    let what = format!("{name} to listen on port {port}");
    wait_until(&what, PATIENCE, || {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            panic!("{name} exited ({status}) before listening: {stderr}");
        }
        let out = ns.exec("ss", &["-ltn"]);
        String::from_utf8_lossy(&out.stdout)
            .contains(&wanted)
            .then_some(())
    })
    .unwrap_or_else(|waited| panic!("{waited}"));
}

/// Opens a TCP connection from `from` to a listener in `to` and says whether it was accepted
/// within `wait`.
pub fn tcp_connects(from: &NetNs, to: &NetNs, to_addr: IpAddr, wait: Duration) -> bool {
    let bind = wildcard(to_addr);
    let listener = to.run(|| TcpListener::bind(bind).expect("bind listener"));
    let port = listener.local_addr().unwrap().port();
    from.run(|| TcpStream::connect_timeout(&SocketAddr::new(to_addr, port), wait).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_namespaces_link_and_clean_up() {
        let a = NetNs::new("tu-a");
        let b = NetNs::new("tu-b");
        let name = a.name().to_owned();
        connect(
            End {
                ns: &a,
                v4: "10.200.0.1/24",
                v6: "fd00:200::1/64",
            },
            End {
                ns: &b,
                v4: "10.200.0.2/24",
                v6: "fd00:200::2/64",
            },
        );
        assert!(udp_reaches(
            &a,
            &b,
            "10.200.0.2".parse().unwrap(),
            Duration::from_secs(2)
        ));
        assert!(udp_reaches(
            &a,
            &b,
            "fd00:200::2".parse().unwrap(),
            Duration::from_secs(2)
        ));
        assert!(tcp_connects(
            &b,
            &a,
            "10.200.0.1".parse().unwrap(),
            Duration::from_secs(2)
        ));
        drop(a);
        let list = String::from_utf8_lossy(&run("ip", &["netns", "list"]).stdout).into_owned();
        assert!(!list.contains(&name), "namespace {name} was not removed");
    }
}
