//! The offline runner behind `crmonband explain --service NAME [--json|--summary] [--missed]
//! FILE|-`: the daemon's detection path — [`ServiceMatcher`] then [`Decider`] — over a file,
//! with no firewall, database or bus.
//!
//! # Input
//!
//! Plain log text, or the journal's own formats, recognised from the first bytes:
//! - `journalctl -o short`, `short-precise`, `short-iso`, `short-iso-precise`, `short-full`
//!   and `short-unix` are log lines (their stamps are read like any other);
//! - `journalctl -o json`: one entry per line;
//! - `journalctl -o export`: `FIELD=value` lines, entries separated by a blank line, binary
//!   fields as `FIELD`, a 64-bit little-endian length, the bytes.
//!
//! A journal entry is matched as `SYSLOG_IDENTIFIER[_PID]: MESSAGE` (the identifier from
//! `_COMM` when there is none), with `__REALTIME_TIMESTAMP` as its time and `_PID` as its
//! connection, as the daemon's journal source does.
//!
//! Text is read in 1 MiB chunks and split into lines with memchr; a line longer than the buffer
//! is discarded as it streams by (it is over [`MAX_LINE_LEN`] anyway), so memory stays bounded
//! whatever the input. Each hit is given to the decider with the time it would have had in the
//! daemon: its own log time, or [`LineContext::now`] when the line has none.
//!
//! # Output
//!
//! Output (DESIGN.md §5). `--json`: one object per matched line, then the summary:
//!
//! ```text
//! {"line":N,"ip":"...","service":"...","kind":"...","time":"RFC3339 or null","pattern":"..."}
//! {"summary":{"lines":N,"matched":M,"ips":K,"would_ban":["ip",...],"too_long":T,"invalid_utf8":U,
//!   "protected":P,"ambiguous":A,"addresses":[{"ip":"...","lines":N},...],
//!   "patterns":[{"pattern":"...","lines":N},...],"missed":[{"shape":"...","lines":N,"example":"..."},...]}}
//! ```
//!
//! `line` is 1-based (the entry number for journal input), `time` is UTC
//! (`2026-11-25T16:19:59Z`), `ips` counts distinct matched addresses, `would_ban` lists the
//! targets the decider bans, in the order of their first ban (an IPv6 network under
//! aggregation). The keys after `would_ban` are extras: `protected` counts matched lines from
//! addresses the protection policy covers (not counted, never banned, as in the daemon; see
//! [`run_protected`]), `ambiguous` lines whose address attacker text made ambiguous (see
//! [`crate::patterns`]), `addresses` and `patterns` count matched lines per address and per
//! pattern (most first), and `missed` (with [`ExplainOptions::missed`]) groups the service's
//! lines that no pattern matched by their shape: the first three words with addresses written
//! `<IP>` and numbers `<N>`, with a count and the first such line.
//! Human mode prints one aligned row per matched line and a summary; `--summary` only the
//! summary.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::net::IpAddr;

use crmonban_core::config::ServiceConfig;
use crmonban_core::{Service, Target};

mod input;

use input::{InputFormat, input_format, read_export, read_line_bounded, read_some};

use crate::DetectError;
use crate::decide::{Decider, DeciderOptions, Decision};
use crate::matcher::{Hit, LineContext, LineOutcome, MAX_LINE_LEN, ServiceMatcher};
use crate::time::format_rfc3339;

/// Size of the read buffer.
pub const CHUNK: usize = 1 << 20;

/// What `explain` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExplainMode {
    /// Aligned rows of matched lines, then a summary.
    #[default]
    Human,
    /// One JSON object per matched line, then the summary object.
    Json,
    /// Only the summary.
    Summary,
}

/// The context a run needs besides the service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExplainContext {
    /// Reference time, UTC offset (and journal fields, unused for files).
    pub line: LineContext,
    /// The decider's options: the default IPv6 prefix and the most addresses tracked.
    pub decider: DeciderOptions,
}

/// How many lines of one shape no pattern matched, and the first of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MissedShape {
    /// The first three words of the message, addresses written `<IP>` and numbers `<N>`.
    pub shape: String,
    /// Lines of this shape.
    pub lines: u64,
    /// The first line of this shape, whole (invalid UTF-8 replaced).
    pub example: String,
}

/// What a run found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExplainSummary {
    /// Matched lines per address, most first.
    pub addresses: Vec<(IpAddr, u64)>,
    /// Matched lines per pattern, most first.
    pub patterns: Vec<(String, u64)>,
    /// The service's lines no pattern matched, by shape, most first (when asked).
    pub missed: Vec<MissedShape>,
    /// Lines refused because attacker text made their address ambiguous.
    pub ambiguous: u64,
    /// Lines read (entries for journal input), skipped ones included.
    pub lines: u64,
    /// Lines a pattern matched, those from protected addresses included.
    pub matched: u64,
    /// Distinct matched addresses.
    pub ips: u64,
    /// Targets the daemon would ban, in the order of their first ban.
    pub would_ban: Vec<Target>,
    /// Matched lines from protected addresses (not counted towards a ban).
    pub protected: u64,
    /// Lines skipped for their length.
    pub too_long: u64,
    /// Lines that were not UTF-8 (matched lossily; see [`crate::matcher`]).
    pub invalid_utf8: u64,
}

/// Everything a run takes besides the service, its input and its output.
pub struct ExplainOptions<'a> {
    /// What is written to the output.
    pub mode: ExplainMode,
    /// Reference time, UTC offset and decider options.
    pub ctx: ExplainContext,
    /// Asked about each matched address before the decider counts it (see [`run_protected`]).
    pub protected: &'a dyn Fn(&Target) -> bool,
    /// Group the service's lines that no pattern matches by shape.
    pub missed: bool,
}

/// Runs service `service_name` as configured over `reader`, writing `mode`'s output to `out`.
pub fn run<R: BufRead, W: Write>(
    service_name: &str,
    service: &ServiceConfig,
    reader: R,
    mode: ExplainMode,
    out: &mut W,
    ctx: &ExplainContext,
) -> Result<ExplainSummary, DetectError> {
    run_protected(service_name, service, reader, mode, out, ctx, &|_| false)
}

/// [`run`], asking `protected` about each matched address before the decider counts it, as
/// the daemon asks its protection policy: a protected address is shown and counted in
/// [`ExplainSummary::protected`], never towards a ban.
pub fn run_protected<R: BufRead, W: Write>(
    service_name: &str,
    service: &ServiceConfig,
    reader: R,
    mode: ExplainMode,
    out: &mut W,
    ctx: &ExplainContext,
    protected: &dyn Fn(&Target) -> bool,
) -> Result<ExplainSummary, DetectError> {
    let options = ExplainOptions {
        mode,
        ctx: *ctx,
        protected,
        missed: false,
    };
    run_with(service_name, service, reader, out, &options)
}

/// [`run`] with every option.
pub fn run_with<R: BufRead, W: Write>(
    service_name: &str,
    service: &ServiceConfig,
    mut reader: R,
    out: &mut W,
    options: &ExplainOptions<'_>,
) -> Result<ExplainSummary, DetectError> {
    let (mode, ctx, protected) = (options.mode, &options.ctx, options.protected);
    let matcher = ServiceMatcher::new(service_name, service)?;
    let mut decider = Decider::new(ctx.decider);
    let service_id = Service::new(service_name);
    decider.add_service(service_id.clone(), service);
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut state = RunState {
        matcher: &matcher,
        decider,
        service: service_id,
        mode,
        ctx: ctx.line,
        summary: ExplainSummary::default(),
        ips: HashMap::new(),
        patterns: Vec::new(),
        missed: options.missed.then(HashMap::new),
        banned: HashSet::new(),
        protected,
    };
    if mode == ExplainMode::Human {
        writeln!(
            out,
            "{:>8}  {:<20}  {:<39}  {:<13}  {:<31}  text",
            "line", "time", "address", "kind", "pattern"
        )?;
    }

    match input_format(&mut reader)? {
        InputFormat::Text => {}
        InputFormat::JournalJson => {
            let mut line = Vec::new();
            while read_line_bounded(&mut reader, &mut line)? {
                state.journal_json(&line, &mut out)?;
            }
            return finish(state, &matcher, mode, out);
        }
        InputFormat::JournalExport => {
            read_export(&mut reader, |json| state.journal_json(json, &mut out))?;
            return finish(state, &matcher, mode, out);
        }
    }
    let mut buf = vec![0u8; CHUNK];
    let mut filled = 0;
    // True while the rest of an over-long line is being discarded.
    let mut discarding = false;
    loop {
        let n = read_some(&mut reader, &mut buf[filled..])?;
        if n == 0 {
            if filled > 0 && !discarding {
                state.line(&buf[..filled], &mut out)?;
            }
            break;
        }
        let mut start = 0;
        let end = filled + n;
        if discarding {
            match memchr::memchr(b'\n', &buf[filled..end]) {
                Some(p) => {
                    discarding = false;
                    start = filled + p + 1;
                }
                None => {
                    filled = 0;
                    continue;
                }
            }
        }
        let mut pos = start;
        while let Some(p) = memchr::memchr(b'\n', &buf[pos..end]) {
            state.line(&buf[pos..pos + p], &mut out)?;
            pos += p + 1;
        }
        let rest = end - pos;
        if rest == buf.len() {
            // A line longer than the whole buffer: count it once, drop what follows.
            state.line(&buf[..MAX_LINE_LEN + 1], &mut out)?;
            discarding = true;
            filled = 0;
        } else {
            buf.copy_within(pos..end, 0);
            filled = rest;
        }
    }

    finish(state, &matcher, mode, out)
}

fn finish<W: Write>(
    state: RunState<'_>,
    matcher: &ServiceMatcher,
    mode: ExplainMode,
    mut out: std::io::BufWriter<W>,
) -> Result<ExplainSummary, DetectError> {
    let stats = matcher.stats();
    let mut summary = state.summary;
    summary.ips = state.ips.len() as u64;
    summary.too_long = stats.too_long;
    summary.invalid_utf8 = stats.invalid_utf8;
    summary.ambiguous = stats.ambiguous;
    summary.addresses = most_first(state.ips.into_iter().collect());
    summary.patterns = most_first(
        state
            .patterns
            .into_iter()
            .map(|(p, n)| (p.to_string(), n))
            .collect(),
    );
    if let Some(missed) = state.missed {
        let mut shapes: Vec<MissedShape> = missed
            .into_iter()
            .map(|(shape, (lines, example))| MissedShape {
                shape,
                lines,
                example,
            })
            .collect();
        shapes.sort_by(|a, b| b.lines.cmp(&a.lines).then_with(|| a.shape.cmp(&b.shape)));
        summary.missed = shapes;
    }
    write_summary(&mut out, mode, &summary)?;
    out.flush()?;
    Ok(summary)
}

/// Sorted by count, most first, then by key.
fn most_first<K: Ord>(mut counts: Vec<(K, u64)>) -> Vec<(K, u64)> {
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
}

struct RunState<'m> {
    matcher: &'m ServiceMatcher,
    decider: Decider,
    service: Service,
    mode: ExplainMode,
    ctx: LineContext,
    summary: ExplainSummary,
    ips: HashMap<IpAddr, u64>,
    /// Lines per pattern, by the pattern's name (a handful: a linear search by pointer).
    patterns: Vec<(std::sync::Arc<str>, u64)>,
    /// Shape -> (lines, first line), when asked.
    missed: Option<HashMap<String, (u64, String)>>,
    banned: HashSet<Target>,
    protected: &'m dyn Fn(&Target) -> bool,
}

impl RunState<'_> {
    #[inline]
    fn line<W: Write>(&mut self, line: &[u8], out: &mut W) -> std::io::Result<()> {
        let ctx = self.ctx;
        self.line_in(line, &ctx, out)
    }

    /// One `journalctl -o json` entry.
    fn journal_json<W: Write>(&mut self, json: &[u8], out: &mut W) -> std::io::Result<()> {
        match crate::source::journal::parse_entry(json, MAX_LINE_LEN + 1) {
            Ok((entry, _)) => {
                let ctx = LineContext {
                    time: entry.time.map(|micros: i64| micros.div_euclid(1_000_000)),
                    pid: entry.fields.pid,
                    ..self.ctx
                };
                self.line_in(&entry.line, &ctx, out)
            }
            // An entry without a message, or not an entry: counted, nothing to match.
            Err(_) => {
                self.summary.lines += 1;
                Ok(())
            }
        }
    }

    fn line_in<W: Write>(
        &mut self,
        line: &[u8],
        ctx: &LineContext,
        out: &mut W,
    ) -> std::io::Result<()> {
        self.summary.lines += 1;
        let hit = match self.matcher.match_line(line, ctx) {
            LineOutcome::Match(hit) => hit,
            LineOutcome::NoMatch => {
                if let Some(missed) = &mut self.missed
                    && let Some(message) = self.matcher.message_of(line, ctx)
                    && !message.is_empty()
                {
                    let entry = missed
                        .entry(shape_of(message))
                        .or_insert_with(|| (0, String::from_utf8_lossy(line).into_owned()));
                    entry.0 += 1;
                }
                return Ok(());
            }
            LineOutcome::Skipped(_) => return Ok(()),
        };
        self.summary.matched += 1;
        *self.ips.entry(hit.addr).or_default() += 1;
        match self
            .patterns
            .iter_mut()
            .find(|(p, _)| std::sync::Arc::ptr_eq(p, &hit.pattern))
        {
            Some((_, n)) => *n += 1,
            None => self.patterns.push((hit.pattern.clone(), 1)),
        }
        match self.mode {
            ExplainMode::Summary => {}
            ExplainMode::Json => self.write_json(&hit, out)?,
            ExplainMode::Human => self.write_human(&hit, line, out)?,
        }
        if (self.protected)(&Target::from(hit.addr)) {
            self.summary.protected += 1;
            return Ok(());
        }
        let now = hit.time.unwrap_or(ctx.now);
        if let Some(Decision::Ban { target, .. }) = self.decider.observe(&self.service, &hit, now)
            && self.banned.insert(target)
        {
            self.summary.would_ban.push(target);
        }
        Ok(())
    }

    fn write_json<W: Write>(&self, hit: &Hit, out: &mut W) -> std::io::Result<()> {
        // Written field by field to keep the contract's key order; strings escaped by serde_json.
        write!(
            out,
            "{{\"line\":{},\"ip\":\"{}\",\"service\":",
            self.summary.lines, hit.addr
        )?;
        serde_json::to_writer(&mut *out, self.service.as_str())?;
        out.write_all(b",\"kind\":")?;
        serde_json::to_writer(&mut *out, hit.kind.as_str())?;
        match hit.time {
            Some(t) => write!(out, ",\"time\":\"{}\"", format_rfc3339(t))?,
            None => write!(out, ",\"time\":null")?,
        }
        out.write_all(b",\"pattern\":")?;
        serde_json::to_writer(&mut *out, &*hit.pattern)?;
        writeln!(out, "}}")
    }

    fn write_human<W: Write>(&self, hit: &Hit, line: &[u8], out: &mut W) -> std::io::Result<()> {
        let time = hit.time.map_or_else(|| "-".to_owned(), format_rfc3339);
        let text = String::from_utf8_lossy(&line[..line.len().min(160)]);
        writeln!(
            out,
            "{:>8}  {:<20}  {:<39}  {:<13}  {:<31}  {}",
            self.summary.lines,
            time,
            hit.addr,
            hit.kind.as_str(),
            &*hit.pattern,
            // The line is attacker text: no escape sequence reaches the terminal.
            crmonban_core::text::escape_control(text.trim_end())
        )
    }
}

fn write_summary<W: Write>(
    out: &mut W,
    mode: ExplainMode,
    summary: &ExplainSummary,
) -> std::io::Result<()> {
    let would_ban: Vec<String> = summary.would_ban.iter().map(Target::to_string).collect();
    match mode {
        ExplainMode::Json => {
            write!(
                out,
                "{{\"summary\":{{\"lines\":{},\"matched\":{},\"ips\":{},\"would_ban\":",
                summary.lines, summary.matched, summary.ips
            )?;
            serde_json::to_writer(&mut *out, &would_ban)?;
            write!(
                out,
                ",\"too_long\":{},\"invalid_utf8\":{},\"protected\":{},\"ambiguous\":{}",
                summary.too_long, summary.invalid_utf8, summary.protected, summary.ambiguous
            )?;
            // Written key by key, in the documented order.
            out.write_all(b",\"addresses\":[")?;
            for (i, (ip, n)) in summary.addresses.iter().enumerate() {
                let comma = if i == 0 { "" } else { "," };
                write!(out, "{comma}{{\"ip\":\"{ip}\",\"lines\":{n}}}")?;
            }
            out.write_all(b"],\"patterns\":[")?;
            for (i, (pattern, n)) in summary.patterns.iter().enumerate() {
                out.write_all(if i == 0 {
                    b"{\"pattern\":"
                } else {
                    b",{\"pattern\":"
                })?;
                serde_json::to_writer(&mut *out, pattern)?;
                write!(out, ",\"lines\":{n}}}")?;
            }
            out.write_all(b"],\"missed\":[")?;
            for (i, m) in summary.missed.iter().enumerate() {
                out.write_all(if i == 0 {
                    b"{\"shape\":"
                } else {
                    b",{\"shape\":"
                })?;
                serde_json::to_writer(&mut *out, &m.shape)?;
                write!(out, ",\"lines\":{},\"example\":", m.lines)?;
                serde_json::to_writer(&mut *out, &m.example)?;
                out.write_all(b"}")?;
            }
            out.write_all(b"]")?;
            writeln!(out, "}}}}")
        }
        ExplainMode::Human | ExplainMode::Summary => {
            writeln!(
                out,
                "lines: {}  matched: {}  addresses: {}  would ban: {}",
                summary.lines,
                summary.matched,
                summary.ips,
                summary.would_ban.len()
            )?;
            if summary.protected > 0 {
                writeln!(
                    out,
                    "protected (whitelisted, trusted zone or reserved; not counted): {} lines",
                    summary.protected
                )?;
            }
            if summary.too_long > 0 || summary.invalid_utf8 > 0 {
                writeln!(
                    out,
                    "skipped: {} over {} bytes; not UTF-8 (matched lossily): {}",
                    summary.too_long, MAX_LINE_LEN, summary.invalid_utf8
                )?;
            }
            if summary.ambiguous > 0 {
                writeln!(
                    out,
                    "ambiguous (attacker text makes the address uncertain; not counted): {} lines",
                    summary.ambiguous
                )?;
            }
            for target in &would_ban {
                writeln!(out, "would ban: {target}")?;
            }
            if !summary.patterns.is_empty() {
                writeln!(out, "lines per pattern:")?;
                for (pattern, n) in &summary.patterns {
                    writeln!(out, "  {n:>9}  {pattern}")?;
                }
            }
            if !summary.addresses.is_empty() {
                writeln!(out, "lines per address (the 20 busiest):")?;
                for (ip, n) in summary.addresses.iter().take(20) {
                    writeln!(out, "  {n:>9}  {ip}")?;
                }
            }
            if !summary.missed.is_empty() {
                writeln!(
                    out,
                    "missed: lines of the service no pattern matched, by shape ({} shapes):",
                    summary.missed.len()
                )?;
                for m in summary.missed.iter().take(50) {
                    writeln!(out, "  {:>9}  {}", m.lines, m.shape)?;
                    let example: String = m.example.chars().take(200).collect();
                    writeln!(out, "             e.g. {}", example.escape_debug())?;
                }
            }
            Ok(())
        }
    }
}

/// The shape of a message that no pattern matched: its first three words (what kind of message
/// it is, before user names and such), with addresses
/// written `<IP>` and digit runs `<N>`, so that lines differing only in those group together.
fn shape_of(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(&message[..message.len().min(512)]);
    let mut shape = Vec::new();
    for word in text.split_whitespace().take(3) {
        let bare = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != ':' && c != '.');
        let shaped = if bare.contains(['.', ':']) && bare.parse::<IpAddr>().is_ok()
            || bare.rsplit_once(':').is_some_and(|(a, p)| {
                p.chars().all(|c| c.is_ascii_digit()) && a.parse::<IpAddr>().is_ok()
            }) {
            word.replace(bare, "<IP>")
        } else {
            let mut out = String::with_capacity(word.len());
            let mut in_digits = false;
            for c in word.chars() {
                if c.is_ascii_digit() {
                    if !in_digits {
                        out.push_str("<N>");
                    }
                    in_digits = true;
                } else {
                    out.push(c);
                    in_digits = false;
                }
            }
            out
        };
        shape.push(shaped);
    }
    shape.join(" ")
}
