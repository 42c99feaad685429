//! Which bus to talk on, and connecting to it.

use std::fmt;

use zbus::Connection;

/// The bus a client (or the daemon) connects to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusChoice {
    /// The system bus: `DBUS_SYSTEM_BUS_ADDRESS` when set, else
    /// `unix:path=/var/run/dbus/system_bus_socket`.
    System,
    /// The session bus (`DBUS_SESSION_BUS_ADDRESS`).
    Session,
    /// A bus at an explicit D-Bus address (`unix:path=/run/x/bus`).
    Address(String),
}

impl fmt::Display for BusChoice {
    /// "the system bus", "the session bus", "the bus at unix:path=..." — for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusChoice::System => f.write_str("the system bus"),
            BusChoice::Session => f.write_str("the session bus"),
            BusChoice::Address(a) => write!(f, "the bus at {a}"),
        }
    }
}

/// Connects to `target` (authenticates and says Hello; requests no name).
pub async fn connect(target: BusChoice) -> zbus::Result<Connection> {
    match target {
        BusChoice::System => Connection::system().await,
        BusChoice::Session => Connection::session().await,
        BusChoice::Address(address) => {
            zbus::connection::Builder::address(address.as_str())
                .build()
                .await
        }
    }
}
