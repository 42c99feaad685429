//! WHOIS: who holds the network of an address, asked of the registries over port 43.
//!
//! whois-rust makes each connection (RFC 3912 framing, the per-server query from the list
//! it is given, a bounded read, one timeout for connect + query + whole answer, and the
//! decoding of answers that are not UTF-8); the referrals are followed here, from IANA
//! (`refer:`, `whois:`) through ARIN's `ReferralServer: whois://…` or a `Whois Server:`
//! line, because each hop must pass our per-server rate limit, stop on a loop, and be read
//! for a registry's refusal before anything else. The record is parsed in [`parse`] and the
//! per-server budgets are kept in [`limit`].
//!
//! The queries whois-rust's list lacks ship in `whois/servers.json` (its JSON format):
//! ARIN wants `n + <ip>` (the network records in full, not a list of matches); RIPE gets
//! `--no-personal <ip>`, which still returns the organisation object and the computed
//! "% Abuse contact" comment but no person or role object — those are what RIPE counts
//! against its daily limit, after which it denies access (`%ERROR:201`); APNIC, AFRINIC,
//! LACNIC and IANA get the bare address (APNIC's abuse contact may only be in the irt and
//! role objects that a plain query returns).

mod limit;
mod parse;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use whois_rust::validators::models::Host;
use whois_rust::{Target, WhoIs, WhoIsError, WhoIsLookupOptions, WhoIsServerValue};

use crate::error::IntelError;
use crate::record::Whois;
use limit::{Closed, Held, Limiter};
use parse::{Denial, Format};

/// Per-server queries, in whois-rust's server list format (`"_"` holds the default start).
const SERVER_LIST: &str = include_str!("whois/servers.json");
/// RFC 3912.
const WHOIS_PORT: u16 = 43;
/// The query for a server that is not in [`SERVER_LIST`].
const DEFAULT_QUERY: &str = "$addr\r\n";
/// How long a server that answered "slow down" or "denied" is left alone.
const BACKOFF: Duration = Duration::from_secs(60);

/// How WHOIS lookups are made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WhoisOptions {
    /// The first server asked, `host` or `host:port`; default `whois.iana.org`.
    pub start: String,
    /// Per connection: connect, query and the whole answer (and the wait for the server's
    /// budget before it). Default 10 s.
    pub timeout: Duration,
    /// Referrals followed at most; default 4.
    pub max_referrals: u8,
    /// Queries to one server host in any minute at most; default 20.
    pub per_server_per_minute: u32,
    /// A longer answer is an error rather than read; default 256 KiB.
    pub max_answer_bytes: usize,
}

impl Default for WhoisOptions {
    fn default() -> WhoisOptions {
        WhoisOptions {
            start: "whois.iana.org".into(),
            timeout: Duration::from_secs(10),
            max_referrals: 4,
            per_server_per_minute: 20,
            max_answer_bytes: 256 * 1024,
        }
    }
}

/// A WHOIS server: a host name (lower case) and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ServerName {
    host: String,
    port: u16,
}

impl ServerName {
    /// `host` or `host:port`, as configured or as a referral names it. The host is a dotted
    /// DNS name or an IPv4 address (letters, digits, `-`, `.`; at most 253 bytes).
    fn parse(text: &str) -> Option<ServerName> {
        let text = text.trim();
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().ok().filter(|&p| p != 0)?),
            None => (text, WHOIS_PORT),
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        // A WHOIS server has a dotted name (or is an IPv4 address); a lone word in a
        // referral is not one.
        let valid = host.contains('.')
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        valid.then(|| ServerName {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// As listed in [`Whois::servers`]: the host, with the port when it is not 43.
    fn label(&self) -> String {
        if self.port == WHOIS_PORT {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// As named in errors: `host:port`.
    fn what(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Asks the registries about addresses, within per-server budgets. Shared by reference
/// between concurrent lookups.
#[derive(Debug)]
pub(crate) struct WhoisClient {
    options: WhoisOptions,
    start: ServerName,
    whois: WhoIs,
    /// Server host → query template (`$addr` is the address).
    queries: HashMap<String, String>,
    /// Server host → the address to connect to instead of resolving it (tests).
    routes: HashMap<String, SocketAddr>,
    limiter: Limiter,
}

impl WhoisClient {
    /// A client with `options`; refuses options that cannot work (an unparsable start
    /// server, a zero timeout, budget or answer size).
    pub(crate) fn new(options: WhoisOptions) -> Result<WhoisClient, IntelError> {
        let invalid = |message: String| IntelError::Refused {
            what: "[intel] WHOIS options".into(),
            message,
        };
        let start = ServerName::parse(&options.start).ok_or_else(|| {
            invalid(format!(
                "whois_server {:?} is not a host name or host:port",
                parse::clean(&options.start).unwrap_or_default()
            ))
        })?;
        if options.timeout.is_zero() {
            return Err(invalid("the timeout must be longer than 0".into()));
        }
        if options.per_server_per_minute == 0 {
            return Err(invalid(
                "whois_queries_per_minute must be at least 1".into(),
            ));
        }
        if options.max_answer_bytes == 0 {
            return Err(invalid(
                "the largest WHOIS answer must be at least 1 byte".into(),
            ));
        }
        let whois = WhoIs::from_string(SERVER_LIST)
            .map_err(|error| invalid(format!("the shipped WHOIS server list: {error}")))?;
        let queries = server_queries(SERVER_LIST)
            .map_err(|error| invalid(format!("the shipped WHOIS server list: {error}")))?;
        Ok(WhoisClient {
            limiter: Limiter::new(options.per_server_per_minute),
            options,
            start,
            whois,
            queries,
            routes: HashMap::new(),
        })
    }

    /// Test hook: connect to `addr` whenever a server named `host` is to be asked, so that
    /// fixtures keep the real registry names (and their queries and formats).
    #[cfg(test)]
    pub(crate) fn route(&mut self, host: &str, addr: SocketAddr) {
        self.routes.insert(host.to_ascii_lowercase(), addr);
    }

    /// What the registries say about `ip`'s network: from the start server through the
    /// referrals to the last server, whose answer is parsed. Stops when an answer refers
    /// nowhere (or only to rwhois, an address, or a port other than 43), when it refers to a
    /// server already asked (a loop), or after `max_referrals` referrals. A registry's refusal
    /// or rate-limit notice is an error (and that server is left alone for a minute), never an
    /// empty record.
    ///
    /// Bounded in time: at most `max_referrals + 1` servers are asked, each within
    /// `timeout` (the wait for its budget included), so a lookup ends within
    /// `(max_referrals + 1) × timeout`.
    pub(crate) async fn lookup(&self, ip: IpAddr) -> Result<Whois, IntelError> {
        // An IPv4-mapped IPv6 address is asked about as the IPv4 address it is.
        let ip = ip.to_canonical();
        let mut server = self.start.clone();
        let mut asked: Vec<ServerName> = Vec::new();
        loop {
            let answer = self.ask(&server, ip).await?;
            asked.push(server.clone());
            if answer.trim().is_empty() {
                // Some servers drop a client they throttle without a word; an empty record
                // would hide that.
                return Err(IntelError::Refused {
                    what: server.what(),
                    message: "closed the connection without answering".into(),
                });
            }
            if let Some(denial) = parse::denial(&answer) {
                return Err(self.denied(&server, denial));
            }
            let followed = asked.len() - 1;
            match parse::referral(&answer) {
                Some(next) if asked.iter().any(|seen| seen.host == next.host) => {
                    tracing::debug!(server = %server.label(), next = %next.label(), "WHOIS referral loop; keeping this answer");
                }
                // Referrals come from registry data anyone can register (an ISP's
                // ReferralServer): followed to the WHOIS port of a named host only, so that an
                // answer cannot point our query at another service on this machine or network.
                Some(next) if next.port != WHOIS_PORT || next.host.parse::<IpAddr>().is_ok() => {
                    tracing::debug!(server = %server.label(), next = %next.label(), "WHOIS referral to an address or a port other than 43 not followed; keeping this answer");
                }
                Some(next) if followed >= usize::from(self.options.max_referrals) => {
                    tracing::debug!(server = %server.label(), next = %next.label(), "WHOIS referral limit reached; keeping this answer");
                }
                Some(next) => {
                    server = next;
                    continue;
                }
                None => {}
            }
            return Ok(whois_record(&asked, &server, &answer));
        }
    }

    /// One query to `server`, within its budget and `timeout`.
    async fn ask(&self, server: &ServerName, ip: IpAddr) -> Result<String, IntelError> {
        let timeout = self.options.timeout;
        let what = server.what();
        let started = Instant::now();
        let wait = self
            .limiter
            .admit(&server.host, started, timeout)
            .map_err(|held| self.held(&what, held))?;
        if !wait.is_zero() {
            tracing::debug!(server = %server.label(), ?wait, "waiting for the WHOIS server's budget");
            tokio::time::sleep(wait).await;
        }
        let remaining = timeout.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            return Err(IntelError::Timeout { what, timeout });
        }
        let io = |message: String| IntelError::Io {
            what: what.clone(),
            message,
        };
        let connect_to = match self.routes.get(&server.host) {
            Some(addr) => addr.to_string(),
            None => server.what(),
        };
        let mut value = WhoIsServerValue::from_string(&connect_to)
            .map_err(|error| io(format!("not a server address: {error}")))?;
        value.query = Some(
            self.queries
                .get(&server.host)
                .map_or(DEFAULT_QUERY, String::as_str)
                .to_owned(),
        );
        let host = match ip {
            IpAddr::V4(v4) => Host::IPv4(v4),
            IpAddr::V6(v6) => Host::IPv6(v6),
        };
        let target = Target::from_host(host).map_err(|error| io(error.to_string()))?;
        let mut lookup = WhoIsLookupOptions::from_target(target);
        lookup.server = Some(value);
        // Referrals are ours to follow, one budgeted hop at a time.
        lookup.follow = 0;
        lookup.timeout = Some(remaining);
        lookup.max_response_size = Some(self.options.max_answer_bytes);
        tracing::debug!(server = %server.label(), %ip, "asking WHOIS");
        self.whois
            .lookup_raw_async(lookup)
            .await
            .map(decode)
            .map_err(|error| self.connection_error(&what, error))
    }

    /// The error for a query that the budget or a closed door holds back (no connection).
    fn held(&self, what: &str, held: Held) -> IntelError {
        match held {
            Held::Budget { wait } => IntelError::RateLimited {
                what: format!(
                    "{what} (whois_queries_per_minute = {})",
                    self.options.per_server_per_minute
                ),
                retry_after: Some(whole_seconds(wait)),
            },
            Held::RateLimited { remaining } => IntelError::RateLimited {
                what: what.to_owned(),
                retry_after: Some(whole_seconds(remaining)),
            },
            Held::Refused { remaining, message } => IntelError::Refused {
                what: what.to_owned(),
                message: format!(
                    "{message} (not asked again for {} s)",
                    whole_seconds(remaining).as_secs()
                ),
            },
        }
    }

    /// The error for a registry's refusal, after closing the door to it for [`BACKOFF`]:
    /// asking again at once is what gets a client blocked for good.
    fn denied(&self, server: &ServerName, denial: Denial) -> IntelError {
        let what = server.what();
        match denial {
            Denial::RateLimited(message) => {
                tracing::warn!(server = %server.label(), %message, "WHOIS server rate-limits us; leaving it alone for {} s", BACKOFF.as_secs());
                self.limiter
                    .close(&server.host, Instant::now(), BACKOFF, Closed::RateLimited);
                IntelError::RateLimited {
                    what,
                    retry_after: Some(BACKOFF),
                }
            }
            Denial::Refused(message) => {
                tracing::warn!(server = %server.label(), %message, "WHOIS server refused us; leaving it alone for {} s", BACKOFF.as_secs());
                self.limiter.close(
                    &server.host,
                    Instant::now(),
                    BACKOFF,
                    Closed::Refused(message.clone()),
                );
                IntelError::Refused { what, message }
            }
        }
    }

    /// whois-rust's error, as ours.
    fn connection_error(&self, what: &str, error: WhoIsError) -> IntelError {
        let timeout = self.options.timeout;
        match error {
            WhoIsError::Elapsed(_) => IntelError::Timeout {
                what: what.to_owned(),
                timeout,
            },
            WhoIsError::IOError(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                IntelError::Timeout {
                    what: what.to_owned(),
                    timeout,
                }
            }
            // whois-rust reads one byte past the limit and fails rather than truncate.
            WhoIsError::IOError(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                IntelError::Malformed {
                    what: format!("{what} answer"),
                    problem: format!(
                        "longer than {} bytes, the most read; not used",
                        self.options.max_answer_bytes
                    ),
                }
            }
            other => IntelError::Io {
                what: what.to_owned(),
                message: parse::clean(&other.to_string()).unwrap_or_else(|| "I/O error".into()),
            },
        }
    }
}

/// The [`Whois`] read from the last server's answer.
fn whois_record(asked: &[ServerName], server: &ServerName, answer: &str) -> Whois {
    let record = parse::record(Format::of(&server.host, answer), answer);
    Whois {
        servers: asked.iter().map(ServerName::label).collect(),
        registry: Some(registry_name(&server.host)),
        organization: record.organization,
        network_name: record.network_name,
        range: record.range,
        country: record.country,
        abuse_contact: record.abuse_contact,
    }
}

/// The registry a server belongs to, or the server's name.
fn registry_name(host: &str) -> String {
    match host {
        "whois.arin.net" => "ARIN",
        "whois.ripe.net" => "RIPE",
        "whois.apnic.net" => "APNIC",
        "whois.lacnic.net" => "LACNIC",
        "whois.afrinic.net" => "AFRINIC",
        other => other,
    }
    .to_owned()
}

/// Server host → query, from a whois-rust server list.
fn server_queries(list: &str) -> Result<HashMap<String, String>, String> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(list).map_err(|error| error.to_string())?;
    let mut queries = HashMap::new();
    for (key, value) in &map {
        if key == "_" {
            continue;
        }
        let server =
            WhoIsServerValue::from_value(value).map_err(|error| format!("{key}: {error}"))?;
        queries.insert(
            server.host.host().to_string().to_ascii_lowercase(),
            server.query.unwrap_or_else(|| DEFAULT_QUERY.to_owned()),
        );
    }
    Ok(queries)
}

/// A duration as shown to people: whole seconds, rounded up so that "retry after" is never
/// too early.
fn whole_seconds(duration: Duration) -> Duration {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    Duration::from_secs(seconds)
}

/// A WHOIS answer as text: UTF-8 when it is (RIPE, APNIC, ARIN today), else ISO-8859-1, the
/// only other encoding the registries use (LACNIC, older RIPE and AFRINIC objects), where every
/// byte is the character of the same number.
fn decode(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => error.into_bytes().into_iter().map(char::from).collect(),
    }
}

#[cfg(test)]
mod tests;
