//! [`StoreError`]: every way a store operation fails, each naming what it was doing.

use std::path::{Path, PathBuf};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be opened or created (missing directory, permissions, not a
    /// database, locked by another program...).
    #[error("cannot open database {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's reason.
        #[source]
        source: sqlx::Error,
    },
    /// The schema could not be brought up to date, e.g. the file was written by a newer
    /// crmonban or an applied migration has since been edited.
    #[error("cannot apply the schema migrations to database {}: {source}", path.display())]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// Which migration failed, and why.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// The fleet database could not be reached or refused the connection (wrong password,
    /// no such database, TLS required, a server certificate that does not verify...).
    /// `server` names it without any password.
    #[error(
        "cannot connect to the fleet database {server}: {}",
        connect_reason(source)
    )]
    FleetConnect {
        /// `user@host:port/database`.
        server: String,
        /// PostgreSQL's or the driver's reason.
        #[source]
        source: sqlx::Error,
    },
    /// The fleet database's schema could not be brought up to date (written by a newer
    /// crmonban, or a migration edited since it was applied).
    #[error("cannot apply the schema migrations to the fleet database {server}: {source}")]
    FleetMigrate {
        /// `user@host:port/database`.
        server: String,
        /// Which migration failed, and why.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A statement failed; `action` says what the store was doing ("record a ban").
    #[error("database error: cannot {action}: {source}")]
    Query {
        /// What the store was doing, phrased to follow "cannot": `"record a ban"`.
        action: &'static str,
        /// SQLite's or the pool's error.
        #[source]
        source: sqlx::Error,
    },
    /// A statement failed because the filesystem holding the database is full.
    #[error("database error: cannot {action}: disk full ({} has no space left): {source}", dir.display())]
    DiskFull {
        /// What the store was doing, as in [`StoreError::Query`].
        action: &'static str,
        /// The directory holding the database (`.` when its path names none).
        dir: PathBuf,
        /// SQLite's error (FULL, or an I/O error on a full filesystem).
        #[source]
        source: sqlx::Error,
    },
    /// A row holds a value that does not read back as its type (edited by hand, written by
    /// another program). `key` names the row, e.g. `id 42`.
    #[error("corrupt row in table {table} ({key}): column {column} holds {value}: {problem}")]
    Corrupt {
        /// The table, e.g. `bans`.
        table: &'static str,
        /// Which row (or page of rows) it is, e.g. `id 42`.
        key: String,
        /// The column that does not read back; `*` for a whole row.
        column: &'static str,
        /// The value found, quoted, or a description of it (`1234 bytes of JSON`).
        value: String,
        /// Why it does not read back.
        problem: String,
    },
    /// A value given to the store does not fit the column (an unsigned number above
    /// `i64::MAX` where the store keeps its arithmetic meaning).
    #[error("cannot {action}: {what} {value} is larger than {}", i64::MAX)]
    OutOfRange {
        /// What the store was doing, as in [`StoreError::Query`].
        action: &'static str,
        /// The value's name, e.g. `offset`.
        what: &'static str,
        /// The value given.
        value: u64,
    },
}

/// Why a connection to the fleet database failed, for the administrator who reads it:
/// PostgreSQL's own message without the " at line N" sqlx appends (a line of the server's C
/// source, which reads like a line of pg_hba.conf); for a server certificate signed by no
/// trusted CA, which CAs are trusted. Anything else as sqlx says it.
fn connect_reason(source: &sqlx::Error) -> String {
    match source {
        sqlx::Error::Database(db) => format!("PostgreSQL says: {}", db.message()),
        // rustls's words for it, inside the io::Error of the handshake.
        sqlx::Error::Io(io)
            if io.get_ref().is_some_and(|e| {
                e.to_string()
                    .ends_with("invalid peer certificate: UnknownIssuer")
            }) =>
        {
            "TLS: the server's certificate is signed by no CA this node trusts (the system's \
             CAs and the file named by sslrootcert= in the URL; invalid peer certificate: \
             UnknownIssuer)"
                .to_owned()
        }
        other => other.to_string(),
    }
}

/// Maps a sqlx error to [`StoreError::Query`] for `action`. Row conversions run inside sqlx's
/// row stream and can only fail with a `sqlx::Error`, so they carry a [`StoreError::Corrupt`]
/// inside `sqlx::Error::Decode`; it is unwrapped here and returned as it was.
pub(crate) fn query(action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| match error {
        sqlx::Error::Decode(inner) => match inner.downcast::<StoreError>() {
            Ok(store_error) => *store_error,
            Err(other) => StoreError::Query {
                action,
                source: sqlx::Error::Decode(other),
            },
        },
        source => StoreError::Query { action, source },
    }
}

impl StoreError {
    /// A query error becomes [`StoreError::DiskFull`] when SQLite said the disk is full, or
    /// reported an I/O error while the filesystem holding `db` has no space left.
    pub(crate) fn with_disk_state(self, db: &Path) -> StoreError {
        let StoreError::Query { action, source } = self else {
            return self;
        };
        let code = match &source {
            sqlx::Error::Database(e) => e.code().and_then(|c| c.parse::<i32>().ok()),
            _ => None,
        };
        // Primary result codes: 13 SQLITE_FULL, 10 SQLITE_IOERR (extended codes keep it in
        // their low byte).
        let full = match code.map(|c| c & 0xff) {
            Some(13) => true,
            Some(10) => no_space_left(db),
            _ => false,
        };
        if !full {
            return StoreError::Query { action, source };
        }
        let dir = db
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        StoreError::DiskFull {
            action,
            dir,
            source,
        }
    }

    /// The disk holding the database is full: retrying is pointless until space is freed.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::DiskFull { .. })
    }

    /// A fault that may pass, so that the same write is worth trying again later: SQLite's
    /// FULL, IOERR, READONLY, BUSY, LOCKED, CANTOPEN, NOMEM, CORRUPT and NOTADB (a file
    /// replaced under us may be put back), and errors without a code (the pool timed out, a
    /// connection closed). Not: the schema refusing the row (a constraint, a trigger), which it
    /// will do again.
    pub fn is_transient(&self) -> bool {
        let source = match self {
            StoreError::DiskFull { .. } => return true,
            StoreError::Query { source, .. } => source,
            _ => return false,
        };
        match source {
            sqlx::Error::Database(db) => {
                let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
                matches!(code & 0xff, 5 | 6 | 7 | 8 | 10 | 11 | 13 | 14 | 26)
            }
            _ => true,
        }
    }
}

/// Whether the filesystem holding `db` has (almost) no space left for it.
fn no_space_left(db: &Path) -> bool {
    let dir = db
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match nix::sys::statvfs::statvfs(dir) {
        // Less than a few pages: SQLite cannot grow the database, its WAL or its index.
        Ok(stat) => stat.blocks_available().saturating_mul(stat.fragment_size()) < 64 * 1024,
        Err(_) => false,
    }
}

/// Carries a [`StoreError`] through sqlx's row mapping; see [`query`].
pub(crate) fn into_sqlx(error: StoreError) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(error))
}

/// A `u64` the store compares or adds up (a byte offset) as a SQLite integer.
pub(crate) fn to_i64(
    action: &'static str,
    what: &'static str,
    value: u64,
) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange {
        action,
        what,
        value,
    })
}
