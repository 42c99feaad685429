//! Stamps of other programs' own files and of journalctl's output formats: ctime (vsftpd),
//! bracketed stamps (vaultwarden, asterisk), journalctl's short-full and short-unix, and the
//! time field of common/combined access logs.

use super::{civil_to_unix, digit, hms, month_number, parse_bsd, parse_rfc3339, two_digits};

/// ctime's `Www Mmm dd HH:MM:SS YYYY`, local time, 24 bytes.
pub(super) fn parse_ctime(line: &[u8], utc_offset: i32) -> Option<(i64, usize)> {
    if line.len() < 24 || line[3] != b' ' || line[7] != b' ' || line[10] != b' ' {
        return None;
    }
    let month = month_number(&line[4..7])?;
    let day = match (line[8], line[9]) {
        (b' ', d) => digit(d)?,
        (t, d) => digit(t)? * 10 + digit(d)?,
    };
    let secs = hms(&line[11..19])?;
    if line[19] != b' ' {
        return None;
    }
    let year = i64::from(two_digits(&line[20..22])? * 100 + two_digits(&line[22..24])?);
    Some((
        civil_to_unix(year, month, day, secs, i64::from(utc_offset))?,
        24,
    ))
}

/// A stamp in square brackets: `[2026-11-25 16:19:59.123]` (vaultwarden, asterisk) or
/// `[Nov 25 16:19:59]` (asterisk); the length includes the brackets.
pub(super) fn parse_bracketed(
    line: &[u8],
    reference: i64,
    utc_offset: i32,
) -> Option<(i64, usize)> {
    let inner = line.get(1..)?;
    let (time, len) = match inner.first()? {
        b'0'..=b'9' => parse_rfc3339(inner, utc_offset)?,
        b'A'..=b'Z' => parse_bsd(inner, reference, utc_offset)?,
        _ => return None,
    };
    (inner.get(len) == Some(&b']')).then_some((time, len + 2))
}

/// journalctl -o short-full: `Www YYYY-MM-DD HH:MM:SS ZONE`, the zone an abbreviation
/// (`UTC`, `GMT` or the local zone's, read as `utc_offset`) or `±HHMM`.
pub(super) fn parse_weekday_iso(line: &[u8], utc_offset: i32) -> Option<(i64, usize)> {
    let (local, len) = parse_rfc3339(line.get(4..)?, 0)?;
    let rest = line.get(4 + len..)?.strip_prefix(b" ")?;
    let zone_len = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let zone = &rest[..zone_len];
    let offset = match zone {
        b"UTC" | b"GMT" | b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, m1, m2] => {
            let minutes = i64::from(two_digits(&[*h1, *h2])? * 60 + two_digits(&[*m1, *m2])?);
            if *sign == b'-' {
                -minutes * 60
            } else {
                minutes * 60
            }
        }
        z if !z.is_empty() && z.iter().all(u8::is_ascii_alphabetic) => i64::from(utc_offset),
        _ => return None,
    };
    Some((local - offset, 4 + len + 1 + zone_len))
}

/// journalctl -o short-unix: `1764087599.123456` (seconds since the epoch, 9 to 11 digits).
pub(super) fn parse_unix(line: &[u8]) -> Option<(i64, usize)> {
    let digits = line.iter().take_while(|b| b.is_ascii_digit()).count();
    if !(9..=11).contains(&digits) {
        return None;
    }
    let secs: i64 = std::str::from_utf8(&line[..digits]).ok()?.parse().ok()?;
    let mut len = digits;
    if line.get(len) == Some(&b'.') {
        let frac = line[len + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if frac == 0 {
            return None;
        }
        len += 1 + frac;
    }
    // A stamp is followed by a blank; anything else is not one.
    (line.get(len) == Some(&b' ')).then_some((secs, len))
}

/// The time of a common/combined access log line: the `[dd/Mon/yyyy:HH:MM:SS +zzzz]` field
/// that is followed by ` "` (the request), within the first 512 bytes. The user field before
/// it is the client's and unquoted, so a `[...]` there is never taken for the time. Its own
/// zone applies; `utc_offset` when it has none.
pub fn parse_clf_field(line: &[u8], utc_offset: i32) -> Option<i64> {
    let head = &line[..line.len().min(512)];
    let close = memchr::memmem::find_iter(head, b"] \"").next()?;
    let open = memchr::memrchr(b'[', &head[..close])?;
    let f = head.get(open + 1..close)?;
    // dd/Mon/yyyy:HH:MM:SS
    if f.len() < 20 || f[2] != b'/' || f[6] != b'/' || f[11] != b':' {
        return None;
    }
    let day = two_digits(&f[0..2])?;
    let month = month_number(&f[3..6])?;
    let year = i64::from(two_digits(&f[7..9])? * 100 + two_digits(&f[9..11])?);
    let secs = hms(&f[12..20])?;
    let offset = match f.get(20..26) {
        Some([b' ', sign @ (b'+' | b'-'), h1, h2, m1, m2]) => {
            let minutes = i64::from(two_digits(&[*h1, *h2])? * 60 + two_digits(&[*m1, *m2])?);
            if *sign == b'-' {
                -minutes * 60
            } else {
                minutes * 60
            }
        }
        _ => i64::from(utc_offset),
    };
    civil_to_unix(year, month, day, secs, offset)
}
