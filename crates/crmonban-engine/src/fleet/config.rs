//! `[fleet]` into [`FleetOptions`]: the URL (from `url` or `url_file`), the password (from
//! `password_file`), both files required to be unreadable by group and others, and the node's
//! name (the host name unless `node_name` says otherwise). Nothing read here is ever logged.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crmonban_core::config::FleetConfig;
use crmonban_store::{FleetConnectOptions, parse_fleet_url};

use super::{Accept, FleetOptions};

/// Why `[fleet]` cannot be used; names the file or key, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum FleetConfigError {
    /// A secret file cannot be read.
    #[error("[fleet] {key} = {}: cannot read it: {source}", path.display())]
    Read {
        /// `url_file` or `password_file`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A secret file others may read.
    #[error("[fleet] {key} = {}: group or others may read it (mode {mode:o}); make it mode 600 (chmod 600 {})", path.display(), path.display())]
    Exposed {
        /// `url_file` or `password_file`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The URL does not parse.
    #[error("[fleet] {key}: not a PostgreSQL URL: {reason}")]
    Url {
        /// `url` or `url_file`.
        key: &'static str,
        /// The driver's reason (the URL itself is not repeated: it may hold a password).
        reason: String,
    },
    /// No node name: none given, and the host's cannot be read or is not a valid one.
    #[error(
        "[fleet] node_name: not set, and the host name {0:?} cannot name a node; set node_name"
    )]
    NodeName(String),
}

impl FleetOptions {
    /// The options `[fleet]` describes, its files read now.
    pub fn from_config(config: &FleetConfig) -> Result<FleetOptions, FleetConfigError> {
        let (key, url) = match &config.url_file {
            Some(path) => ("url_file", read_secret("url_file", path)?),
            None => ("url", config.url.clone()),
        };
        let mut connect: FleetConnectOptions =
            parse_fleet_url(url.trim()).map_err(|reason| FleetConfigError::Url {
                key,
                reason: redacted(&reason, &url),
            })?;
        if let Some(path) = &config.password_file {
            let password = read_secret("password_file", path)?;
            connect = connect.password(password.trim_end_matches(['\n', '\r']));
        }
        let node = match &config.node_name {
            Some(name) => name.clone(),
            None => {
                let host = nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // The short name: "web1" of "web1.example.org".
                let short = host.split('.').next().unwrap_or("").to_owned();
                if !crmonban_core::config::is_node_name(&short) {
                    return Err(FleetConfigError::NodeName(host));
                }
                short
            }
        };
        Ok(FleetOptions {
            node,
            connect,
            share: config.share.clone(),
            accept: match &config.accept {
                None => Accept::All,
                Some(nodes) => Accept::Nodes(nodes.clone()),
            },
            min_ban_time: config.min_ban_time,
            max_publish_rate: config.max_publish_rate,
            escalate_after: config.escalate_after,
            escalate_factor: config.escalate_factor,
            escalate_window: config.escalate_window,
            prune_after: config.prune_after,
            heartbeat: config.heartbeat,
        })
    }
}

/// The contents of a file holding a secret, refused when group or others may read it.
fn read_secret(key: &'static str, path: &Path) -> Result<String, FleetConfigError> {
    let read = |source| FleetConfigError::Read {
        key,
        path: path.to_owned(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(read)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(FleetConfigError::Exposed {
            key,
            path: path.to_owned(),
            mode,
        });
    }
    std::fs::read_to_string(path).map_err(read)
}

/// `message` with any occurrence of the URL's password replaced.
fn redacted(message: &str, url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    match authority
        .rsplit_once('@')
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
    {
        Some((_, password)) if !password.is_empty() => message.replace(password, "***"),
        _ => message.to_owned(),
    }
}
