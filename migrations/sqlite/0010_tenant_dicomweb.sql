-- Per-tenant DICOMweb settings: push destination (STOW-RS base URL and optional
-- Authorization header value) and the auto-trigger rule (JSON), set by an admin.
CREATE TABLE tenant_settings (
    tenant_id           TEXT PRIMARY KEY,
    push_url            TEXT,
    push_authorization  TEXT,
    auto_trigger        TEXT,
    updated_at_ms       INTEGER NOT NULL
);

-- A delivery is owned by one process at a time (resumed by another when its lease ends).
ALTER TABLE deliveries ADD COLUMN lease_expires_at_ms INTEGER;

-- Segmentations received by STOW-RS under an auto-trigger rule, waiting for their series
-- to be stable (no new instance for RADSCORE_STOW_STABLE_S) before a job is created;
-- `state` waiting -> started (job_id) | skipped (error).
CREATE TABLE stow_triggers (
    segmentation_id TEXT PRIMARY KEY REFERENCES segmentations (id),
    tenant_id       TEXT NOT NULL,
    series_uid      TEXT NOT NULL,
    due_at_ms       INTEGER NOT NULL,
    state           TEXT NOT NULL DEFAULT 'waiting',
    job_id          TEXT,
    error           TEXT,
    created_at_ms   INTEGER NOT NULL
);
CREATE INDEX stow_triggers_due ON stow_triggers (due_at_ms) WHERE state = 'waiting';
CREATE INDEX stow_triggers_series ON stow_triggers (tenant_id, series_uid);
