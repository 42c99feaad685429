//! [`WindowCounter`]: one service's failure windows — dense slots, a ring of failure times
//! per address, the index, pruning and sampled eviction (see the module docs of
//! [`decide`](super)).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crmonban_core::{Service, Target};
use ipnet::Ipv6Net;

use super::{CounterStats, Decision, EVICTION_SAMPLE, ServicePolicy};
use crate::matcher::{AttemptKey, Hit};
use crate::patterns::Step;

/// The counting key: IPv4 as its IPv4-mapped form, IPv6 masked to the aggregation prefix.
type Key = [u32; 4];

#[derive(Clone, Copy, Debug)]
struct Slot {
    key: Key,
    /// Newest failure, relative seconds.
    newest: u32,
    /// Hash of the current connection (0: none).
    connection: u32,
    /// Failures this connection has counted, and its Try lines.
    counted: u8,
    tries: u8,
    /// Ring of failure times in `times[slot * stride ..]`.
    head: u16,
    len: u16,
}

/// One service's sliding windows; see the module docs.
#[derive(Debug)]
pub struct WindowCounter {
    service: Service,
    policy: ServicePolicy,
    v4: HashMap<u32, u32>,
    v6: HashMap<Key, u32>,
    slots: Vec<Slot>,
    times: Vec<u32>,
    stride: usize,
    find: u32,
    /// Unix time of relative second 0; set by the first failure.
    base: Option<i64>,
    newest: u32,
    last_sweep: u32,
    rng: u64,
    stats: CounterStats,
}

impl WindowCounter {
    /// An empty counter for `service` under `policy`.
    pub fn new(service: Service, policy: ServicePolicy) -> WindowCounter {
        let stride = policy.max_failures.min(u32::from(u16::MAX)) as usize;
        WindowCounter {
            service,
            policy,
            v4: HashMap::new(),
            v6: HashMap::new(),
            slots: Vec::new(),
            times: Vec::new(),
            stride,
            find: u32::try_from(policy.find_time.as_secs()).unwrap_or(u32::MAX / 4),
            base: None,
            newest: 0,
            last_sweep: 0,
            rng: 0x2545_f491_4f6c_dd1d,
            stats: CounterStats::default(),
        }
    }

    /// The thresholds the counter applies now.
    pub fn policy(&self) -> &ServicePolicy {
        &self.policy
    }

    /// This counter under `policy`, its windows kept. A new `find_time` or `ban_time` applies
    /// in place; a new `max_failures`, `ipv6_prefix` or `max_tracked` rebuilds the table by
    /// counting every remembered failure again, oldest first, which returns the bans the
    /// windows reach under the new threshold. The connection a failure came from is not
    /// remembered across that, so each counts on its own.
    pub fn reconfigured(mut self, policy: ServicePolicy) -> (WindowCounter, Vec<Decision>) {
        if policy == self.policy {
            return (self, Vec::new());
        }
        let same_layout = policy.max_failures == self.policy.max_failures
            && policy.ipv6_prefix == self.policy.ipv6_prefix
            && policy.max_tracked == self.policy.max_tracked;
        if same_layout {
            self.find = u32::try_from(policy.find_time.as_secs()).unwrap_or(u32::MAX / 4);
            self.policy = policy;
            return (self, Vec::new());
        }
        let mut next = WindowCounter::new(self.service.clone(), policy);
        next.stats = self.stats;
        let pattern: std::sync::Arc<str> = std::sync::Arc::from("reconfigured");
        let mut decisions = Vec::new();
        for i in 0..self.slots.len() {
            let slot = self.slots[i];
            let addr = self.address(&slot.key);
            let ring = &self.times[i * self.stride..(i + 1) * self.stride];
            for k in (0..usize::from(slot.len)).rev() {
                let t = ring[(usize::from(slot.head) + self.stride - 1 - k) % self.stride];
                let at = self.abs(t);
                let hit = Hit {
                    addr,
                    port: None,
                    kind: crmonban_core::EventKind::FailedAuth,
                    pattern: pattern.clone(),
                    time: Some(at),
                    attempt: None,
                };
                decisions.extend(next.observe(&hit, at));
            }
        }
        (next, decisions)
    }

    /// An address standing for `key` (the network's first address under aggregation).
    fn address(&self, key: &Key) -> IpAddr {
        if Self::is_v4(key) {
            return IpAddr::V4(Ipv4Addr::from(key[3]));
        }
        let bits = (u128::from(key[0]) << 96)
            | (u128::from(key[1]) << 64)
            | (u128::from(key[2]) << 32)
            | u128::from(key[3]);
        IpAddr::V6(Ipv6Addr::from(bits))
    }

    /// The counters since the counter was created (kept across [`WindowCounter::reconfigured`]),
    /// with the number of addresses tracked now.
    pub fn stats(&self) -> CounterStats {
        CounterStats {
            tracked: self.slots.len(),
            ..self.stats
        }
    }

    /// Failures currently counted for `addr` (its aggregate under IPv6 aggregation) inside
    /// the window ending at its newest failure.
    pub fn failures(&self, addr: IpAddr) -> u32 {
        self.index_of(&self.key(addr))
            .map_or(0, |i| self.in_window(i as usize).0)
    }

    fn rel(&mut self, t: i64) -> u32 {
        // Relative second 2^30 is the first failure: ±34 years of room either way.
        let base = *self.base.get_or_insert(t - (1 << 30));
        (t - base).clamp(0, i64::from(u32::MAX)) as u32
    }

    fn abs(&self, rel: u32) -> i64 {
        self.base.unwrap_or(0) + i64::from(rel)
    }

    fn key(&self, addr: IpAddr) -> Key {
        match crmonban_core::target::unmap(addr) {
            IpAddr::V4(v4) => {
                let [a, b, c, d] = v4.octets();
                [0, 0, 0xffff, u32::from_be_bytes([a, b, c, d])]
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let masked = match self.policy.ipv6_prefix {
                    Some(0) => 0,
                    Some(p) => bits & (u128::MAX << (128 - u32::from(p))),
                    None => bits,
                };
                [
                    (masked >> 96) as u32,
                    (masked >> 64) as u32,
                    (masked >> 32) as u32,
                    masked as u32,
                ]
            }
        }
    }

    fn is_v4(key: &Key) -> bool {
        key[0] == 0 && key[1] == 0 && key[2] == 0xffff
    }

    fn target(&self, key: &Key) -> Target {
        let addr = match self.address(key) {
            IpAddr::V6(addr) => addr,
            v4 => return Target::from(v4),
        };
        match self.policy.ipv6_prefix {
            Some(p) => Ipv6Net::new(addr, p).map_or(Target::from(addr), Target::from),
            None => Target::from(addr),
        }
    }

    fn index_of(&self, key: &Key) -> Option<u32> {
        if Self::is_v4(key) {
            self.v4.get(&key[3]).copied()
        } else {
            self.v6.get(key).copied()
        }
    }

    fn set_index(&mut self, key: Key, index: u32) {
        if Self::is_v4(&key) {
            self.v4.insert(key[3], index);
        } else {
            self.v6.insert(key, index);
        }
    }

    fn remove_index(&mut self, key: &Key) {
        if Self::is_v4(key) {
            self.v4.remove(&key[3]);
        } else {
            self.v6.remove(key);
        }
    }

    /// (failures in the window ending at the slot's newest failure, the oldest of them).
    fn in_window(&self, i: usize) -> (u32, u32) {
        let slot = &self.slots[i];
        let ring = &self.times[i * self.stride..(i + 1) * self.stride];
        let mut count = 0;
        let mut oldest = slot.newest;
        for k in 0..usize::from(slot.len) {
            let t = ring[(usize::from(slot.head) + self.stride - 1 - k) % self.stride];
            if slot.newest.saturating_sub(t) <= self.find {
                count += 1;
                oldest = oldest.min(t);
            }
        }
        (count, oldest)
    }

    /// Counts `hit`; see [`Decider::observe`](super::Decider::observe).
    pub fn observe(&mut self, hit: &Hit, now: i64) -> Option<Decision> {
        let t = self.rel(hit.time.unwrap_or(now));
        if t > self.newest {
            self.newest = t;
        }
        if self.newest.saturating_sub(self.last_sweep) > self.find / 2 {
            self.sweep();
        }
        let key = self.key(hit.addr);
        let i = match self.index_of(&key) {
            Some(i) => i as usize,
            None => self.insert(key, t),
        };
        let find = self.find;
        let slot = &mut self.slots[i];
        if slot.len > 0 && slot.newest.saturating_sub(t) > find {
            self.stats.dropped_old += 1;
            return None;
        }
        if !count_attempt(slot, hit.attempt) {
            return None;
        }
        let ring_at = i * self.stride + usize::from(slot.head);
        self.times[ring_at] = t;
        slot.head = ((usize::from(slot.head) + 1) % self.stride) as u16;
        slot.len = (usize::from(slot.len) + 1).min(self.stride) as u16;
        slot.newest = slot.newest.max(t);
        let (failures, oldest) = self.in_window(i);
        if failures < self.policy.max_failures.min(self.stride as u32) {
            return None;
        }
        let slot = &mut self.slots[i];
        slot.len = 0;
        slot.head = 0;
        self.stats.bans += 1;
        let newest = slot.newest;
        Some(Decision::Ban {
            target: self.target(&key),
            service: self.service.clone(),
            failures,
            first_seen: self.abs(oldest),
            last_seen: self.abs(newest),
            ban_time: self.policy.ban_time,
        })
    }

    fn insert(&mut self, key: Key, t: u32) -> usize {
        if self.slots.len() >= self.policy.max_tracked {
            if self.newest > self.last_sweep {
                self.sweep();
            }
            if self.slots.len() >= self.policy.max_tracked {
                self.evict_one();
            }
        }
        let index = self.slots.len();
        self.slots.push(Slot {
            key,
            newest: t,
            connection: 0,
            counted: 0,
            tries: 0,
            head: 0,
            len: 0,
        });
        self.times.resize(self.times.len() + self.stride, 0);
        self.set_index(key, index as u32);
        index
    }

    /// Removes slot `i`, moving the last slot into its place.
    fn remove_slot(&mut self, i: usize) {
        let key = self.slots[i].key;
        self.remove_index(&key);
        let last = self.slots.len() - 1;
        if i != last {
            self.slots.swap(i, last);
            self.times.copy_within(
                last * self.stride..(last + 1) * self.stride,
                i * self.stride,
            );
            let moved = self.slots[i].key;
            self.set_index(moved, i as u32);
        }
        self.slots.pop();
        self.times.truncate(last * self.stride);
    }

    /// Drops every address whose newest failure is more than `find_time` before the newest
    /// log time seen.
    fn sweep(&mut self) {
        self.last_sweep = self.newest;
        let horizon = self.newest.saturating_sub(self.find);
        let mut i = 0;
        while i < self.slots.len() {
            if self.slots[i].newest < horizon {
                self.remove_slot(i);
                self.stats.pruned += 1;
            } else {
                i += 1;
            }
        }
        self.shrink_if_sparse();
    }

    fn shrink_if_sparse(&mut self) {
        if self.slots.capacity() > 4096 && self.slots.len() < self.slots.capacity() / 4 {
            self.slots.shrink_to(self.slots.len() * 2);
            self.times.shrink_to(self.times.len() * 2);
            self.v4.shrink_to(self.v4.len() * 2);
            self.v6.shrink_to(self.v6.len() * 2);
        }
    }

    fn evict_one(&mut self) {
        let mut victim: Option<(usize, (u32, u32))> = None;
        for _ in 0..EVICTION_SAMPLE {
            // xorshift64
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let i = (self.rng % self.slots.len() as u64) as usize;
            let rank = (self.in_window(i).0, self.slots[i].newest);
            if victim.is_none_or(|(_, best)| rank < best) {
                victim = Some((i, rank));
            }
        }
        if let Some((i, _)) = victim {
            self.remove_slot(i);
            self.stats.evicted += 1;
        }
    }
}

/// Applies the attempt rules of the module docs; true when the hit counts as a failure.
fn count_attempt(slot: &mut Slot, attempt: Option<AttemptKey>) -> bool {
    let Some(attempt) = attempt else {
        return true;
    };
    let connection = connection_tag(attempt.connection);
    if slot.connection != connection {
        slot.connection = connection;
        slot.counted = 0;
        slot.tries = 0;
    }
    match attempt.step {
        Step::Try => {
            slot.tries = slot.tries.saturating_add(1);
            if slot.tries > slot.counted {
                slot.counted = slot.tries;
                true
            } else {
                false
            }
        }
        Step::Context => {
            if slot.counted == 0 {
                slot.counted = 1;
                true
            } else {
                false
            }
        }
        Step::Each => true,
    }
}

/// A 32-bit non-zero digest of a connection id (pids 1234 and 1235 must differ).
pub(super) fn connection_tag(connection: u64) -> u32 {
    let h = (connection
        .wrapping_add(1)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        >> 32) as u32;
    h.max(1)
}
