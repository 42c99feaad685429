//! [`Sink`]: where one target's formatted lines go — a file ([`file`](mod@file)), syslog
//! over a unix socket, UDP, TCP or TLS ([`syslog`], [`tls`]), or a webhook ([`webhook`]) —
//! and the outcome of a send ([`SendError`], [`Failure`]) that the worker acts on.
//!
//! [`Sink::build`] checks what can be checked without sending (files readable and valid,
//! header names, the URL) and never connects: a collector that is down at start is not an
//! error, only a failed send. Each send opens or reopens what it needs; after an I/O error
//! the connection or file is dropped and the next send starts afresh.

pub mod file;
pub mod syslog;
pub mod tls;
pub mod webhook;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crmonban_core::config::SiemTarget;

use crate::queue::one_line;

/// The longest error message a sink returns, in bytes; [`crate::queue::TargetStats`] keeps
/// fewer.
const MAX_MESSAGE_BYTES: usize = 400;

/// A target that could not be set up: the message names the key and the file or value at
/// fault (never a secret).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    /// What is wrong and where, e.g. `tls_ca_file /etc/x.pem: no certificate in it`.
    pub message: String,
}

impl BuildError {
    pub(crate) fn new(message: impl Into<String>) -> BuildError {
        BuildError {
            message: message.into(),
        }
    }
}

/// What the worker does with a batch that did not (entirely) get through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A failure that may pass (connection refused, timeout, disk full, HTTP 5xx, 408, 429):
    /// send the same lines again later, after `after` when the target said how long to wait.
    Retry {
        /// The pause the target asked for (HTTP `Retry-After`), already capped.
        after: Option<Duration>,
    },
    /// The target refused these lines for good (HTTP 4xx): do not send them again.
    Reject,
    /// The target refused the batch as too large (HTTP 413): send fewer lines at a time.
    TooLarge,
}

/// A send that failed, entirely or after its first `delivered` lines.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// Leading lines of the batch that did get through (acknowledged, not sent again).
    pub delivered: usize,
    /// What to do with the rest.
    pub failure: Failure,
    /// One line saying what went wrong (never a secret or a header value).
    pub message: String,
}

impl SendError {
    /// A failure to retry after a backoff, none of the batch delivered.
    pub(crate) fn retry(message: impl AsRef<str>) -> SendError {
        SendError::new(0, Failure::Retry { after: None }, message)
    }

    pub(crate) fn new(delivered: usize, failure: Failure, message: impl AsRef<str>) -> SendError {
        SendError {
            delivered,
            failure,
            message: one_line(message.as_ref(), MAX_MESSAGE_BYTES),
        }
    }

    /// The same error with `delivered` leading lines delivered.
    pub(crate) fn delivered(mut self, delivered: usize) -> SendError {
        self.delivered = delivered;
        self
    }
}

/// Where one target's lines go.
#[derive(Debug)]
pub enum Sink {
    /// A file, appended to.
    File(file::FileSink),
    /// A syslog daemon or collector.
    Syslog(syslog::SyslogSink),
    /// An HTTP endpoint taking JSON.
    Webhook(webhook::WebhookSink),
}

impl Sink {
    /// The sink of `target`, checked as far as it can be without sending; opens nothing.
    pub fn build(target: &SiemTarget) -> Result<Sink, BuildError> {
        Ok(match target {
            SiemTarget::File { path } => Sink::File(file::FileSink::build(path)?),
            SiemTarget::Syslog { transport, .. } => {
                Sink::Syslog(syslog::SyslogSink::build(transport)?)
            }
            SiemTarget::Webhook {
                url,
                headers,
                headers_file,
                batch_size,
                timeout_secs,
            } => Sink::Webhook(webhook::WebhookSink::build(&webhook::WebhookSettings {
                url,
                headers,
                headers_file: headers_file.as_deref(),
                batch_size: *batch_size,
                timeout: Duration::from_secs(*timeout_secs),
            })?),
        })
    }

    /// The most lines one send takes: 256 for a file, 64 for syslog, `batch_size` for a
    /// webhook.
    pub fn max_batch(&self) -> usize {
        match self {
            Sink::File(_) => file::MAX_BATCH,
            Sink::Syslog(_) => syslog::MAX_BATCH,
            Sink::Webhook(sink) => sink.batch_size(),
        }
    }

    /// Sends `batch` (formatted lines, one event each, without line endings), in order.
    pub async fn send(&mut self, batch: &[Arc<str>]) -> Result<(), SendError> {
        if batch.is_empty() {
            return Ok(());
        }
        match self {
            Sink::File(sink) => sink.send(batch).await,
            Sink::Syslog(sink) => sink.send(batch).await,
            Sink::Webhook(sink) => sink.send(batch).await,
        }
    }

    /// Where this sink sends, for logs: `file /var/log/x`, `syslog tcp+tls host:6514`,
    /// `webhook https://host:443` (never a URL's path, query or credentials).
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sink::File(sink) => write!(f, "file {}", sink.path().display()),
            Sink::Syslog(sink) => write!(f, "syslog {}", sink.describe()),
            Sink::Webhook(sink) => write!(f, "webhook {}", sink.origin()),
        }
    }
}
