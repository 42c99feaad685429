//! Turning banned networks into the elements of an nftables interval set. The kernel refuses
//! overlapping elements, so networks are merged first: a network inside another one with a
//! later (or equal) expiry disappears, adjacent networks with the same expiry join, and where
//! a longer-lived network sits inside a shorter-lived one the address space is split so that
//! every address keeps the latest expiry of the networks that cover it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::Expiry;

/// A run of addresses `lo..=hi` of one family with one expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// The first address of the run.
    pub lo: IpAddr,
    /// The last address of the run (inclusive), of the same family as `lo`.
    pub hi: IpAddr,
    /// The latest expiry of the networks that cover these addresses.
    pub expiry: Expiry,
}

impl Interval {
    /// The interval as one CIDR when it is exactly one.
    pub fn as_cidr(&self) -> Option<IpNet> {
        let (lo, hi, bits) = match (self.lo, self.hi) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
            _ => return None,
        };
        let size = hi.wrapping_sub(lo).wrapping_add(1); // 0 means the whole v6 space
        let host_bits = if size == 0 {
            128
        } else {
            size.trailing_zeros()
        };
        let aligned = size == 0 || (size.is_power_of_two() && lo & (size - 1) == 0);
        if !aligned || host_bits > bits {
            return None;
        }
        IpNet::new(self.lo, (bits - host_bits) as u8).ok()
    }
}

/// Merges networks (any mix of families; single addresses allowed) into non-overlapping
/// intervals per family, sorted by address. Returns the intervals and how many fewer elements
/// they are than the networks given (networks absorbed or joined).
pub fn merge_networks(nets: &[(IpNet, Expiry)]) -> (Vec<Interval>, usize) {
    let mut out = Vec::new();
    let v4: Vec<_> = nets
        .iter()
        .filter(|(n, _)| matches!(n, IpNet::V4(_)))
        .collect();
    let v6: Vec<_> = nets
        .iter()
        .filter(|(n, _)| matches!(n, IpNet::V6(_)))
        .collect();
    for (family, bits) in [(v4, 32u32), (v6, 128u32)] {
        out.extend(merge_family(&family, bits));
    }
    // Splitting can produce more intervals than networks; merging fewer.
    let absorbed = nets.len().saturating_sub(out.len());
    (out, absorbed)
}

fn merge_family(nets: &[&(IpNet, Expiry)], bits: u32) -> Vec<Interval> {
    // Sweep over boundary points; `active` counts covering networks per expiry, and the
    // largest key is the expiry that applies (Never sorts after every At).
    let max = if bits == 32 {
        u32::MAX as u128
    } else {
        u128::MAX
    };
    let mut events: Vec<(u128, bool, Expiry)> = Vec::with_capacity(nets.len() * 2);
    for (net, expiry) in nets.iter().map(|p| (p.0, p.1)) {
        let (lo, hi) = bounds(net);
        events.push((lo, true, expiry));
        if hi < max {
            events.push((hi + 1, false, expiry));
        }
    }
    events.sort_by_key(|e| e.0);
    let mut active: BTreeMap<Expiry, usize> = BTreeMap::new();
    let mut pieces: Vec<(u128, u128, Expiry)> = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let pos = events[i].0;
        while i < events.len() && events[i].0 == pos {
            let (_, start, expiry) = events[i];
            if start {
                *active.entry(expiry).or_default() += 1;
            } else if let Some(count) = active.get_mut(&expiry) {
                *count -= 1;
                if *count == 0 {
                    active.remove(&expiry);
                }
            }
            i += 1;
        }
        if let Some((&expiry, _)) = active.last_key_value() {
            let end = events.get(i).map_or(max, |next| next.0 - 1);
            match pieces.last_mut() {
                Some(last) if last.2 == expiry && last.1.checked_add(1) == Some(pos) => {
                    last.1 = end
                }
                _ => pieces.push((pos, end, expiry)),
            }
        }
    }
    pieces
        .into_iter()
        .map(|(lo, hi, expiry)| Interval {
            lo: to_addr(lo, bits),
            hi: to_addr(hi, bits),
            expiry,
        })
        .collect()
}

fn bounds(net: IpNet) -> (u128, u128) {
    match net {
        IpNet::V4(n) => (
            u32::from(n.network()) as u128,
            u32::from(n.broadcast()) as u128,
        ),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    }
}

fn to_addr(value: u128, bits: u32) -> IpAddr {
    if bits == 32 {
        IpAddr::V4(Ipv4Addr::from(value as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn show(ivs: &[Interval]) -> Vec<String> {
        ivs.iter()
            .map(|iv| {
                let span = iv
                    .as_cidr()
                    .map_or(format!("{}-{}", iv.lo, iv.hi), |c| c.to_string());
                match iv.expiry {
                    Expiry::Never => span,
                    Expiry::At(t) => format!("{span}@{t}"),
                }
            })
            .collect()
    }

    #[test]
    fn contained_networks_are_absorbed() {
        let (ivs, absorbed) = merge_networks(&[
            (n("10.0.0.0/8"), Expiry::Never),
            (n("10.1.0.0/16"), Expiry::At(100)),
            (n("10.1.2.0/24"), Expiry::Never),
        ]);
        assert_eq!(show(&ivs), ["10.0.0.0/8"]);
        assert_eq!(absorbed, 2);
    }

    #[test]
    fn adjacent_networks_with_the_same_expiry_join() {
        let (ivs, _) = merge_networks(&[
            (n("192.0.2.0/25"), Expiry::At(50)),
            (n("192.0.2.128/25"), Expiry::At(50)),
            (n("198.51.100.0/24"), Expiry::At(50)),
        ]);
        assert_eq!(show(&ivs), ["192.0.2.0/24@50", "198.51.100.0/24@50"]);
    }

    #[test]
    fn longer_lived_inner_network_splits_the_outer_one() {
        let (ivs, absorbed) = merge_networks(&[
            (n("10.0.0.0/8"), Expiry::At(100)),
            (n("10.1.0.0/16"), Expiry::Never),
        ]);
        assert_eq!(
            show(&ivs),
            [
                "10.0.0.0/16@100",
                "10.1.0.0/16",
                "10.2.0.0-10.255.255.255@100"
            ]
        );
        assert_eq!(absorbed, 0);
    }

    #[test]
    fn families_stay_apart_and_edges_do_not_overflow() {
        let (ivs, _) = merge_networks(&[
            (n("::/0"), Expiry::Never),
            (n("0.0.0.0/0"), Expiry::At(7)),
            (n("2001:db8::/32"), Expiry::At(9)),
            (n("255.255.255.0/24"), Expiry::Never),
        ]);
        assert_eq!(
            show(&ivs),
            ["0.0.0.0-255.255.254.255@7", "255.255.255.0/24", "::/0"]
        );
    }

    #[test]
    fn ipv6_networks_merge() {
        let (ivs, _) = merge_networks(&[
            (n("2001:db8::/33"), Expiry::Never),
            (n("2001:db8:8000::/33"), Expiry::Never),
        ]);
        assert_eq!(show(&ivs), ["2001:db8::/32"]);
    }
}
