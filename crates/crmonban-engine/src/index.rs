//! [`BanIndex`]: the active bans in memory, answering "is this address banned?" without the
//! database. It mirrors the store: the engine changes it only after the store accepted a
//! change, and the expiry task removes what the store expired.
//!
//! Containment ("is 192.0.2.7 inside a banned network?") is answered by masking the address
//! to each prefix length that some network ban uses and looking that network up: at most 33
//! (IPv4) or 129 (IPv6) hash lookups whatever the number of bans, usually one or two.

use std::collections::{BTreeMap, HashMap};

use crmonban_core::{Ban, Target};
use crmonban_firewall::Element;
use ipnet::IpNet;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct BanIndex {
    bans: HashMap<Target, Ban>,
    /// How many network bans there are per (is IPv4, prefix length).
    net_prefixes: BTreeMap<(bool, u8), usize>,
}

impl BanIndex {
    pub(crate) fn from_bans(bans: impl IntoIterator<Item = Ban>) -> BanIndex {
        let mut index = BanIndex::default();
        for ban in bans {
            index.insert(ban);
        }
        index
    }

    /// How many bans are in force at `now`.
    pub(crate) fn count_active(&self, now: i64) -> usize {
        self.bans.values().filter(|b| b.is_active_at(now)).count()
    }

    pub(crate) fn get(&self, target: &Target) -> Option<&Ban> {
        self.bans.get(target)
    }

    /// Adds or replaces the ban of `ban.target`; returns the one it replaced.
    pub(crate) fn insert(&mut self, ban: Ban) -> Option<Ban> {
        let key = prefix_key(&ban.target);
        let old = self.bans.insert(ban.target, ban);
        if old.is_none()
            && let Some(key) = key
        {
            *self.net_prefixes.entry(key).or_default() += 1;
        }
        old
    }

    pub(crate) fn remove(&mut self, target: &Target) -> Option<Ban> {
        let old = self.bans.remove(target)?;
        if let Some(key) = prefix_key(target)
            && let Some(n) = self.net_prefixes.get_mut(&key)
        {
            *n -= 1;
            if *n == 0 {
                self.net_prefixes.remove(&key);
            }
        }
        Some(old)
    }

    /// Removes `ban` only if it is still the ban of its target (not since replaced by a newer
    /// one); true when it did.
    pub(crate) fn remove_exact(&mut self, ban: &Ban) -> bool {
        if self.bans.get(&ban.target) == Some(ban) {
            self.remove(&ban.target);
            true
        } else {
            false
        }
    }

    /// Every banned target, expired-but-not-yet-swept ones included.
    pub(crate) fn targets(&self) -> impl Iterator<Item = &Target> {
        self.bans.keys()
    }

    /// Empties the index and returns what it held.
    pub(crate) fn take_all(&mut self) -> Vec<Ban> {
        self.net_prefixes.clear();
        self.bans.drain().map(|(_, ban)| ban).collect()
    }

    /// True when `target` is banned at `now`, or lies inside a network banned at `now`.
    pub(crate) fn is_banned(&self, target: &Target, now: i64) -> bool {
        let active = |t: &Target| self.bans.get(t).is_some_and(|b| b.is_active_at(now));
        if active(target) {
            return true;
        }
        let net = target.as_net();
        let ipv4 = target.is_ipv4();
        self.net_prefixes
            .keys()
            .filter(|(v4, len)| *v4 == ipv4 && *len < net.prefix_len())
            .any(|(_, len)| {
                IpNet::new(net.addr(), *len).is_ok_and(|wider| active(&Target::from(wider.trunc())))
            })
    }

    /// Every ban in force at `now`, oldest first.
    pub(crate) fn active(&self, now: i64) -> Vec<Ban> {
        let mut bans: Vec<Ban> = self
            .bans
            .values()
            .filter(|b| b.is_active_at(now))
            .cloned()
            .collect();
        bans.sort_by_key(|b| (b.banned_at, b.target));
        bans
    }

    /// What the kernel must hold at `now`.
    pub(crate) fn elements(&self, now: i64) -> Vec<Element> {
        self.bans
            .values()
            .filter(|b| b.is_active_at(now))
            .map(element_of)
            .collect()
    }
}

/// The kernel element of a ban.
pub(crate) fn element_of(ban: &Ban) -> Element {
    Element::until(ban.target, ban.expires_at)
}

fn prefix_key(target: &Target) -> Option<(bool, u8)> {
    match target {
        Target::Net(net) => Some((target.is_ipv4(), net.prefix_len())),
        Target::Addr(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crmonban_core::BanSource;

    fn t(s: &str) -> Target {
        Target::parse(s).unwrap()
    }

    fn ban(s: &str, expires_at: Option<i64>) -> Ban {
        Ban {
            target: t(s),
            reason: "test".into(),
            source: BanSource::Dbus,
            service: None,
            banned_at: 100,
            expires_at,
            offence: 1,
        }
    }

    #[test]
    fn containment_in_banned_networks() {
        let mut index = BanIndex::from_bans([
            ban("192.0.2.7", None),
            ban("10.0.0.0/8", None),
            ban("2001:db8::/32", Some(1_000)),
        ]);
        assert!(index.is_banned(&t("192.0.2.7"), 500));
        assert!(!index.is_banned(&t("192.0.2.8"), 500));
        assert!(index.is_banned(&t("10.9.8.7"), 500));
        assert!(index.is_banned(&t("10.9.0.0/16"), 500));
        assert!(index.is_banned(&t("10.0.0.0/8"), 500));
        assert!(!index.is_banned(&t("10.0.0.0/7"), 500));
        assert!(index.is_banned(&t("2001:db8:1::5"), 500));
        assert!(!index.is_banned(&t("2001:db8:1::5"), 1_000), "expired");
        assert!(
            index.is_banned(&t("::ffff:10.0.0.1"), 500),
            "mapped IPv6 is IPv4"
        );
        assert_eq!(index.active(500).len(), 3);
        assert_eq!(index.active(1_000).len(), 2);
        assert_eq!(index.elements(500).len(), 3);

        index.remove(&t("10.0.0.0/8"));
        assert!(!index.is_banned(&t("10.9.8.7"), 500));
        assert!(!index.net_prefixes.contains_key(&(true, 8)));
    }

    #[test]
    fn remove_exact_keeps_a_newer_ban() {
        let mut index = BanIndex::default();
        let old = ban("192.0.2.7", Some(200));
        index.insert(old.clone());
        let newer = ban("192.0.2.7", Some(900));
        assert_eq!(index.insert(newer.clone()), Some(old.clone()));
        assert!(!index.remove_exact(&old));
        assert_eq!(index.get(&t("192.0.2.7")), Some(&newer));
        assert!(index.remove_exact(&newer));
        assert_eq!(index.count_active(0), 0);
    }
}
