//! The engine's Prometheus metrics, with the Prometheus project's client (prometheus-client):
//! instruments updated where things happen (detector events by service and kind, bans added by
//! source and ended by reason, log lines read and skipped, detection and ban latency,
//! background jobs that failed) and figures read when scraped (bans in force, what the drop
//! rules and the XDP program dropped, queues and what they lost, database write troubles).
//!
//! [`Running::metrics_registry`](crate::Running::metrics_registry) gives a registry holding
//! both; [`encode`] writes it in the classic text format (0.0.4) or in OpenMetrics. Names follow
//! the Prometheus conventions: `crmonban_` first, `_total` on counters, units in the name
//! (`_seconds`, `_bytes`). Label values are bounded: services and event kinds come from the
//! configuration, ban sources from [`BanSource`], removal reasons from a fixed list.

use std::collections::HashMap;
use std::sync::RwLock;

use crmonban_core::{BanSource, EventKind, Service};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

mod scraped;

pub(crate) use scraped::Scraped;
pub use scraped::{Format, encode};

/// Label pairs of one series.
type Labels = Vec<(&'static str, String)>;

/// The instruments the engine and its detection update as they work.
#[derive(Debug)]
pub struct Metrics {
    events: Family<Labels, Counter>,
    /// The series of `events` by service and kind, so that counting an event allocates nothing.
    event_series: RwLock<HashMap<(Service, EventKind), Counter>>,
    bans_added: Family<Labels, Counter>,
    bans_removed: Family<Labels, Counter>,
    lines_read: Family<Labels, Counter>,
    lines_skipped: Family<Labels, Counter>,
    detection_latency: Histogram,
    ban_latency: Histogram,
    job_failures: Family<Labels, Counter>,
    repairs: Family<Labels, Counter>,
}

/// The line counters of one service, held by the detection task (an atomic add a line).
#[derive(Clone, Debug)]
pub(crate) struct LineCounters {
    pub(crate) read: Counter,
    pub(crate) too_long: Counter,
    pub(crate) invalid_utf8: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let metrics = Metrics {
            events: Family::default(),
            event_series: RwLock::new(HashMap::new()),
            bans_added: Family::default(),
            bans_removed: Family::default(),
            lines_read: Family::default(),
            lines_skipped: Family::default(),
            // Matching takes microseconds; a line queued behind a flood takes longer.
            detection_latency: Histogram::new(buckets(0.000_01, 1.0)),
            // A ban reaches the kernel in about half a millisecond; a slow database, longer.
            ban_latency: Histogram::new(buckets(0.000_1, 10.0)),
            job_failures: Family::default(),
            repairs: Family::default(),
        };
        // Known label values start at 0, so that a rate over them is defined from the start
        // (Prometheus' advice) and dashboards find every series.
        for source in ["detector", "dbus", "restore", "blocklist", "fleet"] {
            metrics
                .bans_added
                .get_or_create(&vec![("source", source.to_owned())])
                .inc_by(0);
        }
        for reason in REMOVAL_REASONS.iter().chain(["other"].iter()) {
            metrics
                .bans_removed
                .get_or_create(&vec![("reason", (*reason).to_owned())])
                .inc_by(0);
        }
        for job in ["expiry", "repair", "host_addresses", "records", "retention"] {
            metrics
                .job_failures
                .get_or_create(&vec![("job", job.to_owned())])
                .inc_by(0);
        }
        for what in REPAIRS {
            metrics
                .repairs
                .get_or_create(&vec![("what", what.to_owned())])
                .inc_by(0);
        }
        metrics
    }
}

/// What a repair of the nftables ruleset did: the layout re-created (flushed or altered by
/// someone else), sets refilled (elements deleted behind our back), sets rebuilt larger (full).
const REPAIRS: [&str; 3] = ["layout", "elements", "grown"];

/// The reasons a ban ends that are counted by name (any other is `other`).
const REMOVAL_REASONS: [&str; 4] = ["expired", "unban", "flush", "whitelisted"];

impl Metrics {
    /// Adds the instruments to `registry` (their series are shared, not copied).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "crmonban_events",
            "Detector events (failed logins, probes, ...) by service and kind",
            self.events.clone(),
        );
        registry.register(
            "crmonban_bans_added",
            "Bans put in force, by where they came from (detector, dbus, fleet, ...)",
            self.bans_added.clone(),
        );
        registry.register(
            "crmonban_bans_removed",
            "Bans ended, by why (expired, unban, flush, whitelisted, other)",
            self.bans_removed.clone(),
        );
        registry.register(
            "crmonban_log_lines_read",
            "Log lines read, by service",
            self.lines_read.clone(),
        );
        registry.register(
            "crmonban_log_lines_skipped",
            "Log lines skipped unmatched, by service and reason (too_long, invalid_utf8)",
            self.lines_skipped.clone(),
        );
        registry.register(
            "crmonban_detection_latency_seconds",
            "From reading a matching log line to its event being counted",
            self.detection_latency.clone(),
        );
        registry.register(
            "crmonban_ban_latency_seconds",
            "From reading the log line that decided a ban to the ban being in force",
            self.ban_latency.clone(),
        );
        registry.register(
            "crmonban_background_job_failures",
            "Failed runs of background jobs (expiry, repair, records, retention, host_addresses)",
            self.job_failures.clone(),
        );
        registry.register(
            "crmonban_ruleset_repairs",
            "Repairs of the nftables ruleset: layout re-created (flushed or altered by someone \
             else), elements put back (deleted behind our back), sets grown (full)",
            self.repairs.clone(),
        );
    }

    /// Counts one detector event.
    pub(crate) fn event(&self, service: &Service, kind: &EventKind) {
        let key = (service.clone(), kind.clone());
        let known = read(&self.event_series).get(&key).cloned();
        let counter = known.unwrap_or_else(|| {
            let labels = vec![
                ("service", service.as_str().to_owned()),
                ("kind", kind.as_str().to_owned()),
            ];
            let counter = self.events.get_or_create(&labels).clone();
            write(&self.event_series).insert(key, counter.clone());
            counter
        });
        counter.inc();
    }

    /// Counts a ban put in force.
    pub(crate) fn ban_added(&self, source: &BanSource) {
        let labels = vec![("source", source.as_str().to_owned())];
        self.bans_added.get_or_create(&labels).inc();
    }

    /// Counts a ban ended for `reason` (an unban caller's own reason counts as `other`).
    pub(crate) fn ban_removed(&self, reason: &str) {
        let reason = if REMOVAL_REASONS.contains(&reason) {
            reason
        } else {
            "other"
        };
        let labels = vec![("reason", reason.to_owned())];
        self.bans_removed.get_or_create(&labels).inc();
    }

    /// The line counters of `service`.
    pub(crate) fn lines(&self, service: &str) -> LineCounters {
        let skipped = |reason: &str| {
            let labels = vec![
                ("service", service.to_owned()),
                ("reason", reason.to_owned()),
            ];
            self.lines_skipped.get_or_create(&labels).clone()
        };
        LineCounters {
            read: self
                .lines_read
                .get_or_create(&vec![("service", service.to_owned())])
                .clone(),
            too_long: skipped("too_long"),
            invalid_utf8: skipped("invalid_utf8"),
        }
    }

    /// Notes how long a matching line took from being read (unix microseconds) to now.
    pub(crate) fn detected(&self, read_at_us: i64) {
        self.detection_latency.observe(seconds_since(read_at_us));
    }

    /// Notes how long a ban took from its deciding line being read (unix microseconds) to now.
    pub(crate) fn banned(&self, read_at_us: i64) {
        self.ban_latency.observe(seconds_since(read_at_us));
    }

    /// Counts a repair of the ruleset (`what`: one of [`REPAIRS`]).
    pub(crate) fn repaired(&self, what: &'static str) {
        debug_assert!(REPAIRS.contains(&what), "{what}");
        self.repairs
            .get_or_create(&vec![("what", what.to_owned())])
            .inc();
    }

    /// Counts a failed run of the background job `job`.
    pub(crate) fn job_failed(&self, job: &'static str) {
        self.job_failures
            .get_or_create(&vec![("job", job.to_owned())])
            .inc();
    }
}

/// Bucket bounds 1, 2.5, 5 times each power of ten from `low` up to `high`, written as
/// people write them (0.00025, not 0.00025000000000000006).
fn buckets(low: f64, high: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = low.log10().round() as i32;
    loop {
        for step in [1.0, 2.5, 5.0] {
            let text = format!("{step}e{decade}");
            let bound: f64 = text.parse().unwrap_or(f64::MAX);
            if bound > high * 1.000_001 {
                return out;
            }
            out.push(bound);
        }
        decade += 1;
    }
}

/// Seconds from `at_us` (unix microseconds) to now; 0 when the clock went back.
fn seconds_since(at_us: i64) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    (now.saturating_sub(at_us)).max(0) as f64 / 1e6
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds_are_round() {
        assert_eq!(
            buckets(0.000_1, 10.0),
            [
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0
            ]
        );
        assert_eq!(buckets(0.000_01, 1.0).len(), 16);
    }

    #[test]
    fn removal_reasons_are_a_fixed_list() {
        let metrics = Metrics::default();
        metrics.ban_removed("expired");
        metrics.ban_removed("lifted by the on-call admin, ticket 4711");
        metrics.ban_removed("another free text");
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let text = encode(&registry, Format::Text).unwrap();
        assert!(text.contains("crmonban_bans_removed_total{reason=\"expired\"} 1\n"));
        assert!(text.contains("crmonban_bans_removed_total{reason=\"other\"} 2\n"));
        assert!(!text.contains("4711"));
    }

    #[test]
    fn events_are_counted_by_service_and_kind() {
        let metrics = Metrics::default();
        let ssh = Service::new("ssh");
        for _ in 0..3 {
            metrics.event(&ssh, &EventKind::FailedAuth);
        }
        metrics.event(&ssh, &EventKind::Other("knock".into()));
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let text = encode(&registry, Format::Text).unwrap();
        assert!(
            text.contains("crmonban_events_total{service=\"ssh\",kind=\"failed_auth\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("crmonban_events_total{service=\"ssh\",kind=\"knock\"} 1\n"));
    }
}
