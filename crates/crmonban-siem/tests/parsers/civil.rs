//! Calendar arithmetic for the tests, deliberately naive (walks years and months) so that it
//! shares nothing with the encoders' `civil_from_days`.

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The first and last microsecond of years 0000-9999 (`date -u -d @-62167219200`,
/// `date -u -d @253402300799`).
pub const FIRST_MICROS: i64 = -62_167_219_200_000_000;
pub const LAST_MICROS: i64 = 253_402_300_799_999_999;

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn month_days(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let mut days = 0;
    if year >= 1970 {
        for y in 1970..year {
            days += if is_leap(y) { 366 } else { 365 };
        }
    } else {
        for y in year..1970 {
            days -= if is_leap(y) { 366 } else { 365 };
        }
    }
    for m in 1..month {
        days += month_days(year, m);
    }
    days + day - 1
}

fn civil_from_days(mut days: i64) -> (i64, i64, i64) {
    let mut year = 1970;
    while days < 0 {
        year -= 1;
        days += if is_leap(year) { 366 } else { 365 };
    }
    loop {
        let len = if is_leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let mut month = 1;
    while days >= month_days(year, month) {
        days -= month_days(year, month);
        month += 1;
    }
    (year, month, days + 1)
}

fn number(text: &str, digits: usize) -> Option<i64> {
    (text.len() == digits && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// `YYYY-MM-DDTHH:MM:SS` → unix seconds, checking every field's range.
fn date_time(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = number(&text[0..4], 4)?;
    let month = number(&text[5..7], 2).filter(|m| (1..=12).contains(m))?;
    let day = number(&text[8..10], 2).filter(|d| (1..=month_days(year, month)).contains(d))?;
    let hour = number(&text[11..13], 2).filter(|h| *h < 24)?;
    let minute = number(&text[14..16], 2).filter(|m| *m < 60)?;
    let second = number(&text[17..19], 2).filter(|s| *s < 60)?;
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` → unix microseconds.
pub fn rfc3339_micros(text: &str) -> Option<i64> {
    let (main, fraction) = text.strip_suffix('Z')?.split_once('.')?;
    Some(date_time(main)? * 1_000_000 + number(fraction, 6)?)
}

/// Unix seconds → `YYYY-MM-DDTHH:MM:SSZ`, for years 0000-9999.
pub fn format_rfc3339_secs(secs: i64) -> Option<String> {
    if !(FIRST_MICROS / 1_000_000..=LAST_MICROS / 1_000_000).contains(&secs) {
        return None;
    }
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    Some(format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    ))
}

/// `MMM dd yyyy HH:mm:ss.SSS GMT` (LEEF devTime as declared) → unix milliseconds.
pub fn leef_millis(text: &str) -> Option<i64> {
    let rest = text.strip_suffix(" GMT")?;
    let (month, rest) = rest.split_once(' ')?;
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let (day, rest) = rest.split_once(' ')?;
    let (year, rest) = rest.split_once(' ')?;
    let (clock, millis) = rest.split_once('.')?;
    let iso = format!("{}-{month:02}-{}T{clock}", year, day);
    let _ = number(day, 2)?;
    Some(date_time(&iso)? * 1000 + number(millis, 3)?)
}
