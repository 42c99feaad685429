//! Reverse DNS of a banned address with hickory-resolver: the PTR name, and whether that name
//! resolves back to the address (forward-confirmed reverse DNS). An attacker writes its own
//! PTR records, so only a confirmed name says something about who runs the address.
//!
//! One lookup is bounded as a whole by the configured timeout (PTR and forward queries
//! together); hickory's own per-query timeout and retries are set to fit inside it, so a dead
//! name server costs at most that timeout.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::{Name, RData};
use hickory_resolver::{Resolver, TokioResolver};
use tokio::time::Instant;

use crate::http::{MAX_TEXT_BYTES, clean_text};
use crate::{IntelError, ReverseDns};

/// How many PTR names are tried for forward confirmation: an address has one or two; a
/// zone that answers with dozens is not worth more queries.
const MAX_NAMES_CONFIRMED: usize = 4;

/// Answers cached by the resolver. The engine caches whole intel records in the store, so
/// this only spares the forward query when several bans of one network share a name.
const CACHE_ENTRIES: u64 = 1024;

/// Looks up PTR names, with forward confirmation.
pub(crate) struct ReverseResolver {
    resolver: TokioResolver,
    timeout: Duration,
    /// The servers asked, for messages: "127.0.0.1:53" or "resolv.conf".
    servers: String,
}

impl std::fmt::Debug for ReverseResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReverseResolver")
            .field("servers", &self.servers)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ReverseResolver {
    /// A resolver asking `servers` (ip:port, UDP then TCP), or the name servers of
    /// /etc/resolv.conf when `servers` is empty; each lookup bounded by `timeout`.
    pub(crate) fn new(
        servers: &[SocketAddr],
        timeout: Duration,
    ) -> Result<ReverseResolver, IntelError> {
        let (mut builder, described) = if servers.is_empty() {
            let builder = TokioResolver::builder_tokio().map_err(|e| IntelError::Io {
                what: "/etc/resolv.conf".to_owned(),
                message: one_line(&e.to_string()),
            })?;
            (builder, "resolv.conf".to_owned())
        } else {
            let mut config = ResolverConfig::default();
            for server in servers {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                config
                    .name_servers
                    .push(NameServerConfig::new(server.ip(), true, vec![udp, tcp]));
            }
            let described = servers
                .iter()
                .map(SocketAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            let mut builder =
                Resolver::builder_with_config(config, TokioRuntimeProvider::default());
            // Named servers are the whole truth: /etc/hosts has no say.
            builder.options_mut().use_hosts_file = ResolveHosts::Never;
            (builder, described)
        };
        fit_options(builder.options_mut(), timeout);
        let resolver = builder.build().map_err(|e| IntelError::Io {
            what: format!("DNS {described}"),
            message: one_line(&e.to_string()),
        })?;
        Ok(ReverseResolver {
            resolver,
            timeout,
            servers: described,
        })
    }

    /// The PTR name of `ip`, `None` when it has none (NXDOMAIN, or no PTR record), and
    /// whether one of its names resolves back to `ip`.
    pub(crate) async fn lookup(&self, ip: IpAddr) -> Result<Option<ReverseDns>, IntelError> {
        let deadline = Instant::now() + self.timeout;
        let what = || format!("reverse DNS of {ip} via {}", self.servers);
        let answer = match tokio::time::timeout_at(deadline, self.resolver.reverse_lookup(ip)).await
        {
            Err(_) => {
                return Err(IntelError::Timeout {
                    what: what(),
                    timeout: self.timeout,
                });
            }
            Ok(Err(e)) if e.is_no_records_found() => return Ok(None),
            Ok(Err(e)) => return Err(self.failure(what(), e)),
            Ok(Ok(answer)) => answer,
        };
        let names: Vec<Name> = answer
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::PTR(ptr) => Some(ptr.0.clone()),
                _ => None,
            })
            .take(MAX_NAMES_CONFIRMED)
            .collect();
        let Some(first) = names.first() else {
            return Ok(None);
        };
        // The first name that resolves back wins; a failed forward lookup (including one cut
        // by the deadline) only means "not confirmed": the PTR name is still worth showing.
        let mut confirmed = None;
        for name in &names {
            if self.resolves_to(name, ip, deadline).await {
                confirmed = Some(name);
                break;
            }
        }
        let name = display_name(confirmed.unwrap_or(first));
        if name.is_empty() {
            return Ok(None);
        }
        Ok(Some(ReverseDns {
            name,
            forward_confirmed: confirmed.is_some(),
        }))
    }

    /// Whether `name`'s A (for IPv4) or AAAA (for IPv6) records contain `ip`.
    async fn resolves_to(&self, name: &Name, ip: IpAddr, deadline: Instant) -> bool {
        let mut name = name.clone();
        // A PTR target is absolute; never let a search domain be appended.
        name.set_fqdn(true);
        let lookup = async {
            match ip {
                IpAddr::V4(v4) => self.resolver.ipv4_lookup(name).await.map(|answer| {
                    answer
                        .answers()
                        .iter()
                        .any(|r| matches!(&r.data, RData::A(a) if a.0 == v4))
                }),
                IpAddr::V6(v6) => self.resolver.ipv6_lookup(name).await.map(|answer| {
                    answer
                        .answers()
                        .iter()
                        .any(|r| matches!(&r.data, RData::AAAA(a) if a.0 == v6))
                }),
            }
        };
        match tokio::time::timeout_at(deadline, lookup).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::debug!(%ip, error = %one_line(&e.to_string()), "forward lookup failed");
                false
            }
            Err(_) => {
                tracing::debug!(%ip, "forward lookup cut by the deadline");
                false
            }
        }
    }

    fn failure(&self, what: String, e: NetError) -> IntelError {
        match e {
            NetError::Timeout => IntelError::Timeout {
                what,
                timeout: self.timeout,
            },
            NetError::Dns(DnsError::ResponseCode(code)) => IntelError::Refused {
                what,
                message: format!("the server answered {code}"),
            },
            other => IntelError::Io {
                what,
                message: one_line(&other.to_string()),
            },
        }
    }
}

/// hickory's per-query timeout and retries, fitted into the whole lookup's `timeout`: two
/// tries of half the time each, so one lost UDP datagram does not cost the answer, and the
/// resolver gives up about when we stop waiting.
fn fit_options(options: &mut ResolverOpts, timeout: Duration) {
    options.timeout = (timeout / 2).max(Duration::from_millis(50));
    options.attempts = 1;
    options.cache_size = CACHE_ENTRIES;
}

/// A name as shown: ASCII (IDNs stay in their xn-- form, which cannot pass for another
/// name), without the root dot, control-free and bounded.
fn display_name(name: &Name) -> String {
    let ascii = name.to_ascii();
    clean_text(ascii.strip_suffix('.').unwrap_or(&ascii), MAX_TEXT_BYTES)
}

fn one_line(text: &str) -> String {
    clean_text(text, MAX_TEXT_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Instant as StdInstant;

    use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
    use hickory_proto::rr::rdata::{A, AAAA, PTR};
    use hickory_proto::rr::{Record, RecordType};
    use tokio::net::UdpSocket;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).expect("test name")
    }

    /// What the test zone holds; `None` for a query it never answers.
    fn zone(query: &Name, kind: RecordType) -> Option<(ResponseCode, Vec<RData>)> {
        let ptr = |ip: IpAddr| Name::from(ip);
        let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
        let v6: IpAddr = "2001:db8::7".parse().expect("v6");
        let found = |data: RData| Some((ResponseCode::NoError, vec![data]));
        let q = query.to_ascii().to_ascii_lowercase();
        match kind {
            RecordType::PTR if *query == ptr(v4(203, 0, 113, 7)) => {
                found(RData::PTR(PTR(name("host.example.net."))))
            }
            RecordType::PTR if *query == ptr(v4(203, 0, 113, 8)) => {
                found(RData::PTR(PTR(name("liar.example.net."))))
            }
            RecordType::PTR if *query == ptr(v4(203, 0, 113, 9)) => {
                Some((ResponseCode::NXDomain, Vec::new()))
            }
            RecordType::PTR if *query == ptr(v4(203, 0, 113, 10)) => None,
            RecordType::PTR if *query == ptr(v4(203, 0, 113, 11)) => {
                // A hostile PTR: control characters and an over-long label chain.
                let evil = Name::from_labels(vec![
                    b"ev\x1bil\n".to_vec(),
                    b"x".repeat(60),
                    b"y".repeat(60),
                    b"z".repeat(60),
                    b"w".repeat(60),
                ])
                .expect("evil name");
                found(RData::PTR(PTR(evil)))
            }
            RecordType::PTR if *query == ptr(v6) => {
                found(RData::PTR(PTR(name("v6host.example.net."))))
            }
            RecordType::A if q == "host.example.net." => {
                found(RData::A(A(Ipv4Addr::new(203, 0, 113, 7))))
            }
            RecordType::A if q == "liar.example.net." => {
                found(RData::A(A(Ipv4Addr::new(198, 51, 100, 1))))
            }
            RecordType::AAAA if q == "v6host.example.net." => found(RData::AAAA(AAAA(
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7),
            ))),
            // The names exist, without records of the other family: NODATA.
            _ => Some((ResponseCode::NoError, Vec::new())),
        }
    }

    /// An authoritative UDP DNS server on 127.0.0.1 answering from [`zone`].
    async fn dns_server() -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(request) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                let Some(query) = request.queries.first().cloned() else {
                    continue;
                };
                let Some((code, data)) = zone(query.name(), query.query_type()) else {
                    continue; // silence: the client's timeout must apply
                };
                let mut response =
                    Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
                response.metadata.authoritative = true;
                response.metadata.recursion_desired = request.metadata.recursion_desired;
                response.metadata.recursion_available = true;
                response.metadata.response_code = code;
                response.add_query(query.clone());
                for rdata in data {
                    response.add_answer(Record::from_rdata(query.name().clone(), 300, rdata));
                }
                if let Ok(bytes) = response.to_vec() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        addr
    }

    async fn resolver() -> ReverseResolver {
        let server = dns_server().await;
        ReverseResolver::new(&[server], Duration::from_millis(500)).expect("resolver")
    }

    #[tokio::test]
    async fn a_ptr_that_resolves_back_is_confirmed() {
        let found = resolver()
            .await
            .lookup("203.0.113.7".parse().expect("ip"))
            .await
            .expect("lookup");
        assert_eq!(
            found,
            Some(ReverseDns {
                name: "host.example.net".to_owned(),
                forward_confirmed: true,
            })
        );
    }

    #[tokio::test]
    async fn a_ptr_whose_name_points_elsewhere_is_not_confirmed() {
        let found = resolver()
            .await
            .lookup("203.0.113.8".parse().expect("ip"))
            .await
            .expect("lookup");
        assert_eq!(
            found,
            Some(ReverseDns {
                name: "liar.example.net".to_owned(),
                forward_confirmed: false,
            })
        );
    }

    #[tokio::test]
    async fn nxdomain_and_nodata_are_no_name() {
        let resolver = resolver().await;
        let nx = resolver.lookup("203.0.113.9".parse().expect("ip")).await;
        assert_eq!(nx.expect("nxdomain is not an error"), None);
        // The zone answers NOERROR with no records for any other PTR.
        let nodata = resolver.lookup("203.0.113.99".parse().expect("ip")).await;
        assert_eq!(nodata.expect("nodata is not an error"), None);
    }

    #[tokio::test]
    async fn a_silent_server_is_cut_at_the_timeout() {
        let resolver = resolver().await;
        let started = StdInstant::now();
        let err = resolver
            .lookup("203.0.113.10".parse().expect("ip"))
            .await
            .expect_err("no answer");
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
        assert!(matches!(err, IntelError::Timeout { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with("reverse DNS of 203.0.113.10 via 127.0.0.1:"),
            "{text}"
        );
        assert!(text.ends_with("no answer within 500ms"), "{text}");
    }

    #[tokio::test]
    async fn an_ipv6_ptr_is_found_and_confirmed_by_aaaa() {
        let found = resolver()
            .await
            .lookup("2001:db8::7".parse().expect("ip"))
            .await
            .expect("lookup");
        assert_eq!(
            found,
            Some(ReverseDns {
                name: "v6host.example.net".to_owned(),
                forward_confirmed: true,
            })
        );
    }

    #[tokio::test]
    async fn a_hostile_ptr_name_is_shown_escaped_and_bounded() {
        let found = resolver()
            .await
            .lookup("203.0.113.11".parse().expect("ip"))
            .await
            .expect("lookup")
            .expect("a name");
        assert!(!found.forward_confirmed);
        assert!(
            !found.name.chars().any(char::is_control),
            "{:?}",
            found.name
        );
        assert!(found.name.len() <= MAX_TEXT_BYTES);
        assert!(found.name.contains("xxxxxxxx"), "{:?}", found.name);
    }

    #[tokio::test]
    async fn a_dead_server_port_fails_within_the_timeout() {
        // Nothing listens: UDP gets ICMP port unreachable or silence, TCP a refusal.
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("port")
            .port();
        let resolver = ReverseResolver::new(
            &[SocketAddr::from(([127, 0, 0, 1], port))],
            Duration::from_millis(500),
        )
        .expect("resolver");
        let started = StdInstant::now();
        let result = resolver.lookup("203.0.113.7".parse().expect("ip")).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        let err = result.expect_err("no server");
        assert!(
            err.to_string()
                .starts_with("reverse DNS of 203.0.113.7 via 127.0.0.1:"),
            "{err}"
        );
    }
}
