//! `Status()`: the daemon's state as one `a{sv}` dictionary, its keys those of
//! `crmonban_dbus::status_keys` (documented in docs/DBUS.md).

use std::collections::HashMap;

use crmonban_dbus::status_keys;
use crmonban_engine::Running;
use zbus::{OwnedVariant, Variant};

/// Every key of the dictionary, read from `running` now.
pub async fn collect(running: &Running) -> HashMap<String, OwnedVariant> {
    let config = running.config().await;
    let services: Vec<String> = config
        .enabled_services()
        .map(|(name, _)| name.to_owned())
        .collect();
    let default_ban = config.general.default_ban_duration.as_secs();
    let mut status = HashMap::new();
    let mut put = |key: &str, value: Variant<'_>| {
        if let Ok(owned) = OwnedVariant::try_from(value) {
            status.insert(key.to_owned(), owned);
        }
    };
    put(status_keys::RUNNING, Variant::from(true));
    put(
        status_keys::VERSION,
        Variant::from(env!("CARGO_PKG_VERSION")),
    );
    put(
        status_keys::UPTIME_SECONDS,
        Variant::from(running.engine().uptime().as_secs()),
    );
    put(
        status_keys::ACTIVE_BANS,
        Variant::from(running.engine().active_ban_count()),
    );
    put(
        status_keys::EVENTS_PROCESSED,
        Variant::from(running.engine().events_processed()),
    );
    put(status_keys::SERVICES, Variant::from(services));
    put(
        status_keys::DEFAULT_BAN_DURATION,
        Variant::from(default_ban),
    );
    let records = running.engine().record_stats();
    put(status_keys::RECORDS_PENDING, Variant::from(records.pending));
    put(status_keys::RECORDS_FAILED, Variant::from(records.failed));
    put(status_keys::RECORDS_DROPPED, Variant::from(records.dropped));
    put(
        status_keys::EVENTS_DROPPED,
        Variant::from(running.engine().events_dropped()),
    );
    put(
        status_keys::ACTIVITY_DROPPED,
        Variant::from(running.engine().activity_dropped()),
    );
    put(
        status_keys::SIGNALS_DROPPED,
        Variant::from(crate::bus::SIGNALS_DROPPED.load(std::sync::atomic::Ordering::Relaxed)),
    );
    let intel = running.intel();
    let (sources, problems) = intel.sources();
    let sources: Vec<&str> = sources.iter().map(|s| s.as_str()).collect();
    put(status_keys::INTEL_SOURCES, Variant::from(sources));
    put(status_keys::INTEL_PROBLEMS, Variant::from(problems));
    put(
        status_keys::INTEL_DROPPED,
        Variant::from(intel.stats().dropped),
    );
    let siem = running.siem().stats();
    let exporting = if siem.enabled { siem.targets.len() } else { 0 };
    put(
        status_keys::SIEM_TARGETS,
        Variant::from(u32::try_from(exporting).unwrap_or(u32::MAX)),
    );
    let sent: u64 = siem.targets.iter().map(|t| t.stats.sent).sum();
    put(status_keys::SIEM_SENT, Variant::from(sent));
    put(status_keys::SIEM_DROPPED, Variant::from(siem.dropped()));
    let failing: Vec<String> = siem
        .targets
        .iter()
        .filter(|t| !t.stats.up && t.stats.failures + t.stats.rejected > 0)
        .map(|t| {
            let error = t.stats.last_error.as_deref().unwrap_or("failing");
            format!("{}: {error}", t.name)
        })
        .collect();
    put(status_keys::SIEM_FAILING, Variant::from(failing));
    let xdp = running.xdp().report();
    put(status_keys::XDP_STATE, Variant::from(xdp.state.as_str()));
    let mut interfaces: Vec<String> = xdp
        .interfaces
        .iter()
        .map(|i| match &i.fallback {
            Some(why) => format!("{}: {} (native refused: {why})", i.interface, i.mode),
            None => format!("{}: {}", i.interface, i.mode),
        })
        .collect();
    interfaces.extend(
        xdp.failed_interfaces
            .iter()
            .map(|(name, why)| format!("{name}: not attached: {why}")),
    );
    put(status_keys::XDP_INTERFACES, Variant::from(interfaces));
    put(
        status_keys::XDP_DROPPED_V4,
        Variant::from(xdp.dropped_v4.packets),
    );
    put(
        status_keys::XDP_DROPPED_V6,
        Variant::from(xdp.dropped_v6.packets),
    );
    put(
        status_keys::XDP_NOT_MIRRORED,
        Variant::from(u64::try_from(xdp.not_mirrored).unwrap_or(u64::MAX)),
    );
    let (fleet, numbers) = match running.fleet().await {
        None => ("off".to_owned(), [0; 6]),
        Some((server, node, stats)) => {
            let state = match (&stats.last_error, stats.connected) {
                (None, true) => format!("connected to {server} as {node}"),
                (Some(error), _) => format!("connecting to {server} as {node}: {error}"),
                (None, false) => format!("connecting to {server} as {node}"),
            };
            let lag = u64::try_from(stats.fleet_id.saturating_sub(stats.applied_id)).unwrap_or(0);
            (
                state,
                [
                    lag,
                    stats.outbox,
                    stats.published,
                    stats.applied,
                    stats.vetoed,
                    stats.ignored,
                ],
            )
        }
    };
    put(status_keys::FLEET, Variant::from(fleet));
    for (key, value) in [
        status_keys::FLEET_LAG,
        status_keys::FLEET_OUTBOX,
        status_keys::FLEET_PUBLISHED,
        status_keys::FLEET_APPLIED,
        status_keys::FLEET_VETOED,
        status_keys::FLEET_IGNORED,
    ]
    .into_iter()
    .zip(numbers)
    {
        put(key, Variant::from(value));
    }
    status
}
