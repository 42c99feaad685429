//! The TLS client of syslog over TLS (RFC 5425): rustls on the ring provider, trusting the
//! PEM certificates of `tls_ca_file` when set, else the system's trust store (through
//! rustls-platform-verifier), with an optional client certificate; and the name the
//! server's certificate must carry.
//!
//! Everything is read and checked when the target is built, so that a missing or malformed
//! file is reported at start or reload, naming the key and the path; the handshake happens
//! at each connection.

use std::path::Path;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls_platform_verifier::BuilderVerifierExt;
use tokio_rustls::TlsConnector;

use crmonban_core::config::SyslogTls;

use super::BuildError;

/// A TLS client for one collector: the configuration and the name to verify.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// The client of `tls` for a collector at `host` (the host of `address`, the default
    /// server name). Reads and checks every file it names.
    pub fn build(tls: &SyslogTls, host: &str) -> Result<TlsClient, BuildError> {
        match (&tls.cert_file, &tls.key_file) {
            (Some(_), None) => {
                return Err(BuildError::new("tls_cert_file is set without tls_key_file"));
            }
            (None, Some(_)) => {
                return Err(BuildError::new("tls_key_file is set without tls_cert_file"));
            }
            _ => {}
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BuildError::new(format!("TLS: {e}")))?;
        let builder = match &tls.ca_file {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates("tls_ca_file", path)? {
                    roots.add(cert).map_err(|e| {
                        BuildError::new(format!("tls_ca_file {}: {e}", path.display()))
                    })?;
                }
                builder.with_root_certificates(roots)
            }
            None => builder.with_platform_verifier().map_err(|e| {
                BuildError::new(format!(
                    "tls: the system's trust store cannot be used ({e}); set tls_ca_file"
                ))
            })?,
        };
        let config = match (&tls.cert_file, &tls.key_file) {
            (Some(cert_path), Some(key_path)) => {
                let chain = certificates("tls_cert_file", cert_path)?;
                let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
                    BuildError::new(format!(
                        "tls_key_file {}: no private key read ({})",
                        key_path.display(),
                        pem_problem(&e)
                    ))
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    BuildError::new(format!(
                        "tls_cert_file {} and tls_key_file {}: {e}",
                        cert_path.display(),
                        key_path.display()
                    ))
                })?
            }
            _ => builder.with_no_client_auth(),
        };
        let name = tls.server_name.as_deref().unwrap_or(host);
        let server_name = ServerName::try_from(name.to_owned()).map_err(|_| {
            let key = if tls.server_name.is_some() {
                "tls_server_name"
            } else {
                "address"
            };
            BuildError::new(format!(
                "{key}: {name:?} is not a valid TLS server name (a DNS name or an IP address)"
            ))
        })?;
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// The connector (shares its configuration).
    pub fn connector(&self) -> &TlsConnector {
        &self.connector
    }

    /// The name the server's certificate must carry.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }
}

/// Every certificate of the PEM file at `path` (at least one), for the error message `key`.
fn certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, BuildError> {
    let fail = |problem: String| BuildError::new(format!("{key} {}: {problem}", path.display()));
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| fail(pem_problem(&e)))?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("not valid PEM ({})", pem_problem(&e))))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate in it".to_owned()));
    }
    Ok(certs)
}

/// A PEM reading error in words (the I/O error as is, "cannot read: ...").
fn pem_problem(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => format!("cannot read: {io}"),
        rustls::pki_types::pem::Error::NoItemsFound => "nothing of that kind in it".to_owned(),
        other => other.to_string(),
    }
}
