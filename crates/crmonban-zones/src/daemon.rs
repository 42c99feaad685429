//! The `daemon` whitelist source ([`DaemonSource`]): asks another service over D-Bus whether
//! an address is trusted, calling its method `(s) -> b` with the address as a string.
//!
//! It owns one connection to the configured bus (opened at the first question, opened again
//! after a failure), a cache of answers per address (trusted and not trusted alike, for the
//! `[whitelist] cache_ttl_secs` given at construction, bounded in size so that an attacker
//! cycling addresses cannot grow it), and the warning about a service that does not answer
//! (at most one a minute). Each question, connecting included, is bounded by the source's
//! `timeout_ms`; a question left unanswered is not cached and comes back as
//! [`DaemonAnswer::Unanswered`], which callers treat as "not trusted" for that one decision.
//! What a trusted address means for a ban is the caller's business, not this module's.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crmonban_core::config::{self, DaemonBus};
use crmonban_dbus::BusChoice;
use tokio::time::Instant;
use zbus::Connection;
use zbus::OwnedObjectPath;
use zbus::names::{OwnedInterfaceName, OwnedMemberName, OwnedWellKnownName};

/// How many answers are remembered at most; past that the oldest is forgotten first.
pub const DEFAULT_CACHE_CAPACITY: usize = 65_536;

/// The shortest time between two warnings about unanswered questions.
const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// The longest text of another program's making (an error reply, a connection failure) kept
/// in a [`NoAnswer`]: it ends up in the log.
const MAX_REASON: usize = 200;

/// What a [`DaemonSource`] said about an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonAnswer {
    /// The service answered `true`.
    Trusted,
    /// The service answered `false`.
    NotTrusted,
    /// No usable answer (see [`NoAnswer`]); not trusted for this decision, nothing cached.
    Unanswered(NoAnswer),
}

impl DaemonAnswer {
    /// True only for [`DaemonAnswer::Trusted`].
    pub fn is_trusted(&self) -> bool {
        matches!(self, DaemonAnswer::Trusted)
    }
}

/// Why a question got no usable answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoAnswer {
    /// Connecting and calling together took longer than the source's timeout.
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The bus could not be reached.
    #[error("cannot connect to {bus}: {reason}")]
    Connect {
        /// The bus, as the source names it.
        bus: String,
        /// Why the connection failed.
        reason: String,
    },
    /// The call failed: an error reply (the service is not running, has no such method, ...)
    /// or a broken connection.
    #[error("the call failed: {0}")]
    Failed(String),
    /// The reply does not hold one boolean.
    #[error("the reply is not a boolean but has signature {0:?}")]
    BadReply(String),
}

/// A [`config::DaemonSource`] that cannot be used (the configuration parser refuses such
/// values; this catches one built by hand).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("daemon whitelist source: {what} {value:?} is not valid: {reason}")]
pub struct DaemonSourceError {
    /// Which setting: `bus address`, `bus name`, `object path`, `interface` or `method`.
    pub what: &'static str,
    /// The value given.
    pub value: String,
    /// Why D-Bus refuses it.
    pub reason: String,
}

/// See the module docs. Shared by reference (`&self` everywhere): questions from several
/// tasks run at once, over one connection.
#[derive(Debug)]
pub struct DaemonSource {
    bus: BusChoice,
    name: OwnedWellKnownName,
    path: OwnedObjectPath,
    interface: OwnedInterfaceName,
    method: OwnedMemberName,
    timeout: Duration,
    cache: Mutex<AnswerCache>,
    /// The open connection and its generation (1, 2, ...: a failure forgets only the
    /// connection it happened on, not a newer one another task opened meanwhile).
    connection: Mutex<Option<(u64, Connection)>>,
    generations: AtomicU64,
    /// Held while connecting, so that concurrent questions open one connection, not many.
    connecting: tokio::sync::Mutex<()>,
    warnings: Mutex<WarnLimiter>,
}

impl DaemonSource {
    /// The source `source` describes, remembering answers for `cache_ttl` (zero: not at all)
    /// and at most [`DEFAULT_CACHE_CAPACITY`] of them. Connects at the first question.
    pub fn new(
        source: &config::DaemonSource,
        cache_ttl: Duration,
    ) -> Result<DaemonSource, DaemonSourceError> {
        fn invalid(what: &'static str, value: &str, e: impl fmt::Display) -> DaemonSourceError {
            DaemonSourceError {
                what,
                value: value.to_owned(),
                reason: e.to_string(),
            }
        }
        let bus = match &source.bus {
            DaemonBus::System => BusChoice::System,
            DaemonBus::Session => BusChoice::Session,
            DaemonBus::Address(address) => {
                address
                    .parse::<zbus::Address>()
                    .map_err(|e| invalid("bus address", address, e))?;
                BusChoice::Address(address.clone())
            }
        };
        Ok(DaemonSource {
            bus,
            name: OwnedWellKnownName::try_from(source.name.as_str())
                .map_err(|e| invalid("bus name", &source.name, e))?,
            path: OwnedObjectPath::try_from(source.path.as_str())
                .map_err(|e| invalid("object path", &source.path, e))?,
            interface: OwnedInterfaceName::try_from(source.interface.as_str())
                .map_err(|e| invalid("interface", &source.interface, e))?,
            method: OwnedMemberName::try_from(source.method.as_str())
                .map_err(|e| invalid("method", &source.method, e))?,
            timeout: source.timeout,
            cache: Mutex::new(AnswerCache::new(cache_ttl, DEFAULT_CACHE_CAPACITY)),
            connection: Mutex::new(None),
            generations: AtomicU64::new(0),
            connecting: tokio::sync::Mutex::new(()),
            warnings: Mutex::new(WarnLimiter::default()),
        })
    }

    /// The same source remembering at most `capacity` answers (zero: none).
    pub fn with_cache_capacity(self, capacity: usize) -> DaemonSource {
        let ttl = lock(&self.cache).ttl;
        *lock(&self.cache) = AnswerCache::new(ttl, capacity);
        self
    }

    /// How many answers are remembered now (expired ones included until they are pruned).
    pub fn cached(&self) -> usize {
        lock(&self.cache).len()
    }

    /// Whether the service trusts `addr`: from the cache when it answered recently, else by
    /// asking it, within the source's timeout. An IPv4-mapped IPv6 address is asked about
    /// (and cached) as the IPv4 address. Never fails: a question left unanswered is logged
    /// (a warning at most once a minute) and returned as [`DaemonAnswer::Unanswered`].
    pub async fn is_trusted(&self, addr: IpAddr) -> DaemonAnswer {
        let addr = addr.to_canonical();
        if let Some(trusted) = lock(&self.cache).get(addr, Instant::now()) {
            return answer(trusted);
        }
        // The generation of the connection the question went out on, for a timeout (whose
        // future is dropped) to forget it: a connection that leaves a question hanging may be
        // half-open, and opening another costs little.
        let used = AtomicU64::new(0);
        let result = match tokio::time::timeout(self.timeout, self.ask(addr, &used)).await {
            Ok(result) => result,
            Err(_) => {
                self.forget_connection(used.load(Ordering::Relaxed));
                Err(NoAnswer::Timeout(self.timeout))
            }
        };
        match result {
            Ok(trusted) => {
                lock(&self.cache).insert(addr, trusted, Instant::now());
                answer(trusted)
            }
            Err(reason) => {
                self.report(addr, &reason);
                DaemonAnswer::Unanswered(reason)
            }
        }
    }

    async fn ask(&self, addr: IpAddr, used: &AtomicU64) -> Result<bool, NoAnswer> {
        let (generation, connection) = self.connection().await?;
        used.store(generation, Ordering::Relaxed);
        let reply = connection
            .call_method(
                Some(&self.name),
                &self.path,
                Some(&self.interface),
                &self.method,
                &(addr.to_string(),),
            )
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                // An error reply proves the connection works; anything else may not.
                if !is_error_reply(&e) {
                    self.forget_connection(generation);
                }
                return Err(NoAnswer::Failed(bounded(&e.to_string())));
            }
        };
        let body = reply.body();
        body.deserialize::<bool>()
            .map_err(|_| NoAnswer::BadReply(bounded(&body.signature().to_string())))
    }

    /// The open connection, or a new one.
    async fn connection(&self) -> Result<(u64, Connection), NoAnswer> {
        if let Some(open) = lock(&self.connection).clone() {
            return Ok(open);
        }
        let _connecting = self.connecting.lock().await;
        // Another question may have connected while this one waited.
        if let Some(open) = lock(&self.connection).clone() {
            return Ok(open);
        }
        let connection = crmonban_dbus::connect(self.bus.clone())
            .await
            .map_err(|e| NoAnswer::Connect {
                bus: bounded(&self.bus.to_string()),
                reason: bounded(&e.to_string()),
            })?;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        *lock(&self.connection) = Some((generation, connection.clone()));
        Ok((generation, connection))
    }

    /// Drops the connection of `generation` (0: none was made), so the next question opens a
    /// new one; a newer connection stays.
    fn forget_connection(&self, generation: u64) {
        let mut open = lock(&self.connection);
        if generation != 0 && open.as_ref().is_some_and(|(g, _)| *g == generation) {
            *open = None;
        }
    }

    fn report(&self, addr: IpAddr, reason: &NoAnswer) {
        tracing::debug!(source = %self, %addr, %reason, "whitelist daemon source gave no answer");
        if let Some(suppressed) = lock(&self.warnings).due(Instant::now()) {
            let since = if suppressed == 0 {
                String::new()
            } else {
                format!(" ({suppressed} more questions went unanswered since the last warning)")
            };
            tracing::warn!(
                "whitelist daemon source {self} did not answer for {addr}: {reason}; {addr} is \
                 not trusted for this decision{since}"
            );
        }
    }
}

impl fmt::Display for DaemonSource {
    /// `org.example.Trust /org/example/Trust org.example.Trust.IsTrusted on the system bus`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}.{} on {}",
            self.name.as_str(),
            self.path.as_str(),
            self.interface.as_str(),
            self.method.as_str(),
            self.bus
        )
    }
}

fn answer(trusted: bool) -> DaemonAnswer {
    if trusted {
        DaemonAnswer::Trusted
    } else {
        DaemonAnswer::NotTrusted
    }
}

/// An error reply from the other end (the bus or the service), as opposed to a failure of
/// the connection itself.
fn is_error_reply(e: &zbus::Error) -> bool {
    match e {
        zbus::Error::MethodError(..) => true,
        zbus::Error::FDO(e) => !matches!(e.as_ref(), zbus::fdo::Error::ZBus(_)),
        _ => false,
    }
}

/// `text` cut to [`MAX_REASON`] characters, control characters escaped: it is of another
/// program's making and goes to the log.
fn bounded(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX_REASON {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing held under these locks can be left half-changed by a panic worth refusing.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Answers per address for a fixed time, at most `capacity` of them. Every answer lives
/// equally long, so the order of insertion is the order of expiry: a queue of insertions
/// says what to forget first, whether it expired or room is needed.
#[derive(Debug)]
struct AnswerCache {
    ttl: Duration,
    capacity: usize,
    answers: HashMap<IpAddr, (bool, Instant)>,
    /// Every insertion, oldest first. An address answered again has an older record here
    /// that no longer matches its entry; such records are dropped as they come up. The
    /// queue is bounded by `capacity` too, and the map holds no more entries than it.
    order: VecDeque<(IpAddr, Instant)>,
}

impl AnswerCache {
    fn new(ttl: Duration, capacity: usize) -> AnswerCache {
        AnswerCache {
            ttl,
            capacity,
            answers: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn len(&self) -> usize {
        self.answers.len()
    }

    fn get(&self, addr: IpAddr, now: Instant) -> Option<bool> {
        self.answers
            .get(&addr)
            .filter(|(_, at)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(trusted, _)| *trusted)
    }

    fn insert(&mut self, addr: IpAddr, trusted: bool, now: Instant) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        while let Some(&(oldest, at)) = self.order.front() {
            let expired = now.saturating_duration_since(at) >= self.ttl;
            if !expired && self.order.len() < self.capacity {
                break;
            }
            self.order.pop_front();
            if self.answers.get(&oldest).is_some_and(|(_, a)| *a == at) {
                self.answers.remove(&oldest);
            }
        }
        self.answers.insert(addr, (trusted, now));
        self.order.push_back((addr, now));
    }
}

/// Decides when a warning is due: the first at once, then at most one per
/// [`WARN_INTERVAL`], counting the ones left out.
#[derive(Debug, Default)]
struct WarnLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl WarnLimiter {
    /// `Some(how many were left out since the last warning)` when one is due at `now`.
    fn due(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < WARN_INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn v4(i: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn answers_expire_after_the_ttl() {
        let t0 = Instant::now();
        let mut cache = AnswerCache::new(Duration::from_secs(10), 16);
        cache.insert(a("192.0.2.1"), true, t0);
        cache.insert(a("192.0.2.2"), false, t0);
        assert_eq!(
            cache.get(a("192.0.2.1"), t0 + Duration::from_secs(9)),
            Some(true)
        );
        assert_eq!(
            cache.get(a("192.0.2.2"), t0 + Duration::from_secs(9)),
            Some(false)
        );
        assert_eq!(
            cache.get(a("192.0.2.1"), t0 + Duration::from_secs(10)),
            None
        );
        assert_eq!(cache.get(a("192.0.2.3"), t0), None);
        // Expired entries go at the next insertion; a re-answered address keeps its new entry.
        cache.insert(a("192.0.2.1"), false, t0 + Duration::from_secs(11));
        assert_eq!(cache.len(), 1);
        assert_eq!(
            cache.get(a("192.0.2.1"), t0 + Duration::from_secs(12)),
            Some(false)
        );
    }

    #[test]
    fn the_cache_stays_bounded_and_forgets_the_oldest_first() {
        let t0 = Instant::now();
        let mut cache = AnswerCache::new(Duration::from_secs(3600), DEFAULT_CACHE_CAPACITY);
        let total = DEFAULT_CACHE_CAPACITY as u32 * 3;
        for i in 0..total {
            cache.insert(v4(i), i % 2 == 0, t0 + Duration::from_micros(u64::from(i)));
        }
        assert_eq!(cache.len(), DEFAULT_CACHE_CAPACITY);
        assert!(cache.order.len() <= DEFAULT_CACHE_CAPACITY);
        let now = t0 + Duration::from_secs(1);
        assert_eq!(cache.get(v4(0), now), None);
        assert_eq!(
            cache.get(v4(total - DEFAULT_CACHE_CAPACITY as u32 - 1), now),
            None
        );
        assert_eq!(
            cache.get(v4(total - DEFAULT_CACHE_CAPACITY as u32), now),
            Some(true)
        );
        assert_eq!(cache.get(v4(total - 1), now), Some(false));
        // The same address answered over and over does not fill the queue either.
        let mut cache = AnswerCache::new(Duration::from_secs(3600), 4);
        for i in 0..100u64 {
            cache.insert(a("192.0.2.1"), true, t0 + Duration::from_micros(i));
        }
        assert_eq!((cache.len(), cache.order.len()), (1, 4));
    }

    #[test]
    fn no_ttl_or_no_room_caches_nothing() {
        let t0 = Instant::now();
        let mut cache = AnswerCache::new(Duration::ZERO, 16);
        cache.insert(a("192.0.2.1"), true, t0);
        assert_eq!((cache.len(), cache.get(a("192.0.2.1"), t0)), (0, None));
        let mut cache = AnswerCache::new(Duration::from_secs(1), 0);
        cache.insert(a("192.0.2.1"), true, t0);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn warnings_come_at_most_once_a_minute_counting_the_rest() {
        let t0 = Instant::now();
        let mut limiter = WarnLimiter::default();
        assert_eq!(limiter.due(t0), Some(0));
        assert_eq!(limiter.due(t0 + Duration::from_secs(1)), None);
        assert_eq!(limiter.due(t0 + Duration::from_secs(59)), None);
        assert_eq!(limiter.due(t0 + Duration::from_secs(60)), Some(2));
        assert_eq!(limiter.due(t0 + Duration::from_secs(61)), None);
        assert_eq!(limiter.due(t0 + Duration::from_secs(200)), Some(1));
    }

    #[test]
    fn reasons_from_elsewhere_are_bounded_and_escaped() {
        assert_eq!(bounded("a\nb\u{1b}"), "a\\nb\\u{1b}");
        let long = bounded(&"x".repeat(1000));
        assert_eq!(long.len(), MAX_REASON + 3);
        assert!(long.ends_with("..."));
    }

    fn source() -> config::DaemonSource {
        config::DaemonSource {
            bus: DaemonBus::System,
            name: "org.example.Trust".into(),
            path: "/org/example/Trust".into(),
            interface: "org.example.Trust".into(),
            method: "IsTrusted".into(),
            timeout: Duration::from_millis(200),
        }
    }

    #[test]
    fn a_source_can_be_shared_and_its_questions_spawned() {
        fn shareable<T: Send + Sync>(_: &T) {}
        fn spawnable<T: Send>(_: T) {}
        let source = DaemonSource::new(&source(), Duration::ZERO).unwrap();
        shareable(&source);
        spawnable(source.is_trusted(a("192.0.2.1")));
    }

    #[test]
    fn a_source_built_by_hand_is_checked_too() {
        let good = DaemonSource::new(&source(), Duration::ZERO).unwrap();
        assert_eq!(
            good.to_string(),
            "org.example.Trust /org/example/Trust org.example.Trust.IsTrusted on the system bus"
        );
        let e = DaemonSource::new(
            &config::DaemonSource {
                name: "no-dots".into(),
                ..source()
            },
            Duration::ZERO,
        )
        .unwrap_err();
        assert_eq!((e.what, e.value.as_str()), ("bus name", "no-dots"));
        let e = DaemonSource::new(
            &config::DaemonSource {
                bus: DaemonBus::Address("nowhere:x=1".into()),
                ..source()
            },
            Duration::ZERO,
        )
        .unwrap_err();
        assert_eq!(e.what, "bus address");
        for (path, method) in [("org", "IsTrusted"), ("/", "Is.Trusted")] {
            assert!(
                DaemonSource::new(
                    &config::DaemonSource {
                        path: path.into(),
                        method: method.into(),
                        ..source()
                    },
                    Duration::ZERO,
                )
                .is_err()
            );
        }
    }
}
