//! One compiled pack pattern ([`BuiltinMatcher`]): its prefilter, its regex run as a bounded
//! backtracker anchored at the message (the regex crate for messages too long for that), the
//! lazy second reading that refuses ambiguous lines, and the [`Hit`] it makes of a match.

use crate::fnv1a;
use std::net::IpAddr;
use std::sync::Arc;

use crmonban_core::EventKind;
use memchr::memmem;
use regex::bytes::{CaptureLocations, Regex};
use regex_automata::nfa::thompson::backtrack::{self, BoundedBacktracker};
use regex_automata::util::captures::Captures;
use regex_automata::{Anchored, Input};

use super::{AttemptKey, Hit, LineContext, Parts, parse_addr, parse_u16};
use crate::DetectError;
use crate::patterns::{ATTACKER_GROUPS, ConnectionId, PackPattern, Step};

pub(super) struct BuiltinMatcher {
    pub(super) name: Arc<str>,
    kind: EventKind,
    step: Step,
    connection: ConnectionId,
    pub(super) prefixes: Vec<Vec<u8>>,
    pub(super) needle: Option<memmem::Finder<'static>>,
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
pub(super) enum Capture {
    Hit(Hit),
    None,
    /// The address could be read in two places.
    Ambiguous,
}

impl BuiltinMatcher {
    pub(super) fn new(p: &PackPattern) -> Result<BuiltinMatcher, DetectError> {
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

    pub(super) fn capture(&self, parts: &Parts<'_>, _ctx: &LineContext) -> Capture {
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

/// The text of `session=<...>` in dovecot's fields after the address.
fn session_after(fields: &[u8]) -> Option<&[u8]> {
    let start = memmem::find(fields, b"session=<")? + 9;
    let len = memchr::memchr(b'>', &fields[start..])?;
    Some(&fields[start..start + len])
}
