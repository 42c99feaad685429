//! This host's own addresses, read from the kernel with `getifaddrs(3)` (through nix). The engine never bans
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
use std::net::IpAddr;

/// Every address configured on an interface of this host (in the calling thread's network
/// namespace), sorted, without duplicates.
pub fn host_addresses() -> io::Result<Vec<IpAddr>> {
    let interfaces = nix::ifaddrs::getifaddrs().map_err(io::Error::from)?;
    let found: BTreeSet<IpAddr> = interfaces
        .filter_map(|interface| interface.address)
        .filter_map(|address| {
            if let Some(v4) = address.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect();
    Ok(found.into_iter().collect())
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
    use std::net::Ipv4Addr;

    #[test]
    fn reads_the_loopback_address() {
        let addrs = host_addresses().expect("getifaddrs");
        assert!(
            addrs.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "127.0.0.1 not among {addrs:?}"
        );
    }
}
