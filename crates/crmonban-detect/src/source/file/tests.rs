//! Unit tests of the tail: where a first start begins, partial and over-long lines, the
//! first-line hash.

use super::*;
use std::io::Write;

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn texts(round: &Round) -> Vec<String> {
    round
        .lines
        .iter()
        .map(|l| String::from_utf8(l.bytes.clone()).unwrap())
        .collect()
}

#[test]
fn new_file_is_read_from_its_end_and_partial_lines_wait() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.log");
    append(&path, "old 1\nold 2\n");
    let mut tail = Tail::new(path.clone(), "k".into(), 1 << 20, None);
    assert!(tail.round().lines.is_empty());
    append(&path, "new 1\r\nnew ");
    assert_eq!(texts(&tail.round()), ["new 1"]);
    append(&path, "2\n");
    let round = tail.round();
    assert_eq!(texts(&round), ["new 2"]);
    assert_eq!(round.position.unwrap().offset, Some(25));
}

#[test]
fn over_long_lines_are_cut_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.log");
    append(&path, "");
    let mut tail = Tail::new(path.clone(), "k".into(), 8, None);
    tail.round();
    append(&path, &format!("{}\nshort\n", "a".repeat(200_000)));
    let round = tail.round();
    assert_eq!(texts(&round), ["aaaaaaaa", "short"]);
    assert!(round.lines[0].truncated);
    assert!(!round.lines[1].truncated);
}

#[test]
fn start_mid_line_skips_the_fragment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.log");
    append(&path, &"b".repeat(CHUNK + 10));
    let mut tail = Tail::new(path.clone(), "k".into(), 1 << 20, None);
    tail.round();
    append(&path, "rest of it\nnext\n");
    assert_eq!(texts(&tail.round()), ["next"]);
}

#[test]
fn fnv_is_stable() {
    assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
}
