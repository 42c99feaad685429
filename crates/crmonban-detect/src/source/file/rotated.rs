//! Finding the files a log was rotated to: `NAME.1`, `NAME-20240101` and the like next to it,
//! by inode or by first line, uncompressed only.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{Reader, hash_matches};
use crate::source::SourcePosition;

/// Looks next to `path` for the rotated file that `saved` describes: the same inode when one is
/// given, else the same first line and at least `offset` bytes. Compressed files are skipped.
pub(super) fn find_rotated(
    path: &Path,
    saved: &SourcePosition,
    exclude: Option<u64>,
) -> Option<Reader> {
    let offset = saved.offset.unwrap_or(0);
    let mut candidates: Vec<(PathBuf, Metadata)> = rotated_siblings(path)
        .into_iter()
        .filter(|(_, meta)| Some(meta.ino()) != exclude && meta.len() >= offset)
        .collect();
    // The most recently changed first: `NAME.1` rather than an old `NAME.2` with the same start.
    candidates.sort_by_key(|(_, meta)| std::cmp::Reverse(meta.mtime()));
    candidates.into_iter().find_map(|(candidate, meta)| {
        if saved.inode.is_some_and(|inode| inode != meta.ino()) {
            return None;
        }
        let reader = Reader::open(&candidate, 0).ok()?;
        (saved.first_line_hash.is_some() || saved.inode.is_some())
            .then_some(())
            .filter(|()| hash_matches(saved.first_line_hash, reader.first_line_hash))
            .map(|()| reader)
    })
}

/// The regular files `NAME.*` and `NAME-*` next to `path`, except compressed ones, which are
/// not read.
pub(super) fn rotated_siblings(path: &Path) -> Vec<(PathBuf, Metadata)> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let file_name = entry.file_name();
            let file_name = file_name.to_str()?;
            let rest = file_name.strip_prefix(name)?;
            let rotated = rest.starts_with('.') || rest.starts_with('-');
            let compressed = [".gz", ".xz", ".bz2", ".zst", ".lz4"]
                .iter()
                .any(|ext| rest.ends_with(ext));
            if !rotated || compressed {
                return None;
            }
            let meta = entry.metadata().ok()?;
            meta.is_file().then(|| (entry.path(), meta))
        })
        .collect()
}
