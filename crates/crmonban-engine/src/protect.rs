//! Which targets are never banned, whatever asks (DESIGN.md §7): special-purpose ranges
//! (loopback, unspecified, link-local, multicast, limited broadcast), this host's own
//! addresses and whitelisted networks. A network target is refused when it overlaps any of
//! them: banning 10.0.0.0/8 on a host that is 10.1.2.3, or 0.0.0.0/0, would lock the admin
//! out as surely as banning the address itself.

use std::net::IpAddr;
use std::sync::LazyLock;

use crmonban_core::Target;

use crate::EngineError;

/// A range that is never banned, with how to name what it holds.
struct Reserved {
    range: Target,
    /// "a loopback address", for an address inside the range.
    one: &'static str,
    /// "loopback addresses", for a network that overlaps it.
    many: &'static str,
}

static RESERVED: LazyLock<Vec<Reserved>> = LazyLock::new(|| {
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

/// True when the two targets share at least one address (CIDRs are nested or disjoint).
pub(crate) fn overlaps(a: &Target, b: &Target) -> bool {
    a.covers(b) || b.covers(a)
}

/// The engine's view of what may not be banned; refreshed as host addresses and the
/// whitelist change.
#[derive(Clone, Debug, Default)]
pub(crate) struct Protection {
    host: Vec<IpAddr>,
    whitelist: Vec<Target>,
}

impl Protection {
    pub(crate) fn new(host: Vec<IpAddr>, whitelist: Vec<Target>) -> Protection {
        let mut protection = Protection {
            host: Vec::new(),
            whitelist,
        };
        protection.set_host_addresses(host);
        protection
    }

    /// Replaces the host's addresses; true when the set changed.
    pub(crate) fn set_host_addresses(&mut self, mut host: Vec<IpAddr>) -> bool {
        host.sort_unstable();
        host.dedup();
        let changed = host != self.host;
        self.host = host;
        changed
    }

    /// The host's addresses as a short human list (the first few, then how many more).
    pub(crate) fn host_addresses_summary(&self) -> String {
        const SHOWN: usize = 8;
        let mut list: Vec<String> = self
            .host
            .iter()
            .take(SHOWN)
            .map(|a| a.to_string())
            .collect();
        if self.host.len() > SHOWN {
            list.push(format!("and {} more", self.host.len() - SHOWN));
        }
        list.join(", ")
    }

    pub(crate) fn set_whitelist(&mut self, whitelist: Vec<Target>) {
        self.whitelist = whitelist;
    }

    /// Ok when `target` may be banned; otherwise the refusal, naming the target and why.
    pub(crate) fn check(&self, target: &Target) -> Result<(), EngineError> {
        let refuse = |why: String| {
            Err(EngineError::Protected {
                target: *target,
                why,
            })
        };
        for reserved in RESERVED.iter() {
            if reserved.range.covers(target) {
                return refuse(match target {
                    Target::Addr(_) => format!("{target} is {}", reserved.one),
                    Target::Net(_) => {
                        format!("{target} lies in {} ({})", reserved.range, reserved.many)
                    }
                });
            }
            if target.covers(&reserved.range) {
                return refuse(format!(
                    "{target} contains {} ({})",
                    reserved.range, reserved.many
                ));
            }
        }
        if let Some(addr) = self.host.iter().find(|a| target.contains(**a)) {
            return refuse(match target {
                Target::Addr(_) => format!("{target} is an address of this host"),
                Target::Net(_) => format!("{target} contains this host's address {addr}"),
            });
        }
        if let Some(entry) = self.whitelist.iter().find(|w| overlaps(w, target)) {
            return Err(EngineError::Whitelisted {
                target: *target,
                entry: *entry,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        Target::parse(s).unwrap()
    }

    fn why(p: &Protection, s: &str) -> String {
        p.check(&t(s)).unwrap_err().to_string()
    }

    #[test]
    fn special_ranges_are_refused_with_their_name() {
        let p = Protection::default();
        assert!(why(&p, "127.0.0.1").ends_with("127.0.0.1 is a loopback address"));
        assert!(why(&p, "::1").ends_with("::1 is a loopback address"));
        assert!(why(&p, "fe80::1").ends_with("fe80::1 is a link-local address"));
        assert!(why(&p, "169.254.3.4").contains("link-local"));
        assert!(why(&p, "224.0.0.1").ends_with("224.0.0.1 is a multicast address"));
        assert!(why(&p, "ff02::1").contains("multicast"));
        assert!(why(&p, "0.0.0.0").contains("unspecified"));
        assert!(why(&p, "::").contains("unspecified"));
        assert!(why(&p, "255.255.255.255").contains("limited broadcast"));
        assert!(why(&p, "127.1.0.0/16").contains("lies in 127.0.0.0/8 (loopback addresses)"));
        assert!(why(&p, "0.0.0.0/0").contains("0.0.0.0/0 contains"));
        assert!(why(&p, "::/0").contains("::/0 contains"));
        assert!(why(&p, "126.0.0.0/7").contains("contains 127.0.0.0/8"));
        p.check(&t("192.0.2.7")).unwrap();
        p.check(&t("2001:db8::/32")).unwrap();
        p.check(&t("192.0.0.0/3")).unwrap();
        assert!(
            why(&p, "128.0.0.0/1")
                .contains("128.0.0.0/1 contains 169.254.0.0/16 (link-local addresses)")
        );
    }

    #[test]
    fn host_addresses_and_networks_around_them_are_refused() {
        let p = Protection::new(vec!["10.1.2.3".parse().unwrap()], vec![]);
        assert!(why(&p, "10.1.2.3").ends_with("10.1.2.3 is an address of this host"));
        assert!(
            why(&p, "10.0.0.0/8").ends_with("10.0.0.0/8 contains this host's address 10.1.2.3")
        );
        p.check(&t("10.2.0.0/16")).unwrap();
    }

    #[test]
    fn a_refresh_reports_only_real_changes_and_the_summary_stays_short() {
        let a = |s: &str| -> IpAddr { s.parse().unwrap() };
        let mut p = Protection::new(vec![a("10.0.0.2"), a("fd77::2")], vec![]);
        assert_eq!(p.host_addresses_summary(), "10.0.0.2, fd77::2");
        assert!(!p.set_host_addresses(vec![a("fd77::2"), a("10.0.0.2"), a("fd77::2")]));
        assert!(p.set_host_addresses(vec![a("10.0.0.2"), a("fd77::2"), a("10.77.0.2")]));
        why(&p, "10.77.0.2");
        let many: Vec<IpAddr> = (1..=20u8).map(|i| a(&format!("10.9.0.{i}"))).collect();
        assert!(p.set_host_addresses(many));
        assert!(
            p.host_addresses_summary()
                .ends_with("10.9.0.8, and 12 more"),
            "{}",
            p.host_addresses_summary()
        );
    }

    #[test]
    fn whitelist_overlaps_either_way() {
        let p = Protection::new(vec![], vec![t("192.0.2.0/24")]);
        assert!(matches!(
            p.check(&t("192.0.2.9")),
            Err(EngineError::Whitelisted { entry, .. }) if entry == t("192.0.2.0/24")
        ));
        assert!(
            why(&p, "192.0.2.0/24").ends_with("192.0.2.0/24 is whitelisted (entry 192.0.2.0/24)")
        );
        assert!(why(&p, "192.0.0.0/16").contains("contains the whitelisted 192.0.2.0/24"));
        p.check(&t("192.0.3.1")).unwrap();
    }
}
