//! `application/problem+json` error responses (RFC 9457).
//!
//! A 4xx `detail` names the fault precisely (which file, which tag, what was expected). A
//! 5xx answers with a generic detail; its cause is logged, never sent to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Base of the `type` URIs; each problem kind appends its own slug.
const PROBLEM_TYPE_BASE: &str = "https://radscore.invalid/problems/";

/// An API error: status, a stable kind slug and a precise message.
#[derive(Debug, Clone)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable slug, e.g. `mixed-series`; also the last part of the `type` URI.
    pub kind: &'static str,
    /// Short, fixed summary of the kind.
    pub title: &'static str,
    /// What exactly went wrong for this request.
    pub detail: String,
    /// Extra machine-readable members (e.g. `file`, `tag`).
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after_s: Option<u64>,
    /// The `WWW-Authenticate` challenge of a 401.
    pub www_authenticate: Option<HeaderValue>,
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    /// A problem with the given status, kind, title and detail.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            kind,
            title,
            detail: detail.into(),
            extra: serde_json::Map::new(),
            retry_after_s: None,
            www_authenticate: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind, "Malformed request", detail)
    }

    /// 404: the addressed resource does not exist.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Resource not found",
            format!("no {what} with id '{}'", super::series::clip(id)),
        )
    }

    /// 422: well-formed but refused content.
    pub fn unprocessable(
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, kind, title, detail)
    }

    /// 500: logs `cause` and answers without it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error.message = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
            "the server failed to process the request; the cause has been logged",
        )
    }

    /// Add a machine-readable member.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ProblemBody {
            type_uri: format!("{PROBLEM_TYPE_BASE}{}", self.kind),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            extra: &self.extra,
        };
        let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = (self.status, json).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after_s {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(challenge) = self.www_authenticate {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        resp
    }
}

impl From<crate::store::StoreError> for Problem {
    fn from(e: crate::store::StoreError) -> Self {
        Problem::internal(&e)
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, Problem>;
