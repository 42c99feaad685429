use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use super::*;

fn lines(texts: &[&str]) -> Vec<Arc<str>> {
    texts.iter().map(|t| Arc::from(*t)).collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A sink, which checks for rotation before every write.
fn eager(path: &Path) -> FileSink {
    FileSink::build(path).unwrap()
}

#[tokio::test]
async fn appends_one_line_per_event_to_a_file_it_creates_0640() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("siem.log");
    let mut sink = FileSink::build(&path).unwrap();
    assert!(!path.exists(), "build opens nothing");
    sink.send(&lines(&["one", "two"])).await.unwrap();
    sink.send(&lines(&["three"])).await.unwrap();
    assert_eq!(read(&path), "one\ntwo\nthree\n");
    assert_eq!(mode(&path), 0o640);
}

#[tokio::test]
async fn appends_to_an_existing_file_and_keeps_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("siem.log");
    std::fs::write(&path, "earlier\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut sink = FileSink::build(&path).unwrap();
    sink.send(&lines(&["later"])).await.unwrap();
    assert_eq!(read(&path), "earlier\nlater\n");
    assert_eq!(mode(&path), 0o600);
}

#[tokio::test]
async fn a_file_renamed_away_is_followed_by_a_new_one_at_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("siem.log");
    let rotated = dir.path().join("siem.log.1");
    let mut sink = eager(&path);
    sink.send(&lines(&["before"])).await.unwrap();
    std::fs::rename(&path, &rotated).unwrap();
    sink.send(&lines(&["after"])).await.unwrap();
    assert_eq!(read(&rotated), "before\n");
    assert_eq!(read(&path), "after\n");
    assert_eq!(mode(&path), 0o640);
}

#[tokio::test]
async fn a_file_replaced_by_someone_else_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("siem.log");
    let rotated = dir.path().join("siem.log.1");
    let mut sink = eager(&path);
    sink.send(&lines(&["before"])).await.unwrap();
    // logrotate's `create`: rename, then a new empty file with its own mode.
    std::fs::rename(&path, &rotated).unwrap();
    std::fs::write(&path, "").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    sink.send(&lines(&["after"])).await.unwrap();
    assert_eq!(read(&rotated), "before\n");
    assert_eq!(read(&path), "after\n");
    assert_eq!(
        mode(&path),
        0o644,
        "a file someone else created keeps its mode"
    );

    // Deleted outright: created again.
    std::fs::remove_file(&path).unwrap();
    sink.send(&lines(&["again"])).await.unwrap();
    assert_eq!(read(&path), "again\n");
}

#[tokio::test]
async fn a_file_ending_mid_line_gets_a_line_feed_before_the_next_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("siem.log");
    // What a write cut by a full disk, or a crash, leaves behind.
    std::fs::write(&path, "complete\nhalf a li").unwrap();
    let mut sink = FileSink::build(&path).unwrap();
    sink.send(&lines(&["next"])).await.unwrap();
    sink.send(&lines(&["last"])).await.unwrap();
    assert_eq!(read(&path), "complete\nhalf a li\nnext\nlast\n");
}

#[test]
fn build_names_the_path_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nodir").join("siem.log");
    let e = FileSink::build(&missing).unwrap_err().message;
    assert!(e.contains(&missing.display().to_string()), "{e}");
    assert!(e.contains("does not exist"), "{e}");

    let file = dir.path().join("plain");
    std::fs::write(&file, "").unwrap();
    let under_file = file.join("siem.log");
    let e = FileSink::build(&under_file).unwrap_err().message;
    assert!(e.contains("is not a directory"), "{e}");

    let e = FileSink::build(dir.path()).unwrap_err().message;
    assert!(e.contains("is a directory"), "{e}");

    let e = FileSink::build(Path::new("relative/siem.log"))
        .unwrap_err()
        .message;
    assert!(e.contains("absolute"), "{e}");
}
