//! [`ServiceMatcher`]: one service's detector for single log lines. It splits a line into its
//! envelope (timestamp, syslog tag and pid, nginx/Apache headers) and message, runs the
//! patterns of the service's pack ([`crate::patterns`]) and then the user's
//! `[[services.NAME.patterns]]`, and turns the first match into a [`Hit`]: a validated
//! address, the event kind, the pattern name, the line's own time and the connection the
//! attempt belongs to.
//!
//! # Cost of a line that does not match
//!
//! Pack patterns are tried only when the message starts with one of their literal prefixes: a
//! 256-entry table of first bytes rejects most messages at once, then a short `starts_with`
//! per pattern; the regex runs only on candidates. Syslog lines of other programs (CRON,
//! kernel, systemd-logind, ...) are rejected by their tag before any of that. User patterns
//! are whole-line regexes (as written in the config, unanchored unless the user anchors them),
//! whose literal prefilters the regex crate applies itself.
//!
//! # Lines that are skipped, and invalid UTF-8
//!
//! Lines longer than [`MAX_LINE_LEN`] (64 KiB) are not matched: [`LineOutcome::Skipped`] with
//! [`SkipReason::TooLong`], counted in [`MatcherStats::too_long`]. No legitimate message of
//! these services comes near that size, and it bounds the work one line can cost.
//!
//! Lines that are not valid UTF-8 are counted in [`MatcherStats::invalid_utf8`] and, by
//! default ([`Utf8Policy::MatchLossy`]), still matched: pack patterns work on bytes and their
//! address part is ASCII, and user patterns see a lossy copy (invalid bytes replaced by
//! U+FFFD). Skipping them would let an attacker hide every attempt by putting one invalid byte
//! in the user name. [`Utf8Policy::Skip`] restores "skip and count" for those who want it.
//!
//! A line whose address an attacker's text makes ambiguous (see [`crate::patterns`]) is not
//! matched and is counted in [`MatcherStats::ambiguous`].
//!
//! The address group is validated as an IPv4 or IPv6 address (never a host name) and an
//! IPv4-mapped IPv6 address is reported as the IPv4 address.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crmonban_core::config::ServiceConfig;
use crmonban_core::target::unmap;
use crmonban_core::{Event, EventKind, Service};

mod envelope;
mod pattern;

use envelope::{Tags, skip_nginx_header, split_syslog_header, split_tag};
use pattern::{BuiltinMatcher, Capture};

use crate::DetectError;
use crate::patterns::{Envelope, PackPattern, Step};
use crate::time;

/// Lines longer than this many bytes are skipped.
pub const MAX_LINE_LEN: usize = 64 * 1024;

/// What the caller knows about a line besides its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineContext {
    /// When the line is read (unix seconds): the reference for the BSD syslog year, and the
    /// time of a line that carries none.
    pub now: i64,
    /// Seconds east of UTC for timestamps without a zone (the host's offset; default 0).
    pub utc_offset: i32,
    /// A time the source knows for this line (the journal's `__REALTIME_TIMESTAMP`), used
    /// when the text has no timestamp.
    pub time: Option<i64>,
    /// A pid the source knows for this line (the journal's `_PID`), used when the text has no
    /// syslog tag.
    pub pid: Option<u32>,
}

impl LineContext {
    /// Lines read at `now`, local time = UTC.
    pub fn at(now: i64) -> LineContext {
        LineContext {
            now,
            utc_offset: 0,
            time: None,
            pid: None,
        }
    }
}

impl Default for LineContext {
    fn default() -> Self {
        LineContext::at(crmonban_core::unix_now())
    }
}

/// Which connection (sshd monitor process, dovecot session) a line belongs to, and what the
/// line means for that connection's attempt; see [`crate::decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AttemptKey {
    /// The pid for sshd, a hash of the session id for dovecot.
    pub connection: u64,
    /// How the line counts towards the connection's attempt (its pattern's `step`).
    pub step: Step,
}

/// A matching line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The offending address; IPv4-mapped IPv6 is reported as IPv4.
    pub addr: IpAddr,
    /// The source port when the line has one.
    pub port: Option<u16>,
    /// What the line means: the pattern's `kind` (`event_type` for a user pattern).
    pub kind: EventKind,
    /// The pattern's name (`ssh-failed-auth`, or the user's `name`).
    pub pattern: Arc<str>,
    /// Unix seconds from the line's own timestamp (or the source's, [`LineContext::time`]).
    pub time: Option<i64>,
    /// `None`: the line counts on its own.
    pub attempt: Option<AttemptKey>,
}

impl Hit {
    /// The event the engine reports (`AttackDetected`).
    pub fn event(&self, service: &Service) -> Event {
        Event {
            addr: self.addr,
            service: service.clone(),
            kind: self.kind.clone(),
            time: self.time,
        }
    }
}

/// Why a line was not matched at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// Longer than [`MAX_LINE_LEN`].
    TooLong,
    /// Not UTF-8, under [`Utf8Policy::Skip`].
    InvalidUtf8,
}

/// What [`ServiceMatcher::match_line`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineOutcome {
    /// A pattern matched: the first that did, in the order of [`ServiceMatcher::pattern_names`].
    Match(Hit),
    /// No pattern gave an address (a pack match whose address was ambiguous gives none).
    NoMatch,
    /// The line was not matched at all.
    Skipped(SkipReason),
}

/// What to do with lines that are not UTF-8; see the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Utf8Policy {
    /// Match such lines anyway (the default): pack patterns see the bytes, user patterns a
    /// lossy copy.
    #[default]
    MatchLossy,
    /// Skip such lines as [`SkipReason::InvalidUtf8`] (they are still counted).
    Skip,
}

/// Counters of unusual lines since the matcher was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MatcherStats {
    /// Lines skipped as longer than [`MAX_LINE_LEN`].
    pub too_long: u64,
    /// Lines that were not UTF-8 (matched lossily or skipped, per the policy).
    pub invalid_utf8: u64,
    /// Lines refused because attacker text made their address ambiguous.
    pub ambiguous: u64,
}

struct UserMatcher {
    name: Arc<str>,
    kind: EventKind,
    regex: regex::Regex,
}

/// The detector of one service: built-in patterns (for built-in service names) followed by the
/// user's patterns. Build it once per service; matching takes `&self`.
pub struct ServiceMatcher {
    service: Service,
    envelope: Envelope,
    /// The syslog tags of the service: exact ones, and prefixes (`postfix/`, `auth-worker*`).
    tags: Tags,
    builtins: Vec<BuiltinMatcher>,
    /// `by_first_byte[b]`: indices of the built-ins with a prefix starting with byte `b`, in
    /// order; empty for most bytes, which rejects most messages at once.
    by_first_byte: Vec<Vec<u8>>,
    users: Vec<UserMatcher>,
    utf8: Utf8Policy,
    too_long: AtomicU64,
    invalid_utf8: AtomicU64,
    ambiguous: Arc<AtomicU64>,
}

impl std::fmt::Debug for ServiceMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceMatcher")
            .field("service", &self.service)
            .field("envelope", &self.envelope)
            .field("patterns", &self.pattern_names().collect::<Vec<_>>())
            .finish()
    }
}

/// The parts of a line the patterns need.
struct Parts<'a> {
    time: Option<i64>,
    pid: Option<u32>,
    message: &'a [u8],
}

impl ServiceMatcher {
    /// The detector of service `name` as configured. A name without built-in patterns needs
    /// at least one user pattern.
    pub fn new(name: &str, service: &ServiceConfig) -> Result<ServiceMatcher, DetectError> {
        Self::with_policy(name, service, Utf8Policy::default())
    }

    /// As [`ServiceMatcher::new`], choosing what happens to lines that are not UTF-8.
    pub fn with_policy(
        name: &str,
        service: &ServiceConfig,
        utf8: Utf8Policy,
    ) -> Result<ServiceMatcher, DetectError> {
        let mut builtins = Vec::new();
        let mut by_first_byte: Vec<Vec<u8>> = vec![Vec::new(); 256];
        let pack_patterns: &[PackPattern] = service.pack.as_deref().map_or(&[], |p| &p.patterns);
        for p in pack_patterns {
            let built = BuiltinMatcher::new(p)?;
            for prefix in &built.prefixes {
                let list = &mut by_first_byte[usize::from(prefix[0])];
                let index = u8::try_from(builtins.len()).map_err(|_| DetectError::PackPattern {
                    name: p.name.clone(),
                    error: "a pack has at most 255 patterns".into(),
                })?;
                if list.last() != Some(&index) {
                    list.push(index);
                }
            }
            builtins.push(built);
        }
        let users: Vec<UserMatcher> = service
            .patterns
            .iter()
            .map(|p| UserMatcher {
                name: Arc::from(p.name.as_str()),
                kind: p.event_type.clone(),
                regex: p.regex.clone(),
            })
            .collect();
        if builtins.is_empty() && users.is_empty() {
            return Err(DetectError::NoPatterns {
                service: name.to_owned(),
            });
        }
        let envelope = service
            .pack
            .as_ref()
            .map_or(Envelope::Plain, |p| p.envelope.clone());
        Ok(ServiceMatcher {
            service: Service::new(name),
            tags: Tags::of(&envelope),
            envelope,
            builtins,
            by_first_byte,
            users,
            utf8,
            too_long: AtomicU64::new(0),
            invalid_utf8: AtomicU64::new(0),
            ambiguous: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The service the matcher was built for.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Pattern names in the order they are tried.
    pub fn pattern_names(&self) -> impl Iterator<Item = &str> {
        self.builtins
            .iter()
            .map(|b| &*b.name)
            .chain(self.users.iter().map(|u| &*u.name))
    }

    /// The counters so far.
    pub fn stats(&self) -> MatcherStats {
        MatcherStats {
            too_long: self.too_long.load(Ordering::Relaxed),
            invalid_utf8: self.invalid_utf8.load(Ordering::Relaxed),
            ambiguous: self.ambiguous.load(Ordering::Relaxed),
        }
    }

    /// Matches one line (a trailing `\n` or `\r\n` is ignored).
    pub fn match_line(&self, line: &[u8], ctx: &LineContext) -> LineOutcome {
        let line = trim_line_end(line);
        if line.len() > MAX_LINE_LEN {
            self.too_long.fetch_add(1, Ordering::Relaxed);
            return LineOutcome::Skipped(SkipReason::TooLong);
        }
        let utf8 = line.is_ascii() || std::str::from_utf8(line).is_ok();
        if !utf8 {
            self.invalid_utf8.fetch_add(1, Ordering::Relaxed);
            if self.utf8 == Utf8Policy::Skip {
                return LineOutcome::Skipped(SkipReason::InvalidUtf8);
            }
        }
        let parts = self.split(line, ctx);
        if let Some(parts) = &parts
            && let Some(hit) = self.match_builtins(parts, ctx)
        {
            return LineOutcome::Match(hit);
        }
        if !self.users.is_empty() {
            let time = parts
                .as_ref()
                .map_or_else(|| leading_time(line, ctx), |p| p.time);
            let text = if utf8 {
                // Checked just above.
                Cow::Borrowed(std::str::from_utf8(line).unwrap_or_default())
            } else {
                String::from_utf8_lossy(line)
            };
            if let Some(hit) = self.match_users(&text, time) {
                return LineOutcome::Match(hit);
            }
        }
        LineOutcome::NoMatch
    }

    /// The message of `line` when it is this service's (its syslog tag is one of the pack's
    /// programs, or it has no tag); `None` for another program's line.
    pub fn message_of<'a>(&self, line: &'a [u8], ctx: &LineContext) -> Option<&'a [u8]> {
        self.split(trim_line_end(line), ctx)
            .map(|parts| parts.message)
    }

    /// The envelope split; `None` when the line is another program's (syslog tag).
    #[inline]
    fn split<'a>(&self, line: &'a [u8], ctx: &LineContext) -> Option<Parts<'a>> {
        let bare = Parts {
            time: ctx.time,
            pid: ctx.pid,
            message: line,
        };
        match &self.envelope {
            Envelope::Syslog { .. } => {
                let is_ours = |tag: &[u8]| self.tags.contains(tag);
                let Some((time, len)) = time::parse_leading(line, ctx.now, ctx.utc_offset) else {
                    // No stamp: a journal entry shaped `TAG[PID]: MESSAGE`, or a bare message
                    // (`sshd -E`), which may itself start with `error: `.
                    return match split_tag(line) {
                        Some((tag, pid, message)) if is_ours(tag) => Some(Parts {
                            time: ctx.time,
                            pid: pid.or(ctx.pid),
                            message,
                        }),
                        _ => Some(bare),
                    };
                };
                let rest = line.get(len..)?;
                // `STAMP TAG[PID]: MESSAGE` without a host (a program's own log file, such as
                // dovecot's log_path): the word after the stamp ends with ':' or holds '[', which
                // a host name never does.
                let host_less = rest.strip_prefix(b" ").and_then(|after| {
                    let word = &after[..memchr::memchr(b' ', after).unwrap_or(after.len())];
                    (word.ends_with(b":") || word.contains(&b'[')).then_some(after)
                });
                let (tag, pid, message) = match host_less {
                    Some(after) => split_tag(after)?,
                    None => split_syslog_header(rest)?,
                };
                is_ours(tag).then_some(Parts {
                    time: Some(time),
                    pid: pid.or(ctx.pid),
                    message,
                })
            }
            Envelope::NginxError => match time::parse_nginx(line, ctx.utc_offset) {
                None => Some(bare),
                Some((time, len)) => Some(Parts {
                    time: Some(time),
                    pid: None,
                    message: skip_nginx_header(&line[len..]),
                }),
            },
            Envelope::ApacheError => match time::parse_apache(line, ctx.utc_offset) {
                None => Some(bare),
                Some((time, len)) => Some(Parts {
                    time: Some(time),
                    pid: None,
                    message: line[len..].strip_prefix(b" ").unwrap_or(&line[len..]),
                }),
            },
            Envelope::Access => Some(Parts {
                time: time::parse_clf_field(line, ctx.utc_offset).or(ctx.time),
                ..bare
            }),
            Envelope::Plain => Some(Parts {
                time: leading_time(line, ctx),
                ..bare
            }),
        }
    }

    #[inline]
    fn match_builtins(&self, parts: &Parts<'_>, ctx: &LineContext) -> Option<Hit> {
        let message = parts.message;
        let first = *message.first()?;
        for &index in &self.by_first_byte[usize::from(first)] {
            let b = &self.builtins[usize::from(index)];
            if !b.prefixes.iter().any(|p| message.starts_with(p)) {
                continue;
            }
            if let Some(needle) = &b.needle
                && needle.find(message).is_none()
            {
                continue;
            }
            match b.capture(parts, ctx) {
                Capture::Hit(hit) => return Some(hit),
                Capture::Ambiguous => {
                    self.ambiguous.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                Capture::None => {}
            }
        }
        None
    }

    fn match_users(&self, text: &str, time: Option<i64>) -> Option<Hit> {
        for u in &self.users {
            let Some(caps) = u.regex.captures(text) else {
                continue;
            };
            let Some(addr) = caps
                .name("ip")
                .and_then(|m| parse_addr(m.as_str().as_bytes()))
            else {
                continue;
            };
            let port = caps.name("port").and_then(|m| m.as_str().parse().ok());
            return Some(Hit {
                addr,
                port,
                kind: u.kind.clone(),
                pattern: u.name.clone(),
                time,
                attempt: None,
            });
        }
        None
    }
}

fn leading_time(line: &[u8], ctx: &LineContext) -> Option<i64> {
    time::parse_leading(line, ctx.now, ctx.utc_offset)
        .map(|(t, _)| t)
        .or(ctx.time)
}

#[inline]
fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// An IPv4 or IPv6 address (IPv4-mapped reported as IPv4); never a host name.
#[inline]
pub fn parse_addr(text: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(text).ok()?;
    text.parse::<IpAddr>().ok().map(unmap)
}

fn parse_u32(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 10 {
        return None;
    }
    digits.iter().try_fold(0u32, |n, &b| {
        b.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u32::from(b - b'0')))?
    })
}

fn parse_u16(digits: &[u8]) -> Option<u16> {
    parse_u32(digits).and_then(|n| u16::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_validated() {
        assert_eq!(parse_addr(b"192.0.2.7"), Some("192.0.2.7".parse().unwrap()));
        assert_eq!(
            parse_addr(b"::ffff:192.0.2.7"),
            Some("192.0.2.7".parse().unwrap())
        );
        assert_eq!(
            parse_addr(b"2001:db8::1"),
            Some("2001:db8::1".parse().unwrap())
        );
        for bad in [
            &b"dead.beef"[..],
            b"1.2.3",
            b"::g",
            b"",
            b"1.2.3.4.5",
            b"abc",
        ] {
            assert_eq!(parse_addr(bad), None);
        }
        assert_eq!(parse_u16(b"65535"), Some(65535));
        assert_eq!(parse_u16(b"65536"), None);
        assert_eq!(parse_u32(b"99999999999"), None);
    }
}
