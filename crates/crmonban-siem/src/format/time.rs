//! UTC calendar arithmetic for the encoders and the timestamp forms they write: RFC 3339 with
//! microseconds (syslog TIMESTAMP, ECS `@timestamp`), RFC 3339 in whole seconds (ban expiry),
//! LEEF's `MMM dd yyyy HH:mm:ss.SSS z` and epoch milliseconds (CEF `rt`, `end`).
//!
//! The civil date comes from Howard Hinnant's `civil_from_days` (proleptic Gregorian), so the
//! crate needs no date library. Only years 0000 to 9999 can be written in these forms: a time
//! outside them (a broken clock) gives `None` and the encoder leaves the field out.

/// LEEF `devTimeFormat`: a Java `SimpleDateFormat` pattern from QRadar's "Custom event date
/// format" table; [`leef_dev_time`] writes it with the zone `GMT`.
pub(crate) const LEEF_DEV_TIME_FORMAT: &str = "MMM dd yyyy HH:mm:ss.SSS z";

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A UTC time broken into its calendar fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Utc {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    micros: i64,
}

impl Utc {
    /// `unix_secs` plus `micros` (0..1_000_000) as calendar fields, if the year is 0..=9999.
    fn new(unix_secs: i64, micros: i64) -> Option<Utc> {
        let (year, month, day) = civil_from_days(unix_secs.div_euclid(86_400));
        if !(0..=9999).contains(&year) {
            return None;
        }
        let of_day = unix_secs.rem_euclid(86_400);
        Some(Utc {
            year,
            month,
            day,
            hour: of_day / 3600,
            minute: of_day / 60 % 60,
            second: of_day % 60,
            micros,
        })
    }

    fn from_micros(at_micros: i64) -> Option<Utc> {
        Utc::new(
            at_micros.div_euclid(1_000_000),
            at_micros.rem_euclid(1_000_000),
        )
    }

    fn date_time(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// The (year, month 1..=12, day 1..=31) of a count of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a year, then split
    // into 400-year eras of 146 097 days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (1..=31, 1..=12).
    (year, small_u32(month), small_u32(day))
}

fn small_u32(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

/// `at_micros` (unix microseconds) as RFC 3339 in UTC with a six-digit fraction:
/// `2026-11-25T16:19:59.123456Z`.
pub(crate) fn rfc3339_micros(at_micros: i64) -> Option<String> {
    let utc = Utc::from_micros(at_micros)?;
    Some(format!("{}.{:06}Z", utc.date_time(), utc.micros))
}

/// `unix_secs` as RFC 3339 in UTC without a fraction: `2026-11-25T16:29:59Z`.
pub(crate) fn rfc3339_secs(unix_secs: i64) -> Option<String> {
    let utc = Utc::new(unix_secs, 0)?;
    Some(format!("{}Z", utc.date_time()))
}

/// `at_micros` in [`LEEF_DEV_TIME_FORMAT`]: `Nov 25 2026 16:19:59.123 GMT` (milliseconds,
/// truncated).
pub(crate) fn leef_dev_time(at_micros: i64) -> Option<String> {
    let utc = Utc::from_micros(at_micros)?;
    let month = MONTHS.get(utc.month.checked_sub(1)? as usize)?;
    Some(format!(
        "{month} {:02} {:04} {:02}:{:02}:{:02}.{:03} GMT",
        utc.day,
        utc.year,
        utc.hour,
        utc.minute,
        utc.second,
        utc.micros / 1000
    ))
}

/// Unix milliseconds of `at_micros`, rounded down (CEF `rt`).
pub(crate) fn epoch_millis(at_micros: i64) -> i64 {
    at_micros.div_euclid(1000)
}

#[cfg(test)]
#[path = "time_tests.rs"]
mod tests;
