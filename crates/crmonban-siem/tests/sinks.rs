//! The file and syslog sinks against real files, sockets and collectors: unix datagram and
//! stream sockets, UDP and TCP listeners on loopback, and a rustls TLS collector with
//! certificates made by `openssl`.

mod sink_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crmonban_core::config::{
    SiemTarget, SyslogHeader, SyslogProtocol, SyslogTls, SyslogTransport, UnixSocketType,
};
use crmonban_siem::sink::{Failure, Sink};
use sink_support::{lines, network, openssl_cert, read_frames, syslog, texts, tls_acceptor};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, UdpSocket, UnixDatagram, UnixListener};

fn file_sink(path: &Path) -> Sink {
    Sink::build(&SiemTarget::File {
        path: path.to_owned(),
    })
    .unwrap()
}

fn unix(path: &Path, socket_type: UnixSocketType) -> Sink {
    syslog(SyslogTransport::Unix {
        socket: path.to_owned(),
        socket_type,
        header: SyslogHeader::Auto,
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test]
async fn file_sink_appends_and_follows_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("siem.log");
    let mut sink = file_sink(&path);
    assert_eq!(sink.max_batch(), 256);
    assert_eq!(sink.describe(), format!("file {}", path.display()));
    sink.send(&lines("first", 2)).await.unwrap();
    assert_eq!(read(&path), "first 0\nfirst 1\n");

    // Renamed away (logrotate without `create`): the very next events go to a new file at
    // the path.
    let rotated = dir.path().join("siem.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    sink.send(&lines("second", 1)).await.unwrap();
    assert_eq!(read(&rotated), "first 0\nfirst 1\n");
    assert_eq!(read(&path), "second 0\n");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);

    // Renamed and recreated by someone else (logrotate's `create`): reopened.
    let rotated_again = dir.path().join("siem.log.2");
    std::fs::rename(&path, &rotated_again).unwrap();
    std::fs::write(&path, "").unwrap();
    sink.send(&lines("third", 1)).await.unwrap();
    assert_eq!(read(&rotated_again), "second 0\n");
    assert_eq!(read(&path), "third 0\n");
}

#[test]
fn file_sink_needs_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("siem.log");
    let e = Sink::build(&SiemTarget::File { path: path.clone() }).unwrap_err();
    assert_eq!(
        e.message,
        format!(
            "path {}: the directory {} does not exist \
             (create it, owned by the user crmonban runs as)",
            path.display(),
            path.parent().unwrap().display()
        )
    );
}

/// A tmpfs that is made read-only after mounting: even root cannot create files there.
#[test]
fn root_file_sink_on_a_read_only_file_system() {
    let disk = crmonban_testutil::SmallDisk::mount(1);
    let dir = disk.path().to_str().unwrap().to_owned();
    crmonban_testutil::run("mount", &["-o", "remount,ro", &dir]);
    let path = disk.path().join("siem.log");
    let e = Sink::build(&SiemTarget::File { path: path.clone() }).unwrap_err();
    assert!(
        e.message.starts_with(&format!(
            "path {}: cannot create files in {dir}",
            path.display()
        )),
        "{e}"
    );
    assert!(e.message.contains("Read-only file system"), "{e}");
}

/// A full disk fails the write (retried); once space is back, the rest is appended on a
/// line of its own.
#[tokio::test]
async fn root_file_sink_retries_on_a_full_disk() {
    let disk = crmonban_testutil::SmallDisk::mount(1);
    let path = disk.path().join("siem.log");
    let mut sink = file_sink(&path);
    sink.send(&lines("before", 1)).await.unwrap();
    disk.fill();
    let batch: Vec<Arc<str>> = (0..8)
        .map(|i| Arc::from(format!("{i} {}", "x".repeat(2000))))
        .collect();
    let e = sink.send(&batch).await.unwrap_err();
    assert_eq!(e.failure, Failure::Retry { after: None });
    assert!(e.message.contains("No space left on device"), "{e:?}");
    assert!(e.delivered < batch.len());
    disk.free();
    sink.send(&batch[e.delivered..]).await.unwrap();
    let text = read(&path);
    let file_lines: Vec<&str> = text.lines().collect();
    assert_eq!(file_lines[0], "before 0");
    let complete: Vec<&str> = file_lines
        .iter()
        .copied()
        .filter(|l| batch.iter().any(|b| **b == **l))
        .collect();
    assert_eq!(
        complete,
        texts(&batch),
        "each event once, in order, on its own line"
    );
    for line in &file_lines[1..] {
        assert!(
            batch.iter().any(|b| b.starts_with(line)),
            "only whole events or the fragment the full disk cut: {line:.40}"
        );
    }
    assert!(text.ends_with('\n'));
}

#[tokio::test]
async fn unix_datagram_socket_gets_one_message_per_datagram() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let server = UnixDatagram::bind(&path).unwrap();
    for socket_type in [UnixSocketType::Datagram, UnixSocketType::Auto] {
        let mut sink = unix(&path, socket_type);
        assert_eq!(sink.max_batch(), 64);
        let batch = lines(&format!("{socket_type:?}"), 3);
        sink.send(&batch).await.unwrap();
        let mut got = Vec::new();
        let mut buffer = vec![0u8; 65536];
        for _ in 0..3 {
            let n = tokio::time::timeout(sink_support::PATIENCE, server.recv(&mut buffer))
                .await
                .unwrap()
                .unwrap();
            got.push(String::from_utf8(buffer[..n].to_vec()).unwrap());
        }
        assert_eq!(got, texts(&batch));
    }
}

#[tokio::test]
async fn unix_stream_socket_gets_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let listener = UnixListener::bind(&path).unwrap();
    for socket_type in [UnixSocketType::Stream, UnixSocketType::Auto] {
        let mut sink = unix(&path, socket_type);
        let batch = lines(&format!("{socket_type:?}"), 3);
        sink.send(&batch).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let mut reader = BufReader::new(stream).lines();
        let mut got = Vec::new();
        for _ in 0..3 {
            let line = tokio::time::timeout(sink_support::PATIENCE, reader.next_line())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            got.push(line);
        }
        assert_eq!(got, texts(&batch));
    }
}

#[tokio::test]
async fn an_absent_socket_is_a_failure_to_retry_not_a_build_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let mut sink = unix(&path, UnixSocketType::Auto);
    let e = sink.send(&lines("x", 1)).await.unwrap_err();
    assert_eq!(
        (e.delivered, e.failure),
        (0, Failure::Retry { after: None })
    );
    assert!(e.message.contains(&path.display().to_string()), "{e:?}");
    assert!(e.message.contains("No such file"), "{e:?}");

    // The daemon starts: the next send connects.
    let server = UnixDatagram::bind(&path).unwrap();
    sink.send(&lines("y", 1)).await.unwrap();
    let mut buffer = [0u8; 64];
    let n = server.recv(&mut buffer).await.unwrap();
    assert_eq!(&buffer[..n], b"y 0");
}

#[tokio::test]
async fn udp_sends_one_datagram_per_message() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = server.local_addr().unwrap().to_string();
    let mut sink = syslog(network(&address, SyslogProtocol::Udp, None));
    assert_eq!(sink.describe(), format!("syslog udp {address}"));
    let batch = lines("udp", 3);
    sink.send(&batch).await.unwrap();
    let mut got = Vec::new();
    let mut buffer = vec![0u8; 65536];
    for _ in 0..3 {
        let n = tokio::time::timeout(sink_support::PATIENCE, server.recv(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        got.push(String::from_utf8(buffer[..n].to_vec()).unwrap());
    }
    assert_eq!(got, texts(&batch));
}

#[tokio::test]
async fn tcp_frames_by_octet_counting_and_survives_a_collector_restart() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let mut sink = syslog(network(&address, SyslogProtocol::Tcp, None));
    assert_eq!(sink.describe(), format!("syslog tcp {address}"));
    let batch: Vec<Arc<str>> = vec![
        Arc::from("<38>1 - host crmonban - ban-added - plain"),
        Arc::from("<38>1 - host crmonban - ban-added - \u{e9}t\u{e9} 12 34"),
    ];
    sink.send(&batch).await.unwrap();
    let (mut stream, _) = listener.accept().await.unwrap();
    assert_eq!(read_frames(&mut stream, 2).await, texts(&batch));

    // The collector restarts: its end of the connection closes. The next batch must not be
    // swallowed by the dead connection.
    drop(stream);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = lines("after restart", 3);
    sink.send(&second).await.unwrap();
    let (mut stream, _) = tokio::time::timeout(sink_support::PATIENCE, listener.accept())
        .await
        .expect("a new connection")
        .unwrap();
    assert_eq!(read_frames(&mut stream, 3).await, texts(&second));
}

#[tokio::test]
async fn tcp_without_a_collector_is_a_failure_to_retry() {
    let address = format!("127.0.0.1:{}", sink_support::free_port());
    let mut sink = syslog(network(&address, SyslogProtocol::Tcp, None));
    let e = sink.send(&lines("x", 2)).await.unwrap_err();
    assert_eq!(
        (e.delivered, e.failure),
        (0, Failure::Retry { after: None })
    );
    assert!(e.message.contains("Connection refused"), "{e:?}");
    assert!(e.message.contains(&address), "{e:?}");
}

struct Tls {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    other_cert: PathBuf,
    other_key: PathBuf,
}

fn certificates() -> Tls {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_cert(dir.path(), "localhost");
    let (other_cert, other_key) = openssl_cert(dir.path(), "other");
    Tls {
        _dir: dir,
        cert,
        key,
        other_cert,
        other_key,
    }
}

/// A TLS collector with `certs.cert` that reads `count` frames from one connection; `None`
/// when the handshake fails.
fn tls_collector(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    count: usize,
) -> tokio::task::JoinHandle<Option<(Vec<String>, bool)>> {
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(stream).await.ok()?;
        let client_cert = tls.get_ref().1.peer_certificates().is_some();
        Some((read_frames(&mut tls, count).await, client_cert))
    })
}

#[tokio::test]
async fn tls_trusting_ca_file_delivers_frames() {
    let certs = certificates();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let collector = tls_collector(listener, tls_acceptor(&certs.cert, &certs.key, None), 3);
    let tls = SyslogTls {
        ca_file: Some(certs.cert.clone()),
        ..SyslogTls::default()
    };
    // The server name defaults to the address's host.
    let mut sink = syslog(network(
        &format!("localhost:{port}"),
        SyslogProtocol::Tcp,
        Some(tls),
    ));
    assert_eq!(sink.describe(), format!("syslog tcp+tls localhost:{port}"));
    let batch = lines("tls", 3);
    sink.send(&batch).await.unwrap();
    let (frames, client_cert) = collector.await.unwrap().expect("handshake");
    assert_eq!(frames, texts(&batch));
    assert!(!client_cert);
}

#[tokio::test]
async fn tls_presents_the_client_certificate() {
    let certs = certificates();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let acceptor = tls_acceptor(&certs.cert, &certs.key, Some(&certs.other_cert));
    let collector = tls_collector(listener, acceptor, 2);
    let tls = SyslogTls {
        ca_file: Some(certs.cert.clone()),
        cert_file: Some(certs.other_cert.clone()),
        key_file: Some(certs.other_key.clone()),
        server_name: None,
    };
    // An IP address as the server name: the certificate has it as a subjectAltName.
    let mut sink = syslog(network(&address, SyslogProtocol::Tcp, Some(tls)));
    let batch = lines("mutual", 2);
    sink.send(&batch).await.unwrap();
    let (frames, client_cert) = collector.await.unwrap().expect("handshake");
    assert_eq!(frames, texts(&batch));
    assert!(client_cert, "the collector saw our certificate");
}

#[tokio::test]
async fn tls_with_the_wrong_ca_or_name_is_retried_naming_the_certificate_problem() {
    let certs = certificates();
    for (ca, server_name, problem) in [
        (&certs.other_cert, None, "UnknownIssuer"),
        (&certs.cert, Some("collector.example"), "not valid for name"),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let collector = tls_collector(listener, tls_acceptor(&certs.cert, &certs.key, None), 1);
        let tls = SyslogTls {
            ca_file: Some(ca.clone()),
            server_name: server_name.map(str::to_owned),
            ..SyslogTls::default()
        };
        let mut sink = syslog(network(
            &format!("localhost:{port}"),
            SyslogProtocol::Tcp,
            Some(tls),
        ));
        let e = sink.send(&lines("x", 1)).await.unwrap_err();
        assert_eq!(
            (e.delivered, e.failure),
            (0, Failure::Retry { after: None })
        );
        assert!(e.message.contains("certificate"), "{e:?}");
        assert!(e.message.contains(problem), "{e:?}");
        assert!(collector.await.unwrap().is_none());
    }
}

#[tokio::test]
async fn tls_keeps_a_live_connection_and_replaces_a_closed_one() {
    let certs = certificates();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tls_acceptor(&certs.cert, &certs.key, None);
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    let collector = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(stream).await.unwrap();
        // Two batches on the first connection (TLS 1.3 session tickets sent meanwhile must
        // not look like a close), then the collector restarts.
        let first = read_frames(&mut tls, 4).await;
        tokio::io::AsyncWriteExt::shutdown(&mut tls).await.unwrap();
        drop(tls);
        closed_tx.send(()).unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(stream).await.unwrap();
        (first, read_frames(&mut tls, 1).await)
    });
    let tls = SyslogTls {
        ca_file: Some(certs.cert.clone()),
        ..SyslogTls::default()
    };
    let mut sink = syslog(network(
        &format!("localhost:{port}"),
        SyslogProtocol::Tcp,
        Some(tls),
    ));
    sink.send(&lines("one", 2)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    sink.send(&lines("two", 2)).await.unwrap();
    closed_rx.await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    sink.send(&lines("three", 1)).await.unwrap();
    let (first, second) = tokio::time::timeout(sink_support::PATIENCE, collector)
        .await
        .expect("the collector got everything")
        .unwrap();
    assert_eq!(first, ["one 0", "one 1", "two 0", "two 1"]);
    assert_eq!(second, ["three 0"]);
}
