//! The fleet outbox and cursor in the node's SQLite database: publications wait in order,
//! survive a reopen (a restart), leave when sent; the cursor is kept per fleet database.

use crmonban_core::Target;
use crmonban_store::{ChangeKind, Publication, Store, StoreError};

fn publication(kind: ChangeKind, target: &str) -> Publication {
    Publication {
        kind,
        target: Target::parse(target).unwrap(),
        reason: "5 failures of ssh in 12s".into(),
        service: Some("ssh".into()),
        first_seen: Some(100),
        last_seen: Some(112),
        expires_at: Some(3_700),
    }
}

#[tokio::test]
async fn publications_wait_in_order_across_a_restart_until_sent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crmonban.db");
    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.outbox_len().await.unwrap(), 0);
    let first = [
        publication(ChangeKind::Ban, "203.0.113.7"),
        publication(ChangeKind::Ban, "2001:db8::/48"),
    ];
    store.outbox_push(&first, 120).await.unwrap();
    store
        .outbox_push(&[publication(ChangeKind::Unban, "203.0.113.7")], 130)
        .await
        .unwrap();
    store.close().await;

    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.outbox_len().await.unwrap(), 3);
    let waiting = store.outbox_peek(2).await.unwrap();
    assert_eq!(waiting.len(), 2);
    assert_eq!(waiting[0].1, first[0]);
    assert_eq!(waiting[1].1, first[1]);
    store.outbox_remove(waiting[1].0).await.unwrap();
    let rest = store.outbox_peek(10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].1.kind, ChangeKind::Unban);
    assert!(rest[0].0 > waiting[1].0);
}

#[tokio::test]
async fn the_cursor_is_kept_per_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("crmonban.db")).await.unwrap();
    assert_eq!(store.fleet_cursor("a@db1:5432/fleet").await.unwrap(), None);
    store
        .set_fleet_cursor("a@db1:5432/fleet", 42, 1)
        .await
        .unwrap();
    store
        .set_fleet_cursor("a@db1:5432/fleet", 57, 2)
        .await
        .unwrap();
    store
        .set_fleet_cursor("a@db2:5432/fleet", 3, 2)
        .await
        .unwrap();
    assert_eq!(
        store.fleet_cursor("a@db1:5432/fleet").await.unwrap(),
        Some(57)
    );
    assert_eq!(
        store.fleet_cursor("a@db2:5432/fleet").await.unwrap(),
        Some(3)
    );
}

#[tokio::test]
async fn a_row_edited_into_nonsense_is_reported_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crmonban.db");
    let store = Store::open(&path).await.unwrap();
    store
        .outbox_push(&[publication(ChangeKind::Ban, "192.0.2.1")], 1)
        .await
        .unwrap();
    store.close().await;
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        path.display()
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE fleet_outbox SET target = 'everyone'")
        .execute(&mut conn)
        .await
        .unwrap();
    let store = Store::open(&path).await.unwrap();
    let err = store.outbox_peek(10).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                table: "fleet_outbox",
                ..
            }
        ),
        "{err}"
    );
}
