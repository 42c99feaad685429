//! [`FileSink`]: appends each line and a line feed to a file, one write per batch, and follows
//! log rotation.
//!
//! The file is created with mode 0640 (whatever the umask) when absent; its directory must
//! exist. Before each write (one `stat` per batch, not per event) the path's device and
//! inode are compared with the open file's: when the file was renamed away or replaced (logrotate with or
//! without `create`), the path is opened again, or created. A failed write (disk full, I/O
//! error) is retried: the file is closed and opened again on the next attempt, and when the
//! failed write left half a line at its end, the next write starts with a line feed so that
//! the following event begins on a line of its own.
//!
//! Writes run on tokio's blocking pool: a file on a slow or stuck disk delays only this
//! target's worker. The file is opened with `O_NONBLOCK`, which changes nothing for a regular
//! file and keeps a named pipe without a reader from blocking the open.

use std::ffi::CString;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use super::{BuildError, Failure, SendError};

/// Lines per write.
pub const MAX_BATCH: usize = 256;

/// The mode of a file the sink creates: the owner writes, the group (the SIEM shipper's)
/// reads.
pub const FILE_MODE: u32 = 0o640;

/// Appends lines to one file (see the module documentation).
#[derive(Debug)]
pub struct FileSink {
    path: Arc<Path>,
    open: Option<OpenFile>,
}

#[derive(Debug)]
struct OpenFile {
    file: File,
    dev: u64,
    ino: u64,
    /// The file ends with part of a line (a write failed midway, or another writer's): the
    /// next write starts with a line feed.
    needs_newline: bool,
}

impl FileSink {
    /// A sink appending to `path`. Checks that `path` is absolute, that its directory exists,
    /// and that the file can be written (or created there); opens nothing.
    pub fn build(path: &Path) -> Result<FileSink, BuildError> {
        let fail = |problem: String| BuildError::new(format!("path {}: {problem}", path.display()));
        if !path.is_absolute() {
            return Err(fail("must be an absolute path".to_owned()));
        }
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .ok_or_else(|| fail("has no directory".to_owned()))?;
        match std::fs::metadata(parent) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(fail(format!("{} is not a directory", parent.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(fail(format!(
                    "the directory {} does not exist (create it, owned by the user crmonban \
                     runs as)",
                    parent.display()
                )));
            }
            Err(e) => return Err(fail(format!("{}: {e}", parent.display()))),
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => return Err(fail("is a directory".to_owned())),
            Ok(_) => writable(path, libc::W_OK).map_err(|e| fail(format!("cannot write: {e}")))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                writable(parent, libc::W_OK | libc::X_OK).map_err(|e| {
                    fail(format!("cannot create files in {}: {e}", parent.display()))
                })?
            }
            Err(e) => return Err(fail(e.to_string())),
        }
        Ok(FileSink {
            path: Arc::from(path),
            open: None,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `batch`, one line each, in one write (repeated while the kernel takes part of
    /// it). After a failure, `delivered` counts the lines written entirely.
    pub async fn send(&mut self, batch: &[Arc<str>]) -> Result<(), SendError> {
        let mut data = Vec::with_capacity(batch.iter().map(|l| l.len() + 1).sum());
        let mut ends = Vec::with_capacity(batch.len());
        for line in batch {
            data.extend_from_slice(line.as_bytes());
            data.push(b'\n');
            ends.push(data.len());
        }
        let path = Arc::clone(&self.path);
        let open = self.open.take();
        let task = tokio::task::spawn_blocking(move || append(&path, open, &data, &ends));
        match task.await {
            Ok((open, result)) => {
                self.open = open;
                result
            }
            Err(e) => Err(SendError::retry(format!("file write task failed: {e}"))),
        }
    }
}

/// Writes `data` (lines ending at `ends`) to the open file, opening or reopening it first as
/// needed; gives the file back unless it failed.
fn append(
    path: &Path,
    open: Option<OpenFile>,
    data: &[u8],
    ends: &[usize],
) -> (Option<OpenFile>, Result<(), SendError>) {
    let open = match open {
        Some(open) if is_current(path, &open) => Ok(open),
        _ => open_file(path),
    };
    let mut open = match open {
        Ok(open) => open,
        Err(e) => {
            let message = format!("cannot open {}: {e}", path.display());
            return (None, Err(SendError::retry(message)));
        }
    };
    let mut written = 0;
    let mut prefix: &[u8] = if open.needs_newline { b"\n" } else { b"" };
    while !prefix.is_empty() || written < data.len() {
        let chunk = if prefix.is_empty() {
            &data[written..]
        } else {
            prefix
        };
        match open.file.write(chunk) {
            Ok(0) => {
                let e = io::Error::from(io::ErrorKind::WriteZero);
                return (None, Err(write_failed(path, &e, written, ends)));
            }
            Ok(n) if prefix.is_empty() => written += n,
            Ok(_) => prefix = b"",
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The file is dropped: the next attempt opens the path again, and sees from the
            // file's last byte whether a line was cut.
            Err(e) => return (None, Err(write_failed(path, &e, written, ends))),
        }
    }
    open.needs_newline = false;
    (Some(open), Ok(()))
}

fn write_failed(path: &Path, e: &io::Error, written: usize, ends: &[usize]) -> SendError {
    let delivered = ends.iter().take_while(|end| **end <= written).count();
    SendError::new(
        delivered,
        Failure::Retry { after: None },
        format!("cannot write {}: {e}", path.display()),
    )
}

/// Whether `open` is still the file at `path` (one `stat`, before every batch).
fn is_current(path: &Path, open: &OpenFile) -> bool {
    match std::fs::metadata(path) {
        Ok(meta) => meta.dev() == open.dev && meta.ino() == open.ino,
        Err(_) => false,
    }
}

/// Opens `path` for appending, creating it with [`FILE_MODE`] when absent.
fn open_file(path: &Path) -> io::Result<OpenFile> {
    let append = || {
        OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
    };
    let file = match append() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => match OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(FILE_MODE)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(file) => {
                // The umask may have taken bits away.
                file.set_permissions(Permissions::from_mode(FILE_MODE))?;
                file
            }
            // Someone else created it meanwhile.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => append()?,
            Err(e) => return Err(e),
        },
        other => other?,
    };
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::from(io::ErrorKind::IsADirectory));
    }
    let needs_newline = meta.is_file() && meta.len() > 0 && !ends_with_newline(path, meta.len());
    Ok(OpenFile {
        file,
        dev: meta.dev(),
        ino: meta.ino(),
        needs_newline,
    })
}

/// Whether the last byte of the file at `path` (of length `len`) is a line feed; true when it
/// cannot be read (no line feed is added then).
fn ends_with_newline(path: &Path, len: u64) -> bool {
    let mut last = [0u8; 1];
    match File::open(path).and_then(|f| f.read_exact_at(&mut last, len - 1)) {
        Ok(()) => last[0] == b'\n',
        Err(_) => true,
    }
}

/// access(2): whether the daemon's (real) user may write `path` (`mode` as access takes it).
/// Also reports a read-only file system (`EROFS`), which permissions alone would not show.
fn writable(path: &Path, mode: libc::c_int) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the path holds a NUL byte"))?;
    // SAFETY: c_path is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::access(c_path.as_ptr(), mode) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
