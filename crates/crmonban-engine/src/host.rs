//! This host's own addresses, read from the kernel with `getifaddrs(3)`. The engine never bans
//! them: a detector fooled by a forged log line, or an operator's typo, must not cut the host
//! off from itself or its admin.
//!
//! The answer depends on the network namespace of the calling thread, which is why the engine
//! asks its firewall thread (the one that inherited the embedder's namespace) to read it.
//!
//! [`AddressEvents`] tells the engine when to read them again: a netlink socket subscribed to
//! the kernel's address notifications (`RTMGRP_IPV4_IFADDR`, `RTMGRP_IPV6_IFADDR`), so that an
//! address added to an interface is protected within milliseconds rather than at the next
//! poll. The messages are not parsed (any of them means "read the list again"), so no netlink
//! framing is written here.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Every address configured on an interface of this host (in the calling thread's network
/// namespace), sorted, without duplicates.
pub fn host_addresses() -> io::Result<Vec<IpAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `head` on success; we free it below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = BTreeSet::new();
    let mut cursor = head;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned, not yet freed.
        let entry = unsafe { &*cursor };
        // SAFETY: `ifa_addr` is null or points to a sockaddr of the family it names.
        if let Some(addr) = unsafe { sockaddr_to_ip(entry.ifa_addr) } {
            found.insert(addr);
        }
        cursor = entry.ifa_next;
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(found.into_iter().collect())
}

/// The IP address in `sa`, when it is an IPv4 or IPv6 socket address.
///
/// # Safety
/// `sa` is null or points to a valid `sockaddr` whose storage matches its `sa_family`.
unsafe fn sockaddr_to_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: non-null and valid per the contract.
    let family = i32::from(unsafe { (*sa).sa_family });
    match family {
        libc::AF_INET => {
            // SAFETY: AF_INET addresses are stored as sockaddr_in.
            let sin = unsafe { &*sa.cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            // SAFETY: AF_INET6 addresses are stored as sockaddr_in6.
            let sin6 = unsafe { &*sa.cast::<libc::sockaddr_in6>() };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

/// A subscription to the kernel's address changes in the creating thread's network namespace.
pub(crate) struct AddressEvents {
    fd: std::os::fd::OwnedFd,
}

const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;

impl AddressEvents {
    /// Subscribes (in the calling thread's network namespace). `wait` then returns at every
    /// change, or after `poll` without one.
    pub(crate) fn subscribe(poll: std::time::Duration) -> io::Result<AddressEvents> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscall; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        use std::os::fd::AsRawFd;
        // SAFETY: an all-zero sockaddr_nl is valid; family and groups are set below.
        let mut local: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        local.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        local.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
        // SAFETY: `local` is a live sockaddr_nl of the size passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const local).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let timeout = libc::timeval {
            tv_sec: poll.as_secs().try_into().unwrap_or(libc::time_t::MAX),
            tv_usec: poll.subsec_micros().into(),
        };
        // SAFETY: fd is valid; timeout is a live timeval of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(AddressEvents { fd })
    }

    /// Blocks until an address changes (true) or the poll period passes (false). A lost
    /// notification (the socket's buffer overflowed) counts as a change.
    pub(crate) fn wait(&self) -> io::Result<bool> {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 16 * 1024];
        // SAFETY: `buf` is writable for its whole length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return Ok(true);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(false),
            Some(libc::ENOBUFS) => Ok(true),
            _ => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_loopback_address() {
        let addrs = host_addresses().expect("getifaddrs");
        assert!(
            addrs.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "127.0.0.1 not among {addrs:?}"
        );
    }
}
