//! `crmonctl fleet nodes|bans`: what the fleet database holds, through the daemon
//! (`GetFleetNodes`, `GetFleetBans`), as tables.

use crmonban_dbus::{DaemonProxy, Error, FLEET_BANS_PAGE_MAX, FleetBanInfo, FleetNodeInfo};

use crate::cli::FleetCommand;
use crate::output;

/// A node whose last heartbeat is older than this is shown as silent.
const SILENT_AFTER: i64 = 120;

pub async fn run(proxy: &DaemonProxy<'_>, command: FleetCommand) -> Result<String, Error> {
    match command {
        FleetCommand::Nodes => Ok(nodes_table(
            &proxy.get_fleet_nodes().await?,
            crmonban_core::unix_now(),
        )),
        FleetCommand::Bans { limit } => {
            let mut bans = Vec::new();
            while bans.len() < limit as usize {
                let want = (limit - bans.len() as u32).min(FLEET_BANS_PAGE_MAX);
                let page = proxy.get_fleet_bans(bans.len() as u32, want).await?;
                let done = (page.len() as u32) < want;
                bans.extend(page);
                if done {
                    break;
                }
            }
            Ok(bans_table(&bans))
        }
    }
}

fn nodes_table(nodes: &[FleetNodeInfo], now: i64) -> String {
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|(name, version, first, last)| {
            let age = now.saturating_sub(*last).max(0);
            let state = if age <= SILENT_AFTER {
                "alive".to_owned()
            } else {
                format!("silent for {}", output::duration_text(age as u64))
            };
            vec![
                output::escape_control(name),
                output::escape_control(version),
                output::expiry_text(*first),
                output::expiry_text(*last),
                state,
            ]
        })
        .collect();
    output::table(
        &["NODE", "VERSION", "FIRST SEEN", "LAST SEEN", "STATE"],
        &rows,
    )
}

fn bans_table(bans: &[FleetBanInfo]) -> String {
    let rows: Vec<Vec<String>> = bans
        .iter()
        .map(|(node, target, reason, service, taken, ends)| {
            vec![
                output::escape_control(target),
                output::escape_control(node),
                output::escape_control(service),
                output::expiry_text(*taken),
                output::expiry_text(*ends),
                output::escape_control(reason),
            ]
        })
        .collect();
    output::table(
        &[
            "TARGET",
            "NODE",
            "SERVICE",
            "SHARED AT",
            "EXPIRES",
            "REASON",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_say_whether_they_beat_lately() {
        let text = nodes_table(
            &[
                ("web1".into(), "0.1.0".into(), 1_000, 9_990),
                ("web2\u{1b}[31m".into(), "0.1.0".into(), 1_000, 5_000),
            ],
            10_000,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NODE"), "{text}");
        assert!(
            lines[1].starts_with("web1") && lines[1].ends_with("alive"),
            "{text}"
        );
        assert!(lines[2].ends_with("silent for 1h 23m 20s"), "{text}");
        assert!(
            !text.contains('\u{1b}'),
            "control characters are escaped: {text}"
        );
    }

    #[test]
    fn bans_show_their_node_and_end() {
        let text = bans_table(&[(
            "web1".into(),
            "203.0.113.7".into(),
            "5 failures of ssh".into(),
            "ssh".into(),
            1_796_000_000,
            0,
        )]);
        let row = text.lines().nth(1).unwrap();
        assert!(row.starts_with("203.0.113.7"), "{text}");
        assert!(row.contains("web1") && row.contains("permanent"), "{text}");
    }
}
