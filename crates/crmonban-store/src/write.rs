//! [`WriteTx`]: a write transaction that never leaves a broken connection in the pool.
//!
//! sqlx's own `Transaction` counts its depth on the connection before SQLite has answered:
//! when a `COMMIT` fails (a full disk, an I/O error) SQLite may keep the transaction open
//! while sqlx believes it ended, and that pooled connection then refuses every later
//! transaction ("begin_with at non-zero transaction depth") until the process restarts. Here
//! the statements are plain SQL on a connection taken from the pool, and a connection whose
//! transaction did not end cleanly is closed instead of going back: the pool opens a fresh one
//! for the next write, so recording resumes by itself once the fault clears.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{Sqlite, SqliteConnection, SqlitePool};

/// An open `BEGIN IMMEDIATE` transaction on a pooled connection.
pub(crate) struct WriteTx {
    conn: Option<PoolConnection<Sqlite>>,
}

impl WriteTx {
    /// Takes a connection and starts the transaction, holding SQLite's write lock from its first
    /// statement (a transaction that reads before it writes waits for another writer, under
    /// the busy timeout, instead of failing to upgrade its lock).
    pub(crate) async fn begin(pool: &SqlitePool) -> Result<WriteTx, sqlx::Error> {
        let mut conn = pool.acquire().await?;
        if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
            discard(conn).await;
            return Err(e);
        }
        Ok(WriteTx { conn: Some(conn) })
    }

    /// Commits; on failure the transaction is rolled back and the connection closed.
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        let Some(mut conn) = self.conn.take() else {
            return Ok(());
        };
        match sqlx::query("COMMIT").execute(&mut *conn).await {
            Ok(_) => Ok(()),
            Err(e) => {
                discard(conn).await;
                Err(e)
            }
        }
    }
}

/// Rolls back whatever is open and closes the connection rather than pooling it again.
async fn discard(mut conn: PoolConnection<Sqlite>) {
    let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    let _ = conn.close().await;
}

impl Drop for WriteTx {
    /// Dropped without a commit (a statement failed and `?` returned): the connection is taken
    /// out of the pool and closed, which makes SQLite roll the transaction back.
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.conn
            .as_deref()
            .expect("a WriteTx holds its connection until it ends")
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn
            .as_deref_mut()
            .expect("a WriteTx holds its connection until it ends")
    }
}
