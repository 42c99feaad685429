//! [`IntelError`]: why one source could not answer about one address. Messages are one line,
//! bounded, and never contain a credential.

use std::time::Duration;

/// Why a source failed. The other sources' answers are kept.
#[derive(Debug, thiserror::Error)]
pub enum IntelError {
    /// No answer within the configured timeout.
    #[error("{what}: no answer within {timeout:?}")]
    Timeout {
        /// What was asked, e.g. "whois.arin.net:43".
        what: String,
        /// The timeout that applied.
        timeout: Duration,
    },
    /// A connection or I/O failure.
    #[error("{what}: {message}")]
    Io {
        /// What was asked.
        what: String,
        /// The failure, in one line.
        message: String,
    },
    /// The service refused the credential (HTTP 401/403).
    #[error("{what}: the API key was refused (HTTP {status}); check it in [intel]")]
    Unauthorized {
        /// The service.
        what: String,
        /// The HTTP status.
        status: u16,
    },
    /// The service or server asks us to slow down.
    #[error("{what}: rate-limited{}", retry_after.map(|d| format!(", retry after {} s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// The service or server.
        what: String,
        /// When to try again, when it said.
        retry_after: Option<Duration>,
    },
    /// An answer we could not use.
    #[error("{what}: malformed answer: {problem}")]
    Malformed {
        /// The service and the field, e.g. "AbuseIPDB data.abuseConfidenceScore".
        what: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The service answered with an error.
    #[error("{what}: {message}")]
    Refused {
        /// The service.
        what: String,
        /// Its answer or status, bounded.
        message: String,
    },
}
