//! [`WebhookSink`]: HTTP POST of JSON events to a URL, with the configured headers.
//!
//! With `batch_size = 1` the body is the event's JSON object; with more it is a JSON array of
//! up to `batch_size` objects (an array even when fewer are waiting, so that the receiver
//! always sees one shape). The answer decides what happens to the batch: 2xx delivered;
//! 408, 429, 5xx, a connection error or a timeout retried (after `Retry-After` when given,
//! in seconds or as an HTTP-date, at most an hour); 413 sent again in smaller batches; any
//! other 4xx refused for good. Redirects are not followed at all (a 3xx is retried with a
//! message saying so): a redirect would carry the events, and possibly the headers' tokens,
//! somewhere the configuration does not name.
//!
//! The client is reqwest on rustls with the ring provider and the system's trust store,
//! sending `User-Agent: crmonban/<version>`. Header values are secrets: they are marked
//! sensitive, and every error message is cleaned of them (a server or proxy may echo the
//! request) and cut short; neither the URL's path nor its query appears in a message.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crmonban_core::config::Secret;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Client, StatusCode, Url, redirect};

use super::{BuildError, Failure, SendError};
use crate::queue::one_line;

/// The most of an answer's body read (for an error message).
pub const MAX_ANSWER_BYTES: usize = 4096;

/// The longest pause a `Retry-After` may impose.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The longest excerpt of an answer in an error message, in bytes.
const MAX_EXCERPT_BYTES: usize = 200;

/// What a webhook target is built from (the `[[siem.targets]]` keys of `type = "webhook"`).
#[derive(Clone, Copy, Debug)]
pub struct WebhookSettings<'a> {
    /// `url`: http or https.
    pub url: &'a str,
    /// `headers`, in order.
    pub headers: &'a [(String, Secret)],
    /// `headers_file`: `Name: value` lines, sent after `headers`.
    pub headers_file: Option<&'a Path>,
    /// `batch_size`: events per POST (at least 1).
    pub batch_size: usize,
    /// `timeout_secs`: the longest one POST may take.
    pub timeout: Duration,
}

/// Posts events to one URL (see the module documentation).
pub struct WebhookSink {
    client: Client,
    url: Url,
    origin: String,
    headers: HeaderMap,
    /// Header values and their long words (the token of `Bearer <token>`), longest first:
    /// kept out of every message.
    secrets: Vec<Secret>,
    batch_size: usize,
    timeout: Duration,
}

impl std::fmt::Debug for WebhookSink {
    /// Without the URL's path and query, nor any header value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink")
            .field("origin", &self.origin)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("batch_size", &self.batch_size)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// The sink of `settings`: checks the URL and every header (reading `headers_file`) and
    /// builds the HTTP client; sends nothing.
    pub fn build(settings: &WebhookSettings<'_>) -> Result<WebhookSink, BuildError> {
        if settings.batch_size == 0 {
            return Err(BuildError::new("batch_size must be at least 1"));
        }
        if settings.timeout.is_zero() {
            return Err(BuildError::new("timeout_secs must be at least 1"));
        }
        let url = Url::parse(settings.url.trim())
            .map_err(|e| BuildError::new(format!("url: not a valid URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(BuildError::new("url: must be an http:// or https:// URL"));
        }
        let origin = match url.port() {
            Some(port) => format!(
                "{}://{}:{port}",
                url.scheme(),
                url.host_str().unwrap_or_default()
            ),
            None => format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
        };

        let mut pairs: Vec<(HeaderName, HeaderValue)> = Vec::new();
        let mut secrets = Vec::new();
        for (name, value) in settings.headers {
            let header = header(name, value.expose())
                .map_err(|problem| BuildError::new(format!("headers: {problem}")))?;
            pairs.push(header);
            secrets.push(value.clone());
        }
        if let Some(path) = settings.headers_file {
            for (name, value) in read_headers_file(path)? {
                secrets.push(Secret::new(value.to_str().unwrap_or_default()));
                pairs.push((name, value));
            }
        }
        secrets = redactions(secrets);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut seen: Vec<HeaderName> = Vec::new();
        for (name, value) in pairs {
            // The first configured value of a name replaces ours (Content-Type); later ones
            // add to it.
            if seen.contains(&name) {
                headers.append(name, value);
            } else {
                seen.push(name.clone());
                headers.insert(name, value);
            }
        }
        if url.scheme() == "http" && !settings.headers.is_empty() && !is_loopback(&url) {
            tracing::warn!(
                target_url = %origin,
                "the webhook URL is plain http: its headers (tokens) cross the network unencrypted"
            );
        }

        // rustls on ring, unless the program installed a provider of its own.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::builder()
            .user_agent(concat!("crmonban/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(redirect::Policy::none())
            .build()
            .map_err(|e| BuildError::new(format!("cannot build the HTTP client: {}", chain(e))))?;
        Ok(WebhookSink {
            client,
            url,
            origin,
            headers,
            secrets,
            batch_size: settings.batch_size,
            timeout: settings.timeout,
        })
    }

    /// Events per POST.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The URL's scheme, host and port (when given): what logs may show.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Posts `batch` (JSON objects) and judges the answer.
    pub async fn send(&mut self, batch: &[Arc<str>]) -> Result<(), SendError> {
        let body = match batch {
            [one] if self.batch_size == 1 => one.to_string(),
            lines => {
                let mut body = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
                body.push('[');
                for (i, line) in lines.iter().enumerate() {
                    if i > 0 {
                        body.push(',');
                    }
                    body.push_str(line);
                }
                body.push(']');
                body
            }
        };
        let request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body);
        // reqwest's timeout bounds the exchange; this one only guards against a stuck future.
        let exchange = async {
            let mut response = request.send().await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, SystemTime::now()));
            // For an error's message, and so that a short answer leaves the connection
            // reusable; a failure to read it changes nothing.
            let mut answer = Vec::new();
            while answer.len() < MAX_ANSWER_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            answer.truncate(MAX_ANSWER_BYTES);
            Ok::<_, reqwest::Error>((status, retry_after, answer))
        };
        let outcome = tokio::time::timeout(self.timeout + Duration::from_secs(1), exchange).await;
        let (status, after, answer) = match outcome {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) if e.is_timeout() => return Err(self.timed_out()),
            Ok(Err(e)) => return Err(SendError::retry(self.scrub(&chain(e)))),
            Err(_) => return Err(self.timed_out()),
        };
        if status.is_success() {
            return Ok(());
        }
        let failure = match status {
            StatusCode::PAYLOAD_TOO_LARGE => Failure::TooLarge,
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => Failure::Retry { after },
            s if s.is_server_error() => Failure::Retry { after },
            s if s.is_client_error() => Failure::Reject,
            _ => Failure::Retry { after },
        };
        let excerpt = self.scrub(&String::from_utf8_lossy(&answer));
        let mut message = format!("HTTP {}", status.as_u16());
        if status.is_redirection() {
            message.push_str(" (redirects are not followed: set url to the final address)");
        }
        if !excerpt.is_empty() {
            message.push_str(": ");
            message.push_str(&excerpt);
        }
        Err(SendError::new(0, failure, message))
    }

    fn timed_out(&self) -> SendError {
        SendError::retry(format!("no answer within {} s", self.timeout.as_secs_f64()))
    }

    /// `text` without any header value, on one line, cut short.
    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            let value = secret.expose();
            if !value.is_empty() {
                text = text.replace(value, "<redacted>");
            }
        }
        one_line(&text, MAX_EXCERPT_BYTES)
    }
}

/// What to cut out of messages: each value, and each of its words of at least 8 bytes (a
/// server may echo only the token of `Bearer <token>`), longest first so that a whole value
/// goes before its parts.
fn redactions(values: Vec<Secret>) -> Vec<Secret> {
    let mut all: Vec<Secret> = Vec::new();
    for value in &values {
        let words = value.expose().split_whitespace().filter(|w| w.len() >= 8);
        for text in std::iter::once(value.expose().trim()).chain(words) {
            if !text.is_empty() && !all.iter().any(|s| s.expose() == text) {
                all.push(Secret::new(text));
            }
        }
    }
    all.sort_by_key(|s| std::cmp::Reverse(s.expose().len()));
    all
}

/// A checked header; the problem names the header, never its value.
fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let header_name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    let header_value = HeaderValue::from_str(value.trim()).map_err(|_| {
        format!(
            "the value of {name} is not a valid header value (a line break or control character)"
        )
    })?;
    Ok(name_value(header_name, header_value))
}

fn name_value(name: HeaderName, mut value: HeaderValue) -> (HeaderName, HeaderValue) {
    value.set_sensitive(true);
    (name, value)
}

/// The headers of `path`: one `Name: value` per line; empty lines and lines starting with
/// `#` are skipped; a line may end with CR LF.
fn read_headers_file(path: &Path) -> Result<Vec<(HeaderName, HeaderValue)>, BuildError> {
    let fail =
        |problem: String| BuildError::new(format!("headers_file {}: {problem}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let mut headers = Vec::new();
    for (number, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let at = |problem: String| fail(format!("line {}: {problem}", number + 1));
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| at("expected `Name: value`".to_owned()))?;
        headers.push(header(name, value).map_err(at)?);
    }
    Ok(headers)
}

fn is_loopback(url: &Url) -> bool {
    crmonban_core::http::is_loopback_host(url.host_str().unwrap_or_default())
}

/// An error and its causes on one line, without the URL.
fn chain(e: reqwest::Error) -> String {
    crmonban_core::http::error_chain(&e.without_url())
}

/// The pause a `Retry-After` value asks for, at most [`MAX_RETRY_AFTER`] (see
/// [`crmonban_core::http::retry_after`]).
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    crmonban_core::http::retry_after(value, now, MAX_RETRY_AFTER)
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
