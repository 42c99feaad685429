//! `[metrics]`: Prometheus metrics over plain HTTP at `GET /metrics`, the classic text format
//! (0.0.4) unless the scraper's `Accept` names OpenMetrics. The engine gives the registry
//! ([`Running::metrics_registry`]); this module adds what belongs to the process (CPU, memory,
//! file descriptors, start time: the `process_*` names every Prometheus client uses, read from
//! /proc), the daemon's own figures, and the listener.
//!
//! The listener is a minimal HTTP/1.x responder, not a web server: one request per connection
//! (`Connection: close`), a request head of at most 8 KiB read within 10 seconds, at most 16
//! connections at once (more are closed unanswered), `GET` and `HEAD` only. Scrapers need
//! no more, and nothing else is reachable through it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use crmonban_engine::prometheus_client::collector::Collector;
use crmonban_engine::prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use crmonban_engine::prometheus_client::metrics::counter::ConstCounter;
use crmonban_engine::prometheus_client::metrics::gauge::ConstGauge;
use crmonban_engine::prometheus_client::metrics::info::Info;
use crmonban_engine::prometheus_client::registry::Registry;
use crmonban_engine::{MetricsFormat, encode_metrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::state::Shared;

/// The largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its request head and take the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
const MAX_CONNECTIONS: usize = 16;

/// Binds `listen` (before anything else changes, so that a taken port stops a start or a
/// reload with a clear error).
pub fn bind(listen: SocketAddr) -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("[metrics] listen = \"{listen}\": cannot listen"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The running endpoint: stopped when dropped.
pub struct Server {
    pub listen: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Serves metrics of `shared` on `listener` (from [`bind`]) until dropped.
    pub fn start(listener: std::net::TcpListener, shared: Arc<Shared>) -> Result<Server> {
        let listen = listener.local_addr()?;
        let listener = TcpListener::from_std(listener)?;
        info!(%listen, "metrics: serving http://{listen}/metrics");
        let task = tokio::spawn(accept(listener, shared));
        Ok(Server { listen, task })
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and the like: wait rather than spin.
                warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!(%peer, "metrics: too many connections; closed");
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(CLIENT_TIMEOUT, answer(stream, &shared)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(%peer, "metrics: {e}"),
                Err(_) => debug!(%peer, "metrics: client too slow; closed"),
            }
        });
    }
}

/// One request, one answer.
async fn answer(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let head = match read_head(&mut stream).await? {
        Some(head) => head,
        None => return respond(&mut stream, 400, "text/plain", b"bad request\n", true).await,
    };
    let request = match Request::parse(&head) {
        Ok(request) => request,
        Err(status) => {
            return respond(&mut stream, status, "text/plain", b"bad request\n", true).await;
        }
    };
    let with_body = request.method == "GET";
    if request.method != "GET" && request.method != "HEAD" {
        return respond(&mut stream, 405, "text/plain", b"GET or HEAD\n", true).await;
    }
    match request.path.split('?').next().unwrap_or("") {
        "/metrics" => {
            let format = MetricsFormat::from_accept(request.accept.as_deref());
            let body = scrape(shared, format).await;
            respond(
                &mut stream,
                200,
                format.content_type(),
                body.as_bytes(),
                with_body,
            )
            .await
        }
        "/" => {
            let page = b"crmonban: metrics at /metrics\n";
            respond(&mut stream, 200, "text/plain", page, with_body).await
        }
        _ => respond(&mut stream, 404, "text/plain", b"not found\n", with_body).await,
    }
}

/// The request head (up to the blank line), or `None` when it is too long or cut short.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(end);
            return Ok(String::from_utf8(head).ok());
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

/// What the answer depends on.
#[derive(Debug, PartialEq)]
struct Request {
    method: String,
    path: String,
    accept: Option<String>,
}

impl Request {
    /// Reads a request head; the status to answer when it is not HTTP/1.x.
    fn parse(head: &str) -> Result<Request, u16> {
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let (Some(method), Some(path), Some(version), None) =
            (first.next(), first.next(), first.next(), first.next())
        else {
            return Err(400);
        };
        if !version.starts_with("HTTP/1.") {
            return Err(505);
        }
        if method.is_empty() || !path.starts_with('/') {
            return Err(400);
        }
        let mut accept: Option<String> = None;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                return Err(400);
            };
            if name.trim().eq_ignore_ascii_case("accept") {
                // Repeated headers are one list.
                let value = value.trim();
                accept = Some(match accept {
                    Some(before) => format!("{before}, {value}"),
                    None => value.to_owned(),
                });
            }
        }
        Ok(Request {
            method: method.to_owned(),
            path: path.to_owned(),
            accept,
        })
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    with_body: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if with_body {
        bytes.extend_from_slice(body);
    }
    stream.write_all(&bytes).await?;
    stream.shutdown().await
}

/// Every metric, encoded in `format`.
pub async fn scrape(shared: &Shared, format: MetricsFormat) -> String {
    let mut registry = shared.running.metrics_registry().await;
    register_daemon(&mut registry);
    encode_metrics(&registry, format).unwrap_or_else(|e| {
        warn!("metrics: cannot encode: {e}");
        String::new()
    })
}

/// The daemon's own figures and the process's.
fn register_daemon(registry: &mut Registry) {
    registry.register(
        "crmonban_build",
        "The daemon's version",
        Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
    );
    registry.register(
        "crmonban_dbus_signals_dropped",
        "D-Bus signals not sent because the bus connection's queue was full",
        ConstCounter::new(crate::bus::SIGNALS_DROPPED.load(std::sync::atomic::Ordering::Relaxed)),
    );
    registry.register_collector(Box::new(Process));
}

/// The `process_*` metrics, read from /proc/self when scraped.
#[derive(Debug)]
struct Process;

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stat) = ProcStat::read() else {
            return Ok(());
        };
        let counter = |e: &mut DescriptorEncoder, name: &str, help: &str, v: f64| {
            let metric = ConstCounter::new(v);
            metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
        };
        let gauge = |e: &mut DescriptorEncoder, name: &str, help: &str, v: f64| {
            let metric = ConstGauge::new(v);
            metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
        };
        counter(
            &mut encoder,
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            stat.cpu_seconds,
        )?;
        gauge(
            &mut encoder,
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            stat.resident_bytes,
        )?;
        gauge(
            &mut encoder,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            stat.virtual_bytes,
        )?;
        gauge(
            &mut encoder,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            stat.start_time,
        )?;
        gauge(
            &mut encoder,
            "process_threads",
            "Number of OS threads in the process",
            stat.threads,
        )?;
        if let Some(open) = open_fds() {
            gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors",
                open,
            )?;
        }
        if let Ok((soft, _)) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        {
            gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors",
                soft as f64,
            )?;
        }
        Ok(())
    }
}

/// What /proc/self/stat says.
struct ProcStat {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    start_time: f64,
    threads: f64,
}

impl ProcStat {
    fn read() -> Option<ProcStat> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot = boot_time()?;
        ProcStat::parse(&text, boot, clock_ticks()?, page_size()?)
    }

    /// Parses a stat line (the command name, in parentheses, may hold spaces and parentheses:
    /// the fields start after the last `)`).
    fn parse(text: &str, boot_time: f64, ticks: f64, page: f64) -> Option<ProcStat> {
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `fields[0]` is field 3 (state) of proc_pid_stat(5).
        let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse::<f64>().ok() };
        Some(ProcStat {
            cpu_seconds: (field(14)? + field(15)?) / ticks,
            threads: field(20)?,
            start_time: boot_time + field(22)? / ticks,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page,
        })
    }
}

/// Boot time in unix seconds (`btime` of /proc/stat).
fn boot_time() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn clock_ticks() -> Option<f64> {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map(|t| t as f64)
}

fn page_size() -> Option<f64> {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map(|p| p as f64)
}

fn open_fds() -> Option<f64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_are_read_strictly() {
        let request = Request::parse(
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\naccept: application/openmetrics-text;version=1.0.0",
        )
        .unwrap();
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/metrics");
        assert_eq!(
            request.accept.as_deref(),
            Some("text/plain, application/openmetrics-text;version=1.0.0")
        );
        assert_eq!(Request::parse("GET /metrics HTTP/2.0"), Err(505));
        assert_eq!(Request::parse("GET metrics HTTP/1.1"), Err(400));
        assert_eq!(Request::parse("GET /metrics"), Err(400));
        assert_eq!(Request::parse("GET / HTTP/1.1 extra"), Err(400));
        assert_eq!(Request::parse("GET / HTTP/1.1\r\nno colon"), Err(400));
    }

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        // Fields as proc_pid_stat(5) numbers them: 14 utime, 15 stime, 20 threads,
        // 22 starttime, 23 vsize, 24 rss.
        let line = "4242 (crmon) band)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 \
                    7 0 1000 123456789 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = ProcStat::parse(line, 1_700_000_000.0, 100.0, 4096.0).unwrap();
        assert_eq!(stat.cpu_seconds, 3.0);
        assert_eq!(stat.threads, 7.0);
        assert_eq!(stat.start_time, 1_700_000_010.0);
        assert_eq!(stat.virtual_bytes, 123_456_789.0);
        assert_eq!(stat.resident_bytes, 300.0 * 4096.0);
        assert!(ProcStat::parse("garbage", 0.0, 100.0, 4096.0).is_none());
    }

    #[test]
    fn this_process_is_read() {
        let stat = ProcStat::read().expect("/proc/self/stat");
        assert!(stat.resident_bytes > 0.0 && stat.threads >= 1.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(stat.start_time <= now + 1.0 && stat.start_time > now - 86_400.0 * 365.0);
    }
}
