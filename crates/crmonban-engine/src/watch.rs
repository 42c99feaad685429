//! Watching the whitelist files of `file` sources with `watch = true`: a change (written,
//! replaced, created, removed) rebuilds the protection policy within [`SETTLE`] of the last
//! event, and the bans the new policy refuses are lifted. Each file's directory is watched,
//! so a file that does not exist yet, or is replaced by a rename (editors, configuration
//! management), is seen as well.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Weak;
use std::time::Duration;

use crmonban_core::config::{WhitelistConfig, WhitelistSource};
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::engine::Inner;

/// Events closer together than this are one change (an editor writes, renames and chmods).
const SETTLE: Duration = Duration::from_millis(300);

/// The watcher and its task; dropping it stops both.
pub(crate) struct FileWatch {
    _watcher: notify::RecommendedWatcher,
    task: JoinHandle<()>,
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The files `whitelist` asks to watch.
pub(crate) fn watched_files(whitelist: &WhitelistConfig) -> BTreeSet<PathBuf> {
    if !whitelist.enabled {
        return BTreeSet::new();
    }
    whitelist
        .sources
        .iter()
        .filter_map(|source| match source {
            WhitelistSource::File { path, watch: true } => Some(path.clone()),
            _ => None,
        })
        .collect()
}

/// Starts watching `files` (none: no watcher). Call within the engine's tokio runtime.
pub(crate) fn watch_files(inner: Weak<Inner>, files: BTreeSet<PathBuf>) -> Option<FileWatch> {
    if files.is_empty() {
        return None;
    }
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let wanted = files.clone();
    let handler = move |event: notify::Result<notify::Event>| match event {
        Ok(event) if event.paths.iter().any(|p| wanted.contains(p)) => {
            // Full means a rebuild is already due; nothing is lost.
            let _ = tx.try_send(());
        }
        Ok(_) => {}
        Err(error) => debug!(%error, "whitelist file watch"),
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(error) => {
            warn!(%error, "cannot watch the whitelist files; they apply at start and on reload only");
            return None;
        }
    };
    let dirs: BTreeSet<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(PathBuf::from))
        .collect();
    for dir in &dirs {
        if let Err(error) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            warn!(dir = %dir.display(), %error, "cannot watch a whitelist file's directory; its changes apply on reload only");
        }
    }
    let task = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Let the writer finish; a burst is one rebuild.
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            let Some(inner) = inner.upgrade() else {
                return;
            };
            match inner.refresh_protection().await {
                Ok(problems) => info!(
                    problems = problems.len(),
                    "a whitelist file changed; protection rebuilt"
                ),
                Err(error) => {
                    warn!(%error, "a whitelist file changed but the policy could not be rebuilt")
                }
            }
        }
    });
    Some(FileWatch {
        _watcher: watcher,
        task,
    })
}
