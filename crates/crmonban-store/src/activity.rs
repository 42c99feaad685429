//! The `activity_log` table: what the daemon did and why (bans, unbans, reloads...), for
//! `crmonctl logs` and D-Bus `GetLogs`.

use crmonban_core::Target;
use sqlx::sqlite::SqliteRow;

use crate::bulk::insert_rows;
use crate::error::into_sqlx;
use crate::rows::RowReader;
use crate::{Store, StoreError, limit};

/// An entry to append ([`Store::log_activities`]).
#[derive(Clone, Copy, Debug)]
pub struct NewActivity<'a> {
    /// Unix seconds.
    pub at: i64,
    /// What happened: `"ban"`, `"unban"`, `"flush"`, `"reload"`, ...
    pub action: &'a str,
    /// The address or network concerned, if any.
    pub target: Option<&'a Target>,
    /// Free text for people: the reason and particulars.
    pub detail: &'a str,
}

/// One line of the activity log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityEntry {
    /// The row id; later entries have larger ids.
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// What happened: `"ban"`, `"unban"`, `"flush"`, `"reload"`, ...
    pub action: String,
    /// The address or network concerned, if any.
    pub target: Option<Target>,
    /// Free text for people: the reason and particulars.
    pub detail: String,
}

impl Store {
    /// Appends an entry to the activity log and returns its id.
    pub async fn log_activity(
        &self,
        at: i64,
        action: &str,
        target: Option<&Target>,
        detail: &str,
    ) -> Result<i64, StoreError> {
        let result = sqlx::query(
            "INSERT INTO activity_log (at, action, target, detail) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(at)
        .bind(action)
        .bind(target.map(Target::to_string))
        .bind(detail)
        .execute(&self.pool)
        .await
        .map_err(self.fail("write the activity log"))?;
        Ok(result.last_insert_rowid())
    }

    /// Appends many entries in one transaction (the activity writer's batches).
    pub async fn log_activities(&self, entries: &[NewActivity<'_>]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let action = "write the activity log";
        let mut tx = self.begin_write().await.map_err(self.fail(action))?;
        insert_rows(
            &mut tx,
            "INSERT INTO activity_log (at, action, target, detail)",
            4,
            entries,
            |statement, entry| {
                statement
                    .bind(entry.at)
                    .bind(entry.action)
                    .bind(entry.target.map(Target::to_string))
                    .bind(entry.detail)
            },
        )
        .await
        .map_err(self.fail(action))?;
        tx.commit().await.map_err(self.fail(action))?;
        Ok(())
    }

    /// The `limit` most recent entries, newest first.
    pub async fn recent_activity(&self, limit_rows: u32) -> Result<Vec<ActivityEntry>, StoreError> {
        sqlx::query(
            "SELECT id, at, action, target, detail FROM activity_log ORDER BY id DESC LIMIT ?1",
        )
        .bind(limit(limit_rows))
        .try_map(|row: SqliteRow| activity_entry_from_row(&row).map_err(into_sqlx))
        .fetch_all(&self.pool)
        .await
        .map_err(self.fail("read the activity log"))
    }

    /// Deletes entries older than `before` and, beyond that, all but the newest `keep`;
    /// returns how many went.
    pub async fn prune_activity(&self, before: i64, keep: u64) -> Result<u64, StoreError> {
        self.prune_table(
            "activity_log",
            "at < ?1",
            before,
            keep,
            "prune the activity log",
        )
        .await
    }
}

fn activity_entry_from_row(row: &SqliteRow) -> Result<ActivityEntry, StoreError> {
    let r = RowReader::by_id(row, "activity_log")?;
    Ok(ActivityEntry {
        id: r.get("id")?,
        at: r.get("at")?,
        action: r.get("action")?,
        target: r.parse_opt("target", Target::parse)?,
        detail: r.get("detail")?,
    })
}
