-- radscore schema v1 (SQLite). Timestamps are Unix epoch milliseconds (INTEGER);
-- JSON documents are TEXT. Kept to the SQL subset shared with PostgreSQL where possible.

CREATE TABLE series (
    id                     TEXT PRIMARY KEY,
    series_uid             TEXT NOT NULL,
    frame_of_reference_uid TEXT,
    instance_count         INTEGER NOT NULL,
    geometry               TEXT NOT NULL,
    warnings               TEXT NOT NULL,
    blob_prefix            TEXT NOT NULL,
    created_at_ms          INTEGER NOT NULL
);

CREATE TABLE segmentations (
    id            TEXT PRIMARY KEY,
    series_id     TEXT NOT NULL REFERENCES series (id),
    format        TEXT NOT NULL,
    file_name     TEXT,
    blob_key      TEXT NOT NULL,
    lesions       TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE jobs (
    id                  TEXT PRIMARY KEY,
    series_id           TEXT NOT NULL REFERENCES series (id),
    segmentation_id     TEXT NOT NULL REFERENCES segmentations (id),
    request             TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    progress            DOUBLE PRECISION NOT NULL DEFAULT 0,
    attempts            INTEGER NOT NULL DEFAULT 0,
    lease_owner         TEXT,
    lease_expires_at_ms INTEGER,
    error               TEXT,
    result              TEXT,
    created_at_ms       INTEGER NOT NULL,
    started_at_ms       INTEGER,
    finished_at_ms      INTEGER
);

CREATE INDEX jobs_claim ON jobs (status, created_at_ms);
