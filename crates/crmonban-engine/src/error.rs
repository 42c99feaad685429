//! [`EngineError`]: why the engine did not do what it was asked. Refusals name the target and
//! the reason; firewall and store failures keep the layer's own message.

use crmonban_core::Target;
use crmonban_firewall::FirewallError;
use crmonban_store::StoreError;
use crmonban_zones::{Entry, Refusal, ZonesFileError};

/// Why an engine operation failed. Whatever the variant, the kernel and the store still
/// agree: a ban that failed is in neither.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The target is (or contains) an address that is never banned: loopback, link-local,
    /// multicast, unspecified, broadcast or one of this host's own addresses. `why` is a
    /// sentence that names the address, e.g. "127.0.0.1 is a loopback address".
    #[error("cannot ban {target}: {why}")]
    Protected {
        /// The target that was to be banned.
        target: Target,
        /// Why it is protected, naming the address.
        why: String,
    },
    /// The target lies in, or contains, `entry` of a whitelist source or a protecting zone.
    #[error("cannot ban {target}: {}", whitelisted_why(target, entry))]
    Whitelisted {
        /// The target that was to be banned.
        target: Target,
        /// The whitelist entry that protects it, with its origin.
        entry: Entry,
    },
    /// The firewall refused or could not be reached; nothing was recorded.
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    /// The store failed; the firewall was put back as it was.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The zones file (`[zones] config_file`) cannot be used; nothing of it applied.
    #[error("zones file {0}")]
    ZonesFile(#[from] ZonesFileError),
    /// The engine has been shut down (or its firewall thread ended unexpectedly).
    #[error("the crmonban engine has been shut down (or its firewall thread has ended)")]
    Stopped,
}

fn whitelisted_why(target: &Target, entry: &Entry) -> String {
    Refusal::Whitelisted {
        target: *target,
        entry: entry.clone(),
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        Target::parse(s).unwrap()
    }

    #[test]
    fn whitelist_refusals_say_which_way_round_and_name_the_source() {
        let entry = |target: &str| Entry {
            target: t(target),
            origin: crmonban_zones::Origin::Database,
            comment: String::new(),
        };
        let inside = EngineError::Whitelisted {
            target: t("192.0.2.0/24"),
            entry: entry("192.0.2.0/24"),
        };
        assert_eq!(
            inside.to_string(),
            "cannot ban 192.0.2.0/24: 192.0.2.0/24 is whitelisted (database: 192.0.2.0/24)"
        );
        let around = EngineError::Whitelisted {
            target: t("10.0.0.0/8"),
            entry: entry("10.1.0.0/16"),
        };
        assert_eq!(
            around.to_string(),
            "cannot ban 10.0.0.0/8: 10.0.0.0/8 contains whitelisted 10.1.0.0/16 (database: 10.1.0.0/16)"
        );
    }
}
