//! The `intel` table: a cache of what crmonban-intel gathered about an address, as JSON.

use crate::{Store, StoreError};

impl Store {
    /// Stores (or replaces) the intel `json` gathered about `addr` at `at`. Text that is not
    /// valid JSON is refused by the table's CHECK constraint.
    pub async fn put_intel(&self, addr: &str, json: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO intel (addr, data, gathered_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (addr) DO UPDATE SET data = excluded.data, gathered_at = excluded.gathered_at",
        )
        .bind(addr)
        .bind(json)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(self.fail("store intel"))?;
        Ok(())
    }

    /// The cached intel JSON about `addr` and when it was gathered, if any.
    pub async fn get_intel(&self, addr: &str) -> Result<Option<(String, i64)>, StoreError> {
        sqlx::query_as("SELECT data, gathered_at FROM intel WHERE addr = ?1")
            .bind(addr)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.fail("read cached intel"))
    }
}
