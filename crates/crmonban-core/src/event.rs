//! What detectors report: an [`Event`] says that `addr` did something of [`EventKind`] to a
//! [`Service`] at a time taken from the log line itself.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

/// A protected service by its config name (`ssh`, `nginx`, or a user's own). Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Service(Arc<str>);

impl Service {
    /// The service called `name`; nothing is checked against the configuration.
    pub fn new(name: &str) -> Service {
        Service(Arc::from(name))
    }
    /// The service's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of hostile act a log line describes; the config's `event_type`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A wrong password or key for an existing account.
    FailedAuth,
    /// A login attempt for an account that does not exist.
    InvalidUser,
    /// A request refused by a rate limiter (nginx limit_req, ...).
    RateLimited,
    /// A connection dropped before authenticating, a protocol probe or scan.
    Probe,
    /// A user-defined kind from `[[services.NAME.patterns]] event_type`.
    Other(Arc<str>),
}

impl EventKind {
    /// The name the configuration and the store use (`"failed_auth"`, ...; a user-defined
    /// kind's own name). [`str::parse`] gives the kind back.
    pub fn as_str(&self) -> &str {
        match self {
            EventKind::FailedAuth => "failed_auth",
            EventKind::InvalidUser => "invalid_user",
            EventKind::RateLimited => "rate_limited",
            EventKind::Probe => "probe",
            EventKind::Other(name) => name,
        }
    }
}

impl FromStr for EventKind {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "failed_auth" => EventKind::FailedAuth,
            "invalid_user" => EventKind::InvalidUser,
            "rate_limited" => EventKind::RateLimited,
            "probe" => EventKind::Probe,
            other => EventKind::Other(Arc::from(other)),
        })
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One hostile act seen in a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The address the line blames (the matcher gives an IPv4-mapped IPv6 address as IPv4).
    pub addr: IpAddr,
    /// The service whose log the line came from.
    pub service: Service,
    /// What the line says the address did.
    pub kind: EventKind,
    /// Unix seconds from the log line's own timestamp; `None` when the line had none.
    pub time: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_text() {
        for s in [
            "failed_auth",
            "invalid_user",
            "rate_limited",
            "probe",
            "sasl_failure",
        ] {
            assert_eq!(s.parse::<EventKind>().unwrap().to_string(), s);
        }
        assert_eq!(Service::new("ssh").to_string(), "ssh");
    }
}
