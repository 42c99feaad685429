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
    let top = top_attackers(engine, since).await?;
    let origin = |o: crmonban_engine::AttackOrigin| json!({"origin": o.origin, "name": o.name, "events": o.events, "addresses": o.addresses});
    let by_country: Vec<_> = store
        .attacks_by_country(since, TOP)
        .await?
        .into_iter()
        .map(origin)
        .collect();
    let by_network: Vec<_> = store
        .attacks_by_network(since, TOP)
        .await?
        .into_iter()
        .map(origin)
        .collect();
    let now = crmonban_core::unix_now();
    let bans_per_hour = store
        .bans_per_hour(now, (WINDOW_SECS / 3600) as u32)
        .await?;
    let events_per_hour = store
        .events_per_hour(now, (WINDOW_SECS / 3600) as u32)
        .await?;
    // Every country (there are fewer than 300 codes), for the report's map.
    let events_by_country: BTreeMap<String, u64> = store
        .attacks_by_country(since, 300)
        .await?
        .into_iter()
        .map(|o| (o.origin, o.events))
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
        "top_countries": by_country,
        "top_networks": by_network,
        "bans_per_hour": bans_per_hour,
        "events_per_hour": events_per_hour,
        "events_by_country": events_by_country,
        "siem": siem(running),
        "xdp": xdp(running),
    });
    Ok(stats.to_string())
}

/// How many attackers, countries and networks the lists hold.
const TOP: u32 = 10;

/// The [`TOP`] addresses with the most events in the window, leaving out those that may never
/// be banned (loopback, this host, whitelisted and trusted networks: what they log is not an
/// attack on us), each with its country and network when intel knows them.
async fn top_attackers(
    engine: &crmonban_engine::Engine,
    since: i64,
) -> Result<Vec<serde_json::Value>, crmonban_engine::StoreError> {
    let store = engine.store();
    // Enough rows that a few protected ones among them still leave TOP.
    let rows = store.top_attackers(since, TOP * 5).await?;
    let attackers: Vec<(String, u64)> = rows
        .into_iter()
        .filter(|(ip, _)| {
            crmonban_core::Target::parse(ip)
                .is_ok_and(|target| engine.check_protected(&target).is_ok())
        })
        .take(TOP as usize)
        .collect();
    let addrs: Vec<String> = attackers.iter().map(|(ip, _)| ip.clone()).collect();
    let intel: BTreeMap<String, crmonban_engine::IntelSummary> = store
        .intel_summaries(&addrs)
        .await?
        .into_iter()
        .map(|summary| (summary.addr.clone(), summary))
        .collect();
    Ok(attackers
        .into_iter()
        .map(|(ip, events)| {
            let known = intel.get(&ip);
            json!({
                "ip": ip,
                "events": events,
                "country": known.and_then(|i| i.country.clone()),
                "asn": known.and_then(|i| i.asn),
                "organization": known.and_then(|i| i.organization.clone()),
            })
        })
        .collect())
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
