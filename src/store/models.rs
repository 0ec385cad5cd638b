//! The model registry table: one row per registered model (manifest inline, ONNX graph in
//! the blob store under `blob_key`), at most one `active` row per tenant (a partial unique
//! index enforces it). The statements are in [`super::sql`] with the others.

use serde::Serialize;
use sqlx::FromRow;

/// Tenant of every row until tenancy lands (the column's default in migration 0007).
// LIMITATION: one tenant until the auth helper's `Tenant` extractor lands (issue #8).
pub const DEFAULT_TENANT: &str = "default";

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
    /// The tenant's default model for jobs that name none.
    pub active: bool,
    pub created_at_ms: i64,
    pub activated_at_ms: Option<i64>,
}

/// The column list of [`ModelRow`], as a literal so statements stay static strings.
macro_rules! model_columns {
    () => {
        "id, tenant_id, name, version, sha256, settings_hash, manifest, blob_key, \
         synthetic_demo, bundled, active, created_at_ms, activated_at_ms"
    };
}
pub(crate) use model_columns;
