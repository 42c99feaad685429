//! The fleet database against a real PostgreSQL (started by the test, on a unix socket in a
//! temporary directory): publishing, reading in order, notifications, who bans what, the fleet
//! whitelist, heartbeats, pruning, refusals of malformed rows, an outage and errors that never
//! show a password. They panic without root (PostgreSQL runs as its own user).

use std::time::Duration;

use crmonban_core::Target;
use crmonban_store::{ChangeKind, FleetStore, Publication, StoreError};
use crmonban_testutil::Postgres;

fn t(s: &str) -> Target {
    Target::parse(s).unwrap()
}

fn ban(target: &str, expires_at: Option<i64>) -> Publication {
    Publication {
        kind: ChangeKind::Ban,
        target: t(target),
        reason: "5 failures of ssh in 40s".into(),
        service: Some("ssh".into()),
        first_seen: Some(1_000),
        last_seen: Some(1_040),
        expires_at,
    }
}

fn unban(target: &str) -> Publication {
    Publication {
        kind: ChangeKind::Unban,
        target: t(target),
        reason: "unban".into(),
        service: None,
        first_seen: None,
        last_seen: None,
        expires_at: None,
    }
}

#[tokio::test]
async fn root_changes_are_published_in_order_and_announced_by_id() {
    let pg = Postgres::start();
    let fleet = FleetStore::connect(&pg.url()).await.unwrap();
    assert_eq!(fleet.last_id().await.unwrap(), 0);
    let mut listener = fleet.listener().await.unwrap();

    let ids = fleet
        .publish(
            "web1",
            &[ban("203.0.113.7", Some(5_000)), ban("2001:db8::/48", None)],
            1_050,
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1]);
    // One notification per publication, carrying the last id (a number, never a ban).
    let note = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a notification")
        .unwrap();
    assert_eq!(note.channel(), crmonban_store::FLEET_CHANNEL);
    assert_eq!(note.payload(), ids[1].to_string());

    let more = fleet
        .publish("web2", &[unban("203.0.113.7")], 1_060)
        .await
        .unwrap();
    let all = fleet.changes_after(0, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.id).collect::<Vec<_>>(),
        [ids[0], ids[1], more[0]]
    );
    assert_eq!(all[0].node, "web1");
    assert_eq!(all[0].change, ban("203.0.113.7", Some(5_000)));
    assert_eq!(all[1].change.target, t("2001:db8::/48"));
    assert_eq!(all[1].change.expires_at, None);
    assert_eq!(all[2].change.kind, ChangeKind::Unban);
    assert_eq!(all[2].created_at, 1_060);
    // Reading on from a position, in pages.
    let after = fleet.changes_after(ids[0], 1).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, ids[1]);
    assert_eq!(fleet.last_id().await.unwrap(), more[0]);
}

#[tokio::test]
async fn root_reporters_count_nodes_whose_ban_is_in_force_or_recent_and_not_withdrawn() {
    let pg = Postgres::start();
    let fleet = FleetStore::connect(&pg.url()).await.unwrap();
    let x = "198.51.100.9";
    let y = "2001:db8:9::/48";
    for node in ["a", "b", "c"] {
        fleet
            .publish(node, &[ban(x, Some(10_000))], 100)
            .await
            .unwrap();
    }
    // d's ban of x ended at 500 (published at 100: outside a window from 900, inside one
    // from 50); e banned it and lifted its ban (a withdrawn report, whenever).
    fleet.publish("d", &[ban(x, Some(500))], 100).await.unwrap();
    fleet
        .publish("e", &[ban(x, None), unban(x)], 100)
        .await
        .unwrap();
    fleet.publish("a", &[ban(y, Some(700))], 100).await.unwrap();
    let count = |targets: Vec<Target>, since: i64| {
        let fleet = fleet.clone();
        async move { fleet.reporters(&targets, since, 1_000).await.unwrap() }
    };
    let both = count(vec![t(x), t(y), t("198.51.100.10")], 900).await;
    assert_eq!(both.get(&t(x)), Some(&3));
    assert_eq!(
        both.get(&t(y)),
        None,
        "ended and published before the window"
    );
    assert_eq!(both.get(&t("198.51.100.10")), None);
    let wide = count(vec![t(x), t(y)], 50).await;
    assert_eq!((wide.get(&t(x)), wide.get(&t(y))), (Some(&4), Some(&1)));
    fleet.publish("a", &[unban(x)], 200).await.unwrap();
    assert_eq!(count(vec![t(x)], 900).await.get(&t(x)), Some(&2));
    assert!(count(Vec::new(), 0).await.is_empty());

    // Pruning keeps what is in force (b's and c's bans): a's bans of x and y (replaced, and
    // ended), d's (ended) and e's permanent one (replaced by an unban) go, and the unbans
    // themselves say nothing any more.
    let pruned = fleet.prune(5_000).await.unwrap();
    let left = fleet.changes_after(0, 100).await.unwrap();
    assert_eq!(pruned, Some(6), "{left:?}");
    let nodes: Vec<&str> = left.iter().map(|c| c.node.as_str()).collect();
    assert_eq!(nodes, ["b", "c"]);
    assert_eq!(count(vec![t(x)], 900).await.get(&t(x)), Some(&2));
}

#[tokio::test]
async fn root_one_node_prunes_at_a_time() {
    let pg = Postgres::start();
    let fleet = FleetStore::connect(&pg.url()).await.unwrap();
    fleet
        .publish(
            "a",
            &[ban("203.0.113.1", Some(150)), unban("203.0.113.1")],
            100,
        )
        .await
        .unwrap();
    // Another node holds the pruning lock: this one does nothing and says so.
    use sqlx::Connection;
    let mut other = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
    let key = i64::from_be_bytes(*b"crmnprun");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(key)
        .execute(&mut other)
        .await
        .unwrap();
    assert_eq!(fleet.prune(1_000).await.unwrap(), None);
    assert_eq!(fleet.changes_after(0, 10).await.unwrap().len(), 2);
    // Released (a closed connection's backend may hold it a moment longer).
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(key)
        .execute(&mut other)
        .await
        .unwrap();
    assert_eq!(fleet.prune(1_000).await.unwrap(), Some(2));
    other.close().await.unwrap();
}

#[tokio::test]
async fn root_nodes_beat_and_the_whitelist_holds_networks() {
    let pg = Postgres::start();
    let fleet = FleetStore::connect(&pg.url()).await.unwrap();
    fleet.heartbeat("web1", "0.1.0", 100).await.unwrap();
    fleet.heartbeat("web2", "0.1.0", 110).await.unwrap();
    fleet.heartbeat("web1", "0.2.0", 130).await.unwrap();
    let nodes = fleet.nodes().await.unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(
        (
            nodes[0].name.as_str(),
            nodes[0].version.as_str(),
            nodes[0].first_seen,
            nodes[0].last_seen
        ),
        ("web1", "0.2.0", 100, 130)
    );
    // A node name the schema refuses.
    assert!(fleet.heartbeat("-bad name", "0.1.0", 1).await.is_err());

    assert!(
        fleet
            .whitelist_add(&t("10.0.0.0/8"), "office", 1)
            .await
            .unwrap()
    );
    assert!(
        !fleet
            .whitelist_add(&t("10.0.0.0/8"), "again", 2)
            .await
            .unwrap()
    );
    assert_eq!(
        fleet.whitelist().await.unwrap(),
        [(t("10.0.0.0/8"), "office".to_owned())]
    );
}

#[tokio::test]
async fn root_the_database_refuses_malformed_targets_and_reads_refuse_odd_rows() {
    let pg = Postgres::start();
    let fleet = FleetStore::connect(&pg.url()).await.unwrap();
    // A compromised node writing SQL by hand still cannot store a non-address...
    for bad in ["not-an-address", "10.0.0.1/8", "300.1.1.1", ""] {
        let sql = format!(
            "INSERT INTO fleet_changes (node, kind, target, created_at) VALUES ('x', 'ban', '{bad}', 1)"
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "psql -h {} -U crmonban -d postgres -X -q -c \"{sql}\" 2>&1",
                pg.socket_dir().display()
            ))
            .output()
            .unwrap();
        assert!(
            !out.status.success() || String::from_utf8_lossy(&out.stdout).contains("ERROR"),
            "{bad:?} was stored"
        );
    }
    // ...and should someone drop the check, what is not a target is refused when read.
    pg.psql("ALTER TABLE fleet_changes DROP CONSTRAINT fleet_changes_target_check");
    pg.psql(
        "INSERT INTO fleet_changes (node, kind, target, created_at) VALUES ('x', 'ban', '0.0.0.0/0; DROP TABLE x', 1)",
    );
    let err = fleet.changes_after(0, 10).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

#[tokio::test]
async fn root_an_outage_fails_calls_and_the_store_works_again_when_it_returns() {
    let mut pg = Postgres::start();
    let fleet = FleetStore::connect(&pg.url()).await.unwrap();
    fleet
        .publish("a", &[ban("192.0.2.1", None)], 1)
        .await
        .unwrap();
    pg.stop();
    let down = fleet.publish("a", &[ban("192.0.2.2", None)], 2).await;
    assert!(down.is_err());
    pg.start_again();
    // The pool opens new connections by itself.
    let mut again = Err(None);
    for _ in 0..50 {
        match fleet.publish("a", &[ban("192.0.2.3", None)], 3).await {
            Ok(ids) => {
                again = Ok(ids);
                break;
            }
            Err(e) => again = Err(Some(e.to_string())),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_ok(), "{again:?}");
    let targets: Vec<String> = fleet
        .changes_after(0, 10)
        .await
        .unwrap()
        .iter()
        .map(|c| c.change.target.to_string())
        .collect();
    assert_eq!(targets, ["192.0.2.1", "192.0.2.3"]);
}

#[tokio::test]
async fn root_connection_errors_name_the_server_and_never_the_password() {
    let pg = Postgres::start();
    let url = pg
        .url()
        .replace("crmonban@", "crmonban:s3cr3t-pass@")
        .replace("/postgres?", "/no_such_database?");
    let err = FleetStore::connect(&url).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("s3cr3t-pass"), "{text}");
    assert!(
        text.contains("cannot connect to the fleet database crmonban@")
            && text.contains("no_such_database"),
        "{text}"
    );
}

/// Concurrent publishers and a follower reading on from its position, as every node does:
/// the follower must read every change. (Ids are drawn before commit; a transaction given
/// lower ids that committed after a later one had been read was once passed over for good.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn root_a_follower_misses_no_change_of_concurrent_publishers() {
    let pg = Postgres::start();
    let fleet = FleetStore::connect(&pg.url()).await.unwrap();
    let publishers: Vec<_> = (0..8u32)
        .map(|p| {
            let url = pg.url();
            tokio::spawn(async move {
                let store = FleetStore::connect(&url).await.unwrap();
                for i in 0..150u32 {
                    let target = format!("10.{p}.{}.{}", i / 256, i % 256);
                    let size = 1 + (i % 3) as usize;
                    let changes = vec![ban(&target, Some(10_000)); size];
                    store
                        .publish(&format!("n{p}"), &changes, 100)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let expected: usize = 8 * (0..150).map(|i| 1 + i % 3).sum::<usize>();
    let mut seen = Vec::new();
    let mut cursor = 0;
    let started = std::time::Instant::now();
    while seen.len() < expected && started.elapsed() < Duration::from_secs(60) {
        let page = fleet.changes_after(cursor, 50).await.unwrap();
        if let Some(last) = page.last() {
            cursor = last.id;
        }
        seen.extend(page.iter().map(|c| c.id));
    }
    for publisher in publishers {
        publisher.await.unwrap();
    }
    // Whatever is left after the publishers finished.
    seen.extend(
        fleet
            .changes_after(cursor, 100_000)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id),
    );
    let all: Vec<i64> = fleet
        .changes_after(0, 100_000)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(all.len(), expected);
    let missed: Vec<&i64> = all.iter().filter(|id| !seen.contains(id)).collect();
    assert!(
        missed.is_empty(),
        "{} of {expected} changes passed over by the follower: {:?}",
        missed.len(),
        &missed[..missed.len().min(10)]
    );
}

/// A node with a role of its own writes only under its own name: it cannot publish as
/// another node (past the others' `accept` lists, or lifting that node's bans) nor say
/// another is alive. Nodes sharing the owner's role are not checked.
#[tokio::test]
async fn root_a_node_with_a_role_of_its_own_writes_only_under_its_name() {
    let pg = Postgres::start();
    let owner = FleetStore::connect(&pg.url()).await.unwrap();
    pg.psql(
        "CREATE ROLE web1 LOGIN;
         GRANT SELECT, INSERT ON fleet_changes TO web1;
         GRANT SELECT, INSERT, UPDATE ON fleet_nodes TO web1;
         GRANT SELECT ON fleet_whitelist, _sqlx_migrations TO web1;
         GRANT USAGE ON SEQUENCE fleet_changes_id_seq TO web1;",
    );
    // It finds the schema current and does not try to migrate it (it may not).
    let web1 = FleetStore::connect(&pg.url().replace("crmonban@", "web1@"))
        .await
        .unwrap();
    assert_eq!(web1.server().split('@').next(), Some("web1"));
    web1.publish("web1", &[ban("203.0.113.5", None)], 100)
        .await
        .unwrap();
    web1.heartbeat("web1", "0.1.0", 100).await.unwrap();

    let forged = web1
        .publish("web2", &[unban("203.0.113.6")], 100)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        forged.contains("role web1 may write only as node web1, not as web2"),
        "{forged}"
    );
    let beat = web1.heartbeat("web2", "0.1.0", 100).await.unwrap_err();
    assert!(beat.to_string().contains("not as web2"), "{beat}");
    // Without DELETE it cannot prune (nor delete anyone's changes).
    assert!(web1.prune(1_000).await.is_err());

    // The owner's role speaks for any node.
    owner
        .publish("web2", &[ban("203.0.113.7", None)], 100)
        .await
        .unwrap();
    let nodes: Vec<String> = owner
        .changes_after(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.node)
        .collect();
    assert_eq!(nodes, ["web1", "web2"]);
}
