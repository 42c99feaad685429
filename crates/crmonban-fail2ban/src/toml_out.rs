//! The converted configuration written as crmonban's `config.toml`: only the keys the fail2ban
//! configuration decides, each under a comment naming the fail2ban setting (file:line) it
//! comes from; everything else keeps crmonban's defaults.

use std::fmt::Write as _;

use super::Conversion;
use super::map::{BanLength, Service, Sourced};

/// A TOML string literal.
fn string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// A length as people write it (`"10m"`, `"1d 12h"`), which crmonban's config reads back
/// exactly; 0 stays 0.
fn duration(secs: u64) -> String {
    if secs == 0 {
        "0".to_owned()
    } else {
        string(&crmonban_core::duration::format(Some(secs)))
    }
}

fn ban_length(length: BanLength) -> String {
    match length {
        BanLength::Secs(secs) => duration(secs),
        BanLength::Permanent => string("permanent"),
    }
}

/// `# from\nkey = value\n`.
fn key<T>(out: &mut String, name: &str, value: &Option<Sourced<T>>, show: impl Fn(&T) -> String) {
    if let Some(v) = value {
        let _ = writeln!(out, "# {}", v.from.replace('\n', " "));
        let _ = writeln!(out, "{name} = {}", show(&v.value));
    }
}

fn service(out: &mut String, s: &Service) {
    let jails: Vec<String> = s.jails.iter().map(|j| format!("[{j}]")).collect();
    let _ = writeln!(out, "\n[services.{}]", s.name);
    let _ = writeln!(out, "# fail2ban jail {}", jails.join(" and "));
    out.push_str("enabled = true\n");
    key(out, "log_path", &s.log_path, |p| string(p));
    key(out, "source", &s.source, |v| string(v));
    key(out, "journal_match", &s.journal_match, |m| string(m));
    key(out, "max_failures", &s.max_failures, u32::to_string);
    key(out, "find_time", &s.find_time, |secs| duration(*secs));
    key(out, "ban_time", &s.ban_time, |b| ban_length(*b));
    key(out, "port", &s.ports, |ports| match ports.as_slice() {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    });
}

/// The configuration text.
pub fn render(conversion: &Conversion) -> String {
    let mut out = String::new();
    let dir = &conversion.dir;
    let files: Vec<String> = conversion
        .files
        .iter()
        .map(|f| f.strip_prefix(dir).unwrap_or(f).display().to_string())
        .collect();
    let _ = writeln!(
        out,
        "# crmonban configuration converted from fail2ban's {} by `crmonctl import-fail2ban`.",
        dir.display()
    );
    let _ = writeln!(out, "# Read: {}.", files.join(", "));
    out.push_str(
        "# Each value names the fail2ban setting it comes from; every key not written here keeps\n\
         # crmonban's default (docs/CONFIG.md). What had no equivalent was reported when this\n\
         # file was written (docs/MIGRATING-FROM-FAIL2BAN.md). Check it with\n\
         # `crmonband -c FILE check-config`.\n",
    );

    let mut general = String::new();
    key(
        &mut general,
        "default_ban_duration",
        &conversion.default_ban,
        |b| ban_length(*b),
    );
    if let Some(e) = &conversion.escalation {
        let jails: Vec<String> = e.jails.iter().map(|j| format!("[{j}]")).collect();
        let _ = writeln!(
            general,
            "# bantime.increment of {}: the n-th repeat ban lasts ban_time x {:?}^n",
            jails.join(", "),
            e.increment
        );
        let _ = writeln!(general, "ban_time_increment = {:?}", e.increment);
        let cap = if e.max_ban_time == 0 {
            "no cap (bantime.maxtime unset)".to_owned()
        } else {
            "bantime.maxtime, or the last of bantime.multipliers".to_owned()
        };
        let _ = writeln!(general, "# {cap}");
        let _ = writeln!(general, "max_ban_time = {}", duration(e.max_ban_time));
    }
    if !general.is_empty() {
        let _ = write!(out, "\n[general]\n{general}");
    }

    for s in &conversion.services {
        service(&mut out, s);
    }
    if !conversion.services.iter().any(|s| s.name == "ssh") {
        out.push_str(
            "\n[services.ssh]\n# fail2ban's sshd jail is not enabled; crmonban watches ssh unless \
             told not to\nenabled = false\n",
        );
    }

    let list = &conversion.whitelist;
    if !list.networks.is_empty() || !list.files.is_empty() {
        out.push_str(
            "\n# ignoreip of the jails; loopback and link-local addresses are always protected.\n\
             # crmonban's own sources are listed too: writing any source replaces the defaults.\n\
             [[whitelist.sources]]\ntype = \"database\"\n\n[[whitelist.sources]]\ntype = \"zones\"\n",
        );
        if !list.networks.is_empty() {
            let networks: Vec<String> = list
                .networks
                .iter()
                .map(|n| string(&n.to_string()))
                .collect();
            let _ = writeln!(
                out,
                "\n[[whitelist.sources]]\ntype = \"networks\"\nnetworks = [{}]",
                networks.join(", ")
            );
        }
        for path in &list.files {
            let _ = writeln!(
                out,
                "\n[[whitelist.sources]]\ntype = \"file\"\npath = {}",
                string(path)
            );
        }
    }
    out
}
