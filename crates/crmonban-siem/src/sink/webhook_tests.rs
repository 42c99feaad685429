use std::path::PathBuf;

use super::*;

const NOW: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

fn at(secs: u64) -> SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(secs)
}

fn settings<'a>(url: &'a str, headers: &'a [(String, Secret)]) -> WebhookSettings<'a> {
    WebhookSettings {
        url,
        headers,
        headers_file: None,
        batch_size: 1,
        timeout: Duration::from_secs(10),
    }
}

#[test]
fn retry_after_takes_seconds_and_the_three_http_date_forms() {
    assert_eq!(retry_after("120", at(0)), Some(Duration::from_secs(120)));
    assert_eq!(retry_after(" 0 ", at(0)), Some(Duration::ZERO));
    // Capped at an hour, even past u64.
    assert_eq!(retry_after("86400", at(0)), Some(MAX_RETRY_AFTER));
    assert_eq!(
        retry_after("99999999999999999999999", at(0)),
        Some(MAX_RETRY_AFTER)
    );
    for date in [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ] {
        assert_eq!(crmonban_core::http::http_date(date), Some(NOW), "{date}");
        assert_eq!(
            retry_after(date, at(NOW - 30)),
            Some(Duration::from_secs(30)),
            "{date}"
        );
        assert_eq!(
            retry_after(date, at(NOW + 30)),
            Some(Duration::ZERO),
            "{date}"
        );
    }
    // Leap days and the turn of a century.
    assert_eq!(
        crmonban_core::http::http_date("Tue, 29 Feb 2000 00:00:00 GMT"),
        Some(951_782_400)
    );
    assert_eq!(
        crmonban_core::http::http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
        Some(0)
    );
    assert_eq!(
        crmonban_core::http::http_date("Fri, 01 Mar 2024 12:00:00 GMT"),
        Some(1_709_294_400)
    );
    for bad in [
        "",
        "soon",
        "-5",
        "1.5",
        "Sun, 06 Nov 1994 08:49:37 CET",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:49 GMT",
    ] {
        assert_eq!(retry_after(bad, at(NOW)), None, "{bad:?}");
    }
}

#[test]
fn build_checks_the_url_without_echoing_its_query() {
    let e = WebhookSink::build(&settings("not a url?token=hunter2", &[]))
        .unwrap_err()
        .message;
    assert!(e.starts_with("url: "), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    let e = WebhookSink::build(&settings("ftp://example.com/x", &[]))
        .unwrap_err()
        .message;
    assert!(e.contains("http"), "{e}");

    let sink =
        WebhookSink::build(&settings("https://user:pw@siem.example:8443/in?k=v", &[])).unwrap();
    assert_eq!(sink.origin(), "https://siem.example:8443");
    let sink = WebhookSink::build(&settings("http://[::1]/in", &[])).unwrap();
    assert_eq!(sink.origin(), "http://[::1]");
    assert_eq!(sink.batch_size(), 1);
}

#[test]
fn header_errors_name_the_header_but_never_its_value() {
    let bad_name = [("Bad Name".to_owned(), Secret::new("s3cret"))];
    let e = WebhookSink::build(&settings("https://h/", &bad_name))
        .unwrap_err()
        .message;
    assert!(e.contains("headers") && e.contains("Bad Name"), "{e}");
    assert!(!e.contains("s3cret"), "{e}");

    let bad_value = [(
        "Authorization".to_owned(),
        Secret::new("Bearer a\r\nX: s3cret"),
    )];
    let e = WebhookSink::build(&settings("https://h/", &bad_value))
        .unwrap_err()
        .message;
    assert!(e.contains("Authorization"), "{e}");
    assert!(!e.contains("s3cret"), "{e}");
}

#[test]
fn headers_files_are_name_value_lines() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    std::fs::write(
        &good,
        "# the SIEM's token\n\nAuthorization: Bearer abc\r\nX-Tenant:  blue \n",
    )
    .unwrap();
    let headers = read_headers_file(&good).unwrap();
    let shown: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
        .collect();
    assert_eq!(
        shown,
        [("authorization", "Bearer abc"), ("x-tenant", "blue")]
    );
    assert!(headers.iter().all(|(_, v)| v.is_sensitive()));

    let cases = [
        (
            "no-colon",
            "Authorization Bearer s3cret\n",
            "line 1: expected `Name: value`",
        ),
        (
            "bad-name",
            "\nBad Name: s3cret\n",
            "line 2: \"Bad Name\" is not a valid header name",
        ),
        (
            "bad-value",
            "X-A: s3cret\u{1}\n",
            "line 1: the value of X-A",
        ),
    ];
    for (file, text, expected) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        let e = read_headers_file(&path).unwrap_err().message;
        assert!(
            e.starts_with(&format!("headers_file {}: ", path.display())),
            "{e}"
        );
        assert!(e.contains(expected), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }

    let missing = PathBuf::from("/nonexistent/headers");
    let e = read_headers_file(&missing).unwrap_err().message;
    assert!(e.contains("/nonexistent/headers: cannot read"), "{e}");
}

#[test]
fn debug_shows_neither_the_path_nor_header_values() {
    let headers = [(
        "Authorization".to_owned(),
        Secret::new("Bearer s3cret-token"),
    )];
    let sink =
        WebhookSink::build(&settings("https://siem.example/in/t0ken?key=k3y", &headers)).unwrap();
    let shown = format!("{sink:?}");
    assert!(shown.contains("https://siem.example"), "{shown}");
    assert!(shown.contains("authorization"), "{shown}");
    for hidden in ["t0ken", "k3y", "s3cret"] {
        assert!(!shown.contains(hidden), "{hidden} in {shown}");
    }
}
