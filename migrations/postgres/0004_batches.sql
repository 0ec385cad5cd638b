-- Batches: many jobs submitted in one request, with one status.
CREATE TABLE batches (
    id              TEXT PRIMARY KEY,
    idempotency_key TEXT,
    request         TEXT NOT NULL,
    job_count       BIGINT NOT NULL,
    created_at_ms   BIGINT NOT NULL
);
CREATE UNIQUE INDEX batches_idempotency_key ON batches (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
ALTER TABLE jobs ADD COLUMN batch_id TEXT REFERENCES batches (id);
CREATE INDEX jobs_batch ON jobs (batch_id);
