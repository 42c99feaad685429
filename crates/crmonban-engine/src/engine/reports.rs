//! What the engine is told and tells besides bans: detector events counted and announced,
//! figures of what could not be recorded, and notes from the services built on it (intel
//! summaries for later ban reasons, activity log entries).

use super::*;

impl Engine {
    /// Counts a detector's event and emits [`EngineEvent::AttackDetected`].
    pub async fn report_attack(&self, event: &Event) {
        self.report_attack_coalesced(event, Some(1)).await;
    }

    /// Counts a detector's event; emits [`EngineEvent::AttackDetected`] only when `announce`
    /// gives the count it carries (detection coalesces announcements under floods, while
    /// every event is counted).
    pub async fn report_attack_coalesced(&self, event: &Event, announce: Option<u32>) {
        self.inner.events_processed.fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.event(&event.service, &event.kind);
        if let Some(count) = announce {
            self.announce_attack(event, count).await;
        }
    }

    /// Emits [`EngineEvent::AttackDetected`] for `count` events already counted by
    /// [`Engine::report_attack_coalesced`] (the tail of a flood, announced after its second).
    pub async fn announce_attack(&self, event: &Event, count: u32) {
        self.inner
            .emit(EngineEvent::AttackDetected {
                addr: event.addr,
                service: event.service.to_string(),
                kind: event.kind.to_string(),
                count: count.max(1),
            })
            .await;
    }

    /// Bans in force: IPv4 addresses, IPv4 networks, IPv6 addresses, IPv6 networks.
    pub(crate) fn ban_kind_counts(&self) -> [usize; 4] {
        self.inner.index_read().kind_counts(unix_now())
    }

    /// What the drop rules dropped (see [`FirewallBackend::drop_counters`]); `None` when the
    /// backend keeps no counters or they could not be read (logged at debug).
    pub(crate) async fn drop_counters(&self) -> Option<Vec<crmonban_firewall::RuleCounter>> {
        match self.inner.kernel.drop_counters().await {
            Ok(counters) => counters,
            Err(e) => {
                debug!("cannot read the drop rules' counters: {e}");
                None
            }
        }
    }

    /// Ban and unban records that could not be written to the database at once.
    pub fn record_stats(&self) -> RecordStats {
        self.inner.records.stats()
    }

    /// Activity log entries lost since start (queue full under a flood, or refused by the
    /// database).
    pub fn activity_dropped(&self) -> u64 {
        self.inner.activity.dropped()
    }

    /// Event rows lost since start (see [`Engine::note_events_dropped`]).
    pub fn events_dropped(&self) -> u64 {
        self.inner.events_dropped.load(Ordering::Relaxed)
    }

    /// Counts `n` event rows that could not be recorded (the detection pipeline's queue was
    /// full, or the database refused them); the bans they led to are not affected.
    pub fn note_events_dropped(&self, n: u64) {
        self.inner.events_dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Detector events counted since start ([`Engine::report_attack`] and
    /// [`Engine::report_attack_coalesced`]), announced or not.
    pub fn events_processed(&self) -> u64 {
        self.inner.events_processed.load(Ordering::Relaxed)
    }

    /// Remembers what intel said about `ip` ("US, AS15169 Google LLC"), so that its later bans
    /// carry it in their reason; `None` forgets it. Bounded (the oldest forgotten first).
    pub fn note_intel_summary(&self, ip: std::net::IpAddr, summary: Option<String>) {
        lock(&self.inner.intel_summaries).put(ip, summary);
    }

    /// Adds an entry to the activity log (`crmonctl logs`) for a service built on the
    /// engine (SIEM drops, ...): `action` is a short machine name, `detail` one line.
    pub fn note_activity(&self, action: &'static str, target: Option<Target>, detail: String) {
        self.inner.record(unix_now(), action, target, detail);
    }

    /// What intel said about `ip` ("DE, AS24940 Hetzner Online GmbH, hosting"), when it is
    /// known (see [`Engine::note_intel_summary`]).
    pub fn intel_summary(&self, ip: &std::net::IpAddr) -> Option<Arc<str>> {
        lock(&self.inner.intel_summaries).get(ip)
    }
}
