//! fail2ban's active bans, from its SQLite database (read by crmonban-store, the crate that
//! holds the SQL, opened read-only), for `crmonctl import-fail2ban --bans`, which sends them to
//! the running daemon with the D-Bus `Ban` call.
//!
//! fail2ban 0.11 and later keep every ban in `bans(jail, ip, timeofban, bantime, bancount,
//! data)` and the latest ban of each address and jail in `bips` (same columns); `bantime` is in
//! seconds, -1 permanent, -2 unknown (a ban carried over from an older database). Databases of
//! fail2ban 0.10 and older have `bans` without `bantime`. A ban is active while `timeofban +
//! bantime` is in the future, or when permanent; a ban of unknown length lasts its jail's
//! `bantime` in the configuration directory. An address banned by several jails is sent once,
//! with its longest remaining ban; each ban is sent for the time it has left, with the reason
//! `fail2ban:<jail>`.

use std::collections::BTreeMap;
use std::path::Path;

use crmonban_dbus::MAX_NOTE_TEXT;

use crate::Error;
use crate::map::{self, BanLength};
use crate::reader::JailConfig;
use crate::report::Report;

/// One row: the latest ban of an address by a jail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The address as fail2ban wrote it (trimmed).
    pub ip: String,
    /// The jail that banned it.
    pub jail: String,
    /// When, in unix seconds.
    pub timeofban: i64,
    /// The ban's length in seconds, -1 permanent, -2 unknown;
    /// `None`: not recorded (fail2ban 0.10 and older).
    pub bantime: Option<i64>,
}

/// The time a ban has left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Left {
    /// This many seconds.
    Secs(u32),
    /// A permanent ban (sent as 0).
    Permanent,
}

/// The bans to send, and what was left out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Active {
    /// Per address: the jail and time left of its longest ban.
    pub bans: BTreeMap<String, (String, Left)>,
    /// The rows read: the latest ban of each address and jail.
    pub rows: usize,
    /// Rows whose ban has ended.
    pub expired: usize,
    /// Bans of unknown length whose jail's `bantime` is not known either.
    pub unknown: usize,
}

/// Reads the latest ban of every address and jail from the fail2ban database at `db`.
pub async fn read_rows(db: &Path) -> Result<Vec<Row>, Error> {
    let fetched = crmonban_store::read_fail2ban_bans(db).await?;
    // The latest ban of each address and jail (`bans` holds every ban, `bips` only these).
    let mut latest: BTreeMap<(String, String), Row> = BTreeMap::new();
    for crmonban_store::Fail2banBan {
        ip,
        jail,
        timeofban,
        bantime,
    } in fetched
    {
        let (Some(ip), Some(timeofban)) = (ip.map(|ip| ip.trim().to_owned()), timeofban) else {
            continue;
        };
        if ip.is_empty() {
            continue;
        }
        let jail = jail.unwrap_or_default();
        let row = Row {
            ip: ip.clone(),
            jail: jail.clone(),
            timeofban,
            bantime,
        };
        match latest.get(&(ip.clone(), jail.clone())) {
            Some(seen) if seen.timeofban >= timeofban => {}
            _ => {
                latest.insert((ip, jail), row);
            }
        }
    }
    Ok(latest.into_values().collect())
}

/// The active bans among `rows` at `now` (unix seconds); `bantime_of` gives a jail's
/// configured `bantime` for bans whose length the database does not know.
pub fn active(
    rows: &[Row],
    now: i64,
    mut bantime_of: impl FnMut(&str) -> Option<BanLength>,
) -> Active {
    let mut found = Active {
        rows: rows.len(),
        ..Active::default()
    };
    for row in rows {
        let length = match row.bantime {
            Some(-2) | None => match bantime_of(&row.jail) {
                Some(BanLength::Permanent) => None,
                Some(BanLength::Secs(secs)) => Some(i64::try_from(secs).unwrap_or(i64::MAX)),
                None => {
                    found.unknown += 1;
                    continue;
                }
            },
            Some(secs) if secs < 0 => None,
            Some(secs) => Some(secs),
        };
        let left = match length {
            None => Left::Permanent,
            Some(secs) => {
                let end = row.timeofban.saturating_add(secs);
                if end <= now {
                    found.expired += 1;
                    continue;
                }
                Left::Secs(u32::try_from(end - now).unwrap_or(u32::MAX))
            }
        };
        match found.bans.get(&row.ip) {
            Some((_, longest)) if *longest >= left => {}
            _ => {
                found.bans.insert(row.ip.clone(), (row.jail.clone(), left));
            }
        }
    }
    found
}

/// The reason sent with a ban: `fail2ban:<jail>`, within the daemon's limit, on one line.
pub fn reason(jail: &str) -> String {
    let mut reason: String = format!("fail2ban:{jail}")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    while reason.len() > MAX_NOTE_TEXT {
        reason.pop();
    }
    reason
}

/// The active bans in the fail2ban database at `db`, once read (their time left counted from
/// then). The length of a ban the database does not know is its jail's `bantime` in the
/// configuration directory `dir`, which is read only then (an unreadable directory leaves such
/// bans unknown).
pub async fn active_bans(db: &Path, dir: &Path) -> Result<Active, Error> {
    let rows = read_rows(db).await?;
    // Only bans whose length the database does not know need the jails' configuration.
    let mut config = None;
    let bantime_of = |jail: &str| {
        let config = config.get_or_insert_with(|| JailConfig::read(dir).ok());
        jail_bantime(config.as_ref()?, jail)
    };
    Ok(active(&rows, crmonban_core::unix_now(), bantime_of))
}

/// The `bantime` of `jail` in `config` as a ban length; `None` when unset or not a length.
pub fn jail_bantime(config: &JailConfig, jail: &str) -> Option<BanLength> {
    let mut quiet = Report::default();
    let v = config.get(jail, "bantime").ok()??;
    map::ban_length(&mut quiet, jail, "bantime", &v)
}

#[cfg(test)]
#[path = "bans_tests.rs"]
mod tests;
