//! fail2ban's jail configuration as fail2ban assembles it from a directory: `jail.conf`, then
//! `jail.d/*.conf` (sorted), `jail.local`, `jail.d/*.local` (sorted); each file preceded by
//! the files its `[INCLUDES] before` names and followed by its `after` ones (recursively,
//! relative to the including file, missing ones skipped, each with its `.local` companion),
//! so that Debian's `jail.conf` brings in `paths-debian.conf` and `paths-common.conf`. Later
//! files override earlier ones key by key; the value a key had before being overridden in a
//! section stays reachable as `%(known/key)s`.
//!
//! [`JailConfig::get`] interpolates like fail2ban's `configparser`: `%(key)s` from the section,
//! then `[DEFAULT]`; `%(__name__)s` is the section's name; `%(default/key)s`,
//! `%(known/key)s` and `%(section/key)s` reach other places; `%%` is a `%`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ini::{self, IniError, IniFile, Origin, RawValue};

/// How deep `%(...)s` references may nest, as in Python's configparser.
const MAX_DEPTH: usize = 10;

/// A section after every file was merged.
#[derive(Debug, Default)]
struct Section {
    options: BTreeMap<String, RawValue>,
    /// Values overridden by a later file: what `%(known/key)s` reads.
    known: BTreeMap<String, RawValue>,
}

/// The merged jail configuration of a fail2ban directory.
#[derive(Debug)]
pub struct JailConfig {
    /// The directory read.
    pub dir: PathBuf,
    /// Every file read, in reading order, each once.
    pub files: Vec<Arc<Path>>,
    defaults: BTreeMap<String, RawValue>,
    /// Sections in the order they first appear.
    sections: Vec<(String, Section)>,
}

/// A value after interpolation, with where its key was set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The value with its references replaced.
    pub text: String,
    /// The value as written, and where.
    pub raw: RawValue,
}

/// Why a directory cannot be read as fail2ban configuration.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A file that is not valid INI, with file and line.
    #[error("{0}")]
    Syntax(IniError),
    /// A file or directory that cannot be read.
    #[error("{}: {}", .0.display(), .1)]
    Io(PathBuf, std::io::Error),
    /// Nothing to read in the directory.
    #[error(
        "{}: no jail.conf, jail.local or jail.d/*.conf there: is it fail2ban's configuration \
         directory?",
        .0.display()
    )]
    NoJailFiles(PathBuf),
}

/// Why a value's `%(name)s` references cannot be resolved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    /// References within references, deeper than fail2ban follows them.
    #[error("references nested more than {MAX_DEPTH} deep (a loop?) at {rest:?}")]
    TooDeep {
        /// The text where it went too deep.
        rest: String,
    },
    /// A `%` that starts neither `%%` nor `%(name)s`.
    #[error("`%` must be followed by `%` or `(name)s`, found {rest:?}")]
    BadPercent {
        /// The text from the `%` on.
        rest: String,
    },
    /// A reference to a key set nowhere it can be found.
    #[error("%({name})s is not defined")]
    Undefined {
        /// The reference's name.
        name: String,
    },
}

impl JailConfig {
    /// Reads the jail configuration of the fail2ban directory `dir`.
    pub fn read(dir: &Path) -> Result<JailConfig, ReadError> {
        let mut top = vec![dir.join("jail.conf")];
        top.extend(sorted_with_extension(&dir.join("jail.d"), "conf")?);
        top.push(dir.join("jail.local"));
        top.extend(sorted_with_extension(&dir.join("jail.d"), "local")?);
        top.retain(|path| path.is_file());
        if top.is_empty() {
            return Err(ReadError::NoJailFiles(dir.to_owned()));
        }
        let mut reader = Reader::default();
        let order = reader.includes(&top, &[])?;
        let mut config = JailConfig {
            dir: dir.to_owned(),
            files: Vec::new(),
            defaults: BTreeMap::new(),
            sections: Vec::new(),
        };
        for path in &order {
            let parsed = reader.parsed(path)?.expect("read while ordering");
            let file: Arc<Path> = Arc::from(path.as_path());
            if !config.files.contains(&file) {
                config.files.push(file);
            }
            config.merge(&parsed);
        }
        // What fail2ban adds before interpolating a jail.
        let builtin = |text: &str| RawValue {
            text: text.to_owned(),
            origin: Origin {
                file: Arc::from(Path::new("(fail2ban built-in)")),
                line: 0,
            },
            section: "DEFAULT".to_owned(),
        };
        let confpath = dir.display().to_string();
        config
            .defaults
            .insert("fail2ban_confpath".into(), builtin(&confpath));
        config
            .defaults
            .insert("fail2ban_version".into(), builtin("1.0"));
        Ok(config)
    }

    fn merge(&mut self, parsed: &IniFile) {
        for (key, value) in &parsed.defaults {
            self.defaults.insert(key.clone(), value.clone());
        }
        for (name, options) in &parsed.sections {
            // A conditional section (`[name?family=inet6]`) adds suffixed keys to `name`.
            let (name, suffix) = match name.split_once('?') {
                Some((base, cond)) if is_word(base) => (base, format!("?{cond}")),
                _ => (name.as_str(), String::new()),
            };
            let index = match self.sections.iter().position(|(n, _)| n == name) {
                Some(i) => i,
                None => {
                    self.sections.push((name.to_owned(), Section::default()));
                    self.sections.len() - 1
                }
            };
            let section = &mut self.sections[index].1;
            for (key, value) in options {
                let key = format!("{key}{suffix}");
                if let Some(previous) = section.options.insert(key.clone(), value.clone()) {
                    section.known.insert(key, previous);
                }
            }
        }
    }

    /// The sections other than `[INCLUDES]`: fail2ban's jails, in order of appearance.
    pub fn jails(&self) -> impl Iterator<Item = &str> {
        self.sections
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| *n != "INCLUDES")
    }

    /// The value of `key` in `section` (or `[DEFAULT]`) as written.
    pub fn raw(&self, section: &str, key: &str) -> Option<&RawValue> {
        self.section(section)
            .and_then(|s| s.options.get(key))
            .or_else(|| self.defaults.get(key))
    }

    fn section(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }

    /// The interpolated value of `key` in `section` (falling back to `[DEFAULT]`); `Ok(None)`
    /// when neither sets it; `Err` names the reference that cannot be resolved.
    pub fn get(&self, section: &str, key: &str) -> Result<Option<Resolved>, InterpolationError> {
        let Some(raw) = self.raw(section, key) else {
            return Ok(None);
        };
        let mut text = String::new();
        self.interpolate(section, &raw.text, 1, &mut text)?;
        Ok(Some(Resolved {
            text,
            raw: raw.clone(),
        }))
    }

    fn interpolate(
        &self,
        section: &str,
        mut rest: &str,
        depth: usize,
        out: &mut String,
    ) -> Result<(), InterpolationError> {
        if depth > MAX_DEPTH {
            return Err(InterpolationError::TooDeep {
                rest: rest.to_owned(),
            });
        }
        while let Some(at) = rest.find('%') {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            if let Some(after) = rest.strip_prefix("%%") {
                out.push('%');
                rest = after;
                continue;
            }
            let reference = rest
                .strip_prefix("%(")
                .and_then(|r| r.find(")s").map(|end| &r[..end]))
                .filter(|name| !name.is_empty() && !name.contains(')'));
            let Some(name) = reference else {
                return Err(InterpolationError::BadPercent {
                    rest: rest.to_owned(),
                });
            };
            rest = &rest[name.len() + 4..];
            let value =
                self.lookup(section, name)
                    .ok_or_else(|| InterpolationError::Undefined {
                        name: name.to_owned(),
                    })?;
            if value.contains('%') {
                self.interpolate(section, &value, depth + 1, out)?;
            } else {
                out.push_str(&value);
            }
        }
        out.push_str(rest);
        Ok(())
    }

    /// The raw value a `%(name)s` reference in `section` stands for.
    fn lookup(&self, section: &str, name: &str) -> Option<String> {
        let name = name.to_lowercase();
        if name == "__name__" {
            return Some(section.to_owned());
        }
        let own = |s: &str, key: &str| self.section(s).and_then(|s| s.options.get(key));
        if let Some((place, key)) = name.split_once('/')
            && is_word(place)
        {
            let found = match place {
                "default" => None,
                "known" => self.section(section).and_then(|s| s.known.get(key)),
                _ => {
                    // Section names keep their case; the reference was lowercased.
                    let original = self
                        .sections
                        .iter()
                        .find(|(n, _)| n.to_lowercase() == place)?;
                    own(&original.0, key)
                }
            };
            return found
                .or_else(|| self.defaults.get(key))
                .map(|v| v.text.clone());
        }
        own(section, &name)
            .or_else(|| self.defaults.get(&name))
            .map(|v| v.text.clone())
    }
}

/// `[\w-]+`: a section name a `%(section/key)s` reference may use.
fn is_word(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

/// The files `dir/*.EXT` (not hidden), sorted by name; none when `dir` does not exist.
fn sorted_with_extension(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, ReadError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ReadError::Io(dir.to_owned(), e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| ReadError::Io(dir.to_owned(), e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.starts_with('.') && path.extension().is_some_and(|e| e == ext) {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// Reads each file once and works out the reading order with includes.
#[derive(Default)]
struct Reader {
    cache: BTreeMap<PathBuf, Option<Arc<IniFile>>>,
}

impl Reader {
    /// The file at `path` parsed, `None` when it does not exist.
    fn parsed(&mut self, path: &Path) -> Result<Option<Arc<IniFile>>, ReadError> {
        if let Some(cached) = self.cache.get(path) {
            return Ok(cached.clone());
        }
        let parsed = match std::fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|e| {
                    ReadError::Io(
                        path.to_owned(),
                        std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                    )
                })?;
                let file: Arc<Path> = Arc::from(path);
                Some(Arc::new(
                    ini::parse(&file, &text).map_err(ReadError::Syntax)?,
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ReadError::Io(path.to_owned(), e)),
        };
        self.cache.insert(path.to_owned(), parsed.clone());
        Ok(parsed)
    }

    /// `files`, each with its `.local` companion when that exists and is not listed, and
    /// with what they include, in reading order.
    fn includes(&mut self, files: &[PathBuf], seen: &[PathBuf]) -> Result<Vec<PathBuf>, ReadError> {
        let mut expanded = Vec::new();
        for file in files {
            expanded.push(file.clone());
            let local = file.with_extension("local");
            if !files.contains(&local) && local.is_file() {
                expanded.push(local);
            }
        }
        let mut order = Vec::new();
        for file in expanded {
            let Some(parsed) = self.parsed(&file)? else {
                continue;
            };
            let dir = file.parent().unwrap_or(Path::new("/")).to_owned();
            let mut chain = seen.to_vec();
            chain.push(file.clone());
            let mut before = Vec::new();
            let mut after = Vec::new();
            if let Some(options) = parsed.section("INCLUDES") {
                for (key, value) in options {
                    let list = match key.as_str() {
                        "before" => &mut before,
                        "after" => &mut after,
                        _ => continue,
                    };
                    for name in value.text.lines().map(str::trim).filter(|n| !n.is_empty()) {
                        let included = dir.join(name);
                        if seen.contains(&included) || included == file {
                            continue;
                        }
                        list.extend(self.includes(&[included], &chain)?);
                    }
                }
            }
            order.extend(before);
            order.push(file);
            order.extend(after);
        }
        Ok(order)
    }
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
