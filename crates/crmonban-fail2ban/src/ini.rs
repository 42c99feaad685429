//! One fail2ban configuration file parsed the way fail2ban's Python `configparser` reads it:
//! `[section]` headers (`[DEFAULT]` apart), `key = value` or `key: value` with keys lowercased,
//! values continued on more-indented lines (blank lines inside a value kept, trailing ones
//! dropped), whole-line `#` and `;` comments, inline `;` comments after a blank, and — as in
//! `configparser`'s strict mode — a section or a key given twice in one file is an error.
//! Every value keeps the file and line it was written on, so that reports can point at it.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// Where something was written: a file and a 1-based line (0: not from a file's line).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// The file.
    pub file: Arc<Path>,
    /// The line, from 1; 0 for what is not on a line (fail2ban's built-in values).
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}", self.file.display(), self.line)
        }
    }
}

/// A value as written (not interpolated), with where it was written and in which section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawValue {
    /// The text, continuation lines joined with `\n`.
    pub text: String,
    /// Where it was written.
    pub origin: Origin,
    /// The section it was written in (`DEFAULT` for defaults).
    pub section: String,
}

/// A section's options in the order written.
pub type Options = Vec<(String, RawValue)>;

/// One parsed file.
#[derive(Clone, Debug, Default)]
pub struct IniFile {
    /// `[DEFAULT]` options.
    pub defaults: Options,
    /// The other sections, in the order they first appear (`[INCLUDES]` among them).
    pub sections: Vec<(String, Options)>,
}

impl IniFile {
    /// The options of section `name`, if the file has it.
    pub fn section(&self, name: &str) -> Option<&Options> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, options)| options)
    }
}

/// A file that is not fail2ban configuration, with the place and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct IniError {
    /// The file and line.
    pub origin: Origin,
    /// What is wrong there.
    pub message: String,
}

/// Where the value being read goes: the defaults or a section, and which of its options.
#[derive(Clone, Copy)]
enum Target {
    Defaults,
    Section(usize),
}

/// A value being read, line by line.
struct Open {
    target: Target,
    option: usize,
    lines: Vec<String>,
}

/// Parses `text`, the contents of `file`.
pub fn parse(file: &Arc<Path>, text: &str) -> Result<IniFile, IniError> {
    let mut parsed = IniFile::default();
    let mut current: Option<Target> = None;
    let mut open: Option<Open> = None;
    let mut indent_level = 0usize;
    let mut section_name = String::new();
    // (section, key) pairs seen in this file: a repeat is an error, as in strict configparser.
    let mut keys_seen: Vec<(String, String)> = Vec::new();
    let err = |line: usize, message: String| IniError {
        origin: Origin {
            file: file.clone(),
            line,
        },
        message,
    };
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let comment_start = comment_start(line);
        let value = line[..comment_start.unwrap_or(line.len())].trim();
        if value.is_empty() {
            // A blank line belongs to the value being read; a comment line is skipped.
            if comment_start.is_none()
                && let Some(open) = &mut open
            {
                open.lines.push(String::new());
            }
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if let Some(open) = open.as_mut().filter(|_| indent > indent_level) {
            open.lines.push(value.to_owned());
            continue;
        }
        finish(&mut parsed, open.take());
        indent_level = indent;
        if let Some(name) = header(value) {
            if name == "DEFAULT" {
                current = Some(Target::Defaults);
            } else if parsed.sections.iter().any(|(n, _)| n == name) {
                return Err(err(
                    number,
                    format!("section [{name}] appears twice in this file"),
                ));
            } else {
                parsed.sections.push((name.to_owned(), Vec::new()));
                current = Some(Target::Section(parsed.sections.len() - 1));
            }
            section_name = name.to_owned();
            continue;
        }
        let Some(target) = current else {
            return Err(err(
                number,
                "a setting before any [section] header".to_owned(),
            ));
        };
        let Some(at) = value.find(['=', ':']) else {
            return Err(err(
                number,
                format!("expected `key = value` or a [section] header, found {value:?}"),
            ));
        };
        let key = value[..at].trim_end().to_lowercase();
        if key.is_empty() {
            return Err(err(number, format!("no key before `=` in {value:?}")));
        }
        let pair = (section_name.clone(), key.clone());
        if keys_seen.contains(&pair) {
            return Err(err(
                number,
                format!("`{key}` is set twice in section [{section_name}] of this file"),
            ));
        }
        keys_seen.push(pair);
        let raw = RawValue {
            text: String::new(),
            origin: Origin {
                file: file.clone(),
                line: number,
            },
            section: section_name.clone(),
        };
        let options = options_of(&mut parsed, target);
        options.push((key, raw));
        open = Some(Open {
            target,
            option: options.len() - 1,
            lines: vec![value[at + 1..].trim().to_owned()],
        });
    }
    finish(&mut parsed, open);
    Ok(parsed)
}

/// Where a comment starts in `line`: the whole line when its first non-blank character is `#`
/// or `;`, else at a `;` that follows a blank.
fn comment_start(line: &str) -> Option<usize> {
    let trimmed = line.trim_start();
    if trimmed.starts_with('#') || trimmed.starts_with(';') {
        return Some(0);
    }
    let bytes = line.as_bytes();
    (1..bytes.len()).find(|&i| bytes[i] == b';' && bytes[i - 1].is_ascii_whitespace())
}

/// The name of a `[section]` header line: from the first `[` to the last `]`, not empty.
fn header(value: &str) -> Option<&str> {
    let rest = value.strip_prefix('[')?;
    let end = rest.rfind(']')?;
    (end > 0).then(|| &rest[..end])
}

fn options_of(parsed: &mut IniFile, target: Target) -> &mut Options {
    match target {
        Target::Defaults => &mut parsed.defaults,
        Target::Section(i) => &mut parsed.sections[i].1,
    }
}

/// Stores the value read so far: its lines joined, trailing blank lines dropped.
fn finish(parsed: &mut IniFile, open: Option<Open>) {
    if let Some(open) = open {
        let text = open.lines.join("\n").trim_end().to_owned();
        options_of(parsed, open.target)[open.option].1.text = text;
    }
}

#[cfg(test)]
#[path = "ini_tests.rs"]
mod tests;
