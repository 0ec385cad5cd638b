-- Jobs can be cancelled, and a client-supplied Idempotency-Key makes creation repeatable.
-- SQLite cannot change a CHECK constraint in place: rebuild the table.

CREATE TABLE jobs_v2 (
    id                  TEXT PRIMARY KEY,
    series_id           TEXT NOT NULL REFERENCES series (id),
    segmentation_id     TEXT NOT NULL REFERENCES segmentations (id),
    request             TEXT NOT NULL,
    status              TEXT NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    progress            DOUBLE PRECISION NOT NULL DEFAULT 0,
    attempts            INTEGER NOT NULL DEFAULT 0,
    lease_owner         TEXT,
    lease_expires_at_ms INTEGER,
    error               TEXT,
    result              TEXT,
    created_at_ms       INTEGER NOT NULL,
    started_at_ms       INTEGER,
    finished_at_ms      INTEGER,
    idempotency_key     TEXT
);

INSERT INTO jobs_v2 (id, series_id, segmentation_id, request, status, progress, attempts,
    lease_owner, lease_expires_at_ms, error, result, created_at_ms, started_at_ms,
    finished_at_ms)
SELECT id, series_id, segmentation_id, request, status, progress, attempts, lease_owner,
    lease_expires_at_ms, error, result, created_at_ms, started_at_ms, finished_at_ms
FROM jobs;

DROP TABLE jobs;
ALTER TABLE jobs_v2 RENAME TO jobs;
CREATE INDEX jobs_claim ON jobs (status, created_at_ms);
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
