//! [`EngineOptions`]: what an embedder tunes when it starts an [`Engine`](crate::Engine), and
//! [`Escalation`], the policy that lengthens the bans of repeat offenders.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crmonban_core::config::{BanDuration, Config, WhitelistConfig, ZonesConfig};
use crmonban_zones::BanPolicy;

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
    /// Lengthens bans of targets banned before. Default [`NoEscalation`];
    /// [`EngineOptions::from_config`] gives a [`FactorEscalation`].
    pub escalation: Arc<dyn Escalation>,
    /// How many events the bus holds for a subscriber that reads slowly before it starts
    /// losing the oldest. Default 4096.
    pub event_capacity: usize,
    /// The host's addresses are re-read when the kernel announces a change, and at least this
    /// often (in case a notification is lost). Default 30 s.
    pub host_address_poll: Duration,
    /// The whitelist sources (`[whitelist]`). Default: the database and zones sources.
    pub whitelist: WhitelistConfig,
    /// Zones (`[zones]`). Default: disabled.
    pub zones: ZonesConfig,
    /// An embedder's own protection policy, asked after the built-in one (which always
    /// applies: an embedder may add vetoes, never lift loopback, host or whitelist
    /// protection). Default none.
    pub extra_policy: Option<Arc<dyn BanPolicy>>,
    /// How much event and activity history the store keeps (`[general] history_days`,
    /// `max_event_rows`, `max_activity_rows`), enforced at start and every
    /// [`Retention::every`].
    pub retention: Retention,
}

/// Bounds on the store's event and activity history (ban history is kept whole).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Events and activity entries older than this are deleted. Default 30 days.
    pub max_age: Duration,
    /// Most rows the events table keeps, the newest. Default 1,000,000.
    pub max_event_rows: u64,
    /// Most entries the activity log keeps, the newest. Default 100,000.
    pub max_activity_rows: u64,
    /// How often the bounds are applied. Default 10 minutes.
    pub every: Duration,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            max_age: Duration::from_secs(30 * 86_400),
            max_event_rows: 1_000_000,
            max_activity_rows: 100_000,
            every: Duration::from_secs(600),
        }
    }
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        EngineOptions {
            default_ban: BanDuration::Timed(Duration::from_secs(3600)),
            expiry_interval: Duration::from_secs(1),
            repair_interval: Duration::from_secs(2),
            escalation: Arc::new(NoEscalation),
            event_capacity: 4096,
            host_address_poll: Duration::from_secs(30),
            whitelist: WhitelistConfig::default(),
            zones: ZonesConfig::default(),
            extra_policy: None,
            retention: Retention::default(),
        }
    }
}

impl EngineOptions {
    /// The options a configuration asks for; what the configuration does not cover keeps its
    /// default.
    pub fn from_config(config: &Config) -> EngineOptions {
        EngineOptions {
            default_ban: config.general.default_ban_duration,
            escalation: Arc::new(FactorEscalation::from_config(config)),
            whitelist: config.whitelist.clone(),
            zones: config.zones.clone(),
            retention: Retention {
                max_age: Duration::from_secs(u64::from(config.general.history_days) * 86_400),
                max_event_rows: config.general.max_event_rows,
                max_activity_rows: config.general.max_activity_rows,
                ..Retention::default()
            },
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
            .field("host_address_poll", &self.host_address_poll)
            .field("whitelist", &self.whitelist)
            .field("zones", &self.zones)
            .field("retention", &self.retention)
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

/// Multiplies a timed ban by `factor` for every earlier offence (`base × factor^previous`:
/// with 2.0, 1 h, 2 h, 4 h, ...), up to `max` (`[general] ban_time_increment` and
/// `max_ban_time`). Permanent bans stay permanent. `max` bounds the escalation only: a ban
/// whose own length is already longer keeps that length. `None` means no cap below the
/// longest timed ban (`u32::MAX` seconds). A factor below 1 (or NaN) counts as 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FactorEscalation {
    /// The multiplier per earlier offence (`[general] ban_time_increment`).
    pub factor: f64,
    /// The longest an escalated ban becomes (`[general] max_ban_time`); `None`: no cap.
    pub max: Option<Duration>,
}

impl FactorEscalation {
    /// What `[general]` asks for.
    pub fn from_config(config: &Config) -> FactorEscalation {
        FactorEscalation {
            factor: config.general.ban_time_increment,
            max: config.general.max_ban_time,
        }
    }
}

impl Escalation for FactorEscalation {
    fn duration(&self, requested: BanDuration, previous_offences: u32) -> BanDuration {
        let BanDuration::Timed(base) = requested else {
            return requested;
        };
        let longest = u64::from(u32::MAX);
        let base_secs = base.as_secs().min(longest);
        let cap = self
            .max
            .map_or(longest, |max| max.as_secs().clamp(base_secs, longest));
        let factor = self.factor.max(1.0);
        // powi takes an i32; past 2^31 offences the product is infinite anyway for factor > 1.
        let exponent = i32::try_from(previous_offences).unwrap_or(i32::MAX);
        let scaled = base_secs as f64 * factor.powi(exponent);
        // `as` saturates for floats (infinity included); the cap applies after.
        let secs = (scaled as u64).min(cap).max(1);
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
    fn factor_escalation_multiplies_per_offence_up_to_the_cap() {
        let e = FactorEscalation {
            factor: 2.0,
            max: Some(Duration::from_secs(24 * 3600)),
        };
        assert_eq!(e.duration(hours(1), 0), hours(1));
        assert_eq!(e.duration(hours(1), 1), hours(2));
        assert_eq!(e.duration(hours(1), 3), hours(8));
        assert_eq!(e.duration(hours(1), 5), hours(24), "32 h capped");
        assert_eq!(e.duration(hours(1), 200), hours(24));
        assert_eq!(e.duration(hours(1), u32::MAX), hours(24));
        // The cap bounds escalation, it does not shorten a longer ban.
        assert_eq!(e.duration(hours(48), 3), hours(48));
        assert_eq!(
            e.duration(BanDuration::Permanent, 4),
            BanDuration::Permanent
        );

        let e = FactorEscalation {
            factor: 1.5,
            max: None,
        };
        assert_eq!(e.duration(hours(1), 2), BanDuration::from_secs(8100));
        assert_eq!(e.duration(hours(1), 1000), BanDuration::from_secs(u32::MAX));

        let flat = FactorEscalation {
            factor: 1.0,
            max: Some(Duration::from_secs(60)),
        };
        assert_eq!(flat.duration(hours(2), 9), hours(2));
        assert_eq!(NoEscalation.duration(hours(2), 9), hours(2));
    }

    #[test]
    fn options_follow_the_config() {
        let mut config = Config::default();
        config.general.default_ban_duration = hours(5);
        config.general.ban_time_increment = 3.0;
        config.general.max_ban_time = Some(Duration::from_secs(40 * 3600));
        let options = EngineOptions::from_config(&config);
        assert_eq!(options.default_ban, hours(5));
        assert_eq!(options.escalation.duration(hours(5), 1), hours(15));
        assert_eq!(options.escalation.duration(hours(5), 2), hours(40));
        assert_eq!(options.expiry_interval, Duration::from_secs(1));
        assert_eq!(options.event_capacity, 4096);

        // The defaults do not escalate.
        let options = EngineOptions::from_config(&Config::default());
        assert_eq!(options.escalation.duration(hours(1), 7), hours(1));
    }
}
