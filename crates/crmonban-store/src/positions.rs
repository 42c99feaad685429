//! The `log_positions` table: where each log source was last read, so that a restart resumes
//! where it stopped instead of replaying old lines as fresh attacks; and the `log_resume`
//! table: where a restart starts reading again to rebuild the failure windows a crash emptied
//! (the lines up to the `log_positions` row are then replays, not fresh attacks).

use sqlx::sqlite::SqliteRow;

use crate::error::{into_sqlx, to_i64};
use crate::rows::RowReader;
use crate::{Store, StoreError};

/// The read position of one log source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPosition {
    /// `<service>:<file path>`, or `<service>:journal:<match>` for a journald source (a bare
    /// path or `journal:<match>` in rows saved before positions were per service).
    pub source: String,
    /// The file's inode when the position was saved (a different inode means rotation).
    pub inode: Option<u64>,
    /// Bytes of the file already read.
    pub offset: Option<u64>,
    /// A hash of the file's first line, which tells a truncated-and-rewritten file from the
    /// same file grown.
    pub first_line_hash: Option<u64>,
    /// The journald cursor of the last entry read.
    pub cursor: Option<String>,
    /// Unix seconds.
    pub updated_at: i64,
}

impl Store {
    /// Saves (or replaces) the position of `position.source`.
    pub async fn save_position(&self, position: &LogPosition) -> Result<(), StoreError> {
        self.save_into(Table::Positions, position).await
    }

    /// The saved position of `source`, if any.
    pub async fn load_position(&self, source: &str) -> Result<Option<LogPosition>, StoreError> {
        self.load_from(Table::Positions, source).await
    }

    /// Saves (or replaces) the resume point of `point.source`.
    pub async fn save_resume_point(&self, point: &LogPosition) -> Result<(), StoreError> {
        self.save_into(Table::Resume, point).await
    }

    /// The resume point of `source`, if any.
    pub async fn load_resume_point(&self, source: &str) -> Result<Option<LogPosition>, StoreError> {
        self.load_from(Table::Resume, source).await
    }

    /// Removes the resume point of `source` (it then resumes at its saved position).
    pub async fn clear_resume_point(&self, source: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM log_resume WHERE source = ?1")
            .bind(source)
            .execute(&self.pool)
            .await
            .map_err(self.fail("remove a log resume point"))?;
        Ok(())
    }

    async fn save_into(&self, table: Table, position: &LogPosition) -> Result<(), StoreError> {
        let action = table.save_action();
        let offset = position
            .offset
            .map(|offset| to_i64(action, "offset", offset))
            .transpose()?;
        // The table name is one of two constants, never input.
        let sql = format!(
            r#"INSERT INTO {} (source, inode, "offset", first_line_hash, cursor, updated_at)
               VALUES (?1, ?2, ?3, ?4, ?5, ?6)
               ON CONFLICT (source) DO UPDATE SET
                   inode = excluded.inode,
                   "offset" = excluded."offset",
                   first_line_hash = excluded.first_line_hash,
                   cursor = excluded.cursor,
                   updated_at = excluded.updated_at"#,
            table.name()
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(position.source.as_str())
            .bind(position.inode.map(u64_bits_to_i64))
            .bind(offset)
            .bind(position.first_line_hash.map(u64_bits_to_i64))
            .bind(position.cursor.as_deref())
            .bind(position.updated_at)
            .execute(&self.pool)
            .await
            .map_err(self.fail(action))?;
        Ok(())
    }

    async fn load_from(
        &self,
        table: Table,
        source: &str,
    ) -> Result<Option<LogPosition>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            r#"SELECT source, inode, "offset", first_line_hash, cursor, updated_at
               FROM {} WHERE source = ?1"#,
            table.name()
        )))
        .bind(source)
        .try_map(move |row: SqliteRow| log_position_from_row(&row, table.name()).map_err(into_sqlx))
        .fetch_optional(&self.pool)
        .await
        .map_err(self.fail(table.load_action()))
    }
}

/// The two tables of log positions, which have the same columns.
#[derive(Clone, Copy)]
enum Table {
    Positions,
    Resume,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Positions => "log_positions",
            Table::Resume => "log_resume",
        }
    }

    fn save_action(self) -> &'static str {
        match self {
            Table::Positions => "save a log position",
            Table::Resume => "save a log resume point",
        }
    }

    fn load_action(self) -> &'static str {
        match self {
            Table::Positions => "load a log position",
            Table::Resume => "load a log resume point",
        }
    }
}

/// Inodes and hashes use all 64 bits but are only compared for equality, so they are stored
/// bit for bit in SQLite's signed integer rather than refused above `i64::MAX`.
fn u64_bits_to_i64(value: u64) -> i64 {
    i64::from_ne_bytes(value.to_ne_bytes())
}

fn i64_bits_to_u64(value: i64) -> u64 {
    u64::from_ne_bytes(value.to_ne_bytes())
}

fn log_position_from_row(row: &SqliteRow, table: &'static str) -> Result<LogPosition, StoreError> {
    let r = RowReader::by_text_key(row, table, "source")?;
    Ok(LogPosition {
        source: r.get("source")?,
        inode: r.get::<Option<i64>>("inode")?.map(i64_bits_to_u64),
        offset: r.convert_opt("offset")?,
        first_line_hash: r
            .get::<Option<i64>>("first_line_hash")?
            .map(i64_bits_to_u64),
        cursor: r.get("cursor")?,
        updated_at: r.get("updated_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_width_u64_survives_the_signed_column() {
        for value in [0, 1, i64::MAX as u64, u64::MAX, 0x8000_0000_0000_0001] {
            assert_eq!(i64_bits_to_u64(u64_bits_to_i64(value)), value);
        }
    }
}
