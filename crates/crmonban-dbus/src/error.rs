//! The D-Bus error names of the contract: crmonban's own (`org.crmonban.Error.*`) and the
//! standard `org.freedesktop.DBus.Error.AccessDenied`, in one enum that the server returns and
//! the client matches.
//!
//! [`Error`] implements [`zbus::DBusError`] by hand rather than with the derive: the derive puts
//! every variant under one prefix (`#[zbus(name)]` only changes the part after it), and its
//! catch-all `#[zbus(error)]` variant always replies `org.freedesktop.zbus.Error`, so neither
//! can produce the standard `AccessDenied` name next to `org.crmonban.Error.*`. The tests below
//! pin every wire name.

use std::fmt;

use zbus::DBusError;
use zbus::message::{Header, Message};
use zbus::names::ErrorName;

use crate::{ACCESS_DENIED, ERROR_PREFIX};

/// A failed call to `org.crmonban.Daemon`.
///
/// Server side: `#[zbus::interface]` methods return `Result<T, Error>`; each variant replies
/// with its D-Bus error name (below) and its string as the message.
///
/// Client side: [`DaemonProxy`](crate::DaemonProxy) methods return `Result<T, Error>`; an
/// `org.crmonban.Error.*` or `AccessDenied` reply comes back as its variant, every other
/// failure (no daemon, no bus, a name this version does not know) as [`Error::ZBus`].
#[derive(Debug, Clone)]
pub enum Error {
    /// `org.crmonban.Error.InvalidAddress`: not an IPv4/IPv6 address or CIDR.
    InvalidAddress(String),
    /// `org.crmonban.Error.Whitelisted`: the target is whitelisted or in a trusted zone.
    Whitelisted(String),
    /// `org.crmonban.Error.Protected`: loopback, link-local or one of the host's own addresses.
    Protected(String),
    /// `org.crmonban.Error.Firewall`: nftables refused the change; nothing was recorded.
    Firewall(String),
    /// `org.crmonban.Error.Database`: the store failed.
    Database(String),
    /// `org.crmonban.Error.NotEnabled`: the feature the call needs is disabled.
    NotEnabled(String),
    /// `org.crmonban.Error.Failed`: anything else.
    Failed(String),
    /// `org.freedesktop.DBus.Error.AccessDenied`: the caller may not call this member (the
    /// bus policy or the daemon's own check said so). Build it with [`Error::access_denied`].
    AccessDenied(String),
    /// Not a crmonban error: another D-Bus error reply or a transport failure. Mostly seen by
    /// clients; a server that returns it replies with the standard D-Bus error it carries, or
    /// with `org.crmonban.Error.Failed` and its description.
    ZBus(zbus::Error),
}

/// Builds a variant from its message.
type Constructor = fn(String) -> Error;

/// `(name suffix, constructor)` of the variants under [`ERROR_PREFIX`].
const CRMONBAN_VARIANTS: &[(&str, Constructor)] = &[
    ("InvalidAddress", Error::InvalidAddress),
    ("Whitelisted", Error::Whitelisted),
    ("Protected", Error::Protected),
    ("Firewall", Error::Firewall),
    ("Database", Error::Database),
    ("NotEnabled", Error::NotEnabled),
    ("Failed", Error::Failed),
];

impl Error {
    /// `org.freedesktop.DBus.Error.AccessDenied` with `message`.
    pub fn access_denied(message: impl Into<String>) -> Error {
        Error::AccessDenied(message.into())
    }

    /// The D-Bus error name (`org.crmonban.Error.Protected`,
    /// `org.freedesktop.DBus.Error.AccessDenied`, `org.freedesktop.DBus.Error.ServiceUnknown`,
    /// ...); `None` for a failure that is not an error reply (I/O, handshake, ...).
    pub fn dbus_name(&self) -> Option<String> {
        match self {
            Error::ZBus(e) => standard_name(e),
            e => Some(e.name().to_string()),
        }
    }

    /// The human-readable message: the reply's text, or the failure's description.
    pub fn message(&self) -> String {
        match self {
            Error::InvalidAddress(m)
            | Error::Whitelisted(m)
            | Error::Protected(m)
            | Error::Firewall(m)
            | Error::Database(m)
            | Error::NotEnabled(m)
            | Error::Failed(m)
            | Error::AccessDenied(m) => m.clone(),
            Error::ZBus(zbus::Error::MethodError(_, desc, _)) => desc.clone().unwrap_or_default(),
            Error::ZBus(zbus::Error::FDO(e)) => match e.as_ref() {
                zbus::fdo::Error::ZBus(inner) => inner.to_string(),
                e => e.description().unwrap_or_default().to_owned(),
            },
            Error::ZBus(zbus::Error::DBus(e)) => e.description().unwrap_or_default().to_owned(),
            Error::ZBus(e) => e.to_string(),
        }
    }

    /// True for `org.freedesktop.DBus.Error.AccessDenied`, whether the bus policy or the
    /// daemon's own check refused the call.
    pub fn is_access_denied(&self) -> bool {
        matches!(self, Error::AccessDenied(_))
    }

    /// True when the daemon could not be reached: the bus is not there or refused the
    /// connection, nobody owns [`BUS_NAME`](crate::BUS_NAME) (and activation did not start it),
    /// or the connection broke during the call. A daemon that is there but does not answer in
    /// time is `org.freedesktop.DBus.Error.NoReply`, which is not counted here.
    pub fn is_unreachable(&self) -> bool {
        use zbus::fdo::Error as Fdo;
        let Error::ZBus(e) = self else {
            return false;
        };
        match e {
            zbus::Error::InputOutput(_)
            | zbus::Error::Connection(..)
            | zbus::Error::Address(_)
            | zbus::Error::Handshake(_) => true,
            zbus::Error::FDO(e) => matches!(
                e.as_ref(),
                Fdo::ServiceUnknown(_)
                    | Fdo::NameHasNoOwner(_)
                    | Fdo::NoServer(_)
                    | Fdo::Disconnected(_)
                    | Fdo::SpawnChildExited(_)
                    | Fdo::SpawnChildSignaled(_)
                    | Fdo::SpawnExecFailed(_)
                    | Fdo::SpawnFailed(_)
                    | Fdo::SpawnServiceNotFound(_)
                    | Fdo::SpawnServiceNotValid(_)
                    | Fdo::SpawnNoMemory(_)
                    | Fdo::SpawnConfigInvalid(_)
                    | Fdo::SpawnPermissionsInvalid(_)
                    | Fdo::SpawnFileInvalid(_)
                    | Fdo::SpawnFailedToSetup(_)
                    | Fdo::SpawnForkFailed(_)
                    | Fdo::ZBus(zbus::Error::InputOutput(_))
            ),
            // systemd bus activation failures (the unit is missing or failed to start).
            zbus::Error::MethodError(name, _, _) => {
                name.as_str().starts_with("org.freedesktop.systemd1.")
            }
            _ => false,
        }
    }
}

/// The D-Bus error name a zbus error carries, if it is an error reply.
fn standard_name(e: &zbus::Error) -> Option<String> {
    match e {
        zbus::Error::MethodError(name, _, _) => Some(name.to_string()),
        zbus::Error::FDO(e) => match e.as_ref() {
            zbus::fdo::Error::ZBus(_) => None,
            e => Some(e.name().to_string()),
        },
        zbus::Error::DBus(e) => Some(e.name().to_string()),
        _ => None,
    }
}

const fn crmonban_name(name: &'static str) -> ErrorName<'static> {
    ErrorName::from_static_str_unchecked(name)
}

impl DBusError for Error {
    fn create_reply(&self, call: &Header<'_>) -> zbus::Result<Message> {
        Message::error(call, self.name()).build(&(self.message(),))
    }

    fn name(&self) -> ErrorName<'_> {
        match self {
            Error::InvalidAddress(_) => crmonban_name("org.crmonban.Error.InvalidAddress"),
            Error::Whitelisted(_) => crmonban_name("org.crmonban.Error.Whitelisted"),
            Error::Protected(_) => crmonban_name("org.crmonban.Error.Protected"),
            Error::Firewall(_) => crmonban_name("org.crmonban.Error.Firewall"),
            Error::Database(_) => crmonban_name("org.crmonban.Error.Database"),
            Error::NotEnabled(_) => crmonban_name("org.crmonban.Error.NotEnabled"),
            Error::Failed(_) => crmonban_name("org.crmonban.Error.Failed"),
            Error::AccessDenied(_) => crmonban_name(ACCESS_DENIED),
            Error::ZBus(e) => match e {
                zbus::Error::MethodError(name, _, _) => name.as_ref(),
                zbus::Error::FDO(e) if !matches!(e.as_ref(), zbus::fdo::Error::ZBus(_)) => e.name(),
                zbus::Error::DBus(e) => e.name(),
                _ => crmonban_name("org.crmonban.Error.Failed"),
            },
        }
    }

    fn description(&self) -> Option<&str> {
        match self {
            Error::InvalidAddress(m)
            | Error::Whitelisted(m)
            | Error::Protected(m)
            | Error::Firewall(m)
            | Error::Database(m)
            | Error::NotEnabled(m)
            | Error::Failed(m)
            | Error::AccessDenied(m) => Some(m),
            Error::ZBus(zbus::Error::MethodError(_, desc, _)) => desc.as_deref(),
            Error::ZBus(zbus::Error::FDO(e)) => e.description(),
            Error::ZBus(zbus::Error::DBus(e)) => e.description(),
            // Not an error reply: `create_reply` sends `message()`, the full description.
            Error::ZBus(_) => None,
        }
    }
}

impl fmt::Display for Error {
    /// `org.crmonban.Error.Protected: 127.0.0.1 is a loopback address`; a failure that is not
    /// an error reply shows its description alone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.dbus_name() {
            Some(name) => write!(f, "{name}: {}", self.message()),
            None => f.write_str(&self.message()),
        }
    }
}

impl std::error::Error for Error {}

impl From<zbus::Error> for Error {
    /// Turns an error reply named `org.crmonban.Error.X` into `Error::X` and
    /// `org.freedesktop.DBus.Error.AccessDenied` into [`Error::AccessDenied`]; keeps anything
    /// else (an unknown `org.crmonban.Error.*` name from a newer daemon included) as
    /// [`Error::ZBus`].
    fn from(e: zbus::Error) -> Error {
        if let zbus::Error::FDO(fdo) = &e
            && let zbus::fdo::Error::AccessDenied(message) = fdo.as_ref()
        {
            return Error::AccessDenied(message.clone());
        }
        if let zbus::Error::MethodError(name, desc, _) = &e
            && let Some(suffix) = name
                .as_str()
                .strip_prefix(ERROR_PREFIX)
                .and_then(|rest| rest.strip_prefix('.'))
            && let Some((_, variant)) = CRMONBAN_VARIANTS.iter().find(|(s, _)| *s == suffix)
        {
            return variant(desc.clone().unwrap_or_default());
        }
        Error::ZBus(e)
    }
}

impl From<zbus::fdo::Error> for Error {
    fn from(e: zbus::fdo::Error) -> Error {
        Error::from(zbus::Error::FDO(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names() {
        let cases = [
            (
                Error::InvalidAddress(String::new()),
                "org.crmonban.Error.InvalidAddress",
            ),
            (
                Error::Whitelisted(String::new()),
                "org.crmonban.Error.Whitelisted",
            ),
            (
                Error::Protected(String::new()),
                "org.crmonban.Error.Protected",
            ),
            (
                Error::Firewall(String::new()),
                "org.crmonban.Error.Firewall",
            ),
            (
                Error::Database(String::new()),
                "org.crmonban.Error.Database",
            ),
            (
                Error::NotEnabled(String::new()),
                "org.crmonban.Error.NotEnabled",
            ),
            (Error::Failed(String::new()), "org.crmonban.Error.Failed"),
            (
                Error::access_denied("x"),
                "org.freedesktop.DBus.Error.AccessDenied",
            ),
            (
                Error::ZBus(zbus::Error::Failure("boom".into())),
                "org.crmonban.Error.Failed",
            ),
            (
                zbus::fdo::Error::InvalidArgs("x".into()).into(),
                "org.freedesktop.DBus.Error.InvalidArgs",
            ),
        ];
        for (error, name) in &cases {
            assert_eq!(error.name().as_str(), *name);
        }
        // Every crmonban variant round-trips through its name.
        for (suffix, variant) in CRMONBAN_VARIANTS {
            assert_eq!(
                variant("m".into()).name().as_str(),
                format!("{ERROR_PREFIX}.{suffix}")
            );
        }
    }

    #[test]
    fn display_names_the_error() {
        let e = Error::Protected("127.0.0.1 is a loopback address".into());
        assert_eq!(
            e.to_string(),
            "org.crmonban.Error.Protected: 127.0.0.1 is a loopback address"
        );
    }

    #[test]
    fn client_side_classification() {
        let denied: Error = zbus::fdo::Error::AccessDenied("no".into()).into();
        assert!(denied.is_access_denied());
        assert!(!denied.is_unreachable());
        assert_eq!(
            denied.dbus_name().as_deref(),
            Some("org.freedesktop.DBus.Error.AccessDenied")
        );
        assert_eq!(denied.message(), "no");
        let unknown: Error = zbus::fdo::Error::ServiceUnknown("gone".into()).into();
        assert!(unknown.is_unreachable());
        assert_eq!(
            unknown.dbus_name().as_deref(),
            Some("org.freedesktop.DBus.Error.ServiceUnknown")
        );
    }
}
