//! Bulk inserts: many rows per statement, inside the caller's transaction.
//!
//! One statement per row costs a round trip to sqlx's SQLite worker thread each; multi-row
//! INSERTs of a few thousand bound values cut 100,000 rows to a few dozen statements. The
//! statement text depends only on the number of rows, so every full chunk reuses one prepared
//! statement from the connection's cache.

use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnection};

/// Bound values per statement: well under SQLite's limit of 32766 variables per statement
/// (the bundled SQLite's default), large enough that statement overhead stops mattering.
const VALUES_PER_STATEMENT: usize = 4000;

type SqliteQuery<'q> = Query<'q, Sqlite, SqliteArguments>;

/// Inserts one row per item of `items` with `insert_into` (`"INSERT INTO t (a, b)"`, naming
/// `columns` columns); `bind` binds one item's values in that column order. Returns the
/// rowid of the last row inserted (0 when `items` is empty).
pub(crate) async fn insert_rows<T>(
    conn: &mut SqliteConnection,
    insert_into: &str,
    columns: usize,
    items: &[T],
    bind: impl for<'q> Fn(SqliteQuery<'q>, &T) -> SqliteQuery<'q>,
) -> Result<i64, sqlx::Error> {
    let rows_per_statement = (VALUES_PER_STATEMENT / columns).max(1);
    let mut full_chunk_sql: Option<String> = None;
    let mut last_rowid = 0;
    for chunk in items.chunks(rows_per_statement) {
        let sql = if chunk.len() == rows_per_statement {
            full_chunk_sql
                .get_or_insert_with(|| values_sql(insert_into, columns, chunk.len()))
                .clone()
        } else {
            values_sql(insert_into, columns, chunk.len())
        };
        let statement = chunk
            .iter()
            .fold(sqlx::query(sqlx::AssertSqlSafe(sql)), |statement, item| {
                bind(statement, item)
            });
        last_rowid = statement.execute(&mut *conn).await?.last_insert_rowid();
    }
    Ok(last_rowid)
}

/// `<insert_into> VALUES (?, ?), (?, ?), ...` for `rows` rows of `columns` placeholders.
fn values_sql(insert_into: &str, columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    format!(
        "{insert_into} VALUES {}",
        vec![row.as_str(); rows].join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_sql_has_one_placeholder_per_value() {
        assert_eq!(
            values_sql("INSERT INTO t (a, b)", 2, 3),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)"
        );
    }
}
