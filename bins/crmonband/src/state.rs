//! [`Shared`]: what the D-Bus object and the signal handlers share — the running engine, where
//! the configuration came from (for reloads), and the stop request.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use crmonban_engine::Running;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::config_file;

pub struct Shared {
    pub running: Running,
    /// The file the config came from (`None`: built-in defaults), re-read on reload.
    pub config_path: Option<PathBuf>,
    /// Whether `-c` named the file (then it must exist on reload too).
    pub config_explicit: bool,
    /// Asks the main loop to stop (D-Bus Stop).
    pub stop: Notify,
    /// The `[metrics]` endpoint while it runs.
    pub metrics: std::sync::Mutex<Option<crate::metrics::Server>>,
}

impl Shared {
    /// Where the metrics endpoint listens, while it runs.
    pub fn metrics_listen(&self) -> Option<std::net::SocketAddr> {
        self.metrics_slot().as_ref().map(|server| server.listen)
    }

    /// Stops the metrics endpoint, and serves on `listener` instead when given.
    pub fn replace_metrics(self: &Arc<Self>, listener: Option<std::net::TcpListener>) {
        let mut slot = self.metrics_slot();
        if let Some(old) = slot.take() {
            info!(listen = %old.listen, "metrics: no longer serving");
        }
        if let Some(listener) = listener {
            match crate::metrics::Server::start(listener, self.clone()) {
                Ok(server) => *slot = Some(server),
                Err(e) => warn!("metrics: cannot serve: {e:#}"),
            }
        }
    }

    fn metrics_slot(&self) -> std::sync::MutexGuard<'_, Option<crate::metrics::Server>> {
        self.metrics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn engine(&self) -> &crmonban_engine::Engine {
        self.running.engine()
    }

    /// Re-reads the configuration and applies all of it, or nothing: an invalid file, or a
    /// change that needs a restart, is reported and the running configuration stays.
    pub async fn reload(self: &Arc<Self>) -> Result<()> {
        let path = if self.config_explicit {
            self.config_path.as_deref()
        } else {
            None
        };
        let loaded =
            config_file::load(path).context("reload refused, the running configuration stays")?;
        for w in &loaded.warnings {
            warn!("{w}");
        }
        // A new listener is bound before anything changes: a port in use refuses the reload.
        let wanted = &loaded.config.metrics;
        let serving = self.metrics_listen();
        let rebind = match (wanted.enabled, serving) {
            (true, Some(listen)) if listen == wanted.listen => None,
            (true, _) => Some(Some(
                crate::metrics::bind(wanted.listen)
                    .context("reload refused, the running configuration stays")?,
            )),
            (false, Some(_)) => Some(None),
            (false, None) => None,
        };
        let applied = self
            .running
            .reconfigure(loaded.config)
            .await
            .context("reload refused, the running configuration stays")?;
        if let Some(listener) = rebind {
            self.replace_metrics(listener);
        }
        if !applied.problems.is_empty() {
            warn!(
                count = applied.problems.len(),
                "the reloaded whitelist sources have problems; the rest applies"
            );
        }
        info!(
            file = %loaded.path.as_ref().map_or("built-in defaults".into(), |p| p.display().to_string()),
            services = ?applied.services,
            "configuration reloaded and applied"
        );
        Ok(())
    }
}
