//! [`Ban`]: one decision to block a [`Target`], with where it came from and how long it lasts.
//! Times are Unix seconds (UTC) so that they store, compare and cross D-Bus unchanged.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Target;

/// The current time in Unix seconds: the unit of every time in bans, events and the store.
/// (Reading the clock is the one impurity this crate allows itself.)
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

/// Who asked for a ban. Stored as its string form (`"dbus"`, `"detector"`, ...).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BanSource {
    /// A detector counted enough failures in a log.
    Detector,
    /// An operator through D-Bus (crmonctl, busctl, another program).
    Dbus,
    /// Re-applied from the database when the daemon started.
    Restore,
    /// A blocklist feed.
    Blocklist,
    /// Another crmonban node.
    Fleet,
    /// An embedding program's own name for itself.
    Other(String),
}

impl BanSource {
    /// The stored and displayed name (`"detector"`, `"dbus"`, ...; an embedder's own name
    /// for [`BanSource::Other`]). [`str::parse`] gives the source back.
    pub fn as_str(&self) -> &str {
        match self {
            BanSource::Detector => "detector",
            BanSource::Dbus => "dbus",
            BanSource::Restore => "restore",
            BanSource::Blocklist => "blocklist",
            BanSource::Fleet => "fleet",
            BanSource::Other(name) => name,
        }
    }
}

impl FromStr for BanSource {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "detector" => BanSource::Detector,
            "dbus" => BanSource::Dbus,
            "restore" => BanSource::Restore,
            "blocklist" => BanSource::Blocklist,
            "fleet" => BanSource::Fleet,
            other => BanSource::Other(other.to_owned()),
        })
    }
}

impl fmt::Display for BanSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ban as the engine, the store and the firewall see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    /// The address or network blocked.
    pub target: Target,
    /// Free text for operators: the detector's count and window, a D-Bus caller's note
    /// (`"manual ban"` when it gave none), ...
    pub reason: String,
    /// Who asked for the ban.
    pub source: BanSource,
    /// The service whose log caused the ban (`None` for manual bans).
    pub service: Option<String>,
    /// Unix seconds.
    pub banned_at: i64,
    /// Unix seconds; `None` means permanent.
    pub expires_at: Option<i64>,
    /// 1 for a first ban of this target, 2 for the second, ... (drives escalation).
    pub offence: u32,
}

impl Ban {
    /// True when the ban is still in force at `now` (Unix seconds).
    pub fn is_active_at(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|end| end > now)
    }

    /// Seconds left at `now`: `None` for a permanent ban, `Some(0)` once expired.
    pub fn remaining_at(&self, now: i64) -> Option<u64> {
        self.expires_at
            .map(|end| u64::try_from(end.saturating_sub(now)).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(expires_at: Option<i64>) -> Ban {
        Ban {
            target: Target::parse("192.0.2.7").unwrap(),
            reason: "test".into(),
            source: BanSource::Dbus,
            service: None,
            banned_at: 1_000,
            expires_at,
            offence: 1,
        }
    }

    #[test]
    fn activity_and_remaining_time() {
        assert!(ban(None).is_active_at(i64::MAX));
        assert_eq!(ban(None).remaining_at(5_000), None);
        let timed = ban(Some(2_000));
        assert!(timed.is_active_at(1_999));
        assert!(!timed.is_active_at(2_000));
        assert_eq!(timed.remaining_at(1_500), Some(500));
        assert_eq!(timed.remaining_at(3_000), Some(0));
    }

    #[test]
    fn source_round_trips_through_text() {
        for s in [
            "detector",
            "dbus",
            "restore",
            "blocklist",
            "fleet",
            "crrouter",
        ] {
            assert_eq!(s.parse::<BanSource>().unwrap().as_str(), s);
        }
    }
}
