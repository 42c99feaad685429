//! Shodan (<https://developer.shodan.io/api>): what Shodan's scanners saw on an address —
//! open ports, host names, tags and the CVEs of the services seen — from
//! `GET /shodan/host/{ip}?key=..&minify=true`.
//!
//! Shodan takes its key in the query string, so the request URL is a secret: [`ApiClient`]
//! strips URLs from transport errors and scrubs the key from every message.

use std::net::IpAddr;
use std::time::Duration;

use crmonban_core::config::Secret;
use reqwest::StatusCode;
use serde_json::Value;

use crate::http::{ApiClient, Fields, MAX_ITEMS, MAX_TEXT_BYTES, clean_text, describe, json_body};
use crate::{IntelError, Shodan};

const SERVICE: &str = "Shodan";

/// A Shodan API client.
#[derive(Debug)]
pub(crate) struct ShodanClient {
    api: ApiClient,
}

impl ShodanClient {
    /// A client for the API at `base_url` (normally `https://api.shodan.io`).
    pub(crate) fn new(
        key: Secret,
        base_url: &str,
        timeout: Duration,
    ) -> Result<ShodanClient, IntelError> {
        Ok(ShodanClient {
            api: ApiClient::new(SERVICE, base_url, key, timeout)?,
        })
    }

    /// What Shodan knows about `ip`; `None` when it has never seen it.
    pub(crate) async fn host(&self, ip: IpAddr) -> Result<Option<Shodan>, IntelError> {
        let url = self.api.url(
            &format!("/shodan/host/{ip}"),
            &[("key", self.api.key()), ("minify", "true")],
        )?;
        let request = self.api.get(url, &[("Accept", "application/json")]);
        let answer = self.api.send(request, &[StatusCode::NOT_FOUND]).await?;
        if answer.status == StatusCode::NOT_FOUND {
            // Shodan answers 404 {"error": "No information available for that IP."} for an
            // address it has not seen. A 404 without that JSON shape comes from something
            // else (a wrong base URL, a proxy) and must not pass for "nothing known".
            let shodans = json_body(SERVICE, &answer.body)
                .ok()
                .is_some_and(|body| body.get("error").is_some_and(Value::is_string));
            return if shodans {
                Ok(None)
            } else {
                Err(self.api.refused(answer.status, &answer.body))
            };
        }
        parse_host(&json_body(SERVICE, &answer.body)?, &self.api).map(Some)
    }
}

/// The host answer: `{"ports": [..], "hostnames": [..], "tags": [..], "vulns": [..] or {..},
/// "os": .., "org": .., "last_update": ..}`; an `{"error": ..}` in a 2xx is a refusal.
fn parse_host(body: &Value, api: &ApiClient) -> Result<Shodan, IntelError> {
    if let Some(error) = body.get("error").and_then(Value::as_str) {
        return Err(IntelError::Refused {
            what: SERVICE.to_owned(),
            message: api.scrub(error),
        });
    }
    let host = Fields::of(SERVICE, "", Some(body))?;
    Ok(Shodan {
        ports: ports(&host)?,
        hostnames: host.text_list("hostnames")?,
        tags: host.text_list("tags")?,
        vulns: vulns(&host)?,
        os: host.text("os")?,
        org: host.text("org")?,
        last_update: host
            .text("last_update")?
            .map(|t| clean_text(&t, 64))
            .filter(|t| !t.is_empty()),
    })
}

/// `ports`: port numbers, ascending, without repeats, at most [`MAX_ITEMS`] (the lowest).
fn ports(host: &Fields<'_>) -> Result<Vec<u16>, IntelError> {
    let items = match host.raw("ports") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(host.malformed(
                "ports",
                format!("expected a list of port numbers, got {}", describe(other)),
            ));
        }
    };
    let mut ports = Vec::with_capacity(items.len().min(MAX_ITEMS));
    for (i, item) in items.iter().enumerate() {
        let port = item
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| {
                host.malformed(
                    &format!("ports[{i}]"),
                    format!("expected a number 0-65535, got {}", describe(item)),
                )
            })?;
        ports.push(port);
    }
    ports.sort_unstable();
    ports.dedup();
    ports.truncate(MAX_ITEMS);
    Ok(ports)
}

/// `vulns`: CVE identifiers, as a list (minified and newer host answers) or as the keys of an
/// object (the full banners' shape, `{"CVE-2014-0160": {"cvss": .., ...}}`); sorted, without
/// repeats, at most [`MAX_ITEMS`].
fn vulns(host: &Fields<'_>) -> Result<Vec<String>, IntelError> {
    let mut vulns: Vec<String> = match host.raw("vulns") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(_)) => host.text_list("vulns")?,
        Some(Value::Object(map)) => map
            .keys()
            .map(|k| clean_text(k, MAX_TEXT_BYTES))
            .filter(|k| !k.is_empty())
            .take(MAX_ITEMS * 4)
            .collect(),
        Some(other) => {
            return Err(host.malformed(
                "vulns",
                format!(
                    "expected a list or an object of CVEs, got {}",
                    describe(other)
                ),
            ));
        }
    };
    vulns.sort_unstable();
    vulns.dedup();
    vulns.truncate(MAX_ITEMS);
    Ok(vulns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const KEY: &str = "shodanTESTkey0123456789ABCDEFGH";

    /// A minified host answer in the shape of Shodan's documentation (8.8.8.8).
    const HOST_ANSWER: &str = r#"{
      "region_code": null, "ip": 134744072, "postal_code": null, "country_code": "US",
      "city": null, "dma_code": null, "last_update": "2021-01-22T08:49:35.190817",
      "latitude": 37.751, "tags": ["cloud"], "area_code": null,
      "country_name": "United States", "hostnames": ["dns.google"], "org": "Google",
      "asn": "AS15169", "isp": "Google", "longitude": -97.822, "country_code3": null,
      "domains": ["dns.google"], "ip_str": "8.8.8.8", "os": null, "ports": [853, 53, 443, 53],
      "vulns": ["CVE-2023-44487", "CVE-2014-0160"]
    }"#;

    async fn server_answering(ip: &str, template: ResponseTemplate) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("/shodan/host/{ip}")))
            .respond_with(template)
            .mount(&server)
            .await;
        server
    }

    async fn host_with(template: ResponseTemplate) -> Result<Option<Shodan>, IntelError> {
        let server = server_answering("8.8.8.8", template).await;
        let client = ShodanClient::new(Secret::new(KEY), &server.uri(), Duration::from_secs(2))
            .expect("client");
        assert!(!format!("{client:?}").contains(KEY));
        let result = client.host("8.8.8.8".parse().expect("ip")).await;
        if let Err(e) = &result {
            assert!(!e.to_string().contains(KEY), "{e}");
            assert!(!format!("{e:?}").contains(KEY), "{e:?}");
        }
        result
    }

    #[tokio::test]
    async fn a_host_answer_is_read_with_the_key_in_the_query() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/shodan/host/8.8.8.8"))
            .and(query_param("key", KEY))
            .and(query_param("minify", "true"))
            .respond_with(ResponseTemplate::new(200).set_body_string(HOST_ANSWER))
            .expect(1)
            .mount(&server)
            .await;
        let client = ShodanClient::new(Secret::new(KEY), &server.uri(), Duration::from_secs(2))
            .expect("client");
        let found = client
            .host("8.8.8.8".parse().expect("ip"))
            .await
            .expect("host")
            .expect("known");
        assert_eq!(
            found,
            Shodan {
                ports: vec![53, 443, 853],
                hostnames: vec!["dns.google".to_owned()],
                tags: vec!["cloud".to_owned()],
                vulns: vec!["CVE-2014-0160".to_owned(), "CVE-2023-44487".to_owned()],
                os: None,
                org: Some("Google".to_owned()),
                last_update: Some("2021-01-22T08:49:35.190817".to_owned()),
            }
        );
    }

    #[tokio::test]
    async fn vulns_as_an_object_keyed_by_cve_are_read_too() {
        let found = host_with(ResponseTemplate::new(200).set_body_string(
            r#"{"ip_str":"8.8.8.8","ports":[22],"hostnames":[],"tags":["vpn","tor"],
            "os":"Linux","vulns":{"CVE-2018-15473":{"cvss":5.0,"verified":false},
            "CVE-2016-6210":{"cvss":4.3,"verified":false}}}"#,
        ))
        .await
        .expect("host")
        .expect("known");
        assert_eq!(found.vulns, ["CVE-2016-6210", "CVE-2018-15473"]);
        assert_eq!(found.tags, ["vpn", "tor"]);
        assert_eq!(found.os.as_deref(), Some("Linux"));
        assert_eq!(found.ports, [22]);
    }

    #[tokio::test]
    async fn an_address_shodan_never_saw_is_none() {
        let found = host_with(
            ResponseTemplate::new(404)
                .set_body_string(r#"{"error": "No information available for that IP."}"#),
        )
        .await
        .expect("not an error");
        assert_eq!(found, None);
    }

    #[tokio::test]
    async fn a_404_that_is_not_shodans_is_an_error() {
        let err = host_with(ResponseTemplate::new(404).set_body_string("<h1>Not Found</h1>"))
            .await
            .expect_err("wrong base URL");
        assert_eq!(err.to_string(), "Shodan: HTTP 404: <h1>Not Found</h1>");
    }

    #[tokio::test]
    async fn a_refused_key_is_unauthorized() {
        let err = host_with(
            ResponseTemplate::new(401)
                .set_body_string(r#"{"error": "Please provide a valid API key"}"#),
        )
        .await
        .expect_err("401");
        assert!(matches!(err, IntelError::Unauthorized { status: 401, .. }));
        assert_eq!(
            err.to_string(),
            "Shodan: the API key was refused (HTTP 401); check it in [intel]"
        );
    }

    #[tokio::test]
    async fn a_rate_limit_says_when_to_retry() {
        let err = host_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "120")
                .set_body_string(r#"{"error": "Rate limit reached (1/second)"}"#),
        )
        .await
        .expect_err("429");
        assert!(matches!(
            err,
            IntelError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(120)
        ));
    }

    #[tokio::test]
    async fn an_error_that_echoes_the_key_does_not_show_it() {
        let err = host_with(ResponseTemplate::new(500).set_body_string(format!(
            r#"{{"error": "internal error handling /shodan/host/8.8.8.8?key={KEY}&minify=true"}}"#
        )))
        .await
        .expect_err("500");
        assert_eq!(
            err.to_string(),
            "Shodan: HTTP 500: internal error handling /shodan/host/8.8.8.8?key=<key>&minify=true"
        );
    }

    #[tokio::test]
    async fn malformed_answers_name_the_field() {
        let cases = [
            ("not json", "Shodan: malformed answer: not JSON"),
            (
                r#"{"ports":"22"}"#,
                "Shodan ports: malformed answer: expected a list of port numbers, got \"22\"",
            ),
            (
                r#"{"ports":[22, 70000]}"#,
                "Shodan ports[1]: malformed answer: expected a number 0-65535, got 70000",
            ),
            (
                r#"{"hostnames":["a", 5]}"#,
                "Shodan hostnames[1]: malformed answer: expected a string, got 5",
            ),
            (
                r#"{"vulns":"CVE-2014-0160"}"#,
                "Shodan vulns: malformed answer: expected a list or an object of CVEs, got \"CVE-2014-0160\"",
            ),
            (
                r#"{"os":42}"#,
                "Shodan os: malformed answer: expected a string, got 42",
            ),
            (
                r#"[1,2]"#,
                "Shodan: malformed answer: expected an object, got [1,2]",
            ),
        ];
        for (body, expected) in cases {
            let err = host_with(ResponseTemplate::new(200).set_body_string(body))
                .await
                .expect_err(body);
            assert!(matches!(err, IntelError::Malformed { .. }), "{err:?}");
            assert!(err.to_string().starts_with(expected), "{body}: {err}");
        }
    }

    #[tokio::test]
    async fn long_lists_and_hostile_text_are_bounded() {
        let ports: Vec<u32> = (1..=1000).rev().collect();
        let hostnames: Vec<String> = (0..500).map(|i| format!("h{i}.example")).collect();
        let body = serde_json::json!({
            "ports": ports,
            "hostnames": hostnames,
            "tags": ["evil\u{1b}[31m\ntag"],
            "org": "o".repeat(5000),
        });
        let found = host_with(ResponseTemplate::new(200).set_body_string(body.to_string()))
            .await
            .expect("host")
            .expect("known");
        assert_eq!(found.ports, (1..=64).collect::<Vec<u16>>());
        assert_eq!(found.hostnames.len(), MAX_ITEMS);
        assert_eq!(found.tags, ["evil[31m tag"]);
        assert_eq!(found.org.map(|o| o.len()), Some(MAX_TEXT_BYTES));
    }
}
