//! What the transport tests share: lines to send, syslog sinks, a reader of octet-counted
//! frames, certificates made by `openssl` and a TLS collector's acceptor.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crmonban_core::config::{
    SiemTarget, SyslogFacility, SyslogProtocol, SyslogTls, SyslogTransport,
};
use crmonban_siem::sink::Sink;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt};

/// How long a test waits for what must happen; only matters when something is broken.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// `count` distinct lines `"{prefix} {i}"`.
pub fn lines(prefix: &str, count: usize) -> Vec<Arc<str>> {
    (0..count)
        .map(|i| Arc::from(format!("{prefix} {i}")))
        .collect()
}

/// The texts of `lines`.
pub fn texts(lines: &[Arc<str>]) -> Vec<String> {
    lines.iter().map(|l| l.to_string()).collect()
}

/// A syslog sink of `transport`.
pub fn syslog(transport: SyslogTransport) -> Sink {
    Sink::build(&SiemTarget::Syslog {
        transport,
        facility: SyslogFacility::Auth,
    })
    .unwrap()
}

/// A network syslog transport.
pub fn network(address: &str, protocol: SyslogProtocol, tls: Option<SyslogTls>) -> SyslogTransport {
    SyslogTransport::Network {
        address: address.to_owned(),
        protocol,
        tls,
    }
}

/// Reads `count` octet-counted frames (`LEN SP MSG`), failing the test after [`PATIENCE`].
pub async fn read_frames<R: AsyncRead + Unpin>(reader: &mut R, count: usize) -> Vec<String> {
    tokio::time::timeout(PATIENCE, async {
        let mut frames = Vec::new();
        while frames.len() < count {
            let mut length = Vec::new();
            loop {
                let byte = reader.read_u8().await.expect("a frame's length");
                if byte == b' ' {
                    break;
                }
                assert!(byte.is_ascii_digit(), "octet count expected, got {byte:#x}");
                length.push(byte);
            }
            let length: usize = String::from_utf8(length).unwrap().parse().unwrap();
            let mut message = vec![0u8; length];
            reader.read_exact(&mut message).await.unwrap();
            frames.push(String::from_utf8(message).unwrap());
        }
        frames
    })
    .await
    .expect("the frames in time")
}

/// A self-signed certificate for `localhost` and 127.0.0.1 made by `openssl` in `dir`,
/// with the name `name`: (certificate, key) paths.
pub fn openssl_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-days",
            "1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (Debian's openssl package) runs");
    assert!(
        out.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// A TLS server acceptor with `cert`/`key`; requiring a client certificate issued by (or
/// equal to) `client_ca` when given.
pub fn tls_acceptor(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let config = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).unwrap() {
                roots.add(cert.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    }
    .with_single_cert(chain, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A loopback TCP port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Polls `probe` every 10 ms until it holds, failing the test after [`PATIENCE`].
pub async fn eventually(what: &str, mut probe: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !probe() {
        assert!(start.elapsed() < PATIENCE, "waited {PATIENCE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
