//! A 64-byte UDP flood over veth, dropped four ways (needs root; run by `cargo xtask bench`).
//! Prints one `name: value` line per figure, which xtask collects into docs/BENCHMARKS.md.
//!
//! Two namespaces joined by a veth pair: `a` sends, `b` receives and drops. The sender is a
//! thread in `a` writing pre-built 60-byte Ethernet + IPv4 + UDP frames (64 on the wire with
//! the FCS) to an AF_PACKET socket with `sendmmsg`, as fast as it can. The same traffic meets,
//! in `b`:
//!
//! - no rule: it climbs the stack to a UDP socket that never reads, and is dropped there;
//! - crmonban's nftables input rule, with 1,000,000 bans (half IPv4, half IPv6) and the sender;
//! - a two-instruction XDP program that drops everything (the floor of what XDP costs here);
//! - crmonban's XDP program, its maps holding the same 1,000,000 bans and the sender, attached
//!   in the same mode as the minimal one (native: veth has a driver hook).
//!
//! The rate is the frames `b`'s veth took in per second (its `rx_packets`: every frame that
//! reached the drop point), over 3 s after 1 s of warm-up, in the order none, nft, minimal,
//! crmonban, then back; each figure is the better of its two passes. Over each whole pass the
//! frames the sender handed to the kernel must equal those `b` took in plus the drops veth
//! reports, and each configuration's own counter (UDP socket arrivals, the nft rule counter,
//! our XDP drop counter) must agree with `b`'s count. The machine's system and softirq time
//! over the window splits each frame's cost between the sender and the receiving side.
//!
//! Then, with the kernel's BPF run-time statistics on (held by a file descriptor, so they go
//! off even if this process dies), both XDP programs run once more for their nanoseconds per
//! packet; and both run alone in the kernel (BPF_PROG_TEST_RUN) on a banned frame, ours also
//! on unbanned ones and with a one-entry map, which splits its time between the map's size and
//! the rest. Also timed: filling our maps with 1,000,000 bans, and reconciling them against the
//! same bans.

mod bpf;
mod counters;
mod traffic;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crmonban_core::Target;
use crmonban_ebpf::{ModeChoice, XdpFastPath, XdpMode, XdpOptions};
use crmonban_firewall::{Change, ChangeSet, Element, FirewallBackend, NftBackend, NftOptions};
use crmonban_testutil::{End, NetNs, connect, wait_until};
use libbpf_rs::libbpf_sys;

use bpf::{attached_program, link_native, load_drop_all, program_of, run_stats, test_run};
use counters::{
    CpuTicks, LinkStats, cpu_ticks, link_stats, nft_rule_packets, ticks_per_second, udp_arrivals,
};
use traffic::{BATCH, FRAME_LEN, PORT, Sender, build_frames, mac};

/// The sender's address: odd, so it sits between banned neighbours (the bans' IPv4 half is
/// every even address from 11.0.0.0 up), where a trie lookup would go as deep as for most of
/// a large ban list.
const SENDER_V4: &str = "11.0.0.1/8";
const SENDER_V6: &str = "fd00:64::1/64";
const RECEIVER_V4: &str = "11.255.255.254/8";
const RECEIVER_V6: &str = "fd00:64::2/64";

const WARM_UP: Duration = Duration::from_secs(1);
const WINDOW: Duration = Duration::from_secs(3);
/// The XDP programs' run-time statistics: a shorter run each, twice.
const STATS_WARM_UP: Duration = Duration::from_millis(500);
const STATS_WINDOW: Duration = Duration::from_millis(1500);

const BANS: u32 = 1_000_000;
const MAX_ENTRIES: u32 = 1_100_000;
const BAN_TIME: Duration = Duration::from_secs(86_400);
/// How long the receiving side may take to catch up after the sender stops.
const SETTLE: Duration = Duration::from_secs(5);

/// What drops the flood in `b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Config {
    None,
    Nft,
    Minimal,
    Crmonban,
}

impl Config {
    const ALL: [Config; 4] = [Config::None, Config::Nft, Config::Minimal, Config::Crmonban];

    fn name(self) -> &'static str {
        match self {
            Config::None => "none",
            Config::Nft => "nft_input",
            Config::Minimal => "minimal_xdp",
            Config::Crmonban => "crmonban_xdp",
        }
    }
}

/// Interleaved, so that a slow stretch of the machine falls on every configuration.
const ORDER: [Config; 8] = [
    Config::None,
    Config::Nft,
    Config::Minimal,
    Config::Crmonban,
    Config::Crmonban,
    Config::Minimal,
    Config::Nft,
    Config::None,
];

/// The bans: the IPv4 half from 11.0.0.0 up (even addresses), the IPv6 half in 2001:db8::/64,
/// as in the nft_scale bench.
fn target(i: u32) -> Target {
    if i.is_multiple_of(2) {
        Target::from(Ipv4Addr::from(0x0B00_0000 + i))
    } else {
        Target::from(Ipv6Addr::from(
            0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i),
        ))
    }
}

/// The address of an IPv4 `address/prefix`.
fn address(cidr: &str) -> Ipv4Addr {
    cidr.split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("an IPv4 address/prefix")
}

/// Counters at one instant of a pass.
#[derive(Clone, Copy, Debug)]
struct Tally {
    at: Instant,
    /// Frames `b`'s veth took in (`rx_packets`): what reached the drop point.
    reached: u64,
    /// Frames the sender handed to the kernel.
    sent: u64,
    cpu: CpuTicks,
}

/// Totals read before and after a whole pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Totals {
    sent: u64,
    a: LinkStats,
    b: LinkStats,
    /// UDP datagrams that reached a socket in `b`.
    udp: u64,
    /// The configuration's own drop counter (nft rule, our XDP program); 0 for the others.
    counted: u64,
}

impl Totals {
    fn veth_drops(&self) -> u64 {
        self.a.tx_dropped + self.b.rx_dropped
    }
}

/// One pass of one configuration.
#[derive(Debug)]
struct Pass {
    config: Config,
    /// Frames per second that reached `b`'s drop point, over the window.
    reached_pps: f64,
    /// Frames per second the sender handed to the kernel, over the window.
    sent_pps: f64,
    /// CPU time per frame in system calls (the sender) and in softirq (veth's receive
    /// path, and what the frame meets in `b`), over the window, in µs.
    system_us: f64,
    softirq_us: f64,
    /// Differences of the totals over the whole pass (warm-up included).
    delta: Totals,
}

/// The two namespaces, the traffic and everything that can drop it.
struct Rig<'a> {
    sender: Sender<'a>,
    b: &'a NetNs,
    ib: String,
    elements: Vec<Element>,
    nft: NftBackend,
    xdp: XdpFastPath,
    drop_all: OwnedFd,
    drop_all_link: Option<OwnedFd>,
}

impl Rig<'_> {
    fn set_up(&mut self, config: Config) {
        match config {
            Config::None => {}
            Config::Nft => {
                let report = self.nft.replace_all(&self.elements).expect("nft restore");
                assert!(report.refused.is_empty(), "{report:?}");
            }
            Config::Minimal => {
                self.drop_all_link = Some(link_native(&self.drop_all, &self.ib));
            }
            Config::Crmonban => {
                let failures = self.xdp.attach();
                assert!(failures.is_empty(), "{failures:?}");
            }
        }
    }

    fn tear_down(&mut self, config: Config) {
        match config {
            Config::None => {}
            Config::Nft => self.nft.teardown().expect("nft teardown"),
            Config::Minimal => self.drop_all_link = None,
            Config::Crmonban => self.xdp.detach(),
        }
    }

    fn totals(&self, config: Config) -> Totals {
        Totals {
            sent: self.sender.sent.load(Ordering::Relaxed),
            a: link_stats(self.sender.ns, &self.sender.interface),
            b: link_stats(self.b, &self.ib),
            udp: udp_arrivals(),
            counted: match config {
                Config::Nft => nft_rule_packets(),
                Config::Crmonban => self.xdp.stats().expect("XDP stats").dropped_v4.packets,
                Config::None | Config::Minimal => 0,
            },
        }
    }

    fn tally(&self) -> Tally {
        let sent = self.sender.sent.load(Ordering::Relaxed);
        let cpu = cpu_ticks();
        let reached = link_stats(self.b, &self.ib).rx_packets;
        Tally {
            at: Instant::now(),
            reached,
            sent,
            cpu,
        }
    }

    fn pass(&mut self, config: Config) -> Pass {
        let started = Instant::now();
        self.set_up(config);
        eprintln!("xdp_flood: {config:?} set up in {:?}", started.elapsed());
        let before = self.totals(config);
        let (start, end) = self.sender.flood_window(WARM_UP, WINDOW, || self.tally());
        // Every frame sent is accounted for once the receiving side has caught up: taken in
        // by `b`'s veth, or dropped by veth. `b` also takes in the odd frame of `a`'s own stack
        // (IPv6 neighbour and multicast chatter), hence "at least".
        wait_until("the receiver to account for every frame", SETTLE, || {
            let sent = self.sender.sent.load(Ordering::Relaxed) - before.sent;
            let (a, b) = (
                link_stats(self.sender.ns, &self.sender.interface),
                link_stats(self.b, &self.ib),
            );
            let taken = b.rx_packets - before.b.rx_packets;
            let dropped = a.tx_dropped + b.rx_dropped - before.veth_drops();
            (taken + dropped >= sent).then_some(())
        })
        .unwrap_or_else(|e| {
            panic!(
                "{config:?}: {e}: before {before:?}, now {:?}",
                self.totals(config)
            )
        });
        let after = self.totals(config);
        self.tear_down(config);
        let seconds = end.at.duration_since(start.at).as_secs_f64();
        let delta = Totals {
            sent: after.sent - before.sent,
            a: LinkStats {
                rx_packets: after.a.rx_packets - before.a.rx_packets,
                rx_dropped: after.a.rx_dropped - before.a.rx_dropped,
                tx_dropped: after.a.tx_dropped - before.a.tx_dropped,
            },
            b: LinkStats {
                rx_packets: after.b.rx_packets - before.b.rx_packets,
                rx_dropped: after.b.rx_dropped - before.b.rx_dropped,
                tx_dropped: after.b.tx_dropped - before.b.tx_dropped,
            },
            udp: after.udp - before.udp,
            counted: after.counted - before.counted,
        };
        check(config, &delta);
        let frames = (end.reached - start.reached) as f64;
        let per_frame = |ticks: u64| ticks as f64 / ticks_per_second() * 1e6 / frames;
        let pass = Pass {
            config,
            reached_pps: (end.reached - start.reached) as f64 / seconds,
            sent_pps: (end.sent - start.sent) as f64 / seconds,
            system_us: per_frame(end.cpu.system - start.cpu.system),
            softirq_us: per_frame(end.cpu.softirq - start.cpu.softirq),
            delta,
        };
        eprintln!("xdp_flood: {pass:?}");
        pass
    }

    /// Nanoseconds per packet of the XDP program `config` attaches, from the kernel's
    /// run-time statistics (which must be on).
    fn ns_per_packet(&mut self, config: Config) -> f64 {
        self.set_up(config);
        let program = match config {
            Config::Minimal => self.drop_all.try_clone().expect("dup"),
            Config::Crmonban => attached_program(&self.ib, XdpMode::Native),
            _ => unreachable!("only XDP programs have run-time statistics"),
        };
        let ((t0, n0), (t1, n1)) = self
            .sender
            .flood_window(STATS_WARM_UP, STATS_WINDOW, || run_stats(&program));
        self.tear_down(config);
        assert!(n1 > n0, "{config:?}: the program did not run");
        (t1 - t0) as f64 / (n1 - n0) as f64
    }
}

/// The configuration's own counter must agree with what `b`'s veth took in, and nothing may
/// reach the stack past a drop rule.
fn check(config: Config, d: &Totals) {
    let taken = d.b.rx_packets;
    assert!(taken > 0, "{config:?}: no frame reached the receiver");
    let strays = (taken + d.veth_drops()).saturating_sub(d.sent);
    assert!(
        strays < 1000,
        "{config:?}: {strays} frames more than were sent: {d:?}"
    );
    let agrees = |counted: u64| counted.abs_diff(taken) * 1000 <= taken;
    match config {
        Config::None => assert!(agrees(d.udp), "{config:?}: UDP {} vs veth {taken}", d.udp),
        Config::Nft | Config::Crmonban => {
            assert!(
                agrees(d.counted),
                "{config:?}: drop counter {} vs veth {taken}",
                d.counted
            );
            assert_eq!(d.udp, 0, "{config:?}: frames reached the UDP socket");
        }
        Config::Minimal => assert_eq!(d.udp, 0, "{config:?}: frames reached the UDP socket"),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let a = NetNs::new("xf-a");
    let b = NetNs::new("xf-b");
    let (ia, ib) = connect(
        End {
            ns: &a,
            v4: SENDER_V4,
            v6: SENDER_V6,
        },
        End {
            ns: &b,
            v4: RECEIVER_V4,
            v6: RECEIVER_V6,
        },
    );
    let link_mac = |ns: &NetNs, interface: &str| -> [u8; 6] {
        let out = ns.ip(&["-j", "link", "show", "dev", interface]);
        let json: serde_json::Value = serde_json::from_str(&out).expect("ip -j output");
        mac(json[0]["address"].as_str().expect("MAC address"))
    };
    let frames = build_frames(
        link_mac(&a, &ia),
        link_mac(&b, &ib),
        address(SENDER_V4),
        address(RECEIVER_V4),
    );
    let sender_ban = Element::timed(Target::from(IpAddr::V4(address(SENDER_V4))), BAN_TIME);
    let elements: Vec<Element> = (0..BANS)
        .map(|i| Element::timed(target(i), BAN_TIME))
        .chain([sender_ban])
        .collect();
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let one_minute = load.split_whitespace().next().unwrap_or("?");
        println!("xdp_flood_loadavg_at_start: {one_minute}");
    }
    println!(
        "xdp_flood_traffic: {FRAME_LEN}-byte frames (64 on the wire), IPv4 UDP {} -> {} port \
         {PORT}, sendmmsg batches of {BATCH}",
        address(SENDER_V4),
        address(RECEIVER_V4)
    );

    b.run(|| {
        // The socket the baseline's datagrams reach; never read, so they are dropped there.
        let _sink = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, PORT)).expect("UDP sink");

        let mut xdp = XdpFastPath::load(XdpOptions {
            interfaces: vec![ib.clone()],
            mode: ModeChoice::Native,
            pin: None,
            max_entries: MAX_ENTRIES,
        })
        .expect("load crmonban's XDP program");
        let fill: ChangeSet = elements[..BANS as usize]
            .iter()
            .map(|e| Change::Add(*e))
            .collect();
        let start = Instant::now();
        let report = xdp.apply(&fill).expect("fill the XDP maps");
        let filled = start.elapsed();
        assert_eq!(report.added, BANS as usize, "{report:?}");
        assert!(report.refused.is_empty(), "{report:?}");
        drop(fill);
        println!("xdp_fill_1m_entries: {}", ms(filled));
        let mut one = ChangeSet::new();
        one.add(sender_ban);
        xdp.apply(&one).expect("ban the sender in the XDP maps");
        let start = Instant::now();
        let report = xdp.reconcile(&elements).expect("reconcile");
        let reconciled = start.elapsed();
        assert_eq!((report.added, report.removed), (0, 0), "{report:?}");
        println!("xdp_reconcile_1m_unchanged: {}", ms(reconciled));

        // nftables must work before any pass starts; its table is there only for nft's passes.
        let mut nft = NftBackend::new(NftOptions::default()).expect("nft backend");
        nft.ensure_layout().expect("nft layout");
        nft.teardown().expect("nft teardown");

        let mut rig = Rig {
            sender: Sender {
                ns: &a,
                interface: ia.clone(),
                frames,
                sent: AtomicU64::new(0),
            },
            b: &b,
            ib: ib.clone(),
            elements,
            nft,
            xdp,
            drop_all: load_drop_all(),
            drop_all_link: None,
        };

        // Both XDP programs run in the same mode.
        rig.set_up(Config::Minimal);
        let minimal_mode = crmonban_ebpf::attached(&ib).expect("query").map(|p| p.mode);
        rig.tear_down(Config::Minimal);
        rig.set_up(Config::Crmonban);
        let ours = rig.xdp.stats().expect("XDP stats").interfaces;
        rig.tear_down(Config::Crmonban);
        assert_eq!(ours.len(), 1, "{ours:?}");
        assert_eq!(minimal_mode, Some(ours[0].mode), "{ours:?}");
        println!("xdp_mode: {}", ours[0].mode);

        let passes: Vec<Pass> = ORDER.iter().map(|c| rig.pass(*c)).collect();
        let best = |config: Config| -> &Pass {
            passes
                .iter()
                .filter(|p| p.config == config)
                .max_by(|x, y| x.reached_pps.total_cmp(&y.reached_pps))
                .expect("a pass of every configuration")
        };
        for config in Config::ALL {
            println!(
                "xdp_flood_{}_pps: {:.0}",
                config.name(),
                best(config).reached_pps
            );
        }
        let rate = |config: Config| best(config).reached_pps;
        println!(
            "xdp_flood_crmonban_vs_minimal: {:.2}",
            rate(Config::Crmonban) / rate(Config::Minimal)
        );
        println!(
            "xdp_flood_crmonban_vs_nft: {:.2}",
            rate(Config::Crmonban) / rate(Config::Nft)
        );
        println!(
            "xdp_flood_minimal_vs_nft: {:.2}",
            rate(Config::Minimal) / rate(Config::Nft)
        );
        println!(
            "xdp_flood_sender_none_pps: {:.0}",
            best(Config::None).sent_pps
        );
        for config in Config::ALL {
            let pass = best(config);
            println!(
                "xdp_flood_{}_cpu_per_frame: {:.2} µs system (the sender), {:.2} µs softirq \
                 (receiving)",
                config.name(),
                pass.system_us,
                pass.softirq_us
            );
        }
        let all_passes: Vec<String> = Config::ALL
            .iter()
            .map(|c| {
                let rates: Vec<String> = passes
                    .iter()
                    .filter(|p| p.config == *c)
                    .map(|p| format!("{:.0}", p.reached_pps))
                    .collect();
                format!("{} {}", c.name(), rates.join(" / "))
            })
            .collect();
        println!("xdp_flood_passes_pps: {}", all_passes.join(", "));
        let drops: Vec<String> = Config::ALL
            .iter()
            .map(|c| {
                let (dropped, sent) = passes
                    .iter()
                    .filter(|p| p.config == *c)
                    .fold((0, 0), |(d, s), p| {
                        (d + p.delta.veth_drops(), s + p.delta.sent)
                    });
                format!("{} {dropped} of {sent}", c.name())
            })
            .collect();
        println!("xdp_flood_veth_drops: {}", drops.join(", "));

        // The kernel counts run time only while someone holds statistics on; this descriptor
        // does, and closing it (or this process dying) turns them off again.
        // SAFETY: plain syscall wrapper; a negative result is an error code.
        let stats_fd = unsafe { libbpf_sys::bpf_enable_stats(libbpf_sys::BPF_STATS_RUN_TIME) };
        assert!(
            stats_fd >= 0,
            "BPF_ENABLE_STATS: {}",
            std::io::Error::from_raw_os_error(-stats_fd)
        );
        // SAFETY: a fresh descriptor, owned from here.
        let stats_on = unsafe { OwnedFd::from_raw_fd(stats_fd) };
        let mut per_packet = [f64::MAX; 2];
        for config in [
            Config::Minimal,
            Config::Crmonban,
            Config::Crmonban,
            Config::Minimal,
        ] {
            let ns = rig.ns_per_packet(config);
            eprintln!("xdp_flood: {config:?} {ns:.1} ns per packet");
            let slot = &mut per_packet[usize::from(config == Config::Crmonban)];
            *slot = slot.min(ns);
        }
        drop(stats_on);
        println!("xdp_ns_per_packet_minimal: {:.1} ns", per_packet[0]);
        println!("xdp_ns_per_packet_crmonban: {:.1} ns", per_packet[1]);

        // The programs alone, without veth and the statistics' own clock reads: the same
        // frame from the sender (banned, among a million bans), from 11.0.0.3 (not banned,
        // among them too), and from 198.18.0.1 (not banned, far from every ban); then our
        // program again with the sender as its only ban.
        let frame_from = |src: Ipv4Addr| -> [u8; FRAME_LEN] {
            build_frames(
                [2, 0, 0, 0, 0, 1],
                [2, 0, 0, 0, 0, 2],
                src,
                address(RECEIVER_V4),
            )[0]
        };
        let (banned, near, far) = (
            frame_from(address(SENDER_V4)),
            frame_from(Ipv4Addr::new(11, 0, 0, 3)),
            frame_from(Ipv4Addr::new(198, 18, 0, 1)),
        );
        let (drop, pass) = (libbpf_sys::XDP_DROP, libbpf_sys::XDP_PASS);
        let minimal = rig.drop_all.try_clone().expect("dup");
        let ours = program_of(&mut rig.xdp, &ib);
        let mut small = XdpFastPath::load(XdpOptions {
            interfaces: vec![ib.clone()],
            mode: ModeChoice::Native,
            pin: None,
            max_entries: 16,
        })
        .expect("load a second XDP program");
        small.apply(&one).expect("ban the sender alone");
        let ours_small = program_of(&mut small, &ib);
        for (name, program, frame, verdict) in [
            ("minimal", &minimal, &banned, drop),
            ("crmonban_banned", &ours, &banned, drop),
            ("crmonban_passed_among_bans", &ours, &near, pass),
            ("crmonban_passed_far_from_bans", &ours, &far, pass),
            ("crmonban_banned_1_entry", &ours_small, &banned, drop),
        ] {
            let (ns, got) = test_run(program, frame);
            assert_eq!(got, verdict, "{name}: verdict");
            println!("xdp_test_run_ns_{name}: {ns} ns");
        }
    });
}
