//! [`Shared`]: what the D-Bus object and the signal handlers share — the running engine, where
//! the configuration came from (for reloads), and the stop request.

use std::path::PathBuf;

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
}

impl Shared {
    pub fn engine(&self) -> &crmonban_engine::Engine {
        self.running.engine()
    }

    /// Re-reads the configuration and applies all of it, or nothing: an invalid file, or a
    /// change that needs a restart, is reported and the running configuration stays.
    pub async fn reload(&self) -> Result<()> {
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
        let applied = self
            .running
            .reconfigure(loaded.config)
            .await
            .context("reload refused, the running configuration stays")?;
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
