//! Reading `[siem]` and its `[[siem.targets]]`: the format, the queue, and each target's
//! transport, with every combination that cannot work refused at its key.

use super::*;

pub(super) fn read_siem(d: &mut Diagnostics<'_>, mut t: Table<'_, '_>, siem: &mut SiemConfig) {
    let enabled = t.get("enabled");
    if let Some(v) = enabled.as_ref().and_then(|v| v.bool(d)) {
        siem.enabled = v;
    }
    if let Some(v) = t.get("format").and_then(|v| choice(d, &v)) {
        siem.format = v;
    }
    if let Some(v) = t.get("hostname") {
        siem.hostname = hostname(d, &v);
    }
    if let Some(n) = t.integer(d, "queue_size", 1..=MAX_QUEUE_SIZE) {
        siem.queue_size = usize::try_from(n).unwrap_or(siem.queue_size);
    }
    if let Some(n) = t.integer(d, "attack_interval_secs", 0..=86_400) {
        siem.attack_interval_secs = u64::try_from(n).unwrap_or(siem.attack_interval_secs);
    }
    if let Some(v) = t.get("targets")
        && let Some(tables) = v.tables(d)
    {
        let mut seen = BTreeSet::new();
        siem.targets = tables
            .into_iter()
            .filter_map(|tt| read_siem_target(d, tt, &mut seen))
            .collect();
    }
    if siem.enabled
        && siem.targets.is_empty()
        && let Some(v) = &enabled
    {
        d.warn(
            &v.span,
            &v.path,
            "SIEM export is enabled but there is no [[siem.targets]]: nothing will be sent",
        );
    }
    t.finish(d);
}

/// The most events one target's queue may hold (each at most a few KiB).
const MAX_QUEUE_SIZE: i128 = 1_000_000;

/// An RFC 5424 HOSTNAME: 1 to 255 printable ASCII characters without spaces.
fn hostname(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<String> {
    let text = v.non_empty_str(d)?;
    if text.len() > 255 || !text.chars().all(|c| c.is_ascii_graphic()) {
        d.error(
            &v.span,
            &v.path,
            format!(
                "{text:?} is not a host name: 1 to 255 printable ASCII characters without spaces"
            ),
        );
        return None;
    }
    Some(text.to_owned())
}

fn read_siem_target(
    d: &mut Diagnostics<'_>,
    mut t: Table<'_, '_>,
    seen: &mut BTreeSet<String>,
) -> Option<SiemTargetConfig> {
    const TYPES: &[&str] = &["file", "syslog", "webhook"];
    let kind = t
        .require(d, "type", "one of \"file\", \"syslog\", \"webhook\"")
        .and_then(|v| v.choice(d, TYPES));
    // Without a known `type` the table's other keys cannot be judged: return before finish().
    let kind = kind?;
    let name = t.get("name");
    let format = t.get("format");
    let parsed_format: Option<Option<SiemFormat>> = match &format {
        None => Some(None),
        Some(v) => choice(d, v).map(Some),
    };
    let queue_size = match t.get("queue_size") {
        None => Some(None),
        Some(v) => v
            .integer(d, 1..=MAX_QUEUE_SIZE)
            .and_then(|n| usize::try_from(n).ok())
            .map(Some),
    };
    let target = match kind {
        "file" => t
            .require(d, "path", "the file events are appended to")
            .and_then(|v| path(d, &v))
            .map(|path| SiemTarget::File { path }),
        "syslog" => read_syslog(d, &mut t),
        _ => {
            if let (Some(v), Some(Some(f))) = (&format, parsed_format)
                && f != SiemFormat::Json
            {
                d.error(
                    &v.span,
                    &v.path,
                    format!(
                        "a webhook sends JSON; format {:?} is not available here",
                        f.as_str()
                    ),
                );
            }
            read_webhook(d, &mut t)
        }
    };
    let name = match name {
        None => target.as_ref().map(describe),
        Some(v) => v.non_empty_str(d).map(|n| {
            check_unique(d, seen, n, &v);
            n.to_owned()
        }),
    };
    t.finish(d);
    Some(SiemTargetConfig {
        name: name?,
        format: parsed_format?,
        queue_size: queue_size?,
        kind: target?,
    })
}

/// A target's name when it gives none: where it sends, without secrets.
fn describe(target: &SiemTarget) -> String {
    match target {
        SiemTarget::File { path } => format!("file {}", path.display()),
        SiemTarget::Syslog {
            transport: SyslogTransport::Unix { socket, .. },
            ..
        } => format!("syslog {}", socket.display()),
        SiemTarget::Syslog {
            transport:
                SyslogTransport::Network {
                    address,
                    protocol,
                    tls,
                },
            ..
        } => {
            let protocol = if tls.is_some() {
                "tls"
            } else {
                protocol.as_str()
            };
            format!("syslog {protocol} {address}")
        }
        SiemTarget::Webhook { url, .. } => {
            // Scheme and authority only: a path or query may carry a token.
            let after_scheme = url.find("://").map_or(0, |i| i + 3);
            let end = url[after_scheme..]
                .find(['/', '?', '#'])
                .map_or(url.len(), |i| after_scheme + i);
            let authority = &url[..end];
            // user:password@ never goes into a name either.
            match authority[after_scheme..].rfind('@') {
                Some(at) => format!(
                    "webhook {}{}",
                    &authority[..after_scheme],
                    &authority[after_scheme + at + 1..]
                ),
                None => format!("webhook {authority}"),
            }
        }
    }
}

fn read_syslog(d: &mut Diagnostics<'_>, t: &mut Table<'_, '_>) -> Option<SiemTarget> {
    let facility = match t.get("facility") {
        None => Some(SyslogFacility::Auth),
        Some(v) => choice(d, &v),
    };
    let socket = t.get("socket");
    let address = t.get("address");
    let socket_type = t.get("socket_type");
    let header = t.get("header");
    let protocol = t.get("protocol");
    let tls = t.get("tls");
    let tls_keys = [
        t.get("tls_ca_file"),
        t.get("tls_server_name"),
        t.get("tls_cert_file"),
        t.get("tls_key_file"),
    ];
    let transport = match (&socket, &address) {
        (Some(s), Some(_)) => {
            d.error(
                &s.span,
                &s.path,
                "give either `socket` (a local syslog socket) or `address` (a remote collector), not both",
            );
            None
        }
        (_, Some(a)) => {
            for v in [&socket_type, &header].into_iter().flatten() {
                d.error(
                    &v.span,
                    &v.path,
                    "applies to a local socket (`socket`) only; a collector gets RFC 5424",
                );
            }
            read_network(d, a, protocol.as_ref(), tls.as_ref(), &tls_keys)
        }
        (s, None) => {
            for v in [&protocol, &tls].into_iter().chain(&tls_keys).flatten() {
                d.error(
                    &v.span,
                    &v.path,
                    "applies to a remote collector (`address = \"host:port\"`) only",
                );
            }
            let socket = match s {
                None => Some(PathBuf::from(DEFAULT_SYSLOG_SOCKET)),
                Some(v) => path(d, v),
            };
            let socket_type = match &socket_type {
                None => Some(UnixSocketType::Auto),
                Some(v) => choice(d, v),
            };
            let header = match &header {
                None => Some(SyslogHeader::Auto),
                Some(v) => choice(d, v),
            };
            match (socket, socket_type, header) {
                (Some(socket), Some(socket_type), Some(header)) => Some(SyslogTransport::Unix {
                    socket,
                    socket_type,
                    header,
                }),
                _ => None,
            }
        }
    };
    Some(SiemTarget::Syslog {
        transport: transport?,
        facility: facility?,
    })
}

fn read_network(
    d: &mut Diagnostics<'_>,
    address: &Value<'_, '_>,
    protocol: Option<&Value<'_, '_>>,
    tls: Option<&Value<'_, '_>>,
    tls_keys: &[Option<Value<'_, '_>>; 4],
) -> Option<SyslogTransport> {
    let host_port = host_and_port(d, address);
    let use_tls = match tls {
        None => Some(false),
        Some(v) => v.bool(d),
    };
    let protocol = match protocol {
        None if use_tls == Some(true) => Some(SyslogProtocol::Tcp),
        None => Some(SyslogProtocol::Udp),
        Some(v) => choice(d, v),
    };
    if use_tls == Some(true)
        && protocol == Some(SyslogProtocol::Udp)
        && let Some(v) = tls
    {
        d.error(&v.span, &v.path, "TLS needs protocol = \"tcp\" (RFC 5425)");
    }
    let [ca, server_name, cert, key] = tls_keys;
    let settings = if use_tls == Some(true) {
        let file = |d: &mut Diagnostics<'_>, v: &Option<Value<'_, '_>>| match v {
            None => Some(None),
            Some(v) => path(d, v).map(Some),
        };
        let ca_file = file(d, ca);
        let cert_file = file(d, cert);
        let key_file = file(d, key);
        let server_name = match server_name {
            None => Some(None),
            Some(v) => v.non_empty_str(d).map(|s| Some(s.to_owned())),
        };
        if let (Some(Some(_)), Some(None)) | (Some(None), Some(Some(_))) = (&cert_file, &key_file) {
            d.error(
                &address.span,
                &address.path,
                "a client certificate needs both `tls_cert_file` and `tls_key_file`",
            );
        }
        Some(Some(SyslogTls {
            ca_file: ca_file?,
            server_name: server_name?,
            cert_file: cert_file?,
            key_file: key_file?,
        }))
    } else {
        for v in tls_keys.iter().flatten() {
            d.error(&v.span, &v.path, "applies only with `tls = true`");
        }
        Some(None)
    };
    Some(SyslogTransport::Network {
        address: host_port?,
        protocol: protocol?,
        tls: settings?,
    })
}

/// `host:port` with a port of 1..=65535; an IPv6 host in brackets.
fn host_and_port(d: &mut Diagnostics<'_>, v: &Value<'_, '_>) -> Option<String> {
    let text = v.non_empty_str(d)?;
    let problem = match text.rsplit_once(':') {
        None => Some("has no port"),
        Some((host, port)) => {
            let bracketed = host.starts_with('[') && host.ends_with(']');
            if host.is_empty() || host == "[]" {
                Some("has no host")
            } else if host.contains(':') && !bracketed {
                Some("is an IPv6 address without brackets (write \"[2001:db8::1]:514\")")
            } else if host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/')
            {
                Some("is not a host name or address")
            } else if !matches!(port.parse::<u16>(), Ok(1..)) {
                Some("has no port from 1 to 65535")
            } else {
                None
            }
        }
    };
    if let Some(problem) = problem {
        d.error(
            &v.span,
            &v.path,
            format!("{text:?} {problem}; expected \"host:port\", e.g. \"siem.example.com:514\""),
        );
        return None;
    }
    Some(text.to_owned())
}

fn read_webhook(d: &mut Diagnostics<'_>, t: &mut Table<'_, '_>) -> Option<SiemTarget> {
    let url = t
        .require(
            d,
            "url",
            "where events are POSTed, e.g. \"https://siem.example.com/api\"",
        )
        .and_then(|v| webhook_url(d, &v));
    let headers = match t.get("headers") {
        None => Some(Vec::new()),
        Some(v) => headers(d, &v),
    };
    let headers_file = match t.get("headers_file") {
        None => Some(None),
        Some(v) => path(d, &v).map(Some),
    };
    let batch_size = match t.get("batch_size") {
        None => Some(1),
        Some(v) => v
            .integer(d, 1..=10_000)
            .and_then(|n| usize::try_from(n).ok()),
    };
    let timeout_secs = match t.get("timeout_secs") {
        None => Some(10),
        Some(v) => v.integer(d, 1..=300).and_then(|n| u64::try_from(n).ok()),
    };
    Some(SiemTarget::Webhook {
        url: url?,
        headers: headers?,
        headers_file: headers_file?,
        batch_size: batch_size?,
        timeout_secs: timeout_secs?,
    })
}
