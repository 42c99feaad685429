//! The built-in detection patterns of ssh, nginx, apache, postfix and dovecot, as data: for each
//! pattern its name, the [`EventKind`] it reports, how it relates to one authentication
//! attempt ([`Step`]), the literal prefixes a message must start with (the prefilter) and the
//! regex that extracts the address. [`crate::matcher`] compiles and runs them.
//!
//! # Where the address comes from
//!
//! Every regex is matched against the *message* of a line — what follows the syslog header
//! (`sshd[1234]: `), nginx's `[error] pid#tid: *cid ` or Apache's date — and is anchored with
//! `^` on text the program itself writes. The address group `ip` is placed so that text an
//! attacker controls can never supply it:
//!
//! - when attacker text (a user name) comes *before* the address and nothing the attacker
//!   controls comes after it (sshd's `... from ADDR port N ssh2`, `rhost=ADDR`, dovecot's
//!   `passwd-file(USER,ADDR)`), the user part is a greedy `.*` and the regex is anchored at the
//!   end with `$`: the address is the *last* `from ADDR port N` of the line, the one sshd wrote;
//! - when the address comes right after a fixed prefix (`banner exchange: Connection from`,
//!   `Unable to negotiate with`, postfix's `warning: HOST[ADDR]:` where HOST is a validated
//!   host name, Apache's `[client ADDR:PORT]` header), the regex is anchored at the start and
//!   whatever follows is irrelevant;
//! - nginx writes attacker text both before (the user name) and after (request, host,
//!   referrer) the `client:` field. The user name cannot contain `:` (nginx splits the decoded
//!   credentials at the first colon), so `client: ` can only appear in it as a forgery that
//!   cannot happen; the regex takes the *first* `, client: ADDR, server: ` after
//!   `user "[^:]*"`, which is nginx's own;
//! - dovecot's login line puts `user=<...>` (attacker) before `rip=ADDR, lip=ADDR` and only
//!   dovecot's own fields after, so the *last* `rip=` is taken.
//!
//! The `ip` capture is only a candidate: `[0-9A-Fa-f:.]+`, then parsed as an [`std::net::IpAddr`]
//! (IPv4 or IPv6, never a host name) by the matcher; a capture that does not parse is no match.
//!
//! Messages that need no attacker input to be safe (the client field is in a fixed header) are
//! still anchored, so a line of another module or level never matches by accident.

use crmonban_core::EventKind;

/// How a line relates to one authentication attempt (see [`crate::decide`] for the counting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// The line records one authentication try (sshd's `Failed password`): every such line
    /// counts.
    Try,
    /// The line describes a connection's attempt without being a try of its own (`Invalid
    /// user`, the PAM failure line, `Connection closed ... [preauth]`): it counts only when no
    /// other line of the same connection has counted.
    Context,
    /// Every line counts on its own (postfix, nginx, apache).
    Each,
}

/// Which part of a line identifies the connection (process) an attempt belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionId {
    /// None: lines are counted one by one.
    None,
    /// The pid of the syslog tag (`sshd[1234]:`), or of the journal entry: sshd logs every
    /// line of one connection from one monitor process.
    Pid,
    /// The regex group `session` (dovecot's `<session id>`), or failing that the text after
    /// `session=<` following the address.
    Session,
}

/// How a service's lines are laid out around the message the patterns see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Envelope {
    /// `STAMP HOST TAG[PID]: MESSAGE` with a BSD or RFC 3339 stamp; the tag must be one of
    /// `programs` (an entry ending in `/` matches every tag it starts: `postfix/` matches
    /// `postfix/smtpd` and `postfix/submission/smtpd`). A line without a stamp is taken as a
    /// bare message (journal entries, `sshd -E`).
    Syslog { programs: &'static [&'static str] },
    /// nginx error.log: `YYYY/MM/DD HH:MM:SS [level] PID#TID: *CID MESSAGE`.
    Nginx,
    /// Apache 2.4 error log: `[DATE] MESSAGE`, the message starting with `[module:level]`.
    Apache,
    /// No structure: user services; the timestamp is read if the line starts with one.
    Plain,
}

/// One built-in pattern.
#[derive(Clone, Copy, Debug)]
pub struct BuiltinPattern {
    /// Stable name, shown by `explain` and in events: `ssh-failed-password`, ...
    pub name: &'static str,
    pub kind: BuiltinKind,
    pub step: Step,
    pub connection: ConnectionId,
    /// The message must start with one of these (the prefilter; never empty).
    pub prefixes: &'static [&'static str],
    /// The message must also contain this (checked with memchr's memmem), when set.
    pub needle: Option<&'static str>,
    /// Source of the regex; `IP` and `PORT` are replaced by the address and port groups.
    pub regex: &'static str,
}

/// [`EventKind`] without its owned variant, so the table can be `const`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinKind {
    FailedAuth,
    InvalidUser,
    RateLimited,
    Probe,
}

impl BuiltinKind {
    pub fn event_kind(self) -> EventKind {
        match self {
            BuiltinKind::FailedAuth => EventKind::FailedAuth,
            BuiltinKind::InvalidUser => EventKind::InvalidUser,
            BuiltinKind::RateLimited => EventKind::RateLimited,
            BuiltinKind::Probe => EventKind::Probe,
        }
    }
}

/// The address candidate group; validated as an IP by the matcher.
pub const IP_GROUP: &str = r"(?P<ip>[0-9A-Fa-f:.]+)";
/// A TCP port.
pub const PORT_GROUP: &str = r"(?P<port>[0-9]{1,5})";

/// The regex source of a pattern with `IP` and `PORT` expanded. Every built-in regex is
/// compiled in byte mode without Unicode (`(?s-u)`): `.` matches any byte, so a user name with
/// invalid UTF-8 cannot hide a line, and the address classes are ASCII.
pub fn expand(regex: &str) -> String {
    format!(
        "(?s-u){}",
        regex.replace("IP", IP_GROUP).replace("PORT", PORT_GROUP)
    )
}

/// The envelope of a built-in service; `Plain` for any other name.
pub fn envelope(service: &str) -> Envelope {
    match service {
        "ssh" => Envelope::Syslog {
            programs: &["sshd", "sshd-session", "sshd-auth"],
        },
        "postfix" => Envelope::Syslog {
            programs: &["postfix/", "postfix"],
        },
        "dovecot" => Envelope::Syslog {
            programs: &["dovecot"],
        },
        "nginx" => Envelope::Nginx,
        "apache" => Envelope::Apache,
        _ => Envelope::Plain,
    }
}

/// The built-in patterns of a service, in the order they are tried; empty for other names.
pub fn builtin(service: &str) -> &'static [BuiltinPattern] {
    match service {
        "ssh" => SSH,
        "nginx" => NGINX,
        "apache" => APACHE,
        "postfix" => POSTFIX,
        "dovecot" => DOVECOT,
        _ => &[],
    }
}

macro_rules! ssh_failed {
    ($invalid:literal) => {
        concat!(
            "^Failed (?:password|publickey|keyboard-interactive/pam|keyboard-interactive|hostbased|gssapi-with-mic) for ",
            $invalid,
            "(?P<user>.*) from IP port PORT(?: ssh2)?(?:: .*)?$"
        )
    };
}

/// OpenSSH 8–9 (`sshd`, and `sshd-session` from 9.8). Lines of one connection share the
/// monitor's pid.
pub const SSH: &[BuiltinPattern] = &[
    BuiltinPattern {
        name: "ssh-failed-invalid-user",
        kind: BuiltinKind::InvalidUser,
        step: Step::Try,
        connection: ConnectionId::Pid,
        prefixes: &["Failed "],
        needle: Some(" for invalid user "),
        regex: ssh_failed!("invalid user "),
    },
    BuiltinPattern {
        name: "ssh-failed-auth",
        kind: BuiltinKind::FailedAuth,
        step: Step::Try,
        connection: ConnectionId::Pid,
        prefixes: &["Failed "],
        needle: None,
        regex: ssh_failed!(""),
    },
    BuiltinPattern {
        name: "ssh-invalid-user",
        kind: BuiltinKind::InvalidUser,
        step: Step::Context,
        connection: ConnectionId::Pid,
        prefixes: &["Invalid user "],
        needle: None,
        regex: "^Invalid user (?P<user>.*) from IP(?: port PORT)?$",
    },
    BuiltinPattern {
        name: "ssh-user-not-allowed",
        kind: BuiltinKind::InvalidUser,
        step: Step::Context,
        connection: ConnectionId::Pid,
        prefixes: &["User "],
        needle: Some(" not allowed because "),
        regex: "^User (?P<user>.*) from IP not allowed because [^\n]*$",
    },
    BuiltinPattern {
        name: "ssh-pam-auth-failure",
        kind: BuiltinKind::FailedAuth,
        step: Step::Context,
        connection: ConnectionId::Pid,
        prefixes: &["pam_unix(sshd:auth): authentication failure; "],
        needle: None,
        regex: r"^pam_unix\(sshd:auth\): authentication failure; logname=\S* uid=[0-9]+ euid=[0-9]+ tty=\S* ruser=\S* rhost=IP(?:\s+user=.*)?$",
    },
    BuiltinPattern {
        name: "ssh-pam-more-failures",
        kind: BuiltinKind::FailedAuth,
        step: Step::Context,
        connection: ConnectionId::Pid,
        prefixes: &["PAM "],
        needle: None,
        regex: r"^PAM [0-9]+ more authentication failures?; logname=\S* uid=[0-9]+ euid=[0-9]+ tty=\S* ruser=\S* rhost=IP(?:\s+user=.*)?$",
    },
    BuiltinPattern {
        name: "ssh-pam-error",
        kind: BuiltinKind::FailedAuth,
        step: Step::Context,
        connection: ConnectionId::Pid,
        prefixes: &["error: PAM: Authentication failure for "],
        needle: None,
        regex: "^error: PAM: Authentication failure for (?:illegal user )?(?P<user>.*) from IP$",
    },
    BuiltinPattern {
        name: "ssh-max-auth-attempts",
        kind: BuiltinKind::FailedAuth,
        step: Step::Context,
        connection: ConnectionId::Pid,
        prefixes: &["error: maximum authentication attempts exceeded for "],
        needle: None,
        regex: r"^error: maximum authentication attempts exceeded for (?:invalid user )?(?P<user>.*) from IP port PORT ssh2 \[preauth\]$",
    },
    BuiltinPattern {
        name: "ssh-too-many-failures",
        kind: BuiltinKind::FailedAuth,
        step: Step::Context,
        connection: ConnectionId::Pid,
        prefixes: &["Disconnecting "],
        needle: None,
        regex: r"^Disconnecting (?:(?:invalid|authenticating) user (?P<user>.*) )?IP port PORT: Too many authentication failures(?: \[preauth\])?$",
    },
    BuiltinPattern {
        name: "ssh-closed-preauth",
        kind: BuiltinKind::Probe,
        step: Step::Context,
        connection: ConnectionId::Pid,
        prefixes: &["Connection closed by ", "Connection reset by "],
        needle: None,
        regex: r"^Connection (?:closed|reset) by (?:(?:invalid|authenticating) user (?P<user>.*) )?IP port PORT \[preauth\]$",
    },
    BuiltinPattern {
        // Before user authentication started (kex_exchange_identification, scanners): sshd
        // writes no preamble and no [preauth]; after login it writes "user X" first.
        name: "ssh-closed-before-auth",
        kind: BuiltinKind::Probe,
        step: Step::Context,
        connection: ConnectionId::Pid,
        prefixes: &["Connection closed by ", "Connection reset by "],
        needle: None,
        regex: "^Connection (?:closed|reset) by IP port PORT$",
    },
    BuiltinPattern {
        name: "ssh-disconnected-preauth",
        kind: BuiltinKind::Probe,
        step: Step::Context,
        connection: ConnectionId::Pid,
        prefixes: &["Disconnected from "],
        needle: None,
        regex: r"^Disconnected from (?:(?:invalid|authenticating) user (?P<user>.*) )?IP port PORT \[preauth\]$",
    },
    BuiltinPattern {
        name: "ssh-received-disconnect-preauth",
        kind: BuiltinKind::Probe,
        step: Step::Context,
        connection: ConnectionId::Pid,
        prefixes: &["Received disconnect from "],
        needle: None,
        regex: r"^Received disconnect from IP port PORT:[0-9]+: .*\[preauth\]$",
    },
    BuiltinPattern {
        name: "ssh-banner-exchange",
        kind: BuiltinKind::Probe,
        step: Step::Context,
        connection: ConnectionId::Pid,
        prefixes: &["banner exchange: Connection from "],
        needle: None,
        regex: "^banner exchange: Connection from IP port PORT: ",
    },
    BuiltinPattern {
        name: "ssh-unable-to-negotiate",
        kind: BuiltinKind::Probe,
        step: Step::Context,
        connection: ConnectionId::Pid,
        prefixes: &["Unable to negotiate with "],
        needle: None,
        regex: "^Unable to negotiate with IP port PORT: no matching ",
    },
    BuiltinPattern {
        name: "ssh-dispatch-fatal",
        kind: BuiltinKind::Probe,
        step: Step::Context,
        connection: ConnectionId::Pid,
        prefixes: &["ssh_dispatch_run_fatal: Connection from "],
        needle: None,
        regex: "^ssh_dispatch_run_fatal: Connection from (?:(?:invalid|authenticating) user .* )?IP port PORT: [^\n]*$",
    },
    BuiltinPattern {
        name: "ssh-bad-protocol-version",
        kind: BuiltinKind::Probe,
        step: Step::Context,
        connection: ConnectionId::Pid,
        prefixes: &["Bad protocol version identification "],
        needle: None,
        regex: "^Bad protocol version identification .* from IP(?: port PORT)?$",
    },
    BuiltinPattern {
        name: "ssh-no-identification",
        kind: BuiltinKind::Probe,
        step: Step::Context,
        connection: ConnectionId::Pid,
        prefixes: &["Did not receive identification string from "],
        needle: None,
        regex: "^Did not receive identification string from IP(?: port PORT)?$",
    },
    BuiltinPattern {
        name: "ssh-timeout-before-auth",
        kind: BuiltinKind::Probe,
        step: Step::Context,
        connection: ConnectionId::Pid,
        prefixes: &[
            "Timeout before authentication for ",
            "fatal: Timeout before authentication for ",
        ],
        needle: None,
        regex: "^(?:fatal: )?Timeout before authentication for (?:connection from )?IP(?: port PORT)?$",
    },
];

/// nginx 1.22 error.log, the message after `*CID `.
pub const NGINX: &[BuiltinPattern] = &[
    BuiltinPattern {
        name: "nginx-auth-user-not-found",
        kind: BuiltinKind::InvalidUser,
        step: Step::Each,
        connection: ConnectionId::None,
        prefixes: &["user \""],
        needle: Some("\" was not found in \""),
        regex: r#"^user "[^:]*" was not found in "[^"]*", client: IP, server: "#,
    },
    BuiltinPattern {
        name: "nginx-auth-password-mismatch",
        kind: BuiltinKind::FailedAuth,
        step: Step::Each,
        connection: ConnectionId::None,
        prefixes: &["user \""],
        needle: Some("\": password mismatch, client: "),
        regex: r#"^user "[^:]*": password mismatch, client: IP, server: "#,
    },
    BuiltinPattern {
        name: "nginx-limit-req",
        kind: BuiltinKind::RateLimited,
        step: Step::Each,
        connection: ConnectionId::None,
        prefixes: &["limiting requests, excess: "],
        needle: None,
        regex: r#"^limiting requests, excess: [0-9.]+ by zone "[^"]*", client: IP, server: "#,
    },
    BuiltinPattern {
        name: "nginx-limit-conn",
        kind: BuiltinKind::RateLimited,
        step: Step::Each,
        connection: ConnectionId::None,
        prefixes: &["limiting connections by zone "],
        needle: None,
        regex: r#"^limiting connections by zone "[^"]*", client: IP, server: "#,
    },
];

/// Apache 2.4 error log. The client is in the fixed header `[client ADDR:PORT]`, where an IPv6
/// address is written without brackets (`[client 2001:db8::1:5555]`; the last colon separates
/// the port). The bracketed form is accepted too.
macro_rules! apache_header {
    ($module:literal) => {
        concat!(
            r"^\[",
            $module,
            r":error\] \[pid [0-9]+(?::tid [0-9]+)?\] (?:[^\[\]]*: )?\[client \[?IP\]?:PORT\] "
        )
    };
}

pub const APACHE: &[BuiltinPattern] = &[
    BuiltinPattern {
        name: "apache-auth-user-not-found",
        kind: BuiltinKind::InvalidUser,
        step: Step::Each,
        connection: ConnectionId::None,
        prefixes: &["[auth_basic:error] "],
        needle: Some("] AH01618: user "),
        regex: concat!(apache_header!("auth_basic"), "AH01618: user "),
    },
    BuiltinPattern {
        name: "apache-auth-password-mismatch",
        kind: BuiltinKind::FailedAuth,
        step: Step::Each,
        connection: ConnectionId::None,
        prefixes: &["[auth_basic:error] "],
        needle: Some("] AH01617: user "),
        regex: concat!(apache_header!("auth_basic"), "AH01617: user "),
    },
    BuiltinPattern {
        name: "apache-auth-digest-failure",
        kind: BuiltinKind::FailedAuth,
        step: Step::Each,
        connection: ConnectionId::None,
        prefixes: &["[auth_digest:error] "],
        needle: None,
        regex: concat!(apache_header!("auth_digest"), "AH0179[0-9]: user "),
    },
];

/// Postfix 3.7 smtpd. HOST is a host name postfix verified (or `unknown`), so it holds no `[`.
pub const POSTFIX: &[BuiltinPattern] = &[BuiltinPattern {
    name: "postfix-sasl-auth-failed",
    kind: BuiltinKind::FailedAuth,
    step: Step::Each,
    connection: ConnectionId::None,
    prefixes: &["warning: "],
    needle: Some(" authentication failed"),
    regex: r"^warning: [-._0-9A-Za-z]+\[IP\](?::PORT)?: SASL [-_0-9A-Za-z]+ authentication failed(?:: [^\n]*)?$",
}];

macro_rules! dovecot_auth {
    ($tail:literal) => {
        concat!(
            r"^auth(?:-worker\([0-9]+\))?: (?:Info: )?[a-z][-a-z0-9]*\((?P<user>.*),IP(?:,<(?P<session>[^<>,]*)>)?\): ",
            $tail,
            r"(?: \(SHA1 of given password: [0-9a-f]+\))?$"
        )
    };
}

/// Dovecot 2.3. The login process's disconnect line and, with `auth_verbose = yes`, the auth
/// process's lines; both carry the session id, so one login is one connection.
pub const DOVECOT: &[BuiltinPattern] = &[
    BuiltinPattern {
        name: "dovecot-login-auth-failed",
        kind: BuiltinKind::FailedAuth,
        step: Step::Context,
        connection: ConnectionId::Session,
        prefixes: &[
            "imap-login: ",
            "pop3-login: ",
            "submission-login: ",
            "managesieve-login: ",
        ],
        needle: Some("(auth failed, "),
        regex: r"^[a-z3]+-login: [^<]*\(auth failed, [0-9]+ attempts? in [0-9]+ secs?\)[^<]*: user=<.*, rip=IP, lip=[0-9A-Fa-f:.]+(?:, [^\n]*)?$",
    },
    BuiltinPattern {
        name: "dovecot-auth-unknown-user",
        kind: BuiltinKind::InvalidUser,
        step: Step::Try,
        connection: ConnectionId::Session,
        prefixes: &["auth: ", "auth-worker("],
        needle: Some("): unknown user"),
        regex: dovecot_auth!("unknown user"),
    },
    BuiltinPattern {
        name: "dovecot-auth-password-mismatch",
        kind: BuiltinKind::FailedAuth,
        step: Step::Try,
        connection: ConnectionId::Session,
        prefixes: &["auth: ", "auth-worker("],
        needle: None,
        regex: dovecot_auth!(r"(?:Password mismatch|pam_authenticate\(\) failed: [^\n]*)"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_compiles_with_an_ip_group() {
        for service in crmonban_core::config::BUILTIN_SERVICES {
            assert!(!builtin(service).is_empty(), "{service}");
            for p in builtin(service) {
                let re = regex::bytes::Regex::new(&expand(p.regex))
                    .unwrap_or_else(|e| panic!("{}: {e}", p.name));
                assert!(re.capture_names().any(|n| n == Some("ip")), "{}", p.name);
                assert!(p.regex.starts_with('^'), "{} must be anchored", p.name);
                assert!(!p.prefixes.is_empty(), "{}", p.name);
            }
        }
    }

    #[test]
    fn names_are_unique_and_prefixed_by_service() {
        let mut seen = std::collections::HashSet::new();
        for service in crmonban_core::config::BUILTIN_SERVICES {
            for p in builtin(service) {
                assert!(seen.insert(p.name), "duplicate {}", p.name);
                assert!(p.name.starts_with(service), "{}", p.name);
            }
        }
    }
}
