//! The systemd journal as a source, read through `journalctl -f -o json` as a child process (no
//! libsystemd binding): each JSON entry becomes one [`SourceLine`] shaped like a syslog line,
//! and the entry's `__CURSOR` is its position, so that a restart continues with
//! `--after-cursor`. Without a saved cursor (the first start), the source asks for the cursor
//! of the journal's newest entry, saves it at once and follows from there: history is not
//! replayed as new attacks, and entries written while crmonban is down after that are read at
//! the next start even if none arrived before it stopped. Only an empty journal (no cursor
//! to ask for) is followed from now with `--lines=0`.

use std::process::Stdio;
use std::sync::Arc;

use crmonban_core::config::{JournalMatch, JournalTerm};
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::{Delivery, JournalFields, SourceLine, SourcePosition, Stopped, unix_micros};

/// The position key of a journal source.
pub(super) fn source_id(matches: &JournalMatch) -> String {
    format!("journal:{matches}")
}

/// The arguments given to `journalctl`.
pub(super) fn arguments(matches: &JournalMatch, cursor: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = [
        "--follow",
        "--output=json",
        "--no-pager",
        "--quiet",
        "--all",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match cursor {
        Some(cursor) => args.push(format!("--after-cursor={cursor}")),
        None => args.push("--lines=0".to_owned()),
    }
    for term in matches.terms() {
        args.push(match term {
            JournalTerm::Field { name, value } => format!("{name}={value}"),
            JournalTerm::Or => "+".to_owned(),
        });
    }
    args
}

/// A journal entry turned into a line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub line: Vec<u8>,
    pub cursor: String,
    pub time: Option<i64>,
    pub fields: JournalFields,
}

/// Why an entry is not used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EntryError {
    /// Not JSON, or no `__CURSOR`.
    Invalid(String),
    /// A valid entry without a message (e.g. a binary blob too large to show): its cursor still
    /// moves the position.
    NoMessage(String),
}

pub(crate) fn parse_entry(json: &[u8], max_line: usize) -> Result<(Entry, bool), EntryError> {
    let value: Value = serde_json::from_slice(json)
        .map_err(|e| EntryError::Invalid(format!("not a JSON journal entry: {e}")))?;
    let cursor = value
        .get("__CURSOR")
        .and_then(Value::as_str)
        .ok_or_else(|| EntryError::Invalid("journal entry without __CURSOR".to_owned()))?
        .to_owned();
    let message = match value.get("MESSAGE") {
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        // Non-UTF-8 messages come as arrays of byte values.
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| EntryError::NoMessage(cursor.clone()))?,
        _ => return Err(EntryError::NoMessage(cursor)),
    };
    let text = |name: &str| value.get(name).and_then(Value::as_str);
    let pid = text("_PID").and_then(|s| s.parse().ok());
    let identifier = text("SYSLOG_IDENTIFIER")
        .or_else(|| text("_COMM"))
        .map(str::to_owned);
    let time = text("__REALTIME_TIMESTAMP").and_then(|s| s.parse().ok());
    let mut line = Vec::with_capacity(message.len() + 32);
    if let Some(identifier) = &identifier {
        line.extend_from_slice(identifier.as_bytes());
        if let Some(pid) = pid {
            line.extend_from_slice(format!("[{pid}]").as_bytes());
        }
        line.extend_from_slice(b": ");
    }
    let message_start = line.len();
    line.extend_from_slice(&message);
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    let truncated = line.len() > max_line;
    line.truncate(max_line);
    Ok((
        Entry {
            line,
            cursor,
            time,
            fields: JournalFields {
                pid,
                identifier,
                message_start: message_start.min(max_line),
            },
        },
        truncated,
    ))
}

/// Reads one `\n`-terminated line into `buf`, keeping at most `max` bytes of it. Cancel-safe:
/// the bytes read so far stay in `buf` (with `overlong`) and the next call continues the line.
/// `Ok(None)` at the end of input; `Ok(Some(true))` when the line was longer than `max`.
async fn read_bounded_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    overlong: &mut bool,
    max: usize,
) -> std::io::Result<Option<bool>> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(None);
        }
        let (piece, used, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        let room = max.saturating_sub(buf.len());
        if piece.len() > room {
            *overlong = true;
        }
        buf.extend_from_slice(&piece[..piece.len().min(room)]);
        reader.consume(used);
        if done {
            return Ok(Some(std::mem::take(overlong)));
        }
    }
}

/// The arguments that ask for the newest entry of the whole journal (its position, whatever
/// unit wrote it: `--after-cursor` with our match then continues from there).
pub(super) const NEWEST_ENTRY: [&str; 5] = [
    "--lines=1",
    "--output=json",
    "--no-pager",
    "--quiet",
    "--all",
];

/// The cursor of the journal's newest entry; `None` when the journal is empty or unreadable.
async fn newest_cursor(program: &std::path::Path) -> Option<String> {
    let output = Command::new(program)
        .args(NEWEST_ENTRY)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let last = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let entry: Value = serde_json::from_str(last).ok()?;
    entry.get("__CURSOR")?.as_str().map(str::to_owned)
}

/// The task of one journal source.
pub(super) async fn run(matches: JournalMatch, source: String, mut delivery: Delivery) {
    let program = delivery.options.journalctl.clone();
    let resumes = delivery
        .current
        .as_ref()
        .is_some_and(|p| p.cursor.is_some());
    if !resumes && let Some(cursor) = newest_cursor(&program).await {
        tracing::debug!(%source, %cursor, "first start: following the journal from its newest entry");
        delivery.advance(position(&source, cursor));
        delivery.save_latest().await;
    }
    // JSON adds quoting and field names around the message.
    let max_json = delivery.options.max_line.saturating_mul(2).max(64 * 1024);
    'restart: loop {
        if delivery.stopping() {
            break;
        }
        let cursor = delivery.current.as_ref().and_then(|p| p.cursor.clone());
        let args = arguments(&matches, cursor.as_deref());
        let child = Command::new(&program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) => {
                let hint = if e.kind() == std::io::ErrorKind::NotFound {
                    " (not found: install systemd's journalctl, or set source = \"file\" with log_path)"
                } else {
                    ""
                };
                let problem = format!(
                    "cannot run {} for {source}: {e}{hint}; retrying",
                    program.display()
                );
                if delivery.retry_later(problem).await.is_err() {
                    break;
                }
                continue;
            }
        };
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            break;
        };
        // Keep the last words of journalctl for the report when it exits.
        let stderr_task = tokio::spawn(async move {
            let mut reader = BufReader::new(stderr);
            let (mut buf, mut overlong, mut last) = (Vec::new(), false, String::new());
            while let Ok(Some(_)) =
                read_bounded_line(&mut reader, &mut buf, &mut overlong, 4096).await
            {
                last = String::from_utf8_lossy(&buf).into_owned();
                tracing::debug!("journalctl: {last}");
                buf.clear();
            }
            last
        });
        let mut reader = BufReader::with_capacity(64 * 1024, stdout);
        let (mut buf, mut overlong) = (Vec::new(), false);
        let mut got_entry = false;
        loop {
            let read = tokio::select! {
                biased;
                _ = delivery.stop.changed() => break 'restart,
                read = read_bounded_line(&mut reader, &mut buf, &mut overlong, max_json) => read,
                _ = delivery.save_tick.tick() => {
                    delivery.save_consumed().await;
                    continue;
                }
            };
            let json_truncated = match read {
                Ok(Some(truncated)) => truncated,
                Ok(None) => break,
                Err(e) => {
                    delivery
                        .counters
                        .fail(format!("reading journalctl for {source}: {e}"));
                    break;
                }
            };
            let json = std::mem::take(&mut buf);
            if json_truncated {
                delivery.counters.fail(format!(
                    "a journal entry for {source} longer than {max_json} bytes was skipped"
                ));
                continue;
            }
            if json.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if !got_entry {
                got_entry = true;
                delivery.counters.recovered();
            }
            match parse_entry(&json, delivery.options.max_line) {
                Ok((entry, truncated)) => {
                    let line = SourceLine {
                        service: Arc::clone(&delivery.service),
                        line: entry.line,
                        truncated,
                        position: position(&source, entry.cursor),
                        received_at: unix_micros(),
                        time: entry.time,
                        fields: Some(entry.fields),
                        before: None,
                        replayed: false,
                        seq: 0,
                    };
                    if let Err(Stopped) = delivery.send(line).await {
                        break 'restart;
                    }
                }
                Err(EntryError::NoMessage(cursor)) => delivery.advance(position(&source, cursor)),
                Err(EntryError::Invalid(e)) => delivery.counters.fail(format!("{source}: {e}")),
            }
        }
        // journalctl ended: say why, then start it again after a pause.
        let status = child.wait().await;
        let last_words = stderr_task.await.unwrap_or_default();
        let status = match status {
            Ok(status) => status.to_string(),
            Err(e) => e.to_string(),
        };
        let detail = if last_words.is_empty() {
            String::new()
        } else {
            format!(": {last_words}")
        };
        let problem = format!(
            "{} for {source} ended ({status}){detail}; restarting it",
            program.display()
        );
        if delivery.retry_later(problem).await.is_err() {
            break;
        }
    }
    delivery.save_latest().await;
}

fn position(source: &str, cursor: String) -> SourcePosition {
    SourcePosition {
        source: source.to_owned(),
        cursor: Some(cursor),
        ..SourcePosition::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_become_syslog_shaped_lines() {
        let json = br#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1700000000123456","_PID":"812","SYSLOG_IDENTIFIER":"sshd","MESSAGE":"Failed password for root from 192.0.2.7 port 22 ssh2"}"#;
        let (entry, truncated) = parse_entry(json, 1 << 20).unwrap();
        assert!(!truncated);
        assert_eq!(
            entry.line,
            b"sshd[812]: Failed password for root from 192.0.2.7 port 22 ssh2"
        );
        assert_eq!(entry.cursor, "s=1;i=2");
        assert_eq!(entry.time, Some(1_700_000_000_123_456));
        assert_eq!(entry.fields.pid, Some(812));
        assert_eq!(entry.fields.message_start, 11);
    }

    #[test]
    fn byte_array_messages_and_missing_messages() {
        let json = br#"{"__CURSOR":"c","MESSAGE":[104,105,255]}"#;
        let (entry, _) = parse_entry(json, 1 << 20).unwrap();
        assert_eq!(entry.line, [104, 105, 255]);
        let json = br#"{"__CURSOR":"c2","MESSAGE":null}"#;
        assert_eq!(
            parse_entry(json, 1 << 20),
            Err(EntryError::NoMessage("c2".into()))
        );
        assert!(matches!(
            parse_entry(b"{}", 10),
            Err(EntryError::Invalid(_))
        ));
    }

    #[test]
    fn arguments_resume_after_the_cursor() {
        let m =
            JournalMatch::parse("_SYSTEMD_UNIT=ssh.service + _SYSTEMD_UNIT=sshd.service").unwrap();
        let args = arguments(&m, Some("abc"));
        assert!(args.contains(&"--after-cursor=abc".to_owned()));
        assert!(args.ends_with(&[
            "_SYSTEMD_UNIT=ssh.service".to_owned(),
            "+".to_owned(),
            "_SYSTEMD_UNIT=sshd.service".to_owned()
        ]));
        assert!(arguments(&m, None).contains(&"--lines=0".to_owned()));
    }
}
