//! `crmonctl import-fail2ban --bans [DB]`: fail2ban's active bans, read from its SQLite
//! database, sent to the running daemon with the D-Bus `Ban` call.
//!
//! fail2ban 0.11 and later keep every ban in `bans(jail, ip, timeofban, bantime, bancount,
//! data)` and the latest ban of each address and jail in `bips` (same columns); `bantime` is in
//! seconds, -1 permanent, -2 unknown (a ban carried over from an older database). Databases of
//! fail2ban 0.10 and older have `bans` without `bantime`. A ban is active while `timeofban +
//! bantime` is in the future, or when permanent; a ban of unknown length lasts its jail's
//! `bantime` in DIR's configuration. An address banned by several jails is sent once, with
//! its longest remaining ban; each ban is sent for the time it has left, with the reason
//! `fail2ban:<jail>`. Reading the file is all crmonctl does with it: it is opened read-only.

use std::collections::BTreeMap;
use std::path::Path;

use crmonban_core::text::escape_control;
use crmonban_dbus::{DaemonProxy, Error, MAX_NOTE_TEXT};
use futures_util::StreamExt;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use super::ImportArgs;
use super::map::BanLength;
use super::reader::JailConfig;
use super::report::Report;
use crate::Failure;

/// `Ban` calls in flight at once.
const IN_FLIGHT: usize = 16;

/// One row: the latest ban of an address by a jail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub ip: String,
    pub jail: String,
    pub timeofban: i64,
    /// `None`: not recorded (fail2ban 0.10 and older).
    pub bantime: Option<i64>,
}

/// The time a ban has left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Left {
    Secs(u32),
    Permanent,
}

/// The bans to send, and what was left out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Active {
    /// Per address: the jail and time left of its longest ban.
    pub bans: BTreeMap<String, (String, Left)>,
    pub rows: usize,
    pub expired: usize,
    /// Bans of unknown length whose jail's `bantime` is not known either.
    pub unknown: usize,
}

/// Reads the latest ban of every address and jail from the fail2ban database at `db`.
pub async fn read_rows(db: &Path) -> Result<Vec<Row>, String> {
    let shown = db.display();
    if !db.is_file() {
        return Err(format!(
            "{shown}: no such file (fail2ban's database is its `dbfile`, set in fail2ban.conf)"
        ));
    }
    let options = SqliteConnectOptions::new().filename(db).read_only(true);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| format!("{shown}: {e}"))?;
    let not_fail2ban = |e: sqlx::Error| format!("{shown}: not a fail2ban database ({e})");
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut conn)
            .await
            .map_err(not_fail2ban)?;
    let has = |name: &str| tables.iter().any(|(t,)| t == name);
    let columns: Vec<(String,)> = sqlx::query_as("SELECT name FROM pragma_table_info('bans')")
        .fetch_all(&mut conn)
        .await
        .map_err(not_fail2ban)?;
    let query = if has("bips") {
        "SELECT ip, jail, CAST(timeofban AS INTEGER), CAST(ROUND(bantime) AS INTEGER) FROM bips"
    } else if has("bans") && columns.iter().any(|(c,)| c == "bantime") {
        "SELECT ip, jail, CAST(timeofban AS INTEGER), CAST(ROUND(bantime) AS INTEGER) FROM bans"
    } else if has("bans") {
        "SELECT ip, jail, CAST(timeofban AS INTEGER), NULL FROM bans"
    } else {
        return Err(format!(
            "{shown}: not a fail2ban database (no table `bips` or `bans`)"
        ));
    };
    type Fields = (Option<String>, Option<String>, Option<i64>, Option<i64>);
    let fetched: Vec<Fields> = sqlx::query_as(query)
        .fetch_all(&mut conn)
        .await
        .map_err(not_fail2ban)?;
    let _ = conn.close().await;
    // The latest ban of each address and jail (`bans` holds every ban, `bips` only these).
    let mut latest: BTreeMap<(String, String), Row> = BTreeMap::new();
    for (ip, jail, timeofban, bantime) in fetched {
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

/// `crmonctl import-fail2ban --bans [DB]`: sends the active bans, prints a summary; fails
/// (exit 1) when a ban could not be made for another reason than a refusal.
pub async fn import_bans(
    proxy: &DaemonProxy<'_>,
    args: &ImportArgs,
    call: impl Fn(Error) -> Failure,
) -> Result<String, Failure> {
    let db = args.bans.as_deref().unwrap_or(Path::new(super::DEFAULT_DB));
    let rows = read_rows(db).await.map_err(Failure::Unsuccessful)?;
    // Only bans whose length the database does not know need the jails' configuration.
    let mut config = None;
    let mut bantime_of = |jail: &str| {
        let config = config.get_or_insert_with(|| JailConfig::read(&args.dir).ok());
        let config = config.as_ref()?;
        let mut quiet = Report::default();
        let v = config.get(jail, "bantime").ok()??;
        super::map::ban_length(&mut quiet, jail, "bantime", &v)
    };
    let now = crmonban_core::unix_now();
    let found = active(&rows, now, &mut bantime_of);

    let mut results = futures_util::stream::iter(found.bans.iter())
        .map(|(ip, (jail, left))| async move {
            let secs = match left {
                Left::Permanent => 0,
                Left::Secs(secs) => *secs,
            };
            let answer = proxy.ban(ip, secs, &reason(jail)).await;
            (ip, jail, answer)
        })
        .buffered(IN_FLIGHT);
    let (mut imported, mut already) = (0usize, 0usize);
    let mut refused = Vec::new();
    let mut failed = Vec::new();
    while let Some((ip, jail, answer)) = results.next().await {
        let line = |e: &Error| {
            format!(
                "  {} (jail {}): {}\n",
                escape_control(ip),
                escape_control(jail),
                escape_control(&e.to_string())
            )
        };
        match answer {
            Ok(true) => imported += 1,
            Ok(false) => already += 1,
            Err(e @ Error::AccessDenied(_)) => return Err(Failure::Daemon(e)),
            Err(e) if crate::is_refusal(&e) => refused.push(line(&e)),
            Err(e @ Error::ZBus(_)) => return Err(call(e)),
            Err(e) => failed.push(line(&e)),
        }
    }
    let mut text = format!(
        "{}: {} bans (the latest of each address and jail), {} expired (skipped)\n",
        db.display(),
        found.rows,
        found.expired
    );
    if found.unknown > 0 {
        text.push_str(&format!(
            "{} of unknown length skipped (the database has no ban time, and {} no bantime for \
             their jail)\n",
            found.unknown,
            args.dir.display()
        ));
    }
    text.push_str(&format!(
        "sent to crmonban: {} addresses (each with its longest ban)\n",
        found.bans.len()
    ));
    text.push_str(&format!("imported: {imported}\n"));
    text.push_str(&format!("already banned at least as long: {already}\n"));
    text.push_str(&format!("refused: {}\n", refused.len()));
    text.extend(refused);
    if failed.is_empty() {
        return Ok(text);
    }
    text.push_str(&format!("failed: {}\n", failed.len()));
    let count = failed.len();
    text.extend(failed);
    crate::output::print(&text).map_err(Failure::Output)?;
    Err(Failure::Unsuccessful(format!(
        "{count} bans could not be imported"
    )))
}

#[cfg(test)]
#[path = "bans_tests.rs"]
mod tests;
