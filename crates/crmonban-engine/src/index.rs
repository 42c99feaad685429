//! [`BanIndex`]: the active bans in memory, answering "is this address banned?" without the
//! database. It holds every ban the kernel enforces, recorded or with its record still queued
//! (the kernel first, the record follows), and the expiry task removes what the store expired.
//!
//! Containment ("is 192.0.2.7 inside a banned network?") is answered by masking the address
//! to each prefix length that some network ban uses and looking that network up: at most 33
//! (IPv4) or 129 (IPv6) hash lookups whatever the number of bans, usually one or two.
//!
//! Representation, decided from measurements (docs/BENCHMARKS.md, `daemon_rss_*`): a ban is
//! a 24-byte [`Slot`] (times as `u32` Unix seconds, the offence count, and the ids of its
//! reason, service and source in a shared table of strings) under a key of its own family:
//! an IPv4 address is a `u32`, an IPv6 address 16 bytes, networks (few) an [`IpNet`]. A map
//! entry costs 28 bytes (IPv4) or 40 (IPv6) plus one control byte, against ~200 bytes and
//! three heap strings for a [`Ban`] in a map keyed by [`Target`]. Reasons repeat (a detector
//! writes "3 failures of ssh in 41s"), so the string table stays small; a string is dropped
//! with its last ban. [`Ban`]s are rebuilt on demand for callers.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use crmonban_core::{Ban, BanSource, Target};
use crmonban_firewall::Element;
use foldhash::fast::RandomState;
use ipnet::IpNet;

/// Times are kept as `u32` Unix seconds: up to this one (February 2106). Later times (a ban
/// lasting into the 22nd century) are kept as this; the engine never makes one.
pub(crate) const LAST_SECOND: i64 = u32::MAX as i64 - 1;
/// [`Slot::expires_at`] of a permanent ban.
const PERMANENT: u32 = u32::MAX;
/// [`Slot::service`] of a ban without a service.
const NO_SERVICE: u32 = u32::MAX;

/// One active ban without its target; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    banned_at: u32,
    /// [`PERMANENT`] for a permanent ban.
    expires_at: u32,
    offence: u32,
    reason: u32,
    /// [`NO_SERVICE`] when there is none.
    service: u32,
    source: u32,
}

impl Slot {
    fn is_active_at(&self, now: i64) -> bool {
        self.expires_at == PERMANENT || i64::from(self.expires_at) > now
    }

    fn expires_at(&self) -> Option<i64> {
        (self.expires_at != PERMANENT).then_some(i64::from(self.expires_at))
    }
}

/// A time as a slot keeps it.
fn second(t: i64) -> u32 {
    // In range after the clamp.
    t.clamp(0, LAST_SECOND) as u32
}

/// The strings of the bans (reasons, services, sources), each kept once with a count of the
/// slots that use it.
#[derive(Debug, Default)]
struct Strings {
    ids: HashMap<Arc<str>, u32, RandomState>,
    /// By id: the text and how many slots use it; `None` once free.
    texts: Vec<Option<(Arc<str>, u32)>>,
    free: Vec<u32>,
}

impl Strings {
    /// The id of `text`, counting one more user.
    fn acquire(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.ids.get(text) {
            if let Some((_, users)) = &mut self.texts[id as usize] {
                *users += 1;
            }
            return id;
        }
        let text: Arc<str> = Arc::from(text);
        let entry = Some((Arc::clone(&text), 1));
        let id = match self.free.pop() {
            Some(id) => {
                self.texts[id as usize] = entry;
                id
            }
            None => {
                self.texts.push(entry);
                u32::try_from(self.texts.len() - 1).expect("fewer than 2^32 distinct strings")
            }
        };
        self.ids.insert(text, id);
        id
    }

    /// One user fewer of `id`; the string goes with its last user.
    fn release(&mut self, id: u32) {
        let Some(slot) = self.texts.get_mut(id as usize) else {
            return;
        };
        let Some((text, users)) = slot else {
            return;
        };
        *users -= 1;
        if *users == 0 {
            self.ids.remove(text);
            *slot = None;
            self.free.push(id);
        }
    }

    /// The id of `text` if it is kept, without counting a user.
    fn find(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    fn text(&self, id: u32) -> &str {
        match self.texts.get(id as usize) {
            Some(Some((text, _))) => text,
            _ => "",
        }
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct BanIndex {
    v4: HashMap<u32, Slot, RandomState>,
    v6: HashMap<[u8; 16], Slot, RandomState>,
    nets: HashMap<IpNet, Slot, RandomState>,
    strings: Strings,
    /// How many network bans there are per (is IPv4, prefix length).
    net_prefixes: BTreeMap<(bool, u8), usize>,
}

impl BanIndex {
    #[cfg(test)]
    pub(crate) fn from_bans(bans: impl IntoIterator<Item = Ban>) -> BanIndex {
        let mut index = BanIndex::default();
        for ban in bans {
            index.insert(&ban);
        }
        index
    }

    /// How many bans (expired-but-not-yet-swept ones included).
    pub(crate) fn len(&self) -> usize {
        self.v4.len() + self.v6.len() + self.nets.len()
    }

    /// How many bans are in force at `now`.
    pub(crate) fn count_active(&self, now: i64) -> usize {
        self.slots().filter(|(_, s)| s.is_active_at(now)).count()
    }

    fn slot(&self, target: &Target) -> Option<&Slot> {
        match target {
            Target::Addr(IpAddr::V4(a)) => self.v4.get(&u32::from(*a)),
            Target::Addr(IpAddr::V6(a)) => self.v6.get(&a.octets()),
            Target::Net(net) => self.nets.get(net),
        }
    }

    /// The ban of exactly `target` (perhaps expired but not yet swept).
    pub(crate) fn get(&self, target: &Target) -> Option<Ban> {
        self.slot(target).map(|slot| self.ban(*target, slot))
    }

    /// Adds or replaces the ban of `ban.target`; true when it replaced one.
    pub(crate) fn insert(&mut self, ban: &Ban) -> bool {
        let slot = Slot {
            banned_at: second(ban.banned_at),
            expires_at: ban.expires_at.map_or(PERMANENT, second),
            offence: ban.offence,
            reason: self.strings.acquire(&ban.reason),
            service: ban
                .service
                .as_deref()
                .map_or(NO_SERVICE, |s| self.strings.acquire(s)),
            source: self.strings.acquire(ban.source.as_str()),
        };
        let old = match ban.target {
            Target::Addr(IpAddr::V4(a)) => self.v4.insert(u32::from(a), slot),
            Target::Addr(IpAddr::V6(a)) => self.v6.insert(a.octets(), slot),
            Target::Net(net) => {
                let old = self.nets.insert(net, slot);
                if old.is_none() {
                    *self.net_prefixes.entry(prefix_key(&net)).or_default() += 1;
                }
                old
            }
        };
        if let Some(old) = &old {
            self.release(old);
        }
        old.is_some()
    }

    fn release(&mut self, slot: &Slot) {
        self.strings.release(slot.reason);
        if slot.service != NO_SERVICE {
            self.strings.release(slot.service);
        }
        self.strings.release(slot.source);
    }

    /// Removes the ban of `target`; returns it.
    pub(crate) fn remove(&mut self, target: &Target) -> Option<Ban> {
        let slot = match target {
            Target::Addr(IpAddr::V4(a)) => self.v4.remove(&u32::from(*a)),
            Target::Addr(IpAddr::V6(a)) => self.v6.remove(&a.octets()),
            Target::Net(net) => {
                let slot = self.nets.remove(net)?;
                let key = prefix_key(net);
                if let Some(n) = self.net_prefixes.get_mut(&key) {
                    *n -= 1;
                    if *n == 0 {
                        self.net_prefixes.remove(&key);
                    }
                }
                Some(slot)
            }
        }?;
        let ban = self.ban(*target, &slot);
        self.release(&slot);
        Some(ban)
    }

    /// Removes `ban` only if it is still the ban of its target (not since replaced by a newer
    /// one); true when it did.
    pub(crate) fn remove_exact(&mut self, ban: &Ban) -> bool {
        let Some(slot) = self.slot(&ban.target) else {
            return false;
        };
        let same = slot.banned_at == second(ban.banned_at)
            && slot.expires_at == ban.expires_at.map_or(PERMANENT, second)
            && slot.offence == ban.offence
            && self.strings.find(&ban.reason) == Some(slot.reason)
            && self.strings.find(ban.source.as_str()) == Some(slot.source)
            && match &ban.service {
                Some(service) => self.strings.find(service) == Some(slot.service),
                None => slot.service == NO_SERVICE,
            };
        if same {
            self.remove(&ban.target);
        }
        same
    }

    fn slots(&self) -> impl Iterator<Item = (Target, &Slot)> {
        let v4 = self
            .v4
            .iter()
            .map(|(a, s)| (Target::from(std::net::Ipv4Addr::from(*a)), s));
        let v6 = self
            .v6
            .iter()
            .map(|(a, s)| (Target::from(std::net::Ipv6Addr::from(*a)), s));
        let nets = self.nets.iter().map(|(n, s)| (Target::Net(*n), s));
        v4.chain(v6).chain(nets)
    }

    /// Every banned target, expired-but-not-yet-swept ones included.
    pub(crate) fn targets(&self) -> impl Iterator<Item = Target> + '_ {
        self.slots().map(|(target, _)| target)
    }

    fn ban(&self, target: Target, slot: &Slot) -> Ban {
        Ban {
            target,
            reason: self.strings.text(slot.reason).to_owned(),
            source: self
                .strings
                .text(slot.source)
                .parse()
                .unwrap_or(BanSource::Restore),
            service: (slot.service != NO_SERVICE)
                .then(|| self.strings.text(slot.service).to_owned()),
            banned_at: i64::from(slot.banned_at),
            expires_at: slot.expires_at(),
            offence: slot.offence,
        }
    }

    /// Empties the index; returns each target it held and whether its ban was in force at
    /// `now`.
    pub(crate) fn take_all(&mut self, now: i64) -> Vec<(Target, bool)> {
        let taken = self
            .slots()
            .map(|(target, slot)| (target, slot.is_active_at(now)))
            .collect();
        *self = BanIndex::default();
        taken
    }

    /// True when `target` is banned at `now`, or lies inside a network banned at `now`.
    pub(crate) fn is_banned(&self, target: &Target, now: i64) -> bool {
        let active = |t: &Target| self.slot(t).is_some_and(|s| s.is_active_at(now));
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
        let mut slots: Vec<(Target, &Slot)> = self
            .slots()
            .filter(|(_, slot)| slot.is_active_at(now))
            .collect();
        slots.sort_by_key(|(target, slot)| (slot.banned_at, *target));
        slots
            .into_iter()
            .map(|(target, slot)| self.ban(target, slot))
            .collect()
    }

    /// The expiry of exactly `target`'s ban when it is in force at `now` (a network covering
    /// `target` does not count).
    pub(crate) fn enforced(&self, target: &Target, now: i64) -> Option<crmonban_firewall::Expiry> {
        self.slot(target)
            .filter(|slot| slot.is_active_at(now))
            .map(|slot| Element::until(*target, slot.expires_at()).expiry)
    }

    /// How many bans are in force at `now` per family: IPv4 (addresses and networks), IPv6.
    /// Bans in force at `now`: IPv4 addresses, IPv4 networks, IPv6 addresses, IPv6 networks.
    pub(crate) fn kind_counts(&self, now: i64) -> [usize; 4] {
        let mut counts = [0; 4];
        for (target, slot) in self.slots() {
            if slot.is_active_at(now) {
                counts[usize::from(!target.is_ipv4()) * 2 + usize::from(target.is_net())] += 1;
            }
        }
        counts
    }

    pub(crate) fn family_counts(&self, now: i64) -> [usize; 2] {
        let mut counts = [0, 0];
        for (target, slot) in self.slots() {
            if slot.is_active_at(now) {
                counts[usize::from(!target.is_ipv4())] += 1;
            }
        }
        counts
    }

    /// What the kernel must hold at `now`.
    pub(crate) fn elements(&self, now: i64) -> Vec<Element> {
        self.slots()
            .filter(|(_, slot)| slot.is_active_at(now))
            .map(|(target, slot)| Element::until(target, slot.expires_at()))
            .collect()
    }
}

/// The kernel element of a ban.
pub(crate) fn element_of(ban: &Ban) -> Element {
    Element::until(ban.target, ban.expires_at)
}

fn prefix_key(net: &IpNet) -> (bool, u8) {
    (matches!(net, IpNet::V4(_)), net.prefix_len())
}

/// The end of a ban of `duration` starting at `now`; at least one second away.
pub(crate) fn expires_at(now: i64, duration: crmonban_core::config::BanDuration) -> Option<i64> {
    duration.duration().map(|d| {
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        // The index keeps times up to 2106: a ban lasting past that ends then.
        now.saturating_add(i64::try_from(secs.max(1)).unwrap_or(i64::MAX))
            .min(LAST_SECOND)
    })
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
        assert!(!index.insert(&old));
        let newer = ban("192.0.2.7", Some(900));
        assert!(index.insert(&newer));
        assert!(!index.remove_exact(&old));
        assert_eq!(index.get(&t("192.0.2.7")), Some(newer.clone()));
        assert!(index.remove_exact(&newer));
        assert_eq!(index.count_active(0), 0);
    }

    #[test]
    fn a_ban_is_a_small_slot_and_strings_are_shared_and_freed() {
        assert_eq!(std::mem::size_of::<Slot>(), 24);
        let mut index = BanIndex::default();
        for i in 0..1_000u32 {
            let mut b = ban(&std::net::Ipv4Addr::from(0x0C00_0000 + i).to_string(), None);
            b.reason = format!("3 failures of ssh in {}s", i % 10);
            b.service = Some("ssh".into());
            index.insert(&b);
        }
        // Ten reasons, one service, one source.
        assert_eq!(index.strings.ids.len(), 12);
        let one = t("12.0.0.5");
        let back = index.get(&one).unwrap();
        assert_eq!(back.reason, "3 failures of ssh in 5s");
        assert_eq!(back.service.as_deref(), Some("ssh"));
        assert_eq!(back.source, BanSource::Dbus);
        for target in index.targets().collect::<Vec<_>>() {
            index.remove(&target);
        }
        assert!(
            index.strings.ids.is_empty(),
            "strings go with their last ban"
        );
        assert_eq!(index.len(), 0);
    }

    #[test]
    fn times_past_2106_are_kept_as_2106_and_still_match() {
        let mut index = BanIndex::default();
        let mut far = ban("192.0.2.9", Some(i64::MAX));
        far.banned_at = -5;
        index.insert(&far);
        let back = index.get(&far.target).unwrap();
        assert_eq!(back.expires_at, Some(LAST_SECOND));
        assert_eq!(back.banned_at, 0);
        assert!(
            index.remove_exact(&far),
            "the same ban, as the store gives it back"
        );
    }
}
