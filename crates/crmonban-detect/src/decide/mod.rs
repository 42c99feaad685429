//! Ban decisions: "`max_failures` failures within `find_time`, per address and service → ban
//! for `ban_time`", counted by *log time* with bounded memory ([`Decider`], [`WindowCounter`]),
//! and the flood limiter for `AttackDetected` ([`AttackCoalescer`]).
//!
//! # What counts as one failure
//!
//! Every matching line is a [`Hit`] (and `explain` reports each), but a failure is one
//! authentication *attempt*, and several lines can describe the same one. Lines carry an
//! [`AttemptKey`](crate::AttemptKey): the connection they belong to (sshd: the pid of the `sshd[PID]:` tag, since
//! sshd logs every line of one connection from its monitor process; dovecot: the session id
//! that both the login and the auth process print) and their [`Step`](crmonban_core::config::pack::Step):
//!
//! - [`Step::Try`](crmonban_core::config::pack::Step::Try) lines record one authentication try each (`Failed password`, `Failed
//!   publickey`, dovecot's `Password mismatch`): each counts;
//! - [`Step::Context`](crmonban_core::config::pack::Step::Context) lines describe the connection's attempt without being a try of their
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
use std::net::IpAddr;
use std::time::Duration;

use crmonban_core::config::{BanDuration, Config, ServiceConfig};
use crmonban_core::{Event, Service, Target};

use crate::matcher::Hit;

mod window;

pub use window::WindowCounter;

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
    /// Failures within `find_time` that lead to a ban; at least 1.
    pub max_failures: u32,
    /// The counting window, in log time.
    pub find_time: Duration,
    /// The length of the bans decided.
    pub ban_time: BanDuration,
    /// The prefix IPv6 addresses are counted and banned by; `None`: single addresses (a
    /// prefix of 128 is stored as `None`).
    pub ipv6_prefix: Option<u8>,
    /// Most addresses tracked; at least 1.
    pub max_tracked: usize,
}

impl ServicePolicy {
    /// The policy of `service`: its own `ipv6_prefix` wins over `options.ipv6_prefix`, and
    /// `max_tracked` comes from `options`.
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
    /// Ban `target`: it reached `max_failures` within `find_time`.
    Ban {
        /// The address, or its IPv6 network under aggregation.
        target: Target,
        /// The service whose window was reached.
        service: Service,
        /// Failures inside the window when the ban was decided (= `max_failures`).
        failures: u32,
        /// Log time (unix s) of the oldest failure in the window.
        first_seen: i64,
        /// Log time (unix s) of the newest failure in the window.
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

    /// The windows of `service`; `None` for services that were not added.
    pub fn counter(&self, service: &Service) -> Option<&WindowCounter> {
        self.services.get(service)
    }

    /// Addresses tracked over all services.
    pub fn tracked(&self) -> usize {
        self.services.values().map(|c| c.stats().tracked).sum()
    }
}

/// Limits `AttackDetected` under floods: at most one per address per second of `now`, each
/// carrying how many events it stands for. An event that may not be announced is *pending*:
/// its count rides on the address's next announcement, or on [`AttackCoalescer::flush`] once
/// its second is over, so a flood's last second is announced too. Remembers only the
/// addresses of the current second and the pending ones, at most `capacity` of each: beyond
/// that, events are suppressed and only counted ([`AttackCoalescer::suppressed`]) rather than
/// grow memory.
#[derive(Debug)]
pub struct AttackCoalescer {
    second: i64,
    seen: HashSet<IpAddr>,
    pending: HashMap<IpAddr, (u32, Event)>,
    capacity: usize,
    suppressed: u64,
}

impl AttackCoalescer {
    /// A coalescer that remembers at most `capacity` addresses per second (at least 1).
    pub fn new(capacity: usize) -> AttackCoalescer {
        AttackCoalescer {
            second: i64::MIN,
            seen: HashSet::new(),
            pending: HashMap::new(),
            capacity: capacity.max(1),
            suppressed: 0,
        }
    }

    /// `Some(count)` when `event` may be announced at `now` (unix seconds): `count` is this
    /// event plus the address's pending ones. `None` when it is pending (or, with the tables
    /// full, only counted). A clock that goes back stays in the later second.
    pub fn admit(&mut self, event: &Event, now: i64) -> Option<u32> {
        self.enter(now);
        let addr = event.addr;
        if self.seen.len() < self.capacity && self.seen.insert(addr) {
            let earlier = self.pending.remove(&addr).map_or(0, |(count, _)| count);
            return Some(earlier.saturating_add(1));
        }
        let room = self.pending.len() < self.capacity;
        match self.pending.get_mut(&addr) {
            Some((count, last)) => {
                *count = count.saturating_add(1);
                last.clone_from(event);
            }
            None if room => {
                self.pending.insert(addr, (1, event.clone()));
            }
            None => self.suppressed += 1,
        }
        None
    }

    /// The pending events of addresses not announced in `now`'s second, each as its most
    /// recent event with the count it stands for; they count as announced in this second.
    pub fn flush(&mut self, now: i64) -> Vec<(Event, u32)> {
        self.enter(now);
        let ready: Vec<IpAddr> = self
            .pending
            .keys()
            .filter(|addr| !self.seen.contains(addr))
            .copied()
            .collect();
        let mut out = Vec::with_capacity(ready.len());
        for addr in ready {
            if let Some((count, event)) = self.pending.remove(&addr) {
                self.seen.insert(addr);
                out.push((event, count));
            }
        }
        if self.pending.is_empty() && self.pending.capacity() > 4 * 4096 {
            self.pending.shrink_to(4096);
        }
        out
    }

    /// Events neither announced nor pending, for want of room, so far.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    fn enter(&mut self, now: i64) {
        if now > self.second {
            self.second = now;
            self.seen.clear();
            if self.seen.capacity() > 4 * 4096 {
                self.seen.shrink_to(4096);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::window::connection_tag;
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
    fn coalescer_one_per_address_per_second_carrying_the_count() {
        let mut c = AttackCoalescer::new(2);
        let at = |addr: &str| Event {
            addr: addr.parse().unwrap(),
            service: crmonban_core::Service::new("ssh"),
            kind: crmonban_core::EventKind::FailedAuth,
            time: None,
        };
        let (a, b, d) = (at("192.0.2.1"), at("192.0.2.2"), at("192.0.2.3"));
        assert_eq!(c.admit(&a, 10), Some(1));
        assert_eq!(c.admit(&a, 10), None, "pending");
        assert_eq!(c.admit(&b, 10), Some(1));
        assert_eq!(
            c.admit(&d, 10),
            None,
            "capacity of the second reached: pending"
        );
        assert_eq!(c.admit(&a, 9), None, "clock going back stays in second 10");
        // d was not announced in second 10 (no room then): the flush carries it; a was, and
        // waits for its next second.
        let flushed = c.flush(10);
        assert_eq!(flushed.len(), 1);
        assert_eq!((flushed[0].0.addr, flushed[0].1), (d.addr, 1));
        assert_eq!(
            c.admit(&d, 10),
            None,
            "flushed counts as announced in second 10"
        );
        // a's next announcement carries its two pending events.
        assert_eq!(c.admit(&a, 11), Some(3));
        assert_eq!(
            c.flush(11)
                .into_iter()
                .map(|(e, n)| (e.addr, n))
                .collect::<Vec<_>>(),
            [(d.addr, 1)]
        );
        assert!(c.flush(12).is_empty());
        assert_eq!(c.suppressed(), 0);
        // Both tables full: counted only.
        let e = at("192.0.2.4");
        let f = at("192.0.2.5");
        assert_eq!(c.admit(&a, 13), Some(1));
        assert_eq!(c.admit(&b, 13), Some(1));
        assert_eq!(c.admit(&d, 13), None);
        assert_eq!(c.admit(&e, 13), None);
        assert_eq!(c.admit(&f, 13), None);
        assert_eq!(c.suppressed(), 1);
    }
}
