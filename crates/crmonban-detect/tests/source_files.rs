//! File sources end to end, on real files in temporary directories: where a first start begins,
//! restarts, replays from a resume point, positions per service, both kinds of rotation, a crash (the runtime dropped without shutdown), files that
//! appear late or cannot be read, partial and over-long lines, and the `auto` choice.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::{assert_quiet, options, recv, stop, wait_for};
use crmonban_core::config::{BanDuration, JournalMatch, LogSource, ServiceConfig};
use crmonban_detect::source::{
    MemoryPositions, PositionStore, SourceLine, SourceOptions, SourcePosition, Sources,
    SourcesHandle,
};
use tokio::sync::mpsc::Receiver;

fn file_service(path: &Path) -> ServiceConfig {
    ServiceConfig {
        log_path: Some(path.to_path_buf()),
        source: LogSource::File,
        ..ServiceConfig::custom(BanDuration::Permanent)
    }
}

fn start(
    path: &Path,
    positions: &Arc<MemoryPositions>,
    capacity: usize,
) -> (Receiver<SourceLine>, SourcesHandle) {
    let store: Arc<dyn PositionStore> = positions.clone();
    Sources::spawn_with(
        vec![("ssh".to_owned(), file_service(path))],
        store,
        capacity,
        options(),
    )
}

fn append(path: &Path, text: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// The position key of the `ssh` service reading `path`.
fn key(path: &Path) -> String {
    format!("ssh:{}", path.display())
}

fn text(line: &SourceLine) -> String {
    String::from_utf8(line.line.clone()).unwrap()
}

async fn recv_texts(rx: &mut Receiver<SourceLine>, n: usize) -> Vec<String> {
    texts(&recv(rx, n).await)
}

fn texts(lines: &[SourceLine]) -> Vec<String> {
    lines.iter().map(text).collect()
}

/// A log in a new directory and a source tailing it.
struct Tailing {
    dir: tempfile::TempDir,
    path: PathBuf,
    positions: Arc<MemoryPositions>,
}

/// A log `name` in a new directory, holding `initial`, and a source started on it (a channel
/// of `capacity`) that has taken its starting point: lines appended from now are new.
async fn tailing(
    name: &str,
    initial: &str,
    capacity: usize,
) -> (Tailing, Receiver<SourceLine>, SourcesHandle) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    append(&path, initial);
    let positions = Arc::new(MemoryPositions::new());
    let (rx, handle) = start(&path, &positions, capacity);
    wait_positioned(&positions, &path).await;
    (
        Tailing {
            dir,
            path,
            positions,
        },
        rx,
        handle,
    )
}

/// The source has taken its starting point (saved at once): lines appended from now are new.
async fn wait_positioned(positions: &MemoryPositions, path: &Path) {
    wait_for("the first position", || positions.get(&key(path)).is_some()).await;
}

fn lines(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix} {i}")).collect()
}

fn joined(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_first_start_reads_from_the_end_and_waits_for_complete_lines() {
    let (log, mut rx, handle) = tailing("auth.log", &joined(&lines("history", 0..50)), 16).await;
    let saved = log.positions.get(&key(&log.path)).unwrap();
    assert_eq!(
        saved.offset,
        Some(std::fs::metadata(&log.path).unwrap().len())
    );

    append(&log.path, "new 1\nnew 2\r\n");
    let got = recv(&mut rx, 2).await;
    assert_eq!(texts(&got), ["new 1", "new 2"]);
    assert_eq!(&*got[0].service, "ssh");
    assert_eq!(
        got[1].position.offset,
        Some(std::fs::metadata(&log.path).unwrap().len())
    );
    assert_eq!(got[1].time, None);

    append(&log.path, "Failed password for root from 192.0");
    assert_quiet(&mut rx).await;
    append(&log.path, ".2.7 port 22 ssh2\n");
    assert_eq!(
        recv_texts(&mut rx, 1).await,
        ["Failed password for root from 192.0.2.7 port 22 ssh2"]
    );
    let stats = handle.stats();
    assert_eq!(stats[0].lines, 3);
    assert_eq!(stats[0].errors, 0);
    assert!(stop(handle, rx).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_restart_resumes_without_replay_or_loss() {
    let (log, mut rx, handle) = tailing("auth.log", "history\n", 16).await;
    append(&log.path, &joined(&lines("run1", 0..5)));
    assert_eq!(recv_texts(&mut rx, 5).await, lines("run1", 0..5));
    assert!(stop(handle, rx).await.is_empty());

    // Written while the daemon is down.
    append(&log.path, &joined(&lines("down", 0..5)));
    append(&log.path, "half a li");

    let (mut rx, handle) = start(&log.path, &log.positions, 16);
    assert_eq!(recv_texts(&mut rx, 5).await, lines("down", 0..5));
    append(&log.path, "ne\n");
    assert_eq!(recv_texts(&mut rx, 1).await, ["half a line"]);
    assert_quiet(&mut rx).await;
    assert!(stop(handle, rx).await.is_empty());

    // A third start with nothing new delivers nothing.
    let (mut rx, handle) = start(&log.path, &log.positions, 16);
    assert_quiet(&mut rx).await;
    assert!(stop(handle, rx).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_a_resume_point_replays_what_was_received_and_flags_it() {
    let (log, mut rx, handle) = tailing("auth.log", "history\n", 16).await;
    append(&log.path, &joined(&lines("run1", 0..5)));
    let run1 = recv(&mut rx, 5).await;
    assert!(run1.iter().all(|l| !l.replayed));
    // The first line carries the position before it (the starting point), the others not.
    assert_eq!(run1[0].before.as_ref().and_then(|p| p.offset), Some(8));
    assert!(run1[1..].iter().all(|l| l.before.is_none()));
    assert!(stop(handle, rx).await.is_empty());
    // The consumer still needed the lines after the second one.
    let resume = run1[1].position.clone();
    log.positions
        .save_resume(&key(&log.path), Some(&resume))
        .await
        .unwrap();
    append(&log.path, &joined(&lines("down", 0..3)));

    let (mut rx, handle) = start(&log.path, &log.positions, 16);
    let got = recv(&mut rx, 6).await;
    assert_eq!(
        texts(&got),
        [lines("run1", 2..5), lines("down", 0..3)].concat()
    );
    let replayed: Vec<bool> = got.iter().map(|l| l.replayed).collect();
    assert_eq!(replayed, [true, true, true, false, false, false]);
    assert_eq!(got[0].before, Some(resume));
    assert_quiet(&mut rx).await;
    assert!(stop(handle, rx).await.is_empty());
    // The read-through position was not moved back by the replay.
    let size = std::fs::metadata(&log.path).unwrap().len();
    assert_eq!(
        log.positions.get(&key(&log.path)).unwrap().offset,
        Some(size)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_two_services_on_one_file_keep_their_own_positions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.log");
    append(&path, "history\n");
    // A position saved under the bare path (before positions were per service).
    let positions = Arc::new(MemoryPositions::new());
    let legacy = SourcePosition {
        source: path.display().to_string(),
        inode: Some(std::os::unix::fs::MetadataExt::ino(
            &std::fs::metadata(&path).unwrap(),
        )),
        offset: Some(0),
        first_line_hash: None,
        cursor: None,
    };
    positions.save(&legacy).await.unwrap();
    let store: Arc<dyn PositionStore> = positions.clone();
    let (mut rx, handle) = Sources::spawn_with(
        vec![
            ("postfix".to_owned(), file_service(&path)),
            ("dovecot".to_owned(), file_service(&path)),
        ],
        store,
        16,
        options(),
    );
    // Both take over the old position: the line written before is read by each.
    let got = recv(&mut rx, 2).await;
    let mut services: Vec<&str> = got.iter().map(|l| &*l.service).collect();
    services.sort();
    assert_eq!(services, ["dovecot", "postfix"]);
    assert!(got.iter().all(|l| text(l) == "history"));
    assert!(stop(handle, rx).await.is_empty());
    for service in ["postfix", "dovecot"] {
        let key = format!("{service}:{}", path.display());
        assert_eq!(positions.get(&key).unwrap().offset, Some(8), "{key}");
    }
}

/// logrotate's numbered scheme: `NAME.N` -> `NAME.N+1` (oldest first), `NAME` -> `NAME.1`, and
/// the writer creates `NAME` again.
fn rotate_numbered(path: &Path, keep: u32) {
    let numbered = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
    for n in (1..keep).rev() {
        if numbered(n).exists() {
            std::fs::rename(numbered(n), numbered(n + 1)).unwrap();
        }
    }
    std::fs::rename(path, numbered(1)).unwrap();
}

/// A reader far behind its writer (a slow consumer) while the log is rotated six times: it
/// finishes each rotated file, in the order they were written, before the next; no line is
/// lost or repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_rotation_while_lagging_loses_no_line() {
    let (log, mut rx, handle) = tailing("auth.log", "history\n", 64).await;
    const LINES: usize = 30_000;
    const PER_FILE: usize = 5_000;
    let path = log.path.clone();
    // About 20,000 lines a second, rotated every 5,000.
    let writer = std::thread::spawn(move || {
        let all = lines("line", 0..LINES);
        for (i, chunk) in all.chunks(100).enumerate() {
            if i > 0 && (i * 100) % PER_FILE == 0 {
                rotate_numbered(&path, 10);
            }
            append(&path, &joined(chunk));
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    // The consumer takes about 10,000 lines a second: the reader ends up several files behind.
    let mut got = Vec::with_capacity(LINES);
    while got.len() < LINES {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(line)) => got.push(text(&line)),
            Ok(None) => panic!("the channel closed"),
            // Nothing more comes: the rest was skipped.
            Err(_) => break,
        }
        if got.len() % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    writer.join().unwrap();
    let expected = lines("line", 0..LINES);
    if got != expected {
        let missing = expected.iter().filter(|l| !got.contains(l)).count();
        panic!(
            "{missing} of {LINES} lines lost; {} received; first difference at {:?}",
            got.len(),
            got.iter().zip(&expected).position(|(a, b)| a != b)
        );
    }
    assert_quiet(&mut rx).await;
    assert_eq!(handle.stats()[0].skipped, 0);
    assert!(stop(handle, rx).await.is_empty());
}

/// The file read before a stop is gone at the start (rotated and compressed, or deleted): the
/// new file is read from its start and the gap is reported and counted, not passed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_a_file_gone_while_stopped_is_reported_as_skipped() {
    let (log, mut rx, handle) = tailing("auth.log", "history\n", 16).await;
    append(&log.path, &joined(&lines("old", 0..3)));
    assert_eq!(recv_texts(&mut rx, 3).await, lines("old", 0..3));
    assert!(stop(handle, rx).await.is_empty());
    std::fs::remove_file(&log.path).unwrap();
    append(&log.path, &joined(&lines("new", 0..2)));

    let (mut rx, handle) = start(&log.path, &log.positions, 16);
    assert_eq!(recv_texts(&mut rx, 2).await, lines("new", 0..2));
    assert_eq!(handle.stats()[0].skipped, 1);
    assert!(stop(handle, rx).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_rename_and_create_rotation_loses_nothing() {
    let (log, mut rx, handle) = tailing("auth.log", "history\n", 16).await;
    let rotated = log.dir.path().join("auth.log.1");

    append(&log.path, &joined(&lines("old", 0..3)));
    assert_eq!(recv_texts(&mut rx, 3).await, lines("old", 0..3));
    // logrotate: rename, create; the writer keeps writing to the old file until it reopens.
    append(&log.path, &joined(&lines("old", 3..6)));
    std::fs::rename(&log.path, &rotated).unwrap();
    append(&rotated, &joined(&lines("old", 6..8)));
    std::fs::File::create(&log.path).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    append(&rotated, &joined(&lines("old", 8..10)));
    // The writer reopens: new lines go to the new file.
    append(&log.path, &joined(&lines("new", 0..5)));

    let mut expected = lines("old", 3..10);
    expected.extend(lines("new", 0..5));
    assert_eq!(recv_texts(&mut rx, expected.len()).await, expected);
    assert_quiet(&mut rx).await;

    // And again, a second rotation.
    std::fs::rename(&log.path, &rotated).unwrap();
    append(&log.path, &joined(&lines("newer", 0..2)));
    assert_eq!(recv_texts(&mut rx, 2).await, lines("newer", 0..2));
    assert!(stop(handle, rx).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_rotation_while_stopped_reads_the_rotated_remainder_then_the_new_file() {
    let (log, mut rx, handle) = tailing("auth.log", "history\n", 16).await;
    append(&log.path, "before\n");
    assert_eq!(recv_texts(&mut rx, 1).await, ["before"]);
    assert!(stop(handle, rx).await.is_empty());

    append(&log.path, &joined(&lines("unread", 0..3)));
    std::fs::rename(&log.path, log.dir.path().join("auth.log.1")).unwrap();
    append(&log.path, &joined(&lines("new", 0..3)));

    let (mut rx, handle) = start(&log.path, &log.positions, 16);
    let mut expected = lines("unread", 0..3);
    expected.extend(lines("new", 0..3));
    assert_eq!(recv_texts(&mut rx, 6).await, expected);
    assert_quiet(&mut rx).await;
    assert!(stop(handle, rx).await.is_empty());
}

/// copytruncate: the file is copied to `NAME.1`, then truncated in place.
fn copytruncate(path: &Path) {
    let copy = PathBuf::from(format!("{}.1", path.display()));
    std::fs::copy(path, &copy).unwrap();
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_copytruncate_rotation_loses_nothing() {
    let (log, mut rx, handle) = tailing("nginx.log", "history\n", 16).await;

    append(&log.path, &joined(&lines("a", 0..4)));
    assert_eq!(recv_texts(&mut rx, 4).await, lines("a", 0..4));
    copytruncate(&log.path);
    append(&log.path, &joined(&lines("b", 0..4)));
    assert_eq!(recv_texts(&mut rx, 4).await, lines("b", 0..4));
    assert_quiet(&mut rx).await;

    // Truncated and rewritten past the old offset between two looks: the first line differs.
    let long: Vec<String> = (0..40)
        .map(|i| format!("c {i} {}", "x".repeat(40)))
        .collect();
    copytruncate(&log.path);
    append(&log.path, &joined(&long));
    assert_eq!(recv_texts(&mut rx, long.len()).await, long);
    assert_quiet(&mut rx).await;
    assert!(stop(handle, rx).await.is_empty());

    // Copytruncate while stopped, with lines not yet read: they are taken from the copy.
    append(&log.path, &joined(&lines("unread", 0..3)));
    copytruncate(&log.path);
    append(&log.path, &joined(&lines("d", 0..2)));
    let (mut rx, handle) = start(&log.path, &log.positions, 16);
    let mut expected = lines("unread", 0..3);
    expected.extend(lines("d", 0..2));
    assert_eq!(recv_texts(&mut rx, 5).await, expected);
    assert_quiet(&mut rx).await;
    assert!(stop(handle, rx).await.is_empty());
}

/// A runtime per "process": dropping it without `shutdown` is what `kill -9` leaves behind
/// (no final save; only the batched saves made so far count).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn kill(rt: tokio::runtime::Runtime, handle: SourcesHandle, rx: Receiver<SourceLine>) {
    rt.shutdown_background();
    drop((handle, rx));
}

#[test]
fn file_source_positions_survive_a_crash_at_least_once_with_bounded_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.log");
    append(&path, "history\n");
    let positions = Arc::new(MemoryPositions::new());

    // 1. Lines received and given time to be saved: a crash repeats none of them.
    let rt = runtime();
    let (mut rx, handle) = rt.block_on(async {
        let started = start(&path, &positions, 4);
        wait_positioned(&positions, &path).await;
        started
    });
    append(&path, &joined(&lines("a", 0..20)));
    rt.block_on(async {
        assert_eq!(recv_texts(&mut rx, 20).await, lines("a", 0..20));
        let size = std::fs::metadata(&path).unwrap().len();
        wait_for("the save after the received lines", || {
            positions.get(&key(&path)).unwrap().offset == Some(size)
        })
        .await;
    });
    kill(rt, handle, rx);

    // 2. Some lines received, the rest still in the channel or unread at the crash: none is
    //    lost, and only the received ones not yet saved can come again.
    let rt = runtime();
    let (mut rx, handle) = rt.block_on(async { start(&path, &positions, 4) });
    append(&path, &joined(&lines("b", 0..30)));
    let received = rt.block_on(async {
        let received = recv(&mut rx, 6).await;
        // Give the saver time: it must never go past what was received.
        tokio::time::sleep(Duration::from_millis(400)).await;
        received
    });
    assert_eq!(texts(&received), lines("b", 0..6));
    let saved = positions.get(&key(&path)).unwrap().offset.unwrap();
    assert!(
        saved <= received[5].position.offset.unwrap(),
        "saved {saved} beyond what was received"
    );
    kill(rt, handle, rx);

    // 3. After the restart every b line arrives; the repeats are a prefix of the received ones.
    let rt = runtime();
    let (mut rx, handle) = rt.block_on(async { start(&path, &positions, 4) });
    let again = rt.block_on(async {
        let mut got = Vec::new();
        while !got.iter().any(|l: &String| l == "b 29") {
            got.extend(recv_texts(&mut rx, 1).await);
        }
        assert_quiet(&mut rx).await;
        got
    });
    let repeated = again
        .len()
        .checked_sub(24)
        .unwrap_or_else(|| panic!("lines lost: {again:?}"));
    assert!(
        repeated <= 6,
        "at most the 6 received lines repeat, got {again:?}"
    );
    assert_eq!(again, lines("b", 6 - repeated..30));
    rt.block_on(async { assert!(stop(handle, rx).await.is_empty()) });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_a_file_created_after_the_start_is_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    // Neither the file nor its directory exists yet.
    let path = dir.path().join("nginx").join("error.log");
    let positions = Arc::new(MemoryPositions::new());
    let (mut rx, handle) = start(&path, &positions, 16);
    assert_quiet(&mut rx).await;
    std::fs::create_dir(path.parent().unwrap()).unwrap();
    append(&path, "first\nsecond\n");
    assert_eq!(recv_texts(&mut rx, 2).await, ["first", "second"]);
    append(&path, "third\n");
    assert_eq!(recv_texts(&mut rx, 1).await, ["third"]);
    assert_eq!(handle.stats()[0].errors, 0);
    assert!(stop(handle, rx).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_an_unreadable_file_is_reported_and_retried() {
    // Root reads through chmod 000, so the unreadable "file" is a directory: open succeeds,
    // read fails, as it would for a file the daemon may not read.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.log");
    std::fs::create_dir(&path).unwrap();
    let positions = Arc::new(MemoryPositions::new());
    let (mut rx, handle) = start(&path, &positions, 16);
    wait_for("the error report", || handle.stats()[0].errors > 0).await;
    let stats = handle.stats();
    let error = stats[0].last_error.clone().unwrap();
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert!(error.contains("not a regular file"), "{error}");
    // Retried without being reported again and again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(handle.stats()[0].errors, 1);

    std::fs::remove_dir(&path).unwrap();
    append(&path, "readable now\n");
    assert_eq!(recv_texts(&mut rx, 1).await, ["readable now"]);
    wait_for("the error to clear", || {
        handle.stats()[0].last_error.is_none()
    })
    .await;
    assert!(stop(handle, rx).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_over_long_lines_are_cut_at_one_mebibyte_and_flagged() {
    let (log, mut rx, handle) = tailing("auth.log", "", 16).await;
    append(&log.path, &format!("{}\nafter\n", "y".repeat(3 << 20)));
    let got = recv(&mut rx, 2).await;
    assert_eq!(got[0].line.len(), 1 << 20);
    assert!(got[0].truncated);
    assert_eq!(text(&got[1]), "after");
    assert!(!got[1].truncated);
    assert_eq!(handle.stats()[0].truncated, 1);
    assert!(stop(handle, rx).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_a_slow_consumer_holds_the_reader_back_without_losing_lines() {
    let (log, mut rx, handle) = tailing("auth.log", "", 2).await;
    let all = lines("flood", 0..2000);
    append(&log.path, &joined(&all));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(handle.stats()[0].lines <= 4, "the reader ran ahead");
    assert_eq!(recv_texts(&mut rx, all.len()).await, all);
    assert!(stop(handle, rx).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_auto_uses_the_file_when_it_exists_and_the_journal_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let present = dir.path().join("present.log");
    append(&present, "");
    let service = |path: PathBuf| ServiceConfig {
        log_path: Some(path),
        source: LogSource::Auto,
        journal_match: Some(JournalMatch::parse("_SYSTEMD_UNIT=ssh.service").unwrap()),
        ..ServiceConfig::custom(BanDuration::Permanent)
    };
    let store: Arc<dyn PositionStore> = Arc::new(MemoryPositions::new());
    let (rx, handle) = Sources::spawn_with(
        vec![
            ("a".to_owned(), service(present.clone())),
            ("b".to_owned(), service(dir.path().join("absent.log"))),
        ],
        store,
        4,
        SourceOptions {
            journalctl: dir.path().join("no-journalctl"),
            ..options()
        },
    );
    let stats = handle.stats();
    assert_eq!(stats[0].source, format!("a:{}", present.display()));
    assert_eq!(stats[1].source, "b:journal:_SYSTEMD_UNIT=ssh.service");
    stop(handle, rx).await;
}
