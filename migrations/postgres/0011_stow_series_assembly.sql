-- STOW-RS series assembled across requests (issue #9). Every accepted CT instance is
-- staged under the series resource of its (tenant, SeriesInstanceUID); the resource is
-- re-assembled from the union of its instances after each request. A resource that a job
-- has used is never changed again: later instances open the next version (a new resource
-- that starts with the previous version's instances).
CREATE TABLE stow_series (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL,
    series_uid           TEXT NOT NULL,
    version              BIGINT NOT NULL,
    instance_count       BIGINT NOT NULL DEFAULT 0,
    -- Why the union of the instances is not a series (NULL when it assembles).
    assembly_error       TEXT,
    -- The last time a new instance arrived; stable RADSCORE_STOW_STABLE_S later.
    last_instance_at_ms  BIGINT NOT NULL,
    created_at_ms        BIGINT NOT NULL,
    UNIQUE (tenant_id, series_uid, version)
);

-- The instances of a STOW-RS series resource; a re-sent identical instance (same SHA-256)
-- is the same row, a different one under the same SOPInstanceUID is refused.
CREATE TABLE stow_instances (
    series_id         TEXT NOT NULL REFERENCES stow_series (id),
    sop_instance_uid  TEXT NOT NULL,
    sha256            TEXT NOT NULL,
    blob_key          TEXT NOT NULL,
    received_at_ms    BIGINT NOT NULL,
    PRIMARY KEY (series_id, sop_instance_uid)
);

-- Segmentations received by STOW-RS for a series still receiving instances that could not
-- be mapped onto it yet; bound (a segmentations row with the same id) when a later CT
-- instance makes the mapping succeed.
CREATE TABLE stow_pending_segmentations (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    series_id      TEXT NOT NULL REFERENCES stow_series (id),
    blob_key       TEXT NOT NULL,
    file_name      TEXT,
    reason         TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL
);
CREATE INDEX stow_pending_segmentations_series ON stow_pending_segmentations (series_id);
