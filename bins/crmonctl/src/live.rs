//! What goes on, as it goes on: `crmonctl logs --follow` (the activity log, new entries as
//! they are written) and `crmonctl watch` (the daemon's signals: bans, unbans, attacks). Both
//! run until interrupted (Ctrl-C) or until the daemon stops; each line is written and flushed
//! as it comes, with control characters escaped.

use std::time::Duration;

use crmonban_core::text::escape_control;
use crmonban_dbus::{DaemonProxy, LogInfo, rfc3339_utc};
use futures_util::StreamExt;

use crate::output::{duration_text, print};

/// How often `logs --follow` asks for new entries.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// Entries read per poll: more written within one poll than this are not all shown.
const FOLLOW_READ: u32 = 500;

/// One activity entry as a line: time, action, target, detail.
pub fn log_line((time, action, target, detail): &LogInfo) -> String {
    format!(
        "{}  {:<8}  {:<18}  {}\n",
        rfc3339_utc(*time),
        escape_control(action),
        escape_control(target),
        escape_control(detail)
    )
}

/// The entries of `newest_first` not shown yet, oldest first: those after `shown_time`, and
/// at `shown_time` those not in `shown_at_time` (entries of the same second).
fn unseen(newest_first: Vec<LogInfo>, shown_time: i64, shown_at_time: &[LogInfo]) -> Vec<LogInfo> {
    let mut fresh: Vec<LogInfo> = newest_first
        .into_iter()
        .filter(|entry| {
            entry.0 > shown_time || (entry.0 == shown_time && !shown_at_time.contains(entry))
        })
        .collect();
    fresh.reverse();
    fresh
}

/// `crmonctl logs --follow`: the last `limit` entries, then every new one.
pub async fn follow_logs(
    proxy: &DaemonProxy<'_>,
    limit: u32,
    call: impl Fn(crmonban_dbus::Error) -> crate::Failure,
) -> Result<(), crate::Failure> {
    let mut shown_time = i64::MIN;
    let mut shown_at_time: Vec<LogInfo> = Vec::new();
    let mut read = limit;
    loop {
        let entries = proxy.get_logs(read).await.map_err(&call)?;
        let fresh = unseen(entries, shown_time, &shown_at_time);
        for entry in &fresh {
            if entry.0 != shown_time {
                shown_time = entry.0;
                shown_at_time.clear();
            }
            shown_at_time.push(entry.clone());
        }
        let text: String = fresh.iter().map(log_line).collect();
        print(&text).map_err(crate::Failure::Output)?;
        read = FOLLOW_READ;
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// `crmonctl watch`: one line per BanAdded, BanRemoved and AttackDetected signal, until the
/// daemon says it stops.
pub async fn watch(
    proxy: &DaemonProxy<'_>,
    call: impl Fn(crmonban_dbus::Error) -> crate::Failure,
) -> Result<(), crate::Failure> {
    let subscribe = |e: zbus::Error| call(crmonban_dbus::Error::ZBus(e));
    let mut added = proxy.receive_ban_added().await.map_err(subscribe)?;
    let mut removed = proxy.receive_ban_removed().await.map_err(subscribe)?;
    let mut attacks = proxy.receive_attack_detected().await.map_err(subscribe)?;
    let mut stopping = proxy.receive_daemon_stopping().await.map_err(subscribe)?;
    print("watching crmonband (Ctrl-C ends)\n").map_err(crate::Failure::Output)?;
    loop {
        let now = crmonban_core::unix_now();
        let line = tokio::select! {
            Some(signal) = added.next() => signal.args().ok().map(|a| {
                let lasting = if a.duration_secs == 0 {
                    "permanently".to_owned()
                } else {
                    format!("for {}", duration_text(u64::from(a.duration_secs)))
                };
                format!(
                    "ban     {} {lasting} ({}, {})",
                    escape_control(a.ip),
                    escape_control(a.source),
                    escape_control(a.reason)
                )
            }),
            Some(signal) = removed.next() => signal.args().ok().map(|a| {
                format!("unban   {} ({})", escape_control(a.ip), escape_control(a.reason))
            }),
            Some(signal) = attacks.next() => signal.args().ok().map(|a| {
                format!(
                    "attack  {} {} {}",
                    escape_control(a.ip),
                    escape_control(a.service),
                    escape_control(a.event_type)
                )
            }),
            _ = stopping.next() => {
                print(&format!("{}  the daemon is stopping\n", rfc3339_utc(now)))
                    .map_err(crate::Failure::Output)?;
                return Ok(());
            }
        };
        if let Some(line) = line {
            print(&format!("{}  {line}\n", rfc3339_utc(now))).map_err(crate::Failure::Output)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(time: i64, action: &str, target: &str) -> LogInfo {
        (time, action.into(), target.into(), String::new())
    }

    #[test]
    fn only_entries_not_shown_come_out_oldest_first() {
        let newest_first = vec![
            entry(12, "ban", "192.0.2.9"),
            entry(11, "unban", "192.0.2.8"),
            entry(11, "ban", "192.0.2.8"),
            entry(10, "ban", "192.0.2.7"),
        ];
        // Nothing shown yet: all, oldest first.
        let all = unseen(newest_first.clone(), i64::MIN, &[]);
        assert_eq!(all.first(), Some(&entry(10, "ban", "192.0.2.7")));
        assert_eq!(all.last(), Some(&entry(12, "ban", "192.0.2.9")));
        // Second 11 half shown: its other entry and the later one.
        let rest = unseen(newest_first, 11, &[entry(11, "ban", "192.0.2.8")]);
        assert_eq!(
            rest,
            vec![
                entry(11, "unban", "192.0.2.8"),
                entry(12, "ban", "192.0.2.9")
            ]
        );
    }

    #[test]
    fn a_line_escapes_what_could_forge_another() {
        let line = log_line(&(0, "ban".into(), "192.0.2.7".into(), "x\nforged".into()));
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(line.contains("x\\nforged"), "{line}");
    }
}
