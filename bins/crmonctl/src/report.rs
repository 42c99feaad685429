//! `crmonctl report --html FILE`: the daemon's `GetStats` JSON rendered by crmonban-report as
//! one self-contained HTML page, written to FILE (`-`: standard output). The page itself — map,
//! charts, tables, escaping — is that crate's; this module supplies what rendering must not do
//! itself: this host's name, the clock, and the file.

use std::path::Path;

use crmonban_report::{Context, render};

/// This host's name (the kernel's), or `localhost` when it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Renders `json` and writes the page to `path` (`-`: standard output).
pub fn write(json: &str, path: &Path) -> Result<(), String> {
    let context = Context {
        host: host_name(),
        generated_at: crmonban_core::unix_now(),
    };
    let page = render(json, &context).map_err(|e| e.to_string())?;
    if path == Path::new("-") {
        return crate::output::print(&page).map_err(|e| format!("writing the page: {e}"));
    }
    std::fs::write(path, page).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
