//! [`DetectError`]: what can go wrong when building a service's detector or running `explain`.

/// An error of crmonban-detect. Each message names the service or pattern and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(
        "services.{service}: no service pack for this service and no [[services.{service}.patterns]]: add one whose regex captures the address as (?P<ip>...)"
    )]
    NoPatterns { service: String },
    #[error("pack pattern {name} cannot be used: {error}")]
    PackPattern { name: String, error: String },
    #[error("reading the log: {0}")]
    Io(#[from] std::io::Error),
}
