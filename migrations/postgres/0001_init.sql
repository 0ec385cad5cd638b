-- radscore schema v1 (PostgreSQL), mirroring migrations/sqlite/0001_init.sql.
-- Timestamps are Unix epoch milliseconds (BIGINT); JSON documents are TEXT, so both
-- backends store and return the same strings.

CREATE TABLE series (
    id                     TEXT PRIMARY KEY,
    series_uid             TEXT NOT NULL,
    frame_of_reference_uid TEXT,
    instance_count         BIGINT NOT NULL,
    geometry               TEXT NOT NULL,
    warnings               TEXT NOT NULL,
    blob_prefix            TEXT NOT NULL,
    created_at_ms          BIGINT NOT NULL
);

CREATE TABLE segmentations (
    id            TEXT PRIMARY KEY,
    series_id     TEXT NOT NULL REFERENCES series (id),
    format        TEXT NOT NULL,
    file_name     TEXT,
    blob_key      TEXT NOT NULL,
    lesions       TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE jobs (
    id                  TEXT PRIMARY KEY,
    series_id           TEXT NOT NULL REFERENCES series (id),
    segmentation_id     TEXT NOT NULL REFERENCES segmentations (id),
    request             TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    progress            DOUBLE PRECISION NOT NULL DEFAULT 0,
    attempts            BIGINT NOT NULL DEFAULT 0,
    lease_owner         TEXT,
    lease_expires_at_ms BIGINT,
    error               TEXT,
    result              TEXT,
    created_at_ms       BIGINT NOT NULL,
    started_at_ms       BIGINT,
    finished_at_ms      BIGINT
);

CREATE INDEX jobs_claim ON jobs (status, created_at_ms);
