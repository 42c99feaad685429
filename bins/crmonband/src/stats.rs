//! `GetStats`: attack statistics as one JSON object (documented in docs/DBUS.md).

use std::collections::BTreeMap;

use crmonban_engine::Running;
use serde_json::json;

/// The window of the per-service and per-attacker figures.
const WINDOW_SECS: i64 = 24 * 3600;

pub async fn collect(running: &Running) -> Result<String, crmonban_engine::StoreError> {
    let engine = running.engine();
    let since = crmonban_core::unix_now() - WINDOW_SECS;
    let store = engine.store();
    let by_service: BTreeMap<String, u64> = store
        .event_counts_by_service(since)
        .await?
        .into_iter()
        .collect();
    let top: Vec<_> = store
        .top_attackers(since, 10)
        .await?
        .into_iter()
        .map(|(ip, events)| json!({"ip": ip, "events": events}))
        .collect();
    let mut by_source: BTreeMap<String, u64> = BTreeMap::new();
    let (mut permanent, mut networks) = (0u64, 0u64);
    for ban in engine.active_bans() {
        *by_source.entry(ban.source.to_string()).or_default() += 1;
        permanent += u64::from(ban.expires_at.is_none());
        networks += u64::from(ban.target.is_net());
    }
    let stats = json!({
        "active_bans": engine.active_ban_count(),
        "permanent_bans": permanent,
        "network_bans": networks,
        "bans_by_source": by_source,
        "events_processed": engine.events_processed(),
        "uptime_seconds": engine.uptime().as_secs(),
        "window_seconds": WINDOW_SECS,
        "events_by_service": by_service,
        "top_attackers": top,
        "siem": siem(running),
        "xdp": xdp(running),
    });
    Ok(stats.to_string())
}

/// Each SIEM target's figures.
fn siem(running: &Running) -> serde_json::Value {
    let stats = running.siem().stats();
    let targets: Vec<_> = stats
        .targets
        .iter()
        .map(|t| {
            let s = &t.stats;
            json!({
                "name": t.name,
                "format": t.format.as_str(),
                "sent": s.sent,
                "dropped": s.dropped,
                "rejected": s.rejected,
                "failures": s.failures,
                "queued": s.queued,
                "up": s.up,
                "last_error": s.last_error,
            })
        })
        .collect();
    json!({
        "enabled": stats.enabled,
        "missed": stats.missed,
        "targets": targets,
    })
}

/// The XDP fast path's counters, interfaces and maps.
fn xdp(running: &Running) -> serde_json::Value {
    let r = running.xdp().report();
    let counters =
        |c: crmonban_engine::DropCounters| json!({"packets": c.packets, "bytes": c.bytes});
    let interfaces: Vec<_> = r
        .interfaces
        .iter()
        .map(|i| json!({"name": i.interface, "mode": i.mode.as_str(), "fallback": i.fallback}))
        .collect();
    let failed: Vec<_> = r
        .failed_interfaces
        .iter()
        .map(|(name, reason)| json!({"name": name, "reason": reason}))
        .collect();
    json!({
        "state": r.state,
        "method": r.method,
        "dropped": {"ipv4": counters(r.dropped_v4), "ipv6": counters(r.dropped_v6)},
        "interfaces": interfaces,
        "failed_interfaces": failed,
        "entries": {"ipv4": r.entries[0], "ipv6": r.entries[1]},
        "max_entries": r.max_entries,
        "not_mirrored": r.not_mirrored,
        "reconciles": r.reconciles,
        "last_reconcile_ms": r.last_reconcile_ms,
        "missed": r.missed,
    })
}
