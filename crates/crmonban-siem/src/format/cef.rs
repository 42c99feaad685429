//! ArcSight Common Event Format (CEF), version 0, as the OpenText (Micro Focus) "CEF
//! Implementation Standard" defines it:
//!
//! ```text
//! CEF:0|crmonban|crmonban|<version>|<Action::id>|<Action::name>|<Action::severity>|<extension>
//! CEF:0|crmonban|crmonban|0.1.0|ban-added|Ban added|7|rt=1795623599123 act=ban src=203.0.113.5 ...
//! ```
//!
//! # Extension keys
//!
//! Keys come from the ArcSight Extension Dictionary; each is written only when the event has
//! the value, in this order (`cnt` last: the standard drops trailing spaces of the final
//! value, and a number has none).
//!
//! | key | dictionary name | value |
//! |---|---|---|
//! | `rt` | deviceReceiptTime | event time, unix milliseconds |
//! | `act` | deviceAction | `ban`, `unban`, `detect`, `whitelist-add`, `whitelist-remove`, `start`, `stop` |
//! | `src` | sourceAddress | the target, when it is one IPv4 address |
//! | `c6a2`, `c6a2Label=Source IPv6 Address` | deviceCustomIPv6Address2 | the target, when it is one IPv6 address: the standard types `src` as IPv4 and names `c6a2` for a source IPv6 address ("Special Mappings: IPv6 Format") |
//! | `dpt` | destinationPort | the service's port |
//! | `destinationServiceName` | destinationServiceName | the service (`ssh`, `nginx`): "the service targeted by this event", rather than `app` (applicationProtocol, 31 characters: `HTTPS`, `SSHv2`) |
//! | `reason` | reason | the ban's reason, why it ended, the whitelist comment |
//! | `cs1`, `cs1Label=Ban Source` | deviceCustomString1 | who asked for the ban or removal (`detector`, `dbus`, `fleet:web1`) |
//! | `cs2`, `cs2Label=Attack Kind` | deviceCustomString2 | the attack's kind (`failed_auth`, ...) |
//! | `cs3`, `cs3Label=Intel` | deviceCustomString3 | the address's intel summary |
//! | `cs4`, `cs4Label=Target` | deviceCustomString4 | the target as written, address or CIDR network (a network has no `src`/`c6a2`) |
//! | `cs5`, `cs5Label=Ban Type` | deviceCustomString5 | `permanent` or `timed`, ban added only |
//! | `cn1`, `cn1Label=Ban Duration Seconds` | deviceCustomNumber1 | the ban's length in seconds |
//! | `cn2`, `cn2Label=Offence` | deviceCustomNumber2 | 1 for the target's first ban, 2 for its second, ... |
//! | `end` | endTime | when the ban ends, unix milliseconds |
//! | `dvchost` | deviceHostName | this host ([`Origin::hostname`]) |
//! | `dvcpid` | deviceProcessId | the daemon's process id |
//! | `deviceProcessName` | deviceProcessName | the program ([`Origin::app_name`], `crmonband`) |
//! | `cnt` | baseEventCount | occurrences the event stands for (always written) |
//!
//! # Escaping
//!
//! - Header fields: `\` → `\\`, `|` → `\|` (the standard's rule for header values).
//! - Extension values: `\` → `\\`, `=` → `\=`, CR → `\r`, LF → `\n` (the standard's four
//!   escapes); a `|` needs none there.
//! - Any other control character (Unicode Cc, tab included; in the header CR and LF too,
//!   where the standard allows no line breaks) has no CEF escape: it is written as `#` and
//!   its three-digit octal code (`#011` for tab), the visible form RFC 5424 and rsyslog use,
//!   which keeps the line valid CEF without a lone backslash. Lossy by design.
//! - Free text is cut with [`crate::clip`] before escaping; empty text is left out. The
//!   dictionary gives `reason` 1023 characters and `cs1`-`cs6` 4000: a 2 KiB reason may be
//!   shortened again by ArcSight.

use crmonban_core::Target;
use std::net::IpAddr;

use super::rfc5424::{present, push_visible, time};
use crate::{Action, Origin, SiemEvent, clip};

/// The Device Vendor and Device Product header fields.
const PRODUCT: &str = "crmonban";

/// `event` as one CEF:0 line, no line ending.
pub fn encode(event: &SiemEvent, origin: &Origin) -> String {
    let mut out = String::with_capacity(384);
    out.push_str("CEF:0|");
    for field in [
        PRODUCT,
        PRODUCT,
        origin.version.as_str(),
        event.action.id(),
        event.action.name(),
    ] {
        push_header_field(&mut out, field);
        out.push('|');
    }
    out.push_str(&event.action.severity().to_string());
    out.push('|');
    push_extension(
        &mut Extension {
            out: &mut out,
            first: true,
        },
        event,
        origin,
    );
    out
}

/// The `act` value: what crmonban did.
fn device_action(action: Action) -> &'static str {
    match action {
        Action::BanAdded => "ban",
        Action::BanRemoved => "unban",
        Action::AttackDetected => "detect",
        Action::WhitelistAdded => "whitelist-add",
        Action::WhitelistRemoved => "whitelist-remove",
        Action::DaemonStarted => "start",
        Action::DaemonStopping => "stop",
    }
}

fn push_extension(ext: &mut Extension<'_>, event: &SiemEvent, origin: &Origin) {
    ext.pair("rt", &time::epoch_millis(event.at_micros).to_string());
    ext.pair("act", device_action(event.action));
    match event.target {
        Some(Target::Addr(IpAddr::V4(ip))) => ext.pair("src", &ip.to_string()),
        Some(Target::Addr(IpAddr::V6(ip))) => {
            ext.pair("c6a2", &ip.to_string());
            ext.pair("c6a2Label", "Source IPv6 Address");
        }
        Some(Target::Net(_)) | None => {}
    }
    if let Some(port) = event.port {
        ext.pair("dpt", &port.to_string());
    }
    if let Some(service) = present(&event.service) {
        ext.pair("destinationServiceName", &service);
    }
    if !event.reason.is_empty() {
        ext.pair("reason", &clip(&event.reason));
    }
    if let Some(source) = present(&event.source) {
        ext.labelled("cs1", "Ban Source", &source);
    }
    if let Some(kind) = present(&event.attack_kind) {
        ext.labelled("cs2", "Attack Kind", &kind);
    }
    if let Some(intel) = present(&event.intel) {
        ext.labelled("cs3", "Intel", &intel);
    }
    if let Some(target) = event.target {
        ext.labelled("cs4", "Target", &target.to_string());
    }
    if event.action == Action::BanAdded {
        let kind = if event.is_permanent_ban() {
            "permanent"
        } else {
            "timed"
        };
        ext.labelled("cs5", "Ban Type", kind);
    }
    // cn1..cn3 are signed 64-bit: a length beyond that is no length a SIEM can use.
    if let Some(secs) = event.duration_secs.and_then(|s| i64::try_from(s).ok()) {
        ext.labelled("cn1", "Ban Duration Seconds", &secs.to_string());
    }
    if let Some(offence) = event.offence {
        ext.labelled("cn2", "Offence", &offence.to_string());
    }
    if let Some(end) = event.expires_at.and_then(|s| s.checked_mul(1000)) {
        ext.pair("end", &end.to_string());
    }
    ext.pair("dvchost", &origin.hostname);
    ext.pair("dvcpid", &origin.procid.to_string());
    ext.pair("deviceProcessName", &origin.app_name);
    ext.pair("cnt", &event.count.to_string());
}

/// Writes `key=value` pairs separated by one space.
struct Extension<'a> {
    out: &'a mut String,
    first: bool,
}

impl Extension<'_> {
    fn pair(&mut self, key: &str, value: &str) {
        if !self.first {
            self.out.push(' ');
        }
        self.first = false;
        self.out.push_str(key);
        self.out.push('=');
        for c in value.chars() {
            match c {
                '\\' | '=' => {
                    self.out.push('\\');
                    self.out.push(c);
                }
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                c if c.is_control() => push_visible(self.out, c),
                c => self.out.push(c),
            }
        }
    }

    /// A custom field and its label: `<key>Label=<label> <key>=<value>`.
    fn labelled(&mut self, key: &str, label: &str, value: &str) {
        self.pair(&format!("{key}Label"), label);
        self.pair(key, value);
    }
}

/// One header field: `\` and `|` escaped, control characters made visible.
fn push_header_field(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' | '|' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => push_visible(out, c),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
#[path = "cef_tests.rs"]
mod tests;
