//! Reading a spanned TOML document (`toml::de::DeTable`) key by key, so that one pass finds
//! every problem: type mismatches, out-of-range numbers, unknown keys (with a "did you mean"),
//! each located by line and dotted key path. This module knows TOML, not the crmonban schema;
//! `parse.rs` drives it.

use std::ops::{Range, RangeInclusive};

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::error::{ConfigError, ConfigWarning};

pub(super) type Span = Range<usize>;

/// Collects errors and warnings and turns byte spans into 1-based line numbers.
pub(super) struct Diagnostics<'s> {
    origin: &'s str,
    /// Byte offset at which each line starts.
    line_starts: Vec<usize>,
    pub(super) errors: Vec<ConfigError>,
    pub(super) warnings: Vec<ConfigWarning>,
}

impl<'s> Diagnostics<'s> {
    pub(super) fn new(origin: &'s str, text: &str) -> Diagnostics<'s> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Diagnostics {
            origin,
            line_starts,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub(super) fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset)
    }

    /// 1-based column of a byte offset (counted in bytes, which is what editors show for ASCII).
    pub(super) fn column_of(&self, offset: usize) -> usize {
        let line = self.line_of(offset);
        let start = self
            .line_starts
            .get(line.wrapping_sub(1))
            .copied()
            .unwrap_or(0);
        offset.saturating_sub(start) + 1
    }

    pub(super) fn error(&mut self, span: &Span, key: &str, message: impl Into<String>) {
        self.error_at(Some(self.line_of(span.start)), key, message);
    }

    pub(super) fn error_at(&mut self, line: Option<usize>, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            origin: self.origin.to_owned(),
            line,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    pub(super) fn warn(&mut self, span: &Span, key: &str, message: impl Into<String>) {
        self.warnings.push(ConfigWarning {
            origin: self.origin.to_owned(),
            line: Some(self.line_of(span.start)),
            key: key.to_owned(),
            message: message.into(),
        });
    }
}

/// `parent.key`, quoting the key when it is not a bare TOML key.
pub(super) fn child_path(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// One value of the document with the key path that leads to it.
#[derive(Clone)]
pub(super) struct Value<'a, 'i> {
    pub(super) path: String,
    pub(super) span: Span,
    pub(super) value: &'a DeValue<'i>,
}

impl<'a, 'i> Value<'a, 'i> {
    fn new(path: String, spanned: &'a Spanned<DeValue<'i>>) -> Value<'a, 'i> {
        Value {
            path,
            span: spanned.span(),
            value: spanned.get_ref(),
        }
    }

    /// Reports that the value has the wrong type.
    pub(super) fn wrong_type(&self, d: &mut Diagnostics<'_>, expected: &str) {
        d.error(
            &self.span,
            &self.path,
            format!("expected {expected}, found {}", describe(self.value)),
        );
    }

    pub(super) fn bool(&self, d: &mut Diagnostics<'_>) -> Option<bool> {
        match self.value {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(d, "a boolean (true or false)");
                None
            }
        }
    }

    pub(super) fn str(&self, d: &mut Diagnostics<'_>) -> Option<&'a str> {
        match self.value {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.wrong_type(d, "a string");
                None
            }
        }
    }

    /// A string that must not be empty (or only blanks).
    pub(super) fn non_empty_str(&self, d: &mut Diagnostics<'_>) -> Option<&'a str> {
        let text = self.str(d)?;
        if text.trim().is_empty() {
            d.error(&self.span, &self.path, "must not be empty");
            return None;
        }
        Some(text)
    }

    /// An integer inside `range`; the message names the bound that was crossed.
    pub(super) fn integer(
        &self,
        d: &mut Diagnostics<'_>,
        range: RangeInclusive<i128>,
    ) -> Option<i128> {
        let DeValue::Integer(int) = self.value else {
            self.wrong_type(d, "an integer");
            return None;
        };
        let Ok(n) = i128::from_str_radix(int.as_str(), int.radix()) else {
            d.error(
                &self.span,
                &self.path,
                format!("the integer {int} is too large"),
            );
            return None;
        };
        let (min, max) = (*range.start(), *range.end());
        let problem = if n < min && min == 1 {
            Some(format!("must be greater than 0, found {n}"))
        } else if n < min && min == 0 {
            Some(format!("must not be negative, found {n}"))
        } else if n < min {
            Some(format!("must be at least {min}, found {n}"))
        } else if n > max {
            Some(format!("must be at most {max}, found {n}"))
        } else {
            None
        };
        match problem {
            Some(message) => {
                d.error(&self.span, &self.path, message);
                None
            }
            None => Some(n),
        }
    }

    /// A finite number (a float, or an integer written in decimal) of at least `min`.
    pub(super) fn number(&self, d: &mut Diagnostics<'_>, min: f64) -> Option<f64> {
        let parsed = match self.value {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) if i.radix() == 10 => i.as_str().parse::<f64>().ok(),
            _ => {
                self.wrong_type(d, "a number");
                return None;
            }
        };
        match parsed {
            Some(n) if n.is_finite() && n >= min => Some(n),
            Some(n) if n.is_finite() => {
                d.error(
                    &self.span,
                    &self.path,
                    format!("must be at least {min:?}, found {n:?}"),
                );
                None
            }
            _ => {
                d.error(
                    &self.span,
                    &self.path,
                    format!("must be a finite number, found {}", describe(self.value)),
                );
                None
            }
        }
    }

    /// A string that must be one of `allowed`.
    pub(super) fn choice(
        &self,
        d: &mut Diagnostics<'_>,
        allowed: &[&'static str],
    ) -> Option<&'static str> {
        let text = self.str(d)?;
        let found = allowed.iter().copied().find(|a| *a == text);
        if found.is_none() {
            d.error(
                &self.span,
                &self.path,
                format!("must be one of {}; found {text:?}", quoted_list(allowed)),
            );
        }
        found
    }

    pub(super) fn table(&self, d: &mut Diagnostics<'_>) -> Option<Table<'a, 'i>> {
        match self.value {
            DeValue::Table(table) => Some(Table::new(table, self.span.clone(), self.path.clone())),
            _ => {
                self.wrong_type(d, "a table");
                None
            }
        }
    }

    /// The elements of an array, each with its indexed path (`key[0]`, `key[1]`, ...).
    pub(super) fn array(
        &self,
        d: &mut Diagnostics<'_>,
        expected: &str,
    ) -> Option<Vec<Value<'a, 'i>>> {
        match self.value {
            DeValue::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| Value::new(format!("{}[{i}]", self.path), item))
                    .collect(),
            ),
            _ => {
                self.wrong_type(d, expected);
                None
            }
        }
    }

    /// The tables of an array of tables (`[[key]]`, or an inline array of inline tables).
    pub(super) fn tables(&self, d: &mut Diagnostics<'_>) -> Option<Vec<Table<'a, 'i>>> {
        let expected = format!("an array of tables ([[{}]])", self.path);
        let items = self.array(d, &expected)?;
        Some(items.iter().filter_map(|item| item.table(d)).collect())
    }
}

/// How a value is named in "expected X, found Y": its type, and short scalars themselves.
fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) if s.chars().count() <= 40 => format!("string {s:?}"),
        DeValue::Integer(i) => format!("integer {i}"),
        DeValue::Float(f) => format!("float {f}"),
        DeValue::Boolean(b) => format!("boolean {b}"),
        other => other.type_str().to_owned(),
    }
}

pub(super) fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|item| format!("{item:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A table being read. Every key the schema asks for is remembered, so that [`Table::finish`]
/// can name each key nobody asked for and suggest the nearest known one.
pub(super) struct Table<'a, 'i> {
    pub(super) path: String,
    pub(super) span: Span,
    entries: Vec<(&'a Spanned<DeString<'i>>, &'a Spanned<DeValue<'i>>)>,
    asked: Vec<&'static str>,
}

impl<'a, 'i> Table<'a, 'i> {
    pub(super) fn new(table: &'a DeTable<'i>, span: Span, path: String) -> Table<'a, 'i> {
        Table {
            path,
            span,
            entries: table.iter().collect(),
            asked: Vec::new(),
        }
    }

    /// The value under `key`, if present; `key` becomes a known key of this table either way.
    pub(super) fn get(&mut self, key: &'static str) -> Option<Value<'a, 'i>> {
        if !self.asked.contains(&key) {
            self.asked.push(key);
        }
        self.entries
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| Value::new(child_path(&self.path, key), v))
    }

    /// The value under a required `key`; reports its absence at the table's own line.
    pub(super) fn require(
        &mut self,
        d: &mut Diagnostics<'_>,
        key: &'static str,
        what: &str,
    ) -> Option<Value<'a, 'i>> {
        let value = self.get(key);
        if value.is_none() {
            d.error(
                &self.span,
                &self.path,
                format!("missing key `{key}` ({what})"),
            );
        }
        value
    }

    /// Every entry, for tables whose keys are names chosen by the user (`[services.NAME]`).
    pub(super) fn all(&mut self) -> Vec<(&'a str, Span, Value<'a, 'i>)> {
        let path = self.path.clone();
        let all: Vec<_> = self
            .entries
            .iter()
            .map(|(k, v)| {
                let name: &'a str = k.get_ref().as_ref();
                (name, k.span(), Value::new(child_path(&path, name), v))
            })
            .collect();
        self.entries.clear();
        all
    }

    pub(super) fn bool(&mut self, d: &mut Diagnostics<'_>, key: &'static str) -> Option<bool> {
        self.get(key)?.bool(d)
    }

    pub(super) fn integer(
        &mut self,
        d: &mut Diagnostics<'_>,
        key: &'static str,
        range: RangeInclusive<i128>,
    ) -> Option<i128> {
        self.get(key)?.integer(d, range)
    }

    pub(super) fn table(
        &mut self,
        d: &mut Diagnostics<'_>,
        key: &'static str,
    ) -> Option<Table<'a, 'i>> {
        self.get(key)?.table(d)
    }

    /// Reports every key that was never asked for.
    pub(super) fn finish(self, d: &mut Diagnostics<'_>) {
        for (key, _) in &self.entries {
            let name: &str = key.get_ref().as_ref();
            if self.asked.contains(&name) {
                continue;
            }
            let (what, listing) = if self.path.is_empty() {
                ("unknown section", "sections are")
            } else {
                ("unknown key", "known keys here")
            };
            let mut message = String::from(what);
            if let Some(near) = nearest(name, &self.asked) {
                message.push_str(&format!(" (did you mean `{near}`?)"));
            }
            if self.asked.is_empty() {
                message.push_str("; this table takes no keys");
            } else {
                message.push_str(&format!("; {listing}: {}", self.asked.join(", ")));
            }
            d.error(&key.span(), &child_path(&self.path, name), message);
        }
    }
}

/// The known key closest to a misspelt one, if it is close enough to be a likely typo.
pub(super) fn nearest<'k>(given: &str, known: &[&'k str]) -> Option<&'k str> {
    let limit = (given.chars().count() / 3).clamp(1, 3);
    known
        .iter()
        .map(|k| (edit_distance(given, k), *k))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based() {
        let d = Diagnostics::new("x", "a\nbc\n\nd");
        assert_eq!(d.line_of(0), 1);
        assert_eq!(d.line_of(2), 2);
        assert_eq!(d.line_of(3), 2);
        assert_eq!(d.line_of(5), 3);
        assert_eq!(d.line_of(6), 4);
        assert_eq!(d.column_of(3), 2);
    }

    #[test]
    fn suggestions_are_near_misses_only() {
        let known = ["log_level", "db_path", "pid_file"];
        assert_eq!(nearest("log_levle", &known), Some("log_level"));
        assert_eq!(nearest("pidfile", &known), Some("pid_file"));
        assert_eq!(nearest("colour", &known), None);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn paths_quote_keys_that_are_not_bare() {
        assert_eq!(child_path("", "general"), "general");
        assert_eq!(child_path("services", "ssh"), "services.ssh");
        assert_eq!(child_path("services", "my svc"), "services.\"my svc\"");
    }
}
