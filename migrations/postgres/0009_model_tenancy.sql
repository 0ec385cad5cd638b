-- Per-tenant model registry: a tenant's active model lives in model_activations (one row
-- per tenant, so concurrent activations are one upsert on one key instead of two updates
-- racing on a partial unique index). Bundled models belong to the shared tenant '*'
-- (not a valid tenant name), readable by every tenant; the '*' row is the default for
-- tenants that never activated or deactivated a model themselves.
CREATE TABLE model_activations (
    tenant_id     TEXT PRIMARY KEY,
    -- NULL: the tenant deactivated its model and has none active.
    model_id      TEXT REFERENCES models (id),
    changed_at_ms BIGINT NOT NULL
);
INSERT INTO model_activations (tenant_id, model_id, changed_at_ms)
    SELECT tenant_id, id, COALESCE(activated_at_ms, created_at_ms) FROM models WHERE active;
UPDATE models SET tenant_id = '*' WHERE bundled;
DROP INDEX models_one_active;
ALTER TABLE models DROP COLUMN active;
ALTER TABLE models DROP COLUMN activated_at_ms;
