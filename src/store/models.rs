//! The model registry tables: `models`, one row per registered model (manifest inline, ONNX
//! graph in the blob store under `blob_key`), and `model_activations`, one row per tenant
//! naming its active model. The statements are in [`super::sql`] with the others.
//!
//! # Tenancy
//! A tenant sees its own models and the shared ones: rows of the pseudo-tenant
//! [`SHARED_TENANT`], where the bundled model is registered. A shared model is read-only
//! (no route changes its row), but any tenant may activate it for itself. A tenant's active
//! model is its own `model_activations` row when it has one (`model_id` NULL: none
//! active); otherwise the shared default, the row of [`SHARED_TENANT`] (the bundled model
//! of the running service).

use serde::Serialize;
use sqlx::FromRow;

/// Tenant of rows written before tenancy existed (the column's default in migration 0007).
pub const DEFAULT_TENANT: &str = "default";

/// Owner of the models every tenant sees (the bundled one), and of the default
/// activation. Not a valid tenant name (see `api::auth::valid_tenant`), so no key has it.
pub const SHARED_TENANT: &str = "*";

/// A registered model.
#[derive(Debug, Clone, FromRow, Serialize, PartialEq)]
pub struct ModelRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub version: String,
    /// `sha256:<hex>` of the ONNX graph.
    pub sha256: String,
    /// The manifest's settings hash.
    pub settings_hash: String,
    /// JSON: the manifest as uploaded.
    pub manifest: String,
    /// Blob key of the ONNX graph.
    pub blob_key: String,
    pub synthetic_demo: bool,
    /// True for the model shipped in `RADSCORE_MODEL_DIR`, registered at startup.
    pub bundled: bool,
    pub created_at_ms: i64,
    /// The reading tenant's default model for jobs that name none (from
    /// `model_activations`, not a column of `models`).
    pub active: bool,
    /// When the reading tenant (or the shared default) made it active.
    pub activated_at_ms: Option<i64>,
}

/// The stored columns of [`ModelRow`], as a literal so statements stay static strings.
macro_rules! model_columns {
    () => {
        "id, tenant_id, name, version, sha256, settings_hash, manifest, blob_key, \
         synthetic_demo, bundled, created_at_ms"
    };
}
pub(crate) use model_columns;

/// `SELECT` of [`ModelRow`]s as tenant `$1` sees them: table alias `m`, with `active` and
/// `activated_at_ms` from the tenant's effective activation (its own row first, else the
/// shared default). Callers append `AND …` conditions.
macro_rules! model_select {
    () => {
        "WITH eff AS (SELECT model_id, changed_at_ms FROM model_activations \
         WHERE tenant_id IN ($1, '*') ORDER BY tenant_id = '*' LIMIT 1) \
         SELECT m.id, m.tenant_id, m.name, m.version, m.sha256, m.settings_hash, m.manifest, \
         m.blob_key, m.synthetic_demo, m.bundled, m.created_at_ms, \
         COALESCE(m.id = eff.model_id, FALSE) AS active, \
         CASE WHEN m.id = eff.model_id THEN eff.changed_at_ms END AS activated_at_ms \
         FROM models m LEFT JOIN eff ON TRUE WHERE m.tenant_id IN ($1, '*')"
    };
}
pub(crate) use model_select;
