//! The `file` whitelist source: one address or CIDR per line, `#` starts a comment (whole
//! line or after the entry), blank lines are ignored. A bad line is reported with its number
//! and skipped; every other line still applies.

use std::path::{Path, PathBuf};

use crmonban_core::Target;

/// The longest line read; a longer one is a problem, not an allocation.
const MAX_LINE: usize = 4096;

/// A line of a whitelist file that could not be used, or the file itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct FileProblem {
    /// The whitelist file.
    pub path: PathBuf,
    /// 1-based; `None` when the whole file is the problem (missing, unreadable).
    pub line: Option<usize>,
    /// What is wrong with the line or the file.
    pub message: String,
}

/// Reads `path`: every entry with its line number and comment, and every problem. A missing
/// or unreadable file gives no entries and one problem.
pub fn read_whitelist_file(path: &Path) -> (Vec<(Target, usize, String)>, Vec<FileProblem>) {
    match std::fs::read(path) {
        Ok(bytes) => parse_whitelist(path, &String::from_utf8_lossy(&bytes)),
        Err(e) => (
            Vec::new(),
            vec![FileProblem {
                path: path.to_owned(),
                line: None,
                message: if e.kind() == std::io::ErrorKind::NotFound {
                    "does not exist (it applies once it does)".into()
                } else {
                    format!("cannot be read: {e}")
                },
            }],
        ),
    }
}

fn parse_whitelist(path: &Path, text: &str) -> (Vec<(Target, usize, String)>, Vec<FileProblem>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let problem = |message: String| FileProblem {
            path: path.to_owned(),
            line: Some(line),
            message,
        };
        if raw.len() > MAX_LINE {
            problems.push(problem(format!("longer than {MAX_LINE} bytes")));
            continue;
        }
        let (entry, comment) = match raw.split_once('#') {
            Some((entry, comment)) => (entry.trim(), comment.trim()),
            None => (raw.trim(), ""),
        };
        if entry.is_empty() {
            continue;
        }
        match Target::parse(entry) {
            Ok(target) => entries.push((target, line, comment.to_owned())),
            // The parser's message quotes the entry (escaped); a long one is cut short.
            Err(e) if entry.len() <= 64 => problems.push(problem(e.to_string())),
            Err(_) => {
                let shown: String = entry.chars().take(64).collect();
                problems.push(problem(format!(
                    "{shown:?}... is not an IP address or CIDR"
                )));
            }
        }
    }
    (entries, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_comments_and_bad_lines_with_their_numbers() {
        let path = Path::new("/etc/crmonban/trusted.txt");
        let (entries, problems) = parse_whitelist(
            path,
            "# office\n10.0.0.0/8  # the LAN\n\n  2001:db8::/32\nnot-an-ip\n192.0.2.1/33\n198.51.100.7\n",
        );
        let got: Vec<(String, usize, &str)> = entries
            .iter()
            .map(|(t, l, c)| (t.to_string(), *l, c.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("10.0.0.0/8".into(), 2, "the LAN"),
                ("2001:db8::/32".into(), 4, ""),
                ("198.51.100.7".into(), 7, ""),
            ]
        );
        assert_eq!(problems.len(), 2);
        assert!(
            problems[0]
                .to_string()
                .starts_with("/etc/crmonban/trusted.txt:5: invalid address \"not-an-ip\""),
            "{}",
            problems[0]
        );
        assert_eq!(problems[1].line, Some(6));
    }

    #[test]
    fn hostile_lines_are_bounded_and_escaped() {
        let path = Path::new("w");
        let long = "1".repeat(MAX_LINE + 1);
        let (entries, problems) = parse_whitelist(
            path,
            &format!("{long}\n\u{1b}[31mred\n{}\n", "x".repeat(100)),
        );
        assert!(entries.is_empty());
        assert_eq!(problems[0].message, format!("longer than {MAX_LINE} bytes"));
        assert!(
            problems[1]
                .message
                .starts_with("invalid address \"\\u{1b}[31mred\""),
            "{}",
            problems[1]
        );
        assert_eq!(
            problems[2].message,
            format!("{:?}... is not an IP address or CIDR", "x".repeat(64))
        );
    }

    #[test]
    fn a_missing_file_is_one_problem_and_no_entries() {
        let (entries, problems) = read_whitelist_file(Path::new("/nonexistent/crmonban-wl"));
        assert!(entries.is_empty());
        assert_eq!(
            problems[0].to_string(),
            "/nonexistent/crmonban-wl: does not exist (it applies once it does)"
        );
    }
}
