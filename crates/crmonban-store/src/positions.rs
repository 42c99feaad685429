//! The `log_positions` table: where each log source was last read, so that a restart resumes
//! where it stopped instead of replaying old lines as fresh attacks.

use sqlx::sqlite::SqliteRow;

use crate::error::{into_sqlx, query, to_i64};
use crate::rows::RowReader;
use crate::{Store, StoreError};

/// The read position of one log source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPosition {
    /// A file path, or `journal:<match>` for a journald source.
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
        let action = "save a log position";
        let offset = position
            .offset
            .map(|offset| to_i64(action, "offset", offset))
            .transpose()?;
        sqlx::query(
            r#"INSERT INTO log_positions (source, inode, "offset", first_line_hash, cursor, updated_at)
               VALUES (?1, ?2, ?3, ?4, ?5, ?6)
               ON CONFLICT (source) DO UPDATE SET
                   inode = excluded.inode,
                   "offset" = excluded."offset",
                   first_line_hash = excluded.first_line_hash,
                   cursor = excluded.cursor,
                   updated_at = excluded.updated_at"#,
        )
        .bind(position.source.as_str())
        .bind(position.inode.map(u64_bits_to_i64))
        .bind(offset)
        .bind(position.first_line_hash.map(u64_bits_to_i64))
        .bind(position.cursor.as_deref())
        .bind(position.updated_at)
        .execute(&self.pool)
        .await
        .map_err(query(action))?;
        Ok(())
    }

    /// The saved position of `source`, if any.
    pub async fn load_position(&self, source: &str) -> Result<Option<LogPosition>, StoreError> {
        sqlx::query(
            r#"SELECT source, inode, "offset", first_line_hash, cursor, updated_at
               FROM log_positions WHERE source = ?1"#,
        )
        .bind(source)
        .try_map(|row: SqliteRow| log_position_from_row(&row).map_err(into_sqlx))
        .fetch_optional(&self.pool)
        .await
        .map_err(query("load a log position"))
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

fn log_position_from_row(row: &SqliteRow) -> Result<LogPosition, StoreError> {
    let r = RowReader::by_text_key(row, "log_positions", "source")?;
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
