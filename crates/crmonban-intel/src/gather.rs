//! [`Gatherer`]: the sources an [`IntelConfig`] turns on, built once per configuration (start,
//! reload) and asked together about one address. Setting a source up never fails the whole:
//! an unreadable key file, a bad hosting list or a missing database is a problem
//! ([`Gatherer::problems`]) and that source stays off or partial.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crmonban_core::config::{IntelConfig, Secret};
use tracing::{debug, warn};

use crate::abuseipdb::{AbuseIpdbClient, Reporter, categories_for};
use crate::geoip::GeoIp;
use crate::hosting::HostingAsns;
use crate::rdns::ReverseResolver;
use crate::shodan::ShodanClient;
use crate::whois::{WhoisClient, WhoisOptions};
use crate::{Intel, IntelError, Problem, Source};

/// The longest comment sent with an AbuseIPDB report (the API takes up to 1,024 characters).
const MAX_REPORT_COMMENT: usize = 1024;

/// The intel sources of one configuration.
pub struct Gatherer {
    geoip: Option<GeoIp>,
    rdns: Option<ReverseResolver>,
    whois: Option<WhoisClient>,
    abuseipdb: Option<AbuseIpdbClient>,
    shodan: Option<ShodanClient>,
    hosting: HostingAsns,
    reporter: Option<Mutex<Reporter>>,
    setup_problems: Vec<String>,
}

impl Gatherer {
    /// The sources `config` turns on. Reads the key files and the hosting list, opens the
    /// GeoIP databases (memory-mapped) and the resolver configuration; what fails is a
    /// problem, never an error.
    pub fn new(config: &IntelConfig) -> Gatherer {
        let mut setup_problems = Vec::new();
        let geoip = config
            .geoip_enabled
            .then(|| GeoIp::open(&config.geoip_city_db, &config.geoip_asn_db));
        let rdns = if config.rdns_enabled {
            ReverseResolver::new(&config.dns_servers, config.timeout)
                .map_err(|e| setup_problems.push(format!("reverse DNS is off: {e}")))
                .ok()
        } else {
            None
        };
        let whois = if config.whois_enabled {
            WhoisClient::new(WhoisOptions {
                start: config.whois_server.clone(),
                timeout: config.timeout,
                per_server_per_minute: config.whois_queries_per_minute,
                ..WhoisOptions::default()
            })
            .map_err(|e| setup_problems.push(format!("WHOIS is off: {e}")))
            .ok()
        } else {
            None
        };
        let abuseipdb_key = key(
            "AbuseIPDB",
            config.abuseipdb_api_key.as_ref(),
            config.abuseipdb_api_key_file.as_deref(),
            &mut setup_problems,
        );
        let abuseipdb = abuseipdb_key.and_then(|key| {
            AbuseIpdbClient::new(key, &config.abuseipdb_url, config.timeout)
                .map_err(|e| setup_problems.push(format!("AbuseIPDB is off: {e}")))
                .ok()
        });
        let shodan = key(
            "Shodan",
            config.shodan_api_key.as_ref(),
            config.shodan_api_key_file.as_deref(),
            &mut setup_problems,
        )
        .and_then(|key| {
            ShodanClient::new(key, &config.shodan_url, config.timeout)
                .map_err(|e| setup_problems.push(format!("Shodan is off: {e}")))
                .ok()
        });
        let reporter = match (config.abuseipdb_report, &abuseipdb) {
            (true, Some(_)) => Some(Mutex::new(Reporter::new(config.abuseipdb_reports_per_day))),
            (true, None) => {
                setup_problems.push(
                    "abuseipdb_report is on but AbuseIPDB has no usable key: nothing is reported"
                        .into(),
                );
                None
            }
            (false, _) => None,
        };
        let mut hosting = HostingAsns::builtin();
        if let Some(path) = &config.hosting_asn_file
            && let Err(problem) = hosting.load_extra(path)
        {
            setup_problems.push(format!("hosting_asn_file: {problem}"));
        }
        Gatherer {
            geoip,
            rdns,
            whois,
            abuseipdb,
            shodan,
            hosting,
            reporter,
            setup_problems,
        }
    }

    /// The sources that will be asked, by name (`geoip`, `rdns`, `whois`, `abuseipdb`,
    /// `shodan`); GeoIP counts when it is enabled, even while its files are missing.
    pub fn sources(&self) -> Vec<Source> {
        [
            (self.geoip.is_some(), Source::Geoip),
            (self.rdns.is_some(), Source::Rdns),
            (self.whois.is_some(), Source::Whois),
            (self.abuseipdb.is_some(), Source::Abuseipdb),
            (self.shodan.is_some(), Source::Shodan),
        ]
        .into_iter()
        .filter_map(|(on, source)| on.then_some(source))
        .collect()
    }

    /// Whether gathering can learn anything at all: some source is on and, when GeoIP is the
    /// only one, one of its databases is open.
    pub fn can_learn(&self) -> bool {
        self.rdns.is_some()
            || self.whois.is_some()
            || self.abuseipdb.is_some()
            || self.shodan.is_some()
            || self.geoip.as_ref().is_some_and(GeoIp::any_open)
    }

    /// What is wrong with the configured sources now, one line each (a missing database and
    /// how to get it, an unreadable key file, ...): for the log at start and `crmonctl status`.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.setup_problems.clone();
        if let Some(geoip) = &self.geoip {
            problems.extend(geoip.problems());
        }
        problems
    }

    /// Everything the sources say about `ip` now, asked together; each source bounded by its
    /// own timeout. A failing source is a [`Problem`] in the result; the rest is kept.
    pub async fn gather(&self, ip: IpAddr, now: i64) -> Intel {
        let mut intel = Intel::empty(ip, now);
        if let Some(geoip) = &self.geoip {
            (intel.location, intel.network) = geoip.lookup(ip);
        }
        let started = Instant::now();
        let (rdns, whois, abuseipdb, shodan) = tokio::join!(
            ask(self.rdns.as_ref(), |r| r.lookup(ip)),
            ask(self.whois.as_ref(), |w| w.lookup(ip)),
            ask(self.abuseipdb.as_ref(), |a| a.check(ip)),
            ask(self.shodan.as_ref(), |s| s.host(ip)),
        );
        let mut problem = |source: Source, error: IntelError| {
            intel.problems.push(Problem {
                source,
                message: error.to_string(),
            })
        };
        match rdns {
            Some(Ok(name)) => intel.reverse_dns = name,
            Some(Err(e)) => problem(Source::Rdns, e),
            None => {}
        }
        match whois {
            Some(Ok(whois)) => intel.whois = Some(whois),
            Some(Err(e)) => problem(Source::Whois, e),
            None => {}
        }
        match abuseipdb {
            Some(Ok(record)) => intel.abuseipdb = Some(record),
            Some(Err(e)) => problem(Source::Abuseipdb, e),
            None => {}
        }
        match shodan {
            Some(Ok(host)) => intel.shodan = host,
            Some(Err(e)) => problem(Source::Shodan, e),
            None => {}
        }
        self.flag_hosting(&mut intel);
        debug!(%ip, elapsed_ms = started.elapsed().as_millis() as u64, problems = intel.problems.len(), "intel gathered");
        intel
    }

    /// Sets the hosting flag from the ASN (the shipped list and `hosting_asn_file`), else
    /// from AbuseIPDB's usage type.
    fn flag_hosting(&self, intel: &mut Intel) {
        if let Some(asn) = intel.network.as_ref().and_then(|n| n.asn)
            && let Some(provider) = self.hosting.provider(asn)
        {
            intel.flags.hosting = true;
            intel.flags.hosting_reason = Some(format!("AS{asn} is a hosting network ({provider})"));
            return;
        }
        if let Some(usage) = intel
            .abuseipdb
            .as_ref()
            .and_then(|a| a.usage_type.as_deref())
            && is_hosting_usage(usage)
        {
            intel.flags.hosting = true;
            intel.flags.hosting_reason = Some(format!("AbuseIPDB usage type: {usage}"));
        }
    }

    /// Whether bans are reported to AbuseIPDB.
    pub fn reports(&self) -> bool {
        self.reporter.is_some()
    }

    /// Reports a ban of `ip` by `service` to AbuseIPDB when reporting is on and the limits
    /// allow (an address once per 15 minutes, the daily budget). `Ok(false)`: not sent.
    pub async fn report(
        &self,
        ip: IpAddr,
        service: Option<&str>,
        reason: &str,
    ) -> Result<bool, IntelError> {
        let (Some(reporter), Some(client)) = (&self.reporter, &self.abuseipdb) else {
            return Ok(false);
        };
        let allowed = reporter
            .lock()
            .map(|mut r| r.allow(ip, Instant::now()))
            .unwrap_or(false);
        if !allowed {
            return Ok(false);
        }
        let mut comment = format!("crmonban: {reason}");
        if comment.len() > MAX_REPORT_COMMENT {
            let mut cut = MAX_REPORT_COMMENT;
            while !comment.is_char_boundary(cut) {
                cut -= 1;
            }
            comment.truncate(cut);
        }
        client
            .report(ip, &categories_for(service), &comment)
            .await
            .map(|()| true)
    }

    /// Reports skipped by the limits so far.
    pub fn reports_skipped(&self) -> u64 {
        self.reporter
            .as_ref()
            .and_then(|r| r.lock().ok().map(|r| r.skipped()))
            .unwrap_or(0)
    }
}

impl std::fmt::Debug for Gatherer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatherer")
            .field("sources", &self.sources())
            .field("reports", &self.reports())
            .finish_non_exhaustive()
    }
}

/// Asks `source` when it is configured.
async fn ask<'a, S, T, F>(
    source: Option<&'a S>,
    question: impl FnOnce(&'a S) -> F,
) -> Option<Result<T, IntelError>>
where
    F: Future<Output = Result<T, IntelError>>,
{
    match source {
        Some(source) => Some(question(source).await),
        None => None,
    }
}

/// AbuseIPDB's usage types that mean rented servers rather than people.
fn is_hosting_usage(usage: &str) -> bool {
    let usage = usage.to_ascii_lowercase();
    usage.contains("data center") || usage.contains("hosting") || usage.contains("content delivery")
}

/// The API key of `service`: given in the file, or read from the key file's first line.
fn key(
    service: &str,
    given: Option<&Secret>,
    file: Option<&Path>,
    problems: &mut Vec<String>,
) -> Option<Secret> {
    if let Some(key) = given {
        return Some(key.clone());
    }
    let file = file?;
    match read_key_file(file) {
        Ok(key) => Some(key),
        Err(why) => {
            let problem = format!("{service} is off: key file {}: {why}", file.display());
            warn!("{problem}");
            problems.push(problem);
            None
        }
    }
}

/// The first line of a key file, which must be a non-empty token of at most 512 bytes.
fn read_key_file(path: &Path) -> Result<Secret, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(4096).read_to_string(&mut text))
        .map_err(|e| e.to_string())?;
    let key = text.lines().next().unwrap_or("").trim();
    if key.is_empty() {
        return Err("its first line is empty".into());
    }
    if key.len() > 512 || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(
            "its first line is not one key (spaces, control characters or over 512 bytes)".into(),
        );
    }
    Ok(Secret::new(key))
}

/// What `check-config` can tell about `[intel]` without asking any server: missing or
/// unusable GeoIP databases (and how to get them), unreadable key files, a bad hosting list,
/// reporting without a key.
pub fn check_config(config: &IntelConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if config.geoip_enabled {
        problems.extend(GeoIp::open(&config.geoip_city_db, &config.geoip_asn_db).problems());
    }
    let abuseipdb = key(
        "AbuseIPDB",
        config.abuseipdb_api_key.as_ref(),
        config.abuseipdb_api_key_file.as_deref(),
        &mut problems,
    );
    key(
        "Shodan",
        config.shodan_api_key.as_ref(),
        config.shodan_api_key_file.as_deref(),
        &mut problems,
    );
    if config.abuseipdb_report && abuseipdb.is_none() {
        problems.push(
            "abuseipdb_report is on but AbuseIPDB has no usable key: nothing is reported".into(),
        );
    }
    if let Some(path) = &config.hosting_asn_file
        && let Err(problem) = HostingAsns::builtin().load_extra(path)
    {
        problems.push(format!("hosting_asn_file: {problem}"));
    }
    problems
}

/// How long a source may take for one address at most, for the engine's own deadline: every
/// source is bounded by `timeout` per step, WHOIS by its referrals.
pub fn gather_deadline(config: &IntelConfig) -> Duration {
    config.timeout * (u32::from(WhoisOptions::default().max_referrals) + 2)
}
