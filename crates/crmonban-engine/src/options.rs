//! [`EngineOptions`]: what an embedder tunes when it starts an [`Engine`](crate::Engine), and
//! [`Escalation`], the policy that lengthens the bans of repeat offenders.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crmonban_core::config::{BanDuration, Config};

/// Options for [`Engine::start`](crate::Engine::start).
#[derive(Clone)]
pub struct EngineOptions {
    /// The length of a ban whose request gives none (`[general] default_ban_duration`).
    pub default_ban: BanDuration,
    /// How often ended bans are looked for in the store. Default 1 s.
    pub expiry_interval: Duration,
    /// How often the nftables layout is probed (and re-created with every active ban when
    /// someone deleted it). Default 2 s.
    pub repair_interval: Duration,
    /// Lengthens bans of targets banned before. Default [`NoEscalation`].
    pub escalation: Arc<dyn Escalation>,
    /// How many events the bus holds for a subscriber that reads slowly before it starts
    /// losing the oldest. Default 4096.
    pub event_capacity: usize,
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        EngineOptions {
            default_ban: BanDuration::Timed(Duration::from_secs(3600)),
            expiry_interval: Duration::from_secs(1),
            repair_interval: Duration::from_secs(2),
            escalation: Arc::new(NoEscalation),
            event_capacity: 4096,
        }
    }
}

impl EngineOptions {
    /// The options a configuration asks for; what the configuration does not cover keeps its
    /// default.
    pub fn from_config(config: &Config) -> EngineOptions {
        EngineOptions {
            default_ban: config.general.default_ban_duration,
            ..EngineOptions::default()
        }
    }
}

impl fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineOptions")
            .field("default_ban", &self.default_ban)
            .field("expiry_interval", &self.expiry_interval)
            .field("repair_interval", &self.repair_interval)
            .field("event_capacity", &self.event_capacity)
            .finish_non_exhaustive()
    }
}

/// Decides how long a ban lasts given how often the target was banned before.
pub trait Escalation: Send + Sync {
    /// The duration to apply for a ban that asked for `requested`, for a target with
    /// `previous_offences` earlier bans in the history (ended bans included).
    fn duration(&self, requested: BanDuration, previous_offences: u32) -> BanDuration;
}

/// Every ban lasts what it asked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEscalation;

impl Escalation for NoEscalation {
    fn duration(&self, requested: BanDuration, _previous_offences: u32) -> BanDuration {
        requested
    }
}

/// Doubles a timed ban for every earlier offence (1 h, 2 h, 4 h, ...), up to `max`.
/// Permanent bans stay permanent; `max` permanent means no cap below the longest timed ban
/// (`u32::MAX` seconds).
#[derive(Clone, Copy, Debug)]
pub struct DoublingEscalation {
    pub max: BanDuration,
}

impl Escalation for DoublingEscalation {
    fn duration(&self, requested: BanDuration, previous_offences: u32) -> BanDuration {
        let BanDuration::Timed(base) = requested else {
            return requested;
        };
        let cap = match self.max {
            BanDuration::Permanent => u64::from(u32::MAX),
            BanDuration::Timed(max) => max.as_secs().min(u64::from(u32::MAX)),
        };
        let factor = 1u64.checked_shl(previous_offences).unwrap_or(u64::MAX);
        let secs = base.as_secs().saturating_mul(factor).min(cap).max(1);
        BanDuration::Timed(Duration::from_secs(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(h: u64) -> BanDuration {
        BanDuration::Timed(Duration::from_secs(h * 3600))
    }

    #[test]
    fn doubling_is_capped_and_leaves_permanent_alone() {
        let e = DoublingEscalation { max: hours(24) };
        assert_eq!(e.duration(hours(1), 0), hours(1));
        assert_eq!(e.duration(hours(1), 3), hours(8));
        assert_eq!(e.duration(hours(1), 5), hours(24));
        assert_eq!(e.duration(hours(1), 200), hours(24));
        assert_eq!(
            e.duration(BanDuration::Permanent, 4),
            BanDuration::Permanent
        );
        assert_eq!(NoEscalation.duration(hours(2), 9), hours(2));
    }

    #[test]
    fn options_follow_the_config() {
        let mut config = Config::default();
        config.general.default_ban_duration = hours(5);
        let options = EngineOptions::from_config(&config);
        assert_eq!(options.default_ban, hours(5));
        assert_eq!(options.expiry_interval, Duration::from_secs(1));
        assert_eq!(options.event_capacity, 4096);
    }
}
