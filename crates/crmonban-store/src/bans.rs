//! The `bans` table: every ban ever made, ended bans included.
//!
//! A ban row is active while `unbanned_at IS NULL` and its `expires_at` is NULL or in the
//! future. Ending a ban (unban, flush, expiry) sets `unbanned_at` and `unban_reason` and keeps
//! the row. A target has at most one active row: recording a new ban of a target ends its
//! older active row ("superseded", or "expired" at its own end if that came first).

use crmonban_core::{Ban, BanSource, Target};
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{FromRow, Row};

use crate::bulk::insert_rows;
use crate::error::into_sqlx;
use crate::{Store, StoreError, count};

/// A ban as the history keeps it: the [`Ban`] plus its row id and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanRecord {
    /// The row id; later bans have larger ids.
    pub id: i64,
    /// The ban as it was recorded.
    pub ban: Ban,
    /// Unix seconds when the ban ended; `None` while it has not been ended (an expired ban
    /// gets its `expires_at` here once [`Store::expire_due`] has seen it).
    pub unbanned_at: Option<i64>,
    /// `"expired"`, `"unban"`, `"flush"`, `"superseded"` or the caller's own reason.
    pub unban_reason: Option<String>,
}

/// The columns of a [`BanRecord`]: [`BanColumns`] first, then how the ban ended.
macro_rules! ban_record_columns {
    () => {
        "id, target, reason, source, service, banned_at, expires_at, offence, unbanned_at, unban_reason"
    };
}

/// Rows per page in [`Store::active_bans`] and [`Store::expire_due`]: about 700 KB of JSON.
const BAN_PAGE_ROWS: u16 = 10_000;

/// Ends every active row that a newer row of the same target replaces, for the targets of the
/// rows with id > ?1 (the rows just inserted). A row that had already expired before its
/// successor began is marked expired at its own end rather than superseded. The join walks
/// the new rows by rowid and probes `bans_by_target`: ~45 ms per 100,000 new rows at a
/// million rows of history (an IN list plus EXISTS form took three times as long).
const SUPERSEDE_OLDER_ACTIVE: &str = "
UPDATE bans AS old
SET (unbanned_at, unban_reason) = (
    SELECT CASE WHEN old.expires_at <= newer.banned_at THEN old.expires_at ELSE newer.banned_at END,
           CASE WHEN old.expires_at <= newer.banned_at THEN 'expired' ELSE 'superseded' END
    FROM bans AS newer
    WHERE newer.target = old.target AND newer.id > old.id
    ORDER BY newer.id
    LIMIT 1)
WHERE old.id IN (
    SELECT older.id
    FROM bans AS recorded JOIN bans AS older ON older.target = recorded.target
    WHERE recorded.id > ?1 AND older.id < recorded.id AND older.unbanned_at IS NULL)";

impl Store {
    /// Records one ban and returns its row id. `ban.offence` is stored as given (the caller
    /// derives it from [`Store::offence_count`] or [`Store::offence_counts`]). An older active
    /// ban of the same target is ended as superseded in the same transaction.
    pub async fn record_ban(&self, ban: &Ban) -> Result<i64, StoreError> {
        let action = "record a ban";
        let mut tx = self.begin_write().await.map_err(self.fail(action))?;
        let id = insert_bans(&mut tx, std::slice::from_ref(ban))
            .await
            .map_err(self.fail(action))?;
        sqlx::query(SUPERSEDE_OLDER_ACTIVE)
            .bind(id - 1)
            .execute(&mut *tx)
            .await
            .map_err(self.fail(action))?;
        tx.commit().await.map_err(self.fail(action))?;
        Ok(id)
    }

    /// Records many bans in one transaction (all or none), with multi-row INSERTs. Older
    /// active bans of the same targets, and earlier entries of `bans` for a target that
    /// appears twice, are ended as superseded.
    pub async fn record_bans(&self, bans: &[Ban]) -> Result<(), StoreError> {
        if bans.is_empty() {
            return Ok(());
        }
        let action = "record bans";
        let mut tx = self.begin_write().await.map_err(self.fail(action))?;
        let last_id = insert_bans(&mut tx, bans)
            .await
            .map_err(self.fail(action))?;
        let first_id = last_id - i64::try_from(bans.len()).unwrap_or(i64::MAX) + 1;
        let superseded = sqlx::query(SUPERSEDE_OLDER_ACTIVE)
            .bind(first_id - 1)
            .execute(&mut *tx)
            .await
            .map_err(self.fail(action))?
            .rows_affected();
        tx.commit().await.map_err(self.fail(action))?;
        tracing::debug!(recorded = bans.len(), superseded, "bans recorded");
        Ok(())
    }

    /// Ends the active ban of `target` at `at` with `reason` (e.g. `"unban"`). Returns false
    /// when the target had no active ban. A ban whose time ran out before `at` but that
    /// [`Store::expire_due`] has not yet seen is marked expired instead.
    pub async fn end_ban(
        &self,
        target: &Target,
        at: i64,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let ended = self
            .end_active(Some(&target.to_string()), at, reason, "end a ban")
            .await?;
        Ok(ended > 0)
    }

    /// Ends every active ban at `at` with `reason` (a flush) and returns how many there were.
    /// Bans already past their end are marked expired and not counted.
    pub async fn end_bans_all(&self, at: i64, reason: &str) -> Result<u64, StoreError> {
        self.end_active(None, at, reason, "end all bans").await
    }

    /// Ends the active bans of `target` (or all) at `at` with `reason`, after marking those
    /// already past their end as expired; returns how many it ended with `reason`.
    async fn end_active(
        &self,
        target: Option<&str>,
        at: i64,
        reason: &str,
        action: &'static str,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await.map_err(self.fail(action))?;
        mark_expired(&mut tx, target, at)
            .await
            .map_err(self.fail(action))?;
        let ended = sqlx::query(
            "UPDATE bans SET unbanned_at = ?1, unban_reason = ?2
             WHERE unbanned_at IS NULL AND (?3 IS NULL OR target = ?3)",
        )
        .bind(at)
        .bind(reason)
        .bind(target)
        .execute(&mut *tx)
        .await
        .map_err(self.fail(action))?
        .rows_affected();
        tx.commit().await.map_err(self.fail(action))?;
        Ok(ended)
    }

    /// Marks every ban whose end is at or before `now` as ended (`unban_reason` `"expired"`,
    /// `unbanned_at` its own `expires_at`) and returns those bans in the order they expired.
    /// The rows stay in the history.
    ///
    /// Usually a handful of rows, but after a long stop it can be every ban there is, so the
    /// due rows are read in pages like [`Store::active_bans`] (through the index of unended
    /// bans by expiry), then ended by one UPDATE in the same write transaction.
    pub async fn expire_due(&self, now: i64) -> Result<Vec<Ban>, StoreError> {
        let action = "expire bans";
        let mut tx = self.begin_write().await.map_err(self.fail(action))?;
        let mut due = Vec::new();
        let mut after = (i64::MIN, i64::MIN);
        loop {
            let page: String = sqlx::query_scalar(
                "SELECT json_group_array(json_array(
                            id, target, reason, source, service, banned_at, expires_at, offence))
                 FROM (SELECT id, target, reason, source, service, banned_at, expires_at, offence
                       FROM bans
                       WHERE unbanned_at IS NULL AND expires_at <= ?1
                         AND (expires_at, id) > (?2, ?3)
                       ORDER BY expires_at, id
                       LIMIT ?4)",
            )
            .bind(now)
            .bind(after.0)
            .bind(after.1)
            .bind(i64::from(BAN_PAGE_ROWS))
            .fetch_one(&mut *tx)
            .await
            .map_err(self.fail(action))?;
            let rows = parse_ban_page(&page, |row| (row.6, row.0))?;
            let full = rows.len() == usize::from(BAN_PAGE_ROWS);
            if let Some(last) = rows.last() {
                after = (last.6.unwrap_or(now), last.0);
            }
            for columns in rows {
                due.push(ban_from_columns(columns)?);
            }
            if !full {
                break;
            }
        }
        mark_expired(&mut tx, None, now)
            .await
            .map_err(self.fail(action))?;
        tx.commit().await.map_err(self.fail(action))?;
        Ok(due)
    }

    /// Every ban in force at `now`, oldest row first: what the firewall must hold.
    ///
    /// This is the restore path at start and may return a million bans. Rows are read in
    /// pages of 10,000 in one read transaction (one consistent snapshot), each page
    /// packed by SQLite into a single JSON text: sqlx's SQLite driver costs about 3 us per row
    /// returned (a channel message and an allocation per value), which row by row made
    /// 1,000,000 active bans take ~10 s to read instead of ~1.3 s.
    pub async fn active_bans(&self, now: i64) -> Result<Vec<Ban>, StoreError> {
        let mut bans = Vec::new();
        self.for_each_active_ban(now, |ban| bans.push(ban)).await?;
        Ok(bans)
    }

    /// [`Store::active_bans`] one ban at a time, without collecting them: the restore at start
    /// builds its own compact form of a million bans and never holds them all as [`Ban`]s.
    /// Returns how many there were.
    pub async fn for_each_active_ban(
        &self,
        now: i64,
        mut each: impl FnMut(Ban),
    ) -> Result<usize, StoreError> {
        let action = "read the active bans";
        let mut snapshot = self.pool.begin().await.map_err(self.fail(action))?;
        let mut count = 0;
        let mut after_id = 0;
        loop {
            let page: String = sqlx::query_scalar(
                "SELECT json_group_array(json_array(
                            id, target, reason, source, service, banned_at, expires_at, offence))
                 FROM (SELECT id, target, reason, source, service, banned_at, expires_at, offence
                       FROM bans
                       WHERE id > ?1 AND unbanned_at IS NULL
                         AND (expires_at IS NULL OR expires_at > ?2)
                       ORDER BY id
                       LIMIT ?3)",
            )
            .bind(after_id)
            .bind(now)
            .bind(i64::from(BAN_PAGE_ROWS))
            .fetch_one(&mut *snapshot)
            .await
            .map_err(self.fail(action))?;
            let rows = parse_ban_page(&page, |row| row.0)?;
            let full = rows.len() == usize::from(BAN_PAGE_ROWS);
            if let Some(last) = rows.last() {
                after_id = last.0;
            }
            count += rows.len();
            for columns in rows {
                each(ban_from_columns(columns)?);
            }
            if !full {
                break;
            }
        }
        snapshot.commit().await.map_err(self.fail(action))?;
        Ok(count)
    }

    /// The ban of exactly `target` in force at `now`, if any. (A banned network containing
    /// the target is not looked for here.)
    pub async fn active_ban(&self, target: &Target, now: i64) -> Result<Option<Ban>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            ban_record_columns!(),
            " FROM bans
             WHERE target = ?1 AND unbanned_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)
             ORDER BY id DESC
             LIMIT 1"
        ))
        .bind(target.to_string())
        .bind(now)
        .try_map(|row: SqliteRow| ban_record_from_row(&row).map(|record| record.ban))
        .fetch_optional(&self.pool)
        .await
        .map_err(self.fail("look up an active ban"))
    }

    /// How many bans are in force at `now`.
    pub async fn count_active(&self, now: i64) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM bans
             WHERE unbanned_at IS NULL AND (expires_at IS NULL OR expires_at > ?1)",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(self.fail("count the active bans"))?;
        Ok(count(n))
    }

    /// Whether the database holds any ban at all, ended ones included (false for a database
    /// just created).
    pub async fn has_ban_history(&self) -> Result<bool, StoreError> {
        let any: i64 = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM bans)")
            .fetch_one(&self.pool)
            .await
            .map_err(self.fail("look for any ban"))?;
        Ok(any != 0)
    }

    /// How many times `target` has been banned (ended bans included), counting only bans made
    /// at or after `since` when given. Drives repeat-offender escalation.
    pub async fn offence_count(
        &self,
        target: &Target,
        since: Option<i64>,
    ) -> Result<u32, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM bans WHERE target = ?1 AND banned_at >= ?2")
                .bind(target.to_string())
                .bind(since.unwrap_or(i64::MIN))
                .fetch_one(&self.pool)
                .await
                .map_err(self.fail("count a target's bans"))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// How many times each target has been banned (ended bans included): every target with
    /// at least one ban, in target order. The engine loads this once at start so that a ban
    /// never waits for the database to learn its offence count. Read in pages of 10,000
    /// targets, each packed by SQLite into one JSON text (see [`Store::active_bans`]).
    pub async fn offence_counts(&self) -> Result<Vec<(Target, u32)>, StoreError> {
        let mut counts = Vec::new();
        self.for_each_offence_count(|target, n| counts.push((target, n)))
            .await?;
        Ok(counts)
    }

    /// [`Store::offence_counts`] one target at a time, without collecting them.
    pub async fn for_each_offence_count(
        &self,
        mut each: impl FnMut(Target, u32),
    ) -> Result<(), StoreError> {
        let action = "count every target's bans";
        let mut snapshot = self.pool.begin().await.map_err(self.fail(action))?;
        let mut after = String::new();
        loop {
            let page: String = sqlx::query_scalar(
                "SELECT json_group_array(json_array(target, n))
                 FROM (SELECT target, count(*) AS n FROM bans
                       WHERE target > ?1 GROUP BY target ORDER BY target LIMIT ?2)",
            )
            .bind(&after)
            .bind(i64::from(BAN_PAGE_ROWS))
            .fetch_one(&mut *snapshot)
            .await
            .map_err(self.fail(action))?;
            let rows: Vec<(String, u32)> =
                serde_json::from_str(&page).map_err(|error| StoreError::Corrupt {
                    table: "bans",
                    key: "a page of offence counts".to_owned(),
                    column: "target",
                    value: format!("{} bytes of JSON", page.len()),
                    problem: format!("the page does not read back as (target, count): {error}"),
                })?;
            let full = rows.len() == usize::from(BAN_PAGE_ROWS);
            for (text, n) in rows {
                let target = Target::parse(&text).map_err(|error| StoreError::Corrupt {
                    table: "bans",
                    key: format!("target {text:?}"),
                    column: "target",
                    value: format!("{text:?}"),
                    problem: error.to_string(),
                })?;
                each(target, n);
                after = text;
            }
            if !full {
                break;
            }
        }
        snapshot.commit().await.map_err(self.fail(action))?;
        Ok(())
    }

    /// Every ban of `target`, oldest first, with how each ended.
    pub async fn ban_history(&self, target: &Target) -> Result<Vec<BanRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            ban_record_columns!(),
            " FROM bans WHERE target = ?1 ORDER BY banned_at, id"
        ))
        .bind(target.to_string())
        .try_map(|row: SqliteRow| ban_record_from_row(&row))
        .fetch_all(&self.pool)
        .await
        .map_err(self.fail("read a target's ban history"))
    }
}

/// Inserts `bans` in order and returns the row id of the last one. Ids are consecutive: the
/// caller holds the write lock and no row of `bans` is ever deleted.
async fn insert_bans(conn: &mut SqliteConnection, bans: &[Ban]) -> Result<i64, sqlx::Error> {
    insert_rows(
        conn,
        "INSERT INTO bans (target, reason, source, service, banned_at, expires_at, offence)",
        7,
        bans,
        |statement, ban| {
            statement
                .bind(ban.target.to_string())
                .bind(ban.reason.as_str())
                .bind(ban.source.as_str())
                .bind(ban.service.as_deref())
                .bind(ban.banned_at)
                .bind(ban.expires_at)
                .bind(i64::from(ban.offence))
        },
    )
    .await
}

/// The columns of a [`Ban`] (and the row id), in the order of [`ban_record_columns!`], as
/// sqlx or serde_json read them.
type BanColumns = (
    i64,            // id
    String,         // target
    String,         // reason
    String,         // source
    Option<String>, // service
    i64,            // banned_at
    Option<i64>,    // expires_at
    i64,            // offence
);

/// Reads one page of bans packed by `json_group_array(json_array(<BanColumns>))` and puts it
/// in `order`. SQLite aggregates rows in the order its ordered subquery yields them, which is
/// what the pages ask for; sorting the aggregate in SQL cost a third of the read time, so the
/// order is checked here instead.
fn parse_ban_page<K: Ord>(
    page: &str,
    order: impl Fn(&BanColumns) -> K,
) -> Result<Vec<BanColumns>, StoreError> {
    let mut rows: Vec<BanColumns> =
        serde_json::from_str(page).map_err(|error| StoreError::Corrupt {
            table: "bans",
            key: "a page of rows".to_owned(),
            column: "*",
            value: format!("{} bytes of JSON", page.len()),
            problem: format!("the page does not read back as ban rows: {error}"),
        })?;
    if !rows.is_sorted_by_key(&order) {
        rows.sort_unstable_by_key(order);
    }
    Ok(rows)
}

/// Reads a row of [`ban_record_columns!`].
fn ban_record_from_row(row: &SqliteRow) -> Result<BanRecord, sqlx::Error> {
    let ban = ban_from_columns(BanColumns::from_row(row)?).map_err(into_sqlx)?;
    Ok(BanRecord {
        id: row.try_get("id")?,
        ban,
        unbanned_at: row.try_get("unbanned_at")?,
        unban_reason: row.try_get("unban_reason")?,
    })
}

/// Parses the columns whose text or range the schema cannot check; a bad value is
/// [`StoreError::Corrupt`] naming the row.
fn ban_from_columns(columns: BanColumns) -> Result<Ban, StoreError> {
    let (id, target, reason, source, service, banned_at, expires_at, offence) = columns;
    let corrupt = |column: &'static str, value: String, problem: String| StoreError::Corrupt {
        table: "bans",
        key: format!("id {id}"),
        column,
        value,
        problem,
    };
    let parsed_target = Target::parse(&target)
        .map_err(|error| corrupt("target", format!("{target:?}"), error.to_string()))?;
    let offence = u32::try_from(offence).map_err(|_| {
        corrupt(
            "offence",
            offence.to_string(),
            format!("an offence count is from 0 to {}", u32::MAX),
        )
    })?;
    let Ok(source) = source.parse::<BanSource>();
    Ok(Ban {
        target: parsed_target,
        reason,
        source,
        service,
        banned_at,
        expires_at,
        offence,
    })
}

/// Ends, as "expired" at their own end time, the active bans (of `target`, or all) whose end is
/// at or before `at`: history records when a ban really stopped, not when we noticed.
async fn mark_expired(
    conn: &mut SqliteConnection,
    target: Option<&str>,
    at: i64,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE bans SET unbanned_at = expires_at, unban_reason = 'expired'
         WHERE unbanned_at IS NULL AND expires_at <= ?1 AND (?2 IS NULL OR target = ?2)",
    )
    .bind(at)
    .bind(target)
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}
