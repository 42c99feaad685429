//! Figures read at scrape time rather than counted as they happen: bans in force, what the drop
//! rules and the XDP program dropped, the queues of the services (intel, SIEM, the database
//! records) and what they lost, gathered by [`Running::metrics_registry`](crate::Running::metrics_registry)
//! into a [`Scraped`] collector; and [`encode`], which writes a registry in the format asked.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::{FleetStats, IntelStats, RecordStats, RuleCounter, SiemStats, XdpReport};

/// The exposition formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus' classic text format, version 0.0.4 (what every scraper and `promtool`
    /// reads).
    Text,
    /// OpenMetrics 1.0 text, for scrapers that ask for it.
    OpenMetrics,
}

impl Format {
    /// The format an HTTP `Accept` header asks for: OpenMetrics only when it is named (Prometheus
    /// names it first when it prefers it), the classic text otherwise.
    pub fn from_accept(accept: Option<&str>) -> Format {
        let wants_openmetrics = accept.is_some_and(|accept| {
            accept.split(',').any(|range| {
                let media = range.split(';').next().unwrap_or("").trim();
                let quality = range
                    .split(';')
                    .skip(1)
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                media.eq_ignore_ascii_case("application/openmetrics-text") && quality > 0.0
            })
        });
        if wants_openmetrics {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// `registry` in `format`.
pub fn encode(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    match format {
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?,
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry)?,
    }
    Ok(out)
}

/// What was read for one scrape.
#[derive(Debug, Default)]
pub(crate) struct Scraped {
    /// Bans in force: IPv4 addresses, IPv4 networks, IPv6 addresses, IPv6 networks.
    pub(crate) bans: [usize; 4],
    /// The drop rules' counters; `None` when the backend keeps none (or could not be read).
    pub(crate) rules: Option<Vec<RuleCounter>>,
    pub(crate) xdp: Option<XdpReport>,
    pub(crate) intel: IntelStats,
    pub(crate) siem: SiemStats,
    pub(crate) records: RecordStats,
    pub(crate) events_dropped: u64,
    pub(crate) activity_dropped: u64,
    /// While `[fleet]` is enabled.
    pub(crate) fleet: Option<FleetStats>,
}

/// One series: its labels and value.
type Series = Vec<(Vec<(&'static str, String)>, u64)>;

fn write(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    series: &Series,
) -> Result<(), std::fmt::Error> {
    if series.is_empty() {
        return Ok(());
    }
    // Ended with a period, as the registry ends the help of what is registered with it.
    let help = format!("{help}.");
    let mut metric = encoder.encode_descriptor(name, &help, None, kind)?;
    for (labels, value) in series {
        let mut one = metric.encode_family(labels)?;
        match kind {
            MetricType::Counter => one.encode_counter::<NoLabelSet, _, u64>(value, None)?,
            _ => one.encode_gauge(value)?,
        }
    }
    Ok(())
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: Series,
) -> Result<(), std::fmt::Error> {
    write(encoder, name, help, MetricType::Counter, &series)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: Series,
) -> Result<(), std::fmt::Error> {
    write(encoder, name, help, MetricType::Gauge, &series)
}

fn one(label: &'static str, value: &str, n: u64) -> (Vec<(&'static str, String)>, u64) {
    (vec![(label, value.to_owned())], n)
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        let bans = ["ipv4", "ipv4", "ipv6", "ipv6"]
            .iter()
            .zip(["address", "network", "address", "network"])
            .zip(self.bans)
            .map(|((family, kind), n)| {
                (
                    vec![("family", (*family).to_owned()), ("kind", kind.to_owned())],
                    to_u64(n),
                )
            })
            .collect();
        gauge(
            e,
            "crmonban_active_bans",
            "Bans in force, by address family and kind",
            bans,
        )?;
        let (packets, bytes) = self.dropped();
        counter(
            e,
            "crmonban_dropped_packets",
            "Packets from banned sources dropped, by path (nftables_input, nftables_forward, xdp) and family",
            packets,
        )?;
        counter(
            e,
            "crmonban_dropped_bytes",
            "Bytes of the packets from banned sources dropped, by path and family",
            bytes,
        )?;
        if let Some(xdp) = &self.xdp {
            gauge(
                e,
                "crmonban_xdp_interfaces",
                "Interfaces the XDP fast path is attached to",
                vec![(vec![], to_u64(xdp.interfaces.len()))],
            )?;
            gauge(
                e,
                "crmonban_xdp_not_mirrored",
                "Bans in force the XDP maps do not hold (full maps or failed updates)",
                vec![(vec![], to_u64(xdp.not_mirrored))],
            )?;
        }
        let mut queued = vec![
            one("queue", "intel", self.intel.waiting),
            one("queue", "records", self.records.pending),
        ];
        let mut lost = vec![
            one("queue", "intel", self.intel.dropped),
            one("queue", "records", self.records.dropped),
            one("queue", "events", self.events_dropped),
            one("queue", "activity", self.activity_dropped),
            one("queue", "siem", self.siem.missed),
        ];
        for target in &self.siem.targets {
            let queue = format!("siem:{}", target.name);
            queued.push(one("queue", &queue, to_u64(target.stats.queued)));
            lost.push(one("queue", &queue, target.stats.dropped));
        }
        if let Some(fleet) = &self.fleet {
            queued.push(one("queue", "fleet", fleet.outbox));
        }
        gauge(
            e,
            "crmonban_queue_length",
            "Items waiting in a queue (intel lookups, database records, SIEM lines per target)",
            queued,
        )?;
        counter(
            e,
            "crmonban_queue_dropped",
            "Items a full queue (or a refusing database) lost, by queue",
            lost,
        )?;
        counter(
            e,
            "crmonban_database_write_failures",
            "Ban and unban records whose database write failed (retried from the queue)",
            vec![(vec![], self.records.failed)],
        )?;
        let intel = &self.intel;
        counter(
            e,
            "crmonban_intel_lookups",
            "Addresses looked up by intel, by result (gathered, cached)",
            vec![
                one("result", "gathered", intel.gathered),
                one("result", "cached", intel.from_cache),
            ],
        )?;
        counter(
            e,
            "crmonban_intel_failures",
            "Intel failures, by stage (source, store, report)",
            vec![
                one("stage", "source", intel.source_failures),
                one("stage", "store", intel.store_failures),
                one("stage", "report", intel.report_failures),
            ],
        )?;
        counter(
            e,
            "crmonban_intel_reports",
            "Bans reported to AbuseIPDB",
            vec![(vec![], intel.reported)],
        )?;
        let per_target = |f: &dyn Fn(&crmonban_siem::queue::StatsSnapshot) -> u64| -> Series {
            self.siem
                .targets
                .iter()
                .map(|t| one("target", &t.name, f(&t.stats)))
                .collect()
        };
        counter(
            e,
            "crmonban_siem_sent_lines",
            "Lines a SIEM target took",
            per_target(&|s| s.sent),
        )?;
        counter(
            e,
            "crmonban_siem_rejected_lines",
            "Lines a SIEM target refused for good",
            per_target(&|s| s.rejected),
        )?;
        counter(
            e,
            "crmonban_siem_failures",
            "Failed (retried) attempts to send to a SIEM target",
            per_target(&|s| s.failures),
        )?;
        gauge(
            e,
            "crmonban_siem_up",
            "1 when the last attempt reached the SIEM target",
            per_target(&|s| u64::from(s.up)),
        )?;
        if let Some(fleet) = &self.fleet {
            self.encode_fleet(e, fleet)?;
        }
        Ok(())
    }
}

impl Scraped {
    fn encode_fleet(
        &self,
        e: &mut DescriptorEncoder,
        fleet: &FleetStats,
    ) -> Result<(), std::fmt::Error> {
        gauge(
            e,
            "crmonban_fleet_connected",
            "1 while this node is connected to the fleet database",
            vec![(vec![], u64::from(fleet.connected))],
        )?;
        gauge(
            e,
            "crmonban_fleet_lag",
            "Fleet changes not applied here yet",
            vec![(
                vec![],
                u64::try_from(fleet.fleet_id.saturating_sub(fleet.applied_id)).unwrap_or(0),
            )],
        )?;
        counter(
            e,
            "crmonban_fleet_changes",
            "Fleet changes: published by this node, peers' bans applied, vetoed by this node's protection, ignored (unaccepted nodes)",
            vec![
                one("result", "published", fleet.published),
                one("result", "applied", fleet.applied),
                one("result", "vetoed", fleet.vetoed),
                one("result", "ignored", fleet.ignored),
            ],
        )
    }

    /// Dropped packets and bytes by path and family.
    fn dropped(&self) -> (Series, Series) {
        let mut packets: Series = Vec::new();
        let mut bytes: Series = Vec::new();
        let mut add = |path: String, ipv4: bool, p: u64, b: u64| {
            let family = if ipv4 { "ipv4" } else { "ipv6" };
            let labels = vec![("path", path), ("family", family.to_owned())];
            match packets
                .iter_mut()
                .zip(bytes.iter_mut())
                .find(|((l, _), _)| *l == labels)
            {
                Some(((_, np), (_, nb))) => {
                    *np = np.saturating_add(p);
                    *nb = nb.saturating_add(b);
                }
                None => {
                    packets.push((labels.clone(), p));
                    bytes.push((labels, b));
                }
            }
        };
        for rule in self.rules.iter().flatten() {
            let path = if rule.forward {
                "nftables_forward"
            } else {
                "nftables_input"
            };
            add(path.to_owned(), rule.ipv4, rule.packets, rule.bytes);
        }
        if let Some(xdp) = &self.xdp {
            add(
                "xdp".into(),
                true,
                xdp.dropped_v4.packets,
                xdp.dropped_v4.bytes,
            );
            add(
                "xdp".into(),
                false,
                xdp.dropped_v6.packets,
                xdp.dropped_v6.bytes,
            );
        }
        (packets, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_when_named_with_a_quality_above_zero() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(
            Format::from_accept(Some("Application/OpenMetrics-Text; q=0.3")),
            Format::OpenMetrics
        );
        for text in [
            None,
            Some(""),
            Some("*/*"),
            Some("text/plain;version=0.0.4"),
            Some("application/openmetrics-text;q=0, text/plain"),
            Some("application/openmetrics-text;q=0.0"),
            Some("application/json"),
        ] {
            assert_eq!(Format::from_accept(text), Format::Text, "{text:?}");
        }
    }
}
