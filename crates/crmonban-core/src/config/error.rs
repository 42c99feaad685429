//! What a configuration check reports: [`ConfigError`] (refuses the file), [`ConfigWarning`]
//! (accepted, but the user should know), and [`ConfigErrors`], every error of one file at once.

use std::fmt;

/// One problem that makes a configuration unusable, located as precisely as the document allows.
///
/// Displays as `origin:line: key.path: message`, e.g.
/// `/etc/crmonban/config.toml:14: services.ssh.max_failures: must be greater than 0, found 0`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", Located { origin: &self.origin, line: self.line, key: &self.key, message: &self.message })]
pub struct ConfigError {
    /// The file name given to [`Config::from_toml_str`](super::Config::from_toml_str).
    pub origin: String,
    /// 1-based line; `None` when the problem has no place in the text.
    pub line: Option<usize>,
    /// Dotted key path (`services.ssh.patterns[0].regex`); empty for TOML syntax errors.
    pub key: String,
    /// What is wrong, for a person: `must be greater than 0, found 0`.
    pub message: String,
}

/// A note about a configuration that was accepted, e.g. a CIDR whose host bits were cleared.
/// Displays like [`ConfigError`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The name given to the text, as in [`ConfigError::origin`].
    pub origin: String,
    /// 1-based line; `None` when the note has no place in the text.
    pub line: Option<usize>,
    /// Dotted key path of the setting the note is about, as in [`ConfigError::key`].
    pub key: String,
    /// The note itself, for a person.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Located {
            origin: &self.origin,
            line: self.line,
            key: &self.key,
            message: &self.message,
        }
        .fmt(f)
    }
}

/// Every error found in one configuration text, in file order, plus the warnings seen on the
/// way. Displays one error per line (no trailing newline), ready for `check-config`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", OnePerLine(&self.errors))]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigWarning>,
}

impl ConfigErrors {
    pub(super) fn new(errors: Vec<ConfigError>, warnings: Vec<ConfigWarning>) -> ConfigErrors {
        ConfigErrors { errors, warnings }
    }

    /// The errors, sorted by line; never empty.
    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }

    /// Warnings found before the file was refused (they may still be worth showing).
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// The errors, sorted by line, without the warnings.
    pub fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }
}

struct Located<'a> {
    origin: &'a str,
    line: Option<usize>,
    key: &'a str,
    message: &'a str,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

struct OnePerLine<'a>(&'a [ConfigError]);

impl fmt::Display for OnePerLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            error.fmt(f)?;
        }
        Ok(())
    }
}
