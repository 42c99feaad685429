//! Durations as people write them: `90s`, `15m`, `1h`, `7d`, `2w`, `1h30m`, plain seconds
//! (`3600`), and `permanent` for a ban without end. One parser for the command line
//! (`crmonctl ban -d 1h`) and the configuration (`ban_time = "1h"`), one way of writing them
//! back (`1d 2h`), so that what crmonctl prints can be typed in again.
//!
//! The units are fail2ban's and systemd's short ones: `s` (also `sec`, `secs`, `second(s)`),
//! `m` (`min`, `mins`, `minute(s)`), `h` (`hr`, `hour(s)`), `d` (`day(s)`), `w` (`week(s)`).
//! Months and years are left out on purpose: their length is not a number of seconds.

use std::fmt;
use std::time::Duration;

/// Why a text is not a duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing given.
    #[error("a duration is empty; write e.g. 90s, 15m, 1h, 7d or permanent")]
    Empty,
    /// A part that is not `<number><unit>`.
    #[error("{0:?} is not a duration; write e.g. 90s, 15m, 1h, 7d, 1h30m or permanent")]
    Malformed(String),
    /// A unit we do not know.
    #[error("{unit:?} in {text:?} is not a unit; use s, m, h, d or w")]
    UnknownUnit {
        /// The whole text.
        text: String,
        /// The unit as written.
        unit: String,
    },
    /// More than `max` seconds.
    #[error("{text:?} is longer than {max} seconds")]
    TooLong {
        /// The whole text.
        text: String,
        /// The largest accepted, in seconds.
        max: u64,
    },
}

/// What a duration text says: a length, or no end at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Length {
    /// `permanent` (also `forever`, `never`).
    Permanent,
    /// That many seconds (possibly zero: `0`, `0s`).
    Secs(u64),
}

/// Reads `text` as a duration of at most `max` seconds (see the module's doc). Spaces between
/// parts are allowed (`1h 30m`), case is ignored.
pub fn parse(text: &str, max: u64) -> Result<Length, DurationError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(DurationError::Empty);
    }
    let lower = trimmed.to_ascii_lowercase();
    if matches!(lower.as_str(), "permanent" | "forever" | "never") {
        return Ok(Length::Permanent);
    }
    let malformed = || DurationError::Malformed(trimmed.to_owned());
    let too_long = || DurationError::TooLong {
        text: trimmed.to_owned(),
        max,
    };
    let bytes = lower.as_bytes();
    let mut total: u64 = 0;
    let mut at = 0;
    let mut parts = 0;
    while at < bytes.len() {
        if bytes[at] == b' ' {
            at += 1;
            continue;
        }
        let digits = bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 {
            return Err(malformed());
        }
        let number: u64 = lower[at..at + digits].parse().map_err(|_| too_long())?;
        at += digits;
        // "10 min" as well as "10min".
        let spaces = bytes[at..].iter().take_while(|b| **b == b' ').count();
        if bytes[at + spaces..]
            .first()
            .is_some_and(u8::is_ascii_alphabetic)
        {
            at += spaces;
        }
        let letters = bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        let unit = &lower[at..at + letters];
        at += letters;
        let scale = match unit {
            // A bare number is seconds, but only alone: "1h 30" is a mistake, not 1h30s.
            "" if parts == 0 && at == bytes.len() => 1,
            "" => return Err(malformed()),
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 604_800,
            _ => {
                return Err(DurationError::UnknownUnit {
                    text: trimmed.to_owned(),
                    unit: unit.to_owned(),
                });
            }
        };
        total = number
            .checked_mul(scale)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(too_long)?;
        parts += 1;
    }
    if total > max {
        return Err(too_long());
    }
    Ok(Length::Secs(total))
}

/// A length in seconds the way [`parse`] reads it back: `1d 2h 3m 4s`, `permanent` for `None`,
/// `0s` for zero.
pub fn format(secs: Option<u64>) -> String {
    Written(secs).to_string()
}

/// [`format`] as a `Display` value.
#[derive(Clone, Copy, Debug)]
pub struct Written(pub Option<u64>);

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(secs) = self.0 else {
            return f.write_str("permanent");
        };
        if secs == 0 {
            return f.write_str("0s");
        }
        let parts = [
            (secs / 86_400, "d"),
            (secs % 86_400 / 3600, "h"),
            (secs % 3600 / 60, "m"),
            (secs % 60, "s"),
        ];
        let mut first = true;
        for (n, unit) in parts.into_iter().filter(|(n, _)| *n > 0) {
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "{n}{unit}")?;
            first = false;
        }
        Ok(())
    }
}

/// [`format`] of a [`Duration`] (whole seconds).
pub fn format_duration(duration: Duration) -> String {
    format(Some(duration.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = u32::MAX as u64;

    #[test]
    fn units_and_combinations_are_read() {
        for (text, secs) in [
            ("90s", 90),
            ("15m", 900),
            ("1h", 3600),
            ("7d", 604_800),
            ("2w", 1_209_600),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("1d 2h 3m 4s", 93_784),
            ("3600", 3600),
            ("0", 0),
            ("0s", 0),
            (" 10 MIN ", 600),
            ("2hours", 7200),
            ("2 hours 5 minutes", 7500),
        ] {
            assert_eq!(parse(text, MAX), Ok(Length::Secs(secs)), "{text}");
        }
        for text in ["permanent", "Permanent", "forever", "never"] {
            assert_eq!(parse(text, MAX), Ok(Length::Permanent), "{text}");
        }
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(parse("", MAX), Err(DurationError::Empty));
        assert_eq!(parse("  ", MAX), Err(DurationError::Empty));
        for text in [
            "h", "1h30", "-5m", "1.5h", "ten", "1h-2m", "1h,30m", "10 20", "1h 30",
        ] {
            assert!(
                matches!(parse(text, MAX), Err(DurationError::Malformed(_))),
                "{text}: {:?}",
                parse(text, MAX)
            );
        }
        let error = parse("3mo", MAX).unwrap_err();
        assert!(error.to_string().contains("\"mo\""), "{error}");
        let error = parse("8000w", MAX).unwrap_err();
        assert!(matches!(error, DurationError::TooLong { .. }), "{error}");
        assert_eq!(
            parse("136y", MAX).unwrap_err().to_string(),
            "\"y\" in \"136y\" is not a unit; use s, m, h, d or w"
        );
        assert!(matches!(
            parse("99999999999999999999999s", MAX),
            Err(DurationError::TooLong { .. })
        ));
        assert!(matches!(
            parse("99999999999999999w", u64::MAX),
            Err(DurationError::TooLong { .. })
        ));
        assert_eq!(
            parse(&"9".repeat(400), MAX).map_err(|e| e.to_string().len() < 600),
            Err(true)
        );
    }

    #[test]
    fn written_lengths_read_back() {
        assert_eq!(format(None), "permanent");
        assert_eq!(format(Some(0)), "0s");
        assert_eq!(format(Some(93_784)), "1d 2h 3m 4s");
        assert_eq!(format(Some(3600)), "1h");
        for secs in [1, 59, 60, 61, 3599, 86_400, 93_784, 1_209_600, MAX] {
            assert_eq!(parse(&format(Some(secs)), MAX), Ok(Length::Secs(secs)));
        }
        assert_eq!(parse(&format(None), MAX), Ok(Length::Permanent));
    }
}
