//! Cross-cutting request limits of the router: request timeouts (tower-http
//! `TimeoutLayer` and `RequestBodyTimeoutLayer`) and CORS (tower-http `CorsLayer`, off
//! unless origins are configured). Body size limits live in [`super::upload`].
//!
//! A request has `RADSCORE_REQUEST_TIMEOUT_S` in all: past it the answer is 503
//! `request-timeout` with `Retry-After`. A body that stops arriving for
//! `RADSCORE_BODY_IDLE_TIMEOUT_S` fails while it is read, answered 408
//! `request-body-timeout` ([`body_timeout_problem`]).

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutError, TimeoutLayer};

use super::{HttpPolicy, Problem};

/// Seconds a client is asked to wait before retrying a request that timed out.
pub const TIMEOUT_RETRY_AFTER_S: u64 = 5;

/// How long browsers may cache a CORS preflight answer (Access-Control-Max-Age).
const CORS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Add the timeout and CORS layers `http` asks for to `router`.
pub fn apply<S: Clone + Send + Sync + 'static>(router: Router<S>, http: &HttpPolicy) -> Router<S> {
    let mut router = router;
    if let Some(idle) = http.body_idle_timeout {
        router = router.layer(RequestBodyTimeoutLayer::new(idle));
    }
    if let Some(timeout) = http.request_timeout {
        router = router
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                timeout,
            ))
            .layer(axum::middleware::map_response(
                move |r: Response| async move { timeout_as_problem(r, timeout) },
            ));
    }
    if !http.cors_origins.is_empty() {
        router = router.layer(cors(&http.cors_origins));
    }
    router
}

/// The CORS layer for an allow-list of origins (validated by the configuration).
fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::LOCATION,
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(CORS_MAX_AGE)
}

/// `TimeoutLayer` answers an empty 503; give it a problem body. Other responses (a
/// handler's own 503 carries a content type) pass unchanged.
fn timeout_as_problem(response: Response, timeout: std::time::Duration) -> Response {
    let is_timeout = response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(header::CONTENT_TYPE);
    if !is_timeout {
        return response;
    }
    let mut p = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "request-timeout",
        "Request timed out",
        format!(
            "the request was not completed within {} s (RADSCORE_REQUEST_TIMEOUT_S); retry later",
            timeout.as_secs()
        ),
    );
    p.retry_after_s = Some(TIMEOUT_RETRY_AFTER_S);
    p.into_response()
}

/// Whether a body read failed because the body stopped arriving (`RequestBodyTimeoutLayer`).
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<TimeoutError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// 408: the client stopped sending the body.
pub fn body_timeout_problem() -> Problem {
    Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        "request-body-timeout",
        "Request body timed out",
        "the request body stopped arriving before it was complete \
         (RADSCORE_BODY_IDLE_TIMEOUT_S); send it again",
    )
}
