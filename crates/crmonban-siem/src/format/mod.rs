//! The four formats, each in its own module with its own escaping, and [`render`]: one event
//! as the text one target receives.
//!
//! Every encoder returns one line without its line ending and without any raw control
//! character (LEEF's declared tab delimiter excepted), so a file target appends `\n` and a
//! stream transport frames it, whatever the event's text holds.

pub mod cef;
pub mod json;
pub mod leef;
pub mod rfc5424;

pub use crmonban_core::config::SiemFormat;

use crate::{Origin, SiemEvent};

/// How the text is wrapped for its transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrap {
    /// As the format writes it (files, webhooks).
    Bare,
    /// Inside an RFC 5424 message with this facility (0..=23): for syslog transports. The
    /// `syslog` format is an RFC 5424 message already (with this facility); CEF, LEEF and JSON
    /// become its MSG, with a NILVALUE structured data (JSON in ASCII, non-ASCII escaped).
    Syslog {
        /// RFC 5424 facility code (4 = auth, 10 = authpriv, 16..=23 = local0..7).
        facility: u8,
    },
    /// In the local form syslog(3) writes to `/dev/log` (`<PRI>crmonband[PID]: MSG`, see
    /// [`rfc5424::local`]), for a local daemon that does not read RFC 5424 (systemd-journald).
    /// The `syslog` format's MSG is then its structured data and sentence.
    Local {
        /// RFC 5424 facility code.
        facility: u8,
    },
}

/// `event` in `format`, wrapped as `wrap` says; one line, no line ending.
pub fn render(format: SiemFormat, event: &SiemEvent, origin: &Origin, wrap: Wrap) -> String {
    match (wrap, format) {
        (Wrap::Syslog { facility }, SiemFormat::Syslog) => rfc5424::encode(event, origin, facility),
        (Wrap::Local { facility }, SiemFormat::Syslog) => rfc5424::local(
            event,
            origin,
            facility,
            &rfc5424::structured_text(event, origin),
        ),
        (Wrap::Bare, _) => line(format, event, origin),
        (Wrap::Syslog { facility }, SiemFormat::Json) => {
            let body = json::encode(event, origin);
            rfc5424::wrap(event, origin, facility, &json::to_ascii(&body))
        }
        (Wrap::Syslog { facility }, _) => {
            rfc5424::wrap(event, origin, facility, &line(format, event, origin))
        }
        (Wrap::Local { facility }, _) => {
            rfc5424::local(event, origin, facility, &line(format, event, origin))
        }
    }
}

/// `event` as `format` writes it alone (the `syslog` format with the default facility).
fn line(format: SiemFormat, event: &SiemEvent, origin: &Origin) -> String {
    match format {
        SiemFormat::Syslog => rfc5424::encode(event, origin, rfc5424::DEFAULT_FACILITY),
        SiemFormat::Cef => cef::encode(event, origin),
        SiemFormat::Leef => leef::encode(event, origin),
        SiemFormat::Json => json::encode(event, origin),
    }
}
