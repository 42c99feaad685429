//! The node's side of the fleet in its own SQLite database: the `fleet_outbox` table, where
//! what this node publishes waits until the fleet database took it (so the fleet being down
//! never loses a publication, and a restart sends what waited), and the `fleet_cursor` table,
//! the last fleet change this node applied, per fleet database.

use sqlx::Row;

use crate::fleet::{Publication, publication_of};
use crate::{Store, StoreError};

impl Store {
    /// Queues `publications` for the fleet, in order, at `now`.
    pub async fn outbox_push(
        &self,
        publications: &[Publication],
        now: i64,
    ) -> Result<(), StoreError> {
        let action = "queue a fleet publication";
        let mut tx = self.pool.begin().await.map_err(self.fail(action))?;
        for p in publications {
            sqlx::query(
                "INSERT INTO fleet_outbox
                   (kind, target, reason, service, first_seen, last_seen, expires_at, queued_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .bind(p.kind.as_str())
            .bind(p.target.to_string())
            .bind(&p.reason)
            .bind(&p.service)
            .bind(p.first_seen)
            .bind(p.last_seen)
            .bind(p.expires_at)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(self.fail(action))?;
        }
        tx.commit().await.map_err(self.fail(action))?;
        Ok(())
    }

    /// The oldest `limit` queued publications with their outbox ids. A row that does not read
    /// back (edited by hand) is [`StoreError::Corrupt`].
    pub async fn outbox_peek(&self, limit: u32) -> Result<Vec<(i64, Publication)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, target, reason, service, first_seen, last_seen, expires_at
               FROM fleet_outbox ORDER BY id LIMIT ?1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(self.fail("read the fleet outbox"))?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.get("id");
                Ok((id, publication_of("fleet_outbox", id, row)?))
            })
            .collect()
    }

    /// Removes the queued publications up to and including outbox id `up_to` (sent).
    pub async fn outbox_remove(&self, up_to: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM fleet_outbox WHERE id <= ?1")
            .bind(up_to)
            .execute(&self.pool)
            .await
            .map_err(self.fail("remove sent fleet publications"))?;
        Ok(())
    }

    /// How many publications wait.
    pub async fn outbox_len(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM fleet_outbox")
            .fetch_one(&self.pool)
            .await
            .map_err(self.fail("count the fleet outbox"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The last change of fleet database `fleet` this node applied, if it ever applied one.
    pub async fn fleet_cursor(&self, fleet: &str) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar("SELECT last_id FROM fleet_cursor WHERE fleet = ?1")
            .bind(fleet)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.fail("read the fleet cursor"))
    }

    /// Saves how far this node applied fleet database `fleet`'s changes.
    pub async fn set_fleet_cursor(
        &self,
        fleet: &str,
        last_id: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO fleet_cursor (fleet, last_id, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (fleet) DO UPDATE SET last_id = ?2, updated_at = ?3",
        )
        .bind(fleet)
        .bind(last_id)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(self.fail("save the fleet cursor"))?;
        Ok(())
    }
}
