//! The model registry over HTTP: `POST /v1/models` (multipart: `model` = ONNX graph,
//! `manifest` = manifest JSON; a location-aware bundle sends its bundle manifest and one
//! `model.<sub-model id>` graph per sub-model), `GET /v1/models`, `GET /v1/models/{id}`,
//! `POST /v1/models/{id}/activate` and `/deactivate`.
//!
//! An upload is validated before anything is stored (see [`crate::jobs::registry`]); each
//! refusal is a 422 problem whose type names the check that failed. Uploads are inactive;
//! activating one makes it the default for jobs without `model_id` and deactivates the
//! previous one. Results keep the model that made them.
//!
//! Every route is scoped to the caller's tenant: a tenant sees its own uploads and the
//! shared bundled model (`"shared": true`, read-only, usable by all), and another tenant's
//! model answers 404 exactly like a missing id. Activation is per tenant: activating or
//! deactivating a model (the shared one too) changes only the caller's default. Uploads,
//! activations and deactivations are audited.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde_json::{Value, json};

use super::audit::audit_caller;
use super::auth::{Caller, Tenant};
use super::series::clip;
use super::upload::read_multipart;
use super::{ApiResult, AppState, Problem};
use crate::jobs::RegistryError;
use crate::model::{ModelError, SUB_MODEL_FIELD_PREFIX, valid_sub_model_id};
use crate::store::{ModelRow, SHARED_TENANT};

/// Multipart field holding the ONNX graph.
pub const MODEL_FIELD: &str = "model";

/// Multipart field holding the manifest JSON.
pub const MANIFEST_FIELD: &str = "manifest";

/// `POST /v1/models`: validate and register a model (inactive).
#[tracing::instrument(skip_all, fields(model_id = tracing::field::Empty))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<(StatusCode, HeaderMap, Json<Value>)> {
    let media = super::upload::media_type(&req);
    if media != "multipart/form-data" {
        return Err(super::series::unsupported_media(
            &media,
            "multipart/form-data",
        ));
    }
    state.limits.check_declared_length(&req)?;
    let parts = read_multipart(req, &state.limits).await?;
    let mut graphs: BTreeMap<String, Bytes> = BTreeMap::new();
    let mut manifest = None;
    for part in parts {
        let graph_key = if part.field == MODEL_FIELD {
            Some(String::new())
        } else {
            part.field
                .strip_prefix(SUB_MODEL_FIELD_PREFIX)
                .filter(|id| valid_sub_model_id(id))
                .map(str::to_owned)
        };
        let duplicate = match (graph_key, part.field.as_str()) {
            (Some(key), _) => graphs.insert(key, part.bytes).is_some(),
            (None, MANIFEST_FIELD) => manifest.replace(part.bytes).is_some(),
            (None, other) => {
                return Err(invalid_upload(format!(
                    "unexpected part '{}'; send '{MODEL_FIELD}' (ONNX) and '{MANIFEST_FIELD}' \
                     (JSON), or for a bundle '{SUB_MODEL_FIELD_PREFIX}<sub-model id>' per \
                     sub-model and '{MANIFEST_FIELD}'",
                    clip(other)
                )));
            }
        };
        if duplicate {
            return Err(invalid_upload(format!(
                "part '{}' appears twice",
                clip(&part.field)
            )));
        }
    }
    let (false, Some(manifest)) = (graphs.is_empty(), manifest) else {
        return Err(invalid_upload(format!(
            "both parts are required: '{MODEL_FIELD}' (ONNX graph; for a bundle \
             '{SUB_MODEL_FIELD_PREFIX}<sub-model id>' per sub-model) and '{MANIFEST_FIELD}' \
             (manifest JSON)"
        )));
    };

    let row = state
        .registry
        .register(&caller.tenant, manifest, graphs)
        .await
        .map_err(registry_problem)?;
    tracing::Span::current().record("model_id", row.id.as_str());
    let detail = json!({ "name": row.name, "version": row.version, "sha256": row.sha256 });
    audit_caller(&state, &caller, "model.upload", "model", &row.id, detail).await?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = format!("/v1/models/{}", row.id).parse() {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::CREATED, headers, Json(model_json(&row))))
}

/// `GET /v1/models`: the models the tenant sees (its own and the shared ones), oldest first.
pub async fn list(State(state): State<AppState>, Tenant(tenant): Tenant) -> ApiResult<Json<Value>> {
    let rows = state.db.models(&tenant).await?;
    let models: Vec<Value> = rows.iter().map(model_json).collect();
    Ok(Json(json!({ "models": models })))
}

/// `GET /v1/models/{id}`: one model with its manifest.
pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let row = state
        .db
        .model(&tenant, &id)
        .await?
        .ok_or_else(|| Problem::not_found("model", &id))?;
    let mut doc = model_json(&row);
    doc["manifest"] = serde_json::from_str(&row.manifest).unwrap_or(Value::Null);
    Ok(Json(doc))
}

/// `POST /v1/models/{id}/activate`: make it the caller's tenant's default model (the
/// previous one is deactivated); other tenants are not affected.
pub async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let row = state
        .db
        .activate_model(&caller.tenant, &id)
        .await?
        .ok_or_else(|| Problem::not_found("model", &id))?;
    tracing::info!(model_id = %row.id, "model activated");
    audit_caller(
        &state,
        &caller,
        "model.activate",
        "model",
        &row.id,
        json!({}),
    )
    .await?;
    Ok(Json(model_json(&row)))
}

/// `POST /v1/models/{id}/deactivate`: no longer the caller's tenant's default (its jobs
/// must then name a model); other tenants are not affected.
pub async fn deactivate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let row = state
        .db
        .deactivate_model(&caller.tenant, &id)
        .await?
        .ok_or_else(|| Problem::not_found("model", &id))?;
    tracing::info!(model_id = %row.id, "model deactivated");
    audit_caller(
        &state,
        &caller,
        "model.deactivate",
        "model",
        &row.id,
        json!({}),
    )
    .await?;
    Ok(Json(model_json(&row)))
}

/// The registry document of a model (without the manifest).
pub fn model_json(row: &ModelRow) -> Value {
    let manifest: Value = serde_json::from_str(&row.manifest).unwrap_or(Value::Null);
    json!({
        "id": row.id,
        "name": row.name,
        "version": row.version,
        "sha256": row.sha256,
        "settings_hash": row.settings_hash,
        "synthetic_demo": row.synthetic_demo,
        "bundled": row.bundled,
        "shared": row.tenant_id == SHARED_TENANT,
        "active": row.active,
        "feature_names": manifest.get("feature_names").cloned().unwrap_or(Value::Null),
        "sub_models": sub_models_json(&manifest),
        "created_at": super::jobs::rfc3339(Some(row.created_at_ms)),
        "activated_at": super::jobs::rfc3339(row.activated_at_ms),
    })
}

/// A bundle's sub-models as the registry lists them (id, locations, name, version, digest,
/// features); `null` for a single model.
fn sub_models_json(manifest: &Value) -> Value {
    let Some(subs) = manifest.get("sub_models").and_then(Value::as_array) else {
        return Value::Null;
    };
    subs.iter()
        .map(|sub| {
            let m = &sub["manifest"];
            json!({
                "id": sub["id"],
                "locations": sub["locations"],
                "sha256": sub["sha256"],
                "name": m["name"],
                "version": m["version"],
                "feature_names": m["feature_names"],
            })
        })
        .collect()
}

fn invalid_upload(detail: String) -> Problem {
    Problem::unprocessable("invalid-model-upload", "Invalid model upload", detail)
}

/// Map a registry failure to its problem: 422 for an unusable model (the type names the
/// check), 409 for a duplicate, 500 otherwise.
pub fn registry_problem(e: RegistryError) -> Problem {
    let detail = e.to_string();
    let model_problem = |kind, title| Problem::unprocessable(kind, title, detail.clone());
    match e {
        RegistryError::Invalid(m) => match m {
            ModelError::ManifestParse { .. } | ModelError::ManifestInvalid(_) => {
                model_problem("invalid-manifest", "Invalid model manifest")
            }
            ModelError::UnknownFeatures { unknown, .. } => {
                model_problem("unknown-features", "Features not computed").with("features", unknown)
            }
            ModelError::IncompatibleSettings {
                model_hash,
                extractor_hash,
            } => model_problem("unknown-settings-profile", "Unknown extraction settings")
                .with("settings_hash", model_hash)
                .with("service_settings_hash", extractor_hash),
            ModelError::Session { .. } => model_problem("invalid-onnx", "Invalid ONNX graph"),
            ModelError::Signature(_) => {
                model_problem("model-signature-mismatch", "Graph does not match manifest")
            }
            ModelError::NotProbability(_) => {
                model_problem("not-a-probability", "Output is not a probability")
            }
            other => Problem::internal(&other),
        },
        RegistryError::Duplicate { existing_id, .. } => Problem::new(
            StatusCode::CONFLICT,
            "model-exists",
            "Model already registered",
            detail,
        )
        .with("existing_id", existing_id),
        RegistryError::Upload(_) => model_problem("invalid-model-upload", "Invalid model upload"),
        RegistryError::UnknownModel(_) => model_problem("unknown-model", "Unknown model"),
        RegistryError::NoActiveModel => model_problem("no-active-model", "No active model"),
        RegistryError::Store(s) => Problem::from(s),
        RegistryError::Aborted(_) => Problem::internal(&detail),
    }
}
