//! Window aggregates for `GetStats` and `crmonctl stats`: where the attacks of a time window
//! came from (countries and networks, from the cached intel of their addresses) and how many
//! bans and events each hour saw.

use crate::{Store, StoreError, count, limit};

/// One row of [`Store::attacks_by_country`] or [`Store::attacks_by_network`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttackOrigin {
    /// The ISO country code, or `AS<number>` for a network.
    pub origin: String,
    /// The network's organisation (networks only), when intel knows it.
    pub name: Option<String>,
    /// Events in the window from addresses there.
    pub events: u64,
    /// Distinct addresses there.
    pub addresses: u64,
}

/// The window's events per address (`?1`: since), joined with each address's cached intel and
/// grouped by country (GeoIP's, else WHOIS's), most events first, `?2` rows.
const BY_COUNTRY: &str = "WITH per_address AS (
        SELECT addr, count(*) AS n FROM events
        WHERE coalesce(time, seen_at) >= ?1
        GROUP BY addr)
     SELECT coalesce(json_extract(i.data, '$.location.country_code'),
                     json_extract(i.data, '$.whois.country')) AS origin,
            NULL AS name, sum(a.n) AS events, count(*) AS addresses
     FROM per_address a JOIN intel i ON i.addr = a.addr
     WHERE origin IS NOT NULL
     GROUP BY origin
     ORDER BY events DESC, origin
     LIMIT ?2";

/// The same grouped by autonomous system (`AS<number>`, with its organisation).
const BY_NETWORK: &str = "WITH per_address AS (
        SELECT addr, count(*) AS n FROM events
        WHERE coalesce(time, seen_at) >= ?1
        GROUP BY addr)
     SELECT 'AS' || json_extract(i.data, '$.network.asn') AS origin,
            max(json_extract(i.data, '$.network.organization')) AS name,
            sum(a.n) AS events, count(*) AS addresses
     FROM per_address a JOIN intel i ON i.addr = a.addr
     WHERE origin IS NOT NULL
     GROUP BY origin
     ORDER BY events DESC, origin
     LIMIT ?2";

impl Store {
    /// The `limit_rows` countries whose addresses sent the most events at or after `since`
    /// (country from the cached intel: GeoIP, else WHOIS); addresses without intel are left
    /// out.
    pub async fn attacks_by_country(
        &self,
        since: i64,
        limit_rows: u32,
    ) -> Result<Vec<AttackOrigin>, StoreError> {
        self.origins(BY_COUNTRY, since, limit_rows, "count attacks by country")
            .await
    }

    /// The `limit_rows` autonomous systems (`AS<number>`, with their organisation) whose
    /// addresses sent the most events at or after `since`.
    pub async fn attacks_by_network(
        &self,
        since: i64,
        limit_rows: u32,
    ) -> Result<Vec<AttackOrigin>, StoreError> {
        self.origins(BY_NETWORK, since, limit_rows, "count attacks by network")
            .await
    }

    async fn origins(
        &self,
        sql: &'static str,
        since: i64,
        limit_rows: u32,
        action: &'static str,
    ) -> Result<Vec<AttackOrigin>, StoreError> {
        let rows: Vec<(String, Option<String>, i64, i64)> = sqlx::query_as(sql)
            .bind(since)
            .bind(limit(limit_rows))
            .fetch_all(&self.pool)
            .await
            .map_err(self.fail(action))?;
        Ok(rows
            .into_iter()
            .map(|(origin, name, events, addresses)| AttackOrigin {
                origin,
                name,
                events: count(events),
                addresses: count(addresses),
            })
            .collect())
    }

    /// Bans made in each of the `hours` hours up to `now`, oldest hour first (the last entry
    /// is the hour that ends at `now`).
    pub async fn bans_per_hour(&self, now: i64, hours: u32) -> Result<Vec<u64>, StoreError> {
        self.per_hour(
            "SELECT (banned_at - ?1) / 3600 AS hour, count(*) FROM bans
             WHERE banned_at > ?1 AND banned_at <= ?2
             GROUP BY hour",
            now,
            hours,
            "count bans per hour",
        )
        .await
    }

    /// Events (attacks) in each of the `hours` hours up to `now` by their own time (the log
    /// line's, else when it was read), oldest hour first like [`Store::bans_per_hour`]. A
    /// line stamped later than it was read (a sender's clock ahead of ours) counts when read.
    pub async fn events_per_hour(&self, now: i64, hours: u32) -> Result<Vec<u64>, StoreError> {
        self.per_hour(
            "SELECT (min(coalesce(time, seen_at), seen_at) - ?1) / 3600 AS hour, count(*)
             FROM events
             WHERE coalesce(time, seen_at) > ?1 AND min(coalesce(time, seen_at), seen_at) <= ?2
             GROUP BY hour",
            now,
            hours,
            "count events per hour",
        )
        .await
    }

    /// Runs `sql` (`?1` the window's start, `?2` its end; rows of hour index and count) into
    /// one count per hour.
    async fn per_hour(
        &self,
        sql: &'static str,
        now: i64,
        hours: u32,
        action: &'static str,
    ) -> Result<Vec<u64>, StoreError> {
        let hours = hours.max(1);
        let since = now - i64::from(hours) * 3600;
        let rows: Vec<(i64, i64)> = sqlx::query_as(sql)
            .bind(since)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(self.fail(action))?;
        let mut per_hour = vec![0u64; hours as usize];
        for (hour, n) in rows {
            // A time == now lands in hour `hours`: the last one.
            let slot = usize::try_from(hour).unwrap_or(0).min(per_hour.len() - 1);
            per_hour[slot] += count(n);
        }
        Ok(per_hour)
    }
}
