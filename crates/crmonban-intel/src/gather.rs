//! [`Gatherer`]: the sources an [`IntelConfig`] turns on, built once per configuration (start,
//! reload) and asked together about one address. Setting a source up never fails the whole:
//! an unreadable key file, a bad hosting list or a missing database is a problem
//! ([`Gatherer::problems`]) and that source stays off or partial.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crmonban_core::config::{IntelConfig, Secret};
use tracing::debug;

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
    setup_problems: Vec<Problem>,
}

impl Gatherer {
    /// The sources `config` turns on. Reads the key files and the hosting list, opens the
    /// GeoIP databases (memory-mapped) and the resolver configuration; what fails is a
    /// problem, never an error.
    pub fn new(config: &IntelConfig) -> Gatherer {
        let Files {
            abuseipdb_key,
            shodan_key,
            hosting,
            mut problems,
        } = Files::read(config);
        let mut off = |source: Source, error: IntelError| {
            problems.push(Problem {
                source,
                message: format!("{} is off: {error}", source.name()),
            })
        };
        let geoip = config
            .geoip_enabled
            .then(|| GeoIp::open(&config.geoip_city_db, &config.geoip_asn_db));
        let rdns = if config.rdns_enabled {
            ReverseResolver::new(&config.dns_servers, config.timeout)
                .map_err(|e| off(Source::Rdns, e))
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
            .map_err(|e| off(Source::Whois, e))
            .ok()
        } else {
            None
        };
        let abuseipdb = abuseipdb_key.and_then(|key| {
            AbuseIpdbClient::new(key, &config.abuseipdb_url, config.timeout)
                .map_err(|e| off(Source::Abuseipdb, e))
                .ok()
        });
        let shodan = shodan_key.and_then(|key| {
            ShodanClient::new(key, &config.shodan_url, config.timeout)
                .map_err(|e| off(Source::Shodan, e))
                .ok()
        });
        let reporter = (config.abuseipdb_report && abuseipdb.is_some())
            .then(|| Mutex::new(Reporter::new(config.abuseipdb_reports_per_day)));
        let setup_problems = problems;
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

    /// What was wrong when the sources were set up (an unreadable key file or hosting list, a
    /// client that could not be built), one line each. Unlike [`Gatherer::problems`] it leaves
    /// out the GeoIP files' state, which GeoIP logs itself when it finds or changes.
    pub fn setup_problems(&self) -> &[Problem] {
        &self.setup_problems
    }

    /// What is wrong with the configured sources now, one line each (a missing database and
    /// how to get it, an unreadable key file, ...): for the log at start and `crmonctl status`.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = self.setup_problems.clone();
        if let Some(geoip) = &self.geoip {
            problems.extend(geoip.problems().into_iter().map(|message| Problem {
                source: Source::Geoip,
                message,
            }));
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
    problems.extend(Files::read(config).problems.into_iter().map(|p| p.message));
    problems
}

/// What `[intel]` points at on disk: the API keys (given, or read from their files) and the
/// hosting list, with what is wrong with them.
struct Files {
    abuseipdb_key: Option<Secret>,
    shodan_key: Option<Secret>,
    hosting: HostingAsns,
    problems: Vec<Problem>,
}

impl Files {
    fn read(config: &IntelConfig) -> Files {
        let mut problems = Vec::new();
        let mut key = |source: Source, given: Option<&Secret>, file: Option<&Path>| {
            if let Some(key) = given {
                return Some(key.clone());
            }
            let file = file?;
            read_key_file(file)
                .map_err(|why| {
                    problems.push(Problem {
                        source,
                        message: format!(
                            "{} is off: key file {}: {why}",
                            source.name(),
                            file.display()
                        ),
                    })
                })
                .ok()
        };
        let abuseipdb_key = key(
            Source::Abuseipdb,
            config.abuseipdb_api_key.as_ref(),
            config.abuseipdb_api_key_file.as_deref(),
        );
        let shodan_key = key(
            Source::Shodan,
            config.shodan_api_key.as_ref(),
            config.shodan_api_key_file.as_deref(),
        );
        if config.abuseipdb_report && abuseipdb_key.is_none() {
            problems.push(Problem {
                source: Source::Abuseipdb,
                message: "abuseipdb_report is on but AbuseIPDB has no key: nothing is reported"
                    .into(),
            });
        }
        let mut hosting = HostingAsns::builtin();
        if let Some(path) = &config.hosting_asn_file
            && let Err(problem) = hosting.load_extra(path)
        {
            problems.push(Problem {
                source: Source::Geoip,
                message: format!("hosting_asn_file: {problem}"),
            });
        }
        Files {
            abuseipdb_key,
            shodan_key,
            hosting,
            problems,
        }
    }
}

/// How long a source may take for one address at most, for the engine's own deadline: every
/// source is bounded by `timeout` per step, WHOIS by its referrals.
pub fn gather_deadline(config: &IntelConfig) -> Duration {
    config.timeout * (u32::from(WhoisOptions::default().max_referrals) + 2)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crmonban_testutil::mmdb::{self, CityEntry};

    use super::*;

    fn geoip_config(dir: &Path) -> IntelConfig {
        let city = dir.join("city.mmdb");
        let asn = dir.join("asn.mmdb");
        mmdb::write_city(
            &city,
            mmdb::GEOLITE2_CITY,
            &[CityEntry {
                network: "203.0.113.0/24",
                country_code: Some("DE"),
                country_name: Some("Germany"),
                city: Some("Nuremberg"),
                ..CityEntry::default()
            }],
        )
        .unwrap();
        mmdb::write_asn(
            &asn,
            mmdb::GEOLITE2_ASN,
            &[
                ("203.0.113.0/25", 24940, "Hetzner Online GmbH"),
                ("203.0.113.128/25", 64496, "Example Access Network"),
            ],
        )
        .unwrap();
        IntelConfig {
            geoip_city_db: city,
            geoip_asn_db: asn,
            ..IntelConfig::default()
        }
    }

    #[tokio::test]
    async fn geoip_alone_gives_location_network_and_the_hosting_flag() {
        let dir = tempfile::tempdir().unwrap();
        let gatherer = Gatherer::new(&geoip_config(dir.path()));
        assert_eq!(gatherer.sources(), [Source::Geoip]);
        assert!(gatherer.can_learn() && gatherer.problems().is_empty());

        let intel = gatherer
            .gather("203.0.113.7".parse().unwrap(), 1_700_000_000)
            .await;
        assert_eq!(intel.gathered_at, 1_700_000_000);
        assert_eq!(
            intel.summary().as_deref(),
            Some("DE, AS24940 Hetzner Online GmbH, hosting")
        );
        assert_eq!(
            intel.flags.hosting_reason.as_deref(),
            Some("AS24940 is a hosting network (Hetzner Online)")
        );
        assert!(intel.problems.is_empty(), "{:?}", intel.problems);

        // An access network is not flagged.
        let intel = gatherer.gather("203.0.113.200".parse().unwrap(), 0).await;
        assert!(!intel.flags.hosting, "{intel:?}");
        assert_eq!(
            intel.network_name().as_deref(),
            Some("AS64496 Example Access Network")
        );
    }

    #[test]
    fn missing_databases_and_key_files_are_problems_not_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty_key = dir.path().join("empty.key");
        std::fs::write(&empty_key, "\n").unwrap();
        let config = IntelConfig {
            geoip_city_db: PathBuf::from("/nonexistent/City.mmdb"),
            geoip_asn_db: PathBuf::from("/nonexistent/ASN.mmdb"),
            abuseipdb_api_key_file: Some(empty_key.clone()),
            shodan_api_key_file: Some(dir.path().join("absent.key")),
            abuseipdb_report: true,
            hosting_asn_file: Some(dir.path().join("absent-hosting.txt")),
            ..IntelConfig::default()
        };
        let gatherer = Gatherer::new(&config);
        // What setup found (the engine logs these at start), without the GeoIP files' state
        // (GeoIP logs that itself); the hosting list is GeoIP's but a setup problem.
        let setup: Vec<&Problem> = gatherer.setup_problems().iter().collect();
        assert!(
            setup
                .iter()
                .any(|p| p.source == Source::Geoip && p.message.contains("hosting_asn_file")),
            "{setup:?}"
        );
        assert!(
            !setup.iter().any(|p| p.message.contains("City.mmdb")),
            "{setup:?}"
        );
        assert!(!gatherer.can_learn());
        assert!(!gatherer.reports());
        assert_eq!(gatherer.sources(), [Source::Geoip]);
        let problems: Vec<(Source, String)> = gatherer
            .problems()
            .into_iter()
            .map(|p| (p.source, p.message))
            .collect();
        let has = |source: Source, text: &str| {
            problems
                .iter()
                .any(|(s, m)| *s == source && m.contains(text))
        };
        assert!(
            has(
                Source::Abuseipdb,
                &format!("key file {}: its first line is empty", empty_key.display())
            ),
            "{problems:?}"
        );
        assert!(has(Source::Shodan, "absent.key"), "{problems:?}");
        assert!(
            has(Source::Abuseipdb, "nothing is reported"),
            "{problems:?}"
        );
        assert!(
            has(Source::Geoip, "/nonexistent/City.mmdb is missing"),
            "{problems:?}"
        );
        assert!(has(Source::Geoip, "hosting_asn_file"), "{problems:?}");
        // check-config says the same, as lines.
        let checked = check_config(&config);
        assert_eq!(checked.len(), problems.len(), "{checked:?}");
    }

    #[test]
    fn a_key_file_gives_its_first_line_and_refuses_what_is_not_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k");
        std::fs::write(&file, "  abc123  \nsecond line\n").unwrap();
        assert_eq!(read_key_file(&file).unwrap().expose(), "abc123");
        std::fs::write(&file, "two words\n").unwrap();
        assert!(read_key_file(&file).is_err());
    }

    #[tokio::test]
    async fn failing_sources_are_problems_and_the_rest_is_kept() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let api = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/abuse/check"))
            .respond_with(ResponseTemplate::new(401).set_body_string(
                r#"{"errors":[{"detail":"Authentication failed.","status":401}]}"#,
            ))
            .mount(&api)
            .await;
        Mock::given(method("GET"))
            .and(path("/shodan/shodan/host/203.0.113.7"))
            .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"ports":"22"}"#))
            .mount(&api)
            .await;
        let dir = tempfile::tempdir().unwrap();
        let config = IntelConfig {
            abuseipdb_api_key: Some(Secret::new("abuse-secret")),
            abuseipdb_url: format!("{}/abuse", api.uri()),
            shodan_api_key: Some(Secret::new("shodan-secret")),
            shodan_url: format!("{}/shodan", api.uri()),
            ..geoip_config(dir.path())
        };
        let gatherer = Gatherer::new(&config);
        assert_eq!(
            gatherer.sources(),
            [Source::Geoip, Source::Abuseipdb, Source::Shodan]
        );
        let intel = gatherer.gather("203.0.113.7".parse().unwrap(), 0).await;
        // GeoIP answered; the two APIs failed, each named, and nothing of theirs is kept.
        assert_eq!(intel.country_code(), Some("DE"));
        assert!(intel.abuseipdb.is_none() && intel.shodan.is_none());
        let problems: Vec<(Source, &str)> = intel
            .problems
            .iter()
            .map(|p| (p.source, p.message.as_str()))
            .collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|(s, m)| *s == Source::Abuseipdb && m.contains("401")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|(s, m)| *s == Source::Shodan && m.contains("ports")),
            "{problems:?}"
        );
        let json = serde_json::to_string(&intel).unwrap();
        assert!(!json.contains("secret"), "{json}");
    }
}
