//! The XDP fast path against the real kernel. Every test joins two network namespaces of its
//! own with a veth pair: `a` sends, `b` runs the program on its end of the link. What is
//! checked is what an operator would see: a banned source's datagrams do not arrive, the
//! program's drop counters grow, the nftables behind it never sees the packets, pinned bans
//! survive a restart, and nothing stays attached after the process is gone.
//!
//! Pins go to a private bpffs instance mounted for the test ([`PinFs`]), so no test touches
//! the host's /sys/fs/bpf or another test's pins.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crmonban_core::{Target, unix_now};
use crmonban_ebpf::{
    AttachedProgram, DropCounters, Family, ModeChoice, PROGRAM_NAME, XdpFastPath, XdpOptions,
    attached, pin_paths, remove_pins,
};
use crmonban_firewall::{ChangeSet, Element, Expiry, FirewallBackend};
use crmonban_testutil::{End, NetNs, PATIENCE, QUIET, connect, wait_until};
use serde_json::Value;

const A_V4: &str = "203.0.113.5";
const A_V6: &str = "2001:db8:5::5";
const B_V4: &str = "203.0.113.9";
const B_V6: &str = "2001:db8:5::9";

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

fn target(text: &str) -> Target {
    Target::parse(text).expect("an address or network")
}

/// Namespaces `a` (the sender, on `a_if`) and `b` (the XDP side, on `b_if`) joined by veth.
struct Link {
    a: NetNs,
    b: NetNs,
    a_if: String,
    b_if: String,
}

impl Link {
    fn new(tag: &str) -> Link {
        let a = NetNs::new(&format!("{tag}-a"));
        let b = NetNs::new(&format!("{tag}-b"));
        let (a_if, b_if) = connect(
            End {
                ns: &a,
                v4: "203.0.113.5/24",
                v6: "2001:db8:5::5/64",
            },
            End {
                ns: &b,
                v4: "203.0.113.9/24",
                v6: "2001:db8:5::9/64",
            },
        );
        Link { a, b, a_if, b_if }
    }

    /// Loads the program with maps of `max_entries` (pinned under `pin`) and attaches it to
    /// `b`'s end, from a thread inside `b`.
    fn load(&self, max_entries: u32, pin: Option<&Path>) -> XdpFastPath {
        self.b
            .run(|| load_and_attach(&self.b_if, max_entries, pin.map(Path::to_path_buf)))
    }

    /// The XDP program on `b`'s end, as the kernel reports it inside `b`.
    fn attached(&self) -> Option<AttachedProgram> {
        self.b
            .run(|| attached(&self.b_if))
            .unwrap_or_else(|e| panic!("querying {}: {e}", self.b_if))
    }

    /// Gives `a`'s end one more address to send from.
    fn add_a_address(&self, cidr: &str) {
        let mut args = vec!["addr", "add", cidr, "dev", self.a_if.as_str()];
        if cidr.contains(':') {
            args.push("nodad");
        }
        self.a.ip(&args);
    }

    /// Sends UDP datagrams from `src` (an address of `a`) to `dst` (of `b`) for up to `wait`,
    /// and says whether one from `src` arrived.
    fn reaches(&self, src: &str, dst: &str, wait: Duration) -> bool {
        let (src, dst) = (ip(src), ip(dst));
        let receiver = self
            .b
            .run(|| UdpSocket::bind(SocketAddr::new(dst, 0)).expect("bind the receiver"));
        let port = receiver.local_addr().expect("receiver address").port();
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                self.a.enter_current_thread();
                let sender = UdpSocket::bind(SocketAddr::new(src, 0)).expect("bind the sender");
                let deadline = Instant::now() + wait;
                while Instant::now() < deadline && !done.load(Ordering::Relaxed) {
                    let _ = sender.send_to(b"crmonban-probe", SocketAddr::new(dst, port));
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            let deadline = Instant::now() + wait;
            let mut arrived = false;
            let mut buf = [0u8; 64];
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                if left.is_zero() {
                    break;
                }
                receiver.set_read_timeout(Some(left)).expect("read timeout");
                match receiver.recv_from(&mut buf) {
                    Ok((n, from)) if from.ip() == src && &buf[..n] == b"crmonban-probe" => {
                        arrived = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            done.store(true, Ordering::Relaxed);
            arrived
        })
    }
}

/// Loads and attaches on the calling thread, which must be inside the interface's namespace.
fn load_and_attach(interface: &str, max_entries: u32, pin: Option<PathBuf>) -> XdpFastPath {
    let mut xdp = XdpFastPath::load(XdpOptions {
        interfaces: vec![interface.to_owned()],
        mode: ModeChoice::Auto,
        pin,
        max_entries,
    })
    .unwrap_or_else(|e| panic!("loading the XDP program: {e}"));
    let failures = xdp.attach();
    assert!(
        failures.is_empty(),
        "attaching to {interface}: {failures:?}"
    );
    xdp
}

fn dropped(xdp: &XdpFastPath, family: Family) -> DropCounters {
    let stats = xdp.stats().expect("drop counters");
    match family {
        Family::V4 => stats.dropped_v4,
        Family::V6 => stats.dropped_v6,
    }
}

fn ban(xdp: &mut XdpFastPath, elements: &[Element]) {
    let mut changes = ChangeSet::new();
    for element in elements {
        changes.add(*element);
    }
    let report = xdp.apply(&changes).expect("apply");
    assert_eq!(report.added, elements.len(), "{report:?}");
}

fn unban(xdp: &mut XdpFastPath, targets: &[&str]) {
    let mut changes = ChangeSet::new();
    for text in targets {
        changes.remove(target(text));
    }
    let report = xdp.apply(&changes).expect("apply");
    assert_eq!(report.removed, targets.len(), "{report:?}");
}

/// Asserts that `listed` holds exactly `expected`'s targets and expiries. An expiry read back
/// may be a second off: it went to monotonic nanoseconds and back through two clock readings.
fn assert_holds(mut listed: Vec<Element>, expected: &[Element]) {
    let mut expected = expected.to_vec();
    listed.sort_by_key(|e| e.target);
    expected.sort_by_key(|e| e.target);
    let targets = |elements: &[Element]| elements.iter().map(|e| e.target).collect::<Vec<_>>();
    assert_eq!(targets(&listed), targets(&expected), "listed {listed:?}");
    for (got, want) in listed.iter().zip(&expected) {
        let close = match (got.expiry, want.expiry) {
            (Expiry::Never, Expiry::Never) => true,
            (Expiry::At(got), Expiry::At(want)) => got.abs_diff(want) <= 1,
            _ => false,
        };
        assert!(
            close,
            "{}: listed with {:?}, expected {:?}",
            got.target, got.expiry, want.expiry
        );
    }
}

/// Adds to `ns` a table of the test's own whose input chain counts (and accepts) what comes
/// from `source`: the packets that got past XDP into the IP stack.
fn count_in_nftables(ns: &NetNs, source: &str) {
    let family = if ip(source).is_ipv4() { "ip" } else { "ip6" };
    ns.nft(&[
        "add",
        "table",
        "inet",
        "xdp_test",
        ";",
        "add",
        "chain",
        "inet",
        "xdp_test",
        "input",
        "{ type filter hook input priority 0; policy accept; }",
        ";",
        "add",
        "rule",
        "inet",
        "xdp_test",
        "input",
        family,
        "saddr",
        source,
        "counter",
        "accept",
    ]);
}

/// The packets the rule of [`count_in_nftables`] counted.
fn nftables_count(ns: &NetNs) -> u64 {
    let out = ns.nft(&["-j", "list", "chain", "inet", "xdp_test", "input"]);
    let json: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    json["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.get("rule"))
        .flat_map(|rule| rule["expr"].as_array().into_iter().flatten())
        .find_map(|expr| expr.get("counter")?.get("packets")?.as_u64())
        .unwrap_or_else(|| panic!("no counter in {out}"))
}

/// Bans `a`'s address of one family: its datagrams stop arriving, the program counts them
/// and nftables behind it never sees them; the unban lets them through to nftables again.
fn ban_drops_before_nftables(tag: &str, family: Family) {
    let (a_addr, b_addr) = match family {
        Family::V4 => (A_V4, B_V4),
        Family::V6 => (A_V6, B_V6),
    };
    let link = Link::new(tag);
    let mut xdp = link.load(64, None);
    count_in_nftables(&link.b, a_addr);
    assert!(link.reaches(a_addr, b_addr, PATIENCE), "no ban yet");
    assert!(nftables_count(&link.b) > 0, "the nftables rule counts a");

    ban(&mut xdp, &[Element::permanent(target(a_addr))]);
    let (drops, seen) = (dropped(&xdp, family), nftables_count(&link.b));
    assert!(
        !link.reaches(a_addr, b_addr, QUIET),
        "banned, yet it arrived"
    );
    assert!(dropped(&xdp, family).packets > drops.packets);
    assert!(dropped(&xdp, family).bytes > drops.bytes);
    assert_eq!(
        nftables_count(&link.b),
        seen,
        "nftables saw packets XDP should have dropped"
    );

    unban(&mut xdp, &[a_addr]);
    assert!(
        link.reaches(a_addr, b_addr, PATIENCE),
        "unbanned, yet dropped"
    );
    assert!(nftables_count(&link.b) > seen);
}

#[test]
fn root_ipv4_ban_drops_before_nftables() {
    ban_drops_before_nftables("xv4", Family::V4);
}

#[test]
fn root_ipv6_ban_drops_before_nftables() {
    ban_drops_before_nftables("xv6", Family::V6);
}

#[test]
fn root_network_ban_drops_its_addresses_only() {
    let link = Link::new("xnet");
    link.add_a_address("203.0.113.77/24");
    link.add_a_address("2001:db8:6::77/64");
    let mut xdp = link.load(64, None);
    ban(
        &mut xdp,
        &[
            Element::permanent(target("203.0.113.0/28")),
            Element::permanent(target("2001:db8:5::/64")),
        ],
    );
    for (family, inside, outside, dst) in [
        (Family::V4, A_V4, "203.0.113.77", B_V4),
        (Family::V6, A_V6, "2001:db8:6::77", B_V6),
    ] {
        let before = dropped(&xdp, family);
        assert!(
            !link.reaches(inside, dst, QUIET),
            "{inside} is in the network"
        );
        assert!(dropped(&xdp, family).packets > before.packets);
        assert!(
            link.reaches(outside, dst, PATIENCE),
            "{outside} is outside the network"
        );
    }
}

/// The MAC address of `interface` in `ns`.
fn mac_of(ns: &NetNs, interface: &str) -> [u8; 6] {
    let out = ns.ip(&["-j", "link", "show", interface]);
    let json: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let text = json[0]["address"].as_str().expect("a link address");
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect();
    bytes.try_into().expect("six bytes")
}

/// The internet checksum of an IPv4 header.
fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame carrying a UDP datagram from `src` to `dst` behind `tpids.len()` VLAN
/// tags written inline (0x8100 802.1Q, 0x88a8 802.1ad), outermost first.
fn tagged_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    tpids: &[u16],
    src: &str,
    dst: &str,
) -> Vec<u8> {
    let payload = b"crmonban-vlan-probe";
    let mut udp = Vec::new();
    udp.extend(40000u16.to_be_bytes());
    udp.extend(40001u16.to_be_bytes());
    udp.extend(((8 + payload.len()) as u16).to_be_bytes());
    udp.extend([0, 0]);
    udp.extend(payload);
    let mut frame = Vec::new();
    frame.extend(dst_mac);
    frame.extend(src_mac);
    for (vlan, tpid) in (100u16..).zip(tpids) {
        frame.extend(tpid.to_be_bytes());
        frame.extend(vlan.to_be_bytes());
    }
    match (ip(src), ip(dst)) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            frame.extend(0x0800u16.to_be_bytes());
            let mut header = [0u8; 20];
            header[0] = 0x45;
            header[2..4].copy_from_slice(&((20 + udp.len()) as u16).to_be_bytes());
            header[6] = 0x40; // don't fragment
            header[8] = 64;
            header[9] = 17;
            header[12..16].copy_from_slice(&src.octets());
            header[16..20].copy_from_slice(&dst.octets());
            let checksum = ipv4_checksum(&header);
            header[10..12].copy_from_slice(&checksum.to_be_bytes());
            frame.extend(header);
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            frame.extend(0x86ddu16.to_be_bytes());
            frame.extend([0x60, 0, 0, 0]);
            frame.extend((udp.len() as u16).to_be_bytes());
            frame.extend([17, 64]);
            frame.extend(src.octets());
            frame.extend(dst.octets());
        }
        _ => panic!("{src} and {dst} are of different families"),
    }
    frame.extend(udp);
    frame
}

/// Sends `frames` as they are out of `interface` of `ns`, through an AF_PACKET raw socket.
fn send_frames(ns: &NetNs, interface: &str, frames: &[Vec<u8>]) {
    ns.run(|| {
        let ifindex = nix::net::if_::if_nametoindex(interface).expect("the sender's interface");
        // SAFETY: socket(2) has no preconditions; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a descriptor just returned to us, owned from here.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set below.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is a sockaddr_ll of the given size that outlives the call.
        let rc = unsafe {
            libc::bind(
                socket.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(
            rc,
            0,
            "binding to {interface}: {}",
            std::io::Error::last_os_error()
        );
        for frame in frames {
            // SAFETY: the buffer is valid for `frame.len()` bytes.
            let sent =
                unsafe { libc::send(socket.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
            assert_eq!(
                sent,
                frame.len() as isize,
                "sending a frame: {}",
                std::io::Error::last_os_error()
            );
        }
    });
}

/// Waits until the program's counter of `family` reaches `want`, then checks it stays there.
fn assert_drops_reach(xdp: &XdpFastPath, family: Family, want: DropCounters) {
    wait_until("the drop counter to reach its mark", PATIENCE, || {
        (dropped(xdp, family).packets >= want.packets).then_some(())
    })
    .unwrap_or_else(|waited| panic!("{waited}: {:?}, want {want:?}", dropped(xdp, family)));
    assert_eq!(dropped(xdp, family), want);
}

fn plus(counters: DropCounters, frames: &[Vec<u8>]) -> DropCounters {
    DropCounters {
        packets: counters.packets + frames.len() as u64,
        bytes: counters.bytes + frames.iter().map(|f| f.len() as u64).sum::<u64>(),
    }
}

#[test]
fn root_vlan_tagged_frames_from_a_banned_source_are_dropped() {
    let link = Link::new("xvlan");
    let mut xdp = link.load(64, None);
    // Sources `a` does not own: only the frames sent here carry them.
    let (banned_v4, banned_v6, allowed_v4) = ("198.51.100.66", "2001:db8:66::66", "198.51.100.67");
    ban(
        &mut xdp,
        &[
            Element::permanent(target(banned_v4)),
            Element::permanent(target(banned_v6)),
        ],
    );
    let (to, from) = (mac_of(&link.b, &link.b_if), mac_of(&link.a, &link.a_if));
    let frames = |tpids: &[u16], src: &str, dst: &str, n: usize| {
        vec![tagged_frame(to, from, tpids, src, dst); n]
    };
    const DOT1Q: &[u16] = &[0x8100];
    const QINQ: &[u16] = &[0x88a8, 0x8100];

    let v4 = [
        frames(DOT1Q, banned_v4, B_V4, 3),
        frames(QINQ, banned_v4, B_V4, 2),
    ]
    .concat();
    let v6 = [
        frames(DOT1Q, banned_v6, B_V6, 2),
        frames(QINQ, banned_v6, B_V6, 3),
    ]
    .concat();
    let (before_v4, before_v6) = (dropped(&xdp, Family::V4), dropped(&xdp, Family::V6));
    send_frames(&link.a, &link.a_if, &[v4.clone(), v6.clone()].concat());
    assert_drops_reach(&xdp, Family::V4, plus(before_v4, &v4));
    assert_drops_reach(&xdp, Family::V6, plus(before_v6, &v6));

    // Tagged frames of an unbanned source pass; one banned frame sent after them marks the
    // point by which the program has seen them all.
    let allowed = [
        frames(DOT1Q, allowed_v4, B_V4, 3),
        frames(QINQ, allowed_v4, B_V4, 3),
    ]
    .concat();
    let marker = frames(QINQ, banned_v4, B_V4, 1);
    let before = dropped(&xdp, Family::V4);
    send_frames(&link.a, &link.a_if, &[allowed, marker.clone()].concat());
    assert_drops_reach(&xdp, Family::V4, plus(before, &marker));
}

#[test]
fn root_expired_entry_passes_without_user_space() {
    let link = Link::new("xexp");
    let mut xdp = link.load(64, None);
    let at = unix_now() + 3; // two to three seconds ahead
    ban(&mut xdp, &[Element::until(target(A_V4), Some(at))]);
    let before = dropped(&xdp, Family::V4);
    assert!(!link.reaches(A_V4, B_V4, QUIET), "banned until {at}");
    assert!(dropped(&xdp, Family::V4).packets > before.packets);

    // Nothing calls into the fast path from here until the datagrams arrive again.
    assert!(link.reaches(A_V4, B_V4, PATIENCE), "expired at {at}");
    assert!(unix_now() >= at, "arrived before the expiry");
    assert!(!xdp.drops_from(ip(A_V4)).expect("lookup"));
    assert_holds(xdp.list().expect("list"), &[]);
}

#[test]
fn root_program_is_detached_on_detach_drop_and_kill() {
    let link = Link::new("xdet");
    assert_eq!(link.attached(), None);
    let mut xdp = link.load(64, None);
    let found = link.attached().expect("attached after attach()");
    assert_eq!(found.name, PROGRAM_NAME);
    ban(&mut xdp, &[Element::permanent(target(A_V4))]);
    assert!(!link.reaches(A_V4, B_V4, QUIET));

    xdp.detach();
    assert_eq!(link.attached(), None, "after detach()");
    assert!(link.reaches(A_V4, B_V4, PATIENCE), "detached, yet dropped");
    let failures = link.b.run(|| xdp.attach());
    assert!(failures.is_empty(), "{failures:?}");
    assert!(link.attached().is_some(), "attached again");
    drop(xdp);
    wait_until("the program to be off after the drop", PATIENCE, || {
        link.attached().is_none().then_some(())
    })
    .unwrap_or_else(|waited| panic!("{waited}"));

    let mut child = spawn_attached_helper(&link);
    let found = link.attached().expect("the helper process attached");
    assert_eq!(found.name, PROGRAM_NAME);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill -9");
    let status = child.wait().expect("waiting for the helper");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    wait_until(
        "the kernel to take off the killed process's program",
        Duration::from_secs(5),
        || link.attached().is_none().then_some(()),
    )
    .unwrap_or_else(|waited| panic!("{waited}: {:?}", link.attached()));
}

/// Tells [`helper_attach_and_wait`], in a child process, where to attach: `<netns> <interface>`.
const HELPER_ENV: &str = "CRMONBAN_XDP_TEST_HELPER";

/// Runs this test binary again as a child that attaches to `link`'s `b` end, and returns
/// once it says so.
fn spawn_attached_helper(link: &Link) -> Child {
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new(exe)
        .args([
            "helper_attach_and_wait",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, format!("{} {}", link.b.name(), link.b_if))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the helper");
    let stdout = child.stdout.take().expect("the helper's stdout");
    let (said, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.trim_end().ends_with("attached") {
                let _ = said.send(());
            }
        }
    });
    if heard.recv_timeout(PATIENCE).is_err() {
        let _ = child.kill();
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        let status = child.wait();
        panic!("the helper did not attach ({status:?}): {stderr}");
    }
    child
}

/// Not a test of its own: the child process of [`root_program_is_detached_on_detach_drop_and_kill`]
/// (it returns at once elsewhere). Attaches inside the namespace [`HELPER_ENV`] names, says
/// "attached", and holds the program until it is killed (or its parent goes away and closes
/// its stdin).
#[test]
fn helper_attach_and_wait() {
    let Ok(spec) = std::env::var(HELPER_ENV) else {
        return;
    };
    let (netns, interface) = spec
        .split_once(' ')
        .expect("`<netns> <interface>` in the helper's environment");
    let file = File::open(format!("/run/netns/{netns}")).expect("the namespace");
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    let xdp = load_and_attach(interface, 16, None);
    let mut stdout = std::io::stdout();
    writeln!(stdout, "attached").expect("stdout");
    stdout.flush().expect("stdout");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(xdp);
}

/// A private bpffs instance mounted on a fresh directory for one test's pins: no test sees
/// the host's /sys/fs/bpf or another test's pins. Unmounted and removed on drop, even when
/// the test fails.
struct PinFs {
    mount: PathBuf,
}

impl PinFs {
    fn new() -> PinFs {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let mount = std::env::temp_dir().join(format!(
            "crmonban-test-bpffs-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&mount).unwrap_or_else(|e| panic!("{}: {e}", mount.display()));
        let fs = PinFs { mount };
        let path = fs.mount.to_str().expect("a UTF-8 path");
        crmonban_testutil::run("mount", &["-t", "bpf", "bpf", path]);
        fs
    }

    /// The pin directory (made by the loader).
    fn dir(&self) -> PathBuf {
        self.mount.join("crmonban")
    }
}

impl Drop for PinFs {
    fn drop(&mut self) {
        let _ = remove_pins(&self.dir());
        let _ = Command::new("umount").arg(&self.mount).status();
        let _ = std::fs::remove_dir(&self.mount);
    }
}

/// The entries of a pinned map as `bpftool -j map dump pinned` prints them: (key, value).
fn bpftool_dump(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let path = path.to_str().expect("a UTF-8 path");
    let out = crmonban_testutil::run("bpftool", &["-j", "map", "dump", "pinned", path]);
    let json: Value = serde_json::from_slice(&out.stdout).expect("bpftool's JSON");
    let bytes = |list: &Value| -> Vec<u8> {
        list.as_array()
            .unwrap_or_else(|| panic!("a list of bytes in {json}"))
            .iter()
            .map(|b| {
                let hex = b.as_str().expect("a hex byte");
                u8::from_str_radix(hex.trim_start_matches("0x"), 16).expect("a hex byte")
            })
            .collect()
    };
    json.as_array()
        .expect("a list of entries")
        .iter()
        .map(|entry| (bytes(&entry["key"]), bytes(&entry["value"])))
        .collect()
}

/// CLOCK_MONOTONIC in nanoseconds, the program's clock.
fn mono_ns() -> i128 {
    let now =
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("monotonic time");
    i128::from(now.tv_sec()) * 1_000_000_000 + i128::from(now.tv_nsec())
}

#[test]
fn root_pinned_maps_outlive_the_process_and_are_recreated_when_resized() {
    let link = Link::new("xpin");
    let pins = PinFs::new();
    let dir = pins.dir();
    let mut xdp = link.load(16, Some(&dir));
    assert!(!xdp.reused_pins());
    for path in pin_paths(&dir) {
        assert!(path.exists(), "{} pinned", path.display());
    }
    let at = unix_now() + 3600;
    let bans = [
        Element::permanent(target(A_V4)),
        Element::until(target("198.51.100.0/24"), Some(at)),
    ];
    ban(&mut xdp, &bans);

    // The layout other programs read (docs/EBPF.md): an address in blocked_v4, key the
    // address in network order; a network in blocked_v4_net, key {u32 prefixlen, host order;
    // the address}; values {u64 CLOCK_MONOTONIC ns of the expiry, 0 = permanent}.
    let addresses = bpftool_dump(&dir.join("blocked_v4"));
    assert_eq!(
        addresses,
        [(vec![203, 0, 113, 5], vec![0; 8])],
        "the permanent address ban"
    );
    let networks = bpftool_dump(&dir.join("blocked_v4_net"));
    assert_eq!(networks.len(), 1, "{networks:?}");
    let (key, value) = &networks[0];
    assert_eq!(key.len(), 8, "{key:?}");
    let prefix = u32::from_ne_bytes(key[..4].try_into().expect("4 bytes"));
    assert_eq!((prefix, &key[4..]), (24, &[198, 51, 100, 0][..]));
    let expires = u64::from_ne_bytes(value[..8].try_into().expect("8 bytes"));
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as i128;
    let left_in_map = i128::from(expires) - mono_ns();
    let left = i128::from(at) * 1_000_000_000 - wall;
    assert!(
        (left_in_map - left).abs() < 2_000_000_000,
        "the map expires in {left_in_map} ns, the ban in {left} ns"
    );

    // A restart with the same size keeps the pinned bans, enforced as soon as it attaches.
    drop(xdp);
    let mut xdp = link.load(16, Some(&dir));
    assert!(xdp.reused_pins());
    assert_holds(xdp.list().expect("list"), &bans);
    assert!(!link.reaches(A_V4, B_V4, QUIET), "the pinned ban is lost");

    // Another size: the pins are replaced by empty maps of the new size.
    drop(xdp);
    let mut xdp = link.load(32, Some(&dir));
    assert!(!xdp.reused_pins());
    assert_holds(xdp.list().expect("list"), &[]);
    let show = crmonban_testutil::run(
        "bpftool",
        &[
            "-j",
            "map",
            "show",
            "pinned",
            dir.join("blocked_v4").to_str().expect("UTF-8"),
        ],
    );
    let show: Value = serde_json::from_slice(&show.stdout).expect("bpftool's JSON");
    assert_eq!(show["max_entries"], 32, "{show}");
    assert!(link.reaches(A_V4, B_V4, PATIENCE), "no ban in the new maps");

    drop(xdp);
    assert!(remove_pins(&dir).expect("removing the pins"));
    assert!(!dir.exists(), "{} is left", dir.display());
}

#[test]
fn root_full_map_refuses_the_rest_until_a_reconcile_finds_room() {
    let link = Link::new("xfull");
    let second = "203.0.113.77";
    link.add_a_address("203.0.113.77/24");
    let mut xdp = link.load(4, None);
    let all: Vec<Element> = [
        "198.51.100.1",
        "198.51.100.2",
        A_V4,
        "198.51.100.3",
        second,
        "198.51.100.4",
    ]
    .into_iter()
    .map(|text| Element::permanent(target(text)))
    .collect();
    let mut changes = ChangeSet::new();
    for element in &all {
        changes.add(*element);
    }
    let report = xdp.apply(&changes).expect("apply");
    assert_eq!(report.added, 4, "{report:?}");
    let refused: Vec<&str> = report.refused.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(refused, [second, "198.51.100.4"]);
    assert_eq!(xdp.stats().expect("stats").not_mirrored, 2);
    assert_holds(xdp.list().expect("list"), &all[..4]);
    for (i, element) in all.iter().enumerate() {
        let Target::Addr(addr) = element.target else {
            unreachable!()
        };
        assert_eq!(xdp.drops_from(addr).expect("lookup"), i < 4, "{addr}");
    }
    assert!(!link.reaches(A_V4, B_V4, QUIET), "{A_V4} is in the map");
    assert!(
        link.reaches(second, B_V4, PATIENCE),
        "{second} found the map full"
    );

    unban(&mut xdp, &["198.51.100.1", "198.51.100.2"]);
    let report = xdp.reconcile(&all[2..]).expect("reconcile");
    assert_eq!((report.added, report.removed), (2, 0), "{report:?}");
    assert!(report.refused.is_empty(), "{report:?}");
    let stats = xdp.stats().expect("stats");
    assert_eq!((stats.not_mirrored, stats.entries_v4), (0, 4));
    assert_holds(xdp.list().expect("list"), &all[2..]);
    assert!(
        !link.reaches(second, B_V4, QUIET),
        "{second} is in the map now"
    );
}

#[test]
fn root_reconcile_makes_the_maps_hold_exactly_the_bans() {
    let link = Link::new("xrec");
    let mut xdp = link.load(64, None);
    let now = unix_now();
    let until = |text: &str, at: i64| Element::until(target(text), Some(at));
    let permanent = |text: &str| Element::permanent(target(text));
    let stale = [
        permanent(A_V4),
        until("198.51.100.7", now + 600),
        permanent("2001:db8:77::/48"),
    ];
    let kept = until("198.51.100.8", now + 600);
    let changed_before = [
        until("198.51.100.9", now + 600),
        permanent("198.51.100.10"),
        until("2001:db8:99::1", now + 600),
    ];
    let changed_after = [
        until("198.51.100.9", now + 3600),
        until("198.51.100.10", now + 3600),
        permanent("2001:db8:99::1"),
    ];
    let new = [permanent(A_V6), until("198.51.100.128/25", now + 900)];
    ban(
        &mut xdp,
        &[&stale[..], &[kept], &changed_before[..]].concat(),
    );
    assert!(!link.reaches(A_V4, B_V4, QUIET), "a stale ban still holds");

    let wanted = [&[kept][..], &changed_after[..], &new[..]].concat();
    let report = xdp.reconcile(&wanted).expect("reconcile");
    assert_eq!((report.removed, report.added), (3, 5), "{report:?}");
    assert_holds(xdp.list().expect("list"), &wanted);
    let stats = xdp.stats().expect("stats");
    assert_eq!((stats.entries_v4, stats.entries_v6), (4, 2));
    assert!(link.reaches(A_V4, B_V4, PATIENCE), "the stale ban is gone");
    assert!(!link.reaches(A_V6, B_V6, QUIET), "the new ban holds");

    let again = xdp.reconcile(&wanted).expect("reconcile");
    assert_eq!((again.removed, again.added), (0, 0), "{again:?}");
}
