//! The model registry: validating and storing uploaded models, choosing the model of a job,
//! and loading models from the blob store by id with a small cache.
//!
//! A registered model is a row in the `models` table (manifest inline) plus its ONNX graph
//! in the blob store at `models/<id>/model.onnx`. Registration refuses, with the reason, a
//! manifest that does not parse or is inconsistent, features this build does not compute,
//! a settings hash other than the service's extraction settings, a graph whose input width
//! or output does not match the manifest, and an output that is not a probability
//! ([`Model::check_probability_output`]).
//!
//! Models are per tenant: an upload belongs to the uploading tenant, and every lookup is
//! scoped to the caller's tenant, so another tenant's model reads like a missing one. The
//! bundled model (`RADSCORE_MODEL_DIR`) is registered at startup as a shared, read-only
//! model of [`SHARED_TENANT`], visible to every tenant, and is the default active model of
//! every tenant that has not chosen (activated or deactivated) one itself.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::features::ExtractionSettings;
use crate::model::{MODEL_FILE, Manifest, Model, ModelError, onnx_sha256};
use crate::store::{BlobStore, Db, ModelRow, SHARED_TENANT, StoreError, now_ms};

/// Models kept loaded per process. Each holds an ONNX Runtime session (a few MB for the
/// linear models of `training/`); jobs rarely mix more than a couple of versions.
pub const MODEL_CACHE_CAPACITY: usize = 8;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The upload is not a usable model (422, with the reason).
    #[error(transparent)]
    Invalid(#[from] ModelError),
    /// The tenant already has a model with this name and version (409).
    #[error("model '{name}' version '{version}' is already registered as '{existing_id}'")]
    Duplicate {
        name: String,
        version: String,
        existing_id: String,
    },
    /// A job names a model the tenant does not have (422).
    #[error("{0}")]
    UnknownModel(String),
    /// The tenant has no active model and the job names none (422).
    #[error(
        "no model is active; activate one with POST /v1/models/{{id}}/activate or name one \
         in the job's 'model_id'"
    )]
    NoActiveModel,
    /// Database or blob store failure (500, or a retried job attempt).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blocking validation task did not finish.
    #[error("model validation was aborted: {0}")]
    Aborted(String),
}

/// Registered models of every tenant, and the loaded ones.
pub struct ModelRegistry {
    db: Db,
    blobs: BlobStore,
    settings: Arc<ExtractionSettings>,
    /// Most recently used first. Hand-written: a `Vec` scan over at most
    /// [`MODEL_CACHE_CAPACITY`] entries needs no LRU crate.
    cache: Mutex<Vec<(String, Arc<Model>)>>,
}

impl ModelRegistry {
    pub fn new(db: Db, blobs: BlobStore, settings: Arc<ExtractionSettings>) -> Self {
        ModelRegistry {
            db,
            blobs,
            settings,
            cache: Mutex::new(Vec::new()),
        }
    }

    /// Validate an upload and register it, inactive, for `tenant`.
    ///
    /// # Errors
    /// [`RegistryError::Invalid`] naming the fault, [`RegistryError::Duplicate`],
    /// [`RegistryError::Store`].
    pub async fn register(
        &self,
        tenant: &str,
        manifest_json: Bytes,
        onnx: Bytes,
    ) -> Result<ModelRow, RegistryError> {
        let manifest: Manifest =
            serde_json::from_slice(&manifest_json).map_err(|source| ModelError::ManifestParse {
                path: PathBuf::from("manifest"),
                source,
            })?;
        manifest.validate()?;
        manifest.check_compatible(&self.settings)?;
        // Refuse a duplicate before the (slow) graph validation and before storing a blob.
        if let Some(existing) = self.db.models(tenant).await?.into_iter().find(|r| {
            r.tenant_id == tenant && r.name == manifest.name && r.version == manifest.version
        }) {
            return Err(RegistryError::Duplicate {
                name: existing.name,
                version: existing.version,
                existing_id: existing.id,
            });
        }

        let id = uuid::Uuid::now_v7().to_string();
        let origin = PathBuf::from(format!("upload/{MODEL_FILE}"));
        let graph = onnx.clone();
        let model = tokio::task::spawn_blocking(move || -> Result<Model, ModelError> {
            let model = Model::from_bytes(manifest, &graph, &origin)?;
            model.check_probability_output()?;
            Ok(model)
        })
        .await
        .map_err(|e| RegistryError::Aborted(e.to_string()))??;

        let row = self
            .store(tenant, &id, &model, &manifest_json, onnx, false)
            .await?;
        if row.id != id {
            return Err(RegistryError::Duplicate {
                name: row.name,
                version: row.version,
                existing_id: row.id,
            });
        }
        self.remember(&id, Arc::new(model));
        tracing::info!(model_id = %id, name = %row.name, version = %row.version, "model registered");
        Ok(row)
    }

    /// Register the bundled model as a shared model (once; a restart finds the same row by
    /// name and version) and make it the shared default: the active model of every tenant
    /// that has not chosen its own.
    ///
    /// # Errors
    /// [`RegistryError::Store`]; [`RegistryError::Invalid`] if the bundled manifest cannot
    /// be serialised.
    pub async fn register_bundled(&self, model: Arc<Model>) -> Result<ModelRow, RegistryError> {
        let manifest_json = serde_json::to_vec(model.manifest()).map_err(|e| {
            ModelError::ManifestInvalid(format!("the bundled manifest does not serialise: {e}"))
        })?;
        let onnx_path = model.origin().to_path_buf();
        let onnx = tokio::fs::read(&onnx_path)
            .await
            .map_err(|source| ModelError::Io {
                path: onnx_path,
                source,
            })?;
        let id = format!("bundled-{}", short_digest(&model.info().sha256));
        let row = self
            .store(
                SHARED_TENANT,
                &id,
                &model,
                &manifest_json,
                Bytes::from(onnx),
                true,
            )
            .await?;
        if row.sha256 != model.info().sha256 {
            tracing::warn!(
                model_id = %row.id,
                "a registered model has the bundled model's name and version but another \
                 graph; the registered one is kept"
            );
        }
        self.remember(&row.id, model);
        let row = self
            .db
            .activate_model(SHARED_TENANT, &row.id)
            .await?
            .unwrap_or(row);
        tracing::info!(model_id = %row.id, "bundled model is the shared default");
        Ok(row)
    }

    /// Put the graph in the blob store and insert the row; the existing row when the tenant
    /// already has this name and version (the graph just stored is then removed again).
    async fn store(
        &self,
        tenant: &str,
        id: &str,
        model: &Model,
        manifest_json: &[u8],
        onnx: Bytes,
        bundled: bool,
    ) -> Result<ModelRow, RegistryError> {
        let manifest = model.manifest();
        let blob_key = format!("models/{id}/{MODEL_FILE}");
        let row = ModelRow {
            id: id.to_owned(),
            tenant_id: tenant.to_owned(),
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            sha256: onnx_sha256(&onnx),
            settings_hash: manifest.settings_hash.clone(),
            manifest: String::from_utf8_lossy(manifest_json).into_owned(),
            blob_key: blob_key.clone(),
            synthetic_demo: manifest.synthetic_demo,
            bundled,
            active: false,
            created_at_ms: now_ms(),
            activated_at_ms: None,
        };
        self.blobs.put(&blob_key, onnx).await?;
        match self.db.insert_model(&row).await? {
            None => Ok(row),
            Some(existing) => {
                if existing.id != id {
                    self.blobs.delete_prefix(&blob_key).await?;
                }
                Ok(existing)
            }
        }
    }

    /// The model a job runs with: `model_id` when given, else the tenant's active model.
    ///
    /// # Errors
    /// [`RegistryError::UnknownModel`], [`RegistryError::NoActiveModel`],
    /// [`RegistryError::Store`].
    pub async fn resolve(
        &self,
        tenant: &str,
        model_id: Option<&str>,
    ) -> Result<ModelRow, RegistryError> {
        match model_id {
            Some(id) => self.db.model(tenant, id).await?.ok_or_else(|| {
                RegistryError::UnknownModel(format!("model '{id}' is not registered"))
            }),
            None => self
                .db
                .active_model(tenant)
                .await?
                .ok_or(RegistryError::NoActiveModel),
        }
    }

    /// The loaded model of a registry row: from the cache, else from the blob store.
    ///
    /// # Errors
    /// [`RegistryError::Store`] when the graph cannot be read (transient for a job);
    /// [`RegistryError::Invalid`] when it no longer loads.
    pub async fn load(&self, row: &ModelRow) -> Result<Arc<Model>, RegistryError> {
        if let Some(model) = self.cached(&row.id) {
            return Ok(model);
        }
        let onnx = self.blobs.get(&row.blob_key).await?;
        let manifest: Manifest =
            serde_json::from_str(&row.manifest).map_err(|source| ModelError::ManifestParse {
                path: PathBuf::from(&row.blob_key),
                source,
            })?;
        let origin = PathBuf::from(&row.blob_key);
        let model =
            tokio::task::spawn_blocking(move || Model::from_bytes(manifest, &onnx, &origin))
                .await
                .map_err(|e| RegistryError::Aborted(e.to_string()))??;
        let model = Arc::new(model);
        self.remember(&row.id, model.clone());
        Ok(model)
    }

    fn cached(&self, id: &str) -> Option<Arc<Model>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let position = cache.iter().position(|(k, _)| k == id)?;
        let entry = cache.remove(position);
        let model = entry.1.clone();
        cache.insert(0, entry);
        Some(model)
    }

    fn remember(&self, id: &str, model: Arc<Model>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|(k, _)| k != id);
        cache.insert(0, (id.to_owned(), model));
        cache.truncate(MODEL_CACHE_CAPACITY);
    }
}

/// The first 16 hex digits of a `sha256:` digest, for readable stable ids.
fn short_digest(sha256: &str) -> &str {
    let hex = sha256.strip_prefix("sha256:").unwrap_or(sha256);
    hex.get(..16).unwrap_or(hex)
}
