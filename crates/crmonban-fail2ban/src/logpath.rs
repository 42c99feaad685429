//! A jail's `logpath` made into the one `log_path` a crmonban service reads: fail2ban takes
//! several paths (one per line) and globs (`/var/log/nginx/*error.log`), each optionally
//! followed by `head` or `tail`; crmonban reads one file per service. Globs are expanded on
//! this machine, as fail2ban expands them when it starts.

use std::path::{Path, PathBuf};

/// The paths of a `logpath` value, `head`/`tail` suffixes dropped.
pub fn paths(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| match line.rsplit_once(char::is_whitespace) {
            Some((path, "head" | "tail")) => path.trim_end(),
            _ => line,
        })
        .collect()
}

/// What a `logpath` comes to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Chosen {
    /// The file to read, if any path was usable.
    pub path: Option<String>,
    /// Problems to report: each a path (or glob), what happened to it, and whether a file
    /// fail2ban read is not read (rather than read differently).
    pub problems: Vec<(String, String, bool)>,
}

/// Chooses the file of `text` to read; `fallback` is the service's own default log, used
/// when a glob matches nothing now but would match it.
pub fn choose(text: &str, fallback: Option<&Path>) -> Chosen {
    let mut chosen = Chosen::default();
    for path in paths(text) {
        if !path.starts_with('/') {
            chosen.problems.push((
                path.to_owned(),
                "not an absolute path: not read".to_owned(),
                true,
            ));
            continue;
        }
        if !is_glob(path) {
            take(&mut chosen, path.to_owned());
            continue;
        }
        let found = expand(path);
        match found.as_slice() {
            [] => match fallback.filter(|f| matches_glob(path, f)) {
                Some(f) => {
                    let f = f.display().to_string();
                    chosen.problems.push((
                        path.to_owned(),
                        format!("a glob, matching no file now: reading {f}, which it would match"),
                        false,
                    ));
                    take(&mut chosen, f);
                }
                None => chosen.problems.push((
                    path.to_owned(),
                    "a glob, matching no file now: not read (crmonban reads one named file)"
                        .to_owned(),
                    true,
                )),
            },
            [only] => {
                let only = only.display().to_string();
                chosen.problems.push((
                    path.to_owned(),
                    format!(
                        "a glob: reading {only}, the one file it matches now; files it \
                         matches later are not read"
                    ),
                    false,
                ));
                take(&mut chosen, only);
            }
            several => {
                // The service's own log when the glob covers it, else the first match.
                let pick = fallback
                    .and_then(|f| several.iter().find(|p| p.as_path() == f))
                    .unwrap_or(&several[0])
                    .display()
                    .to_string();
                let others: Vec<String> = several
                    .iter()
                    .map(|p| p.display().to_string())
                    .filter(|p| *p != pick)
                    .collect();
                chosen.problems.push((
                    path.to_owned(),
                    format!(
                        "a glob matching {} files: reading {pick}; not read: {} (crmonban \
                         reads one file per service)",
                        several.len(),
                        others.join(", ")
                    ),
                    true,
                ));
                take(&mut chosen, pick);
            }
        }
    }
    chosen
}

fn take(chosen: &mut Chosen, path: String) {
    match &chosen.path {
        None => chosen.path = Some(path),
        Some(first) if *first == path => {}
        Some(first) => {
            let message = format!(
                "not read: crmonban reads one file per service, and reads {first} for this one"
            );
            chosen.problems.push((path, message, true));
        }
    }
}

fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// The existing files matching an absolute glob, sorted.
fn expand(pattern: &str) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::from("/")];
    for part in pattern.split('/').filter(|p| !p.is_empty()) {
        let mut next = Vec::new();
        for dir in &found {
            if !is_glob(part) {
                let candidate = dir.join(part);
                if candidate.exists() {
                    next.push(candidate);
                }
                continue;
            }
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                // As in fail2ban (Python's glob): a wildcard does not match a leading dot.
                if name.starts_with('.') && !part.starts_with('.') {
                    continue;
                }
                if wildcard(part.as_bytes(), name.as_bytes()) {
                    next.push(entry.path());
                }
            }
        }
        found = next;
    }
    found.retain(|p| p.is_file());
    found.sort();
    found
}

/// Whether `path` matches the absolute glob `pattern`, component by component.
fn matches_glob(pattern: &str, path: &Path) -> bool {
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    let names: Vec<String> = path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    parts.len() == names.len()
        && parts
            .iter()
            .zip(&names)
            .all(|(p, n)| wildcard(p.as_bytes(), n.as_bytes()))
}

/// Shell wildcard match of one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!abc]`.
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.first() {
        None => name.is_empty(),
        Some(b'*') => (0..=name.len()).any(|skip| wildcard(&pattern[1..], &name[skip..])),
        Some(b'?') => !name.is_empty() && wildcard(&pattern[1..], &name[1..]),
        Some(b'[') => {
            let Some(close) = pattern
                .iter()
                .skip(2)
                .position(|&b| b == b']')
                .map(|i| i + 2)
            else {
                return name.first() == Some(&b'[') && wildcard(&pattern[1..], &name[1..]);
            };
            let Some(&c) = name.first() else {
                return false;
            };
            let (negate, set) = match pattern[1] {
                b'!' | b'^' => (true, &pattern[2..close]),
                _ => (false, &pattern[1..close]),
            };
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negate && wildcard(&pattern[close + 1..], &name[1..])
        }
        Some(&b) => name.first() == Some(&b) && wildcard(&pattern[1..], &name[1..]),
    }
}

#[cfg(test)]
#[path = "logpath_tests.rs"]
mod tests;
