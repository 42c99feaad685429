//! fail2ban's `bantime.increment` mapped onto crmonban's escalation of repeat offenders.
//!
//! fail2ban lengthens the n-th repeat ban of an address (n previous bans) to
//! `bantime × factor × 2^n` (its default formula), or `bantime × factor × multipliers[n]`
//! (the last multiplier for every later ban), capped at `bantime.maxtime`, per jail. crmonban
//! has one rule for every service ([general]): `ban_time × ban_time_increment^n`, capped at
//! `max_ban_time`. The default formula with factor 1 is exactly `ban_time_increment = 2.0`;
//! multipliers that double (1 2 4 8 ...) are too, their last one giving the cap. Anything else
//! is approximated and reported.

use std::collections::BTreeSet;

use super::map::{Jail, MAX_SECS, get};
use super::reader::JailConfig;
use super::report::{Entry, Kind, Report};
use super::values;

/// crmonban's escalation: `[general] ban_time_increment` and `max_ban_time` (0: no cap).
#[derive(Clone, Debug, PartialEq)]
pub struct Escalation {
    /// `ban_time_increment`: each repeat ban lasts this many times the one before.
    pub increment: f64,
    /// `max_ban_time` in seconds (0: no cap).
    pub max_ban_time: u64,
    /// The jails it comes from.
    pub jails: Vec<String>,
}

/// fail2ban's default formula, spaces removed.
const DEFAULT_FORMULA: &str = "ban.Time*(1<<(ban.Countifban.Count<20else20))*banFactor";

/// One jail's escalation: the ratio and the cap (`None`: no cap).
fn jail_escalation(
    config: &JailConfig,
    report: &mut Report,
    jail: &str,
) -> Option<(f64, Option<u64>)> {
    let bantime = get(config, report, jail, "bantime")
        .and_then(|v| values::seconds(&v.text).ok())
        .filter(|s| *s > 0.0)?;
    let factor = match get(config, report, jail, "bantime.factor") {
        None => 1.0,
        Some(v) => match v.text.trim().parse::<f64>() {
            Ok(f) if f > 0.0 => f,
            _ => {
                let message = "not a positive number: taken as 1".into();
                report.value(Kind::Lost, jail, "bantime.factor", &v.raw, &v.text, message);
                1.0
            }
        },
    };
    let multipliers = get(config, report, jail, "bantime.multipliers");
    let mut cap = None;
    let ratio = match multipliers.as_ref().filter(|m| !m.text.trim().is_empty()) {
        Some(m) => {
            let parsed: Result<Vec<f64>, _> =
                m.text.split_whitespace().map(str::parse::<f64>).collect();
            let list = match parsed {
                Ok(list) if list.iter().all(|x| *x > 0.0) => list,
                _ => {
                    let message = "not a list of positive numbers: ignored".into();
                    report.value(
                        Kind::Lost,
                        jail,
                        "bantime.multipliers",
                        &m.raw,
                        &m.text,
                        message,
                    );
                    return Some((2.0, None));
                }
            };
            // The n-th repeat ban lasts bantime × factor × list[min(n, last)], n from 1.
            let steps: Vec<f64> = list.iter().skip(1).map(|x| x * factor).collect();
            let steps = if steps.is_empty() {
                vec![list[0] * factor]
            } else {
                steps
            };
            let first = steps[0];
            let geometric = steps
                .iter()
                .enumerate()
                .all(|(i, s)| (s - first.powi(i as i32 + 1)).abs() <= 1e-9 * s.abs().max(1.0));
            let last = *steps.last().expect("not empty");
            cap = Some((bantime * last).round().min(MAX_SECS as f64) as u64);
            if geometric {
                first
            } else {
                let ratio = last.powf(1.0 / steps.len() as f64);
                let ratio = (ratio * 100.0).round() / 100.0;
                let message = format!(
                    "not a geometric series: crmonban's n-th repeat ban lasts ban_time × \
                     ban_time_increment^n; {ratio} reaches the last multiplier after as many \
                     bans, and the last multiplier gives the cap"
                );
                report.value(
                    Kind::Note,
                    jail,
                    "bantime.multipliers",
                    &m.raw,
                    &m.text,
                    message,
                );
                ratio
            }
        }
        None => {
            if let Some(f) = get(config, report, jail, "bantime.formula") {
                let compact: String = f.text.split_whitespace().collect();
                if compact != DEFAULT_FORMULA {
                    let message = "crmonban has no formula: its repeat bans double \
                                   (ban_time_increment = 2.0)"
                        .into();
                    report.value(
                        Kind::Lost,
                        jail,
                        "bantime.formula",
                        &f.raw,
                        &f.text,
                        message,
                    );
                }
            }
            if factor != 1.0
                && let Some(v) = get(config, report, jail, "bantime.factor")
            {
                let message = "crmonban has no factor: its n-th repeat ban lasts \
                               ban_time × 2^n, fail2ban's ban_time × factor × 2^n"
                    .into();
                report.value(Kind::Lost, jail, "bantime.factor", &v.raw, &v.text, message);
            }
            2.0
        }
    };
    if let Some(v) = get(config, report, jail, "bantime.maxtime") {
        match values::seconds(&v.text) {
            Ok(secs) if secs >= 0.5 => {
                let secs = secs.round().min(MAX_SECS as f64) as u64;
                cap = Some(cap.map_or(secs, |c| c.min(secs)));
            }
            _ => {
                let message = "not a positive length: no cap".into();
                report.value(
                    Kind::Lost,
                    jail,
                    "bantime.maxtime",
                    &v.raw,
                    &v.text,
                    message,
                );
            }
        }
    }
    Some((ratio.max(1.0), cap))
}

/// The escalation of the enabled jails, `None` when none sets `bantime.increment`.
pub fn escalation(
    config: &JailConfig,
    report: &mut Report,
    jails: &[Jail<'_>],
) -> Option<Escalation> {
    let mut found: Vec<(String, f64, Option<u64>)> = Vec::new();
    let mut without = Vec::new();
    let mut per_jail_count = BTreeSet::new();
    for jail in jails {
        let name = jail.name;
        let increment = get(config, report, name, "bantime.increment");
        if !increment.as_ref().is_some_and(|v| values::boolean(&v.text)) {
            // Permanent bans do not escalate: nothing changes for a jail that bans for good.
            let permanent = get(config, report, name, "bantime")
                .and_then(|v| values::seconds(&v.text).ok())
                .is_some_and(|secs| secs < 0.0);
            if !permanent {
                without.push(jail);
            }
            continue;
        }
        let overall = get(config, report, name, "bantime.overalljails");
        if !overall.as_ref().is_some_and(|v| values::boolean(&v.text)) {
            per_jail_count.insert(name.to_owned());
        }
        if let Some((ratio, cap)) = jail_escalation(config, report, name) {
            found.push((name.to_owned(), ratio, cap));
        }
    }
    if found.is_empty() {
        return None;
    }
    let increment = found.iter().map(|f| f.1).fold(1.0, f64::max);
    let capped = found.iter().all(|f| f.2.is_some());
    let max_ban_time = if capped {
        found.iter().filter_map(|f| f.2).max().unwrap_or(0)
    } else {
        0
    };
    let distinct = |a: &(String, f64, Option<u64>)| (a.1.to_bits(), a.2);
    if found.iter().any(|f| distinct(f) != distinct(&found[0])) {
        let detail: Vec<String> = found
            .iter()
            .map(|(jail, ratio, cap)| {
                let cap = cap.map_or_else(|| "no cap".to_owned(), |c| format!("cap {c} s"));
                format!("[{jail}] ×{ratio}, {cap}")
            })
            .collect();
        report.general(
            Kind::Note,
            "bantime.increment",
            format!(
                "the jails escalate differently ({}); crmonban has one escalation for every \
                 service: ban_time_increment = {increment}, max_ban_time = {max_ban_time}",
                detail.join("; ")
            ),
        );
    }
    for jail in without {
        report.jail(
            Kind::Note,
            jail.name,
            Some(&jail.enabled),
            "no bantime.increment here, but crmonban's escalation ([general] \
             ban_time_increment) applies to every service: this one's repeat bans grow too"
                .into(),
        );
    }
    if !per_jail_count.is_empty() {
        report.add(Entry {
            kind: Kind::Note,
            origin: None,
            subject: "bantime.overalljails".into(),
            message: "unset or false: fail2ban counted an address's earlier bans in the same \
                      jail only, crmonban counts them in every service"
                .into(),
            jails: per_jail_count,
        });
    }
    Some(Escalation {
        increment,
        max_ban_time,
        jails: found.into_iter().map(|f| f.0).collect(),
    })
}

#[cfg(test)]
#[path = "escalation_tests.rs"]
mod tests;
