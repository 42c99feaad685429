//! The special-purpose ranges no host may ban, whatever the configuration says.

use std::net::IpAddr;
use std::sync::LazyLock;

use crmonban_core::Target;

/// A range that is never banned, with how to name what it holds.
pub(crate) struct Reserved {
    pub range: Target,
    /// "a loopback address", for an address inside the range.
    pub one: &'static str,
    /// "loopback addresses", for a network that overlaps it.
    pub many: &'static str,
}

pub(crate) static RESERVED: LazyLock<Vec<Reserved>> = LazyLock::new(|| {
    [
        ("127.0.0.0/8", "a loopback address", "loopback addresses"),
        ("::1", "a loopback address", "loopback addresses"),
        (
            "0.0.0.0",
            "the unspecified address",
            "the unspecified address",
        ),
        ("::", "the unspecified address", "the unspecified address"),
        (
            "169.254.0.0/16",
            "a link-local address",
            "link-local addresses",
        ),
        ("fe80::/10", "a link-local address", "link-local addresses"),
        ("224.0.0.0/4", "a multicast address", "multicast addresses"),
        ("ff00::/8", "a multicast address", "multicast addresses"),
        (
            "255.255.255.255",
            "the limited broadcast address",
            "the limited broadcast address",
        ),
    ]
    .into_iter()
    .map(|(range, one, many)| Reserved {
        range: Target::parse(range).expect("built-in reserved range"),
        one,
        many,
    })
    .collect()
});

/// Whether `addr` lies in one of [`RESERVED`]'s ranges, from the address's own bits: the
/// common case (an ordinary address) costs a few comparisons, not nine network tests.
fn is_reserved_addr(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            a.is_loopback()
                || a.is_unspecified()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_broadcast()
        }
        IpAddr::V6(a) => {
            a.is_loopback() || a.is_unspecified() || a.is_unicast_link_local() || a.is_multicast()
        }
    }
}

/// Why `target` touches a reserved range, or `None`.
pub(crate) fn reserved_why(target: &Target) -> Option<String> {
    if let Target::Addr(addr) = target
        && !is_reserved_addr(*addr)
    {
        return None;
    }
    RESERVED.iter().find_map(|reserved| {
        if reserved.range.covers(target) {
            Some(match target {
                Target::Addr(_) => format!("{target} is {}", reserved.one),
                Target::Net(_) => {
                    format!("{target} lies in {} ({})", reserved.range, reserved.many)
                }
            })
        } else if target.covers(&reserved.range) {
            Some(format!(
                "{target} contains {} ({})",
                reserved.range, reserved.many
            ))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quick test of an address agrees with the table at every range's edges.
    #[test]
    fn the_address_fast_path_matches_the_ranges() {
        for reserved in RESERVED.iter() {
            let (first, last) = reserved.range.bounds();
            let v4 = reserved.range.is_ipv4();
            let addr = |n: u128| -> IpAddr {
                if v4 {
                    IpAddr::from(std::net::Ipv4Addr::from(n as u32))
                } else {
                    IpAddr::from(std::net::Ipv6Addr::from(n))
                }
            };
            let max = if v4 { u128::from(u32::MAX) } else { u128::MAX };
            for inside in [first, last, first + (last - first) / 2] {
                assert!(is_reserved_addr(addr(inside)), "{}", addr(inside));
                assert!(reserved_why(&Target::from(addr(inside))).is_some());
            }
            for outside in [first.checked_sub(1), (last < max).then(|| last + 1)]
                .into_iter()
                .flatten()
            {
                let a = addr(outside);
                let in_another = RESERVED.iter().any(|r| r.range.contains(a));
                assert_eq!(is_reserved_addr(a), in_another, "{a}");
                assert_eq!(reserved_why(&Target::from(a)).is_some(), in_another, "{a}");
            }
        }
    }
}
