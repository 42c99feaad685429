//! The `whitelist` table: networks added by an operator that are never banned. (Whether a
//! target may be banned is crmonban-zones' question; this is one of its sources.)

use crmonban_core::Target;
use sqlx::sqlite::SqliteRow;

use crate::error::into_sqlx;
use crate::rows::RowReader;
use crate::{Store, StoreError};
use crmonban_core::unix_now;

/// One whitelisted address or network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WhitelistEntry {
    /// The address or network never banned.
    pub target: Target,
    /// The operator's note, as given when it was added (may be empty).
    pub comment: String,
    /// Unix seconds.
    pub added_at: i64,
}

impl Store {
    /// Whitelists `target` with `comment`, stamped with the current time. Returns false (and
    /// keeps the existing entry and its comment) when it was already whitelisted.
    pub async fn whitelist_add(&self, target: &Target, comment: &str) -> Result<bool, StoreError> {
        let added = sqlx::query(
            "INSERT INTO whitelist (net, comment, added_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (net) DO NOTHING",
        )
        .bind(target.to_string())
        .bind(comment)
        .bind(unix_now())
        .execute(&self.pool)
        .await
        .map_err(self.fail("add to the whitelist"))?
        .rows_affected();
        Ok(added > 0)
    }

    /// Removes `target` from the whitelist; false when it was not there.
    pub async fn whitelist_remove(&self, target: &Target) -> Result<bool, StoreError> {
        let removed = sqlx::query("DELETE FROM whitelist WHERE net = ?1")
            .bind(target.to_string())
            .execute(&self.pool)
            .await
            .map_err(self.fail("remove from the whitelist"))?
            .rows_affected();
        Ok(removed > 0)
    }

    /// Every whitelist entry, oldest first.
    pub async fn whitelist_list(&self) -> Result<Vec<WhitelistEntry>, StoreError> {
        sqlx::query("SELECT net, comment, added_at FROM whitelist ORDER BY added_at, net")
            .try_map(|row: SqliteRow| whitelist_entry_from_row(&row).map_err(into_sqlx))
            .fetch_all(&self.pool)
            .await
            .map_err(self.fail("read the whitelist"))
    }
}

fn whitelist_entry_from_row(row: &SqliteRow) -> Result<WhitelistEntry, StoreError> {
    let r = RowReader::by_text_key(row, "whitelist", "net")?;
    Ok(WhitelistEntry {
        target: r.parse("net", Target::parse)?,
        comment: r.get("comment")?,
        added_at: r.get("added_at")?,
    })
}
