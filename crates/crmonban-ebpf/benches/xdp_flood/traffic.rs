//! The flood: pre-built minimum-size frames and the thread that sends them through an
//! AF_PACKET socket with `sendmmsg`.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crmonban_testutil::NetNs;

/// The UDP port the frames are sent to (a socket there in `b` never reads).
pub const PORT: u16 = 9_000;
/// Ethernet (14) + IPv4 (20) + UDP (8) + 18 bytes of payload: the 60-byte minimum frame, 64
/// on the wire with the FCS.
pub const FRAME_LEN: usize = 60;
/// Frames per `sendmmsg`; each differs in source port and IP id.
pub const BATCH: usize = 64;

/// `aa:bb:cc:dd:ee:ff` as bytes.
pub fn mac(text: &str) -> [u8; 6] {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex MAC byte"))
        .collect();
    bytes.try_into().expect("a 6-byte MAC")
}

/// The ones' complement sum of the IPv4 header.
fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `BATCH` frames from `src` to `dst`, UDP to [`PORT`] with a zero (absent) UDP checksum.
pub fn build_frames(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> Vec<[u8; FRAME_LEN]> {
    (0..BATCH as u16)
        .map(|k| {
            let mut f = [0u8; FRAME_LEN];
            f[0..6].copy_from_slice(&dst_mac);
            f[6..12].copy_from_slice(&src_mac);
            f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            let ip = &mut f[14..34];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((FRAME_LEN - 14) as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&k.to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = 64;
            ip[9] = 17;
            ip[12..16].copy_from_slice(&src.octets());
            ip[16..20].copy_from_slice(&dst.octets());
            let checksum = ipv4_checksum(ip);
            ip[10..12].copy_from_slice(&checksum.to_be_bytes());
            let udp = &mut f[34..42];
            udp[0..2].copy_from_slice(&(40_000 + k).to_be_bytes());
            udp[2..4].copy_from_slice(&PORT.to_be_bytes());
            udp[4..6].copy_from_slice(&((FRAME_LEN - 34) as u16).to_be_bytes());
            f
        })
        .collect()
}

/// Sends `frames` over and over on `interface` (of the calling thread's namespace) until
/// `stop`, adding the frames the kernel accepted to `sent`.
pub fn flood(interface: &str, frames: &[[u8; FRAME_LEN]], stop: &AtomicBool, sent: &AtomicU64) {
    let ifindex = nix::net::if_::if_nametoindex(interface).expect("sender's interface");
    // Protocol 0: the socket only sends, so the kernel hands it none of the outgoing frames.
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    assert!(
        fd >= 0,
        "AF_PACKET socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a fresh descriptor, owned from here.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set below.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: `addr` is a sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(
        rc,
        0,
        "bind to {interface}: {}",
        std::io::Error::last_os_error()
    );
    let mut iovecs: Vec<libc::iovec> = frames
        .iter()
        .map(|f| libc::iovec {
            iov_base: f.as_ptr() as *mut libc::c_void,
            iov_len: f.len(),
        })
        .collect();
    let mut messages: Vec<libc::mmsghdr> = iovecs
        .iter_mut()
        .map(|iov| {
            // SAFETY: an all-zero mmsghdr is valid (no name, no control data).
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `messages` points at `iovecs` and `frames`, all alive and unchanged.
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                messages.as_mut_ptr(),
                messages.len() as u32,
                0,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            // A full queue refuses the frame: send again.
            if !matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN)) {
                panic!("sendmmsg on {interface}: {e}");
            }
            continue;
        }
        sent.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The sending side: a thread in namespace `a` flooding its veth end.
pub struct Sender<'a> {
    pub ns: &'a NetNs,
    pub interface: String,
    pub frames: Vec<[u8; FRAME_LEN]>,
    /// Frames the kernel accepted from the sender, every pass together.
    pub sent: AtomicU64,
}

impl Sender<'_> {
    /// Floods for `warm_up + window` and returns `probe` (run on the calling thread) read at
    /// both ends of the window.
    pub fn flood_window<T>(
        &self,
        warm_up: Duration,
        window: Duration,
        probe: impl Fn() -> T,
    ) -> (T, T) {
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let sender = s.spawn(|| {
                self.ns.enter_current_thread();
                flood(&self.interface, &self.frames, &stop, &self.sent);
            });
            std::thread::sleep(warm_up);
            let start = probe();
            std::thread::sleep(window);
            let end = probe();
            stop.store(true, Ordering::Relaxed);
            sender.join().expect("sender thread");
            (start, end)
        })
    }
}
