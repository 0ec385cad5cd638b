//! Store contract tests: one test body per queue behaviour, run against SQLite (in memory)
//! and against PostgreSQL (a fresh schema on the local test server per test).

#[path = "../common/pg.rs"]
mod pg;

mod contract;

/// A database for one test, with whatever keeps it alive.
pub struct TestDb {
    pub db: radscore::store::Db,
    _schema: Option<pg::PgSchema>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        TestDb {
            db: radscore::store::Db::connect("sqlite::memory:")
                .await
                .expect("in-memory SQLite"),
            _schema: None,
            _dir: None,
        }
    }

    /// A SQLite database file with the production pool (several connections, WAL), for
    /// tests of concurrent writers: an in-memory database has a single connection.
    pub async fn sqlite_file() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("radscore.db").display());
        TestDb {
            db: radscore::store::Db::connect(&url)
                .await
                .expect("SQLite file opens and migrates"),
            _schema: None,
            _dir: Some(dir),
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
            _dir: None,
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
    jobs_keep_their_kind_and_list_by_kind,
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
    shared_models_are_seen_by_all_and_activation_is_per_tenant,
    concurrent_activations_serialise,
    a_delivery_counts_attempts_until_its_outcome,
    an_interrupted_delivery_is_claimed_once_and_resumed_after_its_lease,
    tenant_settings_and_stow_triggers_round_trip,
    stow_series_stage_instances_once_and_keep_the_largest_union,
    tenants_see_only_their_own_rows,
    api_keys_round_trip_and_revoke,
    audit_events_are_read_back_in_order,
);

/// A job creation racing the deletion of its upload, on SQLite with several connections
/// (the file the server uses) and on PostgreSQL, with tasks on several threads.
mod race {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_a_job_creation_and_a_deletion_of_its_upload_never_both_succeed() {
        let t = crate::TestDb::sqlite_file().await;
        crate::contract::a_job_creation_and_a_deletion_of_its_upload_never_both_succeed(&t.db)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_a_job_creation_and_a_deletion_of_its_upload_never_both_succeed() {
        let t = crate::TestDb::postgres().await;
        crate::contract::a_job_creation_and_a_deletion_of_its_upload_never_both_succeed(&t.db)
            .await;
    }
}

/// Append one audit event through the store.
async fn append_one(db: &radscore::store::Db) {
    let event = radscore::store::AuditEvent {
        seq: 0,
        at_ms: 1,
        tenant_id: "a".into(),
        key_id: None,
        action: "job.create".into(),
        object_type: "job".into(),
        object_id: Some("j".into()),
        request_id: None,
        detail: "{}".into(),
    };
    db.append_audit(&event).await.unwrap();
}

/// SQLite refuses UPDATE and DELETE on the audit log, even from outside radscore.
#[tokio::test]
async fn sqlite_audit_log_refuses_update_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("db.sqlite").display()
    );
    let db = radscore::store::Db::connect(&url).await.unwrap();
    append_one(&db).await;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    for sql in ["UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"] {
        let err = sqlx::query(sql).execute(&pool).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(db.audit_events(None, None).await.unwrap().len(), 1);
}

/// PostgreSQL refuses UPDATE, DELETE and TRUNCATE on the audit log.
#[tokio::test]
async fn postgres_audit_log_refuses_update_delete_and_truncate() {
    let t = TestDb::postgres().await;
    append_one(&t.db).await;
    let url = &t._schema.as_ref().unwrap().url;
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    for sql in [
        "UPDATE audit_log SET action = 'x'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let err = sqlx::query(sql).execute(&pool).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(t.db.audit_events(None, None).await.unwrap().len(), 1);
}
