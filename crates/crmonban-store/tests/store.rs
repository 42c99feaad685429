//! The store against a real SQLite file in a temporary directory.

use std::net::IpAddr;
use std::path::Path;
use std::time::Instant;

use crmonban_core::{Ban, BanSource, Event, EventKind, Service, Target};
use crmonban_store::{LogPosition, Store, StoreError};
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;
use tempfile::TempDir;

const T0: i64 = 1_700_000_000;

fn target(text: &str) -> Target {
    Target::parse(text).unwrap()
}

fn ban(text: &str, banned_at: i64, expires_at: Option<i64>) -> Ban {
    Ban {
        target: target(text),
        reason: "5 failed logins".to_owned(),
        source: BanSource::Detector,
        service: Some("ssh".to_owned()),
        banned_at,
        expires_at,
        offence: 1,
    }
}

/// The nth address of 10.0.0.0/8, so that bulk tests have distinct targets.
fn nth_addr(n: u32) -> Target {
    Target::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
}

async fn open(dir: &TempDir) -> Store {
    Store::open(&dir.path().join("crmonban.db")).await.unwrap()
}

/// A raw connection to the database file, for what a user could do with the sqlite3 shell.
async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

#[tokio::test]
async fn migrations_create_every_table_in_an_empty_file() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("crmonban.db");
    std::fs::write(&path, b"").unwrap();
    let store = Store::open(&path).await.unwrap();
    store.close().await;

    let mut conn = raw(&path).await;
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for table in [
        "activity_log",
        "bans",
        "events",
        "intel",
        "log_positions",
        "whitelist",
    ] {
        assert!(
            tables.iter().any(|t| t == table),
            "{table} missing from {tables:?}"
        );
    }
    let indices: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for index in [
        "bans_by_target",
        "bans_active_by_expiry",
        "events_by_addr",
        "events_by_time",
    ] {
        assert!(
            indices.iter().any(|i| i == index),
            "{index} missing from {indices:?}"
        );
    }
}

#[tokio::test]
async fn wal_mode_is_on() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    assert_eq!(store.journal_mode().await.unwrap(), "wal");
    let path = store.path().to_path_buf();
    store.close().await;
    // WAL is a property of the file, seen by any other program that opens it.
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut raw(&path).await)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn open_failure_names_the_path() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("no-such-dir").join("crmonban.db");
    let error = Store::open(&path).await.unwrap_err();
    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("cannot open database {}: ", path.display())),
        "{message}"
    );
}

#[tokio::test]
async fn record_end_and_expire_keep_the_history() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    let timed = ban("192.0.2.7", T0, Some(T0 + 600));
    let manual = Ban {
        source: BanSource::Dbus,
        service: None,
        ..ban("2001:db8::/32", T0, None)
    };
    let id = store.record_ban(&timed).await.unwrap();
    store.record_ban(&manual).await.unwrap();
    assert_eq!(
        store.active_ban(&timed.target, T0 + 1).await.unwrap(),
        Some(timed.clone())
    );

    // Unban the network: the row stays, ended.
    assert!(
        store
            .end_ban(&manual.target, T0 + 10, "unban")
            .await
            .unwrap()
    );
    assert!(
        !store
            .end_ban(&manual.target, T0 + 11, "unban")
            .await
            .unwrap()
    );
    assert_eq!(
        store.active_ban(&manual.target, T0 + 12).await.unwrap(),
        None
    );

    // Nothing is due before the end; at the end the ban expires and is returned once.
    assert!(store.expire_due(T0 + 599).await.unwrap().is_empty());
    assert_eq!(
        store.expire_due(T0 + 600).await.unwrap(),
        vec![timed.clone()]
    );
    assert!(store.expire_due(T0 + 601).await.unwrap().is_empty());
    assert_eq!(store.count_active(T0 + 601).await.unwrap(), 0);

    let history = store.ban_history(&timed.target).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, id);
    assert_eq!(history[0].ban, timed);
    assert_eq!(history[0].unbanned_at, Some(T0 + 600));
    assert_eq!(history[0].unban_reason.as_deref(), Some("expired"));

    let history = store.ban_history(&manual.target).await.unwrap();
    assert_eq!(history[0].unbanned_at, Some(T0 + 10));
    assert_eq!(history[0].unban_reason.as_deref(), Some("unban"));
}

#[tokio::test]
async fn active_bans_at_a_given_time() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    let short = ban("192.0.2.1", T0, Some(T0 + 60));
    let long = ban("192.0.2.2", T0, Some(T0 + 3600));
    let permanent = ban("198.51.100.0/24", T0, None);
    store
        .record_bans(&[short.clone(), long.clone(), permanent.clone()])
        .await
        .unwrap();

    let all = vec![short.clone(), long.clone(), permanent.clone()];
    assert_eq!(store.active_bans(T0).await.unwrap(), all);
    assert_eq!(store.active_bans(T0 + 59).await.unwrap(), all);
    // An expiry time is the first second the ban no longer holds, as in Ban::is_active_at.
    assert_eq!(
        store.active_bans(T0 + 60).await.unwrap(),
        vec![long.clone(), permanent.clone()]
    );
    assert_eq!(
        store.active_bans(T0 + 100_000).await.unwrap(),
        vec![permanent.clone()]
    );
    assert_eq!(store.count_active(T0 + 100_000).await.unwrap(), 1);
    assert_eq!(
        store.active_ban(&short.target, T0 + 60).await.unwrap(),
        None
    );
    assert_eq!(
        store.active_ban(&permanent.target, i64::MAX).await.unwrap(),
        Some(permanent)
    );
}

#[tokio::test]
async fn flush_ends_every_active_ban() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    store
        .record_bans(&[
            ban("192.0.2.1", T0, Some(T0 + 60)),
            ban("192.0.2.2", T0, None),
            ban("192.0.2.3", T0, Some(T0 + 5)),
        ])
        .await
        .unwrap();
    // 192.0.2.3 ran out before the flush: it is recorded as expired, not flushed.
    assert_eq!(store.end_bans_all(T0 + 10, "flush").await.unwrap(), 2);
    assert_eq!(store.count_active(T0 + 10).await.unwrap(), 0);
    let reasons = |text: &'static str| {
        let store = store.clone();
        async move {
            store.ban_history(&target(text)).await.unwrap()[0]
                .unban_reason
                .clone()
                .unwrap()
        }
    };
    assert_eq!(reasons("192.0.2.1").await, "flush");
    assert_eq!(reasons("192.0.2.3").await, "expired");
}

#[tokio::test]
async fn offence_count_grows_across_bans() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    let t = target("203.0.113.9");
    assert_eq!(store.offence_count(&t, None).await.unwrap(), 0);
    for n in 0..3u32 {
        let at = T0 + i64::from(n) * 1000;
        let mut b = ban("203.0.113.9", at, Some(at + 100));
        b.offence = store.offence_count(&t, None).await.unwrap() + 1;
        store.record_ban(&b).await.unwrap();
        store.expire_due(at + 100).await.unwrap();
    }
    assert_eq!(store.offence_count(&t, None).await.unwrap(), 3);
    assert_eq!(store.offence_count(&t, Some(T0 + 1000)).await.unwrap(), 2);
    assert_eq!(
        store
            .offence_count(&target("203.0.113.10"), None)
            .await
            .unwrap(),
        0
    );
    let offences: Vec<u32> = store
        .ban_history(&t)
        .await
        .unwrap()
        .iter()
        .map(|r| r.ban.offence)
        .collect();
    assert_eq!(offences, [1, 2, 3]);
    let mut other = ban("2001:db8::/64", T0, None);
    other.offence = 1;
    store.record_ban(&other).await.unwrap();
    assert_eq!(
        store.offence_counts().await.unwrap(),
        [(target("2001:db8::/64"), 1), (t, 3)]
    );
}

#[tokio::test]
async fn offence_counts_page_through_many_targets() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    // 25,000 targets (three pages), the first 100 banned twice.
    let mut bans: Vec<Ban> = (0..25_000u32)
        .map(|i| {
            ban(
                &std::net::Ipv4Addr::from(0x0A00_0000 + i).to_string(),
                T0,
                Some(T0 + 10),
            )
        })
        .collect();
    bans.extend((0..100u32).map(|i| {
        ban(
            &std::net::Ipv4Addr::from(0x0A00_0000 + i).to_string(),
            T0 + 20,
            None,
        )
    }));
    store.record_bans(&bans).await.unwrap();
    let counts = store.offence_counts().await.unwrap();
    assert_eq!(counts.len(), 25_000);
    let twice = counts.iter().filter(|(_, n)| *n == 2).count();
    assert_eq!(twice, 100);
    assert!(counts.iter().all(|(_, n)| *n == 1 || *n == 2));
}

#[tokio::test]
async fn a_new_ban_supersedes_the_active_one() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    let first = ban("192.0.2.7", T0, Some(T0 + 600));
    let second = Ban {
        offence: 2,
        ..ban("192.0.2.7", T0 + 100, None)
    };
    store.record_ban(&first).await.unwrap();
    store.record_ban(&second).await.unwrap();
    assert_eq!(
        store.active_bans(T0 + 200).await.unwrap(),
        vec![second.clone()]
    );
    let history = store.ban_history(&first.target).await.unwrap();
    assert_eq!(history[0].unban_reason.as_deref(), Some("superseded"));
    assert_eq!(history[0].unbanned_at, Some(T0 + 100));
    assert_eq!(history[1].unbanned_at, None);

    // The same inside one bulk call.
    store
        .record_bans(&[ban("192.0.2.8", T0, None), ban("192.0.2.8", T0 + 5, None)])
        .await
        .unwrap();
    assert_eq!(store.count_active(T0 + 10).await.unwrap(), 2);
}

#[tokio::test]
async fn data_survives_close_and_reopen() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    let b = ban("192.0.2.7", T0, None);
    store.record_ban(&b).await.unwrap();
    store
        .whitelist_add(&target("10.0.0.0/8"), "office")
        .await
        .unwrap();
    store
        .put_intel("192.0.2.7", r#"{"country":"XX"}"#, T0)
        .await
        .unwrap();
    store
        .log_activity(T0, "ban", Some(&b.target), "5 failed logins")
        .await
        .unwrap();
    store.close().await;

    let store = open(&dir).await;
    assert_eq!(store.active_bans(T0 + 1).await.unwrap(), vec![b.clone()]);
    let whitelist = store.whitelist_list().await.unwrap();
    assert_eq!(whitelist.len(), 1);
    assert_eq!(whitelist[0].target, target("10.0.0.0/8"));
    assert_eq!(whitelist[0].comment, "office");
    assert_eq!(
        store.get_intel("192.0.2.7").await.unwrap(),
        Some((r#"{"country":"XX"}"#.to_owned(), T0))
    );
    let activity = store.recent_activity(10).await.unwrap();
    assert_eq!(activity.len(), 1);
    assert_eq!(activity[0].action, "ban");
    assert_eq!(activity[0].target, Some(b.target));
    store.close().await;
}

#[tokio::test]
async fn record_bans_bulk_100k() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    let bans: Vec<Ban> = (0..100_000)
        .map(|n| Ban {
            target: nth_addr(n),
            expires_at: (n % 2 == 0).then_some(T0 + 3600),
            ..ban("192.0.2.1", T0, None)
        })
        .collect();

    let started = Instant::now();
    store.record_bans(&bans).await.unwrap();
    let recorded = started.elapsed();
    assert_eq!(store.count_active(T0 + 1).await.unwrap(), 100_000);

    let started = Instant::now();
    let active = store.active_bans(T0 + 1).await.unwrap();
    let read = started.elapsed();
    assert_eq!(active.len(), 100_000);
    assert_eq!(active[0], bans[0]);
    assert_eq!(active[99_999], bans[99_999]);
    assert_eq!(store.active_bans(T0 + 3600).await.unwrap().len(), 50_000);
    eprintln!("record_bans(100k): {recorded:?}; active_bans(100k): {read:?}");
}

#[tokio::test]
async fn whitelist_add_twice_returns_false() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    let net = target("192.168.0.0/16");
    assert!(store.whitelist_add(&net, "lan").await.unwrap());
    assert!(!store.whitelist_add(&net, "again").await.unwrap());
    let list = store.whitelist_list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].comment, "lan");
    assert!(store.whitelist_remove(&net).await.unwrap());
    assert!(!store.whitelist_remove(&net).await.unwrap());
    assert!(store.whitelist_list().await.unwrap().is_empty());
}

#[tokio::test]
async fn log_position_round_trip_and_update() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    assert_eq!(
        store.load_position("/var/log/auth.log").await.unwrap(),
        None
    );
    let mut file = LogPosition {
        source: "/var/log/auth.log".to_owned(),
        inode: Some(1_234_567),
        offset: Some(4096),
        first_line_hash: Some(u64::MAX - 7),
        cursor: None,
        updated_at: T0,
    };
    store.save_position(&file).await.unwrap();
    assert_eq!(
        store.load_position(&file.source).await.unwrap(),
        Some(file.clone())
    );

    // After rotation: a new inode, reading from the start again.
    file.inode = Some(7_654_321);
    file.offset = Some(120);
    file.first_line_hash = Some(42);
    file.updated_at = T0 + 60;
    store.save_position(&file).await.unwrap();
    assert_eq!(
        store.load_position(&file.source).await.unwrap(),
        Some(file.clone())
    );

    let journal = LogPosition {
        source: "journal:_SYSTEMD_UNIT=sshd.service".to_owned(),
        inode: None,
        offset: None,
        first_line_hash: None,
        cursor: Some("s=0123;i=42;b=abcd".to_owned()),
        updated_at: T0,
    };
    store.save_position(&journal).await.unwrap();
    assert_eq!(
        store.load_position(&journal.source).await.unwrap(),
        Some(journal)
    );
    assert_eq!(store.load_position(&file.source).await.unwrap(), Some(file));
}

#[tokio::test]
async fn corrupt_target_is_an_error_naming_the_row() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    store.record_ban(&ban("192.0.2.7", T0, None)).await.unwrap();
    let path = store.path().to_path_buf();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO bans (target, reason, source, banned_at, offence)
         VALUES ('not-an-ip', 'hand-edited', 'dbus', 1, 1) RETURNING id",
    )
    .fetch_one(&mut raw(&path).await)
    .await
    .unwrap();

    let error = store.active_bans(T0).await.unwrap_err();
    match &error {
        StoreError::Corrupt {
            table,
            key,
            column,
            value,
            ..
        } => {
            assert_eq!(*table, "bans");
            assert_eq!(key, &format!("id {id}"));
            assert_eq!(*column, "target");
            assert_eq!(value, "\"not-an-ip\"");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("bans")
            && message.contains(&format!("id {id}"))
            && message.contains("not-an-ip"),
        "{message}"
    );
    // The rest of the store still works.
    assert_eq!(store.count_active(T0).await.unwrap(), 2);
    assert!(store.expire_due(T0).await.unwrap().is_empty());
}

#[tokio::test]
async fn events_and_statistics() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    let event = |addr: &str, service: &str, time: i64| Event {
        addr: addr.parse::<IpAddr>().unwrap(),
        service: Service::new(service),
        kind: EventKind::FailedAuth,
        time: Some(time),
    };
    let mut events = vec![
        event("192.0.2.1", "ssh", T0),
        event("192.0.2.1", "ssh", T0 + 1),
        event("::ffff:192.0.2.1", "nginx", T0 + 2),
        event("2001:db8::5", "ssh", T0 + 3),
        event("198.51.100.9", "postfix", T0 - 1000),
    ];
    events[3].kind = EventKind::Other("sasl_failure".into());
    store.record_events(&events).await.unwrap();

    let recent = store.recent_events(2).await.unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0].event, events[4]);
    assert_eq!(recent[1].event, events[3]);
    assert!(recent[0].id > recent[1].id);
    // A mapped address is stored as the IPv4 address.
    let all = store.recent_events(10).await.unwrap();
    assert_eq!(all[2].event.addr, "192.0.2.1".parse::<IpAddr>().unwrap());

    assert_eq!(
        store.event_counts_by_service(T0).await.unwrap(),
        vec![("ssh".to_owned(), 3), ("nginx".to_owned(), 1)]
    );
    assert_eq!(
        store.top_attackers(T0, 1).await.unwrap(),
        vec![("192.0.2.1".to_owned(), 3)]
    );
    assert_eq!(store.top_attackers(i64::MIN, 10).await.unwrap().len(), 3);
    assert_eq!(store.prune_events(T0, u64::MAX).await.unwrap(), 1);
    assert_eq!(store.recent_events(10).await.unwrap().len(), 4);
    // Beyond the age, the table keeps only the newest rows.
    let newest = store.recent_events(2).await.unwrap();
    assert_eq!(store.prune_events(i64::MIN, 2).await.unwrap(), 2);
    assert_eq!(store.recent_events(10).await.unwrap(), newest);
}

#[tokio::test]
async fn activity_is_written_in_batches_and_pruned_by_age_and_count() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    let target = target("192.0.2.9");
    let entries: Vec<crmonban_store::NewActivity<'_>> = (0..5000)
        .map(|i| crmonban_store::NewActivity {
            at: T0 + i,
            action: "ban",
            target: Some(&target),
            detail: "burst",
        })
        .collect();
    store.log_activities(&entries).await.unwrap();
    assert_eq!(store.recent_activity(10_000).await.unwrap().len(), 5000);
    // Older than T0 + 1000: 1000 rows; then all but the newest 3000.
    assert_eq!(store.prune_activity(T0 + 1000, 3000).await.unwrap(), 2000);
    let kept = store.recent_activity(10_000).await.unwrap();
    assert_eq!(kept.len(), 3000);
    assert_eq!(kept[0].at, T0 + 4999);
    assert_eq!(kept[2999].at, T0 + 2000);
}

#[tokio::test]
async fn intel_is_replaced_and_must_be_json() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    assert_eq!(store.get_intel("192.0.2.7").await.unwrap(), None);
    store
        .put_intel("192.0.2.7", r#"{"asn":1}"#, T0)
        .await
        .unwrap();
    store
        .put_intel("192.0.2.7", r#"{"asn":2}"#, T0 + 5)
        .await
        .unwrap();
    assert_eq!(
        store.get_intel("192.0.2.7").await.unwrap(),
        Some((r#"{"asn":2}"#.to_owned(), T0 + 5))
    );
    assert!(store.put_intel("192.0.2.8", "not json", T0).await.is_err());
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_naming_it() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("crmonban.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let message = Store::open(&path).await.unwrap_err().to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("not a database"),
        "{message}"
    );
}

#[tokio::test]
async fn corrupt_whitelist_row_is_an_error_naming_the_row() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    sqlx::query("INSERT INTO whitelist (net, comment, added_at) VALUES ('10.0.0.0/99', '', 1)")
        .execute(&mut raw(store.path()).await)
        .await
        .unwrap();
    let message = store.whitelist_list().await.unwrap_err().to_string();
    assert!(
        message.starts_with("corrupt row in table whitelist")
            && message.contains("10.0.0.0/99")
            && message.contains("invalid prefix length"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_readers_do_not_fail_busy() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    let mut tasks = Vec::new();
    for writer in 0..6u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..40u32 {
                let b = Ban {
                    target: nth_addr(writer * 1000 + n),
                    ..ban("192.0.2.1", T0, None)
                };
                store.record_ban(&b).await.unwrap();
                store.count_active(T0).await.unwrap();
                if n % 10 == 0 {
                    store.end_ban(&b.target, T0 + 1, "unban").await.unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.count_active(T0 + 2).await.unwrap(), 6 * 36);
}

#[tokio::test]
async fn attacks_by_country_and_network_and_bans_per_hour() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    let event = |addr: &str, time: i64| Event {
        addr: addr.parse::<IpAddr>().unwrap(),
        service: Service::new("ssh"),
        kind: EventKind::FailedAuth,
        time: Some(time),
    };
    let events = vec![
        event("192.0.2.1", T0),
        event("192.0.2.1", T0 + 1),
        event("192.0.2.2", T0 + 2),
        event("198.51.100.7", T0 + 3),
        event("198.51.100.7", T0 + 4),
        // No intel for this one; and one before the window.
        event("203.0.113.5", T0 + 5),
        event("198.51.100.7", T0 - 10),
    ];
    store.record_events(&events).await.unwrap();
    let geo = |country: &str, asn: u32, org: &str| {
        format!(
            r#"{{"location":{{"country_code":"{country}"}},"network":{{"asn":{asn},"organization":"{org}"}}}}"#
        )
    };
    for (addr, json) in [
        ("192.0.2.1", geo("DE", 24940, "Hetzner Online GmbH")),
        ("192.0.2.2", geo("DE", 24940, "Hetzner Online GmbH")),
        ("198.51.100.7", geo("US", 15169, "Google LLC")),
    ] {
        store.put_intel(addr, &json, T0).await.unwrap();
    }
    // WHOIS's country when GeoIP has none.
    store
        .put_intel("203.0.113.9", r#"{"whois":{"country":"NL"}}"#, T0)
        .await
        .unwrap();
    store
        .record_events(&[event("203.0.113.9", T0 + 6)])
        .await
        .unwrap();

    let countries = store.attacks_by_country(T0, 10).await.unwrap();
    let rows: Vec<_> = countries
        .iter()
        .map(|o| (o.origin.as_str(), o.events, o.addresses))
        .collect();
    assert_eq!(rows, [("DE", 3, 2), ("US", 2, 1), ("NL", 1, 1)]);
    let networks = store.attacks_by_network(T0, 1).await.unwrap();
    assert_eq!(networks.len(), 1);
    assert_eq!(
        (
            networks[0].origin.as_str(),
            networks[0].name.as_deref(),
            networks[0].events,
            networks[0].addresses
        ),
        ("AS24940", Some("Hetzner Online GmbH"), 3, 2)
    );

    let now = T0 + 100_000;
    store
        .record_bans(&[
            ban("192.0.2.1", now - 10, None),
            ban("192.0.2.2", now, None),
            ban("192.0.2.3", now - 3 * 3600 - 5, None),
            ban("192.0.2.4", now - 25 * 3600, None),
        ])
        .await
        .unwrap();
    let per_hour = store.bans_per_hour(now, 24).await.unwrap();
    assert_eq!(per_hour.len(), 24);
    assert_eq!(per_hour[23], 2, "{per_hour:?}");
    assert_eq!(per_hour[20], 1, "{per_hour:?}");
    assert_eq!(
        per_hour.iter().sum::<u64>(),
        3,
        "the ban of 25 h ago is outside"
    );
}

#[tokio::test]
async fn events_per_hour_count_by_the_events_own_time() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    let now = T0 + 100_000;
    let event = |time: Option<i64>| Event {
        addr: "192.0.2.1".parse::<IpAddr>().unwrap(),
        service: Service::new("ssh"),
        kind: EventKind::FailedAuth,
        time,
    };
    store
        .record_events(&[
            event(Some(now)),
            event(Some(now - 10)),
            event(Some(now - 2 * 3600 - 1)),
            event(Some(now - 25 * 3600)),
        ])
        .await
        .unwrap();
    let per_hour = store.events_per_hour(now, 24).await.unwrap();
    assert_eq!(per_hour.len(), 24);
    assert_eq!(per_hour[23], 2, "{per_hour:?}");
    assert_eq!(per_hour[21], 1, "{per_hour:?}");
    assert_eq!(per_hour.iter().sum::<u64>(), 3, "25 h ago is outside");
}

#[tokio::test]
async fn events_stamped_ahead_of_our_clock_count_when_they_were_read() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    let now = crmonban_core::unix_now();
    let ahead = Event {
        addr: "192.0.2.1".parse::<IpAddr>().unwrap(),
        service: Service::new("ssh"),
        kind: EventKind::FailedAuth,
        // A remote syslog sender whose clock is two hours ahead.
        time: Some(now + 2 * 3600),
    };
    store.record_events(&[ahead]).await.unwrap();
    let per_hour = store
        .events_per_hour(crmonban_core::unix_now(), 24)
        .await
        .unwrap();
    assert_eq!(per_hour[23], 1, "{per_hour:?}");
}
