//! [`SyslogSink`]: RFC 5424 messages (already formatted) to a syslog daemon or collector.
//!
//! - A unix socket (`/dev/log` by default): datagram sockets get one message per datagram;
//!   stream sockets get each message followed by a line feed; `auto` tries a datagram socket
//!   first and uses a stream socket when the path is one (`EPROTOTYPE`).
//! - UDP (RFC 5426): one message per datagram. A message longer than [`MAX_DATAGRAM`] bytes
//!   is cut at a character boundary (lines are bounded upstream to a few KiB, so this only
//!   guards the datagram limit). UDP cannot tell whether a collector listens: messages sent
//!   while it is down are lost, except that an ICMP "port unreachable" makes the next send
//!   fail, which holds the rest in the queue.
//! - TCP with octet-counting framing (`LEN SP MSG`, RFC 6587 §3.4.1), optionally in TLS
//!   (RFC 5425, same framing; see [`super::tls`]).
//!
//! The connection is opened on the first send, with the address resolved again at each
//! (re)connection, within [`CONNECT_TIMEOUT`] (name resolution, connection and handshake
//! together); each write must finish within [`WRITE_TIMEOUT`], so a collector that stops
//! reading cannot hold the worker. On any error the connection is dropped and the send is
//! retried later on a new one. Before a stream connection is reused it is checked for a
//! close from the peer (a restarted collector), which would otherwise swallow the next batch.
//!
//! Delivery over stream sockets is at least once: when a write fails, the whole batch is sent
//! again on the next connection, since the bytes the kernel had taken may never have reached
//! the collector (a collector may then see a line twice). Datagrams are counted one by one.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crmonban_core::config::{SyslogProtocol, SyslogTransport, UnixSocketType};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UdpSocket, UnixDatagram, UnixStream};
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;

use super::tls::TlsClient;
use super::{BuildError, Failure, SendError};

/// Messages per send.
pub const MAX_BATCH: usize = 64;

/// The longest UDP message sent, in bytes: below the 65,507 bytes of an IPv4 UDP payload.
pub const MAX_DATAGRAM: usize = 65_000;

/// The longest a connection may take: name resolution, connection and TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest one batch's writes may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends to one syslog socket or collector (see the module documentation).
#[derive(Debug)]
pub struct SyslogSink {
    endpoint: Endpoint,
    connection: Option<Connection>,
}

#[derive(Debug)]
enum Endpoint {
    Unix {
        path: PathBuf,
        socket_type: UnixSocketType,
    },
    Udp {
        address: String,
    },
    Tcp {
        address: String,
        tls: Option<TlsClient>,
    },
}

#[derive(Debug)]
enum Connection {
    UnixDatagram(UnixDatagram),
    UnixStream(UnixStream),
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl SyslogSink {
    /// The sink of `transport`: checks the address's form and reads the TLS files; connects
    /// to nothing.
    pub fn build(transport: &SyslogTransport) -> Result<SyslogSink, BuildError> {
        let endpoint = match transport {
            SyslogTransport::Unix {
                socket,
                socket_type,
                ..
            } => {
                if !socket.is_absolute() {
                    return Err(BuildError::new(format!(
                        "socket {}: must be an absolute path",
                        socket.display()
                    )));
                }
                Endpoint::Unix {
                    path: socket.clone(),
                    socket_type: *socket_type,
                }
            }
            SyslogTransport::Network {
                address,
                protocol,
                tls,
            } => {
                let host = host_of(address)?;
                match (protocol, tls) {
                    (SyslogProtocol::Udp, None) => Endpoint::Udp {
                        address: address.clone(),
                    },
                    (SyslogProtocol::Udp, Some(_)) => {
                        return Err(BuildError::new(
                            "tls: syslog over TLS needs protocol = \"tcp\"",
                        ));
                    }
                    (SyslogProtocol::Tcp, tls) => Endpoint::Tcp {
                        address: address.clone(),
                        tls: tls
                            .as_ref()
                            .map(|tls| TlsClient::build(tls, host))
                            .transpose()?,
                    },
                }
            }
        };
        Ok(SyslogSink {
            endpoint,
            connection: None,
        })
    }

    /// The transport and where it goes: `unix /dev/log`, `udp host:514`, `tcp host:601`,
    /// `tcp+tls host:6514`.
    pub fn describe(&self) -> String {
        match &self.endpoint {
            Endpoint::Unix { path, .. } => format!("unix {}", path.display()),
            Endpoint::Udp { address } => format!("udp {address}"),
            Endpoint::Tcp { address, tls: None } => format!("tcp {address}"),
            Endpoint::Tcp {
                address,
                tls: Some(_),
            } => format!("tcp+tls {address}"),
        }
    }

    fn endpoint_name(&self) -> String {
        match &self.endpoint {
            Endpoint::Unix { path, .. } => path.display().to_string(),
            Endpoint::Udp { address } | Endpoint::Tcp { address, .. } => address.clone(),
        }
    }

    /// Sends `batch` in order, connecting first when needed.
    pub async fn send(&mut self, batch: &[Arc<str>]) -> Result<(), SendError> {
        if let Some(connection) = &mut self.connection
            && connection.peer_closed()
        {
            self.connection = None;
        }
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => match timeout(CONNECT_TIMEOUT, self.connect()).await {
                Ok(Ok(connection)) => connection,
                Ok(Err(message)) => return Err(SendError::retry(message)),
                Err(_) => {
                    return Err(SendError::retry(format!(
                        "no connection to {} within {} s",
                        self.endpoint_name(),
                        CONNECT_TIMEOUT.as_secs()
                    )));
                }
            },
        };
        let result = connection.send(batch).await;
        // Any error leaves the connection dropped: the next send opens a new one.
        if result.is_ok() {
            self.connection = Some(connection);
        }
        result
    }

    async fn connect(&self) -> Result<Connection, String> {
        match &self.endpoint {
            Endpoint::Unix { path, socket_type } => {
                let fail = |e: io::Error| format!("cannot connect to {}: {e}", path.display());
                let datagram = || -> io::Result<UnixDatagram> {
                    let socket = UnixDatagram::unbound()?;
                    socket.connect(path)?;
                    Ok(socket)
                };
                match socket_type {
                    UnixSocketType::Datagram => datagram().map(Connection::UnixDatagram),
                    UnixSocketType::Stream => {
                        UnixStream::connect(path).await.map(Connection::UnixStream)
                    }
                    UnixSocketType::Auto => match datagram() {
                        Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
                            UnixStream::connect(path).await.map(Connection::UnixStream)
                        }
                        other => other.map(Connection::UnixDatagram),
                    },
                }
                .map_err(fail)
            }
            Endpoint::Udp { address } => {
                let addrs = resolve(address).await?;
                let mut last = String::new();
                for addr in addrs {
                    let local: SocketAddr = if addr.is_ipv4() {
                        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
                    } else {
                        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                    };
                    let socket = UdpSocket::bind(local)
                        .await
                        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
                    match socket.connect(addr).await {
                        Ok(()) => return Ok(Connection::Udp(socket)),
                        Err(e) => last = format!("cannot send to {addr} (udp): {e}"),
                    }
                }
                Err(last)
            }
            Endpoint::Tcp { address, tls } => {
                let addrs = resolve(address).await?;
                let mut last = String::new();
                let mut stream = None;
                for addr in addrs {
                    match TcpStream::connect(addr).await {
                        Ok(s) => {
                            stream = Some(s);
                            break;
                        }
                        Err(e) => last = format!("cannot connect to {addr} (tcp): {e}"),
                    }
                }
                let Some(stream) = stream else {
                    return Err(last);
                };
                match tls {
                    None => Ok(Connection::Tcp(stream)),
                    Some(tls) => tls
                        .connector()
                        .connect(tls.server_name().clone(), stream)
                        .await
                        .map(|s| Connection::Tls(Box::new(s)))
                        .map_err(|e| format!("TLS handshake with {address} failed: {e}")),
                }
            }
        }
    }
}

impl Connection {
    /// Sends the batch on this connection; any error means the connection is unusable.
    async fn send(&mut self, batch: &[Arc<str>]) -> Result<(), SendError> {
        match self {
            Connection::UnixDatagram(socket) => {
                for (i, line) in batch.iter().enumerate() {
                    datagram(socket.send(line.as_bytes()), i).await?;
                }
                Ok(())
            }
            Connection::Udp(socket) => {
                for (i, line) in batch.iter().enumerate() {
                    let message = clip(line, MAX_DATAGRAM);
                    datagram(socket.send(message.as_bytes()), i).await?;
                }
                Ok(())
            }
            Connection::UnixStream(stream) => write_stream(stream, &line_feed(batch)).await,
            Connection::Tcp(stream) => write_stream(stream, &octet_counted(batch)).await,
            Connection::Tls(stream) => write_stream(&mut **stream, &octet_counted(batch)).await,
        }
    }

    /// Whether a stream's peer has closed it (or reset it) since the last send. Reads, without
    /// waiting, whatever is there: a collector sends nothing but TLS records and the close,
    /// and rustls handles the records (session tickets, close_notify) itself.
    fn peer_closed(&mut self) -> bool {
        match self {
            Connection::UnixStream(stream) => closed(stream),
            Connection::Tcp(stream) => closed(stream),
            Connection::Tls(stream) => closed(&mut **stream),
            Connection::UnixDatagram(_) | Connection::Udp(_) => false,
        }
    }
}

/// Awaits one datagram's send within [`WRITE_TIMEOUT`]; `index` lines were sent before it.
async fn datagram(
    send: impl Future<Output = io::Result<usize>>,
    index: usize,
) -> Result<(), SendError> {
    match timeout(WRITE_TIMEOUT, send).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.raw_os_error() == Some(libc::EMSGSIZE) => Err(SendError::new(
            index,
            Failure::TooLarge,
            format!("message too large for the socket: {e}"),
        )),
        Ok(Err(e)) => Err(SendError::retry(format!("send failed: {e}")).delivered(index)),
        Err(_) => Err(SendError::retry(format!(
            "the socket took no message for {} s",
            WRITE_TIMEOUT.as_secs()
        ))
        .delivered(index)),
    }
}

/// Writes `data` and flushes it within [`WRITE_TIMEOUT`]; on failure nothing counts as
/// delivered (see the module documentation).
async fn write_stream<S: AsyncWrite + Unpin>(stream: &mut S, data: &[u8]) -> Result<(), SendError> {
    let write = async {
        stream.write_all(data).await?;
        stream.flush().await
    };
    match timeout(WRITE_TIMEOUT, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(SendError::retry(format!("write failed: {e}"))),
        Err(_) => Err(SendError::retry(format!(
            "the collector took no data for {} s",
            WRITE_TIMEOUT.as_secs()
        ))),
    }
}

/// Each message followed by a line feed (unix stream sockets).
fn line_feed(batch: &[Arc<str>]) -> Vec<u8> {
    let mut data = Vec::with_capacity(batch.iter().map(|l| l.len() + 1).sum());
    for line in batch {
        data.extend_from_slice(line.as_bytes());
        data.push(b'\n');
    }
    data
}

/// Each message as `LEN SP MSG`, LEN its length in octets (RFC 6587 §3.4.1, RFC 5425 §4.3).
fn octet_counted(batch: &[Arc<str>]) -> Vec<u8> {
    let mut data = Vec::with_capacity(batch.iter().map(|l| l.len() + 8).sum());
    for line in batch {
        data.extend_from_slice(line.len().to_string().as_bytes());
        data.push(b' ');
        data.extend_from_slice(line.as_bytes());
    }
    data
}

/// `line` cut to at most `max` bytes at a character boundary.
fn clip(line: &str, max: usize) -> &str {
    if line.len() <= max {
        return line;
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// Whether the peer closed or reset `stream`: polls it once without a waker's use (a
/// pending read is "still open"), discarding what the peer sent.
fn closed<S: AsyncRead + Unpin>(stream: &mut S) -> bool {
    let mut buffer = [0u8; 512];
    let mut cx = Context::from_waker(Waker::noop());
    // A collector has no reason to send much; bounded so that a chatty one cannot hold us.
    for _ in 0..64 {
        let mut read = ReadBuf::new(&mut buffer);
        match Pin::new(&mut *stream).poll_read(&mut cx, &mut read) {
            Poll::Pending => return false,
            Poll::Ready(Ok(())) if read.filled().is_empty() => return true,
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => return true,
        }
    }
    false
}

/// The addresses of `host:port`, resolved now.
async fn resolve(address: &str) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(address)
        .await
        .map_err(|e| format!("cannot resolve {address}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("cannot resolve {address}: no address"));
    }
    Ok(addrs)
}

/// The host of `host:port` (without the brackets of an IPv6 address), checking the form.
fn host_of(address: &str) -> Result<&str, BuildError> {
    let fail = |problem: &str| {
        BuildError::new(format!(
            "address {address:?}: {problem} (expected host:port, an IPv6 address in brackets)"
        ))
    };
    let (host, port) = match address.strip_prefix('[') {
        Some(rest) => rest
            .split_once("]:")
            .ok_or_else(|| fail("no port after the bracketed address"))?,
        None => {
            let (host, port) = address.rsplit_once(':').ok_or_else(|| fail("no port"))?;
            if host.contains(':') {
                return Err(fail("an IPv6 address must be in brackets"));
            }
            (host, port)
        }
    };
    if host.is_empty() {
        return Err(fail("no host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(host),
        _ => Err(fail("the port must be a number from 1 to 65535")),
    }
}

#[cfg(test)]
#[path = "syslog_tests.rs"]
mod tests;
