//! Unit tests of `abuseipdb.rs`.
use super::*;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "abuseipdb-test-key-5f1e2d3c4b5a69788796a5b4c3d2e1f0";
const IP: &str = "118.25.6.39";

/// The `check` answer as AbuseIPDB's v2 documentation shows it.
const CHECK_ANSWER: &str = r#"{
  "data": {
    "ipAddress": "118.25.6.39",
    "isPublic": true,
    "ipVersion": 4,
    "isWhitelisted": false,
    "abuseConfidenceScore": 100,
    "countryCode": "CN",
    "usageType": "Data Center/Web Hosting/Transit",
    "isp": "Tencent Cloud Computing (Beijing) Co. Ltd",
    "domain": "tencent.com",
    "hostnames": [],
    "isTor": false,
    "totalReports": 1,
    "numDistinctUsers": 1,
    "lastReportedAt": "2018-12-20T20:55:14+00:00"
  }
}"#;

async fn server_answering(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/check"))
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

fn client(server: &MockServer) -> AbuseIpdbClient {
    AbuseIpdbClient::new(
        Secret::new(KEY),
        &format!("{}/api/v2", server.uri()),
        Duration::from_secs(2),
    )
    .expect("client")
}

async fn check_with(template: ResponseTemplate) -> Result<AbuseIpdb, IntelError> {
    let server = server_answering(template).await;
    let result = client(&server).check(IP.parse().expect("ip")).await;
    if let Err(e) = &result {
        assert!(!e.to_string().contains(KEY), "{e}");
        assert!(!format!("{e:?}").contains(KEY), "{e:?}");
    }
    result
}

#[tokio::test]
async fn check_reads_every_field_and_sends_the_key_header() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/check"))
        .and(query_param("ipAddress", IP))
        .and(query_param("maxAgeInDays", "90"))
        .and(header("Key", KEY))
        .and(header("Accept", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_string(CHECK_ANSWER))
        .expect(1)
        .mount(&server)
        .await;
    let found = client(&server)
        .check(IP.parse().expect("ip"))
        .await
        .expect("check");
    assert_eq!(
        found,
        AbuseIpdb {
            confidence: 100,
            total_reports: 1,
            distinct_users: Some(1),
            usage_type: Some("Data Center/Web Hosting/Transit".to_owned()),
            isp: Some("Tencent Cloud Computing (Beijing) Co. Ltd".to_owned()),
            domain: Some("tencent.com".to_owned()),
            country_code: Some("CN".to_owned()),
            last_reported_at: Some("2018-12-20T20:55:14+00:00".to_owned()),
            whitelisted: Some(false),
        }
    );
    // The key is in the header only, never in the URL.
    let requests = server.received_requests().await.expect("recorded");
    assert!(!requests[0].url.as_str().contains(KEY));
}

#[tokio::test]
async fn an_address_never_reported_has_nulls_that_are_kept_as_unknown() {
    let found = check_with(ResponseTemplate::new(200).set_body_string(
        r#"{"data":{"ipAddress":"203.0.113.7","isPublic":true,"ipVersion":4,
        "isWhitelisted":null,"abuseConfidenceScore":0,"countryCode":null,"usageType":null,
        "isp":"","domain":null,"hostnames":[],"isTor":false,"totalReports":0,
        "numDistinctUsers":0,"lastReportedAt":null}}"#,
    ))
    .await
    .expect("check");
    assert_eq!(
        found,
        AbuseIpdb {
            distinct_users: Some(0),
            ..AbuseIpdb::default()
        }
    );
}

#[tokio::test]
async fn a_refused_key_is_unauthorized() {
    let err = check_with(ResponseTemplate::new(401).set_body_string(
        r#"{"errors":[{"detail":"Authentication failed. Your API key is either missing, incorrect, or revoked. Note: The APIv2 key differs from the APIv1 key.","status":401}]}"#,
    ))
    .await
    .expect_err("401");
    assert!(matches!(err, IntelError::Unauthorized { status: 401, .. }));
    assert_eq!(
        err.to_string(),
        "AbuseIPDB: the API key was refused (HTTP 401); check it in [intel]"
    );
}

#[tokio::test]
async fn a_rate_limit_says_when_to_retry() {
    let err = check_with(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "120")
            .insert_header("X-RateLimit-Limit", "1000")
            .insert_header("X-RateLimit-Remaining", "0")
            .set_body_string(
                r#"{"errors":[{"detail":"Daily rate limit of 1000 requests exceeded for this endpoint. See headers for additional details.","status":429}]}"#,
            ),
    )
    .await
    .expect_err("429");
    assert!(matches!(
        err,
        IntelError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(120)
    ));
    assert_eq!(
        err.to_string(),
        "AbuseIPDB: rate-limited, retry after 120 s"
    );
}

#[tokio::test]
async fn malformed_answers_name_the_field() {
    let not_json = check_with(ResponseTemplate::new(200).set_body_string("<html>oops</html>"))
        .await
        .expect_err("not json");
    assert!(
        not_json
            .to_string()
            .starts_with("AbuseIPDB: malformed answer: not JSON"),
        "{not_json}"
    );

    let cases = [
        (
            r#"{"data":{"abuseConfidenceScore":"high","totalReports":1}}"#,
            "AbuseIPDB data.abuseConfidenceScore: malformed answer: expected a number 0-100, got \"high\"",
        ),
        (
            r#"{"data":{"abuseConfidenceScore":101,"totalReports":1}}"#,
            "AbuseIPDB data.abuseConfidenceScore: malformed answer: expected a number 0-100, got 101",
        ),
        (
            r#"{"data":{"totalReports":1}}"#,
            "AbuseIPDB data.abuseConfidenceScore: malformed answer: expected a number 0-100, got nothing",
        ),
        (
            r#"{"data":{"abuseConfidenceScore":5,"totalReports":-1}}"#,
            "AbuseIPDB data.totalReports: malformed answer: expected a number 0-4294967295, got -1",
        ),
        (
            r#"{"data":{"abuseConfidenceScore":5,"totalReports":1,"isp":["a"]}}"#,
            "AbuseIPDB data.isp: malformed answer: expected a string, got [\"a\"]",
        ),
        (
            r#"{"data":{"abuseConfidenceScore":5,"totalReports":1,"isWhitelisted":"no"}}"#,
            "AbuseIPDB data.isWhitelisted: malformed answer: expected true or false, got \"no\"",
        ),
        (
            r#"{"data":[]}"#,
            "AbuseIPDB data: malformed answer: expected an object, got []",
        ),
        (r#"{}"#, "AbuseIPDB data: malformed answer: missing"),
    ];
    for (body, expected) in cases {
        let err = check_with(ResponseTemplate::new(200).set_body_string(body))
            .await
            .expect_err(body);
        assert!(matches!(err, IntelError::Malformed { .. }), "{err:?}");
        assert_eq!(err.to_string(), expected, "{body}");
    }
}

#[tokio::test]
async fn hostile_text_is_cleaned_and_bounded() {
    let long = "x".repeat(10_000);
    let body = format!(
        r#"{{"data":{{"abuseConfidenceScore":5,"totalReports":1,"isp":"Evil\nISP\u001b[2J","domain":"{long}"}}}}"#
    );
    let found = check_with(ResponseTemplate::new(200).set_body_string(body))
        .await
        .expect("check");
    assert_eq!(found.isp.as_deref(), Some("Evil ISP[2J"));
    assert_eq!(found.domain.map(|d| d.len()), Some(256));
}

#[tokio::test]
async fn an_answer_over_one_mebibyte_is_refused() {
    let big = format!(
        r#"{{"data":{{"abuseConfidenceScore":5,"totalReports":1,"isp":"{}"}}}}"#,
        "x".repeat(1024 * 1024)
    );
    let err = check_with(ResponseTemplate::new(200).set_body_string(big))
        .await
        .expect_err("too big");
    assert_eq!(
        err.to_string(),
        "AbuseIPDB answer: malformed answer: larger than 1048576 bytes; not read further"
    );
}

#[tokio::test]
async fn other_refusals_carry_the_apis_detail() {
    let err = check_with(ResponseTemplate::new(422).set_body_string(
        r#"{"errors":[{"detail":"The max age in days must be between 1 and 365.","status":422,"source":{"parameter":"maxAgeInDays"}}]}"#,
    ))
    .await
    .expect_err("422");
    assert_eq!(
        err.to_string(),
        "AbuseIPDB: HTTP 422: The max age in days must be between 1 and 365."
    );
}

#[tokio::test]
async fn report_sends_the_form_fields_with_the_key_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/report"))
        .and(header("Key", KEY))
        .and(header("Content-Type", "application/x-www-form-urlencoded"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(
                r#"{"data":{"ipAddress":"2001:db8::7","abuseConfidenceScore":52}}"#,
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    let comment = format!(
        "sshd: 5 failed logins\nfrom 2001:db8::7 & more{}",
        "!".repeat(2000)
    );
    client(&server)
        .report(
            "2001:db8::7".parse().expect("ip"),
            &categories_for(Some("sshd")),
            &comment,
        )
        .await
        .expect("report");
    let requests = server.received_requests().await.expect("recorded");
    let form: HashMap<String, String> =
        url_decode_form(&String::from_utf8_lossy(&requests[0].body));
    assert_eq!(form.get("ip").map(String::as_str), Some("2001:db8::7"));
    assert_eq!(form.get("categories").map(String::as_str), Some("18,22"));
    let sent = form.get("comment").expect("comment");
    assert!(sent.starts_with("sshd: 5 failed logins from 2001:db8::7 & more!!!"));
    assert_eq!(sent.chars().count(), MAX_COMMENT_CHARS);
}

#[tokio::test]
async fn a_second_report_within_15_minutes_is_rate_limited_by_the_api() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/report"))
        .respond_with(ResponseTemplate::new(429).set_body_string(
            r#"{"errors":[{"detail":"You can only report the same IP address (`203.0.113.7`) once in 15 minutes.","status":429,"source":{"parameter":"ip"}}]}"#,
        ))
        .mount(&server)
        .await;
    let err = client(&server)
        .report("203.0.113.7".parse().expect("ip"), &[18], "again")
        .await
        .expect_err("429");
    assert!(matches!(
        err,
        IntelError::RateLimited {
            retry_after: None,
            ..
        }
    ));
    assert!(!err.to_string().contains(KEY));
}

/// application/x-www-form-urlencoded, decoded (the test's own reading of the wire).
fn url_decode_form(body: &str) -> HashMap<String, String> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).expect("utf-8")
    };
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

#[test]
fn categories_follow_what_each_service_saw() {
    let cases: &[(Option<&str>, &[u8])] = &[
        (Some("ssh"), &[18, 22]),
        (Some("sshd"), &[18, 22]),
        (Some("dropbear"), &[18, 22]),
        (Some("vsftpd"), &[5, 18]),
        (Some("proftpd"), &[5, 18]),
        (Some("pure-ftpd"), &[5, 18]),
        (Some("nginx"), &[18, 21]),
        (Some("nginx-http-auth"), &[18, 21]),
        (Some("apache-auth"), &[18, 21]),
        (Some("nginx-limit-req"), &[19]),
        (Some("apache-badbots"), &[19]),
        (Some("nginx-botsearch"), &[21]),
        (Some("apache-noscript"), &[21]),
        (Some("apache-overflows"), &[21]),
        (Some("nginx-bad-request"), &[21]),
        (Some("postfix"), &[18]),
        (Some("postfix-sasl"), &[18]),
        (Some("postfix-rbl"), &[11]),
        (Some("dovecot"), &[18]),
        (Some("exim"), &[18]),
        (Some("courier-auth"), &[18]),
        (Some("sendmail-reject"), &[11]),
        (Some("asterisk"), &[8, 18]),
        (Some("openvpn"), &[18]),
        (Some("mysqld-auth"), &[18]),
        (Some("my-own-app"), &[18]),
        (Some("SSHD"), &[18, 22]),
        (Some("dbus"), &[15]),
        (Some(""), &[15]),
        (None, &[15]),
    ];
    for (service, expected) in cases {
        assert_eq!(categories_for(*service), *expected, "{service:?}");
    }
}

#[test]
fn an_address_is_reported_once_per_15_minutes() {
    let start = Instant::now();
    let ip: IpAddr = "203.0.113.7".parse().expect("ip");
    let other: IpAddr = "203.0.113.8".parse().expect("ip");
    let mut reporter = Reporter::new(1000);
    assert!(reporter.allow(ip, start));
    assert!(!reporter.allow(ip, start + Duration::from_secs(60)));
    assert!(!reporter.allow(ip, start + Duration::from_secs(15 * 60 - 1)));
    assert!(reporter.allow(other, start + Duration::from_secs(60)));
    assert!(reporter.allow(ip, start + Duration::from_secs(15 * 60)));
    assert_eq!(reporter.skipped(), 2);
}

#[test]
fn the_daily_budget_holds_over_any_24_hours() {
    let start = Instant::now();
    let mut reporter = Reporter::new(3);
    let ip = |n: u8| IpAddr::from([198, 51, 100, n]);
    assert!(reporter.allow(ip(1), start));
    assert!(reporter.allow(ip(2), start + Duration::from_secs(3600)));
    assert!(reporter.allow(ip(3), start + Duration::from_secs(7200)));
    assert!(!reporter.allow(ip(4), start + Duration::from_secs(7300)));
    // 24 hours after the first report, one slot is free again; not two.
    let day = start + DAY;
    assert!(reporter.allow(ip(5), day));
    assert!(!reporter.allow(ip(6), day + Duration::from_secs(1)));
    assert_eq!(reporter.skipped(), 2);
    let mut none = Reporter::new(0);
    assert!(!none.allow(ip(1), start));
    assert_eq!(none.skipped(), 1);
}

#[test]
fn remembered_addresses_are_bounded() {
    let start = Instant::now();
    let mut reporter = Reporter::new(u32::MAX);
    for n in 0..(MAX_REMEMBERED as u32 + 500) {
        assert!(reporter.allow(IpAddr::from(n.to_be_bytes()), start));
    }
    assert_eq!(reporter.recent.len(), MAX_REMEMBERED);
    // The oldest were forgotten; the newest are still refused.
    assert!(reporter.allow(IpAddr::from(0u32.to_be_bytes()), start));
    let newest = MAX_REMEMBERED as u32 + 499;
    assert!(!reporter.allow(IpAddr::from(newest.to_be_bytes()), start));
}
