//! `[zones] config_file`: more zones in a file of their own, TOML or (for `.yaml`/`.yml`) YAML,
//! with the same keys as `[[zones.zones]]`:
//!
//! ```toml
//! [[zones]]
//! name = "office"
//! trust_level = 90
//! networks = ["10.0.0.0/8", "fd00::/8"]
//! implicit_whitelist = true   # optional: trust_level >= whitelist_threshold
//! ```
//!
//! ```yaml
//! zones:
//!   - name: office
//!     trust_level: 90
//!     networks: [10.0.0.0/8, "fd00::/8"]
//! ```
//!
//! The file is configuration: [`load_zones`] reads it whole or not at all, and every problem
//! names the file and, where the parser knows it, the line. The zones of the main file and of
//! this one form one set (names unique across both).

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use crmonban_core::Target;
use crmonban_core::config::{Zone, ZonesConfig};
use serde::Deserialize;
use serde::de::{self, Deserializer};

/// The largest zones file read (a file of 100,000 networks is about 2 MB).
const MAX_FILE: u64 = 64 * 1024 * 1024;

/// A zones file that cannot be used. Nothing of it applies.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ZonesFileError {
    /// The zones file (`[zones] config_file`).
    pub path: PathBuf,
    /// 1-based, when the parser located the problem.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Every zone `config` defines: `[[zones.zones]]`, then those of `config_file` (read now).
/// Names are unique across both. The file's zones without `implicit_whitelist` take
/// `trust_level >= whitelist_threshold`.
pub fn load_zones(config: &ZonesConfig) -> Result<Vec<Zone>, ZonesFileError> {
    let mut zones = config.zones.clone();
    let Some(path) = &config.config_file else {
        return Ok(zones);
    };
    let from_file = read_zones_file(path, config.whitelist_threshold)?;
    let mut names: BTreeSet<&str> = zones.iter().map(|z| z.name.as_str()).collect();
    for zone in &from_file {
        if !names.insert(&zone.name) {
            return Err(ZonesFileError {
                path: path.clone(),
                line: None,
                message: format!(
                    "zone {:?} is also defined in [[zones.zones]]; names must be unique",
                    zone.name
                ),
            });
        }
    }
    zones.extend(from_file);
    Ok(zones)
}

/// `config` with the zones of its `config_file` read into `zones` and the file name cleared:
/// what to keep and rebuild policies from without reading the file again.
pub fn resolve_zones(config: &ZonesConfig) -> Result<ZonesConfig, ZonesFileError> {
    Ok(ZonesConfig {
        zones: load_zones(config)?,
        config_file: None,
        ..config.clone()
    })
}

/// Reads one zones file (see the module docs); `threshold` decides `implicit_whitelist` where
/// a zone does not say.
pub fn read_zones_file(path: &Path, threshold: u8) -> Result<Vec<Zone>, ZonesFileError> {
    let problem = |line: Option<usize>, message: String| ZonesFileError {
        path: path.to_owned(),
        line,
        message,
    };
    let text = read_bounded(path).map_err(|message| problem(None, message))?;
    let yaml = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    let file: ZonesFile = if yaml {
        serde_saphyr::from_str(&text).map_err(|e| {
            let line = e
                .location()
                .and_then(|l| usize::try_from(l.line()).ok())
                .filter(|&l| l > 0);
            problem(line, yaml_message(&e))
        })?
    } else {
        toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| line_of(&text, s.start));
            problem(line, e.message().trim().to_owned())
        })?
    };
    let mut seen = BTreeSet::new();
    let mut zones = Vec::with_capacity(file.zones.len());
    for (index, zone) in file.zones.into_iter().enumerate() {
        if !seen.insert(zone.name.0.clone()) {
            return Err(problem(
                None,
                format!(
                    "zones[{index}]: the name {:?} is used twice; names must be unique",
                    zone.name.0
                ),
            ));
        }
        let implicit_whitelist = zone
            .implicit_whitelist
            .unwrap_or(zone.trust_level.0 >= threshold);
        zones.push(Zone {
            name: zone.name.0,
            trust_level: zone.trust_level.0,
            networks: zone.networks.0,
            implicit_whitelist,
        });
    }
    Ok(zones)
}

fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            "does not exist".to_owned()
        } else {
            format!("cannot be read: {e}")
        }
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!("larger than {} MiB", MAX_FILE >> 20));
    }
    String::from_utf8(bytes).map_err(|e| format!("is not UTF-8 text: {e}"))
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The parser's message without its rendered source snippet (the line is reported apart).
fn yaml_message(error: &serde_saphyr::Error) -> String {
    let rendered = error.without_snippet().to_string();
    // The message is the first line; drop the "at line N, column M" the renderer appends.
    let first = rendered.lines().next().unwrap_or_default();
    match first.rfind(" at line ") {
        Some(at) => first[..at].to_owned(),
        None => first.to_owned(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ZonesFile {
    zones: Vec<FileZone>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileZone {
    name: ZoneName,
    trust_level: TrustLevel,
    networks: Networks,
    implicit_whitelist: Option<bool>,
}

/// A non-empty zone name.
struct ZoneName(String);

impl<'de> Deserialize<'de> for ZoneName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ZoneName, D::Error> {
        let name = String::deserialize(deserializer)?;
        if name.trim().is_empty() {
            return Err(de::Error::custom("a zone's name must not be empty"));
        }
        Ok(ZoneName(name))
    }
}

/// 0 (hostile) ..= 100 (trusted).
struct TrustLevel(u8);

impl<'de> Deserialize<'de> for TrustLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TrustLevel, D::Error> {
        let level = i64::deserialize(deserializer)?;
        u8::try_from(level)
            .ok()
            .filter(|&l| l <= 100)
            .map(TrustLevel)
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "trust_level {level} is out of range: 0 (hostile) to 100 (trusted)"
                ))
            })
    }
}

/// A non-empty list of addresses or CIDRs.
struct Networks(Vec<Target>);

impl<'de> Deserialize<'de> for Networks {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Networks, D::Error> {
        struct Visit;
        impl<'de> de::Visitor<'de> for Visit {
            type Value = Networks;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of addresses or CIDRs, e.g. [\"10.0.0.0/8\"]")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Networks, A::Error> {
                let mut networks = Vec::new();
                while let Some(text) = seq.next_element::<String>()? {
                    let target = Target::parse(&text)
                        .map_err(|e| de::Error::custom(format!("networks: {e}")))?;
                    networks.push(target);
                }
                if networks.is_empty() {
                    return Err(de::Error::custom(
                        "networks must list at least one address or CIDR",
                    ));
                }
                Ok(Networks(networks))
            }
        }
        deserializer.deserialize_seq(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn t(s: &str) -> Target {
        Target::parse(s).unwrap()
    }

    #[test]
    fn toml_and_yaml_files_give_the_same_zones() {
        let dir = tempfile::tempdir().unwrap();
        let toml = write(
            &dir,
            "zones.toml",
            "[[zones]]\nname = \"office\"\ntrust_level = 90\nnetworks = [\"10.0.0.0/8\", \"fd00::/8\"]\n\n\
             [[zones]]\nname = \"dmz\"\ntrust_level = 20\nnetworks = [\"10.9.0.0/16\"]\n\n\
             [[zones]]\nname = \"lab\"\ntrust_level = 85\nnetworks = [\"172.16.0.0/12\"]\nimplicit_whitelist = false\n",
        );
        let yaml = write(
            &dir,
            "zones.yaml",
            "# our zones\nzones:\n  - name: office\n    trust_level: 90\n    networks: [10.0.0.0/8, \"fd00::/8\"]\n\
             \x20 - name: dmz\n    trust_level: 20\n    networks:\n      - 10.9.0.0/16\n\
             \x20 - name: lab\n    trust_level: 85\n    networks: [172.16.0.0/12]\n    implicit_whitelist: false\n",
        );
        let expected = vec![
            Zone {
                name: "office".into(),
                trust_level: 90,
                networks: vec![t("10.0.0.0/8"), t("fd00::/8")],
                implicit_whitelist: true,
            },
            Zone {
                name: "dmz".into(),
                trust_level: 20,
                networks: vec![t("10.9.0.0/16")],
                implicit_whitelist: false,
            },
            Zone {
                name: "lab".into(),
                trust_level: 85,
                networks: vec![t("172.16.0.0/12")],
                implicit_whitelist: false,
            },
        ];
        assert_eq!(read_zones_file(&toml, 80).unwrap(), expected);
        assert_eq!(read_zones_file(&yaml, 80).unwrap(), expected);
        // The threshold decides where the zone does not.
        let strict = read_zones_file(&yaml, 95).unwrap();
        assert!(!strict[0].implicit_whitelist);
    }

    #[test]
    fn problems_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "bad-net.yaml",
                "zones:\n  - name: a\n    trust_level: 10\n    networks: [10.0.0.0/8, 10.0.0.300]\n",
                Some(4),
                "10.0.0.300",
            ),
            (
                "bad-net.toml",
                "[[zones]]\nname = \"a\"\ntrust_level = 10\nnetworks = [\"10.0.0.0/8\", \"nonsense\"]\n",
                Some(4),
                "nonsense",
            ),
            (
                "range.yml",
                "zones:\n  - name: a\n    trust_level: 101\n    networks: [10.0.0.0/8]\n",
                Some(3),
                "out of range",
            ),
            (
                "range.toml",
                "[[zones]]\nname = \"a\"\ntrust_level = -1\nnetworks = [\"10.0.0.0/8\"]\n",
                Some(3),
                "out of range",
            ),
            (
                "unknown.yaml",
                "zones:\n  - name: a\n    trust_levle: 10\n    networks: [10.0.0.0/8]\n",
                Some(3),
                "trust_levle",
            ),
            (
                "unknown.toml",
                "[[zones]]\nname = \"a\"\ntrust_level = 10\nnetwork = [\"10.0.0.0/8\"]\n",
                Some(4),
                "network",
            ),
            (
                "empty.toml",
                "[[zones]]\nname = \"a\"\ntrust_level = 10\nnetworks = []\n",
                Some(4),
                "at least one",
            ),
            (
                "missing.yaml",
                "zones:\n  - name: a\n    networks: [10.0.0.0/8]\n",
                None,
                "trust_level",
            ),
            (
                "twice.yaml",
                "zones:\n  - {name: a, trust_level: 1, networks: [10.0.0.0/8]}\n  - {name: a, trust_level: 2, networks: [11.0.0.0/8]}\n",
                None,
                "used twice",
            ),
            ("syntax.yaml", "zones:\n  - name: [a\n", None, ""),
            ("syntax.toml", "[[zones]\nname = 1\n", Some(1), ""),
        ];
        for (name, text, line, needle) in cases {
            let path = write(&dir, name, text);
            let error = read_zones_file(&path, 80).unwrap_err();
            assert_eq!(error.path, path, "{name}");
            if line.is_some() {
                assert_eq!(error.line, line, "{name}: {error}");
            }
            assert!(error.message.contains(needle), "{name}: {error}");
            assert!(!error.message.is_empty(), "{name}");
            assert!(error.to_string().starts_with(&path.display().to_string()));
        }
        let missing = read_zones_file(&dir.path().join("absent.toml"), 80).unwrap_err();
        assert_eq!(missing.message, "does not exist");
    }

    #[test]
    fn names_are_unique_across_the_main_file_and_the_zones_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "z.yaml",
            "zones:\n  - {name: office, trust_level: 1, networks: [10.0.0.0/8]}\n",
        );
        let mut config = ZonesConfig {
            enabled: true,
            config_file: Some(path),
            ..ZonesConfig::default()
        };
        assert_eq!(load_zones(&config).unwrap().len(), 1);
        config.zones.push(Zone {
            name: "office".into(),
            trust_level: 90,
            networks: vec![t("192.168.0.0/16")],
            implicit_whitelist: true,
        });
        let error = load_zones(&config).unwrap_err();
        assert!(error.message.contains("also defined"), "{error}");
    }

    #[test]
    fn an_alias_bomb_is_refused_not_expanded() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..12 {
            let prev = (b'a' + level - 1) as char;
            let this = (b'a' + level) as char;
            text.push_str(&format!(
                "{this}: &{this} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        text.push_str("zones: []\n");
        let path = write(&dir, "bomb.yaml", &text);
        assert!(read_zones_file(&path, 80).is_err());
    }
}
