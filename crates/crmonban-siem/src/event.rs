//! [`SiemEvent`]: one thing worth telling a SIEM, independent of the format it is written in,
//! and [`Origin`]: who tells it (host, program, process).

use std::borrow::Cow;

use crmonban_core::Target;

/// The longest free text (a reason, a comment) an event carries, in bytes of UTF-8: longer
/// text is cut at a character boundary and marked (see [`clip`]). Keeps every encoded event
/// well under the 8 KiB a syslog receiver accepts by default (rsyslog's `maxMessageSize`)
/// and under one UDP datagram.
pub const MAX_TEXT_BYTES: usize = 2048;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A ban is in force (kernel and database).
    BanAdded,
    /// A ban ended (expired, lifted, flushed, whitelisted).
    BanRemoved,
    /// A detector matched a hostile log line (coalesced per address: see [`SiemEvent::count`]).
    AttackDetected,
    /// A network was added to the database whitelist.
    WhitelistAdded,
    /// A network was removed from the database whitelist.
    WhitelistRemoved,
    /// The daemon started (bans restored, detection running).
    DaemonStarted,
    /// The daemon is stopping.
    DaemonStopping,
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Action; 7] = [
        Action::BanAdded,
        Action::BanRemoved,
        Action::AttackDetected,
        Action::WhitelistAdded,
        Action::WhitelistRemoved,
        Action::DaemonStarted,
        Action::DaemonStopping,
    ];

    /// The machine name used in every format: `ban-added`, `ban-removed`, `attack-detected`,
    /// `whitelist-added`, `whitelist-removed`, `daemon-started`, `daemon-stopping` (CEF's
    /// Device Event Class ID, LEEF's EventID, the syslog MSGID, ECS `event.action`).
    pub fn id(self) -> &'static str {
        match self {
            Action::BanAdded => "ban-added",
            Action::BanRemoved => "ban-removed",
            Action::AttackDetected => "attack-detected",
            Action::WhitelistAdded => "whitelist-added",
            Action::WhitelistRemoved => "whitelist-removed",
            Action::DaemonStarted => "daemon-started",
            Action::DaemonStopping => "daemon-stopping",
        }
    }

    /// The human name (CEF's Name): "Ban added", ...
    pub fn name(self) -> &'static str {
        match self {
            Action::BanAdded => "Ban added",
            Action::BanRemoved => "Ban removed",
            Action::AttackDetected => "Attack detected",
            Action::WhitelistAdded => "Whitelist entry added",
            Action::WhitelistRemoved => "Whitelist entry removed",
            Action::DaemonStarted => "Daemon started",
            Action::DaemonStopping => "Daemon stopping",
        }
    }

    /// Severity 0 (lowest) to 10, as CEF defines it (0-3 low, 4-6 medium, 7-8 high, 9-10
    /// very high); LEEF's `sev` and ECS's `event.severity` use the same number:
    /// ban added 7, attack detected 5, ban removed 3, whitelist changes 3, daemon 1.
    pub fn severity(self) -> u8 {
        match self {
            Action::BanAdded => 7,
            Action::AttackDetected => 5,
            Action::BanRemoved | Action::WhitelistAdded | Action::WhitelistRemoved => 3,
            Action::DaemonStarted | Action::DaemonStopping => 1,
        }
    }

    /// The RFC 5424 severity (0 emergency .. 7 debug): ban added 4 (warning), attack
    /// detected 5 (notice), the rest 6 (informational).
    pub fn syslog_severity(self) -> u8 {
        match self {
            Action::BanAdded => 4,
            Action::AttackDetected => 5,
            _ => 6,
        }
    }
}

/// One event for a SIEM. Free text is kept as given; encoders bound it with [`clip`] and
/// escape it for their format.
#[derive(Clone, Debug, PartialEq)]
pub struct SiemEvent {
    /// When it happened, unix microseconds.
    pub at_micros: i64,
    /// What happened.
    pub action: Action,
    /// The address or network concerned (none for daemon events).
    pub target: Option<Target>,
    /// The service whose log it was (`ssh`, `nginx`, ...), when there is one.
    pub service: Option<String>,
    /// The attack's kind (`failed_auth`, `invalid_user`, ...; attacks only).
    pub attack_kind: Option<String>,
    /// Who asked for the ban or removal: `detector`, `dbus`, `fleet:web1`, ... (bans only).
    pub source: Option<String>,
    /// Free text: the ban's reason, why it ended, the whitelist comment; may be empty.
    pub reason: String,
    /// The ban's length in seconds; `None` for a permanent ban and for other actions.
    pub duration_secs: Option<u64>,
    /// When the ban ends, unix seconds; `None` for a permanent ban and other actions.
    pub expires_at: Option<i64>,
    /// 1 for a target's first ban, 2 for its second, ... (ban added only).
    pub offence: Option<u32>,
    /// How many occurrences this event stands for, at least 1 (attacks coalesced under a
    /// flood carry their count).
    pub count: u32,
    /// The intel summary of the address when known ("DE, AS24940 Hetzner Online GmbH,
    /// hosting").
    pub intel: Option<String>,
    /// The service's port when it has exactly one (CEF `dpt`).
    pub port: Option<u16>,
}

impl SiemEvent {
    /// An event of `action` at `at_micros` with nothing else set (count 1).
    pub fn new(action: Action, at_micros: i64) -> SiemEvent {
        SiemEvent {
            at_micros,
            action,
            target: None,
            service: None,
            attack_kind: None,
            source: None,
            reason: String::new(),
            duration_secs: None,
            expires_at: None,
            offence: None,
            count: 1,
            intel: None,
            port: None,
        }
    }

    /// True for a ban added without an end.
    pub fn is_permanent_ban(&self) -> bool {
        self.action == Action::BanAdded && self.expires_at.is_none()
    }
}

/// Who sends the events: the same in every format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// This host's name (`[siem] hostname`, else the kernel's), printable ASCII without
    /// spaces, at most 255 bytes (RFC 5424 HOSTNAME).
    pub hostname: String,
    /// The program: `crmonband`.
    pub app_name: String,
    /// The daemon's process id.
    pub procid: u32,
    /// crmonban's version (CEF Device Version, LEEF Product Version, ECS observer.version).
    pub version: String,
}

impl Origin {
    /// `crmonband` at version `version` on `hostname` (cleaned: characters RFC 5424 does not
    /// allow in a HOSTNAME become `_`, an empty name becomes `-`... never empty) with this
    /// process's id.
    pub fn new(hostname: &str, version: &str) -> Origin {
        let mut host: String = hostname
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '_' })
            .collect();
        host.truncate(255);
        if host.is_empty() {
            host.push_str("localhost");
        }
        Origin {
            hostname: host,
            app_name: "crmonband".to_owned(),
            procid: std::process::id(),
            version: version.to_owned(),
        }
    }
}

/// `text` cut to at most [`MAX_TEXT_BYTES`] at a character boundary, with `…[+N bytes]`
/// appended when something was cut (N = the bytes left out); borrowed when it fits.
pub fn clip(text: &str) -> Cow<'_, str> {
    if text.len() <= MAX_TEXT_BYTES {
        return Cow::Borrowed(text);
    }
    // Room for the marker, which is at most 20 bytes.
    let mut end = MAX_TEXT_BYTES - 24;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…[+{} bytes]", &text[..end], text.len() - end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_short_text_and_cuts_long_text_at_a_character_boundary() {
        assert!(matches!(clip("short"), Cow::Borrowed("short")));
        let long = "é".repeat(5000);
        let clipped = clip(&long);
        assert!(clipped.len() <= MAX_TEXT_BYTES, "{}", clipped.len());
        assert!(clipped.ends_with(" bytes]"), "{clipped}");
        let kept = clipped.split('…').next().unwrap();
        assert!(clipped.contains(&format!("[+{} bytes]", long.len() - kept.len())));
    }

    #[test]
    fn origin_hostname_is_printable_ascii_and_never_empty() {
        assert_eq!(Origin::new("web 1\n", "0.1.0").hostname, "web_1_");
        assert_eq!(Origin::new("", "0.1.0").hostname, "localhost");
        assert_eq!(Origin::new(&"h".repeat(300), "0.1.0").hostname.len(), 255);
    }
}
