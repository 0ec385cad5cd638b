//! The statements SQLite and PostgreSQL share, written once.
//!
//! They use `$N` placeholders and the SQL both engines accept (`ON CONFLICT DO NOTHING`,
//! `UPDATE … RETURNING`, `CAST(… AS BIGINT)`); integers are 64-bit on both (`INTEGER` in
//! SQLite, `BIGINT` in PostgreSQL) so they decode as `i64`. [`impl_database`] expands to
//! the whole `impl Database` of a backend whose struct has a `pool` field, with that
//! backend's own methods (migrations, claim) spliced in.

/// The column list of [`super::JobRow`], as a literal so statements stay static strings.
macro_rules! job_columns {
    () => {
        "id, tenant_id, series_id, segmentation_id, request, status, progress, attempts, \
         lease_owner, lease_expires_at_ms, error, result, created_at_ms, started_at_ms, \
         finished_at_ms, idempotency_key, run_after_ms, kind"
    };
}
pub(crate) use job_columns;

/// The column list of [`super::SeriesRow`].
macro_rules! series_columns {
    () => {
        "id, tenant_id, series_uid, frame_of_reference_uid, instance_count, geometry, \
         warnings, blob_prefix, created_at_ms"
    };
}
pub(crate) use series_columns;

/// The column list of [`super::StowSeriesRow`].
macro_rules! stow_series_columns {
    () => {
        "id, tenant_id, series_uid, version, instance_count, assembly_error, \
         last_instance_at_ms, created_at_ms"
    };
}
pub(crate) use stow_series_columns;

/// The column list of [`super::BatchRow`].
macro_rules! batch_columns {
    () => {
        "id, tenant_id, idempotency_key, request, job_count, created_at_ms"
    };
}
pub(crate) use batch_columns;

/// The column list of [`super::ApiKeyRow`].
macro_rules! api_key_columns {
    () => {
        "id, tenant_id, name, admin, key_hash, created_at_ms, revoked_at_ms"
    };
}
pub(crate) use api_key_columns;

/// `impl Database for $store` from the shared statements plus `$specific` methods
/// (`migrate` and `claim_job`, which differ between backends). `$share` is the row lock
/// clause a job insert takes on the uploads it references (see [`enqueue_job`]).
macro_rules! impl_database {
    ($store:ty, $backend:expr, $share:tt, { $($specific:tt)* }) => {
        impl $store {
            /// [`Enqueue::UploadGone`](crate::store::Enqueue::UploadGone) for job number
            /// `index` whose insert found no live series or segmentation: which one.
            async fn upload_gone<T>(
                &self,
                index: usize,
                job: &$crate::store::NewJob,
            ) -> Result<$crate::store::Enqueue<T>, $crate::store::StoreError> {
                use $crate::store::db::Database;
                use $crate::store::UploadKind;
                let (kind, id) = if self.series(&job.tenant_id, &job.series_id).await?.is_none() {
                    (UploadKind::Series, &job.series_id)
                } else {
                    (UploadKind::Segmentation, &job.segmentation_id)
                };
                Ok($crate::store::Enqueue::UploadGone {
                    job: index,
                    kind,
                    id: id.clone(),
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::db::Database for $store {
            fn backend(&self) -> $crate::store::db::Backend {
                $backend
            }

            $($specific)*

            async fn ping(&self) -> bool {
                sqlx::query_scalar::<_, i64>("SELECT CAST(1 AS BIGINT)")
                    .fetch_one(&self.pool)
                    .await
                    .is_ok()
            }

            async fn insert_series(
                &self,
                row: &$crate::store::SeriesRow,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO series (id, series_uid, frame_of_reference_uid, \
                     instance_count, geometry, warnings, blob_prefix, created_at_ms, tenant_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&row.id)
                .bind(&row.series_uid)
                .bind(&row.frame_of_reference_uid)
                .bind(row.instance_count)
                .bind(&row.geometry)
                .bind(&row.warnings)
                .bind(&row.blob_prefix)
                .bind(row.created_at_ms)
                .bind(&row.tenant_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn series(
                &self,
                tenant: &str,
                id: &str,
            ) -> Result<Option<$crate::store::SeriesRow>, $crate::store::StoreError> {
                let sql = concat!(
                    "SELECT ",
                    $crate::store::sql::series_columns!(),
                    " FROM series WHERE tenant_id = $1 AND id = $2 AND deleted_at_ms IS NULL"
                );
                Ok(sqlx::query_as::<_, $crate::store::SeriesRow>(sql)
                .bind(tenant)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn series_by_uid(
                &self,
                tenant: &str,
                series_uid: &str,
            ) -> Result<Option<$crate::store::SeriesRow>, $crate::store::StoreError> {
                let sql = concat!(
                    "SELECT ",
                    $crate::store::sql::series_columns!(),
                    " FROM series WHERE tenant_id = $1 AND series_uid = $2 \
                     AND deleted_at_ms IS NULL ORDER BY created_at_ms DESC, id DESC LIMIT 1"
                );
                Ok(sqlx::query_as::<_, $crate::store::SeriesRow>(sql)
                .bind(tenant)
                .bind(series_uid)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn insert_segmentation(
                &self,
                row: &$crate::store::SegmentationRow,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO segmentations (id, series_id, format, file_name, blob_key, \
                     lesions, created_at_ms, tenant_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&row.id)
                .bind(&row.series_id)
                .bind(&row.format)
                .bind(&row.file_name)
                .bind(&row.blob_key)
                .bind(&row.lesions)
                .bind(row.created_at_ms)
                .bind(&row.tenant_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn segmentations_of_series(
                &self,
                tenant: &str,
                series_id: &str,
            ) -> Result<Vec<$crate::store::SegmentationRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as::<_, $crate::store::SegmentationRow>(
                    "SELECT id, tenant_id, series_id, format, file_name, blob_key, lesions, \
                     created_at_ms FROM segmentations WHERE tenant_id = $1 AND series_id = $2 \
                     AND deleted_at_ms IS NULL ORDER BY created_at_ms, id",
                )
                .bind(tenant)
                .bind(series_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn segmentation(
                &self,
                tenant: &str,
                id: &str,
            ) -> Result<Option<$crate::store::SegmentationRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as::<_, $crate::store::SegmentationRow>(
                    "SELECT id, tenant_id, series_id, format, file_name, blob_key, lesions, \
                     created_at_ms FROM segmentations WHERE tenant_id = $1 AND id = $2 \
                     AND deleted_at_ms IS NULL",
                )
                .bind(tenant)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn insert_job(
                &self,
                job: &$crate::store::NewJob,
            ) -> Result<$crate::store::Enqueue<$crate::store::JobRow>, $crate::store::StoreError>
            {
                use $crate::store::Enqueue;
                let mut tx = self.pool.begin().await?;
                let inserted = $crate::store::sql::enqueue_job!(
                    &mut tx,
                    $share,
                    "ON CONFLICT DO NOTHING",
                    job,
                    None::<&str>,
                    $crate::store::now_ms()
                );
                tx.commit().await?;
                if inserted {
                    return Ok(Enqueue::Inserted);
                }
                if let Some(key) = &job.idempotency_key
                    && let Some(existing) = self.job_by_key(&job.tenant_id, key).await?
                {
                    return Ok(Enqueue::Existing(existing));
                }
                self.upload_gone(0, job).await
            }

            async fn cancel_job(
                &self,
                tenant: &str,
                id: &str,
            ) -> Result<Option<(bool, $crate::store::JobRow)>, $crate::store::StoreError> {
                let done = sqlx::query(
                    "UPDATE jobs SET status = 'cancelled', finished_at_ms = $1, \
                     lease_owner = NULL, lease_expires_at_ms = NULL \
                     WHERE tenant_id = $2 AND id = $3 AND status IN ('queued', 'running')",
                )
                .bind($crate::store::now_ms())
                .bind(tenant)
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(self
                    .job(tenant, id)
                    .await?
                    .map(|row| (done.rows_affected() == 1, row)))
            }

            async fn job(
                &self,
                tenant: &str,
                id: &str,
            ) -> Result<Option<$crate::store::JobRow>, $crate::store::StoreError> {
                let sql = concat!(
                    "SELECT ",
                    $crate::store::sql::job_columns!(),
                    " FROM jobs WHERE tenant_id = $1 AND id = $2"
                );
                Ok(sqlx::query_as::<_, $crate::store::JobRow>(sql)
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn job_by_key(
                &self,
                tenant: &str,
                key: &str,
            ) -> Result<Option<$crate::store::JobRow>, $crate::store::StoreError> {
                let sql = concat!(
                    "SELECT ",
                    $crate::store::sql::job_columns!(),
                    " FROM jobs WHERE tenant_id = $1 AND idempotency_key = $2"
                );
                Ok(sqlx::query_as::<_, $crate::store::JobRow>(sql)
                    .bind(tenant)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn expired_leases(
                &self,
                now_ms: i64,
                limit: i64,
            ) -> Result<Vec<$crate::store::JobRow>, $crate::store::StoreError> {
                let sql = concat!(
                    "SELECT ",
                    $crate::store::sql::job_columns!(),
                    " FROM jobs WHERE status = 'running' AND lease_expires_at_ms < $1 \
                     ORDER BY lease_expires_at_ms, id LIMIT $2"
                );
                Ok(sqlx::query_as::<_, $crate::store::JobRow>(sql)
                    .bind(now_ms)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn retry_or_fail(
                &self,
                job_id: &str,
                owner: &str,
                retry_at_ms: Option<i64>,
                reason: &str,
                expired_before_ms: Option<i64>,
            ) -> Result<bool, $crate::store::StoreError> {
                let (status, finished) = match retry_at_ms {
                    Some(_) => ("queued", None),
                    None => ("failed", Some($crate::store::now_ms())),
                };
                let done = sqlx::query(
                    "UPDATE jobs SET status = $1, run_after_ms = COALESCE($2, run_after_ms), \
                     error = $3, finished_at_ms = $4, lease_owner = NULL, \
                     lease_expires_at_ms = NULL \
                     WHERE id = $5 AND lease_owner = $6 AND status = 'running' \
                     AND lease_expires_at_ms < $7",
                )
                .bind(status)
                .bind(retry_at_ms)
                .bind(reason)
                .bind(finished)
                .bind(job_id)
                .bind(owner)
                .bind(expired_before_ms.unwrap_or(i64::MAX))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn heartbeat(
                &self,
                job_id: &str,
                worker: &str,
                lease: std::time::Duration,
                progress: f64,
            ) -> Result<bool, $crate::store::StoreError> {
                let expires = $crate::store::now_ms()
                    .saturating_add($crate::store::db::duration_ms(lease));
                let done = sqlx::query(
                    "UPDATE jobs SET lease_expires_at_ms = $1, progress = $2 \
                     WHERE id = $3 AND lease_owner = $4 AND status = 'running'",
                )
                .bind(expires)
                .bind(progress)
                .bind(job_id)
                .bind(worker)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn finish_job(
                &self,
                job_id: &str,
                worker: &str,
                outcome: Result<&str, &str>,
            ) -> Result<bool, $crate::store::StoreError> {
                let (status, result, error) = match outcome {
                    Ok(result) => ("succeeded", Some(result), None),
                    Err(reason) => ("failed", None, Some(reason)),
                };
                let done = sqlx::query(
                    "UPDATE jobs SET status = $1, result = $2, error = $3, progress = \
                     CASE WHEN $1 = 'succeeded' THEN 1.0 ELSE progress END, \
                     finished_at_ms = $4, lease_owner = NULL, lease_expires_at_ms = NULL \
                     WHERE id = $5 AND lease_owner = $6 AND status = 'running'",
                )
                .bind(status)
                .bind(result)
                .bind(error)
                .bind($crate::store::now_ms())
                .bind(job_id)
                .bind(worker)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn release_job(
                &self,
                job_id: &str,
                worker: &str,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "UPDATE jobs SET status = 'queued', lease_owner = NULL, \
                     lease_expires_at_ms = NULL, attempts = attempts - 1 \
                     WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
                )
                .bind(job_id)
                .bind(worker)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn insert_batch(
                &self,
                batch: &$crate::store::BatchRow,
                jobs: &[$crate::store::NewJob],
            ) -> Result<$crate::store::Enqueue<$crate::store::BatchRow>, $crate::store::StoreError>
            {
                // The first statement writes: a SQLite transaction holds the write lock
                // before any job's uploads are read.
                let mut tx = self.pool.begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO batches (id, idempotency_key, request, job_count, \
                     created_at_ms, tenant_id) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(&batch.id)
                .bind(&batch.idempotency_key)
                .bind(&batch.request)
                .bind(batch.job_count)
                .bind(batch.created_at_ms)
                .bind(&batch.tenant_id)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 0 {
                    tx.rollback().await?;
                    let existing = self
                        .batch_by_key(
                            &batch.tenant_id,
                            batch.idempotency_key.as_deref().unwrap_or_default(),
                        )
                        .await?;
                    // A conflict without a key would be on the batch id (a fresh UUID).
                    return existing
                        .map($crate::store::Enqueue::Existing)
                        .ok_or_else(|| sqlx::Error::RowNotFound.into());
                }
                for (i, job) in jobs.iter().enumerate() {
                    let job = $crate::store::NewJob {
                        tenant_id: batch.tenant_id.clone(),
                        ..job.clone()
                    };
                    let inserted = $crate::store::sql::enqueue_job!(
                        &mut tx,
                        $share,
                        "",
                        &job,
                        Some(batch.id.as_str()),
                        batch.created_at_ms
                    );
                    if !inserted {
                        tx.rollback().await?;
                        return self.upload_gone(i, &job).await;
                    }
                }
                tx.commit().await?;
                Ok($crate::store::Enqueue::Inserted)
            }

            async fn batch(
                &self,
                tenant: &str,
                id: &str,
            ) -> Result<Option<$crate::store::BatchRow>, $crate::store::StoreError> {
                let sql = concat!(
                    "SELECT ",
                    $crate::store::sql::batch_columns!(),
                    " FROM batches WHERE tenant_id = $1 AND id = $2"
                );
                Ok(sqlx::query_as::<_, $crate::store::BatchRow>(sql)
                .bind(tenant)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn batch_by_key(
                &self,
                tenant: &str,
                key: &str,
            ) -> Result<Option<$crate::store::BatchRow>, $crate::store::StoreError> {
                let sql = concat!(
                    "SELECT ",
                    $crate::store::sql::batch_columns!(),
                    " FROM batches WHERE tenant_id = $1 AND idempotency_key = $2"
                );
                Ok(sqlx::query_as::<_, $crate::store::BatchRow>(sql)
                .bind(tenant)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn batch_jobs(
                &self,
                tenant: &str,
                batch_id: &str,
            ) -> Result<Vec<$crate::store::JobRow>, $crate::store::StoreError> {
                let sql = concat!(
                    "SELECT ",
                    $crate::store::sql::job_columns!(),
                    " FROM jobs WHERE tenant_id = $1 AND batch_id = $2 \
                     ORDER BY created_at_ms, id"
                );
                Ok(sqlx::query_as::<_, $crate::store::JobRow>(sql)
                    .bind(tenant)
                    .bind(batch_id)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn delete_upload(
                &self,
                kind: $crate::store::UploadKind,
                tenant: Option<&str>,
                id: &str,
                reason: $crate::store::DeletionReason,
            ) -> Result<$crate::store::Deletion, $crate::store::StoreError> {
                use $crate::store::{BlobRemoval, Deletion, UploadKind};
                let (tombstone_sql, busy_sql) = match kind {
                    UploadKind::Series => (
                        "UPDATE series SET deleted_at_ms = $1, deletion_reason = $2, \
                         series_uid = '', frame_of_reference_uid = NULL, geometry = '{}', \
                         warnings = '[]' WHERE id = $3 AND deleted_at_ms IS NULL \
                         AND (CAST($4 AS TEXT) IS NULL OR tenant_id = $4) RETURNING blob_prefix",
                        "SELECT id FROM jobs WHERE series_id = $1 \
                         AND status IN ('queued', 'running') ORDER BY created_at_ms, id",
                    ),
                    UploadKind::Segmentation => (
                        "UPDATE segmentations SET deleted_at_ms = $1, deletion_reason = $2, \
                         file_name = NULL, lesions = '[]' \
                         WHERE id = $3 AND deleted_at_ms IS NULL \
                         AND (CAST($4 AS TEXT) IS NULL OR tenant_id = $4) RETURNING blob_key",
                        "SELECT id FROM jobs WHERE segmentation_id = $1 \
                         AND status IN ('queued', 'running') ORDER BY created_at_ms, id",
                    ),
                };
                let now = $crate::store::now_ms();
                // The first statement writes, so a SQLite transaction holds the write lock
                // from the start (a read first could not be upgraded under contention). On
                // PostgreSQL the UPDATE locks the row: it waits for a job insert holding a
                // share lock on it (see `enqueue_job`), and the job check below (a new
                // snapshot under READ COMMITTED) then sees that job.
                let mut tx = self.pool.begin().await?;
                let key: Option<String> = sqlx::query_scalar(tombstone_sql)
                    .bind(now)
                    .bind(reason.as_str())
                    .bind(id)
                    .bind(tenant)
                    .fetch_optional(&mut *tx)
                    .await?;
                // A STOW-RS series resource whose instances never assembled has no series
                // row: its tombstone is written now, over the resource's staged instances.
                let key = match (key, kind) {
                    (None, UploadKind::Series) => {
                        sqlx::query_scalar(
                            "INSERT INTO series (id, tenant_id, series_uid, \
                             frame_of_reference_uid, instance_count, geometry, warnings, \
                             blob_prefix, created_at_ms, deleted_at_ms, deletion_reason) \
                             SELECT id, tenant_id, '', NULL, instance_count, '{}', '[]', \
                             'series/' || id, created_at_ms, $1, $2 FROM stow_series \
                             WHERE id = $3 AND (CAST($4 AS TEXT) IS NULL OR tenant_id = $4) \
                             AND NOT EXISTS (SELECT 1 FROM series WHERE id = $3) \
                             RETURNING blob_prefix",
                        )
                        .bind(now)
                        .bind(reason.as_str())
                        .bind(id)
                        .bind(tenant)
                        .fetch_optional(&mut *tx)
                        .await?
                    }
                    (key, _) => key,
                };
                let Some(blob_key) = key else {
                    tx.rollback().await?;
                    let found = $crate::store::db::Database::tombstone(self, kind, tenant, id);
                    return Ok(match found.await? {
                        Some(t) => Deletion::Gone(t),
                        None => Deletion::NotFound,
                    });
                };
                let busy: Vec<String> = sqlx::query_scalar(busy_sql)
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
                if !busy.is_empty() {
                    tx.rollback().await?;
                    return Ok(Deletion::InUse(busy));
                }
                let mut blobs = vec![BlobRemoval {
                    kind,
                    id: id.to_string(),
                    blob_key,
                }];
                if kind == UploadKind::Series {
                    let segmentations: Vec<(String, String)> = sqlx::query_as(
                        "UPDATE segmentations SET deleted_at_ms = $1, deletion_reason = $2, \
                         file_name = NULL, lesions = '[]' \
                         WHERE series_id = $3 AND deleted_at_ms IS NULL RETURNING id, blob_key",
                    )
                    .bind(now)
                    .bind(reason.as_str())
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
                    blobs.extend(segmentations.into_iter().map(|(id, blob_key)| BlobRemoval {
                        kind: UploadKind::Segmentation,
                        id,
                        blob_key,
                    }));
                    // STOW-RS segmentations still waiting for this series: tombstoned under
                    // their ids (a GET answers 410), their files removed with the series'.
                    let pending: Vec<(String, String)> = sqlx::query_as(
                        "INSERT INTO segmentations (id, tenant_id, series_id, format, \
                         file_name, blob_key, lesions, created_at_ms, deleted_at_ms, \
                         deletion_reason) SELECT id, tenant_id, series_id, 'dicom_seg', NULL, \
                         blob_key, '[]', created_at_ms, $1, $2 \
                         FROM stow_pending_segmentations WHERE series_id = $3 \
                         RETURNING id, blob_key",
                    )
                    .bind(now)
                    .bind(reason.as_str())
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
                    sqlx::query("DELETE FROM stow_pending_segmentations WHERE series_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    blobs.extend(pending.into_iter().map(|(id, blob_key)| BlobRemoval {
                        kind: UploadKind::Segmentation,
                        id,
                        blob_key,
                    }));
                }
                tx.commit().await?;
                Ok(Deletion::Deleted(blobs))
            }

            async fn tombstone(
                &self,
                kind: $crate::store::UploadKind,
                tenant: Option<&str>,
                id: &str,
            ) -> Result<Option<$crate::store::Tombstone>, $crate::store::StoreError> {
                // Another tenant's tombstone reads as no tombstone (404, not 410).
                let sql = match kind {
                    $crate::store::UploadKind::Series => {
                        "SELECT deleted_at_ms, deletion_reason FROM series \
                         WHERE id = $1 AND deleted_at_ms IS NOT NULL \
                         AND (CAST($2 AS TEXT) IS NULL OR tenant_id = $2)"
                    }
                    $crate::store::UploadKind::Segmentation => {
                        "SELECT deleted_at_ms, deletion_reason FROM segmentations \
                         WHERE id = $1 AND deleted_at_ms IS NOT NULL \
                         AND (CAST($2 AS TEXT) IS NULL OR tenant_id = $2)"
                    }
                };
                let row: Option<(i64, Option<String>)> = sqlx::query_as(sql)
                    .bind(id)
                    .bind(tenant)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(deleted_at_ms, reason)| $crate::store::Tombstone {
                    deleted_at_ms,
                    reason: $crate::store::DeletionReason::parse(reason.as_deref().unwrap_or("")),
                }))
            }

            async fn mark_blobs_removed(
                &self,
                kind: $crate::store::UploadKind,
                id: &str,
            ) -> Result<(), $crate::store::StoreError> {
                let sql = match kind {
                    $crate::store::UploadKind::Series => {
                        "UPDATE series SET blobs_removed_at_ms = $1 WHERE id = $2"
                    }
                    $crate::store::UploadKind::Segmentation => {
                        "UPDATE segmentations SET blobs_removed_at_ms = $1 WHERE id = $2"
                    }
                };
                sqlx::query(sql)
                    .bind($crate::store::now_ms())
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn pending_blob_removals(
                &self,
                limit: i64,
            ) -> Result<Vec<$crate::store::BlobRemoval>, $crate::store::StoreError> {
                use $crate::store::{BlobRemoval, UploadKind};
                let series: Vec<(String, String)> = sqlx::query_as(
                    "SELECT id, blob_prefix FROM series WHERE deleted_at_ms IS NOT NULL \
                     AND blobs_removed_at_ms IS NULL ORDER BY deleted_at_ms, id LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let segmentations: Vec<(String, String)> = sqlx::query_as(
                    "SELECT id, blob_key FROM segmentations WHERE deleted_at_ms IS NOT NULL \
                     AND blobs_removed_at_ms IS NULL ORDER BY deleted_at_ms, id LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let tag = |kind: UploadKind| {
                    move |(id, blob_key): (String, String)| BlobRemoval { kind, id, blob_key }
                };
                Ok(series
                    .into_iter()
                    .map(tag(UploadKind::Series))
                    .chain(segmentations.into_iter().map(tag(UploadKind::Segmentation)))
                    .take(usize::try_from(limit).unwrap_or(0))
                    .collect())
            }

            async fn expired_uploads(
                &self,
                created_before_ms: i64,
                limit: i64,
            ) -> Result<Vec<$crate::store::ExpiredUpload>, $crate::store::StoreError> {
                use $crate::store::{ExpiredUpload, UploadKind};
                let series: Vec<(String, String)> = sqlx::query_as(
                    "SELECT s.id, s.tenant_id FROM series s WHERE s.deleted_at_ms IS NULL \
                     AND s.created_at_ms < $1 AND NOT EXISTS (SELECT 1 FROM jobs j \
                       WHERE j.series_id = s.id AND j.status IN ('queued', 'running')) \
                     ORDER BY s.created_at_ms, s.id LIMIT $2",
                )
                .bind(created_before_ms)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let segmentations: Vec<(String, String)> = sqlx::query_as(
                    "SELECT g.id, g.tenant_id FROM segmentations g WHERE g.deleted_at_ms IS NULL \
                     AND g.created_at_ms < $1 AND NOT EXISTS (SELECT 1 FROM jobs j \
                       WHERE j.segmentation_id = g.id AND j.status IN ('queued', 'running')) \
                     ORDER BY g.created_at_ms, g.id LIMIT $2",
                )
                .bind(created_before_ms)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                // STOW-RS series resources whose instances never assembled have no series
                // row; one whose last instance came before the cutoff is expired too (no
                // job can use it), and its deletion takes its waiting segmentations along.
                let unassembled: Vec<(String, String)> = sqlx::query_as(
                    "SELECT t.id, t.tenant_id FROM stow_series t WHERE t.last_instance_at_ms < $1 \
                     AND NOT EXISTS (SELECT 1 FROM series s WHERE s.id = t.id) \
                     ORDER BY t.last_instance_at_ms, t.id LIMIT $2",
                )
                .bind(created_before_ms)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let upload = |kind| move |(id, tenant_id)| ExpiredUpload { kind, id, tenant_id };
                Ok(series
                    .into_iter()
                    .chain(unassembled)
                    .map(upload(UploadKind::Series))
                    .chain(segmentations.into_iter().map(upload(UploadKind::Segmentation)))
                    .take(usize::try_from(limit).unwrap_or(0))
                    .collect())
            }

            async fn queued_jobs(&self) -> Result<i64, $crate::store::StoreError> {
                Ok(sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM jobs WHERE status = 'queued'",
                )
                .fetch_one(&self.pool)
                .await?)
            }

            async fn job_counts(&self) -> Result<Vec<(String, i64)>, $crate::store::StoreError> {
                Ok(sqlx::query_as::<_, (String, i64)>(
                    "SELECT status, COUNT(*) FROM jobs GROUP BY status ORDER BY status",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn insert_model(
                &self,
                row: &$crate::store::ModelRow,
            ) -> Result<Option<$crate::store::ModelRow>, $crate::store::StoreError> {
                let inserted = sqlx::query(concat!(
                    "INSERT INTO models (",
                    $crate::store::models::model_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT DO NOTHING"
                ))
                .bind(&row.id)
                .bind(&row.tenant_id)
                .bind(&row.name)
                .bind(&row.version)
                .bind(&row.sha256)
                .bind(&row.settings_hash)
                .bind(&row.manifest)
                .bind(&row.blob_key)
                .bind(row.synthetic_demo)
                .bind(row.bundled)
                .bind(row.created_at_ms)
                .execute(&self.pool)
                .await?;
                if inserted.rows_affected() == 1 {
                    return Ok(None);
                }
                Ok(sqlx::query_as::<_, $crate::store::ModelRow>(concat!(
                    $crate::store::models::model_select!(),
                    " AND ((m.tenant_id = $1 AND m.name = $2 AND m.version = $3) OR m.id = $4)"
                ))
                .bind(&row.tenant_id)
                .bind(&row.name)
                .bind(&row.version)
                .bind(&row.id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn models(
                &self,
                tenant: &str,
            ) -> Result<Vec<$crate::store::ModelRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as::<_, $crate::store::ModelRow>(concat!(
                    $crate::store::models::model_select!(),
                    " ORDER BY m.created_at_ms, m.id"
                ))
                .bind(tenant)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn model(
                &self,
                tenant: &str,
                id: &str,
            ) -> Result<Option<$crate::store::ModelRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as::<_, $crate::store::ModelRow>(concat!(
                    $crate::store::models::model_select!(),
                    " AND m.id = $2"
                ))
                .bind(tenant)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn active_model(
                &self,
                tenant: &str,
            ) -> Result<Option<$crate::store::ModelRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as::<_, $crate::store::ModelRow>(concat!(
                    $crate::store::models::model_select!(),
                    " AND m.id = eff.model_id"
                ))
                .bind(tenant)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn activate_model(
                &self,
                tenant: &str,
                id: &str,
            ) -> Result<Option<$crate::store::ModelRow>, $crate::store::StoreError> {
                // One upsert on the tenant's row: concurrent activations serialise on that
                // row (PostgreSQL's ON CONFLICT DO UPDATE waits for the other writer), the
                // last one wins, and none fails. The SELECT inserts nothing for a model
                // the tenant cannot see.
                let changed = sqlx::query(
                    "INSERT INTO model_activations (tenant_id, model_id, changed_at_ms) \
                     SELECT $1, id, $3 FROM models WHERE id = $2 AND tenant_id IN ($1, '*') \
                     ON CONFLICT (tenant_id) DO UPDATE SET model_id = excluded.model_id, \
                     changed_at_ms = CASE WHEN model_activations.model_id = excluded.model_id \
                     THEN model_activations.changed_at_ms ELSE excluded.changed_at_ms END",
                )
                .bind(tenant)
                .bind(id)
                .bind($crate::store::now_ms())
                .execute(&self.pool)
                .await?;
                if changed.rows_affected() == 0 {
                    return Ok(None);
                }
                self.model(tenant, id).await
            }

            async fn deactivate_model(
                &self,
                tenant: &str,
                id: &str,
            ) -> Result<Option<$crate::store::ModelRow>, $crate::store::StoreError> {
                // Only when `id` is the tenant's active model: its own row is cleared, or,
                // when the tenant follows the shared default and that is `id`, an empty
                // row of its own is written (a concurrent activation's row is kept).
                let now = $crate::store::now_ms();
                sqlx::query(
                    "UPDATE model_activations SET model_id = NULL, changed_at_ms = $3 \
                     WHERE tenant_id = $1 AND model_id = $2",
                )
                .bind(tenant)
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await?;
                sqlx::query(
                    "INSERT INTO model_activations (tenant_id, model_id, changed_at_ms) \
                     SELECT $1, CAST(NULL AS TEXT), $3 FROM model_activations \
                     WHERE tenant_id = '*' AND model_id = $2 AND $1 <> '*' \
                     ON CONFLICT (tenant_id) DO NOTHING",
                )
                .bind(tenant)
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await?;
                self.model(tenant, id).await
            }

            async fn insert_delivery(
                &self,
                job_id: &str,
                destination: &str,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO deliveries (job_id, destination, status, attempts, \
                     updated_at_ms) VALUES ($1, $2, 'pending', 0, $3) ON CONFLICT DO NOTHING",
                )
                .bind(job_id)
                .bind(destination)
                .bind($crate::store::now_ms())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn record_delivery_attempt(
                &self,
                job_id: &str,
                status: &str,
                error: Option<&str>,
            ) -> Result<Option<$crate::store::DeliveryRow>, $crate::store::StoreError> {
                sqlx::query(
                    "UPDATE deliveries SET status = $1, last_error = $2, \
                     attempts = attempts + 1, updated_at_ms = $3 WHERE job_id = $4",
                )
                .bind(status)
                .bind(error)
                .bind($crate::store::now_ms())
                .bind(job_id)
                .execute(&self.pool)
                .await?;
                self.delivery(job_id).await
            }

            async fn delivery(
                &self,
                job_id: &str,
            ) -> Result<Option<$crate::store::DeliveryRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as::<_, $crate::store::DeliveryRow>(
                    "SELECT job_id, destination, status, attempts, last_error, updated_at_ms \
                     FROM deliveries WHERE job_id = $1",
                )
                .bind(job_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn claim_delivery(
                &self,
                job_id: &str,
                now_ms: i64,
                lease_until_ms: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query(
                    "UPDATE deliveries SET lease_expires_at_ms = $1 WHERE job_id = $2 \
                     AND status = 'pending' \
                     AND (lease_expires_at_ms IS NULL OR lease_expires_at_ms < $3)",
                )
                .bind(lease_until_ms)
                .bind(job_id)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn renew_delivery(
                &self,
                job_id: &str,
                lease_until_ms: i64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query("UPDATE deliveries SET lease_expires_at_ms = $1 WHERE job_id = $2")
                    .bind(lease_until_ms)
                    .bind(job_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn orphaned_deliveries(
                &self,
                now_ms: i64,
                limit: i64,
            ) -> Result<Vec<(String, String)>, $crate::store::StoreError> {
                Ok(sqlx::query_as::<_, (String, String)>(
                    "SELECT d.job_id, j.tenant_id FROM deliveries d JOIN jobs j ON j.id = d.job_id \
                     WHERE d.status = 'pending' AND j.status = 'succeeded' \
                     AND (d.lease_expires_at_ms IS NULL OR d.lease_expires_at_ms < $1) \
                     ORDER BY d.updated_at_ms, d.job_id LIMIT $2",
                )
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn tenant_settings(
                &self,
                tenant: &str,
            ) -> Result<Option<$crate::store::TenantSettingsRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as::<_, $crate::store::TenantSettingsRow>(
                    "SELECT tenant_id, push_url, push_authorization, auto_trigger, updated_at_ms \
                     FROM tenant_settings WHERE tenant_id = $1",
                )
                .bind(tenant)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn set_tenant_push(
                &self,
                tenant: &str,
                url: Option<&str>,
                authorization: Option<&str>,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO tenant_settings (tenant_id, push_url, push_authorization, \
                     updated_at_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO UPDATE \
                     SET push_url = excluded.push_url, \
                     push_authorization = excluded.push_authorization, \
                     updated_at_ms = excluded.updated_at_ms",
                )
                .bind(tenant)
                .bind(url)
                .bind(authorization)
                .bind($crate::store::now_ms())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn set_tenant_auto_trigger(
                &self,
                tenant: &str,
                rule: Option<&str>,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO tenant_settings (tenant_id, auto_trigger, updated_at_ms) \
                     VALUES ($1, $2, $3) ON CONFLICT (tenant_id) DO UPDATE \
                     SET auto_trigger = excluded.auto_trigger, \
                     updated_at_ms = excluded.updated_at_ms",
                )
                .bind(tenant)
                .bind(rule)
                .bind($crate::store::now_ms())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn insert_stow_trigger(
                &self,
                row: &$crate::store::StowTriggerRow,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO stow_triggers (segmentation_id, tenant_id, series_uid, \
                     due_at_ms, state, created_at_ms) VALUES ($1, $2, $3, $4, 'waiting', $5) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(&row.segmentation_id)
                .bind(&row.tenant_id)
                .bind(&row.series_uid)
                .bind(row.due_at_ms)
                .bind(row.created_at_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn postpone_stow_triggers(
                &self,
                tenant: &str,
                series_uid: &str,
                due_at_ms: i64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "UPDATE stow_triggers SET due_at_ms = $1 WHERE tenant_id = $2 \
                     AND series_uid = $3 AND state = 'waiting' AND due_at_ms < $1",
                )
                .bind(due_at_ms)
                .bind(tenant)
                .bind(series_uid)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn due_stow_triggers(
                &self,
                now_ms: i64,
                limit: i64,
            ) -> Result<Vec<$crate::store::StowTriggerRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as::<_, $crate::store::StowTriggerRow>(
                    "SELECT segmentation_id, tenant_id, series_uid, due_at_ms, state, job_id, \
                     error, created_at_ms FROM stow_triggers \
                     WHERE state = 'waiting' AND due_at_ms <= $1 \
                     ORDER BY due_at_ms, segmentation_id LIMIT $2",
                )
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn finish_stow_trigger(
                &self,
                segmentation_id: &str,
                job_id: Option<&str>,
                error: Option<&str>,
            ) -> Result<(), $crate::store::StoreError> {
                let state = if job_id.is_some() { "started" } else { "skipped" };
                sqlx::query(
                    "UPDATE stow_triggers SET state = $1, job_id = $2, error = $3 \
                     WHERE segmentation_id = $4 AND state = 'waiting'",
                )
                .bind(state)
                .bind(job_id)
                .bind(error)
                .bind(segmentation_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn stow_trigger(
                &self,
                segmentation_id: &str,
            ) -> Result<Option<$crate::store::StowTriggerRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as::<_, $crate::store::StowTriggerRow>(
                    "SELECT segmentation_id, tenant_id, series_uid, due_at_ms, state, job_id, \
                     error, created_at_ms FROM stow_triggers WHERE segmentation_id = $1",
                )
                .bind(segmentation_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn open_stow_series(
                &self,
                row: &$crate::store::StowSeriesRow,
            ) -> Result<$crate::store::StowSeriesRow, $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO stow_series (id, tenant_id, series_uid, version, \
                     instance_count, assembly_error, last_instance_at_ms, created_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                )
                .bind(&row.id)
                .bind(&row.tenant_id)
                .bind(&row.series_uid)
                .bind(row.version)
                .bind(row.instance_count)
                .bind(&row.assembly_error)
                .bind(row.last_instance_at_ms)
                .bind(row.created_at_ms)
                .execute(&self.pool)
                .await?;
                Ok(sqlx::query_as::<_, $crate::store::StowSeriesRow>(concat!(
                    "SELECT ",
                    $crate::store::sql::stow_series_columns!(),
                    " FROM stow_series WHERE tenant_id = $1 AND series_uid = $2 AND version = $3"
                ))
                .bind(&row.tenant_id)
                .bind(&row.series_uid)
                .bind(row.version)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn latest_stow_series(
                &self,
                tenant: &str,
                series_uid: &str,
            ) -> Result<Option<$crate::store::StowSeriesRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as::<_, $crate::store::StowSeriesRow>(concat!(
                    "SELECT ",
                    $crate::store::sql::stow_series_columns!(),
                    " FROM stow_series WHERE tenant_id = $1 AND series_uid = $2 \
                     ORDER BY version DESC LIMIT 1"
                ))
                .bind(tenant)
                .bind(series_uid)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn stow_series(
                &self,
                tenant: &str,
                id: &str,
            ) -> Result<Option<$crate::store::StowSeriesRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as::<_, $crate::store::StowSeriesRow>(concat!(
                    "SELECT ",
                    $crate::store::sql::stow_series_columns!(),
                    " FROM stow_series WHERE tenant_id = $1 AND id = $2"
                ))
                .bind(tenant)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn stage_stow_instance(
                &self,
                row: &$crate::store::StowInstanceRow,
            ) -> Result<Option<$crate::store::StowInstanceRow>, $crate::store::StoreError> {
                let inserted = sqlx::query(
                    "INSERT INTO stow_instances (series_id, sop_instance_uid, sha256, blob_key, \
                     received_at_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(&row.series_id)
                .bind(&row.sop_instance_uid)
                .bind(&row.sha256)
                .bind(&row.blob_key)
                .bind(row.received_at_ms)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if inserted > 0 {
                    return Ok(None);
                }
                Ok(sqlx::query_as::<_, $crate::store::StowInstanceRow>(
                    "SELECT series_id, sop_instance_uid, sha256, blob_key, received_at_ms \
                     FROM stow_instances WHERE series_id = $1 AND sop_instance_uid = $2",
                )
                .bind(&row.series_id)
                .bind(&row.sop_instance_uid)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn stow_series_uid_of_instance(
                &self,
                tenant: &str,
                sop_instance_uid: &str,
            ) -> Result<Option<String>, $crate::store::StoreError> {
                Ok(sqlx::query_scalar::<_, String>(
                    "SELECT s.series_uid FROM stow_instances i \
                     JOIN stow_series s ON s.id = i.series_id \
                     WHERE s.tenant_id = $1 AND i.sop_instance_uid = $2 \
                     ORDER BY s.version DESC LIMIT 1",
                )
                .bind(tenant)
                .bind(sop_instance_uid)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn stow_instances(
                &self,
                series_id: &str,
            ) -> Result<Vec<$crate::store::StowInstanceRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as::<_, $crate::store::StowInstanceRow>(
                    "SELECT series_id, sop_instance_uid, sha256, blob_key, received_at_ms \
                     FROM stow_instances WHERE series_id = $1 ORDER BY sop_instance_uid",
                )
                .bind(series_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn record_stow_assembly(
                &self,
                series_id: &str,
                instance_count: i64,
                assembly_error: Option<&str>,
                last_instance_at_ms: Option<i64>,
            ) -> Result<bool, $crate::store::StoreError> {
                if let Some(at_ms) = last_instance_at_ms {
                    sqlx::query(
                        "UPDATE stow_series SET last_instance_at_ms = $1 \
                         WHERE id = $2 AND last_instance_at_ms < $1",
                    )
                    .bind(at_ms)
                    .bind(series_id)
                    .execute(&self.pool)
                    .await?;
                }
                let recorded = sqlx::query(
                    "UPDATE stow_series SET instance_count = $1, assembly_error = $2 \
                     WHERE id = $3 AND instance_count <= $1",
                )
                .bind(instance_count)
                .bind(assembly_error)
                .bind(series_id)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(recorded > 0)
            }

            async fn update_series_assembly(
                &self,
                row: &$crate::store::SeriesRow,
            ) -> Result<bool, $crate::store::StoreError> {
                let updated = sqlx::query(
                    "UPDATE series SET frame_of_reference_uid = $1, instance_count = $2, \
                     geometry = $3, warnings = $4 WHERE id = $5 AND tenant_id = $6 \
                     AND deleted_at_ms IS NULL AND instance_count <= $2",
                )
                .bind(&row.frame_of_reference_uid)
                .bind(row.instance_count)
                .bind(&row.geometry)
                .bind(&row.warnings)
                .bind(&row.id)
                .bind(&row.tenant_id)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(updated > 0)
            }

            async fn series_job_count(
                &self,
                series_id: &str,
            ) -> Result<i64, $crate::store::StoreError> {
                Ok(sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM jobs WHERE series_id = $1",
                )
                .bind(series_id)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn insert_pending_segmentation(
                &self,
                row: &$crate::store::PendingSegmentationRow,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO stow_pending_segmentations (id, tenant_id, series_id, \
                     blob_key, file_name, reason, created_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&row.id)
                .bind(&row.tenant_id)
                .bind(&row.series_id)
                .bind(&row.blob_key)
                .bind(&row.file_name)
                .bind(&row.reason)
                .bind(row.created_at_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn pending_segmentation(
                &self,
                tenant: &str,
                id: &str,
            ) -> Result<Option<$crate::store::PendingSegmentationRow>, $crate::store::StoreError>
            {
                Ok(sqlx::query_as::<_, $crate::store::PendingSegmentationRow>(
                    "SELECT id, tenant_id, series_id, blob_key, file_name, reason, \
                     created_at_ms FROM stow_pending_segmentations \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn pending_segmentations(
                &self,
                series_id: &str,
            ) -> Result<Vec<$crate::store::PendingSegmentationRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as::<_, $crate::store::PendingSegmentationRow>(
                    "SELECT id, tenant_id, series_id, blob_key, file_name, reason, \
                     created_at_ms FROM stow_pending_segmentations WHERE series_id = $1 \
                     ORDER BY created_at_ms, id",
                )
                .bind(series_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn take_pending_segmentation(
                &self,
                id: &str,
            ) -> Result<bool, $crate::store::StoreError> {
                let taken = sqlx::query("DELETE FROM stow_pending_segmentations WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(taken > 0)
            }

            async fn latest_segmentation(
                &self,
                tenant: &str,
                series_id: &str,
            ) -> Result<Option<$crate::store::SegmentationRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as::<_, $crate::store::SegmentationRow>(
                    "SELECT id, tenant_id, series_id, format, file_name, blob_key, lesions, \
                     created_at_ms FROM segmentations WHERE tenant_id = $1 AND series_id = $2 \
                     AND deleted_at_ms IS NULL ORDER BY created_at_ms DESC, id DESC LIMIT 1",
                )
                .bind(tenant)
                .bind(series_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn jobs(
                &self,
                tenant: &str,
                status: Option<&str>,
                kind: Option<$crate::store::JobKind>,
                limit: i64,
            ) -> Result<Vec<$crate::store::JobRow>, $crate::store::StoreError> {
                let sql = concat!(
                    "SELECT ",
                    $crate::store::sql::job_columns!(),
                    " FROM jobs WHERE tenant_id = $1 \
                     AND (CAST($2 AS TEXT) IS NULL OR status = $2) \
                     AND (CAST($3 AS TEXT) IS NULL OR kind = $3) \
                     ORDER BY created_at_ms DESC, id DESC LIMIT $4"
                );
                Ok(sqlx::query_as::<_, $crate::store::JobRow>(sql)
                    .bind(tenant)
                    .bind(status)
                    .bind(kind.map($crate::store::JobKind::as_str))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn insert_api_key(
                &self,
                row: &$crate::store::ApiKeyRow,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO api_keys (id, tenant_id, name, admin, key_hash, \
                     created_at_ms, revoked_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&row.id)
                .bind(&row.tenant_id)
                .bind(&row.name)
                .bind(row.admin)
                .bind(&row.key_hash)
                .bind(row.created_at_ms)
                .bind(row.revoked_at_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn api_key(
                &self,
                id: &str,
            ) -> Result<Option<$crate::store::ApiKeyRow>, $crate::store::StoreError> {
                let sql = concat!(
                    "SELECT ",
                    $crate::store::sql::api_key_columns!(),
                    " FROM api_keys WHERE id = $1"
                );
                Ok(sqlx::query_as::<_, $crate::store::ApiKeyRow>(sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn api_keys(
                &self,
            ) -> Result<Vec<$crate::store::ApiKeyRow>, $crate::store::StoreError> {
                let sql = concat!(
                    "SELECT ",
                    $crate::store::sql::api_key_columns!(),
                    " FROM api_keys ORDER BY created_at_ms, id"
                );
                Ok(sqlx::query_as::<_, $crate::store::ApiKeyRow>(sql)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn revoke_api_key(
                &self,
                id: &str,
                at_ms: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query(
                    "UPDATE api_keys SET revoked_at_ms = $1 \
                     WHERE id = $2 AND revoked_at_ms IS NULL",
                )
                .bind(at_ms)
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn append_audit(
                &self,
                event: &$crate::store::AuditEvent,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO audit_log (at_ms, tenant_id, key_id, action, object_type, \
                     object_id, request_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(event.at_ms)
                .bind(&event.tenant_id)
                .bind(&event.key_id)
                .bind(&event.action)
                .bind(&event.object_type)
                .bind(&event.object_id)
                .bind(&event.request_id)
                .bind(&event.detail)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn audit_events(
                &self,
                tenant: Option<&str>,
                since_ms: Option<i64>,
            ) -> Result<Vec<$crate::store::AuditEvent>, $crate::store::StoreError> {
                // `$1 IS NULL` lets one statement serve "every tenant" and "one tenant".
                Ok(sqlx::query_as::<_, $crate::store::AuditEvent>(
                    "SELECT seq, at_ms, tenant_id, key_id, action, object_type, object_id, \
                     request_id, detail FROM audit_log \
                     WHERE (CAST($1 AS TEXT) IS NULL OR tenant_id = $1) AND at_ms >= $2 \
                     ORDER BY seq",
                )
                .bind(tenant)
                .bind(since_ms.unwrap_or(i64::MIN))
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}
pub(crate) use impl_database;

/// The claim statement: mark the oldest claimable job running under a new lease and return
/// it. `$lock` ends the inner `SELECT` (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so
/// concurrent claimers pass over a row another transaction is taking instead of waiting
/// on it; SQLite: empty, as its writers are serialised by the database lock).
///
/// Binds: `$1` worker, `$2` lease expiry, `$3` now, `$4` max attempts.
macro_rules! claim_job_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE jobs SET status = 'running', lease_owner = $1, lease_expires_at_ms = $2, \
             attempts = attempts + 1, started_at_ms = COALESCE(started_at_ms, $3) \
             WHERE id = (SELECT id FROM jobs WHERE status = 'queued' \
               AND run_after_ms <= $3 AND attempts < $4 \
               ORDER BY created_at_ms, id LIMIT 1 ",
            $lock,
            ") RETURNING ",
            $crate::store::sql::job_columns!()
        )
    };
}
pub(crate) use claim_job_sql;

/// Run [`claim_job_sql`] with `$lock` on `$pool` for `worker`.
macro_rules! claim_job {
    ($pool:expr, $lock:literal, $worker:expr, $lease:expr, $max_attempts:expr) => {{
        let now = $crate::store::now_ms();
        let expires = now.saturating_add($crate::store::db::duration_ms($lease));
        Ok(
            sqlx::query_as::<_, $crate::store::JobRow>($crate::store::sql::claim_job_sql!($lock))
                .bind($worker)
                .bind(expires)
                .bind(now)
                .bind(i64::from($max_attempts))
                .fetch_optional($pool)
                .await?,
        )
    }};
}
pub(crate) use claim_job;

/// Insert one queued job in the transaction `$tx` if its series and segmentation are live
/// rows of its tenant and the segmentation belongs to the series; evaluates to whether a
/// row was inserted (`false` also for an `$on_conflict` that did nothing).
///
/// With a `$share` clause (PostgreSQL: `FOR SHARE`), the series row, then the
/// segmentation row, are locked first: a concurrent deletion's `UPDATE` of either waits
/// until this transaction ends and then finds the job, while an insert that waited for a
/// deletion re-reads the row, sees its tombstone and inserts nothing. Series before
/// segmentation is the order a series deletion takes them, so the two cannot deadlock.
/// Without (`""`, SQLite), the conditional `INSERT … SELECT` is a single statement that
/// takes the database's write lock before it reads, so no deletion can run in between
/// (callers make it, or another write, the first statement of the transaction).
macro_rules! enqueue_job {
    ($tx:expr, $share:tt, $on_conflict:literal, $job:expr, $batch_id:expr, $created_at_ms:expr) => {{
        let job: &$crate::store::NewJob = $job;
        let tx: &mut sqlx::Transaction<'_, _> = $tx;
        $crate::store::sql::lock_uploads!(tx, $share, job);
        let done = sqlx::query(concat!(
            "INSERT INTO jobs (id, series_id, segmentation_id, request, status, \
             created_at_ms, idempotency_key, batch_id, tenant_id, kind) \
             SELECT $1, s.id, g.id, $4, 'queued', $5, $6, $7, $8, $9 \
             FROM series s JOIN segmentations g ON g.series_id = s.id \
             WHERE s.id = $2 AND g.id = $3 AND s.tenant_id = $8 AND g.tenant_id = $8 \
             AND s.deleted_at_ms IS NULL AND g.deleted_at_ms IS NULL ",
            $on_conflict
        ))
        .bind(&job.id)
        .bind(&job.series_id)
        .bind(&job.segmentation_id)
        .bind(&job.request)
        .bind($created_at_ms)
        .bind(&job.idempotency_key)
        .bind($batch_id)
        .bind(&job.tenant_id)
        .bind(job.kind.as_str())
        .execute(&mut **tx)
        .await?;
        done.rows_affected() == 1
    }};
}
pub(crate) use enqueue_job;

/// The row locks of [`enqueue_job`]: none for `""` (SQLite), else `SELECT … $share` on the
/// job's series, then its segmentation.
macro_rules! lock_uploads {
    ($tx:expr, "", $job:expr) => {};
    ($tx:expr, $share:literal, $job:expr) => {
        sqlx::query(concat!(
            "SELECT id FROM series WHERE id = $1 AND tenant_id = $2 \
             AND deleted_at_ms IS NULL ",
            $share
        ))
        .bind(&$job.series_id)
        .bind(&$job.tenant_id)
        .fetch_optional(&mut **$tx)
        .await?;
        sqlx::query(concat!(
            "SELECT id FROM segmentations WHERE id = $1 AND tenant_id = $2 \
             AND deleted_at_ms IS NULL ",
            $share
        ))
        .bind(&$job.segmentation_id)
        .bind(&$job.tenant_id)
        .fetch_optional(&mut **$tx)
        .await?;
    };
}
pub(crate) use lock_uploads;
