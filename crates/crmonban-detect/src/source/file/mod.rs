//! Tailing one log file with its position: resume after a restart, follow rotation by
//! rename+create and by copytruncate, wait for a file that does not exist yet.
//!
//! linemux's line stream does not expose byte offsets or inodes, which positions need, so the
//! reading is our own (positional reads on a file descriptor we keep across a rename); linemux
//! supplies the inotify wake-ups ([`linemux::MuxedEvents`], which also follows a file that is
//! created later). A periodic re-check covers whatever notifications miss.
//!
//! The rules, in the order they are checked each time the file has been read to its end:
//! - the path names another file (renamed away, a new one created): keep reading the old
//!   descriptor until the new file has data — the writer may keep writing to the old file until
//!   it reopens — then read the old one to its end and the new one from its start. When the log
//!   was rotated several times while we were behind, the files rotated in between come first,
//!   each from its start, in the order they were written (by last change, then logrotate's
//!   numbering): no rotated file is passed over as long as it is not compressed;
//! - the same file got shorter than what we read, or its first line changed: it was truncated
//!   (copytruncate); read the rest of our lines from the copy when one is found next to it
//!   (`NAME.1`, `NAME-20240101`, ... with the same first line), then the file from its start;
//! - at start, a saved position whose inode and first line still match resumes at its offset;
//!   otherwise the rotated file is looked for the same way (by inode, then by first line), its
//!   remainder read, then the current file from its start. A file never seen before is read from
//!   its end; a file that appears after the start is read from its start.
//! - what could not be read (the file read before a stop is gone, a truncation without a copy)
//!   is logged at warn and counted ([`SourceStats::skipped`](super::SourceStats::skipped)); the
//!   source never skips a backlog on its own, however far behind it is.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

mod rotated;
mod task;
pub(super) use task::run;

use rotated::{find_rotated, rotated_siblings};

use super::SourcePosition;
use crate::fnv1a;

/// Bytes hashed to recognise a file by its first line.
const FIRST_LINE_BYTES: usize = 1024;
/// Read size.
const CHUNK: usize = 64 * 1024;
/// Bytes read per round before the lines are handed over.
const ROUND_BYTES: u64 = 256 * 1024;

/// A complete line read from a file, with the position after it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RawLine {
    pub bytes: Vec<u8>,
    pub truncated: bool,
    pub position: SourcePosition,
}

/// The result of one reading round.
#[derive(Debug, Default)]
pub(super) struct Round {
    pub lines: Vec<RawLine>,
    /// The position after the round (also covers skipped bytes and file switches).
    pub position: Option<SourcePosition>,
    /// More can be read right away.
    pub more: bool,
    /// Why nothing could be read, if so.
    pub error: Option<String>,
    /// Reading works (the error, if any was reported, is over).
    pub reading: bool,
    /// The file does not exist (yet).
    pub missing: bool,
    /// Parts of the log that could not be read (the file read before was gone, truncated
    /// without a copy), described.
    pub skipped: Vec<String>,
}

/// One open file being read.
#[derive(Debug)]
struct Reader {
    file: File,
    inode: u64,
    /// Bytes up to the end of the last complete line (or skipped fragment).
    offset: u64,
    /// Bytes read so far (`offset` plus the partial line).
    read_pos: u64,
    partial: Vec<u8>,
    /// The partial line exceeded the limit: its rest is dropped until the newline.
    overlong: bool,
    /// The bytes before the first newline are a fragment not to deliver (start mid-line).
    discard_fragment: bool,
    first_line_hash: Option<u64>,
}

impl Reader {
    fn open(path: &Path, offset: u64) -> io::Result<Reader> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let first_line_hash = first_line_hash(&file)?;
        Ok(Reader {
            file,
            inode: meta.ino(),
            offset,
            read_pos: offset,
            partial: Vec::new(),
            overlong: false,
            discard_fragment: false,
            first_line_hash,
        })
    }

    /// Opens `path` at its end, backing up to the start of an incomplete last line.
    fn open_at_end(path: &Path) -> io::Result<Reader> {
        let mut reader = Reader::open(path, 0)?;
        let size = reader.file.metadata()?.len();
        let tail_len = size.min(CHUNK as u64);
        let mut tail = vec![0; tail_len as usize];
        reader.file.read_exact_at(&mut tail, size - tail_len)?;
        let start = match memchr::memrchr(b'\n', &tail) {
            Some(i) => size - tail_len + i as u64 + 1,
            None if size == tail_len => 0,
            None => {
                reader.discard_fragment = true;
                size
            }
        };
        reader.offset = start;
        reader.read_pos = start;
        Ok(reader)
    }

    fn position(&self, source: &str) -> SourcePosition {
        SourcePosition {
            source: source.to_owned(),
            inode: Some(self.inode),
            offset: Some(self.offset),
            first_line_hash: self.first_line_hash,
            cursor: None,
        }
    }

    /// Reads up to `budget` bytes, until the end of the file or until it turns out to have
    /// been truncated and rewritten.
    fn read(
        &mut self,
        source: &str,
        max_line: usize,
        budget: &mut u64,
        out: &mut Vec<RawLine>,
    ) -> io::Result<ReadEnd> {
        let mut chunk = vec![0; CHUNK];
        loop {
            if *budget == 0 {
                return Ok(ReadEnd::Budget);
            }
            let n = match self.file.read_at(&mut chunk, self.read_pos) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok(ReadEnd::Eof);
            }
            // Truncated and written again past our offset since the last look: these bytes
            // are the middle of some new line, not the continuation of ours.
            if self.first_line_hash.is_some()
                && first_line_hash(&self.file)? != self.first_line_hash
            {
                return Ok(ReadEnd::Rewritten);
            }
            *budget = budget.saturating_sub(n as u64);
            self.consume(&chunk[..n], source, max_line, out);
        }
    }

    fn consume(&mut self, chunk: &[u8], source: &str, max_line: usize, out: &mut Vec<RawLine>) {
        let base = self.read_pos;
        let mut start = 0;
        while let Some(i) = memchr::memchr(b'\n', &chunk[start..]) {
            let end = start + i;
            self.append(&chunk[start..end], max_line);
            self.offset = base + end as u64 + 1;
            start = end + 1;
            if std::mem::take(&mut self.discard_fragment) {
                self.partial.clear();
                self.overlong = false;
                continue;
            }
            self.emit(source, out);
        }
        self.append(&chunk[start..], max_line);
        self.read_pos = base + chunk.len() as u64;
    }

    fn append(&mut self, bytes: &[u8], max_line: usize) {
        let room = max_line.saturating_sub(self.partial.len());
        if bytes.len() > room {
            self.overlong = true;
        }
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn emit(&mut self, source: &str, out: &mut Vec<RawLine>) {
        let mut bytes = std::mem::take(&mut self.partial);
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        if self.first_line_hash.is_none() {
            // The file was empty when opened; its first line is complete now.
            self.first_line_hash = first_line_hash(&self.file).ok().flatten();
        }
        out.push(RawLine {
            bytes,
            truncated: std::mem::take(&mut self.overlong),
            position: self.position(source),
        });
    }

    /// A file that will not be written any more: its unterminated last line is a line too.
    fn finish(&mut self, source: &str, out: &mut Vec<RawLine>) {
        if !self.partial.is_empty() && !self.discard_fragment {
            self.offset = self.read_pos;
            self.emit(source, out);
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ReadEnd {
    Eof,
    Budget,
    Rewritten,
}

/// The tail state of one path.
#[derive(Debug)]
pub(super) struct Tail {
    path: PathBuf,
    source: String,
    max_line: usize,
    cur: Option<Reader>,
    /// Before the first successful open: the saved position to resume from, if any.
    start: Start,
    /// Inodes of the files read to their end lately, never read again.
    finished: VecDeque<u64>,
    /// Parts of the log that could not be read, to report with the next round.
    skipped: Vec<String>,
}

/// Finished files remembered.
const FINISHED_KEPT: usize = 32;

#[derive(Debug)]
enum Start {
    /// First open still to do, with the saved position (if any).
    Pending(Option<SourcePosition>),
    /// The file did not exist at start: read it from its beginning when it appears.
    FromBeginning,
    Done,
}

impl Tail {
    pub(super) fn new(
        path: PathBuf,
        source: String,
        max_line: usize,
        saved: Option<SourcePosition>,
    ) -> Tail {
        Tail {
            path,
            source,
            max_line,
            cur: None,
            start: Start::Pending(saved),
            finished: VecDeque::new(),
            skipped: Vec::new(),
        }
    }

    /// Reads what is there, up to a round's worth.
    pub(super) fn round(&mut self) -> Round {
        let mut round = Round::default();
        if self.cur.is_none() {
            match self.open_first() {
                Ok(Some(reader)) => self.cur = Some(reader),
                Ok(None) => {
                    round.missing = true;
                    return round;
                }
                Err(e) => {
                    round.error = Some(format!("cannot read {}: {e}", self.path.display()));
                    return round;
                }
            }
        }
        round.reading = true;
        let mut budget = ROUND_BYTES;
        while let Some(cur) = self.cur.as_mut() {
            let checked = match cur.read(&self.source, self.max_line, &mut budget, &mut round.lines)
            {
                Ok(ReadEnd::Eof) => self.check_rotation(&mut round.lines),
                Ok(ReadEnd::Rewritten) => self.check_truncation(),
                Ok(ReadEnd::Budget) => {
                    round.more = true;
                    break;
                }
                Err(e) => {
                    round.error = Some(format!("cannot read {}: {e}", self.path.display()));
                    round.reading = false;
                    break;
                }
            };
            match checked {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    round.error = Some(format!("cannot read {}: {e}", self.path.display()));
                    round.reading = false;
                    break;
                }
            }
        }
        round.position = self.cur.as_ref().map(|r| r.position(&self.source));
        round.skipped = std::mem::take(&mut self.skipped);
        round
    }

    /// Opens the file the first time (or again after an error); `None` while it is missing.
    fn open_first(&mut self) -> io::Result<Option<Reader>> {
        let start = std::mem::replace(&mut self.start, Start::Done);
        let result = match &start {
            Start::Pending(saved) => self.resume(saved.as_ref()),
            Start::FromBeginning | Start::Done => self.open_path(0),
        };
        match result {
            Ok(Some(reader)) => Ok(Some(reader)),
            other => {
                // Nothing opened yet: a file appearing later is new and read from its start,
                // unless we resume an earlier position (kept for the next try).
                self.start = match start {
                    Start::Pending(Some(saved)) => Start::Pending(Some(saved)),
                    _ => Start::FromBeginning,
                };
                other
            }
        }
    }

    fn open_path(&self, offset: u64) -> io::Result<Option<Reader>> {
        match Reader::open(&self.path, offset) {
            Ok(reader) => Ok(Some(reader)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn resume(&mut self, saved: Option<&SourcePosition>) -> io::Result<Option<Reader>> {
        let Some(saved) = saved else {
            return match Reader::open_at_end(&self.path) {
                Ok(reader) => Ok(Some(reader)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            };
        };
        let offset = saved.offset.unwrap_or(0);
        let current = match Reader::open(&self.path, offset) {
            Ok(reader) => Some(reader),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if let Some(reader) = &current
            && Some(reader.inode) == saved.inode
            && reader.file.metadata()?.len() >= offset
            && hash_matches(saved.first_line_hash, reader.first_line_hash)
        {
            return Ok(current);
        }
        // Rotated (or truncated) while we were not running: finish the old file first.
        let exclude = current.as_ref().map(|r| r.inode);
        let by_inode = (exclude != saved.inode)
            .then(|| find_rotated(&self.path, saved, exclude))
            .flatten();
        // Truncated in place (copytruncate): the copy has another inode, the same first line.
        let by_first_line = || {
            let unknown_inode = SourcePosition {
                inode: None,
                ..saved.clone()
            };
            find_rotated(&self.path, &unknown_inode, exclude)
        };
        if let Some(mut old) = by_inode.or_else(by_first_line) {
            tracing::info!(
                path = %self.path.display(),
                "rotated while stopped: reading the rest of the rotated file, then the new one"
            );
            old.offset = offset;
            old.read_pos = offset;
            return Ok(Some(old));
        }
        match current {
            Some(mut reader) => {
                self.skipped.push(format!(
                    "{} was replaced while crmonban was stopped and the file read before is gone (compressed or deleted): lines written to it after offset {offset} were not read; reading the new file from its start",
                    self.path.display()
                ));
                reader.offset = 0;
                reader.read_pos = 0;
                Ok(Some(reader))
            }
            None => Ok(None),
        }
    }

    /// Called at the end of the current file. `Ok(true)` when reading should go on (another
    /// file or more data), `Ok(false)` when there is nothing more for now.
    fn check_rotation(&mut self, out: &mut Vec<RawLine>) -> io::Result<bool> {
        let Some(cur) = self.cur.as_mut() else {
            return Ok(false);
        };
        let at_path = match std::fs::metadata(&self.path) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let Some(at_path) = at_path else {
            // Renamed away and not yet replaced: the writer may still write to it.
            return Ok(false);
        };
        if at_path.ino() == cur.inode {
            return self.check_truncation();
        }
        if !at_path.is_file() || at_path.len() == 0 {
            // A new file is there but not written yet: the writer may still use the old one.
            return Ok(false);
        }
        // The new file has data: the writer has moved. Read the old one to its very end.
        let mut budget = u64::MAX;
        if cur.read(&self.source, self.max_line, &mut budget, out)? == ReadEnd::Eof {
            cur.finish(&self.source, out);
        }
        let modified = cur.file.metadata()?.modified().ok();
        if self.finished.len() == FINISHED_KEPT {
            self.finished.pop_front();
        }
        self.finished.push_back(cur.inode);
        // Rotated more than once while we were behind: the file rotated right after this one
        // comes first, then the next, up to the file at the path.
        if let Some(modified) = modified
            && let Some((next_path, next)) = self.successor(modified, at_path.ino())
        {
            tracing::info!(path = %self.path.display(), next = %next_path.display(), "rotated several times while behind: reading the next rotated file");
            self.cur = Some(next);
            return Ok(true);
        }
        match self.open_path(0)? {
            Some(next) => {
                tracing::info!(path = %self.path.display(), "rotated: reading the new file from its start");
                self.cur = Some(next);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The rotated file written right after the one just finished (last changed at
    /// `finished_at`), when it is not the file at the path (inode `current`): the rotated,
    /// uncompressed files next to the path not read yet and changed since, the earliest first
    /// (on a tie, the higher number of `NAME.N`, which logrotate gives older files).
    fn successor(&self, finished_at: SystemTime, current: u64) -> Option<(PathBuf, Reader)> {
        let mut candidates: Vec<(SystemTime, std::cmp::Reverse<u64>, PathBuf, u64)> =
            rotated_siblings(&self.path)
                .into_iter()
                .filter(|(_, meta)| !self.finished.contains(&meta.ino()))
                .filter_map(|(path, meta)| {
                    let modified = meta.modified().ok()?;
                    let number = path
                        .extension()
                        .and_then(|e| e.to_str())
                        .and_then(|e| e.parse::<u64>().ok())
                        .unwrap_or(0);
                    (modified >= finished_at).then_some((
                        modified,
                        std::cmp::Reverse(number),
                        path,
                        meta.ino(),
                    ))
                })
                .collect();
        candidates.sort();
        let (_, _, path, inode) = candidates.into_iter().next()?;
        if inode == current {
            return None;
        }
        let reader = Reader::open(&path, 0).ok()?;
        (reader.inode == inode).then_some((path, reader))
    }

    fn check_truncation(&mut self) -> io::Result<bool> {
        let Some(cur) = self.cur.as_mut() else {
            return Ok(false);
        };
        let size = cur.file.metadata()?.len();
        let now_hash = first_line_hash(&cur.file)?;
        let shrunk = size < cur.read_pos;
        let rewritten = cur.first_line_hash.is_some() && now_hash != cur.first_line_hash;
        if !shrunk && !rewritten {
            if cur.first_line_hash.is_none() {
                cur.first_line_hash = now_hash;
            }
            return Ok(false);
        }
        let old = cur.position(&self.source);
        let copy = find_rotated(
            &self.path,
            &SourcePosition {
                inode: None,
                ..old.clone()
            },
            Some(cur.inode),
        );
        match copy {
            Some(mut copy) => {
                tracing::info!(path = %self.path.display(), "truncated (copytruncate): reading the rest of the copy first");
                copy.offset = cur.offset;
                copy.read_pos = cur.offset;
                self.cur = Some(copy);
            }
            None => {
                self.skipped.push(format!(
                    "{} was truncated with no copy next to it: lines written after offset {} and before the truncation were not read; reading it from its start",
                    self.path.display(),
                    cur.offset
                ));
                cur.offset = 0;
                cur.read_pos = 0;
                cur.partial.clear();
                cur.overlong = false;
                cur.discard_fragment = false;
                cur.first_line_hash = now_hash;
            }
        }
        Ok(true)
    }
}

fn hash_matches(saved: Option<u64>, now: Option<u64>) -> bool {
    saved.is_none() || saved == now
}

/// FNV-1a of the first line (at most [`FIRST_LINE_BYTES`]); `None` while the first line is
/// shorter than that and not complete. A hash of our own: std's hasher may change between
/// releases, which would make every saved position look like another file.
fn first_line_hash(file: &File) -> io::Result<Option<u64>> {
    let mut buf = [0u8; FIRST_LINE_BYTES];
    let mut len = 0;
    while len < buf.len() {
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let line = match memchr::memchr(b'\n', &buf[..len]) {
        Some(i) => &buf[..=i],
        None if len == FIRST_LINE_BYTES => &buf[..],
        None => return Ok(None),
    };
    Ok(Some(fnv1a(line)))
}

#[cfg(test)]
mod tests;
