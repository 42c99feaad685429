//! The read of fail2ban's own SQLite database (its `dbfile`), for the migration from fail2ban
//! (crmonban-fail2ban): the bans it holds, as plain rows. The file is opened read-only and
//! nothing is written to it; what the rows mean (which bans are still active) is
//! crmonban-fail2ban's business.
//!
//! fail2ban 0.11 and later keep every ban in `bans(jail, ip, timeofban, bantime, bancount,
//! data)` and the latest ban of each address and jail in `bips` (same columns); databases of
//! fail2ban 0.10 and older have `bans` without `bantime`. `bips` is read when it exists, else
//! `bans`.

use std::path::{Path, PathBuf};

use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

/// One row of fail2ban's `bips` (or `bans`) table, as stored: fail2ban's columns are untyped,
/// so any of them may be NULL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fail2banBan {
    /// `ip`: the banned address, as fail2ban wrote it.
    pub ip: Option<String>,
    /// `jail`: the jail that banned it.
    pub jail: Option<String>,
    /// `timeofban`: when, in unix seconds (a fractional time rounded down).
    pub timeofban: Option<i64>,
    /// `bantime`: the ban's length in seconds (rounded), -1 permanent, -2 unknown; `None`
    /// when NULL or not recorded (fail2ban 0.10 and older).
    pub bantime: Option<i64>,
}

/// Why fail2ban's database could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Fail2banDbError {
    /// There is no file at the path given.
    #[error(
        "{}: no such file (fail2ban's database is its `dbfile`, set in fail2ban.conf)",
        path.display()
    )]
    NoSuchFile {
        /// The path given.
        path: PathBuf,
    },
    /// SQLite could not open the file (permissions, locked, ...).
    #[error("{}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's reason.
        #[source]
        source: sqlx::Error,
    },
    /// A query failed: the file is not a SQLite database, or not one of fail2ban's.
    #[error("{}: not a fail2ban database ({source})", path.display())]
    NotFail2ban {
        /// The database file.
        path: PathBuf,
        /// SQLite's reason.
        #[source]
        source: sqlx::Error,
    },
    /// A SQLite database without fail2ban's tables.
    #[error("{}: not a fail2ban database (no table `bips` or `bans`)", path.display())]
    NoBanTable {
        /// The database file.
        path: PathBuf,
    },
}

/// Every row of the fail2ban database at `db`: of `bips` when it has that table (the latest
/// ban of each address and jail), else of `bans` (every ban). The file is opened read-only.
pub async fn read_fail2ban_bans(db: &Path) -> Result<Vec<Fail2banBan>, Fail2banDbError> {
    if !db.is_file() {
        return Err(Fail2banDbError::NoSuchFile {
            path: db.to_owned(),
        });
    }
    let options = SqliteConnectOptions::new().filename(db).read_only(true);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|source| Fail2banDbError::Open {
            path: db.to_owned(),
            source,
        })?;
    let not_fail2ban = |source| Fail2banDbError::NotFail2ban {
        path: db.to_owned(),
        source,
    };
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut conn)
            .await
            .map_err(not_fail2ban)?;
    let has = |name: &str| tables.iter().any(|(t,)| t == name);
    let columns: Vec<(String,)> = sqlx::query_as("SELECT name FROM pragma_table_info('bans')")
        .fetch_all(&mut conn)
        .await
        .map_err(not_fail2ban)?;
    let query = if has("bips") {
        "SELECT ip, jail, CAST(timeofban AS INTEGER), CAST(ROUND(bantime) AS INTEGER) FROM bips"
    } else if has("bans") && columns.iter().any(|(c,)| c == "bantime") {
        "SELECT ip, jail, CAST(timeofban AS INTEGER), CAST(ROUND(bantime) AS INTEGER) FROM bans"
    } else if has("bans") {
        "SELECT ip, jail, CAST(timeofban AS INTEGER), NULL FROM bans"
    } else {
        return Err(Fail2banDbError::NoBanTable {
            path: db.to_owned(),
        });
    };
    type Fields = (Option<String>, Option<String>, Option<i64>, Option<i64>);
    let fetched: Vec<Fields> = sqlx::query_as(query)
        .fetch_all(&mut conn)
        .await
        .map_err(not_fail2ban)?;
    let _ = conn.close().await;
    Ok(fetched
        .into_iter()
        .map(|(ip, jail, timeofban, bantime)| Fail2banBan {
            ip,
            jail,
            timeofban,
            bantime,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn database(path: &Path, sql: &'static str) {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }

    #[tokio::test]
    async fn rows_of_bips_or_of_an_old_bans_table() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.sqlite3");
        database(
            &new,
            "CREATE TABLE bans(jail TEXT, ip TEXT, timeofban INTEGER, bantime INTEGER);
             INSERT INTO bans VALUES ('sshd', '192.0.2.1', 10, 600);
             CREATE TABLE bips(ip TEXT, jail TEXT, timeofban INTEGER, bantime INTEGER);
             INSERT INTO bips VALUES ('192.0.2.2', 'sshd', 20.7, 599.6), (NULL, NULL, NULL, -1);",
        )
        .await;
        let bans = read_fail2ban_bans(&new).await.unwrap();
        let ban = |ip: Option<&str>, jail: Option<&str>, timeofban, bantime| Fail2banBan {
            ip: ip.map(str::to_owned),
            jail: jail.map(str::to_owned),
            timeofban,
            bantime,
        };
        assert_eq!(
            bans,
            [
                ban(Some("192.0.2.2"), Some("sshd"), Some(20), Some(600)),
                ban(None, None, None, Some(-1)),
            ]
        );
        // fail2ban 0.10 and older: `bans` without `bantime`.
        let old = dir.path().join("old.sqlite3");
        database(
            &old,
            "CREATE TABLE bans(jail TEXT, ip TEXT, timeofban INTEGER, data JSON);
             INSERT INTO bans VALUES ('sshd', '192.0.2.1', 10, '{}');",
        )
        .await;
        let bans = read_fail2ban_bans(&old).await.unwrap();
        assert_eq!(bans, [ban(Some("192.0.2.1"), Some("sshd"), Some(10), None)]);
    }

    #[tokio::test]
    async fn what_is_not_a_fail2ban_database_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none");
        let error = read_fail2ban_bans(&missing).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: no such file (fail2ban's database is its `dbfile`, set in fail2ban.conf)",
                missing.display()
            )
        );
        let empty = dir.path().join("empty.sqlite3");
        std::fs::write(&empty, "").unwrap();
        let error = read_fail2ban_bans(&empty).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: not a fail2ban database (no table `bips` or `bans`)",
                empty.display()
            )
        );
        let text = dir.path().join("text");
        std::fs::write(&text, "x".repeat(4096)).unwrap();
        let error = read_fail2ban_bans(&text).await.unwrap_err();
        assert!(
            matches!(error, Fail2banDbError::NotFail2ban { .. }),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}: not a fail2ban database (", text.display())),
            "{error}"
        );
    }
}
