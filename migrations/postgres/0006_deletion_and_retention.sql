-- Deletion and retention (issue #8): a deleted or purged series or segmentation keeps a
-- tombstone row (finished jobs still reference it, and a GET answers 410 Gone saying
-- when and why); its blobs are removed and its derived data (geometry, warnings, lesion
-- list, file name, UIDs) is cleared. `deletion_reason` is 'deleted' (DELETE request) or
-- 'retention' (RADSCORE_RETENTION_HOURS). `blobs_removed_at_ms` stays NULL until the
-- blobs are gone, so a removal that failed half-way is retried by the next purge.
ALTER TABLE series ADD COLUMN deleted_at_ms BIGINT;
ALTER TABLE series ADD COLUMN deletion_reason TEXT;
ALTER TABLE series ADD COLUMN blobs_removed_at_ms BIGINT;
ALTER TABLE segmentations ADD COLUMN deleted_at_ms BIGINT;
ALTER TABLE segmentations ADD COLUMN deletion_reason TEXT;
ALTER TABLE segmentations ADD COLUMN blobs_removed_at_ms BIGINT;
CREATE INDEX series_created ON series (created_at_ms);
CREATE INDEX segmentations_series ON segmentations (series_id);
CREATE INDEX segmentations_created ON segmentations (created_at_ms);
CREATE INDEX jobs_series ON jobs (series_id);
CREATE INDEX jobs_segmentation ON jobs (segmentation_id);
