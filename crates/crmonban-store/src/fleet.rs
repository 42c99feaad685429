//! The fleet database ([`FleetStore`]): the PostgreSQL database crmonban nodes share bans
//! through (`[fleet]`), beside each node's own SQLite record. Its schema lives in
//! `migrations/postgres/` and is applied at [`FleetStore::connect`]; nothing here is SQLite's.
//!
//! Shared bans and unbans are rows of one append-only table, numbered in the order the database
//! took them; every insert sends `NOTIFY crmonban_fleet` with the last id, and a node reads the
//! rows after the last id it applied ([`FleetStore::changes_after`]): a notification carries a
//! number, never a ban, so PostgreSQL's payload limit never applies and a node that missed
//! notifications (offline, reconnecting) catches up from the table. Heartbeats say which nodes
//! are alive; the fleet whitelist holds networks no node ever bans, whoever publishes them.
//! Targets are crmonban's canonical text and the database refuses anything `cidr` does not
//! parse; every read parses them again and refuses what is not a [`Target`].

use std::collections::HashMap;
use std::time::Duration;

use crmonban_core::Target;
use sqlx::Row;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

use crate::StoreError;
use crate::error::query;

static FLEET_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The channel every insert notifies, with the highest id as its payload.
pub const FLEET_CHANNEL: &str = "crmonban_fleet";

/// Connections of one store's pool, its listener included (it keeps one for itself).
const MAX_CONNECTIONS: u32 = 3;
/// The advisory lock key of publishing ("crmnpubl"): one publication commits at a time.
const PUBLISH_LOCK: i64 = i64::from_be_bytes(*b"crmnpubl");
/// The advisory lock key of pruning ("crmnprun"): one node prunes at a time.
const PRUNE_LOCK: i64 = i64::from_be_bytes(*b"crmnprun");
/// How long a connection attempt may take before the fleet counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A shared ban or unban.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// A ban, lasting until `expires_at` (or for good).
    Ban,
    /// The end of the publishing node's ban of the target.
    Unban,
}

impl ChangeKind {
    /// How both databases store it.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            ChangeKind::Ban => "ban",
            ChangeKind::Unban => "unban",
        }
    }

    /// The kind stored as `text`, if it is one.
    pub(crate) fn parse(text: &str) -> Option<ChangeKind> {
        match text {
            "ban" => Some(ChangeKind::Ban),
            "unban" => Some(ChangeKind::Unban),
            _ => None,
        }
    }
}

/// What a node publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    /// Ban or unban.
    pub kind: ChangeKind,
    /// The address or network.
    pub target: Target,
    /// Why (the ban's reason, or the unban's).
    pub reason: String,
    /// The service whose log led to the ban, if any.
    pub service: Option<String>,
    /// First and last failure that led to it (Unix seconds), when a detector decided.
    pub first_seen: Option<i64>,
    /// See `first_seen`.
    pub last_seen: Option<i64>,
    /// When the ban ends (Unix seconds); `None`: permanent (always `None` for an unban).
    pub expires_at: Option<i64>,
}

/// A published change as the fleet database holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetChange {
    /// Its place in the fleet's order.
    pub id: i64,
    /// The node that published it.
    pub node: String,
    /// What it says.
    pub change: Publication,
    /// When the fleet database took it (Unix seconds).
    pub created_at: i64,
}

/// A node of the fleet and its last heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetNode {
    /// Its `[fleet] node_name`.
    pub name: String,
    /// The crmonban version it runs.
    pub version: String,
    /// Its first and latest heartbeat (Unix seconds).
    pub first_seen: i64,
    /// See `first_seen`.
    pub last_seen: i64,
}

/// A handle on the fleet database. Cheap to clone; clones share one pool.
#[derive(Clone, Debug)]
pub struct FleetStore {
    pool: PgPool,
    options: PgConnectOptions,
}

impl FleetStore {
    /// Connects to the database at `url` (`postgres://user[:password]@host[:port]/db`, with
    /// `?host=/run/postgresql` for a unix socket and `sslmode=` for TLS) and brings its schema
    /// up to date. The error names the server and database, never the password.
    pub async fn connect(url: &str) -> Result<FleetStore, StoreError> {
        let options: PgConnectOptions = url.parse().map_err(|source| StoreError::FleetConnect {
            server: "the [fleet] url".to_owned(),
            source,
        })?;
        Self::connect_with(options).await
    }

    /// [`FleetStore::connect`] with options built by the caller (a password read from a file).
    pub async fn connect_with(options: PgConnectOptions) -> Result<FleetStore, StoreError> {
        let server = describe(&options);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(|source| StoreError::FleetConnect {
                server: server.clone(),
                source,
            })?;
        // A node with a role of its own may not create or alter tables: it finds the schema
        // up to date (its owner migrated it) and leaves it alone.
        if !schema_is_current(&pool).await
            && let Err(source) = FLEET_MIGRATOR.run(&pool).await
        {
            pool.close().await;
            return Err(StoreError::FleetMigrate { server, source });
        }
        tracing::debug!(%server, "fleet database open");
        Ok(FleetStore { pool, options })
    }

    /// `user@host:port/database` of the connection (no password), for messages.
    pub fn server(&self) -> String {
        describe(&self.options)
    }

    /// A connection that receives the fleet's notifications ([`FLEET_CHANNEL`]); each payload
    /// is the highest change id at the time.
    pub async fn listener(&self) -> Result<PgListener, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(query("listen to the fleet"))?;
        listener
            .listen(FLEET_CHANNEL)
            .await
            .map_err(query("listen to the fleet"))?;
        Ok(listener)
    }

    /// Records that `node` is alive now (`now`, Unix seconds), running `version`.
    pub async fn heartbeat(&self, node: &str, version: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO fleet_nodes (name, version, first_seen, last_seen) VALUES ($1, $2, $3, $3)
             ON CONFLICT (name) DO UPDATE SET version = $2, last_seen = $3",
        )
        .bind(node)
        .bind(version)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(query("record a fleet heartbeat"))?;
        Ok(())
    }

    /// Publishes `changes` of `node` in one transaction, notifying the fleet once; returns
    /// their ids, in order.
    ///
    /// Publications are serialised by an advisory lock held until the commit, so ids become
    /// visible in the order they were given: a reader that has seen id N has seen every id
    /// below it. Without it, a transaction given lower ids could commit after a later one had
    /// been read, behind every follower's position, and never be applied anywhere. To hold the
    /// lock for as short a time as can be, it is all one statement (one round trip, its own
    /// transaction): take the lock, insert the rows in the order given, notify.
    pub async fn publish(
        &self,
        node: &str,
        changes: &[Publication],
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let column = |f: fn(&Publication) -> Option<i64>| changes.iter().map(f).collect::<Vec<_>>();
        let row = sqlx::query(
            "WITH locked AS (SELECT pg_advisory_xact_lock($10)),
             added AS (
               INSERT INTO fleet_changes
                 (node, kind, target, reason, service, first_seen, last_seen, expires_at,
                  created_at)
               SELECT $1, c.kind, c.target, c.reason, c.service, c.first_seen, c.last_seen,
                      c.expires_at, $9
                 FROM locked,
                      unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                             $7::bigint[], $8::bigint[])
                      WITH ORDINALITY
                      AS c(kind, target, reason, service, first_seen, last_seen, expires_at, n)
                ORDER BY c.n
               RETURNING id)
             SELECT array_agg(id ORDER BY id) AS ids,
                    pg_notify($11, max(id)::text)::text AS notified
               FROM added",
        )
        .bind(node)
        .bind(changes.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>())
        .bind(
            changes
                .iter()
                .map(|c| c.target.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            changes
                .iter()
                .map(|c| c.reason.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            changes
                .iter()
                .map(|c| c.service.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(column(|c| c.first_seen))
        .bind(column(|c| c.last_seen))
        .bind(column(|c| c.expires_at))
        .bind(now)
        .bind(PUBLISH_LOCK)
        .bind(FLEET_CHANNEL)
        .fetch_one(&self.pool)
        .await
        .map_err(query("publish to the fleet"))?;
        // Numbered in the order given (ORDER BY n), returned sorted.
        row.try_get("ids").map_err(query("publish to the fleet"))
    }

    /// Up to `limit` changes after id `after`, in order. A row whose target or kind does not
    /// read back is [`StoreError::Corrupt`].
    pub async fn changes_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<FleetChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, node, kind, target, reason, service, first_seen, last_seen, expires_at,
                    created_at
               FROM fleet_changes WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(query("read the fleet's changes"))?;
        rows.iter().map(change_of).collect()
    }

    /// The bans in force at `now` (each node's latest change of a target, when it is a ban
    /// that has not ended), newest first, `limit` from `offset`.
    pub async fn active_bans(
        &self,
        now: i64,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<FleetChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM (
                SELECT DISTINCT ON (node, target)
                       id, node, kind, target, reason, service, first_seen, last_seen,
                       expires_at, created_at
                  FROM fleet_changes ORDER BY node, target, id DESC
             ) latest
             WHERE kind = 'ban' AND (expires_at IS NULL OR expires_at > $1)
             ORDER BY id DESC OFFSET $2 LIMIT $3",
        )
        .bind(now)
        .bind(offset)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(query("list the fleet's bans"))?;
        rows.iter().map(change_of).collect()
    }

    /// The highest change id (0 when there is none): where a node that has never applied
    /// anything starts, when it should not apply the fleet's past.
    pub async fn last_id(&self) -> Result<i64, StoreError> {
        let id: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM fleet_changes")
            .fetch_one(&self.pool)
            .await
            .map_err(query("read the fleet's last change"))?;
        Ok(id.unwrap_or(0))
    }

    /// How many nodes report each of `targets` (those reported by none are absent): a node
    /// counts when its latest change of the target is a ban that is in force at `now` or that
    /// it published at or after `since` (an unban withdraws its report). One query for all.
    pub async fn reporters(
        &self,
        targets: &[Target],
        since: i64,
        now: i64,
    ) -> Result<HashMap<Target, u32>, StoreError> {
        if targets.is_empty() {
            return Ok(HashMap::new());
        }
        let texts: Vec<String> = targets.iter().map(Target::to_string).collect();
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT target, count(*) FROM (
                SELECT DISTINCT ON (target, node) target, node, kind, expires_at, created_at
                  FROM fleet_changes WHERE target = ANY($1) ORDER BY target, node, id DESC
             ) latest
             WHERE kind = 'ban'
               AND (created_at >= $2 OR expires_at IS NULL OR expires_at > $3)
             GROUP BY target",
        )
        .bind(&texts)
        .bind(since)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(query("count the nodes reporting addresses"))?;
        // Read back by the text sent: the database's own rows are not parsed again.
        let by_text: HashMap<&str, &Target> =
            texts.iter().map(String::as_str).zip(targets).collect();
        Ok(rows
            .into_iter()
            .filter_map(|(text, count)| {
                let target = **by_text.get(text.as_str())?;
                Some((target, u32::try_from(count).unwrap_or(u32::MAX)))
            })
            .collect())
    }

    /// The fleet's nodes, by name.
    pub async fn nodes(&self) -> Result<Vec<FleetNode>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, version, first_seen, last_seen FROM fleet_nodes ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query("list the fleet's nodes"))?;
        Ok(rows
            .iter()
            .map(|row| FleetNode {
                name: row.get("name"),
                version: row.get("version"),
                first_seen: row.get("first_seen"),
                last_seen: row.get("last_seen"),
            })
            .collect())
    }

    /// The fleet whitelist: networks no node bans, with their comments.
    pub async fn whitelist(&self) -> Result<Vec<(Target, String)>, StoreError> {
        let rows = sqlx::query("SELECT network, comment FROM fleet_whitelist ORDER BY network")
            .fetch_all(&self.pool)
            .await
            .map_err(query("read the fleet whitelist"))?;
        rows.iter()
            .map(|row| {
                let text: String = row.get("network");
                let target = Target::parse(&text).map_err(|e| StoreError::Corrupt {
                    table: "fleet_whitelist",
                    key: format!("network {text:?}"),
                    column: "network",
                    value: format!("{text:?}"),
                    problem: e.to_string(),
                })?;
                Ok((target, row.get("comment")))
            })
            .collect()
    }

    /// Adds `network` to the fleet whitelist; false when it was there.
    pub async fn whitelist_add(
        &self,
        network: &Target,
        comment: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO fleet_whitelist (network, comment, added_at) VALUES ($1, $2, $3)
             ON CONFLICT (network) DO NOTHING",
        )
        .bind(network.to_string())
        .bind(comment)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(query("add to the fleet whitelist"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes changes taken before `before` (Unix seconds) that no longer say anything by
    /// then: unbans, bans expired, and bans a later change of the same node and target
    /// replaced. Bans in force stay, whatever their age. Returns how many rows went, or `None`
    /// when another node is pruning now (one at a time: a transaction-scoped advisory lock). A
    /// node offline for longer than the horizon misses the pruned unbans (its copies of those
    /// bans then last until they expire): keep the horizon well beyond any outage.
    pub async fn prune(&self, before: i64) -> Result<Option<u64>, StoreError> {
        let action = "prune the fleet's changes";
        let mut tx = self.pool.begin().await.map_err(query(action))?;
        let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(PRUNE_LOCK)
            .fetch_one(&mut *tx)
            .await
            .map_err(query(action))?;
        if !ours {
            return Ok(None);
        }
        let done = sqlx::query(
            "DELETE FROM fleet_changes c
              WHERE c.created_at < $1
                AND (c.kind = 'unban'
                     OR (c.expires_at IS NOT NULL AND c.expires_at < $1)
                     OR EXISTS (SELECT 1 FROM fleet_changes later
                                 WHERE later.node = c.node AND later.target = c.target
                                   AND later.id > c.id))",
        )
        .bind(before)
        .execute(&mut *tx)
        .await
        .map_err(query(action))?;
        tx.commit().await.map_err(query(action))?;
        Ok(Some(done.rows_affected()))
    }

    /// Closes every connection of this store and its clones.
    pub async fn close(self) {
        self.pool.close().await;
    }
}

/// Whether every migration this build knows has been applied to the fleet database (false
/// when that cannot be read: the migrator then says why).
async fn schema_is_current(pool: &PgPool) -> bool {
    let Some(latest) = FLEET_MIGRATOR.iter().map(|m| m.version).max() else {
        return true;
    };
    // An error (no such table yet: a new database) counts as not current.
    let applied: Result<Option<i64>, _> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await;
    matches!(applied, Ok(Some(version)) if version >= latest)
}

fn change_of(row: &sqlx::postgres::PgRow) -> Result<FleetChange, StoreError> {
    let id: i64 = row.get("id");
    Ok(FleetChange {
        id,
        node: row.get("node"),
        change: publication_of("fleet_changes", id, row)?,
        created_at: row.get("created_at"),
    })
}

/// The publication a row of `table` (the fleet's changes, or this node's outbox, in either
/// database) holds; a target or kind that does not read back is [`StoreError::Corrupt`].
pub(crate) fn publication_of<R>(
    table: &'static str,
    id: i64,
    row: &R,
) -> Result<Publication, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let corrupt = |column: &'static str, value: &str, problem: String| StoreError::Corrupt {
        table,
        key: format!("id {id}"),
        column,
        value: format!("{value:?}"),
        problem,
    };
    let text: String = row.get("target");
    let target = Target::parse(&text).map_err(|e| corrupt("target", &text, e.to_string()))?;
    let text: String = row.get("kind");
    let kind = ChangeKind::parse(&text)
        .ok_or_else(|| corrupt("kind", &text, "neither ban nor unban".into()))?;
    Ok(Publication {
        kind,
        target,
        reason: row.get("reason"),
        service: row.get("service"),
        first_seen: row.get("first_seen"),
        last_seen: row.get("last_seen"),
        expires_at: row.get("expires_at"),
    })
}

/// `user@host:port/database` of a connection to the fleet database (the socket directory as
/// the host for a unix socket), never its password: how messages name the fleet database.
pub fn describe(options: &PgConnectOptions) -> String {
    format!(
        "{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("(default database)")
    )
}
