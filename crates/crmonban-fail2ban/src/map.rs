//! fail2ban's enabled jails mapped onto crmonban's services: the jail's filter names the
//! service pack (`sshd` → `ssh`, `nginx-http-auth` → `nginx`, `postfix[mode=auth]` →
//! `postfix`), and `maxretry`, `findtime`, `bantime`, `backend`, `logpath`, `journalmatch` and
//! `port` become the service's keys. Jails whose filter has no pack are reported, not guessed
//! at; jails sharing a pack become one service (the first jail's values kept, differences
//! reported). The rest of the configuration (whitelist, actions, escalation) is [`crate::policy`]
//! and [`crate::escalation`].

use std::path::Path;

use crmonban_core::config::{JournalMatch, Pack, ServiceCatalog};

use super::ini::RawValue;
use super::logpath;
use super::reader::{JailConfig, Resolved};
use super::report::{Kind, Report};
use super::values::{self, Ports};

/// The longest length crmonban's configuration takes, in seconds.
pub const MAX_SECS: u64 = u32::MAX as u64;

/// A ban length as the configuration writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BanLength {
    /// This many seconds.
    Secs(u64),
    /// A permanent ban.
    Permanent,
}

/// A value for the output with the fail2ban setting it came from (`maxretry = 3 (jail.local:14)`).
#[derive(Clone, Debug, PartialEq)]
pub struct Sourced<T> {
    /// The value for crmonban.
    pub value: T,
    /// The fail2ban setting it comes from, `key = value (file:line)`.
    pub from: String,
}

/// One `[services.NAME]` to write.
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    /// The pack's name (`ssh`, `nginx`, ...).
    pub name: String,
    /// The jails it comes from, first the one whose values it has.
    pub jails: Vec<String>,
    /// `log_path`, from `logpath`.
    pub log_path: Option<Sourced<String>>,
    /// `source` (`"file"` or `"journal"`), from `backend`.
    pub source: Option<Sourced<&'static str>>,
    /// `journal_match`, from `journalmatch`.
    pub journal_match: Option<Sourced<String>>,
    /// `max_failures`, from `maxretry`.
    pub max_failures: Option<Sourced<u32>>,
    /// `find_time` in seconds, from `findtime`.
    pub find_time: Option<Sourced<u64>>,
    /// `ban_time`, from `bantime`.
    pub ban_time: Option<Sourced<BanLength>>,
    /// `port`, from `port` when it differs from the pack's.
    pub ports: Option<Sourced<Vec<u16>>>,
}

/// An enabled jail: its name and the `enabled` value that enabled it.
pub struct Jail<'a> {
    pub name: &'a str,
    pub enabled: RawValue,
}

/// `name = value (file:line)`, the file relative to the directory read.
pub fn from_text(config: &JailConfig, key: &str, value: &Resolved) -> String {
    let origin = &value.raw.origin;
    let file = origin
        .file
        .strip_prefix(&config.dir)
        .unwrap_or(&origin.file)
        .display();
    format!(
        "{key} = {} ({file}:{})",
        super::report::one_line(&value.text),
        origin.line
    )
}

/// The value of `key` for `jail`, or `None` when unset; a value whose references cannot be
/// resolved is reported and taken as unset.
pub fn get(config: &JailConfig, report: &mut Report, jail: &str, key: &str) -> Option<Resolved> {
    match config.get(jail, key) {
        Ok(value) => value,
        Err(why) => {
            if let Some(raw) = config.raw(jail, key) {
                report.value(
                    Kind::Lost,
                    jail,
                    key,
                    raw,
                    &raw.text,
                    format!("{why}: ignored"),
                );
            }
            None
        }
    }
}

/// The enabled jails, in the order fail2ban lists them.
pub fn enabled_jails<'a>(config: &'a JailConfig, report: &mut Report) -> Vec<Jail<'a>> {
    config
        .jails()
        .filter_map(|name| {
            let enabled = get(config, report, name, "enabled")?;
            values::boolean(&enabled.text).then_some(Jail {
                name,
                enabled: enabled.raw,
            })
        })
        .collect()
}

/// The service `jail` maps to, or `None` (reported) when crmonban has no pack for its filter.
pub fn service_of(config: &JailConfig, report: &mut Report, jail: &Jail<'_>) -> Option<Service> {
    let name = jail.name;
    let Some(filter) = get(config, report, name, "filter").filter(|f| !f.text.trim().is_empty())
    else {
        report.jail(
            Kind::Lost,
            name,
            Some(&jail.enabled),
            "no filter: fail2ban detects nothing with it; not converted".into(),
        );
        return None;
    };
    let invocation = match values::invocation(&filter.text) {
        Ok(i) => i,
        Err(why) => {
            let message = format!("{why}: the jail is not converted");
            report.value(
                Kind::Lost,
                name,
                "filter",
                &filter.raw,
                &filter.text,
                message,
            );
            return None;
        }
    };
    let filter_dir = config.dir.join("filter.d");
    let Some(pack) = ServiceCatalog::builtin().find(&invocation.name) else {
        let file = ["conf", "local"]
            .iter()
            .map(|ext| filter_dir.join(format!("{}.{ext}", invocation.name)))
            .find(|p| p.is_file())
            .map_or_else(String::new, |p| format!(" ({})", p.display()));
        let message = format!(
            "no crmonban service pack for its filter `{}`{file}: not converted (a service of \
             your own with patterns from its failregex would replace it)",
            invocation.name
        );
        report.jail(Kind::Lost, name, Some(&jail.enabled), message);
        return None;
    };
    let local = filter_dir.join(format!("{}.local", invocation.name));
    if local.is_file() {
        let message = format!(
            "{} changes fail2ban's filter; crmonban's `{}` pack has patterns of its own: add \
             [[services.{}.patterns]] for what the .local adds",
            local.display(),
            pack.name,
            pack.name
        );
        report.jail(Kind::Lost, name, Some(&jail.enabled), message);
    }
    filter_options(config, report, name, &filter, &invocation, pack);
    let mut service = Service {
        name: pack.name.clone(),
        jails: vec![name.to_owned()],
        log_path: None,
        source: None,
        journal_match: None,
        max_failures: None,
        find_time: None,
        ban_time: None,
        ports: None,
    };
    thresholds(config, report, name, &mut service);
    log_source(config, report, name, pack, &mut service);
    if let Some(port) = get(config, report, name, "port") {
        match values::ports(&port.text) {
            Ok(Ports::List(list)) if !same_ports(&list, &pack.ports) => {
                service.ports = Some(Sourced {
                    from: from_text(config, "port", &port),
                    value: list,
                });
            }
            Ok(_) => {}
            Err(what) => {
                let message = format!(
                    "{what} is not a port crmonban's `port` can list; the pack's ports are kept \
                     (they only name the port in SIEM events: a ban blocks every port)"
                );
                report.value(Kind::Note, name, "port", &port.raw, &port.text, message);
            }
        }
    }
    Some(service)
}

/// Reports the filter's options crmonban's pack does not follow (`mode=aggressive`, ...).
fn filter_options(
    config: &JailConfig,
    report: &mut Report,
    jail: &str,
    filter: &Resolved,
    invocation: &values::Invocation,
    pack: &Pack,
) {
    for (key, value) in &invocation.options {
        let usual = key == "mode"
            && (value == "normal"
                || (pack.name == "postfix" && matches!(value.as_str(), "more" | "auth" | "rbl")));
        if usual {
            continue;
        }
        if key == "mode" {
            let message = format!(
                "filter mode {value}: crmonban's `{}` pack has one set of patterns \
                 (`crmonband explain --service {}` shows what it matches)",
                pack.name, pack.name
            );
            // Point at the `mode` setting when that is where the mode comes from.
            match get(config, report, jail, "mode").filter(|m| m.text.trim() == value) {
                Some(m) => report.value(Kind::Note, jail, "mode", &m.raw, &m.text, message),
                None => report.value(
                    Kind::Note,
                    jail,
                    "filter",
                    &filter.raw,
                    &filter.text,
                    message,
                ),
            }
        } else {
            let message = format!("filter option {key}={value}: crmonban's packs take no options");
            report.value(
                Kind::Note,
                jail,
                "filter",
                &filter.raw,
                &filter.text,
                message,
            );
        }
    }
}

/// `maxretry`, `findtime` and `bantime`.
fn thresholds(config: &JailConfig, report: &mut Report, jail: &str, service: &mut Service) {
    if let Some(v) = get(config, report, jail, "maxretry") {
        match v.text.trim().parse::<i64>() {
            Ok(n) if n >= 1 => {
                service.max_failures = Some(Sourced {
                    value: u32::try_from(n).unwrap_or(u32::MAX),
                    from: from_text(config, "maxretry", &v),
                });
            }
            _ => report.value(
                Kind::Lost,
                jail,
                "maxretry",
                &v.raw,
                &v.text,
                "not a whole number of at least 1: crmonban's default is kept".into(),
            ),
        }
    }
    if let Some(v) = get(config, report, jail, "findtime") {
        match values::seconds(&v.text) {
            Ok(secs) if secs >= 0.5 => {
                let value = clamp(report, jail, "findtime", &v, secs);
                service.find_time = Some(Sourced {
                    value,
                    from: from_text(config, "findtime", &v),
                });
            }
            Ok(_) => report.value(
                Kind::Lost,
                jail,
                "findtime",
                &v.raw,
                &v.text,
                "not a positive length: crmonban's default is kept".into(),
            ),
            Err(why) => report.value(
                Kind::Lost,
                jail,
                "findtime",
                &v.raw,
                &v.text,
                format!("not a fail2ban time ({why}): crmonban's default is kept"),
            ),
        }
    }
    if let Some(v) = get(config, report, jail, "bantime")
        && let Some(value) = ban_length(report, jail, "bantime", &v)
    {
        service.ban_time = Some(Sourced {
            value,
            from: from_text(config, "bantime", &v),
        });
    }
}

/// A fail2ban `bantime` as a crmonban ban length (negative: permanent); `None`, reported,
/// when it has none.
pub fn ban_length(report: &mut Report, jail: &str, key: &str, v: &Resolved) -> Option<BanLength> {
    match values::seconds(&v.text) {
        Ok(secs) if secs < 0.0 => Some(BanLength::Permanent),
        Ok(secs) if secs >= 0.5 => Some(BanLength::Secs(clamp(report, jail, key, v, secs))),
        Ok(_) => {
            let message = "a ban of no length has no equivalent (crmonban's 0 is permanent): \
                           crmonban's default is kept";
            report.value(Kind::Lost, jail, key, &v.raw, &v.text, message.into());
            None
        }
        Err(why) => {
            let message = format!("not a fail2ban time ({why}): crmonban's default is kept");
            report.value(Kind::Lost, jail, key, &v.raw, &v.text, message);
            None
        }
    }
}

/// Whole seconds, at most [`MAX_SECS`] (reported when cut).
pub fn clamp(report: &mut Report, jail: &str, key: &str, v: &Resolved, secs: f64) -> u64 {
    let rounded = secs.round();
    if rounded > MAX_SECS as f64 {
        let message = format!("longer than crmonban's longest length: {MAX_SECS} s is written");
        report.value(Kind::Note, jail, key, &v.raw, &v.text, message);
        return MAX_SECS;
    }
    rounded as u64
}

/// `backend`, `journalmatch` and `logpath`: where the service's lines come from.
fn log_source(
    config: &JailConfig,
    report: &mut Report,
    jail: &str,
    pack: &Pack,
    service: &mut Service,
) {
    let backend = get(config, report, jail, "backend");
    let journal = match &backend {
        None => false,
        Some(b) => match values::invocation(&b.text) {
            Ok(i) if matches!(i.name.as_str(), "auto" | "pyinotify" | "polling" | "gamin") => false,
            Ok(i) if i.name == "systemd" => {
                if !i.options.is_empty() {
                    let message = "backend options have no equivalent: crmonban reads the \
                                   system journal";
                    report.value(Kind::Lost, jail, "backend", &b.raw, &b.text, message.into());
                }
                true
            }
            _ => {
                let message = "an unknown backend: crmonban's default source (auto) is kept";
                report.value(Kind::Lost, jail, "backend", &b.raw, &b.text, message.into());
                return;
            }
        },
    };
    if pack.name == "recidive" {
        // fail2ban's recidive reads fail2ban's own log; crmonban's reads crmonban's.
        if let Some(v) = get(config, report, jail, "logpath").filter(|_| !journal) {
            let message = "crmonban's recidive counts crmonban's own bans (its log or journal), \
                           not fail2ban's log: its default source is kept";
            report.value(Kind::Note, jail, "logpath", &v.raw, &v.text, message.into());
        }
        return;
    }
    let from_backend =
        |config: &JailConfig| backend.as_ref().map(|b| from_text(config, "backend", b));
    if journal {
        if let Some(m) = get(config, report, jail, "journalmatch") {
            let text = m.text.split_whitespace().collect::<Vec<_>>().join(" ");
            match JournalMatch::parse(&text) {
                Ok(parsed) => {
                    service.journal_match = Some(Sourced {
                        value: parsed.to_string(),
                        from: from_text(config, "journalmatch", &m),
                    });
                }
                Err(why) => {
                    let message = format!("{why}: the pack's journal_match is kept");
                    report.value(Kind::Lost, jail, "journalmatch", &m.raw, &m.text, message);
                }
            }
        }
        if service.journal_match.is_some() || pack.journal_match.is_some() {
            service.source = from_backend(config).map(|from| Sourced {
                value: "journal",
                from,
            });
            return;
        }
        if let Some(b) = &backend {
            let message = format!(
                "crmonban knows no journal entries of `{}`: it reads the log file instead",
                pack.name
            );
            report.value(Kind::Note, jail, "backend", &b.raw, &b.text, message);
        }
    }
    service.source = Some(Sourced {
        value: "file",
        from: from_backend(config).unwrap_or_else(|| "backend = auto (fail2ban's default)".into()),
    });
    let Some(v) = get(config, report, jail, "logpath") else {
        return;
    };
    let chosen = logpath::choose(&v.text, pack.log_path.as_deref().map(Path::new));
    for (path, problem, lost) in chosen.problems {
        let kind = if lost { Kind::Lost } else { Kind::Note };
        report.value(kind, jail, "logpath", &v.raw, &path, problem);
    }
    match chosen.path {
        Some(path) => {
            service.log_path = Some(Sourced {
                value: path,
                from: from_text(config, "logpath", &v),
            });
        }
        None if pack.log_path.is_some() => {
            let message = "no log file to read: crmonban's default log of the service is kept";
            report.value(Kind::Note, jail, "logpath", &v.raw, &v.text, message.into());
        }
        None => {
            // Without a file, `source = "file"` would be refused: fall back to crmonban's.
            service.source = None;
        }
    }
}

/// Adds `service` to `services`, or merges it into the one of the same pack, reporting the
/// values of the later jail that are not kept.
pub fn merge(services: &mut Vec<Service>, report: &mut Report, jail: &Jail<'_>, service: Service) {
    let Some(first) = services.iter_mut().find(|s| s.name == service.name) else {
        services.push(service);
        return;
    };
    let mut dropped = Vec::new();
    let mut compare = |key: &str, kept: Option<String>, other: Option<String>| {
        if let Some(other) = other.filter(|o| Some(o) != kept.as_ref()) {
            dropped.push(format!("{key} {other}"));
        }
    };
    compare(
        "log",
        shown(&first.log_path, |p| p.clone()),
        shown(&service.log_path, |p| p.clone()),
    );
    let text = |v: &&str| (*v).to_owned();
    compare(
        "source",
        shown(&first.source, text),
        shown(&service.source, text),
    );
    compare(
        "journal",
        shown(&first.journal_match, |m| m.clone()),
        shown(&service.journal_match, |m| m.clone()),
    );
    let number = |n: &u32| n.to_string();
    compare(
        "maxretry",
        shown(&first.max_failures, number),
        shown(&service.max_failures, number),
    );
    let secs = |n: &u64| format!("{n} s");
    compare(
        "findtime",
        shown(&first.find_time, secs),
        shown(&service.find_time, secs),
    );
    let length = |b: &BanLength| match b {
        BanLength::Secs(n) => format!("{n} s"),
        BanLength::Permanent => "permanent".to_owned(),
    };
    compare(
        "bantime",
        shown(&first.ban_time, length),
        shown(&service.ban_time, length),
    );
    let ports = |p: &Vec<u16>| format!("{p:?}");
    compare(
        "port",
        shown(&first.ports, ports),
        shown(&service.ports, ports),
    );
    let mut message = format!(
        "crmonban's `{}` service covers this jail and [{}] together",
        service.name, first.jails[0]
    );
    if !dropped.is_empty() {
        message.push_str(&format!(
            "; the values of [{}] are kept, not this jail's {}",
            first.jails[0],
            dropped.join(", ")
        ));
    }
    first.jails.push(jail.name.to_owned());
    report.jail(Kind::Note, jail.name, Some(&jail.enabled), message);
}

fn shown<T>(value: &Option<Sourced<T>>, show: impl Fn(&T) -> String) -> Option<String> {
    value.as_ref().map(|v| show(&v.value))
}

/// Whether two port lists name the same ports, in any order.
fn same_ports(a: &[u16], b: &[u16]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}
