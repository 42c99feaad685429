//! Engine events as SIEM events ([`to_siem`]), and the per-address coalescing of attacks
//! ([`AttackWindows`]): under a flood a SIEM gets an address's first attack at once, then one
//! event per interval carrying how many there were, instead of one per log line.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crmonban_core::Ban;
use crmonban_siem::{Action, SiemEvent};

use crate::{Engine, EngineEvent};

/// Unix microseconds now.
pub(super) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// What `event` means to a SIEM; `None` for what SIEMs are not told (layout repairs are in
/// the activity log and the daemon's log).
pub(super) fn to_siem(event: &EngineEvent, engine: &Engine, at_micros: i64) -> Option<SiemEvent> {
    let mut out = match event {
        EngineEvent::BanAdded { ban } => ban_added(ban, at_micros),
        EngineEvent::BanRemoved { target, reason } => {
            let mut e = SiemEvent::new(Action::BanRemoved, at_micros);
            e.target = Some(*target);
            e.reason.clone_from(reason);
            e
        }
        EngineEvent::AttackDetected {
            addr,
            service,
            kind,
            count,
        } => {
            let mut e = SiemEvent::new(Action::AttackDetected, at_micros);
            e.target = Some((*addr).into());
            e.service = Some(service.clone());
            e.attack_kind = Some(kind.clone());
            e.count = (*count).max(1);
            e
        }
        EngineEvent::WhitelistChanged {
            target,
            added,
            comment,
        } => {
            let action = if *added {
                Action::WhitelistAdded
            } else {
                Action::WhitelistRemoved
            };
            let mut e = SiemEvent::new(action, at_micros);
            e.target = Some(*target);
            e.reason.clone_from(comment);
            e
        }
        EngineEvent::DaemonStarted => SiemEvent::new(Action::DaemonStarted, at_micros),
        EngineEvent::DaemonStopping => SiemEvent::new(Action::DaemonStopping, at_micros),
        EngineEvent::LayoutRepaired { .. } => return None,
    };
    if let Some(crmonban_core::Target::Addr(ip)) = out.target {
        out.intel = engine.intel_summary(&ip).map(|s| s.to_string());
    }
    Some(out)
}

fn ban_added(ban: &Ban, at_micros: i64) -> SiemEvent {
    let mut e = SiemEvent::new(Action::BanAdded, at_micros);
    e.target = Some(ban.target);
    e.service.clone_from(&ban.service);
    e.source = Some(ban.source.as_str().to_owned());
    e.reason.clone_from(&ban.reason);
    e.expires_at = ban.expires_at;
    e.duration_secs = ban
        .expires_at
        .map(|end| u64::try_from(end.saturating_sub(ban.banned_at)).unwrap_or(0));
    e.offence = Some(ban.offence);
    e
}

/// Addresses whose attack windows are remembered at most; beyond, attacks pass uncoalesced.
pub(super) const MAX_WINDOWS: usize = 10_000;

/// Attack coalescing per (address, service, kind).
pub(super) struct AttackWindows {
    interval: Duration,
    windows: HashMap<(IpAddr, String, String), Window>,
}

struct Window {
    ends: Instant,
    /// Attacks seen since the last event sent, and the latest of them.
    pending: u32,
    latest: Option<SiemEvent>,
}

impl AttackWindows {
    pub(super) fn new(interval: Duration) -> AttackWindows {
        AttackWindows {
            interval,
            windows: HashMap::new(),
        }
    }

    /// The event to send now for this attack, if any: the first of a window is sent (with
    /// the count it carries), later ones are added to the window's count.
    pub(super) fn admit(&mut self, event: SiemEvent, now: Instant) -> Option<SiemEvent> {
        if self.interval.is_zero() {
            return Some(event);
        }
        let Some(key) = key(&event) else {
            return Some(event);
        };
        if let Some(window) = self.windows.get_mut(&key) {
            window.pending = window.pending.saturating_add(event.count);
            window.latest = Some(event);
            return None;
        }
        if self.windows.len() < MAX_WINDOWS {
            self.windows.insert(
                key,
                Window {
                    ends: now + self.interval,
                    pending: 0,
                    latest: None,
                },
            );
        }
        Some(event)
    }

    /// Windows that have ended: those with attacks pending give one event carrying their
    /// count (and start a new window); the quiet ones are forgotten.
    pub(super) fn expire(&mut self, now: Instant) -> Vec<SiemEvent> {
        let mut out = Vec::new();
        let interval = self.interval;
        self.windows.retain(|_, window| {
            if window.ends > now {
                return true;
            }
            match window.latest.take() {
                Some(mut event) => {
                    event.count = window.pending.max(1);
                    out.push(event);
                    window.pending = 0;
                    window.ends = now + interval;
                    true
                }
                None => false,
            }
        });
        out
    }

    /// Every pending count as an event, at once (at shutdown).
    pub(super) fn drain(&mut self) -> Vec<SiemEvent> {
        self.windows
            .drain()
            .filter_map(|(_, mut window)| {
                let mut event = window.latest.take()?;
                event.count = window.pending.max(1);
                Some(event)
            })
            .collect()
    }

    /// The interval the windows were made with.
    pub(super) fn interval(&self) -> Duration {
        self.interval
    }

    /// Windows remembered now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.windows.len()
    }
}

fn key(event: &SiemEvent) -> Option<(IpAddr, String, String)> {
    let crmonban_core::Target::Addr(ip) = event.target? else {
        return None;
    };
    Some((
        ip,
        event.service.clone().unwrap_or_default(),
        event.attack_kind.clone().unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attack(addr: &str, count: u32) -> SiemEvent {
        let mut e = SiemEvent::new(Action::AttackDetected, 0);
        e.target = Some(crmonban_core::Target::parse(addr).unwrap());
        e.service = Some("ssh".into());
        e.attack_kind = Some("failed_auth".into());
        e.count = count;
        e
    }

    #[test]
    fn a_flood_is_its_first_attack_then_one_event_per_interval_with_the_count() {
        let t0 = Instant::now();
        let mut w = AttackWindows::new(Duration::from_secs(10));
        assert_eq!(
            w.admit(attack("203.0.113.5", 1), t0).map(|e| e.count),
            Some(1)
        );
        for _ in 0..5 {
            assert!(
                w.admit(attack("203.0.113.5", 3), t0 + Duration::from_secs(1))
                    .is_none()
            );
        }
        // Another address has its own window.
        assert!(w.admit(attack("203.0.113.6", 1), t0).is_some());
        assert!(w.expire(t0 + Duration::from_secs(9)).is_empty());
        let out = w.expire(t0 + Duration::from_secs(10));
        assert_eq!(out.len(), 1, "only the address with attacks pending");
        assert_eq!(out[0].count, 15);
        assert_eq!(
            w.len(),
            1,
            "the quiet address is forgotten, the busy one continues"
        );
        assert!(
            w.admit(attack("203.0.113.5", 2), t0 + Duration::from_secs(11))
                .is_none()
        );
        let out = w.drain();
        assert_eq!(out.iter().map(|e| e.count).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn interval_zero_and_networks_pass_and_memory_is_bounded() {
        let t0 = Instant::now();
        let mut zero = AttackWindows::new(Duration::ZERO);
        assert!(zero.admit(attack("203.0.113.5", 1), t0).is_some());
        assert!(zero.admit(attack("203.0.113.5", 1), t0).is_some());
        let mut w = AttackWindows::new(Duration::from_secs(10));
        for i in 0..(MAX_WINDOWS + 100) {
            let addr = std::net::Ipv4Addr::from(0x0b00_0000 + u32::try_from(i).unwrap());
            assert!(w.admit(attack(&addr.to_string(), 1), t0).is_some());
        }
        assert_eq!(w.len(), MAX_WINDOWS);
    }
}
