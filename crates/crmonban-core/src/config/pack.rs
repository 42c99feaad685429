//! Service packs: one TOML file per service that says everything crmonban knows about it —
//! its names, where its log lines are, how they are laid out, the patterns that find attacks
//! in them, and sample lines that prove the patterns right. The packs of the services crmonban
//! supports are built in ([`super::catalog`]); more are read from a directory (`[general]
//! services_dir`) by the daemon, a pack there replacing the built-in one of the same name.
//! This module reads and checks a pack's text; crmonban-detect runs its patterns and its
//! sample lines. The format is documented in docs/PACKS.md.
//!
//! ```toml
//! [service]
//! name = "ssh"
//! aliases = ["sshd"]
//! description = "OpenSSH server"
//! enabled = true                      # watched without a [services.ssh] section
//! # max_failures, find_time, ban_time: the service's defaults when they differ from the
//! # general ones (recidive: 5 bans in a day ban for a week)
//! log_path = "/var/log/auth.log"
//! port = 22                           # or [80, 443]: named in SIEM events
//! journal_match = "_SYSTEMD_UNIT=ssh.service _SYSTEMD_UNIT=sshd.service"
//! envelope = "syslog"                 # syslog | nginx-error | apache-error | access | plain
//! programs = ["sshd", "sshd-session"] # syslog: the tags of this service's lines
//!
//! [[patterns]]
//! name = "ssh-invalid-user"
//! kind = "invalid_user"
//! step = "context"                    # try | context | each (default each)
//! connection = "pid"                  # none | pid | session (default none)
//! prefixes = ["Invalid user "]        # the message starts with one of these
//! regex = '^Invalid user (?P<user>.*) from <IP>(?: port <PORT>)?$'
//!
//! [[tests]]
//! line = "Nov 25 16:19:59 host sshd[1234]: Invalid user admin from 192.0.2.7 port 51234"
//! ip = "192.0.2.7"                    # leave out: the line must not match
//! pattern = "ssh-invalid-user"        # optional
//! origin = "OpenSSH 9.2p1 auth.c, Debian 12"
//! ```

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use std::time::Duration;

use toml::de::DeTable;

use super::document::{Diagnostics, Table, Value, quoted_list};
use super::error::ConfigErrors;
use super::schema::{BanDuration, JournalMatch};
use crate::EventKind;

mod items;
use items::{read_pattern, read_test};

/// The address group `<IP>` stands for: a candidate the matcher validates as an IP address.
/// One character class, which keeps most patterns one-pass (the fastest regex engine); an
/// IPv4 `ADDR:PORT` it takes whole is split at the colon by the matcher.
pub const IP_GROUP: &str = r"(?P<ip>[0-9A-Fa-f:.]+)";
/// The port group `<PORT>` stands for.
pub const PORT_GROUP: &str = r"(?P<port>[0-9]{1,5})";
/// Named groups that hold text an attacker chooses (a user name, a URL, a certificate's key
/// id). The loader rewrites them in the sample lines with forged addresses, and the matcher
/// refuses a line in which they make the address ambiguous.
pub const ATTACKER_GROUPS: &[&str] = &["user", "request", "agent", "keyid", "client"];

/// How a line relates to one authentication attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// The line records one try (sshd's `Failed password`): every such line counts.
    Try,
    /// The line describes a connection's attempt without being a try of its own (`Invalid
    /// user`, `Connection closed ... [preauth]`): it counts only when no other line of the
    /// same connection has counted.
    Context,
    /// Every line counts on its own.
    Each,
}

/// Which part of a line identifies the connection an attempt belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionId {
    /// None: lines are counted one by one.
    None,
    /// The pid of the syslog tag or of the journal entry.
    Pid,
    /// The regex group `session`, or failing that the text of `session=<...>` after the
    /// address.
    Session,
}

/// How a service's lines are laid out around the message its patterns see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Envelope {
    /// `STAMP HOST TAG[PID]: MESSAGE` (BSD or RFC 3339 stamp) whose tag is one of `programs`
    /// (an entry ending in `/` or `*` matches every tag it starts), `STAMP TAG[PID]: MESSAGE`
    /// without a host (a program's own log file), or a bare `TAG[PID]: MESSAGE` / message
    /// (the journal).
    Syslog {
        /// The service's syslog tags (`programs`); never empty.
        programs: Vec<String>,
    },
    /// nginx error.log: `YYYY/MM/DD HH:MM:SS [level] PID#TID: *CID MESSAGE`.
    NginxError,
    /// Apache error log: `[DATE] MESSAGE`, the message starting with `[module:level]`.
    ApacheError,
    /// Common/combined access log: the whole line is the message (it starts with the client
    /// address); the time is the `[25/Nov/2026:16:19:52 +0000]` field.
    Access,
    /// No structure: the whole line; a leading timestamp is read when there is one.
    Plain,
}

/// One detection pattern of a pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackPattern {
    /// Unique in its pack: `ssh-failed-auth`, ...
    pub name: String,
    /// What a line this pattern matches means (`kind`).
    pub kind: EventKind,
    /// How a matched line counts towards the attempt it belongs to (`step`, default each).
    pub step: Step,
    /// What ties the line to its connection (`connection`, default none).
    pub connection: ConnectionId,
    /// The message starts with one of these (the prefilter; never empty).
    pub prefixes: Vec<String>,
    /// The message also contains this, when set (checked before the regex).
    pub needle: Option<String>,
    /// The regex as written, with `<IP>` and `<PORT>`.
    pub regex: String,
    /// Line of the pattern in its pack file.
    pub line: usize,
}

impl PackPattern {
    /// The regex to compile (bytes, no Unicode: `.` matches any byte, so invalid UTF-8 in a
    /// user name cannot hide a line), with `<IP>` and `<PORT>` expanded.
    pub fn expanded(&self) -> String {
        expand(&self.regex)
    }

    /// The attacker groups ([`ATTACKER_GROUPS`]) the regex has, in order of appearance.
    pub fn attacker_groups(&self) -> Vec<&'static str> {
        let mut found: Vec<(usize, &'static str)> = ATTACKER_GROUPS
            .iter()
            .filter_map(|g| self.regex.find(&format!("(?P<{g}>")).map(|at| (at, *g)))
            .collect();
        found.sort_unstable();
        found.into_iter().map(|(_, g)| g).collect()
    }
}

/// `(?s-u)` + `regex` with `<IP>` and `<PORT>` expanded.
pub fn expand(regex: &str) -> String {
    format!(
        "(?s-u){}",
        regex
            .replace("<IP>", IP_GROUP)
            .replace("<PORT>", PORT_GROUP)
    )
}

/// A sample line of a pack and what it must give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackTest {
    /// The sample log line (`line` in the file), as the service writes it.
    pub text: String,
    /// The address the line must yield; `None`: it must not match.
    pub ip: Option<IpAddr>,
    /// The pattern that must match, when given.
    pub pattern: Option<String>,
    /// Where the line's format comes from (source file, documentation, a public log).
    pub origin: String,
    /// Line of the test in its pack file.
    pub line: usize,
}

/// One service pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pack {
    /// The service's name, the key of `[services.NAME]`.
    pub name: String,
    /// Other names the service answers to (fail2ban's jail names): `[services.ALIAS]` and
    /// `explain --service ALIAS` mean this service.
    pub aliases: Vec<String>,
    /// One line for people, e.g. `OpenSSH server`; empty when the pack gives none.
    pub description: String,
    /// Watched when the configuration does not say (default false).
    pub enabled: bool,
    /// Failures that lead to a ban unless `[services.NAME]` says; `None`: the default, 5.
    pub max_failures: Option<u32>,
    /// The counting window unless `[services.NAME]` says (recidive: a day); `None`: 600 s.
    pub find_time: Option<Duration>,
    /// The ban length unless `[services.NAME]` says; `None`: `[general] default_ban_duration`.
    pub ban_time: Option<BanDuration>,
    /// The service's log file by default (absolute); a pack has this, `journal_match` or both.
    pub log_path: Option<PathBuf>,
    /// The ports the service usually listens on (`port = 22` or `port = [80, 443]`); may be
    /// empty.
    pub ports: Vec<u16>,
    /// The journal entries of the service by default.
    pub journal_match: Option<JournalMatch>,
    /// How the service's lines are laid out.
    pub envelope: Envelope,
    /// The detection patterns, in file order, names unique.
    pub patterns: Vec<PackPattern>,
    /// The sample lines that check the patterns; may be empty.
    pub tests: Vec<PackTest>,
    /// What the pack was read from: `built-in ssh.toml` or a path.
    pub origin: String,
}

impl Pack {
    /// Reads a pack. `origin` names the text in messages (a path, or `built-in NAME.toml`).
    /// Every problem is returned at once, with its line.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Pack, ConfigErrors> {
        let mut d = Diagnostics::new(origin, text);
        let (document, syntax_errors) = DeTable::parse_recoverable(text);
        if !syntax_errors.is_empty() {
            for error in &syntax_errors {
                super::parse::report_syntax_error(&mut d, text, error);
            }
            return Err(super::parse::finish_with_errors(d));
        }
        let mut root = Table::new(document.get_ref(), document.span(), String::new());
        let service = root.table(&mut d, "service");
        let Some(mut service) = service else {
            d.error_at(
                Some(1),
                "service",
                "a pack starts with a [service] table (name, envelope, ...)",
            );
            return Err(super::parse::finish_with_errors(d));
        };
        let name = service
            .require(&mut d, "name", "the service's name, e.g. \"ssh\"")
            .and_then(|v| identifier(&mut d, &v));
        let aliases = match service.get("aliases") {
            None => Vec::new(),
            Some(v) => v
                .array(&mut d, "an array of names")
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| identifier(&mut d, item))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let description = service
            .get("description")
            .and_then(|v| v.str(&mut d).map(str::to_owned))
            .unwrap_or_default();
        let enabled = service.bool(&mut d, "enabled").unwrap_or(false);
        let max_failures = service
            .integer(&mut d, "max_failures", 1..=i128::from(u32::MAX))
            .and_then(|n| u32::try_from(n).ok());
        let find_time = service
            .get("find_time")
            .and_then(|v| super::parse::seconds(&mut d, &v, 1));
        let ban_time = service
            .get("ban_time")
            .and_then(|v| super::parse::ban_duration(&mut d, &v));
        let log_path = service
            .get("log_path")
            .and_then(|v| super::parse::path(&mut d, &v));
        let ports = service
            .get("port")
            .and_then(|v| super::parse::ports(&mut d, &v))
            .unwrap_or_default();
        let journal_match = service.get("journal_match").and_then(|v| {
            let text = v.str(&mut d)?;
            JournalMatch::parse(text)
                .map_err(|e| d.error(&v.span, &v.path, e.to_string()))
                .ok()
        });
        let envelope_value = service.require(
            &mut d,
            "envelope",
            "one of \"syslog\", \"nginx-error\", \"apache-error\", \"access\", \"plain\"",
        );
        let programs = service.get("programs");
        let envelope = envelope_value.and_then(|v| {
            let text = v.str(&mut d)?;
            let envelope = match text {
                "syslog" => {
                    let Some(p) = &programs else {
                        d.error(
                            &v.span,
                            &v.path,
                            "envelope \"syslog\" needs `programs`, the syslog tags of the \
                             service's lines (e.g. [\"sshd\"])",
                        );
                        return None;
                    };
                    let list: Vec<String> = p
                        .array(&mut d, "an array of syslog tags")?
                        .iter()
                        .filter_map(|item| item.non_empty_str(&mut d).map(str::to_owned))
                        .collect();
                    if list.is_empty() {
                        d.error(&p.span, &p.path, "must name at least one syslog tag");
                        return None;
                    }
                    Envelope::Syslog { programs: list }
                }
                "nginx-error" => Envelope::NginxError,
                "apache-error" => Envelope::ApacheError,
                "access" => Envelope::Access,
                "plain" => Envelope::Plain,
                other => {
                    d.error(
                        &v.span,
                        &v.path,
                        format!(
                            "unknown envelope {other:?}; expected one of {}",
                            quoted_list(&[
                                "syslog",
                                "nginx-error",
                                "apache-error",
                                "access",
                                "plain"
                            ])
                        ),
                    );
                    return None;
                }
            };
            if !matches!(envelope, Envelope::Syslog { .. })
                && let Some(p) = &programs
            {
                d.error(
                    &p.span,
                    &p.path,
                    "`programs` applies to envelope \"syslog\" only",
                );
            }
            Some(envelope)
        });
        if log_path.is_none() && journal_match.is_none() {
            d.error(
                &service.span,
                &service.path,
                "needs `log_path` or `journal_match`: where the service's lines are by default",
            );
        }
        service.finish(&mut d);

        let mut seen = BTreeSet::new();
        let patterns: Vec<PackPattern> = match root.get("patterns") {
            None => {
                d.error_at(None, "patterns", "a pack needs at least one [[patterns]]");
                Vec::new()
            }
            Some(v) => v
                .tables(&mut d)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| read_pattern(&mut d, t, &mut seen))
                .collect(),
        };
        let tests: Vec<PackTest> = match root.get("tests") {
            None => Vec::new(),
            Some(v) => v
                .tables(&mut d)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| read_test(&mut d, t, &seen))
                .collect(),
        };
        root.finish(&mut d);
        let (Some(name), Some(envelope)) = (name, envelope) else {
            return Err(super::parse::finish_with_errors(d));
        };
        if !d.errors.is_empty() {
            return Err(super::parse::finish_with_errors(d));
        }
        Ok(Pack {
            name,
            aliases,
            description,
            enabled,
            max_failures,
            find_time,
            ban_time,
            log_path,
            ports,
            journal_match,
            envelope,
            patterns,
            tests,
            origin: origin.to_owned(),
        })
    }

    /// True when `name` is this service's name or one of its aliases.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.iter().any(|a| a == name)
    }
}

fn identifier(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<String> {
    let text = v.non_empty_str(d)?;
    if super::parse::is_identifier(text) {
        Some(text.to_owned())
    } else {
        d.error(
            &v.span,
            &v.path,
            format!("{text:?}: start with a letter, then use letters, digits, `_` and `-`"),
        );
        None
    }
}
