//! `[fleet]`: sharing bans with other crmonban nodes through a PostgreSQL database.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// Ban sources a node may publish (`share`); `manual` is another name for `dbus`.
pub const SHAREABLE_SOURCES: [&str; 3] = ["detector", "dbus", "blocklist"];

/// `[fleet]`.
#[derive(Clone, Debug, PartialEq)]
pub struct FleetConfig {
    /// Default false.
    pub enabled: bool,
    /// `postgres://user@host[:port]/database[?sslmode=verify-full&sslrootcert=...]`, best
    /// without a password (see `password_file`). Empty when `url_file` gives it.
    pub url: String,
    /// A file (mode 600 or stricter) holding the URL, password included, instead of `url`.
    pub url_file: Option<PathBuf>,
    /// A file (mode 600 or stricter) holding the database password.
    pub password_file: Option<PathBuf>,
    /// This node's name in the fleet; default: the host name.
    pub node_name: Option<String>,
    /// The ban sources this node publishes. Default detector and dbus.
    pub share: BTreeSet<String>,
    /// Whose bans this node applies: `None` = every node (`["*"]`, the default).
    pub accept: Option<BTreeSet<String>>,
    /// Timed bans shorter than this are not published. Default 10 minutes.
    pub min_ban_time: Duration,
    /// Changes published a second at most; the rest wait in the outbox. Default 100.
    pub max_publish_rate: u32,
    /// A ban reported by this many nodes (or more) within `escalate_window` is applied
    /// `escalate_factor` times as long; 0 = never. Default 3.
    pub escalate_after: u32,
    /// Default 4.0.
    pub escalate_factor: f64,
    /// How far back reports count towards `escalate_after`. Default 24 hours.
    pub escalate_window: Duration,
    /// Changes that no longer say anything (unbans, ended bans, bans replaced) are deleted
    /// from the fleet database this long after they were published; zero: never. At least
    /// `escalate_window`. Default 7 days.
    pub prune_after: Duration,
    /// How often the node says it is alive. Default 30 s.
    pub heartbeat: Duration,
}

impl Default for FleetConfig {
    fn default() -> FleetConfig {
        FleetConfig {
            enabled: false,
            url: String::new(),
            url_file: None,
            password_file: None,
            node_name: None,
            share: ["detector", "dbus"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            accept: None,
            min_ban_time: Duration::from_secs(600),
            max_publish_rate: 100,
            escalate_after: 3,
            escalate_factor: 4.0,
            escalate_window: Duration::from_secs(24 * 3600),
            prune_after: Duration::from_secs(7 * 24 * 3600),
            heartbeat: Duration::from_secs(30),
        }
    }
}

/// Whether `name` may name a node (what the fleet database accepts too): a letter or digit,
/// then letters, digits, `.`, `_` or `-`, 63 characters at most.
pub fn is_node_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
