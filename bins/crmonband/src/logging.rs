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

/// Installs the global subscriber at `level` (or `RUST_LOG`), writing to `file` or stderr.
pub fn init(level: &str, file: Option<File>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
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
