//! The HTTP side of the AbuseIPDB and Shodan clients: one reqwest client per API (timeout,
//! User-Agent, redirect policy); every exchange bounded in time, bodies read in chunks up to
//! 1 MiB; statuses turned into [`IntelError`]s (401/403, 429 with `Retry-After`, refusals with
//! a short excerpt); helpers reading JSON fields into bounded, control-free values whose errors
//! name the field. The API key never leaves this module in an error: reqwest errors lose their
//! URL (Shodan's holds the key) and every message is scrubbed of it, should a server echo it.

use std::ops::RangeInclusive;
use std::time::{Duration, SystemTime};

use crmonban_core::config::Secret;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, RequestBuilder, StatusCode, Url, redirect};
use serde_json::Value;

use crate::IntelError;

/// The most of an answer's body we read; an API answer about one address is a few kB.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The longest text field we keep, in bytes.
pub(crate) const MAX_TEXT_BYTES: usize = 256;
/// The most items of a list (ports, host names, tags, vulns) we keep.
pub(crate) const MAX_ITEMS: usize = 64;
/// The longest excerpt of an error answer we show.
const MAX_EXCERPT_BYTES: usize = 200;
/// An API has no reason to redirect more than this; reqwest's default is 10.
const MAX_REDIRECTS: usize = 3;
/// The longest pause a `Retry-After` may ask for: quotas reset daily, and a hostile or broken
/// answer must not silence a source for years.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// One HTTP API: its name for messages, its client, its base URL and the key to keep out of
/// every message.
#[derive(Debug)]
pub(crate) struct ApiClient {
    service: &'static str,
    client: Client,
    base: String,
    timeout: Duration,
    key: Secret,
}

/// An answer whose status the caller handles: a 2xx, or one of the statuses it passed.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

impl ApiClient {
    /// A client for `service` at `base_url` (http or https, without a trailing path to the
    /// endpoint), each exchange bounded by `timeout`.
    pub(crate) fn new(
        service: &'static str,
        base_url: &str,
        key: Secret,
        timeout: Duration,
    ) -> Result<ApiClient, IntelError> {
        let base = base_url.trim().trim_end_matches('/');
        // IntelError has no configuration variant; Io's "{what}: {message}" reads right.
        let bad_base = |problem: String| IntelError::Io {
            what: format!("{service} base URL {:?}", clean_text(base, MAX_TEXT_BYTES)),
            message: problem,
        };
        let parsed = Url::parse(base).map_err(|e| bad_base(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(bad_base("not an http(s) URL".to_owned()));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad_base("must not have a query or a fragment".to_owned()));
        }
        if parsed.scheme() == "http" && !is_loopback_host(&parsed) {
            tracing::warn!(
                service,
                "the base URL is plain http: the API key crosses the network unencrypted"
            );
        }
        // rustls on ring, unless the embedding program installed a provider of its own.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::builder()
            .user_agent(concat!("crmonban/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(same_origin_redirects())
            .build()
            .map_err(|e| IntelError::Io {
                what: service.to_owned(),
                message: format!("cannot build the HTTP client: {}", error_chain(e)),
            })?;
        Ok(ApiClient {
            service,
            client,
            base: base.to_owned(),
            timeout,
            key,
        })
    }

    /// The key, for the one place that sends it.
    pub(crate) fn key(&self) -> &str {
        self.key.expose()
    }

    /// `base` + `path` with `query` pairs, encoded.
    pub(crate) fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, IntelError> {
        let mut url =
            Url::parse(&format!("{}{path}", self.base)).map_err(|e| IntelError::Malformed {
                what: format!("{} URL", self.service),
                problem: e.to_string(),
            })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// A GET of `url` with `headers`.
    pub(crate) fn get(&self, url: Url, headers: &[(&str, &str)]) -> RequestBuilder {
        with_headers(self.client.get(url), headers)
    }

    /// A POST of `form` (application/x-www-form-urlencoded) to `url` with `headers`.
    pub(crate) fn post_form(
        &self,
        url: Url,
        headers: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> RequestBuilder {
        let body = form_urlencoded(form);
        with_headers(self.client.post(url), headers)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
    }

    /// Sends `request` and reads its answer, the whole exchange within the timeout. A 2xx or a
    /// status in `pass` is the caller's; 401/403, 429 and every other status are errors.
    pub(crate) async fn send(
        &self,
        request: RequestBuilder,
        pass: &[StatusCode],
    ) -> Result<Answer, IntelError> {
        // reqwest's own timeout covers the body too; this one also covers our reading loop and
        // holds whatever reqwest does.
        match tokio::time::timeout(self.timeout, self.exchange(request)).await {
            Ok(Ok((status, headers, body))) => self.judge(status, &headers, body, pass),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(self.timed_out()),
        }
    }

    async fn exchange(
        &self,
        request: RequestBuilder,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), IntelError> {
        let mut response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        let headers = response.headers().clone();
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(self.too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(self.too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, headers, body))
    }

    fn judge(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: Vec<u8>,
        pass: &[StatusCode],
    ) -> Result<Answer, IntelError> {
        if status.is_success() || pass.contains(&status) {
            return Ok(Answer { status, body });
        }
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(IntelError::Unauthorized {
                what: self.service.to_owned(),
                status: status.as_u16(),
            }),
            StatusCode::TOO_MANY_REQUESTS => Err(IntelError::RateLimited {
                what: self.service.to_owned(),
                retry_after: headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after(v, SystemTime::now())),
            }),
            _ => Err(self.refused(status, &body)),
        }
    }

    /// The error for an answer with `status` the caller does not accept: "HTTP 500: excerpt".
    pub(crate) fn refused(&self, status: StatusCode, body: &[u8]) -> IntelError {
        let excerpt = self.scrub(&error_excerpt(body));
        let message = match (status.is_redirection(), excerpt.is_empty()) {
            (true, _) => format!("HTTP {} (redirect not followed)", status.as_u16()),
            (false, true) => format!("HTTP {}", status.as_u16()),
            (false, false) => format!("HTTP {}: {excerpt}", status.as_u16()),
        };
        IntelError::Refused {
            what: self.service.to_owned(),
            message,
        }
    }

    /// The error of a failed exchange: never with the URL, never with the key.
    fn transport(&self, e: reqwest::Error) -> IntelError {
        if e.is_timeout() {
            return self.timed_out();
        }
        IntelError::Io {
            what: self.service.to_owned(),
            message: self.scrub(&error_chain(e)),
        }
    }

    fn timed_out(&self) -> IntelError {
        IntelError::Timeout {
            what: self.service.to_owned(),
            timeout: self.timeout,
        }
    }

    fn too_large(&self) -> IntelError {
        IntelError::Malformed {
            what: format!("{} answer", self.service),
            problem: format!("larger than {MAX_BODY_BYTES} bytes; not read further"),
        }
    }

    /// `text` without the key (a server or proxy may echo the request), cleaned and bounded.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let key = self.key.expose();
        let text = if key.is_empty() {
            text.to_owned()
        } else {
            text.replace(key, "<key>")
        };
        clean_text(&text, MAX_EXCERPT_BYTES)
    }
}

fn with_headers(mut request: RequestBuilder, headers: &[(&str, &str)]) -> RequestBuilder {
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
}

fn is_loopback_host(url: &Url) -> bool {
    crmonban_core::http::is_loopback_host(url.host_str().unwrap_or_default())
}

/// `pairs` encoded as application/x-www-form-urlencoded, with the encoder of `Url`'s query
/// (the serialisation HTML forms use; reqwest's `form` feature is not enabled).
fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    let mut scratch = match Url::parse("http://form.invalid/") {
        Ok(url) => url,
        Err(_) => return String::new(),
    };
    scratch.query_pairs_mut().extend_pairs(pairs);
    scratch.query().unwrap_or_default().to_owned()
}

/// Redirects are followed only within the same scheme, host and port, and only a few times:
/// a redirect elsewhere would carry the `Key` header (reqwest strips only the standard
/// credential headers) or the key in the query to another host.
fn same_origin_redirects() -> redirect::Policy {
    redirect::Policy::custom(|attempt| {
        let same_origin = attempt.previous().first().is_some_and(|first| {
            first.scheme() == attempt.url().scheme()
                && first.host_str() == attempt.url().host_str()
                && first.port_or_known_default() == attempt.url().port_or_known_default()
        });
        if attempt.previous().len() > MAX_REDIRECTS || !same_origin {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

/// An error and its causes on one line ("error sending request: client error (Connect): tcp
/// connect error: Connection refused (os error 111)"), without the URL.
fn error_chain(e: reqwest::Error) -> String {
    let message = crmonban_core::http::error_chain(&e.without_url());
    clean_text(&message, MAX_EXCERPT_BYTES)
}

/// A short excerpt of an error answer: the message of the JSON error shapes the APIs use
/// (AbuseIPDB `{"errors":[{"detail":..}]}`, Shodan `{"error":..}`, the common `{"message":..}`),
/// else the start of the body as text.
fn error_excerpt(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let detail = value
            .get("errors")
            .and_then(|errors| errors.get(0))
            .and_then(|first| first.get("detail"))
            .or_else(|| value.get("error"))
            .or_else(|| value.get("message"))
            .and_then(Value::as_str);
        if let Some(detail) = detail {
            return clean_text(detail, MAX_EXCERPT_BYTES);
        }
    }
    let start = &body[..body.len().min(MAX_EXCERPT_BYTES * 4)];
    clean_text(&String::from_utf8_lossy(start), MAX_EXCERPT_BYTES)
}

/// The pause a `Retry-After` value asks for, at most a day (see
/// [`crmonban_core::http::retry_after`]).
pub(crate) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    crmonban_core::http::retry_after(value, now, MAX_RETRY_AFTER)
}

/// `text` made safe to keep and show: line breaks and tabs become spaces, runs of spaces one,
/// other control characters are dropped, and the result is cut to `max_bytes` at a character
/// boundary.
pub(crate) fn clean_text(text: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_bytes));
    for c in text.chars() {
        let c = if c.is_whitespace() {
            ' '
        } else if c.is_control() {
            continue;
        } else {
            c
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        if out.len() + c.len_utf8() > max_bytes {
            break;
        }
        out.push(c);
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out
}

/// The body parsed as JSON, or an error naming the service.
pub(crate) fn json_body(service: &str, body: &[u8]) -> Result<Value, IntelError> {
    serde_json::from_slice(body).map_err(|e| IntelError::Malformed {
        what: service.to_owned(),
        problem: format!("not JSON ({e})"),
    })
}

/// Reads fields of one JSON object, each error naming the service and the field's path.
pub(crate) struct Fields<'a> {
    service: &'a str,
    prefix: &'a str,
    object: &'a serde_json::Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// The object at `value`, whose path is `prefix` ("" for the top level).
    pub(crate) fn of(
        service: &'a str,
        prefix: &'a str,
        value: Option<&'a Value>,
    ) -> Result<Fields<'a>, IntelError> {
        let what = || {
            if prefix.is_empty() {
                service.to_owned()
            } else {
                format!("{service} {prefix}")
            }
        };
        match value {
            Some(Value::Object(object)) => Ok(Fields {
                service,
                prefix,
                object,
            }),
            None | Some(Value::Null) => Err(IntelError::Malformed {
                what: what(),
                problem: "missing".to_owned(),
            }),
            Some(other) => Err(IntelError::Malformed {
                what: what(),
                problem: format!("expected an object, got {}", describe(other)),
            }),
        }
    }

    /// The raw value of `name`, when present.
    pub(crate) fn raw(&self, name: &str) -> Option<&'a Value> {
        self.object.get(name)
    }

    /// The error for field `name`.
    pub(crate) fn malformed(&self, name: &str, problem: String) -> IntelError {
        let what = if self.prefix.is_empty() {
            format!("{} {name}", self.service)
        } else {
            format!("{} {}.{name}", self.service, self.prefix)
        };
        IntelError::Malformed { what, problem }
    }

    /// A whole number in `range`; absent or null is `None`.
    pub(crate) fn number(
        &self,
        name: &str,
        range: RangeInclusive<u64>,
    ) -> Result<Option<u64>, IntelError> {
        match self.object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_u64()
                .filter(|n| range.contains(n))
                .map(Some)
                .ok_or_else(|| {
                    self.malformed(
                        name,
                        format!(
                            "expected a number {}-{}, got {}",
                            range.start(),
                            range.end(),
                            describe(value)
                        ),
                    )
                }),
        }
    }

    /// Like [`Fields::number`], for a field the answer must have.
    pub(crate) fn required_number(
        &self,
        name: &str,
        range: RangeInclusive<u64>,
    ) -> Result<u64, IntelError> {
        let (lo, hi) = (*range.start(), *range.end());
        self.number(name, range)?.ok_or_else(|| {
            self.malformed(name, format!("expected a number {lo}-{hi}, got nothing"))
        })
    }

    /// A boolean; absent or null is `None`.
    pub(crate) fn boolean(&self, name: &str) -> Result<Option<bool>, IntelError> {
        match self.object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.malformed(
                name,
                format!("expected true or false, got {}", describe(other)),
            )),
        }
    }

    /// A string, cleaned and cut to [`MAX_TEXT_BYTES`]; absent, null or empty is `None`.
    pub(crate) fn text(&self, name: &str) -> Result<Option<String>, IntelError> {
        match self.object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                Ok(Some(clean_text(s, MAX_TEXT_BYTES)).filter(|s| !s.is_empty()))
            }
            Some(other) => {
                Err(self.malformed(name, format!("expected a string, got {}", describe(other))))
            }
        }
    }

    /// A list of strings, each cleaned, empty ones left out, at most [`MAX_ITEMS`] kept;
    /// absent or null is empty.
    pub(crate) fn text_list(&self, name: &str) -> Result<Vec<String>, IntelError> {
        match self.object.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let Value::String(s) = item else {
                        return Err(self.malformed(
                            &format!("{name}[{i}]"),
                            format!("expected a string, got {}", describe(item)),
                        ));
                    };
                    let s = clean_text(s, MAX_TEXT_BYTES);
                    if !s.is_empty() && out.len() < MAX_ITEMS {
                        out.push(s);
                    }
                }
                Ok(out)
            }
            Some(other) => Err(self.malformed(
                name,
                format!("expected a list of strings, got {}", describe(other)),
            )),
        }
    }
}

/// A JSON value as a short excerpt for an error message.
pub(crate) fn describe(value: &Value) -> String {
    const MAX: usize = 40;
    let text = value.to_string();
    let short = clean_text(&text, MAX);
    if short.len() < text.len() {
        format!("{short}…")
    } else {
        short
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
