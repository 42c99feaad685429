//! The journal source against a stand-in `journalctl`: a shell script that records its
//! arguments and prints recorded JSON entries of sshd (as `journalctl -o json` writes them),
//! the entries after `--after-cursor=C` when given one, or the "new" entries otherwise.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

mod common;

use common::{assert_quiet, options, recv, stop, wait_for};
use crmonban_core::config::{BanDuration, JournalMatch, LogSource, ServiceConfig};
use crmonban_detect::source::{
    MemoryPositions, PositionStore, SourceLine, SourceOptions, Sources, SourcesHandle,
};
use tokio::sync::mpsc::Receiver;
const MATCH: &str = "_SYSTEMD_UNIT=ssh.service + _SYSTEMD_UNIT=sshd.service";

/// Without `--follow` (the question for the newest entry) it prints `newest.jsonl`, if any,
/// and exits. Following, `history.jsonl` answers `--after-cursor`, `new.jsonl` answers
/// `--lines=0`; then it waits like `journalctl -f` does.
const SCRIPT: &str = r#"#!/bin/sh
dir=$(dirname "$0")
echo "$*" >> "$dir/args.log"
case " $* " in
  *" --follow "*) ;;
  *) cat "$dir/newest.jsonl" 2>/dev/null; exit 0 ;;
esac
after=""
for arg in "$@"; do
  case "$arg" in --after-cursor=*) after="${arg#--after-cursor=}" ;; esac
done
if [ -n "$after" ]; then
  awk -v c="\"__CURSOR\":\"$after\"" 'found { print } index($0, c) { found = 1 }' "$dir/history.jsonl"
else
  cat "$dir/new.jsonl"
fi
exec sleep 600
"#;

fn entry(cursor: &str, usec: u64, pid: u32, message: &str) -> String {
    format!(
        r#"{{"__CURSOR":"{cursor}","__REALTIME_TIMESTAMP":"{usec}","__MONOTONIC_TIMESTAMP":"81234567","_BOOT_ID":"5c3a1d0e8f6b4e2a9d7c1b0a2f3e4d5c","PRIORITY":"6","SYSLOG_FACILITY":"4","SYSLOG_IDENTIFIER":"sshd","_PID":"{pid}","_UID":"0","_GID":"0","_COMM":"sshd","_EXE":"/usr/sbin/sshd","_CMDLINE":"sshd: root [priv]","_SYSTEMD_UNIT":"ssh.service","_TRANSPORT":"syslog","_HOSTNAME":"web1","MESSAGE":"{message}"}}"#
    )
}

fn cursor(i: u32) -> String {
    format!(
        "s=9f2b6c1e4d3a4b5c8e7f6a5b4c3d2e1f;i={i:x};b=5c3a1d0e8f6b4e2a9d7c1b0a2f3e4d5c;m=4d7c{i:x};t=60a1b2c3d4e{i:x};x=1a2b3c4d5e6f7a8{i:x}"
    )
}

/// Four entries; the third has a MESSAGE that is not UTF-8, which journald writes as an array
/// of byte values.
fn entries() -> Vec<String> {
    let mut all = vec![
        entry(
            &cursor(1),
            1_700_000_001_000_001,
            4101,
            "Invalid user admin from 203.0.113.9 port 50522",
        ),
        entry(
            &cursor(2),
            1_700_000_002_000_002,
            4101,
            "Failed password for invalid user admin from 203.0.113.9 port 50522 ssh2",
        ),
    ];
    let bytes: Vec<String> = b"Invalid user \xff\xfe from 2001:db8::7 port 40000"
        .iter()
        .map(u8::to_string)
        .collect();
    all.push(entry(&cursor(3), 1_700_000_003_000_003, 4102, "X").replace(
        r#""MESSAGE":"X""#,
        &format!(r#""MESSAGE":[{}]"#, bytes.join(",")),
    ));
    all.push(entry(
        &cursor(4),
        1_700_000_004_000_004,
        4103,
        "Failed password for root from 198.51.100.4 port 2222 ssh2",
    ));
    all
}

fn write_jsonl(path: &Path, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

fn install_script(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("journalctl");
    std::fs::write(&path, SCRIPT).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn start(
    journalctl: &Path,
    positions: &Arc<MemoryPositions>,
) -> (Receiver<SourceLine>, SourcesHandle) {
    start_matching(journalctl, positions, MATCH)
}

fn start_matching(
    journalctl: &Path,
    positions: &Arc<MemoryPositions>,
    matches: &str,
) -> (Receiver<SourceLine>, SourcesHandle) {
    let service = ServiceConfig {
        source: LogSource::Journal,
        journal_match: Some(JournalMatch::parse(matches).unwrap()),
        ..ServiceConfig::custom(BanDuration::Permanent)
    };
    let store: Arc<dyn PositionStore> = positions.clone();
    Sources::spawn_with(
        vec![("ssh".to_owned(), service)],
        store,
        8,
        SourceOptions {
            journalctl: journalctl.to_path_buf(),
            ..options()
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_source_delivers_entries_and_resumes_after_the_saved_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let journalctl = install_script(dir.path());
    let all = entries();
    let key = format!("ssh:journal:{MATCH}");
    let positions = Arc::new(MemoryPositions::new());

    // First start on an empty journal (no newest entry): `--lines=0`; three entries arrive.
    write_jsonl(&dir.path().join("new.jsonl"), &all[..3]);
    let (mut rx, handle) = start(&journalctl, &positions);
    let got = recv(&mut rx, 3).await;
    assert_eq!(
        got[0].line,
        b"sshd[4101]: Invalid user admin from 203.0.113.9 port 50522"
    );
    assert_eq!(&*got[0].service, "ssh");
    assert_eq!(got[0].time, Some(1_700_000_001_000_001));
    let fields = got[0].fields.clone().unwrap();
    assert_eq!(fields.pid, Some(4101));
    assert_eq!(fields.identifier.as_deref(), Some("sshd"));
    assert_eq!(
        &got[0].line[fields.message_start..],
        b"Invalid user admin from 203.0.113.9 port 50522"
    );
    assert_eq!(got[1].position.cursor.as_deref(), Some(cursor(2).as_str()));
    assert_eq!(
        got[2].line,
        b"sshd[4102]: Invalid user \xff\xfe from 2001:db8::7 port 40000"
    );
    assert_eq!(got[2].text(), None);
    assert_quiet(&mut rx).await;
    assert!(stop(handle, rx).await.is_empty());
    assert_eq!(positions.get(&key).unwrap().cursor, Some(cursor(3)));

    // Restart: journalctl is asked for what follows the saved cursor, nothing is repeated.
    write_jsonl(&dir.path().join("history.jsonl"), &all);
    let (mut rx, handle) = start(&journalctl, &positions);
    let got = recv(&mut rx, 1).await;
    assert_eq!(
        got[0].line,
        b"sshd[4103]: Failed password for root from 198.51.100.4 port 2222 ssh2"
    );
    assert_quiet(&mut rx).await;
    assert!(stop(handle, rx).await.is_empty());
    assert_eq!(positions.get(&key).unwrap().cursor, Some(cursor(4)));

    let args = std::fs::read_to_string(dir.path().join("args.log")).unwrap();
    let runs: Vec<&str> = args.lines().filter(|r| r.contains("--follow")).collect();
    assert_eq!(runs.len(), 2, "{args}");
    assert!(runs[0].contains("--follow --output=json"), "{args}");
    assert!(runs[0].contains("--lines=0"), "{args}");
    assert!(runs[0].ends_with(MATCH), "{args}");
    assert!(
        runs[1].contains(&format!("--after-cursor={}", cursor(3))),
        "{args}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_source_first_start_saves_a_cursor_even_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let journalctl = install_script(dir.path());
    let all = entries();
    let key = format!("ssh:journal:{MATCH}");
    let positions = Arc::new(MemoryPositions::new());
    // The journal's newest entry when crmonban first starts is entry 1 (already history).
    write_jsonl(&dir.path().join("newest.jsonl"), &all[..1]);
    write_jsonl(&dir.path().join("history.jsonl"), &all[..1]);
    let (mut rx, handle) = start(&journalctl, &positions);
    wait_for("the first cursor to be saved", || {
        positions.get(&key).and_then(|p| p.cursor) == Some(cursor(1))
    })
    .await;
    assert_quiet(&mut rx).await;
    assert!(stop(handle, rx).await.is_empty());

    // Entries 2-4 are written while crmonban is stopped: the next start reads them all.
    write_jsonl(&dir.path().join("history.jsonl"), &all);
    let (mut rx, handle) = start(&journalctl, &positions);
    let got = recv(&mut rx, 3).await;
    assert_eq!(
        got[0].line,
        b"sshd[4101]: Failed password for invalid user admin from 203.0.113.9 port 50522 ssh2"
    );
    assert_eq!(got[2].position.cursor.as_deref(), Some(cursor(4).as_str()));
    assert_quiet(&mut rx).await;
    assert!(stop(handle, rx).await.is_empty());

    let args = std::fs::read_to_string(dir.path().join("args.log")).unwrap();
    let runs: Vec<&str> = args.lines().collect();
    assert!(runs[0].starts_with("--lines=1 --output=json"), "{args}");
    assert!(!runs[0].contains("_SYSTEMD_UNIT"), "{args}");
    assert!(
        runs[1].contains(&format!("--after-cursor={}", cursor(1))) && runs[1].ends_with(MATCH),
        "{args}"
    );
    assert!(!args.contains("--lines=0"), "{args}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_source_reports_a_missing_journalctl_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let journalctl = dir.path().join("journalctl");
    let positions = Arc::new(MemoryPositions::new());
    let (mut rx, handle) = start(&journalctl, &positions);
    wait_for("the report", || handle.stats()[0].errors > 0).await;
    let error = handle.stats()[0].last_error.clone().unwrap();
    assert!(error.contains("not found"), "{error}");
    assert!(error.contains("journalctl"), "{error}");

    write_jsonl(&dir.path().join("new.jsonl"), &entries()[3..]);
    install_script(dir.path());
    let got = recv(&mut rx, 1).await;
    assert!(
        got[0]
            .text()
            .unwrap()
            .starts_with("sshd[4103]: Failed password")
    );
    wait_for("the error to clear", || {
        handle.stats()[0].last_error.is_none()
    })
    .await;
    assert!(stop(handle, rx).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_source_restarts_journalctl_after_it_exits_without_repeating() {
    let dir = tempfile::tempdir().unwrap();
    // A journalctl that prints its entries and exits (as when journald restarts).
    let journalctl = dir.path().join("journalctl");
    std::fs::write(&journalctl, SCRIPT.replace("exec sleep 600", "exit 1")).unwrap();
    std::fs::set_permissions(&journalctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let all = entries();
    write_jsonl(&dir.path().join("new.jsonl"), &all[..2]);
    write_jsonl(&dir.path().join("history.jsonl"), &all);
    let positions = Arc::new(MemoryPositions::new());
    let (mut rx, handle) = start(&journalctl, &positions);
    // The first run gives entries 1-2, the second (after cursor 2) 3-4, the next ones nothing.
    let got = recv(&mut rx, 4).await;
    let cursors: Vec<_> = got
        .iter()
        .map(|l| l.position.cursor.clone().unwrap())
        .collect();
    assert_eq!(cursors, (1..=4).map(cursor).collect::<Vec<_>>());
    assert_quiet(&mut rx).await;
    assert!(
        handle.stats()[0]
            .last_error
            .clone()
            .unwrap()
            .contains("ended")
    );
    assert!(stop(handle, rx).await.is_empty());
}

/// The source against a real systemd-journald (in a mount namespace of its own) and the real
/// journalctl, reached through a shim that enters that namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_journal_source_follows_a_real_journald() {
    let journal = crmonban_testutil::Journald::start();
    let dir = tempfile::tempdir().unwrap();
    let journalctl = journal.journalctl_shim(dir.path());
    let matches = "SYSLOG_IDENTIFIER=sshd";
    let key = format!("ssh:journal:{matches}");
    let positions = Arc::new(MemoryPositions::new());
    let start_real = || start_matching(&journalctl, &positions, matches);
    let text = |line: &SourceLine| {
        let fields = line.fields.clone().unwrap();
        String::from_utf8_lossy(&line.line[fields.message_start..]).into_owned()
    };

    // History before the first start is never delivered.
    journal.log(
        "sshd",
        4100,
        "Failed password for root from 192.0.2.1 port 1 ssh2",
    );
    let (mut rx, handle) = start_real();
    wait_for("the first cursor to be saved", || {
        positions.get(&key).and_then(|p| p.cursor).is_some()
    })
    .await;
    journal.log(
        "sshd",
        4101,
        "Failed password for root from 203.0.113.9 port 50522 ssh2",
    );
    journal.log(
        "CRON",
        77,
        "pam_unix(cron:session): session opened for user root",
    );
    journal.log(
        "sshd",
        4102,
        "Invalid user admin from 2001:db8::9 port 4000",
    );
    let got = recv(&mut rx, 2).await;
    assert_eq!(
        text(&got[0]),
        "Failed password for root from 203.0.113.9 port 50522 ssh2"
    );
    assert_eq!(
        text(&got[1]),
        "Invalid user admin from 2001:db8::9 port 4000"
    );
    let fields = got[0].fields.clone().unwrap();
    assert_eq!(fields.identifier.as_deref(), Some("sshd"));
    assert!(got[0].line.starts_with(b"sshd["), "{:?}", got[0].line);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let logged = got[0].time.expect("the journal's own time");
    assert!((now - logged).abs() < 60_000_000, "{logged} vs {now}");
    assert_quiet(&mut rx).await;
    assert!(stop(handle, rx).await.is_empty());
    assert_eq!(
        positions.get(&key).unwrap().cursor,
        got[1].position.cursor,
        "the last delivered entry's cursor is saved"
    );

    // Written while stopped: delivered at the next start, once, and nothing else.
    journal.log(
        "sshd",
        4103,
        "Failed password for bob from 198.51.100.4 port 2222 ssh2",
    );
    let (mut rx, handle) = start_real();
    let got = recv(&mut rx, 1).await;
    assert_eq!(
        text(&got[0]),
        "Failed password for bob from 198.51.100.4 port 2222 ssh2"
    );
    assert_quiet(&mut rx).await;
    assert!(stop(handle, rx).await.is_empty());
}
