//! IBM QRadar Log Event Extended Format (LEEF) 2.0, as IBM's "LEEF event components" and
//! "Predefined LEEF event attributes" define it:
//!
//! ```text
//! LEEF:2.0|crmonban|crmonban|<version>|<Action::id>|x09|<key=value><TAB><key=value>...
//! ```
//!
//! The sixth header field declares the attribute delimiter; `x09` is its hex form ("x"
//! followed by 1-4 hex digits) for the tab, LEEF 1.0's delimiter, which QRadar's own custom
//! property expressions (`key=([^\t]+)`) assume.
//!
//! # Attributes
//!
//! Predefined keys where one fits, custom keys (single words, none a predefined name) for the
//! rest; each is written only when the event has the value, at most once, in this order:
//!
//! | key | predefined? | value |
//! |---|---|---|
//! | `devTime` | yes | event time, `Nov 25 2026 16:19:59.123 GMT` |
//! | `devTimeFormat` | yes | `MMM dd yyyy HH:mm:ss.SSS z`, a pattern of QRadar's date format table |
//! | `cat` | yes | [`Action::id`] (also the header's EventID) |
//! | `sev` | yes | [`Action::severity`] clamped to LEEF's 1-10 (ours are 1, 3, 5, 7) |
//! | `src` | yes | the target, when it is one address (IPv4 or IPv6) |
//! | `dstPort` | yes | the service's port |
//! | `target` | custom | the target as written, address or CIDR network |
//! | `service` | custom | the service (`ssh`, `nginx`, ...) |
//! | `attackKind` | custom | the attack's kind |
//! | `source` | custom | who asked for the ban or removal |
//! | `reason` | custom | the reason or whitelist comment |
//! | `duration` | custom | the ban's length, seconds |
//! | `expiresAt` | custom | the ban's end, RFC 3339 UTC in whole seconds |
//! | `permanent` | custom | `true` or `false`, ban added only |
//! | `offence` | custom | 1 for the target's first ban, 2 for its second, ... |
//! | `count` | custom | occurrences the event stands for (always written) |
//! | `intel` | custom | the address's intel summary |
//! | `devHost` | custom | this host ([`Origin::hostname`]) |
//!
//! # Escaping
//!
//! The LEEF guide defines no escape sequence at all: a value runs from the `=` after its key
//! to the next delimiter, so `=`, `\` and `|` inside a value are plain text (QRadar reads the
//! header by position). Its best practices ask to keep the delimiters out of keys and values.
//! So a character that would end a value or the line has no raw form here: tab, CR, LF and
//! every other control character (Unicode Cc) in a value become `#` and their three-digit
//! octal code (`#011` for tab), the visible form RFC 5424 and rsyslog use, which QRadar shows
//! as text. In the header, `|` becomes `#174` as well. Lossy by design, and no backslash
//! escapes that QRadar would show doubled. Free text is cut with [`crate::clip`] first;
//! empty text is left out.

use crmonban_core::Target;

use super::rfc5424::{bool_text, present, push_visible, time};
use crate::{Action, Origin, SiemEvent, clip};

/// The Vendor and Product header fields.
const PRODUCT: &str = "crmonban";

/// The attribute delimiter, and how the header declares it.
const DELIMITER: char = '\t';
const DELIMITER_DECLARED: &str = "x09";

/// `event` as one LEEF 2.0 line, no line ending; attributes separated by tabs.
pub fn encode(event: &SiemEvent, origin: &Origin) -> String {
    let mut out = String::with_capacity(384);
    out.push_str("LEEF:2.0|");
    for field in [PRODUCT, PRODUCT, origin.version.as_str(), event.action.id()] {
        for c in field.chars() {
            if c == '|' || c.is_control() {
                push_visible(&mut out, c);
            } else {
                out.push(c);
            }
        }
        out.push('|');
    }
    out.push_str(DELIMITER_DECLARED);
    out.push('|');
    push_attributes(
        &mut Attributes {
            out: &mut out,
            first: true,
        },
        event,
        origin,
    );
    out
}

fn push_attributes(attrs: &mut Attributes<'_>, event: &SiemEvent, origin: &Origin) {
    if let Some(dev_time) = time::leef_dev_time(event.at_micros) {
        attrs.pair("devTime", &dev_time);
        attrs.pair("devTimeFormat", time::LEEF_DEV_TIME_FORMAT);
    }
    attrs.pair("cat", event.action.id());
    attrs.pair("sev", &event.action.severity().clamp(1, 10).to_string());
    if let Some(Target::Addr(ip)) = event.target {
        attrs.pair("src", &ip.to_string());
    }
    if let Some(port) = event.port {
        attrs.pair("dstPort", &port.to_string());
    }
    if let Some(target) = event.target {
        attrs.pair("target", &target.to_string());
    }
    if let Some(service) = present(&event.service) {
        attrs.pair("service", &service);
    }
    if let Some(kind) = present(&event.attack_kind) {
        attrs.pair("attackKind", &kind);
    }
    if let Some(source) = present(&event.source) {
        attrs.pair("source", &source);
    }
    if !event.reason.is_empty() {
        attrs.pair("reason", &clip(&event.reason));
    }
    if let Some(secs) = event.duration_secs {
        attrs.pair("duration", &secs.to_string());
    }
    if let Some(end) = event.expires_at.and_then(time::rfc3339_secs) {
        attrs.pair("expiresAt", &end);
    }
    if event.action == Action::BanAdded {
        attrs.pair("permanent", bool_text(event.is_permanent_ban()));
    }
    if let Some(offence) = event.offence {
        attrs.pair("offence", &offence.to_string());
    }
    attrs.pair("count", &event.count.to_string());
    if let Some(intel) = present(&event.intel) {
        attrs.pair("intel", &intel);
    }
    attrs.pair("devHost", &origin.hostname);
}

/// Writes `key=value` attributes separated by the delimiter.
struct Attributes<'a> {
    out: &'a mut String,
    first: bool,
}

impl Attributes<'_> {
    fn pair(&mut self, key: &str, value: &str) {
        if !self.first {
            self.out.push(DELIMITER);
        }
        self.first = false;
        self.out.push_str(key);
        self.out.push('=');
        for c in value.chars() {
            if c.is_control() {
                push_visible(self.out, c);
            } else {
                self.out.push(c);
            }
        }
    }
}

#[cfg(test)]
#[path = "leef_tests.rs"]
mod tests;
