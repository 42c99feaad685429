//! The engine's side of protection (DESIGN.md §7): the built-in [`Policy`] of crmonban-zones
//! (reserved ranges, this host's addresses, zones and whitelist sources), then an embedder's
//! own [`BanPolicy`] if it gave one. Refusals become [`EngineError`]s.

use std::sync::Arc;

use crmonban_core::Target;
use crmonban_zones::{BanPolicy, Policy, Refusal};

use crate::EngineError;

/// What the engine asks before any ban, and before detection counts a failure.
pub(crate) struct Protection {
    pub(crate) policy: Policy,
    pub(crate) extra: Option<Arc<dyn BanPolicy>>,
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
