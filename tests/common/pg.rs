//! A fresh PostgreSQL schema per test on the local test server (127.0.0.1:5432, database
//! `test`, or `$RADSCORE_TEST_PG_URL`), dropped when the test ends, pass or fail.
//!
//! An unreachable server fails the test with how to start it: PostgreSQL coverage is
//! never skipped silently.

use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};

/// The test server when `RADSCORE_TEST_PG_URL` is unset (trust authentication).
pub const DEFAULT_TEST_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A schema of its own on the test server; `url` points every connection at it.
pub struct PgSchema {
    /// `DATABASE_URL` whose connections use this schema (via `search_path`).
    pub url: String,
    admin_url: String,
    name: String,
}

fn admin_url() -> String {
    std::env::var("RADSCORE_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_TEST_PG_URL.to_string())
}

async fn admin_connection(url: &str) -> PgConnection {
    PgConnection::connect(url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL test server at {url} is unreachable ({e}); start it with \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
             (scripts/test.sh does) or set RADSCORE_TEST_PG_URL"
        )
    })
}

impl PgSchema {
    /// Create an empty, uniquely named schema.
    pub async fn create() -> PgSchema {
        let admin_url = admin_url();
        let mut conn = admin_connection(&admin_url).await;
        let name = format!("radscore_test_{}", uuid::Uuid::new_v4().simple());
        // The name is ours (a UUID in hex), not input: safe to splice.
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut conn)
            .await
            .expect("create test schema");
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        PgSchema {
            url: format!("{admin_url}{sep}options[search_path]={name}"),
            admin_url,
            name,
        }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop may run inside a tokio runtime that cannot block: use a thread of its own.
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for schema cleanup");
            rt.block_on(async {
                let mut conn = admin_connection(&url).await;
                sqlx::query(AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {name} CASCADE"
                )))
                .execute(&mut conn)
                .await
                .map(|_| ())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: test schema {} was not dropped", self.name);
        }
    }
}
