//! The first read of a restore: the target and end of every active ban, and nothing else, so
//! that the kernel holds the bans before their details are read (see the engine's start).

use crmonban_core::Target;

use crate::{Store, StoreError};

impl Store {
    /// At least as many as the bans in force, read at once: the highest row id of the bans
    /// table (rows get ids in increasing order and are never renumbered, so no more rows, let
    /// alone active ones, exist). An exact count reads every active row's index entry (~0.15 s
    /// for a million); this sizes the kernel's sets before the restore has read them.
    pub async fn active_bans_bound(&self) -> Result<usize, StoreError> {
        let highest: i64 = sqlx::query_scalar("SELECT ifnull(max(id), 0) FROM bans")
            .fetch_one(&self.pool)
            .await
            .map_err(self.fail("read the highest ban id"))?;
        Ok(usize::try_from(highest).unwrap_or(0))
    }

    /// The target and end (`None`: permanent) of every ban in force at `now`, oldest row
    /// first: exactly what the kernel must hold, read about twice as fast as whole rows, so
    /// that a restart enforces its bans before it reads their details. Pages of 25,000 rows,
    /// each packed by SQLite into one text of "target end" lines, in one read transaction;
    /// SQLite builds the next page while this one is parsed. Returns how many there were.
    pub async fn for_each_active_target(
        &self,
        now: i64,
        mut each: impl FnMut(Target, Option<i64>),
    ) -> Result<usize, StoreError> {
        const PAGE: i64 = 25_000;
        let action = "read the active bans' targets";
        let mut snapshot = self.pool.begin().await.map_err(self.fail(action))?;
        let mut count = 0;
        let mut parse = |lines: Option<String>| -> Result<(), StoreError> {
            for line in lines.as_deref().unwrap_or("").lines() {
                let (target, end) = parse_target_line(line)?;
                each(target, end);
                count += 1;
            }
            Ok(())
        };
        let (mut lines, mut last_id, mut rows) = target_page(&mut snapshot, 0, now, PAGE)
            .await
            .map_err(self.fail(action))?;
        loop {
            match last_id {
                Some(last) if rows == PAGE => {
                    let (next, parsed) =
                        tokio::join!(target_page(&mut snapshot, last, now, PAGE), async {
                            parse(lines.take())
                        });
                    parsed?;
                    (lines, last_id, rows) = next.map_err(self.fail(action))?;
                }
                _ => {
                    parse(lines)?;
                    break;
                }
            }
        }
        snapshot.commit().await.map_err(self.fail(action))?;
        Ok(count)
    }
}

/// One page of [`Store::for_each_active_target`]: the "target end" lines of up to `page`
/// active bans after row `after_id`, the last row's id, and how many rows there were.
async fn target_page(
    snapshot: &mut sqlx::SqliteConnection,
    after_id: i64,
    now: i64,
    page: i64,
) -> Result<(Option<String>, Option<i64>, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT group_concat(target || ' ' || ifnull(expires_at, '-'), char(10)),
                max(id), count(*)
         FROM (SELECT id, target, expires_at FROM bans
               WHERE id > ?1 AND unbanned_at IS NULL
                 AND (expires_at IS NULL OR expires_at > ?2)
               ORDER BY id
               LIMIT ?3)",
    )
    .bind(after_id)
    .bind(now)
    .bind(page)
    .fetch_one(snapshot)
    .await
}

/// One line of [`Store::for_each_active_target`]: "target end", end "-" when permanent.
fn parse_target_line(line: &str) -> Result<(Target, Option<i64>), StoreError> {
    let corrupt = |column: &'static str, value: &str, problem: String| StoreError::Corrupt {
        table: "bans",
        key: format!(
            "an active ban read as {:?}",
            line.chars().take(80).collect::<String>()
        ),
        column,
        value: format!("{value:?}"),
        problem,
    };
    let (target, end) = line
        .rsplit_once(' ')
        .ok_or_else(|| corrupt("target", line, "no end time after the target".into()))?;
    let target =
        Target::parse(target).map_err(|error| corrupt("target", target, error.to_string()))?;
    let end = match end {
        "-" => None,
        n => Some(
            n.parse::<i64>()
                .map_err(|error| corrupt("expires_at", n, error.to_string()))?,
        ),
    };
    Ok((target, end))
}
