-- Model registry: uploaded ONNX models (graph in the blob store), one active per tenant.
CREATE TABLE models (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL DEFAULT 'default',
    name            TEXT NOT NULL,
    version         TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    settings_hash   TEXT NOT NULL,
    manifest        TEXT NOT NULL,
    blob_key        TEXT NOT NULL,
    synthetic_demo  BOOLEAN NOT NULL,
    bundled         BOOLEAN NOT NULL DEFAULT FALSE,
    active          BOOLEAN NOT NULL DEFAULT FALSE,
    created_at_ms   BIGINT NOT NULL,
    activated_at_ms BIGINT
);
CREATE UNIQUE INDEX models_name_version ON models (tenant_id, name, version);
CREATE UNIQUE INDEX models_one_active ON models (tenant_id) WHERE active;
