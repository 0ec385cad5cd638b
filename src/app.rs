//! Wiring: open the store, load the model and settings, build the API state and the
//! worker context. Used by `main` and by the integration tests.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::sync::Notify;

use crate::api::AppState;
use crate::api::auth::{Auth, AuthMode};
use crate::config::Config;
use crate::features::ExtractionSettings;
use crate::jobs::{JobContext, ModelRegistry};
use crate::model::Model;
use crate::store::{BlobStore, Db};

/// Everything a serving or working process holds.
pub struct App {
    pub state: AppState,
    pub jobs: Arc<JobContext>,
}

/// Load the extraction settings: a file when configured, else the bundled default.
pub fn load_settings(config: &Config) -> anyhow::Result<ExtractionSettings> {
    match &config.settings {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading settings file {}", path.display()))?;
            ExtractionSettings::from_json(&text)
                .with_context(|| format!("settings file {} is invalid", path.display()))
        }
        None => Ok(ExtractionSettings::bundled()),
    }
}

/// Load the model in `model_dir` (ONNX Runtime from `ort_dylib`, else found) and refuse it
/// when it does not match the extractor.
pub fn load_model(
    model_dir: &Path,
    ort_dylib: Option<&Path>,
    settings: &ExtractionSettings,
) -> anyhow::Result<Model> {
    crate::model::init_runtime(ort_dylib).context("loading the ONNX Runtime library")?;
    let model = Model::load(model_dir)
        .with_context(|| format!("loading the model from {}", model_dir.display()))?;
    if let Err(e) = model.check_compatible(settings) {
        bail!(
            "model in {} does not match this extractor: {e}",
            model_dir.display()
        );
    }
    Ok(model)
}

/// A spool directory unwritten for this long belongs to no live request (at least the
/// request timeout: a request may decode its spooled files that long without writing).
const MIN_STALE_SPOOL_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The same without a request timeout (`RADSCORE_REQUEST_TIMEOUT_S=0`).
const STALE_SPOOL_WITHOUT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(86_400);

/// Build the application from configuration (migrates the database and registers the
/// bundled model, activating it when no model is active).
pub async fn build(config: &Config) -> anyhow::Result<App> {
    let settings = Arc::new(load_settings(config)?);
    let model = Arc::new(load_model(
        &config.model_dir,
        config.ort_dylib.as_deref(),
        &settings,
    )?);
    let db = Db::connect(&config.database_url)
        .await
        .with_context(|| format!("opening database {}", config.database_url))?;
    let location = config.blob_location()?;
    let blobs = BlobStore::open(&location, &config.s3_options())
        .with_context(|| format!("opening the blob store {location:?}"))?;
    let registry = Arc::new(ModelRegistry::new(
        db.clone(),
        blobs.clone(),
        settings.clone(),
    ));
    registry
        .register_bundled(model.clone())
        .await
        .context("registering the bundled model")?;
    let http = config.http_policy()?;
    let stale_after = http
        .request_timeout
        .map_or(STALE_SPOOL_WITHOUT_TIMEOUT, |t| t.max(MIN_STALE_SPOOL_AGE));
    let removed = crate::api::spool::remove_stale_spools(stale_after);
    if removed > 0 {
        tracing::info!(removed, "removed upload spools left by a stopped process");
    }
    let job_enqueued = Arc::new(Notify::new());
    if config.auth == AuthMode::Disabled {
        tracing::warn!(
            "AUTHENTICATION IS DISABLED (RADSCORE_AUTH=disabled): anyone who can reach this \
             port reads and writes everything, as tenant 'default'. Local demos only."
        );
    }
    let state = AppState {
        db: db.clone(),
        blobs: blobs.clone(),
        model,
        registry: registry.clone(),
        settings: settings.clone(),
        job_enqueued: job_enqueued.clone(),
        limits: config.upload_limits(),
        metrics: crate::telemetry::metrics_handle(),
        http,
        auth: Arc::new(
            Auth::new(config.auth, config.rate_limit_per_min)
                .with_oidc(crate::api::oidc::Oidc::from_config(&config.oidc).await?),
        ),
        stow_stable: std::time::Duration::from_secs(config.stow_stable_s),
    };
    let push =
        Arc::new(crate::jobs::delivery::Pusher::new(config.push()).map_err(anyhow::Error::msg)?);
    let jobs = Arc::new(JobContext {
        db,
        blobs,
        registry,
        settings,
        job_enqueued,
        queue: config.queue()?,
        push,
    });
    Ok(App { state, jobs })
}
