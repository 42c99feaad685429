//! The daemon's own log: tracing's text format to stderr (journald) or to
//! `state_dir/crmonband.log`, with every control character inside a record escaped, so that no
//! text from outside (a path, a comment, a message relayed from a log source) can forge a line
//! of it — recidive reads this log — or drive a terminal. Colours are therefore off.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use tracing_subscriber::fmt::MakeWriter;

/// Our crates, whose records `log_level` = debug or trace shows at that level.
const OURS: &[&str] = &[
    "crmonband",
    "crmonban_core",
    "crmonban_dbus",
    "crmonban_detect",
    "crmonban_ebpf",
    "crmonban_engine",
    "crmonban_fail2ban",
    "crmonban_firewall",
    "crmonban_intel",
    "crmonban_report",
    "crmonban_siem",
    "crmonban_store",
    "crmonban_zones",
];

/// The filter for `level`: at debug or trace our crates at that level and every other at info
/// at most, so that a debug log shows our decisions and not every database query and bus
/// message of the libraries underneath (sqlx logs each statement at debug); at info and
/// above, the level for all. `RUST_LOG`, when set, replaces it whole (for a library's
/// internals).
fn directives(level: &str) -> String {
    match level {
        "debug" | "trace" => std::iter::once("info".to_owned())
            .chain(OURS.iter().map(|target| format!("{target}={level}")))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_owned(),
    }
}

/// Installs the global subscriber at `level` (or `RUST_LOG`), writing to `file` or stderr.
pub fn init(level: &str, file: Option<File>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(directives(level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    match file {
        Some(file) => builder.with_writer(Escaping(Mutex::new(file))).init(),
        None => builder
            .with_writer(Escaping(Mutex::new(io::stderr())))
            .init(),
    }
}

/// Opens (creating) `state_dir/crmonband.log` for appending.
pub fn open_file(state_dir: &Path) -> Result<File> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let path = state_dir.join("crmonband.log");
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

/// A writer that escapes control characters, except the newline ending each record (the
/// text format writes one record per `write`).
struct Escaping<W>(Mutex<W>);

struct EscapingGuard<'a, W: Write>(std::sync::MutexGuard<'a, W>);

impl<'a, W: Write + 'a> MakeWriter<'a> for Escaping<W> {
    type Writer = EscapingGuard<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingGuard(
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl<W: Write> Write for EscapingGuard<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (body, end) = match buf.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (buf, &b""[..]),
        };
        let text = String::from_utf8_lossy(body);
        let escaped = crmonban_core::text::escape_control(&text);
        self.0.write_all(escaped.as_bytes())?;
        self.0.write_all(end)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer the subscriber writes into and the test reads.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What a subscriber at `level` writes of a debug record of ours, a debug record of sqlx
    /// and an info record of zbus.
    fn logged_at(level: &str) -> String {
        let out = Shared::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(directives(level)))
            .with_writer(Escaping(Mutex::new(out.clone())))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "crmonban_engine::engine", "our decision");
            tracing::debug!(target: "sqlx::query", "SELECT 1");
            tracing::info!(target: "zbus::connection", "a library's news");
        });
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn debug_shows_our_records_and_not_the_libraries_internals() {
        let debug = logged_at("debug");
        assert!(debug.contains("our decision"), "{debug}");
        assert!(debug.contains("a library's news"), "{debug}");
        assert!(!debug.contains("SELECT 1"), "{debug}");
        let info = logged_at("info");
        assert!(!info.contains("our decision"), "{info}");
        assert!(info.contains("a library's news"), "{info}");
        // Every crate of the workspace is one of ours (a new one must be added to OURS).
        let crates = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../crates"))
            .unwrap()
            .map(|entry| {
                entry
                    .unwrap()
                    .file_name()
                    .into_string()
                    .unwrap()
                    .replace('-', "_")
            })
            .filter(|name| name != "crmonban_testutil")
            .collect::<Vec<_>>();
        for name in crates {
            assert!(OURS.contains(&name.as_str()), "{name} missing from OURS");
        }
    }

    #[test]
    fn a_forged_line_stays_inside_its_record() {
        let sink = Escaping(Mutex::new(Vec::new()));
        let mut writer = sink.make_writer();
        writer
            .write_all(b"INFO reason=x\n2026-01-01T00:00:00Z INFO banned \x1b[2J\n")
            .unwrap();
        drop(writer);
        let written = String::from_utf8(sink.0.into_inner().unwrap()).unwrap();
        assert_eq!(
            written,
            "INFO reason=x\\n2026-01-01T00:00:00Z INFO banned \\u{1b}[2J\n"
        );
        assert_eq!(written.lines().count(), 1);
    }
}
