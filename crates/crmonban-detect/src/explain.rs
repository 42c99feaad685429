//! The offline runner behind `crmonband explain --service NAME [--json|--summary] FILE|-`:
//! the daemon's detection path — [`ServiceMatcher`] then [`Decider`] — over a file, with no
//! firewall, database or bus.
//!
//! The input is read in 1 MiB chunks and split into lines with memchr; a line longer than the
//! buffer is discarded as it streams by (it is over [`MAX_LINE_LEN`] anyway), so memory stays
//! bounded whatever the input. Each hit is given to the decider with the time it would have
//! had in the daemon: its own log time, or [`LineContext::now`] when the line has none.
//!
//! Output (DESIGN.md §5). `--json`: one object per matched line, then the summary:
//!
//! ```text
//! {"line":N,"ip":"...","service":"...","kind":"...","time":"RFC3339 or null"}
//! {"summary":{"lines":N,"matched":M,"ips":K,"would_ban":["ip",...],"too_long":T,"invalid_utf8":U}}
//! ```
//!
//! `line` is 1-based, `time` is UTC (`2026-11-25T16:19:59Z`), `ips` counts distinct matched
//! addresses, `would_ban` lists the targets the decider bans, in the order of their first ban
//! (an IPv6 network under aggregation). `too_long`, `invalid_utf8` and `protected` (matched
//! lines from addresses the protection policy covers: not counted, never banned, as in the
//! daemon; see [`run_protected`]) are extra keys.
//! Human mode prints one aligned row per matched line and a short summary; `--summary` only the
//! summary.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::net::IpAddr;

use crmonban_core::config::ServiceConfig;
use crmonban_core::{Service, Target};

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
    pub decider: DeciderOptions,
}

/// What a run found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExplainSummary {
    pub lines: u64,
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
    mut reader: R,
    mode: ExplainMode,
    out: &mut W,
    ctx: &ExplainContext,
    protected: &dyn Fn(&Target) -> bool,
) -> Result<ExplainSummary, DetectError> {
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
        ips: HashSet::new(),
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

    let stats = matcher.stats();
    let mut summary = state.summary;
    summary.ips = state.ips.len() as u64;
    summary.too_long = stats.too_long;
    summary.invalid_utf8 = stats.invalid_utf8;
    write_summary(&mut out, mode, &summary)?;
    out.flush()?;
    Ok(summary)
}

fn read_some<R: BufRead>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

struct RunState<'m> {
    matcher: &'m ServiceMatcher,
    decider: Decider,
    service: Service,
    mode: ExplainMode,
    ctx: LineContext,
    summary: ExplainSummary,
    ips: HashSet<IpAddr>,
    banned: HashSet<Target>,
    protected: &'m dyn Fn(&Target) -> bool,
}

impl RunState<'_> {
    #[inline]
    fn line<W: Write>(&mut self, line: &[u8], out: &mut W) -> std::io::Result<()> {
        self.summary.lines += 1;
        let LineOutcome::Match(hit) = self.matcher.match_line(line, &self.ctx) else {
            return Ok(());
        };
        self.summary.matched += 1;
        self.ips.insert(hit.addr);
        match self.mode {
            ExplainMode::Summary => {}
            ExplainMode::Json => self.write_json(&hit, out)?,
            ExplainMode::Human => self.write_human(&hit, line, out)?,
        }
        if (self.protected)(&Target::from(hit.addr)) {
            self.summary.protected += 1;
            return Ok(());
        }
        let now = hit.time.unwrap_or(self.ctx.now);
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
            Some(t) => writeln!(out, ",\"time\":\"{}\"}}", format_rfc3339(t)),
            None => writeln!(out, ",\"time\":null}}"),
        }
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
            text.trim_end()
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
            writeln!(
                out,
                ",\"too_long\":{},\"invalid_utf8\":{},\"protected\":{}}}}}",
                summary.too_long, summary.invalid_utf8, summary.protected
            )
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
            for target in &would_ban {
                writeln!(out, "would ban: {target}")?;
            }
            Ok(())
        }
    }
}
