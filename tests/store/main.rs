//! Store contract tests: one test body per queue behaviour, run against SQLite (in memory)
//! and against PostgreSQL (a fresh schema on the local test server per test).

#[path = "../common/pg.rs"]
mod pg;

mod contract;

/// A database for one test, with whatever keeps it alive.
pub struct TestDb {
    pub db: radscore::store::Db,
    _schema: Option<pg::PgSchema>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        TestDb {
            db: radscore::store::Db::connect("sqlite::memory:")
                .await
                .expect("in-memory SQLite"),
            _schema: None,
        }
    }

    pub async fn postgres() -> TestDb {
        let schema = pg::PgSchema::create().await;
        let db = radscore::store::Db::connect(&schema.url)
            .await
            .expect("PostgreSQL test schema opens and migrates");
        TestDb {
            db,
            _schema: Some(schema),
        }
    }
}

/// For each named contract test, a `sqlite::NAME` and a `postgres::NAME` test.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let t = crate::TestDb::sqlite().await;
                    crate::contract::$name(&t.db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let t = crate::TestDb::postgres().await;
                    assert_eq!(t.db.backend(), radscore::store::Backend::Postgres);
                    crate::contract::$name(&t.db).await;
                }
            )*
        }
    };
}

on_both_backends!(
    rows_round_trip,
    a_job_is_claimed_once_and_finished_by_its_owner_only,
    an_expired_lease_is_requeued_with_backoff_then_failed_after_max_attempts,
    a_retry_waits_for_its_backoff,
    concurrent_claimers_never_share_a_job,
    idempotency_key_returns_the_existing_job,
    cancel_takes_the_lease_and_counts_follow,
    release_puts_the_job_back_without_spending_an_attempt,
    a_batch_is_stored_whole_or_not_at_all,
    deletion_waits_for_jobs_then_tombstones_series_and_segmentations,
    expired_uploads_are_old_and_unused,
    the_model_registry_keeps_one_active_model_per_tenant,
    a_delivery_counts_attempts_until_its_outcome,
);
