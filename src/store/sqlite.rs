//! The embedded SQLite backend (default, single node): a database file under the data
//! directory in WAL mode, or `sqlite::memory:` for tests.

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

use super::db::Backend;
use super::sql::{claim_job, impl_database};
use super::{JobRow, StoreError};

/// How long a connection waits on a locked SQLite database before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection pool size for the embedded SQLite database.
const SQLITE_MAX_CONNECTIONS: u32 = 8;

/// A SQLite database (see [`super::Database`] for the statements).
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Open (creating the file and its directory if needed) the database at `url`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let file = path.split('?').next().unwrap_or(path);
            if let Some(parent) = std::path::Path::new(file).parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent)?;
            }
        }
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true);
        // Every connection to `:memory:` is its own database: keep one for in-memory URLs.
        let max = if url.contains(":memory:") {
            1
        } else {
            SQLITE_MAX_CONNECTIONS
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .connect_with(opts)
            .await?;
        Ok(SqliteStore { pool })
    }
}

impl_database!(SqliteStore, Backend::Sqlite, "", {
    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn claim_job(
        &self,
        worker: &str,
        lease: Duration,
        max_attempts: u32,
    ) -> Result<Option<JobRow>, StoreError> {
        // One writer at a time: the UPDATE's inner SELECT cannot race another claim.
        claim_job!(&self.pool, "", worker, lease, max_attempts)
    }
});
