//! The engine's side of protection (DESIGN.md §7): the built-in [`Policy`] of crmonban-zones
//! (reserved ranges, this host's addresses, zones and whitelist sources), then an embedder's
//! own [`BanPolicy`] if it gave one. Refusals become [`EngineError`]s.

use std::sync::Arc;

use crmonban_core::Target;
use crmonban_core::config::{WhitelistConfig, WhitelistSource};
use crmonban_zones::{BanPolicy, DaemonAnswer, DaemonSource, Entry, Origin, Policy, Refusal};
use tracing::warn;

use crate::EngineError;

/// What the engine asks before any ban, and before detection counts a failure.
pub(crate) struct Protection {
    pub(crate) policy: Policy,
    pub(crate) extra: Option<Arc<dyn BanPolicy>>,
    /// The `daemon` sources, asked (asynchronously, within their timeouts) on the ban path
    /// only, after everything else allowed the ban.
    pub(crate) daemons: Vec<Arc<DaemonSource>>,
}

/// The `daemon` sources `whitelist` lists; one that cannot be set up is logged and left out.
pub(crate) fn daemon_sources(whitelist: &WhitelistConfig) -> Vec<Arc<DaemonSource>> {
    if !whitelist.enabled {
        return Vec::new();
    }
    whitelist
        .sources
        .iter()
        .filter_map(|source| match source {
            WhitelistSource::Daemon(config) => {
                match DaemonSource::new(config, whitelist.cache_ttl) {
                    Ok(daemon) => Some(Arc::new(daemon)),
                    Err(error) => {
                        warn!(%error, "a daemon whitelist source cannot be used; it is left out");
                        None
                    }
                }
            }
            _ => None,
        })
        .collect()
}

/// Asks `daemons` in turn whether the address `target` is trusted: the refusal of the first
/// that says so. A network target is not asked about (the question is per address); an
/// unanswered question counts as "not trusted" for this decision.
pub(crate) async fn ask_daemons(
    daemons: &[Arc<DaemonSource>],
    target: &Target,
) -> Result<(), EngineError> {
    let Target::Addr(addr) = target else {
        return Ok(());
    };
    for daemon in daemons {
        if daemon.is_trusted(*addr).await == DaemonAnswer::Trusted {
            return Err(EngineError::Whitelisted {
                target: *target,
                entry: Entry {
                    target: *target,
                    origin: Origin::Daemon {
                        service: daemon.to_string(),
                    },
                    comment: String::new(),
                },
            });
        }
    }
    Ok(())
}

impl Protection {
    /// Ok when `target` may be banned; otherwise the refusal, naming the target and why.
    pub(crate) fn check(&self, target: &Target) -> Result<(), EngineError> {
        self.policy.check(target).map_err(refusal_error)?;
        if let Some(extra) = &self.extra {
            extra.check(target).map_err(refusal_error)?;
        }
        Ok(())
    }
}

/// The engine's error for a refusal: `Whitelisted` for an entry of a source or a zone,
/// `Protected` for the rest.
pub(crate) fn refusal_error(refusal: Refusal) -> EngineError {
    match refusal {
        Refusal::Whitelisted { target, entry } => EngineError::Whitelisted { target, entry },
        Refusal::Reserved { target, .. } | Refusal::HostAddress { target, .. } => {
            EngineError::Protected {
                target,
                why: refusal.to_string(),
            }
        }
    }
}

/// The reason a ban ends with when the policy now refuses its target.
pub(crate) fn lift_reason(error: &EngineError) -> &'static str {
    match error {
        EngineError::Whitelisted { .. } => "whitelisted",
        _ => "protected",
    }
}
