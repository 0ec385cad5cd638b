//! The PostgreSQL backend, for several API replicas and worker processes sharing one
//! queue. Selected by a `postgres://` or `postgresql://` `DATABASE_URL`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::db::Backend;
use super::sql::{claim_job, impl_database};
use super::{JobRow, StoreError};

/// Connections per process; the workers and request handlers of one process share them.
const PG_MAX_CONNECTIONS: u32 = 10;

/// How long a request waits for a free pooled connection before failing.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// A PostgreSQL database (see [`super::Database`] for the statements).
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connect to the server named by `url`. Connection parameters in the URL (such as
    /// `options[search_path]=…`) apply to every pooled connection.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(PG_MAX_CONNECTIONS)
            .acquire_timeout(PG_ACQUIRE_TIMEOUT)
            .connect_with(opts)
            .await?;
        Ok(PgStore { pool })
    }
}

impl_database!(PgStore, Backend::Postgres, "FOR SHARE", {
    async fn migrate(&self) -> Result<(), StoreError> {
        // sqlx holds a PostgreSQL advisory lock while migrating, so replicas starting
        // together apply each migration once.
        sqlx::migrate!("./migrations/postgres")
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
        claim_job!(
            &self.pool,
            "FOR UPDATE SKIP LOCKED",
            worker,
            lease,
            max_attempts
        )
    }
});
