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
}

/// `event` in `format`, wrapped as `wrap` says; one line, no line ending.
pub fn render(format: SiemFormat, event: &SiemEvent, origin: &Origin, wrap: Wrap) -> String {
    let facility = match wrap {
        Wrap::Bare => rfc5424::DEFAULT_FACILITY,
        Wrap::Syslog { facility } => facility,
    };
    let body = match format {
        SiemFormat::Syslog => return rfc5424::encode(event, origin, facility),
        SiemFormat::Cef => cef::encode(event, origin),
        SiemFormat::Leef => leef::encode(event, origin),
        SiemFormat::Json => json::encode(event, origin),
    };
    match wrap {
        Wrap::Bare => body,
        Wrap::Syslog { facility } if format == SiemFormat::Json => {
            rfc5424::wrap(event, origin, facility, &json::to_ascii(&body))
        }
        Wrap::Syslog { facility } => rfc5424::wrap(event, origin, facility, &body),
    }
}
