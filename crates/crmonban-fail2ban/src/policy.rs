//! What fail2ban sets per jail but crmonban has once, or not at all: `ignoreip` (crmonban's
//! whitelist, for every service), `ignoreself` and `ignorecommand`, the actions (crmonban bans
//! in its own nftables sets and sends no mail), and settings of fail2ban's own machinery
//! (`usedns`, `maxmatches`, regexes in the jail, ...) that are reported.

use std::collections::BTreeMap;

use crmonban_core::Target;

use super::ini::Origin;
use super::map::{Jail, get};
use super::reader::JailConfig;
use super::report::{Kind, Report};
use super::values;

/// The whitelist the enabled jails' `ignoreip` lists add up to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Whitelist {
    /// Addresses and networks, in the order first seen.
    pub networks: Vec<Target>,
    /// `file:` entries: files of addresses.
    pub files: Vec<String>,
}

/// `ignoreip`, `ignoreself` and `ignorecommand` of every enabled jail.
pub fn whitelist(config: &JailConfig, report: &mut Report, jails: &[Jail<'_>]) -> Whitelist {
    let mut list = Whitelist::default();
    // Each refused word is reported once, where first met (with every jail sharing that).
    let mut refused: BTreeMap<String, Origin> = BTreeMap::new();
    let default_words: Vec<String> = match config.get("DEFAULT", "ignoreip") {
        Ok(Some(v)) => values::words(&v.text)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    for jail in jails {
        let name = jail.name;
        if let Some(v) = get(config, report, name, "ignoreself")
            && !values::boolean(&v.text)
        {
            let message = "crmonban never bans the host's own addresses, whatever asks".into();
            report.value(Kind::Lost, name, "ignoreself", &v.raw, &v.text, message);
        }
        if let Some(v) = get(config, report, name, "ignorecommand")
            && !v.text.trim().is_empty()
        {
            let message = "crmonban runs no commands: a [[whitelist.sources]] of type \"daemon\" \
                           asks a D-Bus service instead"
                .into();
            report.value(Kind::Lost, name, "ignorecommand", &v.raw, &v.text, message);
        }
        let Some(v) = get(config, report, name, "ignoreip") else {
            continue;
        };
        let own: Vec<&str> = values::words(&v.text)
            .into_iter()
            .filter(|w| !default_words.iter().any(|d| d == w))
            .collect();
        if v.raw.section != "DEFAULT" && !own.is_empty() {
            let message = "crmonban's whitelist protects these addresses from every service, \
                           not only this one"
                .into();
            report.value(
                Kind::Note,
                name,
                "ignoreip",
                &v.raw,
                &own.join(" "),
                message,
            );
        }
        for word in values::words(&v.text) {
            if let Some(path) = word.strip_prefix("file:") {
                let path = format!("/{}", path.trim_start_matches('/'));
                if !list.files.contains(&path) {
                    list.files.push(path);
                }
                let message = "a [[whitelist.sources]] file: crmonban's takes one address or \
                               network per line (# comments), and re-reads it when it changes"
                    .into();
                report.value(Kind::Note, name, "ignoreip", &v.raw, word, message);
                continue;
            }
            match entry(word) {
                Ok(target) if always_protected(&target) => {}
                Ok(target) => {
                    if !list.networks.contains(&target) {
                        list.networks.push(target);
                    }
                }
                Err(message) => {
                    let first = refused
                        .entry(word.to_owned())
                        .or_insert_with(|| v.raw.origin.clone());
                    if *first == v.raw.origin {
                        report.value(Kind::Lost, name, "ignoreip", &v.raw, word, message);
                    }
                }
            }
        }
    }
    list
}

/// An `ignoreip` word as an address or network (`10.0.0.0/255.0.0.0` masks included), or
/// why it cannot be one.
fn entry(word: &str) -> Result<Target, String> {
    let text = match word.split_once('/') {
        Some((addr, mask)) if mask.contains('.') => {
            let bits: std::net::Ipv4Addr = mask
                .parse()
                .map_err(|_| format!("{mask:?} is not a netmask"))?;
            let bits = u32::from(bits);
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return Err(format!("{mask} is not a contiguous netmask"));
            }
            format!("{addr}/{}", bits.leading_ones())
        }
        _ => word.to_owned(),
    };
    Target::parse(&text).map_err(|e| {
        let host_name = word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            && word.chars().any(|c| c.is_ascii_alphabetic());
        if host_name {
            "a host name: crmonban's whitelist takes addresses and networks; add the host's \
             addresses (crmonctl whitelist add ADDR)"
                .to_owned()
        } else {
            format!("{e}: not carried over")
        }
    })
}

/// Loopback and link-local: crmonban protects them without a whitelist entry.
fn always_protected(target: &Target) -> bool {
    ["127.0.0.0/8", "::1", "169.254.0.0/16", "fe80::/10"]
        .iter()
        .filter_map(|outer| Target::parse(outer).ok())
        .any(|outer| outer.covers(target))
}

/// What kind of fail2ban action a name is.
fn action_message(name: &str) -> (Kind, &'static str) {
    const FIREWALLS: &[&str] = &[
        "iptables",
        "ip6tables",
        "nftables",
        "firewallcmd",
        "shorewall",
        "ufw",
        "route",
        "pf",
        "ipfw",
        "bsd-ipfw",
        "ipfilter",
        "npf",
        "apf",
        "csf-ip-deny",
        "hostsdeny",
        "symbiosis-blacklist-allports",
        "osx-afctl",
        "osx-ipfw",
    ];
    let base = name.trim_end_matches(".py");
    if FIREWALLS
        .iter()
        .any(|f| base == *f || base.starts_with(&format!("{f}-")))
    {
        (
            Kind::Note,
            "crmonban bans in its own nftables sets (table inet crmonban, input and forward \
             hooks): every port and protocol of the address, IPv4 and IPv6, restored at start",
        )
    } else if base.contains("mail") || base == "complain" || base == "xarf-login-attack" {
        (
            Kind::Lost,
            "crmonban sends no mail: its [siem] targets (webhook, syslog, file) carry every ban",
        )
    } else if base == "abuseipdb" {
        (
            Kind::Lost,
            "crmonban reports bans to AbuseIPDB itself: set [intel] abuseipdb_report = true and \
             abuseipdb_api_key_file",
        )
    } else {
        (
            Kind::Lost,
            "crmonban runs no actions besides its own bans: a [siem] webhook target can tell \
             another system",
        )
    }
}

/// Reports each action of each enabled jail.
pub fn actions(config: &JailConfig, report: &mut Report, jails: &[Jail<'_>]) {
    for jail in jails {
        let name = jail.name;
        let Some(action) = get(config, report, name, "action") else {
            continue;
        };
        let banaction = |key: &str, report: &mut Report| {
            get(config, report, name, key).and_then(|v| {
                let invocation = values::invocation(&v.text).ok()?;
                Some((invocation.name, v))
            })
        };
        let ban_actions = [
            ("banaction", banaction("banaction", report)),
            (
                "banaction_allports",
                banaction("banaction_allports", report),
            ),
        ];
        for text in values::invocations(&action.text) {
            let invocation = match values::invocation(&text) {
                Ok(i) => i,
                Err(why) => {
                    let message = format!("{why}: ignored");
                    report.value(Kind::Lost, name, "action", &action.raw, &text, message);
                    continue;
                }
            };
            let (kind, message) = action_message(&invocation.name);
            // Point at the `banaction` the action names, where it comes from there.
            let from = ban_actions.iter().find_map(|(key, found)| {
                found
                    .as_ref()
                    .filter(|(n, _)| *n == invocation.name)
                    .map(|(_, v)| (key, v))
            });
            match from {
                Some((key, v)) => report.value(kind, name, key, &v.raw, &v.text, message.into()),
                None => report.value(
                    kind,
                    name,
                    "action",
                    &action.raw,
                    &invocation.name,
                    message.into(),
                ),
            }
        }
    }
}

/// Settings of fail2ban's machinery with no crmonban counterpart, reported where set.
pub fn machinery(config: &JailConfig, report: &mut Report, jails: &[Jail<'_>]) {
    for jail in jails {
        let name = jail.name;
        if let Some(v) = get(config, report, name, "usedns")
            && !v.text.trim().eq_ignore_ascii_case("no")
        {
            let message = "crmonban's patterns match addresses only: a host name in a log line \
                           is never looked up"
                .into();
            report.value(Kind::Lost, name, "usedns", &v.raw, &v.text, message);
        }
        if let Some(v) = get(config, report, name, "logencoding")
            && !matches!(
                v.text.trim().to_ascii_lowercase().as_str(),
                "auto" | "utf-8" | "utf8"
            )
        {
            let message = "crmonban reads logs as UTF-8 (invalid bytes replaced)".into();
            report.value(Kind::Lost, name, "logencoding", &v.raw, &v.text, message);
        }
        for (key, message) in [
            (
                "failregex",
                "regexes in the jail are not carried over: add [[services.NAME.patterns]] with \
                 (?P<ip>...) where fail2ban's say <HOST>",
            ),
            (
                "ignoreregex",
                "crmonban's patterns have no ignore list: lines matching a pattern count",
            ),
            ("prefregex", "crmonban's packs know their log format"),
            (
                "datepattern",
                "crmonban's packs read the timestamps of their log format",
            ),
            (
                "logtimezone",
                "crmonban's packs read timestamps as their log format writes them",
            ),
            ("maxlines", "crmonban's patterns match one line each"),
            (
                "ignorecache",
                "crmonban caches its whitelist answers itself ([whitelist] cache_ttl_secs)",
            ),
            (
                "bantime.rndtime",
                "crmonban's bans last exactly their length",
            ),
        ] {
            if let Some(v) = get(config, report, name, key)
                && !v.text.trim().is_empty()
            {
                report.value(Kind::Lost, name, key, &v.raw, &v.text, message.into());
            }
        }
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
