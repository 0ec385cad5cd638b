//! The model registry: validating and storing uploaded models, choosing the model of a job,
//! and loading models from the blob store by id with a small cache.
//!
//! A registered model is a row in the `models` table (manifest inline) plus its ONNX graph
//! in the blob store at `models/<id>/model.onnx`; a location-aware bundle
//! ([`crate::model::Bundle`]) has one graph per sub-model at `models/<id>/<sub id>.onnx`
//! and is validated sub-model by sub-model. Registration refuses, with the reason, a
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

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::features::ExtractionSettings;
use crate::model::{
    Bundle, BundleManifest, LoadedModel, MODEL_FILE, Manifest, Model, ModelError,
    SUB_MODEL_FIELD_PREFIX, onnx_sha256,
};
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
    /// The upload's graph parts do not fit its manifest (422).
    #[error("{0}")]
    Upload(String),
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
    cache: Mutex<Vec<(String, LoadedModel)>>,
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

    /// Validate an upload and register it, inactive, for `tenant`: a single model (its
    /// graph in `graphs` under the key `""`) or a location-aware bundle (one graph per
    /// sub-model id).
    ///
    /// # Errors
    /// [`RegistryError::Invalid`] naming the fault, [`RegistryError::Upload`] for graphs
    /// that do not fit the manifest's kind, [`RegistryError::Duplicate`],
    /// [`RegistryError::Store`].
    pub async fn register(
        &self,
        tenant: &str,
        manifest_json: Bytes,
        graphs: BTreeMap<String, Bytes>,
    ) -> Result<ModelRow, RegistryError> {
        let parse_error = |source| ModelError::ManifestParse {
            path: PathBuf::from("manifest"),
            source,
        };
        let doc: serde_json::Value = serde_json::from_slice(&manifest_json).map_err(parse_error)?;
        if BundleManifest::is_bundle(&doc) {
            let manifest: BundleManifest = serde_json::from_value(doc).map_err(parse_error)?;
            return self.register_bundle(tenant, manifest, graphs).await;
        }
        let manifest: Manifest = serde_json::from_value(doc).map_err(parse_error)?;
        let onnx = match (graphs.get(""), graphs.len()) {
            (Some(onnx), 1) => onnx.clone(),
            _ => {
                return Err(RegistryError::Upload(format!(
                    "a single-model manifest takes one graph, in part '{}'; parts                      '{SUB_MODEL_FIELD_PREFIX}<id>' are for bundle manifests                      (with bundle_version)",
                    crate::api::models::MODEL_FIELD
                )));
            }
        };
        manifest.validate()?;
        manifest.check_compatible(&self.settings)?;
        self.refuse_duplicate(tenant, &manifest.name, &manifest.version)
            .await?;

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
        self.registered(row, &id, LoadedModel::Single(Arc::new(model)))
    }

    /// Register a location-aware bundle: every sub-model validated like a single model, the
    /// graphs stored under `models/<id>/<sub-model id>.onnx`, the manifest stored with each
    /// sub-model's `sha256`.
    async fn register_bundle(
        &self,
        tenant: &str,
        manifest: BundleManifest,
        graphs: BTreeMap<String, Bytes>,
    ) -> Result<ModelRow, RegistryError> {
        if graphs.contains_key("") {
            return Err(RegistryError::Upload(format!(
                "a bundle manifest takes one graph per sub-model, in parts                  '{SUB_MODEL_FIELD_PREFIX}<sub-model id>', not in part '{}'",
                crate::api::models::MODEL_FIELD
            )));
        }
        manifest.validate()?;
        manifest.check_compatible(&self.settings)?;
        self.refuse_duplicate(tenant, &manifest.name, &manifest.version)
            .await?;

        let id = uuid::Uuid::now_v7().to_string();
        let origin = PathBuf::from("upload");
        let to_load = graphs.clone();
        let bundle = tokio::task::spawn_blocking(move || -> Result<Bundle, ModelError> {
            let bundle = Bundle::from_graphs(manifest, &to_load, &origin)?;
            bundle.check_probability_output()?;
            Ok(bundle)
        })
        .await
        .map_err(|e| RegistryError::Aborted(e.to_string()))??;

        let prefix = format!("models/{id}");
        let stored_manifest = serde_json::to_string(bundle.manifest()).map_err(|e| {
            ModelError::ManifestInvalid(format!("the bundle manifest does not serialise: {e}"))
        })?;
        let row = ModelRow {
            id: id.clone(),
            tenant_id: tenant.to_owned(),
            name: bundle.manifest().name.clone(),
            version: bundle.manifest().version.clone(),
            sha256: bundle.sha256(),
            settings_hash: bundle.manifest().settings_hash().to_owned(),
            manifest: stored_manifest,
            blob_key: prefix.clone(),
            synthetic_demo: bundle.manifest().synthetic_demo,
            bundled: false,
            created_at_ms: now_ms(),
            active: false,
            activated_at_ms: None,
        };
        for (sub, graph) in &graphs {
            self.blobs
                .put(&sub_model_key(&prefix, sub), graph.clone())
                .await?;
        }
        let row = self.insert_or_roll_back(row).await?;
        self.registered(row, &id, LoadedModel::Bundle(Arc::new(bundle)))
    }

    /// [`RegistryError::Duplicate`] when the tenant already has `name` and `version`:
    /// checked before the (slow) graph validation and before any blob is stored.
    async fn refuse_duplicate(
        &self,
        tenant: &str,
        name: &str,
        version: &str,
    ) -> Result<(), RegistryError> {
        let rows = self.db.models(tenant).await?;
        match rows
            .into_iter()
            .find(|r| r.tenant_id == tenant && r.name == name && r.version == version)
        {
            Some(existing) => Err(RegistryError::Duplicate {
                name: existing.name,
                version: existing.version,
                existing_id: existing.id,
            }),
            None => Ok(()),
        }
    }

    /// The new row, cached; [`RegistryError::Duplicate`] when a concurrent upload of the
    /// same name and version won (the row found is not ours).
    fn registered(
        &self,
        row: ModelRow,
        id: &str,
        model: LoadedModel,
    ) -> Result<ModelRow, RegistryError> {
        if row.id != id {
            return Err(RegistryError::Duplicate {
                name: row.name,
                version: row.version,
                existing_id: row.id,
            });
        }
        self.remember(id, model);
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
        self.remember(&row.id, LoadedModel::Single(model));
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
        self.insert_or_roll_back(row).await
    }

    /// Insert the row whose graphs are stored under `row.blob_key`; when the owner already
    /// has this name and version (a concurrent upload), remove those graphs again and
    /// return the existing row.
    async fn insert_or_roll_back(&self, row: ModelRow) -> Result<ModelRow, RegistryError> {
        match self.db.insert_model(&row).await? {
            None => Ok(row),
            Some(existing) => {
                if existing.id != row.id {
                    self.blobs.delete_prefix(&row.blob_key).await?;
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
    /// [`RegistryError::Store`] when a graph cannot be read (transient for a job);
    /// [`RegistryError::Invalid`] when it no longer loads.
    pub async fn load(&self, row: &ModelRow) -> Result<LoadedModel, RegistryError> {
        if let Some(model) = self.cached(&row.id) {
            return Ok(model);
        }
        let parse_error = |source| ModelError::ManifestParse {
            path: PathBuf::from(&row.blob_key),
            source,
        };
        let doc: serde_json::Value = serde_json::from_str(&row.manifest).map_err(parse_error)?;
        let origin = PathBuf::from(&row.blob_key);
        let model = if BundleManifest::is_bundle(&doc) {
            let manifest: BundleManifest = serde_json::from_value(doc).map_err(parse_error)?;
            let mut graphs = BTreeMap::new();
            for sub in &manifest.sub_models {
                let graph = self
                    .blobs
                    .get(&sub_model_key(&row.blob_key, &sub.id))
                    .await?;
                graphs.insert(sub.id.clone(), graph);
            }
            let bundle = tokio::task::spawn_blocking(move || {
                Bundle::from_graphs(manifest, &graphs, &origin)
            })
            .await
            .map_err(|e| RegistryError::Aborted(e.to_string()))??;
            LoadedModel::Bundle(Arc::new(bundle))
        } else {
            let manifest: Manifest = serde_json::from_value(doc).map_err(parse_error)?;
            let onnx = self.blobs.get(&row.blob_key).await?;
            let model =
                tokio::task::spawn_blocking(move || Model::from_bytes(manifest, &onnx, &origin))
                    .await
                    .map_err(|e| RegistryError::Aborted(e.to_string()))??;
            LoadedModel::Single(Arc::new(model))
        };
        self.remember(&row.id, model.clone());
        Ok(model)
    }

    fn cached(&self, id: &str) -> Option<LoadedModel> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let position = cache.iter().position(|(k, _)| k == id)?;
        let entry = cache.remove(position);
        let model = entry.1.clone();
        cache.insert(0, entry);
        Some(model)
    }

    fn remember(&self, id: &str, model: LoadedModel) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|(k, _)| k != id);
        cache.insert(0, (id.to_owned(), model));
        cache.truncate(MODEL_CACHE_CAPACITY);
    }
}

/// Blob key of a bundle sub-model's graph under the bundle's prefix.
fn sub_model_key(prefix: &str, sub_model_id: &str) -> String {
    format!("{prefix}/{sub_model_id}.onnx")
}

/// The first 16 hex digits of a `sha256:` digest, for readable stable ids.
fn short_digest(sha256: &str) -> &str {
    let hex = sha256.strip_prefix("sha256:").unwrap_or(sha256);
    hex.get(..16).unwrap_or(hex)
}
