//! crmonban-store owns crmonban's databases and is the only crate that writes SQL: the node's
//! own SQLite database ([`Store`]) and the fleet's shared PostgreSQL one ([`FleetStore`],
//! `[fleet]`; its schema in `migrations/postgres/`, no SQL shared between the two). The SQLite
//! store keeps the full ban history (ended and expired bans stay, for repeat-offender
//! escalation), detector events, the intel cache, the whitelist, the activity log and the read
//! position of every log source, behind a typed async API ([`Store`]) that speaks
//! `crmonban_core` types.
//!
//! The schema lives in `migrations/sqlite/` and is applied by [`Store::open`]. Times are `i64` Unix
//! seconds; targets are stored as the canonical text of [`crmonban_core::Target`] and parsed
//! back on every read, so a corrupt row is reported as [`StoreError::Corrupt`] and never
//! panics. This crate touches no firewall and spawns no task; callers decide when to write
//! (the engine writes a ban only after the firewall accepted it).
//!
//! It also reads fail2ban's own database, read-only, for the migration from fail2ban
//! ([`read_fail2ban_bans`], used by crmonban-fail2ban): those queries are SQL too.
//!
//! # Example
//!
//! ```
//! use crmonban_core::{Ban, BanSource, Target, unix_now};
//! use crmonban_store::Store;
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let dir = tempfile::tempdir()?;
//!     let store = Store::open(&dir.path().join("crmonban.db")).await?;
//!     let (now, target) = (unix_now(), Target::parse("192.0.2.7")?);
//!     store
//!         .record_ban(&Ban {
//!             target,
//!             reason: "5 failures in 600 s".into(),
//!             source: BanSource::Detector,
//!             service: Some("ssh".into()),
//!             banned_at: now,
//!             expires_at: Some(now + 3600),
//!             offence: 1,
//!         })
//!         .await?;
//!     assert_eq!(store.active_bans(now).await?.len(), 1);
//!
//!     // Ending a ban keeps its row: the history drives escalation.
//!     assert!(store.end_ban(&target, now, "unban").await?);
//!     assert!(store.active_ban(&target, now).await?.is_none());
//!     assert_eq!(store.offence_count(&target, None).await?, 1);
//!     store.close().await;
//!     Ok(())
//! }
//! ```

#![warn(missing_docs)]

mod activity;
mod bans;
mod bulk;
mod error;
mod events;
mod fail2ban;
mod fleet;
mod intel;
mod outbox;
mod positions;
mod restore;
mod rows;
mod stats;
mod whitelist;
mod write;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use activity::{ActivityEntry, NewActivity};
pub use bans::BanRecord;
pub use error::StoreError;
pub use events::EventRecord;
pub use fail2ban::{Fail2banBan, Fail2banDbError, read_fail2ban_bans};
pub use fleet::{
    ChangeKind, FLEET_CHANNEL, FleetChange, FleetNode, FleetStore, Publication,
    describe as describe_fleet,
};
pub use intel::IntelSummary;
pub use positions::LogPosition;
/// Where the fleet database is and how to log in (sqlx's PostgreSQL options: URL, host or
/// socket, password, TLS), for [`FleetStore::connect_with`].
pub use sqlx::postgres::PgConnectOptions as FleetConnectOptions;

/// Parses a fleet database URL (`postgres://...`); the error is the driver's reason.
pub fn parse_fleet_url(url: &str) -> Result<FleetConnectOptions, String> {
    url.parse::<FleetConnectOptions>()
        .map_err(|e| e.to_string())
}
pub use stats::AttackOrigin;
pub use whitelist::WhitelistEntry;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite serializes writers; a few connections let reads (D-Bus queries, restore) run beside
/// the one writer without holding many file descriptors.
const MAX_CONNECTIONS: u32 = 4;

/// Page cache per connection, in KiB (SQLite allocates it only as pages are read).
const CACHE_KIB: u32 = 32 * 1024;

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A handle on the database. Cheap to clone; clones share one connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    path: Arc<Path>,
}

impl Store {
    /// Opens (creating it when missing) the database at `path` in WAL mode and brings its
    /// schema up to date.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across a crash of crmonban in WAL mode; only a power cut can
            // lose the last transactions, which the firewall (in RAM) loses anyway.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // The default 2 MiB page cache is smaller than the ban indices at a million
            // rows; a bulk insert then went to the OS for most index pages.
            .pragma("cache_size", format!("-{CACHE_KIB}"));
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        if let Err(source) = MIGRATOR.run(&pool).await {
            pool.close().await;
            return Err(StoreError::Migrate {
                path: path.to_path_buf(),
                source,
            });
        }
        tracing::debug!(path = %path.display(), "database open");
        Ok(Store {
            pool,
            path: Arc::from(path),
        })
    }

    /// Waits for running queries, then closes every connection (checkpointing the WAL), so the
    /// file can be reopened or copied. Every clone of this store is closed with it.
    pub async fn close(self) {
        self.pool.close().await;
        tracing::debug!(path = %self.path.display(), "database closed");
    }

    /// The database file this store was opened on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands back the page cache every open connection holds (`PRAGMA shrink_memory`): after
    /// a restore has read every active ban, the caches (up to 32 MiB per connection, sized for
    /// bulk writes at a million rows) hold pages the daemon will not read again soon. They
    /// refill as queries need them.
    pub async fn release_memory(&self) -> Result<(), StoreError> {
        let action = "release the page cache";
        // Held together, so that each acquire returns a different connection.
        let mut held = Vec::new();
        for _ in 0..self.pool.size() {
            let Some(mut conn) = self.pool.try_acquire() else {
                break;
            };
            sqlx::query("PRAGMA shrink_memory")
                .execute(&mut *conn)
                .await
                .map_err(self.fail(action))?;
            held.push(conn);
        }
        Ok(())
    }

    /// The journal mode SQLite reports (`"wal"` once open), for diagnostics.
    pub async fn journal_mode(&self) -> Result<String, StoreError> {
        sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&self.pool)
            .await
            .map_err(self.fail("read the journal mode"))
    }

    /// Maps a sqlx error to a [`StoreError`] for `action` ([`error::query`]), saying "disk
    /// full" when the filesystem holding the database has no space left: SQLite reports that
    /// as "database or disk is full" from a write, but as "disk I/O error" when it happens
    /// while growing its shared-memory or WAL index files.
    fn fail(&self, action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |e| error::query(action)(e).with_disk_state(&self.path)
    }

    /// Deletes the rows of `table` matching `older` (bound to `before`), then all but the
    /// newest `keep` rows by id; returns how many went. `table` and `older` are constants of
    /// this crate, never input.
    async fn prune_table(
        &self,
        table: &'static str,
        older: &'static str,
        before: i64,
        keep: u64,
        action: &'static str,
    ) -> Result<u64, StoreError> {
        let by_age = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE {older}"
        )))
        .bind(before)
        .execute(&self.pool)
        .await
        .map_err(self.fail(action))?
        .rows_affected();
        let by_count = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE id <= (SELECT id FROM {table} ORDER BY id DESC LIMIT 1 OFFSET ?1)"
        )))
        .bind(i64::try_from(keep).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(self.fail(action))?
        .rows_affected();
        Ok(by_age + by_count)
    }

    /// Starts a write transaction ([`write::WriteTx`]).
    async fn begin_write(&self) -> Result<write::WriteTx, sqlx::Error> {
        write::WriteTx::begin(&self.pool).await
    }
}

/// A `LIMIT` argument: SQLite takes a signed 64-bit integer.
fn limit(n: u32) -> i64 {
    i64::from(n)
}

/// A `count(*)` result; SQLite never returns a negative count.
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn store_can_be_shared_between_tasks() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<super::Store>();
    }
}
