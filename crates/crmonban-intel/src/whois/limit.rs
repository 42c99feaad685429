//! How often each WHOIS server may be asked: a token bucket per server host (at most
//! `per_minute` queries in any rolling minute, refilled evenly), and a closed door for a
//! while after the server said "slow down" or "denied" — RIPE and ARIN block clients that
//! keep asking, so we stop asking before they do.
//!
//! The limiter only decides; the caller waits. Times are passed in, so the arithmetic is
//! tested without sleeping.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Servers remembered at most. A host whose bucket is full again and whose door is open
/// carries no state worth keeping, so it is forgotten first; the hosts come from referrals
/// in answers, so their number must not grow without bound.
const MAX_HOSTS: usize = 1024;

/// Why a query to a server may not be sent now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Held {
    /// Our own budget for the server is spent for longer than the caller can wait.
    Budget {
        /// When the next query would be allowed.
        wait: Duration,
    },
    /// The server told us to slow down; we leave it alone until then.
    RateLimited { remaining: Duration },
    /// The server refused us; we leave it alone until then.
    Refused {
        remaining: Duration,
        /// The server's words, bounded.
        message: String,
    },
}

/// Why the door to a server is closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Closed {
    RateLimited,
    Refused(String),
}

#[derive(Debug)]
struct HostState {
    /// Queries that may be sent now; below 1 after reservations by waiting callers.
    tokens: f64,
    refilled_at: Instant,
    closed: Option<(Instant, Closed)>,
}

/// The per-server budgets.
#[derive(Debug)]
pub(super) struct Limiter {
    per_minute: u32,
    hosts: Mutex<HashMap<String, HostState>>,
}

impl Limiter {
    /// At most `per_minute` queries to each host in any minute (`per_minute` > 0).
    pub(super) fn new(per_minute: u32) -> Limiter {
        Limiter {
            per_minute: per_minute.max(1),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    fn rate_per_second(&self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }

    /// Takes one query from `host`'s budget at `now`: `Ok(wait)` when it may be sent after
    /// `wait` (zero when at once; the query is reserved, so waiting callers queue in turn),
    /// or why not when the door is closed or the wait would be `max_wait` or longer.
    pub(super) fn admit(
        &self,
        host: &str,
        now: Instant,
        max_wait: Duration,
    ) -> Result<Duration, Held> {
        let capacity = f64::from(self.per_minute);
        let rate = self.rate_per_second();
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        if !hosts.contains_key(host) && hosts.len() >= MAX_HOSTS {
            self.forget_idle(&mut hosts, now);
        }
        let state = hosts.entry(host.to_owned()).or_insert(HostState {
            tokens: capacity,
            refilled_at: now,
            closed: None,
        });
        if let Some((until, why)) = &state.closed {
            if let Some(remaining) = until.checked_duration_since(now).filter(|d| !d.is_zero()) {
                return Err(match why {
                    Closed::RateLimited => Held::RateLimited { remaining },
                    Closed::Refused(message) => Held::Refused {
                        remaining,
                        message: message.clone(),
                    },
                });
            }
            state.closed = None;
        }
        let elapsed = now
            .saturating_duration_since(state.refilled_at)
            .as_secs_f64();
        state.tokens = (state.tokens + elapsed * rate).min(capacity);
        state.refilled_at = now;
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            return Ok(Duration::ZERO);
        }
        let wait = Duration::from_secs_f64((1.0 - state.tokens) / rate);
        if wait >= max_wait {
            return Err(Held::Budget { wait });
        }
        state.tokens -= 1.0;
        Ok(wait)
    }

    /// Closes the door to `host` for `duration` from `now`.
    pub(super) fn close(&self, host: &str, now: Instant, duration: Duration, why: Closed) {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        if !hosts.contains_key(host) && hosts.len() >= MAX_HOSTS {
            self.forget_idle(&mut hosts, now);
        }
        let capacity = f64::from(self.per_minute);
        let state = hosts.entry(host.to_owned()).or_insert(HostState {
            tokens: capacity,
            refilled_at: now,
            closed: None,
        });
        state.closed = Some((now + duration, why));
    }

    /// Forgets the hosts that would start afresh anyway (full bucket, open door); when none
    /// is, the one refilled longest ago, so the map stays at [`MAX_HOSTS`].
    fn forget_idle(&self, hosts: &mut HashMap<String, HostState>, now: Instant) {
        let capacity = f64::from(self.per_minute);
        let rate = self.rate_per_second();
        hosts.retain(|_, state| {
            let elapsed = now
                .saturating_duration_since(state.refilled_at)
                .as_secs_f64();
            let full = state.tokens + elapsed * rate >= capacity;
            let open = state.closed.as_ref().is_none_or(|(until, _)| *until <= now);
            !(full && open)
        });
        if hosts.len() >= MAX_HOSTS
            && let Some(oldest) = hosts
                .iter()
                .min_by_key(|(_, state)| state.refilled_at)
                .map(|(host, _)| host.clone())
        {
            hosts.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    #[test]
    fn the_budget_allows_per_minute_at_once_then_one_every_share_of_a_minute() {
        let limiter = Limiter::new(2);
        let start = Instant::now();
        assert_eq!(
            limiter.admit("whois.ripe.net", start, LONG),
            Ok(Duration::ZERO)
        );
        assert_eq!(
            limiter.admit("whois.ripe.net", start, LONG),
            Ok(Duration::ZERO)
        );
        // Two a minute: the third waits 30 s, the fourth (reserved behind it) 60 s.
        let third = limiter
            .admit("whois.ripe.net", start, LONG)
            .expect("may wait");
        assert!((29.9..=30.1).contains(&third.as_secs_f64()), "{third:?}");
        let fourth = limiter
            .admit("whois.ripe.net", start, LONG)
            .expect("may wait");
        assert!((59.9..=60.1).contains(&fourth.as_secs_f64()), "{fourth:?}");
        // Another server has its own budget.
        assert_eq!(
            limiter.admit("whois.arin.net", start, LONG),
            Ok(Duration::ZERO)
        );
        // After two minutes the reservations are paid back and one query is free again.
        let later = start + Duration::from_secs(121);
        assert_eq!(
            limiter.admit("whois.ripe.net", later, LONG),
            Ok(Duration::ZERO)
        );
    }

    #[test]
    fn a_wait_longer_than_the_caller_can_afford_is_refused_without_spending() {
        let limiter = Limiter::new(2);
        let start = Instant::now();
        limiter.admit("h", start, LONG).expect("first");
        limiter.admit("h", start, LONG).expect("second");
        match limiter.admit("h", start, Duration::from_millis(500)) {
            Err(Held::Budget { wait }) => assert!(wait > Duration::from_secs(29), "{wait:?}"),
            other => panic!("expected the budget to hold, got {other:?}"),
        }
        // The refusal reserved nothing: 30 s later the next query goes at once.
        assert_eq!(
            limiter.admit("h", start + Duration::from_secs(30), LONG),
            Ok(Duration::ZERO)
        );
    }

    #[test]
    fn a_closed_door_holds_until_it_opens() {
        let limiter = Limiter::new(20);
        let start = Instant::now();
        limiter.close(
            "whois.arin.net",
            start,
            Duration::from_secs(60),
            Closed::RateLimited,
        );
        assert_eq!(
            limiter.admit("whois.arin.net", start + Duration::from_secs(10), LONG),
            Err(Held::RateLimited {
                remaining: Duration::from_secs(50)
            })
        );
        limiter.close(
            "whois.ripe.net",
            start,
            Duration::from_secs(60),
            Closed::Refused("denied".into()),
        );
        assert!(matches!(
            limiter.admit("whois.ripe.net", start, LONG),
            Err(Held::Refused { .. })
        ));
        assert_eq!(
            limiter.admit("whois.arin.net", start + Duration::from_secs(60), LONG),
            Ok(Duration::ZERO)
        );
    }

    #[test]
    fn the_hosts_remembered_stay_bounded() {
        let limiter = Limiter::new(20);
        let start = Instant::now();
        for n in 0..3 * MAX_HOSTS {
            let now = start + Duration::from_millis(n as u64);
            limiter
                .admit(&format!("whois{n}.example.net"), now, LONG)
                .expect("fresh host");
        }
        let hosts = limiter.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(hosts.len() <= MAX_HOSTS, "{}", hosts.len());
    }
}
