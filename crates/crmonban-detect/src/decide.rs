//! Ban decisions: "`max_failures` failures within `find_time`, per address and service → ban
//! for `ban_time`", counted by *log time* with bounded memory ([`Decider`], [`WindowCounter`]),
//! and the flood limiter for `AttackDetected` ([`AttackCoalescer`]).
//!
//! # What counts as one failure
//!
//! Every matching line is a [`Hit`] (and `explain` reports each), but a failure is one
//! authentication *attempt*, and several lines can describe the same one. Lines carry an
//! [`AttemptKey`]: the connection they belong to (sshd: the pid of the `sshd[PID]:` tag, since
//! sshd logs every line of one connection from its monitor process; dovecot: the session id
//! that both the login and the auth process print) and their [`Step`]:
//!
//! - [`Step::Try`] lines record one authentication try each (`Failed password`, `Failed
//!   publickey`, dovecot's `Password mismatch`): each counts;
//! - [`Step::Context`] lines describe the connection's attempt without being a try of their
//!   own (`Invalid user`, `pam_unix(sshd:auth): authentication failure`, `Connection closed
//!   ... [preauth]`, `Disconnected ... [preauth]`, `maximum authentication attempts exceeded`,
//!   probes such as `banner exchange` or `Unable to negotiate`, dovecot's `Disconnected (auth
//!   failed ...)`): such a line counts only if no line of the same connection has counted yet.
//!
//! So a connection counts `max(1, number of Try lines)` failures: `Invalid user` + `Failed
//! password` + `Connection closed by invalid user ... [preauth]` from `sshd[1234]` is one
//! failure; three `Failed password` lines in one connection (MaxAuthTries) are three; a scanner
//! that only exchanges banners is one per connection. The PAM failure line, which precedes its
//! `Failed password` and has no port, is absorbed by it. Postfix's SASL failure and its "lost
//! connection after AUTH" share smtpd's pid the same way. Lines without a key (nginx, apache,
//! most `step = "each"` patterns, lines whose pid is unknown) count one each. Only the most recent connection per
//! address is remembered (4 bytes of hash, 2 counters): interleaved concurrent connections from
//! one address can therefore count a little *more*, never less.
//!
//! # Windows by log time
//!
//! A failure's time is the hit's own time (the log line's timestamp) or, when the line has
//! none, the `now` given to [`Decider::observe`] (when it was read). An address is banned when
//! `max_failures` of its failures lie within `find_time` of its newest failure (inclusive:
//! `newest - t <= find_time`). A failure older than `find_time` relative to the newest failure
//! already seen for that address is dropped, so a replayed or delayed old log neither bans by
//! itself nor adds to current counts, and slow guessing spread over hours never bans however
//! fast its lines are read. After a ban the address's count starts again from zero.
//!
//! # IPv6 aggregation
//!
//! With `ipv6_prefix = Some(64)` an IPv6 address is counted and banned as its /64 (the usual
//! allocation to one host or customer): the decision's target is the network. The prefix is
//! per service (`[services.NAME] ipv6_prefix`); [`DeciderOptions::ipv6_prefix`] applies to the
//! services that set none.
//!
//! # Memory
//!
//! State lives in dense vectors plus an index: per tracked address a 32-byte slot, `4 ×
//! max_failures` bytes of timestamps, and one index entry (8 bytes for IPv4, 20 for IPv6, in a
//! hash table at most 7/8 full). Measured (benches/explain.rs, `max_failures = 5`): 70 bytes
//! of RSS per IPv4 address, 1,000,000 addresses in one window = +67 MB (process 74 MB). An address whose newest failure is
//! older than `find_time` before the newest log time seen is pruned by a sweep that runs at most
//! once per `find_time / 2` of log time (and when the table is full). The table never holds more
//! than [`DeciderOptions::max_tracked`] addresses per service: when it is full after pruning,
//! the entry to evict is chosen by sampling [`EVICTION_SAMPLE`] random slots and taking the one
//! with the fewest failures in its window, the oldest first (Redis-style sampled LRU): addresses
//! close to a ban survive a flood of one-off addresses. Evictions are counted.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crmonban_core::config::{BanDuration, Config, ServiceConfig};
use crmonban_core::{Service, Target};
use ipnet::Ipv6Net;

use crate::matcher::{AttemptKey, Hit};
use crate::patterns::Step;

/// Slots sampled when an entry must be evicted.
pub const EVICTION_SAMPLE: usize = 8;

/// Tuning shared by all services of a [`Decider`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeciderOptions {
    /// Count and ban IPv6 addresses by this prefix (e.g. 64) in services whose configuration
    /// sets no `ipv6_prefix` of its own; `None` or 128: single addresses.
    pub ipv6_prefix: Option<u8>,
    /// Most addresses tracked per service; see the module docs for the eviction.
    /// [`Decider::from_config`] takes it from `[general] max_tracked_addresses`.
    pub max_tracked: usize,
}

/// The default cap: what a hash index of 2^21 buckets holds at its 7/8 load, so that
/// 1,000,000 addresses are tracked without eviction. The default of `[general]
/// max_tracked_addresses` is the same number (a test checks it).
pub const DEFAULT_MAX_TRACKED: usize = (1 << 21) / 8 * 7;

impl Default for DeciderOptions {
    fn default() -> Self {
        DeciderOptions {
            ipv6_prefix: None,
            max_tracked: DEFAULT_MAX_TRACKED,
        }
    }
}

/// What a service's counting needs from its configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServicePolicy {
    pub max_failures: u32,
    pub find_time: Duration,
    pub ban_time: BanDuration,
    pub ipv6_prefix: Option<u8>,
    pub max_tracked: usize,
}

impl ServicePolicy {
    pub fn new(service: &ServiceConfig, options: &DeciderOptions) -> ServicePolicy {
        ServicePolicy {
            max_failures: service.max_failures.max(1),
            find_time: service.find_time,
            ban_time: service.ban_time,
            // The service's own setting wins over the decider-wide default.
            ipv6_prefix: service
                .ipv6_prefix
                .or(options.ipv6_prefix)
                .filter(|p| *p < 128),
            max_tracked: options.max_tracked.max(1),
        }
    }
}

/// A ban the detector asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Ban {
        /// The address, or its IPv6 network under aggregation.
        target: Target,
        service: Service,
        /// Failures inside the window when the ban was decided (= `max_failures`).
        failures: u32,
        /// Log time (unix s) of the oldest and newest failure in the window.
        first_seen: i64,
        last_seen: i64,
        /// The service's `ban_time` (the engine may escalate it for repeat offenders).
        ban_time: BanDuration,
    },
}

/// Counters of a [`WindowCounter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterStats {
    /// Addresses tracked now.
    pub tracked: usize,
    /// Entries removed because their window passed.
    pub pruned: u64,
    /// Entries evicted because the table was full.
    pub evicted: u64,
    /// Failures dropped as older than `find_time` before the address's newest failure.
    pub dropped_old: u64,
    /// Bans decided.
    pub bans: u64,
}

/// The decisions of every configured service.
#[derive(Debug)]
pub struct Decider {
    options: DeciderOptions,
    services: HashMap<Service, WindowCounter>,
}

impl Decider {
    /// A decider with no service yet; see [`Decider::add_service`].
    pub fn new(options: DeciderOptions) -> Decider {
        Decider {
            options,
            services: HashMap::new(),
        }
    }

    /// A decider for every enabled service of `config`. The configuration wins over
    /// `options`: `max_tracked` is `[general] max_tracked_addresses`, and a service's own
    /// `ipv6_prefix` replaces `options.ipv6_prefix`.
    pub fn from_config(config: &Config, options: DeciderOptions) -> Decider {
        let options = DeciderOptions {
            max_tracked: config.general.max_tracked_addresses,
            ..options
        };
        let mut decider = Decider::new(options);
        for (name, service) in config.enabled_services() {
            decider.add_service(Service::new(name), service);
        }
        decider
    }

    /// Takes `config` in, keeping the counts: services no longer enabled are dropped, new ones
    /// added, and the others keep their failure windows under their new thresholds (see
    /// [`WindowCounter::reconfigured`]). Returns the bans the kept windows reach under the new
    /// thresholds (a lowered `max_failures`).
    pub fn reconfigure(&mut self, config: &Config) -> Vec<Decision> {
        self.options.max_tracked = config.general.max_tracked_addresses;
        let mut old = std::mem::take(&mut self.services);
        let mut decisions = Vec::new();
        for (name, service) in config.enabled_services() {
            let service_name = Service::new(name);
            let policy = ServicePolicy::new(service, &self.options);
            let counter = match old.remove(&service_name) {
                Some(counter) => {
                    let (counter, reached) = counter.reconfigured(policy);
                    decisions.extend(reached);
                    counter
                }
                None => WindowCounter::new(service_name.clone(), policy),
            };
            self.services.insert(service_name, counter);
        }
        decisions
    }

    /// Adds (or replaces, forgetting its counts) a service.
    pub fn add_service(&mut self, service: Service, config: &ServiceConfig) {
        let policy = ServicePolicy::new(config, &self.options);
        self.services
            .insert(service.clone(), WindowCounter::new(service, policy));
    }

    /// Counts `hit` for `service`; `now` (unix s) is when the line was read, the time of a
    /// hit without its own. `None` for services that were not added.
    pub fn observe(&mut self, service: &Service, hit: &Hit, now: i64) -> Option<Decision> {
        self.services.get_mut(service)?.observe(hit, now)
    }

    pub fn counter(&self, service: &Service) -> Option<&WindowCounter> {
        self.services.get(service)
    }

    /// Addresses tracked over all services.
    pub fn tracked(&self) -> usize {
        self.services.values().map(|c| c.slots.len()).sum()
    }
}

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

    /// Counts `hit`; see [`Decider::observe`].
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
fn connection_tag(connection: u64) -> u32 {
    let h = (connection
        .wrapping_add(1)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        >> 32) as u32;
    h.max(1)
}

/// Limits `AttackDetected` under floods: at most one per address per second of `now`.
/// Remembers only the addresses of the current second, at most `capacity` of them: beyond
/// that, further addresses in the same second are suppressed (and counted) rather than grow
/// memory.
#[derive(Debug)]
pub struct AttackCoalescer {
    second: i64,
    seen: HashSet<IpAddr>,
    capacity: usize,
    suppressed: u64,
}

impl AttackCoalescer {
    pub fn new(capacity: usize) -> AttackCoalescer {
        AttackCoalescer {
            second: i64::MIN,
            seen: HashSet::new(),
            capacity: capacity.max(1),
            suppressed: 0,
        }
    }

    /// True when an event for `addr` may be emitted at `now` (unix seconds). A clock that
    /// goes back stays in the later second.
    pub fn admit(&mut self, addr: IpAddr, now: i64) -> bool {
        if now > self.second {
            self.second = now;
            self.seen.clear();
            if self.seen.capacity() > 4 * 4096 {
                self.seen.shrink_to(4096);
            }
        }
        if self.seen.len() < self.capacity && self.seen.insert(addr) {
            return true;
        }
        self.suppressed += 1;
        false
    }

    /// Events suppressed so far.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_default_of_max_tracked_addresses_is_the_decider_default() {
        assert_eq!(
            crmonban_core::config::DEFAULT_MAX_TRACKED_ADDRESSES,
            DEFAULT_MAX_TRACKED
        );
        assert_eq!(
            Config::default().general.max_tracked_addresses,
            DeciderOptions::default().max_tracked
        );
    }

    #[test]
    fn connection_tags_differ_for_neighbouring_pids() {
        let tags: HashSet<u32> = (1000..2000).map(connection_tag).collect();
        assert_eq!(tags.len(), 1000);
        assert!(!tags.contains(&0));
    }

    #[test]
    fn coalescer_one_per_address_per_second() {
        let mut c = AttackCoalescer::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let d: IpAddr = "192.0.2.3".parse().unwrap();
        assert!(c.admit(a, 10));
        assert!(!c.admit(a, 10));
        assert!(c.admit(b, 10));
        assert!(!c.admit(d, 10), "capacity reached within the second");
        assert!(!c.admit(a, 9), "clock going back stays in second 10");
        assert!(c.admit(a, 11));
        assert!(c.admit(d, 11));
        assert_eq!(c.suppressed(), 3);
    }
}
