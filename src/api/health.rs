//! Liveness, readiness, Prometheus metrics and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use super::AppState;

/// The OpenAPI description of this API, compiled in.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// `GET /healthz`: the process is up.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: database and blob store reachable, model loaded.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let db_ok = state.db.ping().await;
    let blobs_ok = match state.blobs.ping().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error.message = %e, "blob store unreachable");
            false
        }
    };
    let ready = db_ok && blobs_ok;
    let info = state.model.info();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "database": if db_ok { "ok" } else { "unreachable" },
        "blob_store": if blobs_ok { "ok" } else { "unreachable" },
        "model": { "name": info.name, "version": info.version, "loaded": true },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// `GET /metrics`: Prometheus text exposition format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    match state.db.job_counts().await {
        Ok(counts) => {
            for status in ["queued", "running", "succeeded", "failed", "cancelled"] {
                let n = counts
                    .iter()
                    .find(|(s, _)| s == status)
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!("radscore_jobs", "status" => status).set(n as f64);
                if status == "queued" {
                    metrics::gauge!("radscore_queue_depth").set(n as f64);
                }
            }
        }
        Err(e) => tracing::warn!(error.message = %e, "job counts unavailable for metrics"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// `GET /openapi.yaml`.
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML)
}

/// `GET /v1/compliance`: compute the bundled IBSI digital phantom with this build and
/// return the comparison with the IBSI reference values.
pub async fn compliance() -> Result<Json<crate::compliance::Report>, super::Problem> {
    let report = tokio::task::spawn_blocking(crate::compliance::digital_phantom)
        .await
        .map_err(|e| super::Problem::internal(&e))?
        .map_err(|e| super::Problem::internal(&e))?;
    Ok(Json(report))
}
