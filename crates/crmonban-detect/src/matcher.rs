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
use memchr::memmem;
use regex::bytes::{CaptureLocations, Regex};
use regex_automata::nfa::thompson::backtrack::{self, BoundedBacktracker};
use regex_automata::util::captures::Captures;
use regex_automata::{Anchored, Input};

use crate::DetectError;
use crate::patterns::{ATTACKER_GROUPS, ConnectionId, Envelope, PackPattern, Step};
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
    pub step: Step,
}

/// A matching line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The offending address; IPv4-mapped IPv6 is reported as IPv4.
    pub addr: IpAddr,
    /// The source port when the line has one.
    pub port: Option<u16>,
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
    Match(Hit),
    NoMatch,
    Skipped(SkipReason),
}

/// What to do with lines that are not UTF-8; see the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Utf8Policy {
    #[default]
    MatchLossy,
    Skip,
}

/// Counters of unusual lines since the matcher was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MatcherStats {
    pub too_long: u64,
    /// Lines that were not UTF-8 (matched lossily or skipped, per the policy).
    pub invalid_utf8: u64,
    /// Lines refused because attacker text made their address ambiguous.
    pub ambiguous: u64,
}

struct BuiltinMatcher {
    name: Arc<str>,
    kind: EventKind,
    step: Step,
    connection: ConnectionId,
    prefixes: Vec<Vec<u8>>,
    needle: Option<memmem::Finder<'static>>,
    regex: Regex,
    /// The pattern with its first attacker group lazy, when attacker text comes before the
    /// address: the first reading of the line, to compare with the last.
    lazy: Option<Regex>,
    /// The literal right before the address (` from `): a line with it only once cannot be
    /// read two ways, so the lazy reading is skipped.
    anchor: Option<memmem::Finder<'static>>,
    ip: usize,
    port: Option<usize>,
    session: Option<usize>,
    /// Spare capture slots, so that a match allocates nothing.
    locations: std::sync::Mutex<Vec<CaptureLocations>>,
    /// The same regex as a bounded backtracker run anchored: one pass with captures over a
    /// message that (past the prefilter) usually matches. `None` when it cannot be built.
    direct: Option<Direct>,
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

/// A syslog envelope's tags, split once into exact names and prefixes.
#[derive(Debug, Default)]
struct Tags {
    exact: Vec<Vec<u8>>,
    prefixes: Vec<Vec<u8>>,
}

impl Tags {
    fn of(envelope: &Envelope) -> Tags {
        let mut tags = Tags::default();
        if let Envelope::Syslog { programs } = envelope {
            for p in programs {
                if let Some(stem) = p.strip_suffix('*') {
                    tags.prefixes.push(stem.as_bytes().to_vec());
                } else if p.ends_with('/') {
                    tags.prefixes.push(p.as_bytes().to_vec());
                } else {
                    tags.exact.push(p.as_bytes().to_vec());
                }
            }
        }
        tags
    }

    #[inline]
    fn contains(&self, tag: &[u8]) -> bool {
        self.exact.iter().any(|t| t == tag) || self.prefixes.iter().any(|p| tag.starts_with(p))
    }
}

/// Where groups matched (start, end), each when it took part.
type GroupSpans<const N: usize> = [Option<(usize, usize)>; N];

/// A message longer than the bounded backtracker takes for this regex.
struct TooLong;

/// A pattern's regex run directly as regex-automata's bounded backtracker, anchored.
struct Direct {
    engine: BoundedBacktracker,
    /// Spare caches and capture slots.
    spare: std::sync::Mutex<Vec<(backtrack::Cache, Captures)>>,
}

impl Direct {
    fn new(source: &str) -> Option<Direct> {
        let engine = BoundedBacktracker::builder()
            .syntax(
                regex_automata::util::syntax::Config::new()
                    .unicode(false)
                    .utf8(false),
            )
            .thompson(regex_automata::nfa::thompson::Config::new().utf8(false))
            .build(source)
            .ok()?;
        Some(Direct {
            engine,
            spare: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The spans of groups `wanted` (by index) when the regex matches `message` from its
    /// start; `Err` when the message is too long for the backtracker (use the regex crate).
    fn spans<const N: usize>(
        &self,
        message: &[u8],
        wanted: [Option<usize>; N],
    ) -> Result<Option<GroupSpans<N>>, TooLong> {
        let (mut cache, mut caps) = self
            .spare
            .lock()
            .ok()
            .and_then(|mut spare| spare.pop())
            .unwrap_or_else(|| (self.engine.create_cache(), self.engine.create_captures()));
        let input = Input::new(message).anchored(Anchored::Yes);
        let found = self
            .engine
            .try_search(&mut cache, &input, &mut caps)
            .map_err(|_| TooLong)
            .map(|()| {
                caps.is_match().then(|| {
                    wanted.map(|g| {
                        g.and_then(|g| caps.get_group(g))
                            .map(|span| (span.start, span.end))
                    })
                })
            });
        if let Ok(mut spare) = self.spare.lock()
            && spare.len() < 4
        {
            spare.push((cache, caps));
        }
        found
    }
}

/// What one pattern made of a message.
enum Capture {
    Hit(Hit),
    None,
    /// The address could be read in two places.
    Ambiguous,
}

impl BuiltinMatcher {
    fn new(p: &PackPattern) -> Result<BuiltinMatcher, DetectError> {
        let failed = |error: String| DetectError::PackPattern {
            name: p.name.clone(),
            error,
        };
        let regex = Regex::new(&p.expanded()).map_err(|e| failed(e.to_string()))?;
        let group = |n: &str| regex.capture_names().position(|g| g == Some(n));
        let ip = group("ip").ok_or_else(|| failed("no <IP>".into()))?;
        let ip_at = p.regex.find("<IP>").unwrap_or(0);
        let before = &p.regex[..ip_at];
        // With attacker text on both sides of the address, the first attacker group before it
        // made lazy gives the first reading of the line.
        let after = &p.regex[ip_at..];
        let both_sides = ATTACKER_GROUPS
            .iter()
            .any(|g| after.contains(&format!("(?P<{g}>")));
        let lazy = ATTACKER_GROUPS
            .iter()
            .filter(|_| both_sides)
            .filter_map(|g| {
                let greedy = format!("(?P<{g}>.*)");
                before.find(&greedy).map(|at| (at, greedy))
            })
            .min()
            .map(|(at, greedy)| {
                let mut source = p.regex.clone();
                source.replace_range(at..at + greedy.len(), &greedy.replace(".*)", ".*?)"));
                Regex::new(&crate::patterns::expand(&source)).map_err(|e| failed(e.to_string()))
            })
            .transpose()?;
        let anchor = lazy
            .as_ref()
            .and_then(|_| literal_suffix(before))
            .map(|literal| memmem::Finder::new(literal.as_bytes()).into_owned());
        Ok(BuiltinMatcher {
            name: Arc::from(p.name.as_str()),
            kind: p.kind.clone(),
            step: p.step,
            connection: p.connection,
            prefixes: p.prefixes.iter().map(|x| x.as_bytes().to_vec()).collect(),
            needle: p
                .needle
                .as_ref()
                .map(|n| memmem::Finder::new(n.as_bytes()).into_owned()),
            port: group("port"),
            session: group("session"),
            ip,
            direct: Direct::new(&p.expanded()),
            regex,
            lazy,
            anchor,
            locations: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn capture(&self, parts: &Parts<'_>, _ctx: &LineContext) -> Capture {
        let message = parts.message;
        let direct = self.direct.as_ref().and_then(|d| {
            d.spans(message, [Some(self.ip), self.port, self.session])
                .ok()
        });
        let spans = match direct {
            Some(found) => found,
            None => {
                let mut locs = self
                    .locations
                    .lock()
                    .ok()
                    .and_then(|mut spare| spare.pop())
                    .unwrap_or_else(|| self.regex.capture_locations());
                let found = self.regex.captures_read(&mut locs, message).map(|_| {
                    [Some(self.ip), self.port, self.session].map(|g| g.and_then(|g| locs.get(g)))
                });
                if let Ok(mut spare) = self.locations.lock()
                    && spare.len() < 4
                {
                    spare.push(locs);
                }
                found
            }
        };
        let Some([ip_span, port_span, session_span]) = spans else {
            return Capture::None;
        };
        let Some(hit) = self.hit_from(ip_span, port_span, session_span, parts, message) else {
            return Capture::None;
        };
        if let Some(lazy) = &self.lazy {
            let repeated = self
                .anchor
                .as_ref()
                .is_none_or(|a| a.find_iter(message).nth(1).is_some());
            if repeated {
                let mut first = lazy.capture_locations();
                if lazy.captures_read(&mut first, message).is_none()
                    || first.get(self.ip) != ip_span
                {
                    return Capture::Ambiguous;
                }
            }
        }
        Capture::Hit(hit)
    }

    fn hit_from(
        &self,
        ip_span: Option<(usize, usize)>,
        port_span: Option<(usize, usize)>,
        session_span: Option<(usize, usize)>,
        parts: &Parts<'_>,
        message: &[u8],
    ) -> Option<Hit> {
        let (ip_start, ip_end) = ip_span?;
        let candidate = &message[ip_start..ip_end];
        let mut port = port_span.and_then(|(s, e)| parse_u16(&message[s..e]));
        let addr = match parse_addr(candidate) {
            Some(addr) => addr,
            None => {
                // `<IP>` took an IPv4 `ADDR:PORT` whole: the address is before the last colon.
                let colon = memchr::memrchr(b':', candidate)?;
                let (host, rest) = (&candidate[..colon], &candidate[colon + 1..]);
                if !host.contains(&b'.') {
                    return None;
                }
                let addr = parse_addr(host).filter(IpAddr::is_ipv4)?;
                port = port.or(Some(parse_u16(rest)?));
                addr
            }
        };
        let connection = match self.connection {
            ConnectionId::None => None,
            ConnectionId::Pid => parts.pid.map(u64::from),
            ConnectionId::Session => session_span
                .map(|(s, e)| &message[s..e])
                .or_else(|| session_after(&message[ip_end..]))
                .filter(|s| !s.is_empty())
                .map(fnv1a),
        };
        let attempt = match self.step {
            Step::Each => None,
            step => connection.map(|connection| AttemptKey { connection, step }),
        };
        Some(Hit {
            addr,
            port,
            kind: self.kind.clone(),
            pattern: self.name.clone(),
            time: parts.time,
            attempt,
        })
    }
}

/// The literal text at the end of a regex source (` from ` in `... from `), or `None` when
/// it ends with a regex construct.
fn literal_suffix(source: &str) -> Option<&str> {
    let start = source
        .char_indices()
        .rev()
        .find(|&(_, c)| {
            !(c.is_ascii_alphanumeric()
                || c == ' '
                || c == '='
                || c == ','
                || c == ':'
                || c == '-'
                || c == '_'
                || c == '<'
                || c == '>'
                || c == '"'
                || c == '\'')
        })
        .map_or(0, |(i, c)| i + c.len_utf8());
    let literal = &source[start..];
    (literal.len() >= 3).then_some(literal)
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

/// ` HOST TAG[PID]: MESSAGE` or ` HOST TAG: MESSAGE` after the stamp.
#[inline]
fn split_syslog_header(rest: &[u8]) -> Option<(&[u8], Option<u32>, &[u8])> {
    let rest = rest.strip_prefix(b" ")?;
    let host_end = memchr::memchr(b' ', rest)?;
    split_tag(&rest[host_end + 1..])
}

/// `TAG[PID]: MESSAGE` or `TAG: MESSAGE`.
#[inline]
fn split_tag(rest: &[u8]) -> Option<(&[u8], Option<u32>, &[u8])> {
    let tag_end = rest
        .iter()
        .take(64)
        .position(|&b| b == b'[' || b == b':' || b == b' ')?;
    let tag = &rest[..tag_end];
    let (pid, after) = match rest[tag_end] {
        b'[' => {
            let close = rest[tag_end..].iter().take(12).position(|&b| b == b']')? + tag_end;
            (parse_u32(&rest[tag_end + 1..close]), rest.get(close + 1..)?)
        }
        b':' => (None, &rest[tag_end..]),
        _ => return None,
    };
    let message = after.strip_prefix(b": ")?;
    Some((tag, pid, message))
}

/// After nginx's stamp: ` [level] PID#TID: *CID ` (each part optional).
fn skip_nginx_header(rest: &[u8]) -> &[u8] {
    let mut rest = rest.strip_prefix(b" ").unwrap_or(rest);
    if rest.first() == Some(&b'[')
        && let Some(close) = memchr::memchr(b']', rest)
    {
        rest = rest[close + 1..]
            .strip_prefix(b" ")
            .unwrap_or(&rest[close + 1..]);
    }
    let digits = rest
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b'#'))
        .unwrap_or(0);
    if digits > 0 && rest[digits..].starts_with(b": ") {
        rest = &rest[digits + 2..];
    }
    if rest.first() == Some(&b'*') {
        let n = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if n > 0 && rest.get(1 + n) == Some(&b' ') {
            rest = &rest[2 + n..];
        }
    }
    rest
}

/// The text of `session=<...>` in dovecot's fields after the address.
fn session_after(fields: &[u8]) -> Option<&[u8]> {
    let start = memmem::find(fields, b"session=<")? + 9;
    let len = memchr::memchr(b'>', &fields[start..])?;
    Some(&fields[start..start + len])
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
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
    fn syslog_header_split() {
        let (tag, pid, msg) = split_syslog_header(b" host sshd[1234]: Invalid user").unwrap();
        assert_eq!(
            (tag, pid, msg),
            (&b"sshd"[..], Some(1234), &b"Invalid user"[..])
        );
        let (tag, pid, msg) = split_syslog_header(b" mail dovecot: imap-login: x").unwrap();
        assert_eq!(
            (tag, pid, msg),
            (&b"dovecot"[..], None, &b"imap-login: x"[..])
        );
        let (tag, _, _) =
            split_syslog_header(b" mail postfix/submission/smtpd[9]: warning: x").unwrap();
        assert_eq!(tag, b"postfix/submission/smtpd");
        assert!(split_syslog_header(b" host kernel").is_none());
        assert!(split_syslog_header(b"").is_none());
    }

    #[test]
    fn nginx_header_skip() {
        assert_eq!(
            skip_nginx_header(b" [error] 1234#1234: *5 user \"x\""),
            b"user \"x\""
        );
        assert_eq!(
            skip_nginx_header(b" [warn] 1#1: conflicting"),
            b"conflicting"
        );
    }

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
