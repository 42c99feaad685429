//! What the conversion tells the user (`crmonctl import-fail2ban` prints it on stderr): what it
//! could not carry over, and what works differently in crmonban. Each entry points at the file
//! and line that set the value (or names the jail), says which jails it concerns when the value
//! comes from `[DEFAULT]`, and appears once however many jails share it.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crmonban_core::text::escape_control;

use super::ini::{Origin, RawValue};

/// How much an entry matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// fail2ban did something crmonban's configuration does not do.
    Lost,
    /// Carried over, but crmonban behaves differently.
    Note,
}

/// One entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// How much it matters.
    pub kind: Kind,
    /// Where it was set; `None` for what concerns the whole conversion.
    pub origin: Option<Origin>,
    /// What it is about, e.g. `[sshd] bantime.factor = 2`.
    pub subject: String,
    /// What happened to it.
    pub message: String,
    /// The jails concerned, when that is not clear from the subject.
    pub jails: BTreeSet<String>,
}

/// Every entry, in the order files were read and lines written.
#[derive(Debug, Default)]
pub struct Report {
    entries: Vec<Entry>,
    /// The reading order of the files, for sorting.
    files: Vec<Origin>,
}

impl Report {
    /// A report sorting entries by `files`' reading order.
    pub fn new(files: &[std::sync::Arc<std::path::Path>]) -> Report {
        Report {
            entries: Vec::new(),
            files: files
                .iter()
                .map(|f| Origin {
                    file: f.clone(),
                    line: 0,
                })
                .collect(),
        }
    }

    /// Adds an entry about the value `raw` of `key` as jail `jail` sees it; one written in
    /// `[DEFAULT]` (or another section) lists the jails it concerns.
    /// `shown` is the value as the jail sees it (interpolated), or a part of it.
    pub fn value(
        &mut self,
        kind: Kind,
        jail: &str,
        key: &str,
        raw: &RawValue,
        shown: &str,
        message: String,
    ) {
        let shown = one_line(shown);
        self.add(Entry {
            kind,
            origin: Some(raw.origin.clone()),
            subject: format!("[{}] {key} = {shown}", raw.section),
            message,
            jails: if raw.section == jail {
                BTreeSet::new()
            } else {
                BTreeSet::from([jail.to_owned()])
            },
        });
    }

    /// Adds an entry about a jail as a whole (`at`: where it was enabled).
    pub fn jail(&mut self, kind: Kind, jail: &str, at: Option<&RawValue>, message: String) {
        self.add(Entry {
            kind,
            origin: at.map(|raw| raw.origin.clone()),
            subject: format!("[{jail}]"),
            message,
            jails: BTreeSet::new(),
        });
    }

    /// Adds an entry about the whole conversion.
    pub fn general(&mut self, kind: Kind, subject: &str, message: String) {
        self.add(Entry {
            kind,
            origin: None,
            subject: subject.to_owned(),
            message,
            jails: BTreeSet::new(),
        });
    }

    /// Adds `entry`, or merges its jails into an equal one already there.
    pub fn add(&mut self, entry: Entry) {
        let same = self.entries.iter_mut().find(|e| {
            e.kind == entry.kind
                && e.origin == entry.origin
                && e.subject == entry.subject
                && e.message == entry.message
        });
        match same {
            Some(existing) => existing.jails.extend(entry.jails),
            None => self.entries.push(entry),
        }
    }

    /// Position of an origin in reading order (general entries first).
    fn rank(&self, origin: &Option<Origin>) -> (usize, usize) {
        match origin {
            None => (0, 0),
            Some(o) => (
                1 + self
                    .files
                    .iter()
                    .position(|f| f.file == o.file)
                    .unwrap_or(self.files.len()),
                o.line,
            ),
        }
    }

    /// The report as text: a heading per kind, one entry per line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (kind, heading) in [
            (Kind::Lost, "not carried over (no equivalent in crmonban)"),
            (Kind::Note, "carried over with a difference"),
        ] {
            let mut entries: Vec<&Entry> = self.entries.iter().filter(|e| e.kind == kind).collect();
            if entries.is_empty() {
                continue;
            }
            entries.sort_by_key(|e| self.rank(&e.origin));
            let _ = writeln!(out, "{heading}:");
            for e in entries {
                out.push_str("  ");
                if let Some(origin) = &e.origin {
                    let _ = write!(out, "{origin}: ");
                }
                let _ = write!(out, "{}: {}", e.subject, e.message);
                if !e.jails.is_empty() {
                    let names: Vec<&str> = e.jails.iter().map(String::as_str).collect();
                    let _ = write!(out, " (jails: {})", names.join(", "));
                }
                out.push('\n');
            }
        }
        out
    }
}

/// A value shown on one line: line breaks as ` `, control characters escaped, long values cut.
pub fn one_line(text: &str) -> String {
    let joined = text
        .split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let mut shown: String = escape_control(&joined).into_owned();
    if shown.chars().count() > 120 {
        shown = shown.chars().take(117).collect::<String>() + "...";
    }
    shown
}
