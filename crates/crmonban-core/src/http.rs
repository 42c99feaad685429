//! What the crates that speak HTTP (intel's APIs, SIEM webhooks) read the same way, as pure
//! functions: a `Retry-After` answer ([`retry_after`], RFC 9110's three HTTP-date forms
//! included), whether a URL's host is this machine ([`is_loopback_host`]), and an error with
//! its causes on one line ([`error_chain`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The pause a `Retry-After` value asks for (RFC 9110 §10.2.3: delta-seconds or an
/// HTTP-date), at most `cap`; a date already past is no pause; `None` when it is neither.
pub fn retry_after(value: &str, now: SystemTime, cap: Duration) -> Option<Duration> {
    let value = value.trim();
    let pause = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 still means "very long".
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = UNIX_EPOCH + Duration::from_secs(http_date(value)?);
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(pause.min(cap))
}

/// Unix seconds of an HTTP-date in any of the three forms a recipient must accept (RFC 9110
/// §5.6.7): IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, RFC 850 `Sunday, 06-Nov-94 08:49:37
/// GMT`, asctime `Sun Nov  6 08:49:37 1994`. Years from 1970 to 9999.
pub fn http_date(value: &str) -> Option<u64> {
    let tokens: Vec<&str> = value.split_ascii_whitespace().collect();
    let (day, month, year, time) = match tokens.as_slice() {
        [weekday, day, month, year, time, "GMT"] if weekday.ends_with(',') => {
            (*day, *month, year.parse::<u64>().ok()?, *time)
        }
        [weekday, date, time, "GMT"] if weekday.ends_with(',') => {
            let mut parts = date.split('-');
            let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() || year.len() != 2 {
                return None;
            }
            // RFC 9110: a two-digit year more than 50 years ahead is in the past century;
            // the dates seen here are near the present.
            let yy = year.parse::<u64>().ok()?;
            let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
            (day, month, year, *time)
        }
        [_weekday, month, day, time, year] => (*day, *month, year.parse::<u64>().ok()?, *time),
        _ => return None,
    };
    let day = day.parse::<u64>().ok().filter(|d| (1..=31).contains(d))?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as u64 + 1;
    let mut hms = time.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || h > 23 || m > 59 || s > 60 || !(1970..=9999).contains(&year) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `days_from_civil`), for
/// years from 1970.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// True when `host` (a URL's host: a name, an address, an IPv6 address in brackets) is this
/// machine's loopback: `localhost` or a loopback address.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `error` and its causes on one line ("error sending request: client error (Connect): tcp
/// connect error: Connection refused (os error 111)"), a cause left out when the text before
/// already says it.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = String::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        next = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example.
    const EXAMPLE: u64 = 784_111_777;
    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn retry_after_reads_seconds_and_all_three_date_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(EXAMPLE);
        let two_minutes = Some(Duration::from_secs(120));
        assert_eq!(retry_after(" 120 ", now, DAY), two_minutes);
        for date in [
            "Sun, 06 Nov 1994 08:51:37 GMT",
            "Sunday, 06-Nov-94 08:51:37 GMT",
            "Sun Nov  6 08:51:37 1994",
        ] {
            assert_eq!(retry_after(date, now, DAY), two_minutes, "{date}");
            assert_eq!(http_date(date), Some(EXAMPLE + 120), "{date}");
        }
        // A date already past asks for no pause; an absurd one for at most the cap.
        assert_eq!(
            retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now, DAY),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("99999999999999999999999", now, DAY), Some(DAY));
        for bad in [
            "",
            "soon",
            "-5",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "1.5",
            "Sun, 06-Nov-1994 08:49:37 GMT",
        ] {
            assert_eq!(retry_after(bad, now, DAY), None, "{bad:?}");
        }
        // Dates near the present, checked against the calendar.
        assert_eq!(days_from_civil(2026, 3, 1), 20_513);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(
            http_date("Thu, 29 Feb 2024 23:59:59 GMT"),
            Some(1_709_251_199)
        );
    }

    #[test]
    fn loopback_hosts_and_error_chains() {
        for host in ["localhost", "LOCALHOST", "127.0.0.1", "127.8.9.10", "[::1]"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "example.com",
            "10.0.0.1",
            "[2001:db8::1]",
            "localhost.example",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("sending")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("refused"));
        assert_eq!(error_chain(&e), "sending: refused");
    }
}
