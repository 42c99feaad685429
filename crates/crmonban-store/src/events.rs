//! The `events` table: hostile acts reported by detectors, and what statistics read from it.
//!
//! "Since" queries compare `coalesce(time, seen_at)`: the log line's own time when it had one,
//! else when crmonban read it (the expression the `events_by_time` index is built on).

use std::net::IpAddr;

use crmonban_core::target::unmap;
use crmonban_core::{Event, EventKind, Service};
use sqlx::sqlite::SqliteRow;

use crate::bulk::insert_rows;
use crate::error::into_sqlx;
use crate::rows::RowReader;
use crate::{Store, StoreError, count, limit};
use crmonban_core::unix_now;

/// An event as stored: the [`Event`] plus its row id and when crmonban read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// The row id; later events have larger ids.
    pub id: i64,
    /// The event, its address in canonical form.
    pub event: Event,
    /// Unix seconds when the event was recorded.
    pub seen_at: i64,
}

impl Store {
    /// Records `events` in one transaction, stamped with the current time as `seen_at`.
    /// Addresses are stored in canonical form (IPv4-mapped IPv6 as IPv4).
    pub async fn record_events(&self, events: &[Event]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let action = "record events";
        let seen_at = unix_now();
        let mut tx = self.begin_write().await.map_err(self.fail(action))?;
        insert_rows(
            &mut tx,
            "INSERT INTO events (addr, service, kind, time, seen_at)",
            5,
            events,
            |statement, event| {
                statement
                    .bind(unmap(event.addr).to_string())
                    .bind(event.service.as_str())
                    .bind(event.kind.as_str())
                    .bind(event.time)
                    .bind(seen_at)
            },
        )
        .await
        .map_err(self.fail(action))?;
        tx.commit().await.map_err(self.fail(action))?;
        Ok(())
    }

    /// The `limit` most recently recorded events, newest first.
    pub async fn recent_events(&self, limit_rows: u32) -> Result<Vec<EventRecord>, StoreError> {
        sqlx::query(
            "SELECT id, addr, service, kind, time, seen_at FROM events ORDER BY id DESC LIMIT ?1",
        )
        .bind(limit(limit_rows))
        .try_map(|row: SqliteRow| event_record_from_row(&row).map_err(into_sqlx))
        .fetch_all(&self.pool)
        .await
        .map_err(self.fail("read recent events"))
    }

    /// How many events each service reported at or after `since`, most first.
    pub async fn event_counts_by_service(
        &self,
        since: i64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT service, count(*) AS n FROM events
             WHERE coalesce(time, seen_at) >= ?1
             GROUP BY service
             ORDER BY n DESC, service",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .map_err(self.fail("count events by service"))?;
        Ok(rows
            .into_iter()
            .map(|(service, n)| (service, count(n)))
            .collect())
    }

    /// The `limit` addresses with the most events at or after `since`, most first.
    pub async fn top_attackers(
        &self,
        since: i64,
        limit_rows: u32,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT addr, count(*) AS n FROM events
             WHERE coalesce(time, seen_at) >= ?1
             GROUP BY addr
             ORDER BY n DESC, addr
             LIMIT ?2",
        )
        .bind(since)
        .bind(limit(limit_rows))
        .fetch_all(&self.pool)
        .await
        .map_err(self.fail("find the top attackers"))?;
        Ok(rows.into_iter().map(|(addr, n)| (addr, count(n))).collect())
    }

    /// Deletes events older than `before` and, beyond that, all but the newest `keep`, so
    /// that the table does not grow without bound under a long attack; returns how many went.
    pub async fn prune_events(&self, before: i64, keep: u64) -> Result<u64, StoreError> {
        self.prune_table(
            "events",
            "coalesce(time, seen_at) < ?1",
            before,
            keep,
            "prune old events",
        )
        .await
    }
}

fn event_record_from_row(row: &SqliteRow) -> Result<EventRecord, StoreError> {
    let r = RowReader::by_id(row, "events")?;
    Ok(EventRecord {
        id: r.get("id")?,
        event: Event {
            addr: r.parse("addr", str::parse::<IpAddr>)?,
            service: Service::new(&r.get::<String>("service")?),
            kind: r.parse("kind", str::parse::<EventKind>)?,
            time: r.get("time")?,
        },
        seen_at: r.get("seen_at")?,
    })
}
