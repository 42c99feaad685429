//! The hosting/data-centre flag's list of autonomous systems: the shipped `hosting_asns.txt`
//! (what qualifies and where the numbers come from is written at its top), parsed once, plus
//! any file of the same format the administrator adds. It answers one question, "which
//! hosting provider announces AS N, if any"; deciding the flag is the composer's job.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

/// The shipped list, embedded in the binary so the flag works without any file installed.
const BUILTIN: &str = include_str!("hosting_asns.txt");

/// An extra list is a short text file written by hand; anything far larger is a mistake
/// (a wrong path, a binary), refused before it is read into memory.
const MAX_EXTRA_FILE: u64 = 1 << 20;

/// Provider names are labels shown in one line of `crmonctl intel`.
const MAX_NAME: usize = 128;

type AsnMap = HashMap<u32, Box<str>>;

/// Hosting ASNs and the name of the provider announcing each.
#[derive(Clone, Debug)]
pub(crate) struct HostingAsns {
    builtin: &'static AsnMap,
    extra: AsnMap,
}

impl HostingAsns {
    /// The shipped list (parsed on first use, shared afterwards).
    pub(crate) fn builtin() -> HostingAsns {
        static PARSED: OnceLock<AsnMap> = OnceLock::new();
        let builtin = PARSED.get_or_init(|| {
            let mut map = AsnMap::new();
            // The shipped file is part of the source and a unit test parses it strictly,
            // so a bad line here cannot reach a release.
            parse_into(&mut map, BUILTIN, "hosting_asns.txt")
                .expect("the shipped hosting_asns.txt parses (checked by its unit test)");
            map
        });
        HostingAsns {
            builtin,
            extra: AsnMap::new(),
        }
    }

    /// Adds the ASes of `path` (same format as the shipped list). Returns how many were not
    /// known yet; an AS already listed keeps its first name. On an error nothing is added,
    /// and the message names `file:line`.
    pub(crate) fn load_extra(&mut self, path: &Path) -> Result<usize, String> {
        let shown = path.display();
        let file = std::fs::File::open(path).map_err(|e| format!("{shown}: {e}"))?;
        let mut bytes = Vec::new();
        file.take(MAX_EXTRA_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{shown}: {e}"))?;
        if bytes.len() as u64 > MAX_EXTRA_FILE {
            return Err(format!(
                "{shown}: too large for a list of ASNs (more than {MAX_EXTRA_FILE} bytes)"
            ));
        }
        let text = String::from_utf8(bytes)
            .map_err(|e| format!("{shown}: not UTF-8 text ({})", e.utf8_error()))?;
        let mut parsed = AsnMap::new();
        // An administrator's list may overlap the shipped one: those entries are skipped below.
        parse_into(&mut parsed, &text, &shown.to_string())?;
        let before = self.extra.len();
        for (asn, name) in parsed {
            if !self.builtin.contains_key(&asn) {
                self.extra.entry(asn).or_insert(name);
            }
        }
        Ok(self.extra.len() - before)
    }

    /// The provider announcing `asn`, when it is a hosting AS.
    pub(crate) fn provider(&self, asn: u32) -> Option<&str> {
        self.builtin
            .get(&asn)
            .or_else(|| self.extra.get(&asn))
            .map(|name| &**name)
    }
}

/// Parses `text` (the contents of `file`) into `map`. A number repeated within one file is
/// an error: a copy-paste slip that would hide which name is meant.
fn parse_into(map: &mut AsnMap, text: &str, file: &str) -> Result<(), String> {
    for (index, raw) in text.lines().enumerate() {
        let at = index + 1;
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let (number, name) = match line.split_once(char::is_whitespace) {
            Some((number, name)) => (number, name.trim()),
            None => (line, ""),
        };
        let digits = number
            .strip_prefix("AS")
            .or_else(|| number.strip_prefix("as"))
            .unwrap_or(number);
        let asn = match digits.parse::<u32>() {
            Ok(0) | Err(_) => {
                return Err(format!(
                    "{file}:{at}: {:?} is not an AS number (1 to 4294967295)",
                    cut(number, 32)
                ));
            }
            Ok(asn) => asn,
        };
        if name.is_empty() {
            return Err(format!(
                "{file}:{at}: AS{asn} has no provider name (write `{asn}  Provider`)"
            ));
        }
        if map.contains_key(&asn) {
            return Err(format!("{file}:{at}: AS{asn} is listed twice"));
        }
        let clean: String = name.chars().filter(|c| !c.is_control()).collect();
        map.insert(asn, cut(&clean, MAX_NAME).into());
    }
    Ok(())
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_list_parses_strictly_and_names_the_big_clouds() {
        // Strict: a bad line or a repeated number in the shipped file fails here.
        let mut map = AsnMap::new();
        parse_into(&mut map, BUILTIN, "hosting_asns.txt").unwrap();
        assert!(
            (60..=150).contains(&map.len()),
            "{} entries: the list is meant to hold the well-known hosting ASes",
            map.len()
        );
        let entries = BUILTIN
            .lines()
            .filter(|l| !l.split('#').next().unwrap_or_default().trim().is_empty())
            .count();
        assert_eq!(entries, map.len(), "every entry line is one distinct AS");

        let hosting = HostingAsns::builtin();
        for (asn, provider) in [
            (16509, "Amazon"),
            (14618, "Amazon"),
            (15169, "Google"),
            (396982, "Google"),
            (8075, "Microsoft"),
            (14061, "DigitalOcean"),
            (16276, "OVH"),
            (24940, "Hetzner"),
            (63949, "Linode"),
            (20473, "Vultr"),
            (51167, "Contabo"),
            (31898, "Oracle"),
            (13335, "Cloudflare"),
        ] {
            let name = hosting.provider(asn).unwrap_or_else(|| panic!("AS{asn}"));
            assert!(name.contains(provider), "AS{asn} is {name:?}");
        }
    }

    #[test]
    fn access_networks_are_not_hosting() {
        let hosting = HostingAsns::builtin();
        // Deutsche Telekom, Comcast, OVH Telecom (OVH's access AS), Google Fiber.
        for asn in [3320, 7922, 35540, 16591, 0, u32::MAX] {
            assert_eq!(hosting.provider(asn), None, "AS{asn}");
        }
    }

    #[test]
    fn an_extra_file_adds_ases_and_counts_only_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosting.txt");
        std::fs::write(
            &path,
            "# our own additions\n\
             64500   Example Hosting  # a documentation AS\n\
             AS64501\tOther VPS\n\
             \n\
             16509   Renamed Amazon\n",
        )
        .unwrap();
        let mut hosting = HostingAsns::builtin();
        assert_eq!(hosting.load_extra(&path), Ok(2));
        assert_eq!(hosting.provider(64500), Some("Example Hosting"));
        assert_eq!(hosting.provider(64501), Some("Other VPS"));
        // The shipped name stays.
        assert!(hosting.provider(16509).unwrap().contains("Amazon.com"));
        // Loading it again adds nothing new.
        assert_eq!(hosting.load_extra(&path), Ok(0));
        // Another HostingAsns is untouched.
        assert_eq!(HostingAsns::builtin().provider(64500), None);
    }

    #[test]
    fn a_bad_extra_line_names_file_and_line_and_adds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut hosting = HostingAsns::builtin();
        for (text, problem) in [
            (
                "64500 Fine\nAS-X Broken\n",
                ":2: \"AS-X\" is not an AS number",
            ),
            (
                "64500 Fine\n\n99999999999 Too big\n",
                ":3: \"99999999999\" is not",
            ),
            ("# x\n64500\n", ":2: AS64500 has no provider name"),
            ("64500 A\n64500 B\n", ":2: AS64500 is listed twice"),
            ("0 Reserved\n", ":1: \"0\" is not an AS number"),
        ] {
            let path = dir.path().join("extra.txt");
            std::fs::write(&path, text).unwrap();
            let err = hosting.load_extra(&path).unwrap_err();
            let expected = format!("{}{problem}", path.display());
            assert!(err.starts_with(&expected), "{err:?} for {text:?}");
            assert_eq!(hosting.provider(64500), None, "nothing added from {text:?}");
        }
    }

    #[test]
    fn an_unreadable_or_huge_extra_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut hosting = HostingAsns::builtin();
        let missing = dir.path().join("missing.txt");
        let err = hosting.load_extra(&missing).unwrap_err();
        assert!(err.starts_with(&missing.display().to_string()), "{err}");

        let huge = dir.path().join("huge.txt");
        std::fs::write(&huge, "64500 X\n".repeat(200_000)).unwrap();
        let err = hosting.load_extra(&huge).unwrap_err();
        assert!(err.contains("too large"), "{err}");
        assert_eq!(hosting.provider(64500), None);
    }

    #[test]
    fn names_are_bounded_and_free_of_control_characters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("extra.txt");
        let long = "é".repeat(200);
        std::fs::write(&path, format!("64500 Evil\u{1b}[31m {long}\n")).unwrap();
        let mut hosting = HostingAsns::builtin();
        hosting.load_extra(&path).unwrap();
        let name = hosting.provider(64500).unwrap();
        assert!(name.starts_with("Evil[31m é"), "{name:?}");
        assert!(name.len() <= MAX_NAME && !name.chars().any(char::is_control));
    }
}
