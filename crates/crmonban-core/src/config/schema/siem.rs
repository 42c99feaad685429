//! `[siem]`: exporting events to SIEMs — the formats, and each `[[siem.targets]]` with its
//! transport.

use super::*;

string_enum! {
    /// `[siem] format` and a target's `format`.
    pub enum SiemFormat {
        /// ArcSight Common Event Format.
        Cef = "cef",
        /// IBM QRadar Log Event Extended Format 2.0.
        Leef = "leef",
        /// RFC 5424 syslog with structured data.
        Syslog = "syslog",
        /// One JSON object per event (Elastic Common Schema field names).
        Json = "json",
    }
}

string_enum! {
    /// A syslog target's `facility` (RFC 5424 §6.2.1, codes 0 to 23 in this order).
    pub enum SyslogFacility {
        /// 0: kernel messages.
        Kern = "kern",
        /// 1: user-level messages.
        User = "user",
        /// 2: mail system.
        Mail = "mail",
        /// 3: system daemons.
        Daemon = "daemon",
        /// 4: security/authorization messages (the default).
        Auth = "auth",
        /// 5: messages generated internally by syslogd.
        Syslog = "syslog",
        /// 6: line printer subsystem.
        Lpr = "lpr",
        /// 7: network news subsystem.
        News = "news",
        /// 8: UUCP subsystem.
        Uucp = "uucp",
        /// 9: clock daemon (cron).
        Cron = "cron",
        /// 10: security/authorization messages (private).
        Authpriv = "authpriv",
        /// 11: FTP daemon.
        Ftp = "ftp",
        /// 12: NTP subsystem.
        Ntp = "ntp",
        /// 13: log audit.
        Audit = "audit",
        /// 14: log alert.
        Alert = "alert",
        /// 15: clock daemon.
        Clock = "clock",
        /// 16: local use 0.
        Local0 = "local0",
        /// 17: local use 1.
        Local1 = "local1",
        /// 18: local use 2.
        Local2 = "local2",
        /// 19: local use 3.
        Local3 = "local3",
        /// 20: local use 4.
        Local4 = "local4",
        /// 21: local use 5.
        Local5 = "local5",
        /// 22: local use 6.
        Local6 = "local6",
        /// 23: local use 7.
        Local7 = "local7",
    }
}

impl SyslogFacility {
    /// The facility's RFC 5424 code, 0..=23.
    pub fn code(self) -> u8 {
        let index = Self::ALL.iter().position(|f| *f == self).unwrap_or(4);
        u8::try_from(index).unwrap_or(4)
    }
}

string_enum! {
    /// A unix syslog socket's `socket_type`.
    pub enum UnixSocketType {
        /// Datagram when the socket accepts it, else stream (what `/dev/log` is varies).
        Auto = "auto",
        /// SOCK_DGRAM: one message per datagram (systemd-journald's and rsyslog's `/dev/log`).
        Datagram = "datagram",
        /// SOCK_STREAM: messages ended by a line feed (syslog-ng's `unix-stream()`).
        Stream = "stream",
    }
}

string_enum! {
    /// A unix syslog socket's `header`: how each message starts.
    pub enum SyslogHeader {
        /// `local` when the socket is systemd-journald's (`/dev/log` on a systemd host:
        /// journald does not parse RFC 5424), else `rfc5424`.
        Auto = "auto",
        /// An RFC 5424 header (rsyslog's imuxsock with `UseSpecialParser="off"`, syslog-ng's
        /// `unix-dgram(flags(syslog-protocol))`).
        Rfc5424 = "rfc5424",
        /// The local form syslog(3) writes, `<PRI>crmonband[PID]: MSG`, which journald and
        /// every syslog daemon read on their local socket.
        Local = "local",
    }
}

string_enum! {
    /// A network syslog target's `protocol`.
    pub enum SyslogProtocol {
        /// One message per UDP datagram (RFC 5426).
        Udp = "udp",
        /// TCP, each message framed by octet counting (RFC 6587 §3.4.1).
        Tcp = "tcp",
    }
}

/// `[siem]`: exporting events to a SIEM.
#[derive(Clone, Debug, PartialEq)]
pub struct SiemConfig {
    /// Default false.
    pub enabled: bool,
    /// The targets' format unless they name their own. Default `json`.
    pub format: SiemFormat,
    /// The host name events carry (RFC 5424 HOSTNAME, CEF `dvchost`, ECS `observer.hostname`);
    /// default the kernel's host name.
    pub hostname: Option<String>,
    /// Events each target holds while it is slow or unreachable, before the oldest are
    /// dropped (and counted). Default 10,000; a target may set its own.
    pub queue_size: usize,
    /// Attacks of one address, service and kind are sent at once, then at most once per this
    /// many seconds carrying how many there were. 0 sends each the engine announces (at
    /// most one per address per second). Default 10.
    pub attack_interval_secs: u64,
    /// Default none.
    pub targets: Vec<SiemTargetConfig>,
}

/// The queue size of targets that set none.
pub const DEFAULT_SIEM_QUEUE_SIZE: usize = 10_000;

impl Default for SiemConfig {
    fn default() -> SiemConfig {
        SiemConfig {
            enabled: false,
            format: SiemFormat::Json,
            hostname: None,
            queue_size: DEFAULT_SIEM_QUEUE_SIZE,
            attack_interval_secs: 10,
            targets: Vec::new(),
        }
    }
}

/// One `[[siem.targets]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct SiemTargetConfig {
    /// The target's name in statistics and logs: `name`, else a description of where it
    /// sends (`file /var/log/crmonban/siem.log`, `syslog udp 10.0.0.5:514`, `webhook
    /// https://siem.example.com`, without the URL's path or query, which may hold a token).
    pub name: String,
    /// This target's format; `None` uses `[siem] format` (webhooks always send JSON).
    pub format: Option<SiemFormat>,
    /// This target's queue size; `None` uses `[siem] queue_size`.
    pub queue_size: Option<usize>,
    /// Where the events go.
    pub kind: SiemTarget,
}

impl SiemTargetConfig {
    /// The format this target writes, given `[siem] format`.
    pub fn format_or(&self, default: SiemFormat) -> SiemFormat {
        match self.kind {
            SiemTarget::Webhook { .. } => SiemFormat::Json,
            _ => self.format.unwrap_or(default),
        }
    }
}

/// Where a target sends, chosen by its `type` key.
#[derive(Clone, Debug, PartialEq)]
pub enum SiemTarget {
    /// `type = "file"`: append one event per line to `path` (created 0640; reopened when
    /// rotated away and on reload).
    File {
        /// The file (absolute).
        path: PathBuf,
    },
    /// `type = "syslog"`: RFC 5424 messages to a local socket or a remote collector.
    Syslog {
        /// The socket or the collector.
        transport: SyslogTransport,
        /// Default `auth`.
        facility: SyslogFacility,
    },
    /// `type = "webhook"`: HTTP POST of JSON to `url`.
    Webhook {
        /// An `http://` or `https://` URL.
        url: String,
        /// Header names and values, in the order given (`headers`, then the lines of
        /// `headers_file`); values are secrets since they usually carry a token.
        headers: Vec<(String, Secret)>,
        /// A file of `Name: value` lines read at start and reload (kept out of the config,
        /// which may be world-readable).
        headers_file: Option<PathBuf>,
        /// Events per POST: 1 posts one JSON object; more posts a JSON array of up to this
        /// many (halved while the server answers 413). Default 1.
        batch_size: usize,
        /// Seconds one POST may take. Default 10.
        timeout_secs: u64,
    },
}

/// How a syslog target reaches syslog.
#[derive(Clone, Debug, PartialEq)]
pub enum SyslogTransport {
    /// `socket = "/dev/log"` (the default when neither `socket` nor `address` is given).
    Unix {
        /// The socket's path (absolute).
        socket: PathBuf,
        /// Default `auto`.
        socket_type: UnixSocketType,
        /// Default `auto`.
        header: SyslogHeader,
    },
    /// `address = "host:port"` with `protocol`.
    Network {
        /// `host:port`; the host is a name or an address (IPv6 in brackets), resolved at each
        /// connection.
        address: String,
        /// Default `udp`; `tcp` when `tls = true`.
        protocol: SyslogProtocol,
        /// TLS over the TCP connection (RFC 5425), when `tls = true`.
        tls: Option<SyslogTls>,
    },
}

/// TLS settings of a syslog target (`tls = true` and the `tls_*` keys).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SyslogTls {
    /// PEM file of the CA certificates to trust; default the system's trust store.
    pub ca_file: Option<PathBuf>,
    /// The name the server's certificate must carry; default the host of `address`.
    pub server_name: Option<String>,
    /// PEM client certificate chain, for collectors that require one (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// The socket of a syslog target without `socket` or `address`.
pub const DEFAULT_SYSLOG_SOCKET: &str = "/dev/log";
