//! RFC 5424 syslog messages: the `syslog` format ([`encode`]: the event as structured data
//! plus a human sentence) and the envelope the syslog transports put around CEF, LEEF and JSON
//! ([`wrap`]). Also owns the rules every encoder shares: which text is written (present and
//! clipped), the visible form of control characters (below) and the human sentence.
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [SP MSG]
//! <12>1 2026-11-25T16:19:59.123456Z web1 crmonband 4242 ban-added [crmonban@32473 action="ban-added" target="203.0.113.5" ...] banned 203.0.113.5 for 600 s (ssh): 5 failures
//! ```
//!
//! | part | value |
//! |---|---|
//! | PRI | facility × 8 + [`Action::syslog_severity`] (ban added 4 warning, attack detected 5 notice, the rest 6 informational); a facility above 23 is replaced by [`DEFAULT_FACILITY`] |
//! | VERSION | `1` |
//! | TIMESTAMP | `at_micros` as RFC 3339 UTC with six fraction digits and `Z`; `-` outside years 0000-9999 |
//! | HOSTNAME | [`Origin::hostname`], at most 255 printable US-ASCII characters (others become `_`), `-` when empty |
//! | APP-NAME | [`Origin::app_name`], at most 48, same rule |
//! | PROCID | [`Origin::procid`] in decimal |
//! | MSGID | [`Action::id`] (at most 17 characters; the limit is 32) |
//! | STRUCTURED-DATA | one element `[crmonban@32473 ...]` ([`encode`]); `-` in [`wrap`] |
//! | MSG | [`encode`]: the human sentence, e.g. `banned 203.0.113.5 for 600 s (ssh): <reason>`; [`wrap`]: the CEF, LEEF or JSON line |
//!
//! The SD-ID `crmonban@32473` has the private form `name@<enterprise number>` (RFC 5424
//! §6.3.2). 32473 is the enterprise number RFC 5612 reserves for documentation and examples:
//! crmonban has no registered number of its own, and a collector matches the SD-ID as a
//! string. Its parameters, each present only when the event has the value:
//!
//! | PARAM-NAME | value |
//! |---|---|
//! | `action` | [`Action::id`] |
//! | `target` | the address or CIDR network as crmonban writes it (`203.0.113.5`, `2001:db8::/64`) |
//! | `ip` | the address, for a single-address target (IPv4 or IPv6) |
//! | `service` | the service (`ssh`, `nginx`, ...) |
//! | `port` | the service's port |
//! | `kind` | the attack's kind (`failed_auth`, ...) |
//! | `source` | who asked for the ban or removal (`detector`, `dbus`, `fleet:web1`) |
//! | `reason` | the reason or whitelist comment |
//! | `duration` | the ban's length, seconds |
//! | `expires` | the ban's end, RFC 3339 UTC in whole seconds |
//! | `permanent` | `true` or `false`, ban added only |
//! | `offence` | 1 for the target's first ban, 2 for its second, ... |
//! | `count` | occurrences the event stands for (always present) |
//! | `intel` | the address's intel summary |
//!
//! # Escaping
//!
//! - PARAM-VALUE: `"`, `\` and `]` are written `\"`, `\\` and `\]` (RFC 5424 §6.3.3).
//! - Control characters (Unicode Cc: U+0000-U+001F, U+007F-U+009F) never appear raw in a
//!   value or in MSG: each becomes `#` and its three-digit octal code (`#012` for LF, `#011`
//!   for tab, `#205` for NEL), the form RFC 5424 §6.3.3 and §6.4 give as an example of what
//!   a syslog application may do, and the one rsyslog writes. This is lossy by design: the
//!   text `#012` and a line feed look the same afterwards; what matters is that no value can
//!   start a line or a field of its own. [`wrap`] keeps the tabs of a LEEF body (its declared
//!   delimiter) and applies the rule to any other control character.
//! - Free text is cut with [`crate::clip`] before escaping; empty text is left out.
//! - The human MSG of [`encode`] starts with the UTF-8 BOM (EF BB BF, RFC 5424 §6.4
//!   MSG-UTF8) only when it holds a non-ASCII character; pure ASCII is sent as MSG-ANY
//!   without BOM, which every receiver reads the same, BOM-aware or not.
//! - [`wrap`]'s body is MSG-ANY, never behind a BOM: CEF and LEEF define their own encoding
//!   (UTF-8) and their receivers recognise them by the `CEF:`/`LEEF:` that starts MSG, which a
//!   BOM would hide (rsyslog, for one, keeps the BOM in the message); JSON is written
//!   ASCII-only for syslog ([`super::json::to_ascii`]), so a JSON parser reading MSG (rsyslog's
//!   `mmjsonparse`) gets exactly the object.

use std::borrow::Cow;
use std::fmt::Write as _;

use crmonban_core::Target;

use crate::{Action, Origin, SiemEvent, clip};

// The calendar helpers every encoder uses. Declared here rather than in `format/mod.rs`, which
// is the formats' public contract.
#[path = "time.rs"]
pub(super) mod time;

/// The facility used when none is configured: 4, security/authorization messages (`auth`).
pub const DEFAULT_FACILITY: u8 = 4;

/// The SD-ID of crmonban's structured data element (see the module docs).
pub const SD_ID: &str = "crmonban@32473";

/// The byte order mark that starts a MSG holding non-ASCII text (RFC 5424 §6.4).
const BOM: char = '\u{FEFF}';

/// `event` as a complete RFC 5424 message: header, one `crmonban@32473` structured data
/// element and the human sentence as MSG. One line, no line ending.
pub fn encode(event: &SiemEvent, origin: &Origin, facility: u8) -> String {
    let mut out = header(event, origin, facility);
    out.push(' ');
    push_structured_data(&mut out, event);
    push_msg(&mut out, &sentence(event, origin), false, true);
    out
}

/// An RFC 5424 message whose MSG is `body` (a CEF, LEEF or JSON line) with NILVALUE structured
/// data: the envelope syslog transports need around the other formats.
pub fn wrap(event: &SiemEvent, origin: &Origin, facility: u8, body: &str) -> String {
    let mut out = header(event, origin, facility);
    out.push_str(" -");
    push_msg(&mut out, body, true, false);
    out
}

/// The local form of a message, as syslog(3) writes it to `/dev/log`: `<PRI>APP-NAME[PROCID]:
/// MSG`, without a timestamp or host (the local daemon adds both; systemd-journald, which
/// does not parse RFC 5424, reads this). `body` is the CEF, LEEF or JSON line, or for the
/// `syslog` format [`structured_text`]; control characters other than tabs are made
/// visible, and no BOM is written.
pub fn local(event: &SiemEvent, origin: &Origin, facility: u8, body: &str) -> String {
    let mut out = format!(
        "<{}>{}[{}]:",
        prival(event, facility),
        header_token(&origin.app_name, 48),
        origin.procid
    );
    push_msg(&mut out, body, true, false);
    out
}

/// What follows the header in [`encode`]: the structured data element and the sentence
/// (without BOM), for a transport that has no RFC 5424 header ([`local`]).
pub fn structured_text(event: &SiemEvent, origin: &Origin) -> String {
    let mut out = String::new();
    push_structured_data(&mut out, event);
    push_msg(&mut out, &sentence(event, origin), false, false);
    out
}

/// PRI's value: facility × 8 + the action's severity; a facility above 23 is
/// [`DEFAULT_FACILITY`].
fn prival(event: &SiemEvent, facility: u8) -> u16 {
    let facility = if facility > 23 {
        DEFAULT_FACILITY
    } else {
        facility
    };
    u16::from(facility) * 8 + u16::from(event.action.syslog_severity())
}

/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID`.
fn header(event: &SiemEvent, origin: &Origin, facility: u8) -> String {
    let prival = prival(event, facility);
    let timestamp = time::rfc3339_micros(event.at_micros).unwrap_or_else(|| "-".to_owned());
    format!(
        "<{prival}>1 {timestamp} {} {} {} {}",
        header_token(&origin.hostname, 255),
        header_token(&origin.app_name, 48),
        origin.procid,
        header_token(event.action.id(), 32),
    )
}

/// `text` as a header field: printable US-ASCII only (anything else becomes `_`), at most
/// `max` characters, NILVALUE when empty.
fn header_token(text: &str, max: usize) -> Cow<'_, str> {
    if text.is_empty() {
        return Cow::Borrowed("-");
    }
    if text.len() <= max && text.bytes().all(|b| b.is_ascii_graphic()) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .take(max)
            .map(|c| if c.is_ascii_graphic() { c } else { '_' })
            .collect(),
    )
}

/// `[crmonban@32473 action="..." ...]`: every value the event has, escaped.
fn push_structured_data(out: &mut String, event: &SiemEvent) {
    out.push('[');
    out.push_str(SD_ID);
    let mut param = |name: &str, value: &str| {
        out.push(' ');
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '"' | '\\' | ']' => {
                    out.push('\\');
                    out.push(c);
                }
                c if c.is_control() => push_visible(out, c),
                c => out.push(c),
            }
        }
        out.push('"');
    };
    param("action", event.action.id());
    if let Some(target) = event.target {
        param("target", &target.to_string());
        if let Target::Addr(ip) = target {
            param("ip", &ip.to_string());
        }
    }
    if let Some(service) = present(&event.service) {
        param("service", &service);
    }
    if let Some(port) = event.port {
        param("port", &port.to_string());
    }
    if let Some(kind) = present(&event.attack_kind) {
        param("kind", &kind);
    }
    if let Some(source) = present(&event.source) {
        param("source", &source);
    }
    if !event.reason.is_empty() {
        param("reason", &clip(&event.reason));
    }
    if let Some(duration) = event.duration_secs {
        param("duration", &duration.to_string());
    }
    if let Some(expires) = event.expires_at.and_then(time::rfc3339_secs) {
        param("expires", &expires);
    }
    if event.action == Action::BanAdded {
        param("permanent", bool_text(event.is_permanent_ban()));
    }
    if let Some(offence) = event.offence {
        param("offence", &offence.to_string());
    }
    param("count", &event.count.to_string());
    if let Some(intel) = present(&event.intel) {
        param("intel", &intel);
    }
    out.push(']');
}

/// ` MSG`: `text` with control characters made visible (tabs kept when `keep_tabs`), after the
/// BOM when `bom_if_utf8` and what is written holds non-ASCII text. Nothing when `text` is
/// empty.
fn push_msg(out: &mut String, text: &str, keep_tabs: bool, bom_if_utf8: bool) {
    if text.is_empty() {
        return;
    }
    let mut msg = String::with_capacity(text.len() + 3);
    for c in text.chars() {
        if c.is_control() && !(keep_tabs && c == '\t') {
            push_visible(&mut msg, c);
        } else {
            msg.push(c);
        }
    }
    out.push(' ');
    // A C1 control is non-ASCII but written as ASCII, so decide on what is written.
    if bom_if_utf8 && !msg.is_ascii() {
        out.push(BOM);
    }
    out.push_str(&msg);
}

/// Appends `c` as `#` and its code in three octal digits (`#012` for a line feed): the visible
/// form every encoder gives a character its format cannot carry raw.
pub(super) fn push_visible(out: &mut String, c: char) {
    // Writing into a String cannot fail.
    let _ = write!(out, "#{:03o}", u32::from(c));
}

/// `text` when it is there and not empty, cut with [`clip`].
pub(super) fn present(text: &Option<String>) -> Option<Cow<'_, str>> {
    text.as_deref().filter(|t| !t.is_empty()).map(clip)
}

/// `"true"` or `"false"`.
pub(super) fn bool_text(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// The human sentence for `event` (syslog MSG, ECS `message`), free text clipped but not
/// escaped: `banned 203.0.113.5 for 600 s (ssh): 5 failed logins`.
pub(super) fn sentence(event: &SiemEvent, origin: &Origin) -> String {
    let target = event
        .target
        .map_or_else(|| "-".to_owned(), |t| t.to_string());
    let mut text = match event.action {
        Action::BanAdded => match (event.duration_secs, event.expires_at) {
            (Some(secs), _) => format!("banned {target} for {secs} s"),
            (None, Some(end)) => match time::rfc3339_secs(end) {
                Some(end) => format!("banned {target} until {end}"),
                None => format!("banned {target}"),
            },
            (None, None) => format!("banned {target} permanently"),
        },
        Action::BanRemoved => format!("unbanned {target}"),
        Action::AttackDetected => {
            let kind = present(&event.attack_kind).unwrap_or(Cow::Borrowed("attack"));
            format!("detected {kind} from {target}")
        }
        Action::WhitelistAdded => format!("whitelisted {target}"),
        Action::WhitelistRemoved => format!("removed {target} from the whitelist"),
        Action::DaemonStarted => format!("{} started", origin.app_name),
        Action::DaemonStopping => format!("{} stopping", origin.app_name),
    };
    if event.count > 1 {
        let _ = write!(text, " ({} times)", event.count);
    }
    if let Some(service) = present(&event.service) {
        let _ = write!(text, " ({service})");
    }
    if !event.reason.is_empty() {
        text.push_str(": ");
        text.push_str(&clip(&event.reason));
    }
    text
}

#[cfg(test)]
#[path = "rfc5424_tests.rs"]
mod tests;
