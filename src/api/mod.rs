//! The HTTP API (axum): routes, upload extraction and problem+json errors.
//!
//! The router below is the table of every route; `openapi.yaml` documents the same set and
//! a test checks that the two agree. Every route but `/healthz`, `/readyz` and `/metrics`
//! sits behind [`auth::authenticate`] (API key → tenant).

// `Problem` carries its extra members inline; an error is built once per failed request,
// so its size does not matter.
#![allow(clippy::result_large_err)]

pub mod audit;
pub mod auth;
pub mod batches;
pub mod deletion;
pub mod events;
pub mod health;
pub mod job_list;
pub mod job_settings;
pub mod jobs;
pub mod limits;
pub mod models;
pub mod oidc;
pub mod problem;
pub mod related;
pub mod report;
pub mod robustness;
pub mod segmentations;
pub mod series;
pub mod spool;
pub mod stow;
pub mod stow_series;
pub mod tenant;
pub mod upload;
pub mod workitems;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post, put};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Notify;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::features::ExtractionSettings;
use crate::jobs::ModelRegistry;
use crate::model::Model;
use crate::store::{BlobStore, Db};
pub use problem::{ApiResult, Problem};
pub use upload::UploadLimits;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub blobs: BlobStore,
    /// The bundled model (`RADSCORE_MODEL_DIR`), also registered in [`AppState::registry`].
    pub model: Arc<Model>,
    /// Registered models (uploads and the bundled one).
    pub registry: Arc<ModelRegistry>,
    pub settings: Arc<ExtractionSettings>,
    /// Wakes idle workers of this process when a job is enqueued.
    pub job_enqueued: Arc<Notify>,
    pub limits: UploadLimits,
    pub metrics: PrometheusHandle,
    /// Request timeout and CORS allow-list.
    pub http: HttpPolicy,
    /// Authentication mode and per-key rate limits.
    pub auth: Arc<auth::Auth>,
    /// How long a series received by STOW-RS must go without a new instance before an
    /// auto-trigger starts its job (`RADSCORE_STOW_STABLE_S`).
    pub stow_stable: std::time::Duration,
}

/// Cross-cutting HTTP limits of the router.
#[derive(Debug, Clone, Default)]
pub struct HttpPolicy {
    /// Longest time a request may take (body included); `None`: no limit.
    pub request_timeout: Option<std::time::Duration>,
    /// Longest pause while a request body arrives; `None`: no limit.
    pub body_idle_timeout: Option<std::time::Duration>,
    /// Origins allowed cross-origin (CORS); empty: CORS off, no CORS headers are sent.
    pub cors_origins: Vec<String>,
}

/// Every route of the service, one per line, then the cross-cutting layers: body limit,
/// request timeouts and CORS ([`limits::apply`]), request ids and tracing.
pub fn router(state: AppState) -> Router {
    router_with(state, true)
}

/// The service's routes; without `probes`, `/healthz`, `/readyz` and `/metrics` are left
/// out (they are served on the admin address instead, see [`admin_router`]).
pub fn router_with(state: AppState, probes: bool) -> Router {
    let body_limit = usize::try_from(state.limits.max_body_bytes).unwrap_or(usize::MAX);
    // Uploads are checked in blocking tasks: bound how many run at once (others wait).
    let uploads = GlobalConcurrencyLimitLayer::new(state.limits.max_concurrent_uploads.max(1));
    // The route table, one route per line (tests/api/openapi.rs reads it); every route
    // here needs an API key (the probes and metrics are in `public_routes`).
    #[rustfmt::skip]
    let protected = Router::new()
        .route("/openapi.yaml", get(health::openapi))
        .route("/v1/series", post(series::create).layer(uploads.clone()))
        .route("/v1/series/{id}", get(series::get).delete(series::delete))
        .route("/v1/segmentations", post(segmentations::create).layer(uploads.clone()))
        .route("/studies", post(stow::store).layer(uploads.clone()))
        .route("/studies/{study}", post(stow::store_in_study).layer(uploads))
        .route("/v1/segmentations/{id}", get(segmentations::get).delete(segmentations::delete))
        .route("/v1/batches", post(batches::create))
        .route("/v1/batches/{id}", get(batches::get))
        .route("/v1/jobs", get(job_list::list).post(jobs::create))
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route("/v1/jobs/{id}/result", get(jobs::result))
        .route("/v1/jobs/{id}/result.dcm", get(report::result_dcm))
        .route("/v1/jobs/{id}/result.csv", get(robustness::result_csv))
        .route("/v1/jobs/{id}/result.png", get(robustness::result_png))
        .route("/v1/robustness", post(robustness::create))
        .route("/v1/jobs/{id}/events", get(events::job_events))
        .route("/v1/models", get(models::list).post(models::create))
        .route("/v1/models/{id}", get(models::get))
        .route("/v1/models/{id}/activate", post(models::activate))
        .route("/v1/models/{id}/deactivate", post(models::deactivate))
        .route("/v1/compliance", get(health::compliance))
        .route("/v1/audit", get(audit::list))
        .route("/v1/tenant/dicomweb", get(tenant::get).put(tenant::put))
        .route("/workitems", get(workitems::search).post(workitems::create))
        .route("/workitems/{uid}", get(workitems::retrieve))
        .route("/workitems/{uid}/state", put(workitems::change_state))
        .route("/workitems/{uid}/cancelrequest", post(workitems::cancel_request))
        .route_layer(from_fn_with_state(state.clone(), auth::authenticate));
    let public = if probes {
        public_routes()
    } else {
        Router::new()
    };
    let routes = Router::new()
        .merge(public)
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit));
    limits::apply(routes, &state.http)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let request_id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!(
                    "http",
                    method = %req.method(),
                    path = %req.uri().path(),
                    request_id,
                    tenant = tracing::field::Empty
                )
            }),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The routes that need no credential: probes and metrics, for load balancers and
/// Prometheus (bind them to a private network).
pub fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
}

/// The probes and metrics alone, for a separate admin address (`RADSCORE_ADMIN_ADDR`).
pub fn admin_router(state: AppState) -> Router {
    public_routes()
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no-route",
        "No such route",
        format!("no route for path '{}'", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("method {method} is not allowed on '{}'", uri.path()),
    )
}
