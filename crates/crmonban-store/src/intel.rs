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

/// What `crmonctl list` shows of an address's cached intel.
#[derive(Clone, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct IntelSummary {
    /// The address, as stored.
    pub addr: String,
    /// ISO country code (GeoIP, else WHOIS).
    pub country: Option<String>,
    /// AS number.
    pub asn: Option<i64>,
    /// The AS's organisation (else the WHOIS organisation).
    pub organization: Option<String>,
}

impl Store {
    /// Country and network of those of `addrs` that have cached intel, in no particular
    /// order (read 1,000 addresses per query).
    pub async fn intel_summaries(&self, addrs: &[String]) -> Result<Vec<IntelSummary>, StoreError> {
        let mut found = Vec::new();
        for chunk in addrs.chunks(1000) {
            let rows: Vec<IntelSummary> = sqlx::query_as(
                "SELECT addr,
                        coalesce(json_extract(data, '$.location.country_code'),
                                 json_extract(data, '$.whois.country')) AS country,
                        json_extract(data, '$.network.asn') AS asn,
                        coalesce(json_extract(data, '$.network.organization'),
                                 json_extract(data, '$.whois.organization')) AS organization
                 FROM intel WHERE addr IN (SELECT value FROM json_each(?1))",
            )
            .bind(json_array(chunk))
            .fetch_all(&self.pool)
            .await
            .map_err(self.fail("read cached intel summaries"))?;
            found.extend(rows);
        }
        Ok(found)
    }

    /// Deletes cached intel gathered before `before` and, beyond `max_rows`, the oldest;
    /// returns how many rows went.
    pub async fn prune_intel(&self, before: i64, max_rows: u64) -> Result<u64, StoreError> {
        let max_rows = i64::try_from(max_rows).unwrap_or(i64::MAX);
        let old = sqlx::query("DELETE FROM intel WHERE gathered_at < ?1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(self.fail("prune cached intel"))?
            .rows_affected();
        let over = sqlx::query(
            "DELETE FROM intel WHERE addr IN (
                 SELECT addr FROM intel ORDER BY gathered_at DESC LIMIT -1 OFFSET ?1)",
        )
        .bind(max_rows)
        .execute(&self.pool)
        .await
        .map_err(self.fail("prune cached intel"))?
        .rows_affected();
        Ok(old + over)
    }
}

/// `["a","b"]`: addresses (which need no escaping beyond quotes) as a JSON array for json_each.
fn json_array(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in item.chars() {
            match c {
                '"' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                c if c.is_control() => {}
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push(']');
    out
}
