//! The counters the measurement reads: a veth end's (over netlink, through `ip`), the UDP
//! socket layer's, and the nft rule counters (a netlink dump of our own).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crmonban_testutil::NetNs;

/// The counters of one veth end that the measurement uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

/// `ip -s -j link` of `interface` in `ns` (netlink: /sys/class/net of a thread that entered a
/// namespace still shows the host's interfaces).
pub fn link_stats(ns: &NetNs, interface: &str) -> LinkStats {
    let out = ns.ip(&["-s", "-j", "link", "show", "dev", interface]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("ip -j output");
    let stats = &json[0]["stats64"];
    let field = |dir: &str, name: &str| stats[dir][name].as_u64().expect("ip -s -j counter");
    LinkStats {
        rx_packets: field("rx", "packets"),
        rx_dropped: field("rx", "dropped"),
        tx_dropped: field("tx", "dropped"),
    }
}

/// UDP datagrams that reached a socket in the calling thread's namespace and were read or
/// dropped there: `Udp: InDatagrams + InErrors` (which counts RcvbufErrors). The few hundred
/// that fill the never-read sink's queue in the first pass are in neither until read.
pub fn udp_arrivals() -> u64 {
    let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").expect("net/snmp");
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let (names, values) = (
        udp.next().expect("Udp header"),
        udp.next().expect("Udp values"),
    );
    let value = |name: &str| -> u64 {
        let at = names
            .split_whitespace()
            .position(|n| n == name)
            .expect("Udp counter name");
        values.split_whitespace().nth(at).unwrap().parse().unwrap()
    };
    value("InDatagrams") + value("InErrors")
}

/// The netlink attributes in `buf`: (type without flags, payload).
fn netlink_attributes(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes(buf.get(..2)?.try_into().ok()?));
        let kind = u16::from_ne_bytes(buf.get(2..4)?.try_into().ok()?) & 0x3fff;
        let payload = buf.get(4..len)?;
        buf = buf.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some((kind, payload))
    })
}

/// Packets counted by the rules of crmonban's nftables input chain, in the calling thread's
/// namespace: a `GETRULE` dump over netlink. (`nft list chain` would first read the sets'
/// million elements, for tens of seconds, even with `--terse`.)
pub fn nft_rule_packets() -> u64 {
    const NFT_MSG_GETRULE: u16 = (10 << 8) | 7; // NFNL_SUBSYS_NFTABLES, NFT_MSG_GETRULE
    const NFT_MSG_NEWRULE: u16 = (10 << 8) | 6;
    const NFPROTO_INET: u8 = 1;
    const NFTA_RULE_TABLE: u16 = 1;
    const NFTA_RULE_CHAIN: u16 = 2;
    const NFTA_RULE_EXPRESSIONS: u16 = 4;
    const NFTA_LIST_ELEM: u16 = 1;
    const NFTA_EXPR_NAME: u16 = 1;
    const NFTA_EXPR_DATA: u16 = 2;
    const NFTA_COUNTER_PACKETS: u16 = 2;

    let mut request = vec![0u8; 16];
    request.extend_from_slice(&[NFPROTO_INET, 0, 0, 0]);
    for (kind, value) in [(NFTA_RULE_TABLE, "crmonban"), (NFTA_RULE_CHAIN, "input")] {
        let len = 4 + value.len() + 1;
        request.extend_from_slice(&(len as u16).to_ne_bytes());
        request.extend_from_slice(&kind.to_ne_bytes());
        request.extend_from_slice(value.as_bytes());
        request.resize(request.len() + 1, 0);
        request.resize(request.len().next_multiple_of(4), 0);
    }
    let len = request.len() as u32;
    request[0..4].copy_from_slice(&len.to_ne_bytes());
    request[4..6].copy_from_slice(&NFT_MSG_GETRULE.to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    request[6..8].copy_from_slice(&flags.to_ne_bytes());

    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    assert!(
        fd >= 0,
        "netfilter socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a fresh descriptor, owned from here.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_nl is valid; with its family set it addresses the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: `request` and `kernel` are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
            (&raw const kernel).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    assert_eq!(
        sent,
        request.len() as isize,
        "GETRULE: {}",
        std::io::Error::last_os_error()
    );

    let mut packets = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        assert!(n > 0, "GETRULE answer: {}", std::io::Error::last_os_error());
        let mut data = &buf[..n as usize];
        while data.len() >= 16 {
            let len = u32::from_ne_bytes(data[0..4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(data[4..6].try_into().unwrap());
            let message = &data[..len.min(data.len())];
            data = data.get(len.next_multiple_of(4)..).unwrap_or_default();
            match kind {
                k if k == libc::NLMSG_DONE as u16 => return packets,
                k if k == libc::NLMSG_ERROR as u16 => {
                    let errno = i32::from_ne_bytes(message[16..20].try_into().unwrap());
                    panic!("GETRULE: {}", std::io::Error::from_raw_os_error(-errno));
                }
                NFT_MSG_NEWRULE => {}
                _ => continue,
            }
            for (kind, expressions) in netlink_attributes(&message[20..]) {
                if kind != NFTA_RULE_EXPRESSIONS {
                    continue;
                }
                for (_, element) in
                    netlink_attributes(expressions).filter(|(kind, _)| *kind == NFTA_LIST_ELEM)
                {
                    let parts: Vec<(u16, &[u8])> = netlink_attributes(element).collect();
                    let is_counter = parts
                        .iter()
                        .any(|(k, v)| *k == NFTA_EXPR_NAME && v.starts_with(b"counter\0"));
                    if !is_counter {
                        continue;
                    }
                    let (_, data) = parts
                        .iter()
                        .find(|(k, _)| *k == NFTA_EXPR_DATA)
                        .expect("counter data");
                    let (_, value) = netlink_attributes(data)
                        .find(|(k, _)| *k == NFTA_COUNTER_PACKETS)
                        .expect("counter packets");
                    packets += u64::from_be_bytes(value.try_into().expect("a u64"));
                }
            }
        }
    }
}

/// The whole machine's CPU time in system calls and in softirq, in /proc/stat's ticks
/// (USER_HZ), summed over every CPU. This kernel samples at the timer tick, so it is an
/// estimate of the split, not a measurement of single frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTicks {
    pub system: u64,
    pub softirq: u64,
}

/// The clock ticks /proc/stat counts in per second.
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    assert!(hz > 0, "sysconf(_SC_CLK_TCK)");
    hz as f64
}

/// [`CpuTicks`] now.
pub fn cpu_ticks() -> CpuTicks {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let line = stat.lines().next().expect("the cpu line");
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().expect("a /proc/stat counter"))
        .collect();
    // user nice system idle iowait irq softirq ...
    CpuTicks {
        system: fields[2],
        softirq: fields[6],
    }
}
