//! `[services.NAME]`: a service's log source, thresholds and patterns ([`ServiceConfig`],
//! [`JournalMatch`], [`Pattern`]).

use super::*;

// ---------------------------------------------------------------------------------------------
// [services.NAME]

/// `[general] services_dir` by default.
pub const DEFAULT_SERVICES_DIR: &str = "/etc/crmonban/services.d";

/// `[general] services_dir` as `text` sets it, read without checking the rest of the file
/// (the packs there must be loaded before the rest can be). `None` when the text does not set
/// it, or is not TOML (the full parse reports that).
pub fn services_dir_of(text: &str) -> Option<PathBuf> {
    let table: toml::Table = text.parse().ok()?;
    let dir = table.get("general")?.get("services_dir")?.as_str()?;
    Some(PathBuf::from(dir))
}

/// The names of the built-in service packs, in catalog order.
pub fn builtin_services() -> Vec<&'static str> {
    ServiceCatalog::builtin().names()
}

string_enum! {
    /// `[services.NAME] source`: where a service's log lines come from.
    pub enum LogSource {
        /// `log_path` if that file exists, else the journal (`journal_match`).
        Auto = "auto",
        /// Only `log_path`; waits for it to appear.
        File = "file",
        /// Only the systemd journal, filtered by `journal_match`.
        Journal = "journal",
    }
}

/// `[services.NAME]`: one protected service.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceConfig {
    /// Default true for ssh and for services the user adds; false for the other built-ins.
    pub enabled: bool,
    /// Absolute path of the log file; `None` only for a journal-only user service.
    pub log_path: Option<PathBuf>,
    /// Default `auto`.
    pub source: LogSource,
    /// Journal entries to read; required for `source = "journal"` unless built in.
    pub journal_match: Option<JournalMatch>,
    /// Failures within `find_time` that lead to a ban. Default 5.
    pub max_failures: u32,
    /// The counting window, measured with the log lines' own timestamps. Default 600 s.
    pub find_time: Duration,
    /// Default `[general] default_ban_duration`.
    pub ban_time: BanDuration,
    /// The user's patterns, used after the pack's.
    pub patterns: Vec<Pattern>,
    /// The service pack this service comes from; `None` for a service the configuration
    /// defines with patterns of its own.
    pub pack: Option<Arc<Pack>>,
    /// Count and ban IPv6 addresses by their network of this prefix length (1..=128, e.g. 64);
    /// `None` (the default) or 128: single addresses.
    pub ipv6_prefix: Option<u8>,
    /// The ports the service listens on (`port`; default the pack's): what SIEM events name
    /// as the attacked port. A ban blocks every port of the address whatever this says.
    pub ports: Vec<u16>,
}

impl ServiceConfig {
    /// The defaults of a built-in service (by name or alias); `None` for other names.
    pub fn builtin(name: &str, ban_time: BanDuration) -> Option<ServiceConfig> {
        let pack = ServiceCatalog::builtin().find(name)?;
        Some(ServiceConfig::from_pack(pack, ban_time))
    }

    /// The defaults a pack gives its service.
    pub fn from_pack(pack: &Arc<Pack>, ban_time: BanDuration) -> ServiceConfig {
        let defaults = ServiceConfig::custom(pack.ban_time.unwrap_or(ban_time));
        ServiceConfig {
            enabled: pack.enabled,
            log_path: pack.log_path.clone(),
            journal_match: pack.journal_match.clone(),
            max_failures: pack.max_failures.unwrap_or(defaults.max_failures),
            find_time: pack.find_time.unwrap_or(defaults.find_time),
            ports: pack.ports.clone(),
            pack: Some(pack.clone()),
            ..defaults
        }
    }

    /// The defaults of a service the user adds: enabled, but with no source or pattern yet.
    pub fn custom(ban_time: BanDuration) -> ServiceConfig {
        ServiceConfig {
            enabled: true,
            log_path: None,
            source: LogSource::Auto,
            journal_match: None,
            max_failures: 5,
            find_time: Duration::from_secs(600),
            ban_time,
            patterns: Vec::new(),
            ipv6_prefix: None,
            ports: Vec::new(),
            pack: None,
        }
    }
}

/// A systemd journal filter in `journalctl` syntax: `FIELD=value` terms separated by blanks,
/// and `+` between alternatives. As in `journalctl`, terms on the same field are alternatives,
/// terms on different fields must all match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalMatch {
    terms: Vec<JournalTerm>,
}

/// One term of a [`JournalMatch`], in the order given (what `sd_journal_add_match` and
/// `sd_journal_add_disjunction` take).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JournalTerm {
    /// `FIELD=value`: entries whose field `name` is `value`.
    Field {
        /// The field name: `A-Z`, `0-9` and `_`, not starting with a digit.
        name: String,
        /// The value, compared exactly; may be empty.
        value: String,
    },
    /// `+`: what follows is an alternative to what precedes.
    Or,
}

/// Why a string is not a [`JournalMatch`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JournalMatchError {
    /// The text has no term at all.
    #[error("must name at least one FIELD=value, e.g. \"_SYSTEMD_UNIT=ssh.service\"")]
    Empty,
    /// A word without `=`; holds the word.
    #[error("{0:?} is not FIELD=value (e.g. _SYSTEMD_UNIT=ssh.service)")]
    NotAMatch(String),
    /// A field name with other characters than `A-Z`, `0-9` and `_`, or starting with a digit;
    /// holds the name.
    #[error("{0:?} is not a journal field name: use A-Z, 0-9 and `_`, not starting with a digit")]
    BadField(String),
    /// A `+` first, last, or after another `+`.
    #[error("`+` must stand between two matches")]
    MisplacedOr,
}

impl JournalMatch {
    /// Parses `journalctl` match syntax: blank-separated `FIELD=value` words and `+`.
    pub fn parse(text: &str) -> Result<JournalMatch, JournalMatchError> {
        let mut terms = Vec::new();
        for word in text.split_whitespace() {
            if word == "+" {
                if !matches!(terms.last(), Some(JournalTerm::Field { .. })) {
                    return Err(JournalMatchError::MisplacedOr);
                }
                terms.push(JournalTerm::Or);
                continue;
            }
            let (name, value) = word
                .split_once('=')
                .ok_or_else(|| JournalMatchError::NotAMatch(word.to_owned()))?;
            let valid_name = name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && name.chars().next().is_some_and(|c| !c.is_ascii_digit());
            if !valid_name {
                return Err(JournalMatchError::BadField(name.to_owned()));
            }
            terms.push(JournalTerm::Field {
                name: name.to_owned(),
                value: value.to_owned(),
            });
        }
        match terms.last() {
            None => Err(JournalMatchError::Empty),
            Some(JournalTerm::Or) => Err(JournalMatchError::MisplacedOr),
            Some(JournalTerm::Field { .. }) => Ok(JournalMatch { terms }),
        }
    }

    /// The terms in the order given; never empty, never starting or ending with
    /// [`JournalTerm::Or`].
    pub fn terms(&self) -> &[JournalTerm] {
        &self.terms
    }
}

impl fmt::Display for JournalMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, term) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match term {
                JournalTerm::Field { name, value } => write!(f, "{name}={value}")?,
                JournalTerm::Or => f.write_str("+")?,
            }
        }
        Ok(())
    }
}

/// A compiled detection pattern: a regex with a named group `ip` (`(?P<ip>...)` or
/// `(?<ip>...)`) that captures the offending address. Two patterns are equal when their name,
/// regex source and event type are.
#[derive(Clone, Debug)]
pub struct Pattern {
    /// The pattern's `name`, unique within its service.
    pub name: String,
    /// The compiled regex; it has a group named `ip`.
    pub regex: Regex,
    /// What a matching line means (`event_type`, default `failed_auth`).
    pub event_type: EventKind,
}

/// Why a regex cannot be a [`Pattern`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The regex does not compile; holds the regex crate's reason on one line.
    #[error("invalid regex: {0}")]
    InvalidRegex(String),
    /// The regex compiles but has no group named `ip`.
    #[error("the regex has no named group `ip`: capture the address with (?P<ip>...)")]
    NoIpGroup,
}

impl Pattern {
    /// Compiles `regex` and checks that it captures `ip`.
    pub fn new(name: &str, regex: &str, event_type: EventKind) -> Result<Pattern, PatternError> {
        let compiled = Regex::new(regex).map_err(|e| PatternError::InvalidRegex(one_line(&e)))?;
        if !compiled.capture_names().any(|group| group == Some("ip")) {
            return Err(PatternError::NoIpGroup);
        }
        Ok(Pattern {
            name: name.to_owned(),
            regex: compiled,
            event_type,
        })
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.name == other.name
            && self.regex.as_str() == other.regex.as_str()
            && self.event_type == other.event_type
    }
}

/// A regex error on one line. The crate's message draws carets under the pattern on
/// separate lines; keep its last line (the reason) and turn the carets into a position.
pub(crate) fn one_line(error: &regex::Error) -> String {
    let regex::Error::Syntax(text) = error else {
        return error.to_string();
    };
    let lines: Vec<&str> = text.lines().collect();
    let reason = lines
        .iter()
        .rev()
        .find_map(|line| line.strip_prefix("error: "));
    // Single-line patterns are shown as "    <pattern>" then "    <spaces>^^^".
    let position = match lines.as_slice() {
        [_, _, carets, ..] if carets.trim_start().starts_with('^') => carets
            .find('^')
            .and_then(|col| col.checked_sub(4))
            .map(|col| col + 1),
        _ => None,
    };
    match (reason, position) {
        (Some(reason), Some(at)) => format!("{reason} (at character {at})"),
        (Some(reason), None) => reason.to_owned(),
        (None, _) => lines.join(" "),
    }
}
