//! [`PrefixTable`]: addresses and networks of both families, each with a value, answering the
//! two questions protection asks in O(prefix length): which entry most specifically covers a
//! target, and does any entry overlap it at all (cover it, or lie inside it). Backed by
//! prefix-trie's TreeBitMap, one per family.

use crmonban_core::Target;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

/// See the module docs. Inserting a prefix that is already there keeps the first value.
#[derive(Clone)]
pub struct PrefixTable<T> {
    v4: PrefixMap<Ipv4Net, T>,
    v6: PrefixMap<Ipv6Net, T>,
}

impl<T> Default for PrefixTable<T> {
    fn default() -> Self {
        PrefixTable {
            v4: PrefixMap::new(),
            v6: PrefixMap::new(),
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for PrefixTable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<T> PrefixTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `target` with `value`; false (and the first value kept) when it was there.
    pub fn insert(&mut self, target: Target, value: T) -> bool {
        match target.as_net() {
            IpNet::V4(net) => {
                if self.v4.contains_key(&net) {
                    return false;
                }
                self.v4.insert(net, value);
            }
            IpNet::V6(net) => {
                if self.v6.contains_key(&net) {
                    return false;
                }
                self.v6.insert(net, value);
            }
        }
        true
    }

    /// Entries of both families.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// True when the table has no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most specific entry that covers all of `target` (itself included).
    pub fn covering(&self, target: &Target) -> Option<(Target, &T)> {
        match target.as_net() {
            IpNet::V4(net) => self.v4.get_lpm(&net).map(|(p, v)| (Target::from(p), v)),
            IpNet::V6(net) => self.v6.get_lpm(&net).map(|(p, v)| (Target::from(p), v)),
        }
    }

    /// An entry that shares at least one address with `target`: the most specific one that
    /// covers it, else the first (lowest) one that lies inside it.
    pub fn overlapping(&self, target: &Target) -> Option<(Target, &T)> {
        let covering = self.covering(target);
        // Nothing but the address itself lies inside an address, and `covering` found that.
        if covering.is_some() || !target.is_net() {
            return covering;
        }
        self.inside(target).next()
    }

    /// Every entry that lies inside `target` (itself included), lowest first.
    pub fn inside<'a>(&'a self, target: &Target) -> Box<dyn Iterator<Item = (Target, &'a T)> + 'a> {
        match target.as_net() {
            IpNet::V4(net) => Box::new(self.v4.children(&net).map(|(p, v)| (Target::from(p), v))),
            IpNet::V6(net) => Box::new(self.v6.children(&net).map(|(p, v)| (Target::from(p), v))),
        }
    }

    /// Every entry, IPv4 first, each family in address order.
    pub fn iter(&self) -> impl Iterator<Item = (Target, &T)> {
        self.v4
            .iter()
            .map(|(p, v)| (Target::from(p), v))
            .chain(self.v6.iter().map(|(p, v)| (Target::from(p), v)))
    }
}

impl<T> FromIterator<(Target, T)> for PrefixTable<T> {
    fn from_iter<I: IntoIterator<Item = (Target, T)>>(iter: I) -> Self {
        let mut table = PrefixTable::new();
        for (target, value) in iter {
            table.insert(target, value);
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        Target::parse(s).unwrap()
    }

    fn table(entries: &[&str]) -> PrefixTable<&'static str> {
        let mut table = PrefixTable::new();
        for (i, e) in entries.iter().enumerate() {
            let name: &'static str = Box::leak(format!("e{i}").into_boxed_str());
            table.insert(t(e), name);
        }
        table
    }

    #[test]
    fn the_most_specific_cover_wins_in_both_families() {
        let tab = table(&[
            "10.0.0.0/8",
            "10.1.0.0/16",
            "2001:db8::/32",
            "2001:db8:1::/48",
        ]);
        assert_eq!(
            tab.covering(&t("10.1.2.3")),
            Some((t("10.1.0.0/16"), &"e1"))
        );
        assert_eq!(tab.covering(&t("10.2.2.3")), Some((t("10.0.0.0/8"), &"e0")));
        assert_eq!(
            tab.covering(&t("10.1.0.0/16")),
            Some((t("10.1.0.0/16"), &"e1"))
        );
        assert_eq!(tab.covering(&t("10.0.0.0/7")), None);
        assert_eq!(
            tab.covering(&t("2001:db8:1::9")),
            Some((t("2001:db8:1::/48"), &"e3"))
        );
        assert_eq!(tab.covering(&t("2001:db9::1")), None);
        assert_eq!(tab.covering(&t("11.0.0.1")), None);
        // An IPv4 entry never answers for IPv6, mapped addresses included (Target unmaps).
        assert_eq!(
            tab.covering(&t("::ffff:10.1.2.3")),
            Some((t("10.1.0.0/16"), &"e1"))
        );
    }

    #[test]
    fn overlap_is_either_way_round() {
        let tab = table(&["192.0.2.5", "198.51.100.0/24"]);
        assert_eq!(
            tab.overlapping(&t("192.0.2.0/24")),
            Some((t("192.0.2.5"), &"e0"))
        );
        assert_eq!(
            tab.overlapping(&t("0.0.0.0/0")),
            Some((t("192.0.2.5"), &"e0"))
        );
        assert_eq!(
            tab.overlapping(&t("198.51.100.128/25")),
            Some((t("198.51.100.0/24"), &"e1"))
        );
        assert_eq!(tab.overlapping(&t("192.0.2.6")), None);
        assert_eq!(tab.overlapping(&t("192.0.2.0/30")), None);
        assert_eq!(
            tab.overlapping(&t("192.0.2.4/30")),
            Some((t("192.0.2.5"), &"e0"))
        );
        assert_eq!(tab.inside(&t("0.0.0.0/0")).count(), 2);
    }

    #[test]
    fn a_duplicate_keeps_the_first_value() {
        let mut tab = PrefixTable::new();
        assert!(tab.insert(t("10.0.0.0/8"), 1));
        assert!(!tab.insert(t("10.0.0.0/8"), 2));
        assert_eq!(tab.covering(&t("10.9.9.9")), Some((t("10.0.0.0/8"), &1)));
        assert_eq!(tab.len(), 1);
    }
}
