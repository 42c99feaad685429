//! Timestamps taken from log lines themselves, as unix seconds: hand-written parsers (no regex,
//! no allocation) for the formats the built-in services write, plus the civil-date arithmetic
//! they need and an RFC 3339 formatter for `explain`.
//!
//! | format | example | zone |
//! |---|---|---|
//! | BSD syslog (RFC 3164) | `Nov 25 16:19:59`, `Nov  5 06:01:02` | local, year inferred |
//! | RFC 3339 / ISO 8601 (rsyslog high precision, `journalctl -o short-iso[-precise]`) | `2026-11-25T16:19:59.123456+00:00`, `2026-11-25T16:19:59+0000`, `...Z` | from the text, local when absent |
//! | nginx error.log | `2026/11/25 16:19:59` | local |
//! | Apache 2.4 error log | `[Wed Nov 25 16:19:59.123456 2026]` | local |
//! | ctime (vsftpd.log) | `Wed Nov 25 16:19:59 2026` | local |
//! | bracketed (vaultwarden, asterisk) | `[2026-11-25 16:19:59.123]`, `[Nov 25 16:19:59]` | as inside |
//! | MariaDB | `2026-11-25  8:25:38` | local |
//! | `journalctl -o short-precise`, `short-full`, `short-unix` | `Nov 25 16:19:59.123456`, `Wed 2026-11-25 16:19:59 UTC`, `1795623599.123456` | local / named / UTC |
//! | access log time field | `[25/Nov/2026:16:19:52 +0000]` (before the request) | from the text |
//!
//! Fractions of a second are read and dropped (windows are counted in whole seconds).
//!
//! # Local time and the missing year
//!
//! Local-time formats carry no zone: they are read with the UTC offset the caller puts in
//! [`crate::matcher::LineContext::utc_offset`] (the daemon passes the host's current offset;
//! the default is UTC). One fixed offset serves a whole line, so the hour around a daylight
//! saving change can be off by the DST step; rsyslog's RFC 3339 format carries its offset and
//! has no such ambiguity.
//!
//! A BSD syslog stamp has no year. It is the year that puts the stamp at or before the
//! reference time (the time the line is read; `LineContext::now`) plus a grace of
//! [`BSD_FUTURE_GRACE`] (7 days, for clock skew between hosts): of the candidates next year,
//! this year and last year, the latest one not later than `now + 7 days` wins. So on
//! 2 January a line stamped `Dec 31` is last year's, and on 31 December 23:59 a line stamped
//! `Jan  1 00:00:10` (a sender whose clock is ahead) is next year's. A stamp that is invalid in
//! a candidate year (`Feb 29` outside a leap year) skips that year.

mod other;

pub use other::parse_clf_field;
use other::{parse_bracketed, parse_ctime, parse_unix, parse_weekday_iso};

/// How far in the future (relative to the reference time) a year-less BSD stamp may lie before
/// it is taken to be from the previous year.
pub const BSD_FUTURE_GRACE: i64 = 7 * 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a count of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        _ => 28,
    }
}

/// Unix seconds as RFC 3339 in UTC, e.g. `2026-11-25T16:19:59Z`.
pub fn format_rfc3339(unix: i64) -> String {
    let (y, mo, d) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parses the timestamp a line starts with, in any of the formats of the module docs.
/// Returns the unix time and how many bytes the stamp took (not counting the blank after it).
/// `reference` (unix seconds) is used for the BSD year; `utc_offset` (seconds east of UTC)
/// for stamps without a zone.
#[inline]
pub fn parse_leading(line: &[u8], reference: i64, utc_offset: i32) -> Option<(i64, usize)> {
    match *line.first()? {
        b'A'..=b'Z' => match line.get(8) {
            // journalctl -o short-full: `Wed 2026-11-25 16:19:59 UTC`.
            Some(b'-') if line.get(3) == Some(&b' ') => parse_weekday_iso(line, utc_offset),
            // ctime: `Wed Nov 25 16:19:59 2026` (vsftpd.log).
            _ if line.get(3) == Some(&b' ') && line.get(4).is_some_and(u8::is_ascii_uppercase) => {
                parse_ctime(line, utc_offset)
            }
            _ => parse_bsd(line, reference, utc_offset),
        },
        b'0'..=b'9' => match line.get(4)? {
            b'-' => parse_rfc3339(line, utc_offset),
            b'/' => parse_nginx(line, utc_offset),
            _ => parse_unix(line),
        },
        b'[' => {
            parse_apache(line, utc_offset).or_else(|| parse_bracketed(line, reference, utc_offset))
        }
        _ => None,
    }
}

#[inline]
fn month_number(m: &[u8]) -> Option<u32> {
    Some(match m {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

#[inline]
fn digit(b: u8) -> Option<u32> {
    b.is_ascii_digit().then(|| u32::from(b - b'0'))
}

#[inline]
fn two_digits(s: &[u8]) -> Option<u32> {
    Some(digit(s[0])? * 10 + digit(s[1])?)
}

/// `HH:MM:SS` at the start of `s`, as seconds of the day.
#[inline]
fn hms(s: &[u8]) -> Option<i64> {
    if s.len() < 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let (h, m, sec) = (
        two_digits(&s[0..2])?,
        two_digits(&s[3..5])?,
        two_digits(&s[6..8])?,
    );
    // 60 is a leap second; it is read as the next second.
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(i64::from(h * 3600 + m * 60 + sec))
}

fn civil_to_unix(year: i64, month: u32, day: u32, seconds_of_day: i64, offset: i64) -> Option<i64> {
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + seconds_of_day - offset)
}

/// The year of a day number, remembered for the last day asked (every line of a batch shares
/// its reference day).
#[inline]
fn year_of_day(day: i64) -> i64 {
    thread_local! {
        static LAST: std::cell::Cell<(i64, i64)> = const { std::cell::Cell::new((i64::MIN, 0)) };
    }
    LAST.with(|last| {
        let (cached_day, year) = last.get();
        if cached_day == day {
            return year;
        }
        let year = civil_from_days(day).0;
        last.set((day, year));
        year
    })
}

/// `Mmm dd HH:MM:SS` (day space- or zero-padded), 15 bytes; see the module docs for the year.
pub fn parse_bsd(line: &[u8], reference: i64, utc_offset: i32) -> Option<(i64, usize)> {
    if line.len() < 15 || line[3] != b' ' || line[6] != b' ' {
        return None;
    }
    let month = month_number(&line[0..3])?;
    let day = match (line[4], line[5]) {
        (b' ', d) => digit(d)?,
        (t, d) => digit(t)? * 10 + digit(d)?,
    };
    let secs = hms(&line[7..15])?;
    let offset = i64::from(utc_offset);
    let ref_year = year_of_day((reference + offset).div_euclid(86_400));
    let latest_acceptable = reference + BSD_FUTURE_GRACE;
    let time = [ref_year + 1, ref_year, ref_year - 1]
        .into_iter()
        .filter_map(|year| civil_to_unix(year, month, day, secs, offset))
        .find(|&t| t <= latest_acceptable)?;
    // journalctl -o short-precise adds microseconds: `Nov 25 16:19:59.123456`.
    let mut len = 15;
    if line.get(15) == Some(&b'.') {
        let digits = line[16..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 {
            len = 16 + digits;
        }
    }
    Some((time, len))
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|±HH:MM|±HHMM|±HH]`; local time when no zone is given.
/// MariaDB's `YYYY-MM-DD  H:MM:SS` (a blank for the hour's first digit) is read too.
pub fn parse_rfc3339(line: &[u8], utc_offset: i32) -> Option<(i64, usize)> {
    if line.get(10..12) == Some(b"  ") && line.get(13) == Some(&b':') {
        let mut padded = [0u8; 19];
        padded.copy_from_slice(line.get(..19)?);
        padded[11] = b'0';
        let (time, _) = parse_rfc3339(&padded, utc_offset)?;
        return Some((time, 19));
    }
    if line.len() < 19 || line[4] != b'-' || line[7] != b'-' || !matches!(line[10], b'T' | b' ') {
        return None;
    }
    let year = i64::from(two_digits(&line[0..2])? * 100 + two_digits(&line[2..4])?);
    let month = two_digits(&line[5..7])?;
    let day = two_digits(&line[8..10])?;
    let secs = hms(&line[11..19])?;
    let mut at = 19;
    if line.get(at) == Some(&b'.') || line.get(at) == Some(&b',') {
        at += 1;
        let start = at;
        while line.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return None;
        }
    }
    let offset = match line.get(at) {
        Some(b'Z') | Some(b'z') => {
            at += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let rest = &line[at + 1..];
            let hours = two_digits(rest.get(..2)?)?;
            let (minutes, used) = match rest.get(2) {
                Some(b':') => (two_digits(rest.get(3..5)?)?, 5),
                Some(b) if b.is_ascii_digit() => (two_digits(rest.get(2..4)?)?, 4),
                _ => (0, 2),
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            at += 1 + used;
            let magnitude = i64::from(hours * 3600 + minutes * 60);
            if sign == b'-' { -magnitude } else { magnitude }
        }
        _ => i64::from(utc_offset),
    };
    Some((civil_to_unix(year, month, day, secs, offset)?, at))
}

/// nginx's `YYYY/MM/DD HH:MM:SS`, local time, 19 bytes.
pub fn parse_nginx(line: &[u8], utc_offset: i32) -> Option<(i64, usize)> {
    if line.len() < 19 || line[4] != b'/' || line[7] != b'/' || line[10] != b' ' {
        return None;
    }
    let year = i64::from(two_digits(&line[0..2])? * 100 + two_digits(&line[2..4])?);
    let month = two_digits(&line[5..7])?;
    let day = two_digits(&line[8..10])?;
    let secs = hms(&line[11..19])?;
    Some((
        civil_to_unix(year, month, day, secs, i64::from(utc_offset))?,
        19,
    ))
}

/// Apache 2.4's `[Www Mmm dd HH:MM:SS[.uuuuuu] YYYY]`, local time; the length includes the
/// closing bracket.
pub fn parse_apache(line: &[u8], utc_offset: i32) -> Option<(i64, usize)> {
    // "[Wed Nov 25 16:19:59 2026]" is 26 bytes without the fraction.
    if line.len() < 26 || line[0] != b'[' || line[4] != b' ' || line[8] != b' ' {
        return None;
    }
    let month = month_number(&line[5..8])?;
    let day = match (line[9], line[10]) {
        (b' ', d) => digit(d)?,
        (t, d) => digit(t)? * 10 + digit(d)?,
    };
    if line[11] != b' ' {
        return None;
    }
    let secs = hms(&line[12..20])?;
    let mut at = 20;
    if line.get(at) == Some(&b'.') {
        at += 1;
        while line.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
    }
    if line.get(at) != Some(&b' ') {
        return None;
    }
    let year_text = line.get(at + 1..at + 5)?;
    let year = i64::from(two_digits(&year_text[0..2])? * 100 + two_digits(&year_text[2..4])?);
    if line.get(at + 5) != Some(&b']') {
        return None;
    }
    Some((
        civil_to_unix(year, month, day, secs, i64::from(utc_offset))?,
        at + 6,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctime_bracketed_and_mariadb_stamps() {
        let want = utc(2026, 11, 25, 16, 19, 59);
        let now = utc(2026, 11, 26, 0, 0, 0);
        for (line, len) in [
            ("Wed Nov 25 16:19:59 2026 [pid 1] x", 24),
            ("[2026-11-25 16:19:59.123] x", 25),
            ("[2026-11-25 16:19:59] x", 21),
            ("[Nov 25 16:19:59] x", 17),
        ] {
            assert_eq!(
                parse_leading(line.as_bytes(), now, 0),
                Some((want, len)),
                "{line}"
            );
        }
        assert_eq!(
            parse_leading(b"2026-11-25  8:25:38 0 [Warning] x", now, 0),
            Some((utc(2026, 11, 25, 8, 25, 38), 19))
        );
        assert_eq!(parse_leading(b"Wed Nov 25 16:19:59", now, 0), None);
    }

    #[test]
    fn the_access_log_time_is_the_field_before_the_request() {
        let t = |line: &str| parse_clf_field(line.as_bytes(), 0);
        let want = utc(2026, 11, 25, 16, 19, 52);
        assert_eq!(
            t(r#"192.0.2.7 - - [25/Nov/2026:16:19:52 +0000] "GET / HTTP/1.1" 200 1 "-" "x""#),
            Some(want)
        );
        assert_eq!(
            t(r#"192.0.2.7 - - [25/Nov/2026:17:19:52 +0100] "GET / HTTP/1.1" 200 1 "-" "x""#),
            Some(want)
        );
        // A client's user name imitating the field does not set the time.
        assert_eq!(
            t(
                r#"192.0.2.7 - [01/Jan/2001:00:00:00 +0000] [25/Nov/2026:16:19:52 +0000] "GET / HTTP/1.1" 401 1"#
            ),
            Some(want)
        );
        assert_eq!(t("192.0.2.7 - - no time here"), None);
    }

    fn utc(y: i64, mo: u32, d: u32, h: i64, mi: i64, s: i64) -> i64 {
        days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000, -1, 0, 1, 365, 20_000, 20_782, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339(utc(2026, 11, 25, 16, 19, 59)),
            "2026-11-25T16:19:59Z"
        );
    }

    #[test]
    fn bsd_uses_reference_year_and_offset() {
        let now = utc(2026, 11, 26, 0, 0, 0);
        assert_eq!(
            parse_bsd(b"Nov 25 16:19:59 host sshd[1]: x", now, 0),
            Some((utc(2026, 11, 25, 16, 19, 59), 15))
        );
        assert_eq!(
            parse_bsd(b"Nov  5 06:01:02", now, 0),
            Some((utc(2026, 11, 5, 6, 1, 2), 15))
        );
        // Host at UTC+1: 16:19:59 local is 15:19:59 UTC.
        assert_eq!(
            parse_bsd(b"Nov 25 16:19:59", now, 3600),
            Some((utc(2026, 11, 25, 15, 19, 59), 15))
        );
        assert_eq!(parse_bsd(b"Nov 32 16:19:59", now, 0), None);
        assert_eq!(parse_bsd(b"Foo 25 16:19:59", now, 0), None);
        assert_eq!(parse_bsd(b"Nov 25 24:19:59", now, 0), None);
        assert_eq!(parse_bsd(b"Nov 25 16:19", now, 0), None);
    }

    #[test]
    fn bsd_year_inference_across_new_year() {
        // Read on 2 January: December lines are last year's.
        let jan2 = utc(2027, 1, 2, 10, 0, 0);
        assert_eq!(
            parse_bsd(b"Dec 31 23:59:59", jan2, 0).map(|p| p.0),
            Some(utc(2026, 12, 31, 23, 59, 59))
        );
        assert_eq!(
            parse_bsd(b"Jan  2 09:59:00", jan2, 0).map(|p| p.0),
            Some(utc(2027, 1, 2, 9, 59, 0))
        );
        // Read on 31 December by a host whose clock lags: a January stamp is next year's.
        let dec31 = utc(2026, 12, 31, 23, 59, 0);
        assert_eq!(
            parse_bsd(b"Jan  1 00:00:10", dec31, 0).map(|p| p.0),
            Some(utc(2027, 1, 1, 0, 0, 10))
        );
        // A month in the future means last year.
        let mar = utc(2026, 3, 1, 0, 0, 0);
        assert_eq!(
            parse_bsd(b"Apr 10 00:00:00", mar, 0).map(|p| p.0),
            Some(utc(2025, 4, 10, 0, 0, 0))
        );
        // Feb 29 only exists in leap years: 2028 is one, read in March 2029 -> 2028.
        let mar29 = utc(2029, 3, 1, 0, 0, 0);
        assert_eq!(
            parse_bsd(b"Feb 29 12:00:00", mar29, 0).map(|p| p.0),
            Some(utc(2028, 2, 29, 12, 0, 0))
        );
    }

    #[test]
    fn rfc3339_variants() {
        let t = utc(2026, 11, 25, 16, 19, 59);
        let cases: &[(&[u8], i64, usize)] = &[
            (b"2026-11-25T16:19:59.123456+00:00 host", t, 32),
            (b"2026-11-25T16:19:59+01:00 host", t - 3600, 25),
            (b"2026-11-25T16:19:59-0500 host", t + 5 * 3600, 24),
            (b"2026-11-25T16:19:59Z host", t, 20),
            (b"2026-11-25T16:19:59.5Z", t, 22),
            (b"2026-11-25T16:19:59 host", t, 19),
            (b"2026-11-25 16:19:59,123 x", t, 23),
            (b"2026-11-25T16:19:59+05 x", t - 5 * 3600, 22),
        ];
        for (text, want, len) in cases {
            assert_eq!(
                parse_rfc3339(text, 0),
                Some((*want, *len)),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        // No zone: local offset applies.
        assert_eq!(
            parse_rfc3339(b"2026-11-25T16:19:59 x", 7200).map(|p| p.0),
            Some(t - 7200)
        );
        assert_eq!(parse_rfc3339(b"2026-13-25T16:19:59Z", 0), None);
        assert_eq!(parse_rfc3339(b"2026-02-30T16:19:59Z", 0), None);
        assert_eq!(parse_rfc3339(b"2026-11-25T16:19:59.Z", 0), None);
    }

    #[test]
    fn nginx_and_apache() {
        let t = utc(2026, 11, 25, 16, 19, 59);
        assert_eq!(
            parse_nginx(b"2026/11/25 16:19:59 [error] 1#1: x", 0),
            Some((t, 19))
        );
        assert_eq!(
            parse_apache(b"[Wed Nov 25 16:19:59.123456 2026] [auth_basic:error]", 0),
            Some((t, 33))
        );
        assert_eq!(
            parse_apache(b"[Wed Nov 25 16:19:59 2026] x", -3600),
            Some((t + 3600, 26))
        );
        assert_eq!(
            parse_apache(b"[Wed Nov  5 16:19:59 2026] x", 0).map(|p| p.0),
            Some(utc(2026, 11, 5, 16, 19, 59))
        );
        assert_eq!(parse_apache(b"[Wed Nov 25 16:19:59 2026 x", 0), None);
    }

    #[test]
    fn leading_dispatch_and_garbage() {
        let now = utc(2026, 11, 26, 0, 0, 0);
        assert!(parse_leading(b"Nov 25 16:19:59 h", now, 0).is_some());
        assert!(parse_leading(b"2026-11-25T16:19:59Z h", now, 0).is_some());
        assert!(parse_leading(b"2026/11/25 16:19:59 h", now, 0).is_some());
        assert!(parse_leading(b"[Wed Nov 25 16:19:59 2026] h", now, 0).is_some());
        for junk in [
            &b""[..],
            b"x",
            b"1",
            b"2026",
            b"[",
            b"Nov",
            b"2026-11-25T16:19:5",
            b"\xff\xfe",
        ] {
            assert_eq!(parse_leading(junk, now, 0), None);
        }
    }
}
