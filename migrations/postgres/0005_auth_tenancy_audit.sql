-- Authentication, tenancy and the audit trail (issue #8); mirrors
-- migrations/sqlite/0005_auth_tenancy_audit.sql.
--
-- Every stored object belongs to a tenant (a trial or site). Rows written before tenancy
-- existed belong to the tenant 'default'; the default is dropped afterwards so that a
-- statement that forgets the tenant fails instead of filing the row under 'default'.
ALTER TABLE series ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE segmentations ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE jobs ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE batches ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE series ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE segmentations ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE jobs ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE batches ALTER COLUMN tenant_id DROP DEFAULT;
CREATE INDEX series_tenant_uid ON series (tenant_id, series_uid);

-- Idempotency keys are unique per tenant: two trials may pick the same key.
DROP INDEX jobs_idempotency_key;
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
DROP INDEX batches_idempotency_key;
CREATE UNIQUE INDEX batches_idempotency_key ON batches (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- API keys: only the SHA-256 of the key is stored; `id` is the public part of the key.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    name          TEXT,
    admin         BOOLEAN NOT NULL DEFAULT FALSE,
    key_hash      TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);

-- Append-only audit trail: who (tenant, key id) did what (action) to which object when.
-- No key material, pixel data or patient identifiers. The triggers refuse every UPDATE,
-- DELETE and TRUNCATE, whoever sends it.
CREATE TABLE audit_log (
    seq         BIGSERIAL PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    tenant_id   TEXT NOT NULL,
    key_id      TEXT,
    action      TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id   TEXT,
    request_id  TEXT,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_tenant_time ON audit_log (tenant_id, at_ms);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
