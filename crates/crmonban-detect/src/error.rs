//! [`DetectError`]: what can go wrong when building a service's detector or running `explain`.

/// An error of crmonban-detect. Each message names the service or pattern and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The service has neither pack patterns nor user patterns: nothing could match.
    #[error(
        "services.{service}: no service pack for this service and no [[services.{service}.patterns]]: add one whose regex captures the address as (?P<ip>...)"
    )]
    NoPatterns {
        /// The service's configuration name.
        service: String,
    },
    /// A pack pattern does not compile, or a pack has more than 255 patterns.
    #[error("pack pattern {name} cannot be used: {error}")]
    PackPattern {
        /// The pattern's name.
        name: String,
        /// Why it cannot be used.
        error: String,
    },
    /// Reading the input or writing the output of `explain` failed.
    #[error("reading the log: {0}")]
    Io(#[from] std::io::Error),
}
