//! Checking service packs before they are used: every sample line of a pack must give what it
//! says (its address and pattern, or no match), every pattern must be proved by at least one
//! sample, and no pattern may yield an address that an attacker wrote. For the last, each
//! sample that matches is rewritten with every attacker group of its pattern (`user`,
//! `keyid`, ...) holding a forgery of the service's own text around the address, with a
//! different address; the forged address must never come out ([`verify`]).
//!
//! Packs from a directory ([`load_dir`]) are read, checked and refused as a whole on any
//! problem, with the file and line of each.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crmonban_core::config::pack::PackTest;
use crmonban_core::config::{BanDuration, Pack, ServiceConfig};
use regex::bytes::Regex;

use crate::matcher::{LineContext, LineOutcome, ServiceMatcher};

/// The reference time of sample lines (2026-11-26T00:00:00Z): BSD stamps without a year are
/// read as the year before it.
pub const SAMPLE_NOW: i64 = 1_795_651_200;

/// The addresses forgeries put in attacker text.
const FORGED: [&str; 2] = ["198.18.0.66", "2001:db8:ffff::66"];

/// Imitations of services' address fields, `{}` standing for the forged address.
const SNIPPETS: [&str; 12] = [
    " from {} port 22 ssh2",
    " from {} port 22 ssh2: RSA SHA256:AAAA",
    " {} port 22",
    " {} port 22 [preauth]",
    ", client: {}, server: x",
    "rip={}, lip=10.0.0.1",
    "[client {}:1] ",
    "({})",
    "[{}]",
    "[{}]: ",
    ",{},<s>)",
    "{}",
];

/// A problem of a pack, with where it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}: {message}")]
pub struct PackProblem {
    /// The pack's origin: its path, or `built-in NAME.toml`.
    pub origin: String,
    /// 1-based line in the pack file; 0 when the problem has no line (a file that cannot be
    /// read).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// What [`verify`] checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PackReport {
    /// Sample lines (`[[tests]]`) run.
    pub samples: usize,
    /// Forged lines tried (none yielded the forged address).
    pub forgeries: usize,
}

/// Checks `pack` (see the module docs). Every problem is returned.
pub fn verify(pack: &Arc<Pack>) -> Result<PackReport, Vec<PackProblem>> {
    let problem = |line: usize, message: String| PackProblem {
        origin: pack.origin.clone(),
        line,
        message,
    };
    let config = ServiceConfig::from_pack(pack, BanDuration::from_secs(3600));
    let matcher =
        ServiceMatcher::new(&pack.name, &config).map_err(|e| vec![problem(1, e.to_string())])?;
    let ctx = LineContext::at(SAMPLE_NOW);
    let mut problems = Vec::new();
    let mut proved = vec![false; pack.patterns.len()];
    let mut report = PackReport::default();
    for test in &pack.tests {
        report.samples += 1;
        let outcome = matcher.match_line(test.text.as_bytes(), &ctx);
        match (&outcome, test.ip) {
            (LineOutcome::Match(hit), Some(ip)) => {
                if hit.addr != ip {
                    problems.push(problem(
                        test.line,
                        format!(
                            "sample gives {} (pattern {}), not {ip}",
                            hit.addr, hit.pattern
                        ),
                    ));
                    continue;
                }
                if let Some(want) = &test.pattern
                    && **want != *hit.pattern
                {
                    problems.push(problem(
                        test.line,
                        format!("sample matches pattern {}, not {want}", hit.pattern),
                    ));
                    continue;
                }
                if let Some(i) = pack.patterns.iter().position(|p| *p.name == *hit.pattern) {
                    proved[i] = true;
                    match forgeries(&matcher, &pack.patterns[i], test, ip, &ctx) {
                        Ok(tried) => report.forgeries += tried,
                        Err(message) => problems.push(problem(test.line, message)),
                    }
                }
            }
            (LineOutcome::Match(hit), None) => problems.push(problem(
                test.line,
                format!(
                    "sample must not match, but pattern {} gives {}",
                    hit.pattern, hit.addr
                ),
            )),
            (other, Some(ip)) => problems.push(problem(
                test.line,
                format!("sample must give {ip}, but {}", describe(other)),
            )),
            (_, None) => {}
        }
    }
    for (pattern, proved) in pack.patterns.iter().zip(proved) {
        if !proved {
            problems.push(problem(
                pattern.line,
                format!(
                    "pattern {} has no sample line it matches: add a [[tests]] line it gives \
                     an address for",
                    pattern.name
                ),
            ));
        }
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(problems)
    }
}

fn describe(outcome: &LineOutcome) -> String {
    match outcome {
        LineOutcome::Match(hit) => format!("pattern {} gives {}", hit.pattern, hit.addr),
        LineOutcome::NoMatch => "no pattern matches it".into(),
        LineOutcome::Skipped(why) => format!("it is skipped ({why:?})"),
    }
}

/// Where a pattern found the client's text and the address in a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spans {
    /// Each attacker group that took part: name, start, end.
    pub groups: Vec<(&'static str, usize, usize)>,
    /// The address: start, end.
    pub ip: (usize, usize),
    /// Where the message (the text the pattern matched from) starts.
    pub message: usize,
}

/// The spans of `pattern`'s attacker groups and address in `line`, where the pattern matches
/// the line's message.
pub fn attacker_spans(
    pattern: &crmonban_core::config::pack::PackPattern,
    line: &[u8],
) -> Option<Spans> {
    let regex = Regex::new(&pattern.expanded()).ok()?;
    let (start, caps) =
        (0..line.len()).find_map(|start| regex.captures(&line[start..]).map(|c| (start, c)))?;
    let ip = caps.name("ip")?;
    let groups = pattern
        .attacker_groups()
        .into_iter()
        .filter_map(|g| {
            caps.name(g)
                .map(|m| (g, start + m.start(), start + m.end()))
        })
        .collect();
    Some(Spans {
        groups,
        ip: (start + ip.start(), start + ip.end()),
        message: start,
    })
}

/// Rewrites each attacker group of `pattern` in the sample with forgeries; `Err` names the
/// first that yields a forged address. Returns how many lines were tried.
fn forgeries(
    matcher: &ServiceMatcher,
    pattern: &crmonban_core::config::pack::PackPattern,
    test: &PackTest,
    real: IpAddr,
    ctx: &LineContext,
) -> Result<usize, String> {
    let groups = pattern.attacker_groups();
    let mut tried = 0;
    // A regex that does not end with $ lets any text follow what it matched (a URL, a
    // referrer, a client's reason): appended imitations of address fields must not move it.
    let open_tail = !pattern.regex.ends_with('$');
    for forged in FORGED.iter().filter(|_| open_tail) {
        for snippet in SNIPPETS {
            let line = format!("{}{}", test.text, snippet.replace("{}", forged));
            tried += 1;
            if let LineOutcome::Match(hit) = matcher.match_line(line.as_bytes(), ctx)
                && hit.addr.to_string() == *forged
            {
                return Err(format!(
                    "pattern {} takes the address from text after the line's own: with {:?} \
                     appended it gives {forged}",
                    pattern.name,
                    snippet.replace("{}", forged)
                ));
            }
        }
    }
    if groups.is_empty() {
        return Ok(tried);
    }
    let Some(spans) = attacker_spans(pattern, test.text.as_bytes()) else {
        return Ok(tried);
    };
    let real_text = real.to_string();
    let (start, (is, ie)) = (spans.message, spans.ip);
    for (group, gs, ge) in spans.groups {
        let original = &test.text[gs..ge];
        for forged in FORGED {
            let mut candidates: Vec<String> = Vec::new();
            let service_text = |from: usize, to: usize| -> String {
                test.text[from..to].replace(&real_text, forged)
            };
            // The service's own text after the group (address forged), then the real rest.
            candidates.push(format!("{original}{}", service_text(ge, test.text.len())));
            // The service's own message up to and including the address, forged.
            candidates.push(format!("{original}{}", service_text(ge.min(ie), ie)));
            candidates.push(format!("{}{original}", service_text(start, is.max(start))));
            for snippet in SNIPPETS {
                candidates.push(format!("{original}{}", snippet.replace("{}", forged)));
            }
            for candidate in candidates {
                let mut rewritten = String::with_capacity(test.text.len() + candidate.len());
                rewritten.push_str(&test.text[..gs]);
                rewritten.push_str(&candidate);
                rewritten.push_str(&test.text[ge..]);
                tried += 1;
                if let LineOutcome::Match(hit) = matcher.match_line(rewritten.as_bytes(), ctx)
                    && hit.addr.to_string() == forged
                {
                    return Err(format!(
                        "pattern {} takes the address from the client's text: with group \
                         `{group}` written as {candidate:?} it gives {forged}",
                        pattern.name
                    ));
                }
            }
        }
    }
    Ok(tried)
}

/// The `*.toml` files of `dir`, sorted by name.
pub fn pack_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// One pack file read and checked: the pack and what was checked, or every problem.
pub struct Checked {
    /// The file's path, as displayed.
    pub origin: String,
    /// The pack and what [`verify`] checked, or every problem found.
    pub outcome: Result<(Pack, PackReport), Vec<PackProblem>>,
}

/// Reads and checks one pack file.
pub fn check_file(path: &Path) -> Checked {
    let origin = path.display().to_string();
    let problem = |line: usize, message: String| PackProblem {
        origin: origin.clone(),
        line,
        message,
    };
    let outcome = match std::fs::read_to_string(path) {
        Err(e) => Err(vec![problem(0, format!("cannot be read: {e}"))]),
        Ok(text) => match Pack::from_toml_str(&text, &origin) {
            Err(errors) => Err(errors
                .errors()
                .iter()
                .map(|e| problem(e.line.unwrap_or(0), format!("{}: {}", e.key, e.message)))
                .collect()),
            Ok(pack) => {
                let pack = Arc::new(pack);
                verify(&pack).map(|report| (Arc::unwrap_or_clone(pack), report))
            }
        },
    };
    Checked { origin, outcome }
}

/// Checks each file and writes one line per pack (`PATH: ok: service NAME (...)`), or each of
/// its problems with file:line; false when any file has a problem.
pub fn check_and_report(files: &[PathBuf], out: &mut impl std::io::Write) -> std::io::Result<bool> {
    let mut all_ok = true;
    for file in files {
        let checked = check_file(file);
        match checked.outcome {
            Ok((pack, report)) => writeln!(
                out,
                "{}: ok: service {} ({} patterns, {} samples pass, {} forgeries refused)",
                checked.origin,
                pack.name,
                pack.patterns.len(),
                report.samples,
                report.forgeries
            )?,
            Err(problems) => {
                all_ok = false;
                for problem in problems {
                    writeln!(out, "{problem}")?;
                }
            }
        }
    }
    Ok(all_ok)
}

/// Reads every `*.toml` of `dir` (sorted by name) as a service pack and checks it. A missing
/// directory holds no packs. Any problem refuses the whole directory.
pub fn load_dir(dir: &Path) -> Result<Vec<Pack>, Vec<PackProblem>> {
    let paths = match pack_files(dir) {
        Ok(paths) => paths,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(vec![PackProblem {
                origin: dir.display().to_string(),
                line: 0,
                message: format!("cannot be read: {e}"),
            }]);
        }
    };
    let mut packs = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        match check_file(&path).outcome {
            Ok((pack, _)) => packs.push(pack),
            Err(found) => problems.extend(found),
        }
    }
    if problems.is_empty() {
        Ok(packs)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crmonban_core::config::ServiceCatalog;

    fn pack(text: &str) -> Arc<Pack> {
        Arc::new(Pack::from_toml_str(text, "test.toml").unwrap())
    }

    const HEADER: &str =
        "[service]\nname = \"demo\"\nlog_path = \"/var/log/demo.log\"\nenvelope = \"plain\"\n\n";

    /// A pattern that takes the first address after a user name is caught by the forgeries.
    #[test]
    fn an_injectable_pattern_is_refused_naming_the_group() {
        let bad = pack(&format!(
            "{HEADER}[[patterns]]\nname = \"demo-fail\"\nkind = \"failed_auth\"\n\
             prefixes = [\"fail \"]\nregex = '^fail (?P<user>.*?) from <IP> .*$'\n\n\
             [[tests]]\nline = \"fail bob from 192.0.2.7 port 1\"\nip = \"192.0.2.7\"\n\
             origin = \"test\"\n"
        ));
        let problems = verify(&bad).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, 12);
        assert!(
            problems[0].message.contains("with group `user` written as"),
            "{}",
            problems[0]
        );
        // The same pattern anchored on what follows the address is accepted.
        let good = pack(&format!(
            "{HEADER}[[patterns]]\nname = \"demo-fail\"\nkind = \"failed_auth\"\n\
             prefixes = [\"fail \"]\nregex = '^fail (?P<user>.*) from <IP> port [0-9]+$'\n\n\
             [[tests]]\nline = \"fail bob from 192.0.2.7 port 1\"\nip = \"192.0.2.7\"\n\
             origin = \"test\"\n"
        ));
        let report = verify(&good).unwrap();
        assert!(report.forgeries >= 20, "{report:?}");
    }

    #[test]
    fn samples_that_disagree_and_unproved_patterns_are_reported_with_their_lines() {
        let text = format!(
            "{HEADER}[[patterns]]\nname = \"demo-a\"\nkind = \"probe\"\n\
             prefixes = [\"a \"]\nregex = '^a <IP>$'\n\n\
             [[patterns]]\nname = \"demo-b\"\nkind = \"probe\"\n\
             prefixes = [\"b \"]\nregex = '^b <IP>$'\n\n\
             [[tests]]\nline = \"a 192.0.2.1\"\nip = \"192.0.2.9\"\norigin = \"t\"\n\n\
             [[tests]]\nline = \"a 192.0.2.2\"\norigin = \"t\"\n\n\
             [[tests]]\nline = \"c 192.0.2.3\"\nip = \"192.0.2.3\"\norigin = \"t\"\n"
        );
        let problems: Vec<String> = verify(&pack(&text))
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            problems,
            [
                "test.toml:18: sample gives 192.0.2.1 (pattern demo-a), not 192.0.2.9",
                "test.toml:23: sample must not match, but pattern demo-a gives 192.0.2.2",
                "test.toml:27: sample must give 192.0.2.3, but no pattern matches it",
                "test.toml:6: pattern demo-a has no sample line it matches: add a [[tests]] \
                 line it gives an address for",
                "test.toml:12: pattern demo-b has no sample line it matches: add a [[tests]] \
                 line it gives an address for",
            ]
        );
    }

    /// Every built-in pack passes its own samples and the forgeries.
    #[test]
    fn every_builtin_pack_is_proved_by_its_samples() {
        for pack in ServiceCatalog::builtin().packs() {
            match verify(pack) {
                Ok(report) => assert!(report.samples > 0, "{}", pack.name),
                Err(problems) => panic!(
                    "{}:\n{}",
                    pack.name,
                    problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }
}
