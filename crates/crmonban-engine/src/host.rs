//! This host's own addresses, read from the kernel with `getifaddrs(3)`. The engine never bans
//! them: a detector fooled by a forged log line, or an operator's typo, must not cut the host
//! off from itself or its admin.
//!
//! The answer depends on the network namespace of the calling thread, which is why the engine
//! asks its firewall thread (the one that inherited the embedder's namespace) to read it.

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
