//! Reading explain's input: recognising its shape from the first bytes (log text, or the
//! journal's `-o json` and `-o export` formats), lines bounded in length, and export-format
//! entries turned into the JSON shape the journal source reads.

use std::io::{BufRead, Read};

use crate::matcher::MAX_LINE_LEN;

/// The input's shape, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum InputFormat {
    Text,
    JournalJson,
    JournalExport,
}

pub(super) fn input_format<R: BufRead>(reader: &mut R) -> std::io::Result<InputFormat> {
    let head = reader.fill_buf()?;
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len());
    let head = &head[start..];
    if head.first() == Some(&b'{') {
        return Ok(InputFormat::JournalJson);
    }
    // Export format: FIELD=... or a binary FIELD alone on its line, the field in journal
    // syntax (A-Z, 0-9, _; `__CURSOR` first when written by journalctl).
    let field = head
        .iter()
        .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || **b == b'_')
        .count();
    if field > 0 && matches!(head.get(field), Some(b'=' | b'\n')) && head.starts_with(b"__") {
        return Ok(InputFormat::JournalExport);
    }
    Ok(InputFormat::Text)
}

/// Reads one line into `line` (without its `\n`), keeping at most [`MAX_LINE_LEN`] + 1
/// bytes of it; false at the end of input.
pub(super) fn read_line_bounded<R: BufRead>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<bool> {
    line.clear();
    let mut any = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(any);
        }
        any = true;
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(p) => (p, true),
            None => (buf.len(), false),
        };
        let room = (MAX_LINE_LEN + 1).saturating_sub(line.len());
        line.extend_from_slice(&buf[..take.min(room)]);
        reader.consume(take + usize::from(done));
        if done {
            return Ok(true);
        }
    }
}

/// Reads `journalctl -o export` entries, giving each to `entry` as a JSON object (the shape
/// `journalctl -o json` writes, which [`crate::source::journal::parse_entry`] reads).
pub(super) fn read_export<R: BufRead>(
    reader: &mut R,
    mut entry: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut fields = serde_json::Map::new();
    let mut line = Vec::new();
    let mut flush = |fields: &mut serde_json::Map<String, serde_json::Value>| {
        if fields.is_empty() {
            return Ok(());
        }
        fields
            .entry("__CURSOR")
            .or_insert_with(|| serde_json::Value::String("-".into()));
        let json = serde_json::to_vec(&*fields).map_err(std::io::Error::other)?;
        fields.clear();
        entry(&json)
    };
    while read_line_bounded(reader, &mut line)? {
        if line.is_empty() {
            flush(&mut fields)?;
            continue;
        }
        match memchr::memchr(b'=', &line) {
            Some(eq) => {
                let name = String::from_utf8_lossy(&line[..eq]).into_owned();
                let value = &line[eq + 1..];
                let value = match std::str::from_utf8(value) {
                    Ok(text) => serde_json::Value::String(text.to_owned()),
                    Err(_) => value.iter().map(|&b| serde_json::Value::from(b)).collect(),
                };
                fields.insert(name, value);
            }
            None => {
                // A binary field: its name, then a little-endian 64-bit length and the bytes.
                let name = String::from_utf8_lossy(&line).into_owned();
                let mut len = [0u8; 8];
                reader.read_exact(&mut len)?;
                let len = u64::from_le_bytes(len);
                let mut value = Vec::new();
                reader
                    .by_ref()
                    .take(len.min(MAX_LINE_LEN as u64 + 1))
                    .read_to_end(&mut value)?;
                // Skip what is beyond the limit, and the newline after the value.
                std::io::copy(
                    &mut reader
                        .by_ref()
                        .take(len.saturating_sub(value.len() as u64) + 1),
                    &mut std::io::sink(),
                )?;
                let value = match String::from_utf8(value) {
                    Ok(text) => serde_json::Value::String(text),
                    Err(e) => e
                        .into_bytes()
                        .into_iter()
                        .map(serde_json::Value::from)
                        .collect(),
                };
                fields.insert(name, value);
            }
        }
    }
    flush(&mut fields)
}

pub(super) fn read_some<R: BufRead>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
