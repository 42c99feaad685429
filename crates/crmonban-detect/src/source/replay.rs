//! Replay after a restart: where reading starts again so that nothing a crash interrupted is
//! lost, and which of the lines read again are replays.
//!
//! A source keeps two positions per log (both through the [`PositionStore`](super::PositionStore)):
//!
//! - the **read-through** position (`save`/`load`): after the last line the consumer received,
//!   saved by the source as it goes (see the module documentation of [`source`](super));
//! - the **resume** point (`save_resume`/`load_resume`): saved by the consumer, the detection
//!   pipeline, with a [`ResumeTracker`]. It lies before every line that may still matter: the
//!   lines of every failure window still open (the detector's windows are in memory and a crash
//!   empties them) and the lines of every ban that was decided but not yet recorded.
//!
//! A restart reads from the resume point when there is one, and marks each line up to the
//! read-through position as [`SourceLine::replayed`](super::SourceLine::replayed) ([`Replay`]):
//! the detector counts it again (its window is rebuilt exactly) but it is not reported again,
//! and a ban it decides is made only if the previous run did not make it. A crash (`kill -9`) at
//! any moment therefore loses neither a ban nor a failure still inside its window.

use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::{SourcePosition, lock};

/// Extra log time kept before the oldest failure that can still count, for lines written a
/// little out of order (several processes writing one log, clocks a little apart).
pub const REPLAY_SLACK_SECS: i64 = 60;

/// Checkpoints a [`ResumeTracker`] keeps at most per window length.
const CHECKPOINTS_PER_WINDOW: i64 = 256;

/// Tells replayed lines from new ones, given where the previous run read through.
#[derive(Clone, Debug)]
pub struct Replay {
    read_through: SourcePosition,
    /// A line of the read-through file has been seen: a line of another file comes after it.
    seen_file: bool,
}

impl Replay {
    /// Lines up to `read_through` (inclusive) are replays.
    pub fn new(read_through: SourcePosition) -> Replay {
        Replay {
            read_through,
            seen_file: false,
        }
    }

    /// Whether the line that ends at `position` is a replay. Lines are given in reading order;
    /// once this answers `false` the replay is over ([`Replay::over`]).
    pub fn is_replay(&mut self, position: &SourcePosition) -> bool {
        let hw = &self.read_through;
        if let (Some(cursor), Some(hw_cursor)) = (&position.cursor, &hw.cursor) {
            return matches!(
                cursor_order(cursor, hw_cursor),
                Some(Ordering::Less | Ordering::Equal)
            );
        }
        if same_file(position, hw) {
            self.seen_file = true;
            return match (position.offset, hw.offset) {
                (Some(offset), Some(hw_offset)) => offset <= hw_offset,
                _ => false,
            };
        }
        // Another file: an older one (rotated) before the read-through file was reached;
        // after it, or a file never seen (the read-through file is gone), new lines.
        !self.seen_file && is_older_file(position, hw)
    }

    /// Whether `position` is at or after the read-through position, which ends the replay.
    pub fn over(&self, position: &SourcePosition) -> bool {
        let hw = &self.read_through;
        if let (Some(cursor), Some(hw_cursor)) = (&position.cursor, &hw.cursor) {
            return !matches!(cursor_order(cursor, hw_cursor), Some(Ordering::Less));
        }
        if same_file(position, hw) {
            return match (position.offset, hw.offset) {
                (Some(offset), Some(hw_offset)) => offset >= hw_offset,
                _ => true,
            };
        }
        self.seen_file || !is_older_file(position, hw)
    }
}

/// The same file content: the same first line when both are known (a copy made by
/// copytruncate has another inode and the same first line; a file truncated in place keeps its
/// inode and gets another first line), else the same inode.
fn same_file(a: &SourcePosition, b: &SourcePosition) -> bool {
    match (a.first_line_hash, b.first_line_hash) {
        (Some(x), Some(y)) => x == y,
        _ => a.inode.is_some() && a.inode == b.inode,
    }
}

/// Replays start in an older file than the read-through one only when the resume point is in
/// a file rotated away since; the file switch then goes to the read-through file. Any file
/// other than the read-through one, read before that file was reached, is such an older file.
fn is_older_file(position: &SourcePosition, hw: &SourcePosition) -> bool {
    position.inode.is_some() && !same_file(position, hw)
}

/// Orders two journald cursors (`s=<seqnum id>;i=<seqnum>;b=...;m=...;t=<realtime>;x=...`, all
/// hexadecimal): by sequence number within one sequence-number id (one journal file set),
/// else by wall-clock time. `None` when they cannot be compared.
pub fn cursor_order(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (Cursor::parse(a)?, Cursor::parse(b)?);
    if a.seqnum_id == b.seqnum_id
        && let (Some(x), Some(y)) = (a.seqnum, b.seqnum)
    {
        return Some(x.cmp(&y));
    }
    Some(a.realtime?.cmp(&b.realtime?))
}

struct Cursor<'a> {
    seqnum_id: Option<&'a str>,
    seqnum: Option<u64>,
    realtime: Option<u64>,
}

impl<'a> Cursor<'a> {
    fn parse(text: &'a str) -> Option<Cursor<'a>> {
        let mut cursor = Cursor {
            seqnum_id: None,
            seqnum: None,
            realtime: None,
        };
        for field in text.split(';') {
            let (key, value) = field.split_once('=')?;
            match key {
                "s" => cursor.seqnum_id = Some(value),
                "i" => cursor.seqnum = u64::from_str_radix(value, 16).ok(),
                "t" => cursor.realtime = u64::from_str_radix(value, 16).ok(),
                _ => {}
            }
        }
        (cursor.seqnum.is_some() || cursor.realtime.is_some()).then_some(cursor)
    }
}

/// The consumer's side: follows one source's lines and failures and tells where a restart must
/// resume. Failures are remembered as sparse checkpoints (log time, position before the line),
/// at most about `CHECKPOINTS_PER_WINDOW` (256) per window length, so memory does not grow with the
/// number of lines or addresses.
#[derive(Debug)]
pub struct ResumeTracker {
    window: i64,
    step: i64,
    /// The position after the last line (or position) received.
    current: Option<SourcePosition>,
    /// The position before the last line received.
    before_last: Option<SourcePosition>,
    checkpoints: VecDeque<(i64, SourcePosition)>,
    newest: Option<i64>,
    pending: Pending,
    last_saved: Option<Option<SourcePosition>>,
}

/// The log times of the failure windows of bans decided and not yet recorded.
pub type Pending = Arc<Mutex<BTreeMap<i64, usize>>>;

/// A decided ban not yet recorded: keeps the lines of its window in the resume range until it
/// is dropped.
#[derive(Debug)]
pub struct PendingBan {
    pending: Pending,
    first_seen: i64,
}

impl Drop for PendingBan {
    fn drop(&mut self) {
        let mut pending = lock(&self.pending);
        if let Some(count) = pending.get_mut(&self.first_seen) {
            *count -= 1;
            if *count == 0 {
                pending.remove(&self.first_seen);
            }
        }
    }
}

impl ResumeTracker {
    /// A tracker for a source whose failures count within `find_time_secs`.
    pub fn new(find_time_secs: u64) -> ResumeTracker {
        let window = i64::try_from(find_time_secs).unwrap_or(i64::MAX / 4);
        ResumeTracker {
            window,
            step: (window / CHECKPOINTS_PER_WINDOW).max(1),
            current: None,
            before_last: None,
            checkpoints: VecDeque::new(),
            newest: None,
            pending: Pending::default(),
            last_saved: None,
        }
    }

    /// A line was received: `before` is the position before it when the source says so (after
    /// a start or a switch of files), else the end of the previous line is taken.
    pub fn line(&mut self, before: Option<SourcePosition>, position: SourcePosition) {
        self.before_last = before.or_else(|| self.current.take());
        self.current = Some(position);
    }

    /// The line just given to [`ResumeTracker::line`] is a failure at log time `time` (unix
    /// seconds).
    pub fn failure(&mut self, time: i64) {
        self.newest = Some(self.newest.map_or(time, |n| n.max(time)));
        let due = self
            .checkpoints
            .back()
            .is_none_or(|(last, _)| time >= last.saturating_add(self.step));
        if due && let Some(before) = &self.before_last {
            self.checkpoints.push_back((time, before.clone()));
        }
    }

    /// The window length changed (a reload): checkpoints are kept, pruned by the new length.
    pub fn set_window(&mut self, find_time_secs: u64) {
        self.window = i64::try_from(find_time_secs).unwrap_or(i64::MAX / 4);
        self.step = (self.window / CHECKPOINTS_PER_WINDOW).max(1);
    }

    /// A ban decided on a window whose oldest failure is at `first_seen`: its lines stay in the
    /// resume range until the returned guard is dropped (once the ban is recorded or refused).
    pub fn pending_ban(&self, first_seen: i64) -> PendingBan {
        *lock(&self.pending).entry(first_seen).or_default() += 1;
        PendingBan {
            pending: Arc::clone(&self.pending),
            first_seen,
        }
    }

    /// The resume point now: before the oldest line that may still count, `None` when every
    /// line received is done with (the read-through position is then where to resume).
    pub fn resume_point(&mut self) -> Option<SourcePosition> {
        let mut cut = self
            .newest
            .map_or(i64::MIN, |n| n.saturating_sub(self.window));
        if let Some((&oldest_pending, _)) = lock(&self.pending).first_key_value() {
            cut = cut.min(oldest_pending);
        }
        let cut = cut.saturating_sub(REPLAY_SLACK_SECS);
        // A checkpoint covers the lines up to the next one, whose failures are less than a
        // step younger than its own.
        while let Some((time, _)) = self.checkpoints.front() {
            if time.saturating_add(self.step) > cut {
                break;
            }
            self.checkpoints.pop_front();
        }
        self.checkpoints
            .front()
            .map(|(_, position)| position.clone())
    }

    /// The resume point to save, when it changed since the last [`ResumeTracker::saved`].
    pub fn to_save(&mut self) -> Option<Option<SourcePosition>> {
        let point = self.resume_point();
        (self.last_saved.as_ref() != Some(&point)).then_some(point)
    }

    /// `point` was saved.
    pub fn saved(&mut self, point: Option<SourcePosition>) {
        self.last_saved = Some(point);
    }

    /// The last save failed: the next [`ResumeTracker::to_save`] returns the point again.
    pub fn save_failed(&mut self) {
        self.last_saved = None;
    }

    /// Checkpoints held now.
    pub fn checkpoints(&self) -> usize {
        self.checkpoints.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(inode: u64, hash: u64, offset: u64) -> SourcePosition {
        SourcePosition {
            source: "k".into(),
            inode: Some(inode),
            offset: Some(offset),
            first_line_hash: Some(hash),
            cursor: None,
        }
    }

    fn cursor(text: &str) -> SourcePosition {
        SourcePosition {
            source: "k".into(),
            cursor: Some(text.into()),
            ..SourcePosition::default()
        }
    }

    #[test]
    fn lines_up_to_the_read_through_position_are_replays() {
        let mut replay = Replay::new(at(7, 70, 300));
        assert!(replay.is_replay(&at(7, 70, 100)));
        assert!(replay.is_replay(&at(7, 70, 300)));
        assert!(replay.over(&at(7, 70, 300)));
        assert!(!replay.is_replay(&at(7, 70, 301)));
    }

    #[test]
    fn a_rotated_file_before_the_read_through_one_is_replayed() {
        // Resume in the old file (inode 5), read through in the new one (inode 7).
        let mut replay = Replay::new(at(7, 70, 300));
        assert!(replay.is_replay(&at(5, 50, 900)));
        assert!(!replay.over(&at(5, 50, 900)));
        assert!(replay.is_replay(&at(7, 70, 40)));
        // After the read-through file, another file is new.
        assert!(!replay.is_replay(&at(9, 90, 40)));
    }

    #[test]
    fn a_copy_made_by_copytruncate_is_the_same_file() {
        // The copy has another inode and the read-through file's first line.
        let mut replay = Replay::new(at(7, 70, 300));
        assert!(replay.is_replay(&at(8, 70, 200)));
        assert!(!replay.is_replay(&at(8, 70, 350)));
        // The truncated original (same inode, new first line) comes after it.
        assert!(!replay.is_replay(&at(7, 71, 20)));
    }

    #[test]
    fn journal_cursors_are_ordered_by_sequence_number_then_time() {
        let a = "s=ab;i=10;b=1;m=5;t=5f00;x=1";
        let b = "s=ab;i=2f;b=1;m=6;t=5e00;x=2";
        assert_eq!(cursor_order(a, b), Some(Ordering::Less));
        let other_file = "s=cd;i=1;b=1;m=7;t=6000;x=3";
        assert_eq!(cursor_order(b, other_file), Some(Ordering::Less));
        assert_eq!(cursor_order("garbage", b), None);
        let mut replay = Replay::new(cursor(b));
        assert!(replay.is_replay(&cursor(a)));
        assert!(replay.is_replay(&cursor(b)));
        assert!(!replay.is_replay(&cursor(other_file)));
        // A cursor that cannot be ordered is taken as new.
        assert!(!replay.is_replay(&cursor("garbage")));
    }

    #[test]
    fn the_resume_point_keeps_open_windows_and_pending_bans() {
        let mut tracker = ResumeTracker::new(600);
        assert_eq!(tracker.resume_point(), None);
        tracker.line(Some(at(1, 1, 0)), at(1, 1, 10));
        tracker.failure(1_000);
        tracker.line(None, at(1, 1, 20));
        tracker.failure(1_100);
        assert_eq!(tracker.resume_point(), Some(at(1, 1, 0)));
        // Much later failures: the old ones can no longer count.
        tracker.line(None, at(1, 1, 30));
        tracker.failure(1_000 + 600 + REPLAY_SLACK_SECS + 200);
        assert_eq!(tracker.resume_point(), Some(at(1, 1, 20)));
        // A ban of a window that started at 1_000 is still being recorded.
        let mut tracker = ResumeTracker::new(600);
        tracker.line(Some(at(1, 1, 0)), at(1, 1, 10));
        tracker.failure(1_000);
        let pending = tracker.pending_ban(1_000);
        tracker.line(None, at(1, 1, 20));
        tracker.failure(5_000);
        assert_eq!(tracker.resume_point(), Some(at(1, 1, 0)));
        drop(pending);
        assert_eq!(tracker.resume_point(), Some(at(1, 1, 10)));
    }

    #[test]
    fn checkpoints_stay_few_however_many_failures() {
        let mut tracker = ResumeTracker::new(600);
        for i in 0..1_000_000u64 {
            tracker.line(None, at(1, 1, i * 10));
            tracker.failure(1_000_000 + (i / 100) as i64);
            if i % 10_000 == 0 {
                tracker.resume_point();
            }
        }
        tracker.resume_point();
        assert!(tracker.checkpoints() <= 2 * CHECKPOINTS_PER_WINDOW as usize);
        let saved = tracker.to_save().unwrap();
        tracker.saved(saved);
        assert_eq!(tracker.to_save(), None);
    }
}
