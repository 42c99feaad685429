//! [`Offences`]: how many times each target has been banned, kept in memory so that a ban
//! never waits for the database to learn its offence count (which drives escalation).
//!
//! Loaded once at start from the store's history ([`Store::offence_counts`]) and bumped by the
//! engine after each ban it records, under that target's stripe lock. Keys are 64-bit hashes
//! of the target under a per-process random key, not the targets themselves: ~20-40 bytes per
//! banned target instead of ~40-60, so a history of a million attackers costs tens of MB. Two
//! targets sharing a hash would share a count: with a million targets known, a new one does so
//! with a chance of about one in 10^13, and the cost is a ban longer than it should be.
//!
//! [`Store::offence_counts`]: crmonban_store::Store::offence_counts

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use crmonban_core::Target;

#[derive(Debug, Default)]
pub(crate) struct Offences {
    keys: RandomState,
    /// Keyed by the keyed hash itself: hashing it again would add nothing.
    counts: HashMap<u64, u32, BuildHasherDefault<KeyIsHash>>,
}

/// The hasher of [`Offences::counts`]: the key is already a keyed hash, so it is its own hash.
#[derive(Default)]
struct KeyIsHash(u64);

impl Hasher for KeyIsHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; this keeps any other use correct, if slow.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Offences {
    #[cfg(test)]
    pub(crate) fn from_counts(counts: impl IntoIterator<Item = (Target, u32)>) -> Offences {
        let mut offences = Offences::default();
        for (target, n) in counts {
            offences.add(&target, n);
        }
        offences
    }

    fn key(&self, target: &Target) -> u64 {
        self.keys.hash_one(target)
    }

    /// Counts `n` more bans of `target` (loading the history at start).
    pub(crate) fn add(&mut self, target: &Target, n: u32) {
        let key = self.key(target);
        let count = self.counts.entry(key).or_default();
        *count = count.saturating_add(n);
    }

    /// How many bans of `target` there have been.
    pub(crate) fn get(&self, target: &Target) -> u32 {
        self.counts.get(&self.key(target)).copied().unwrap_or(0)
    }

    /// Counts one more ban of `target`.
    pub(crate) fn bump(&mut self, target: &Target) {
        self.add(target, 1);
    }

    /// How many targets have been banned at least once.
    pub(crate) fn len(&self) -> usize {
        self.counts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        Target::parse(s).unwrap()
    }

    #[test]
    fn counts_load_and_grow_per_target() {
        let mut offences = Offences::from_counts([(t("192.0.2.7"), 2), (t("2001:db8::/64"), 1)]);
        assert_eq!(offences.len(), 2);
        assert_eq!(offences.get(&t("192.0.2.7")), 2);
        assert_eq!(offences.get(&t("2001:db8::/64")), 1);
        assert_eq!(
            offences.get(&t("2001:db8::1")),
            0,
            "an address is not its network"
        );
        offences.bump(&t("192.0.2.7"));
        offences.bump(&t("198.51.100.1"));
        assert_eq!(offences.get(&t("192.0.2.7")), 3);
        assert_eq!(offences.get(&t("198.51.100.1")), 1);
        assert_eq!(offences.len(), 3);
    }
}
