//! Authentication and tenancy: API keys, the middleware that checks them on every route but
//! the health and metrics endpoints, per-key rate limits, and the [`Tenant`] and [`Caller`]
//! extractors handlers use to scope every query to the caller's tenant.
//!
//! # API keys
//! A key reads `rsk_<id>_<secret>`: `id` is [`KEY_ID_BYTES`] random bytes in hex, public,
//! and the primary key of its row (lookup without scanning hashes); `secret` is
//! [`KEY_SECRET_BYTES`] random bytes in hex. Only the SHA-256 of the whole key is stored.
//! A client sends it as `Authorization: Bearer <key>` (RFC 6750 §2.1) or `X-Api-Key: <key>`.
//! A missing, unknown, malformed or revoked key gets 401 problem+json with a
//! `WWW-Authenticate: Bearer` challenge, and the same detail for every invalid key so a
//! caller learns nothing about which ids exist.
//!
//! # Tenancy
//! Each key belongs to one tenant (a trial or site). The middleware puts the key's
//! [`Caller`] into the request; handlers take [`Tenant`] (or [`Caller`]) and pass the
//! tenant to every store query, so another tenant's object answers 404 like a missing one.
//!
//! # OIDC tokens
//! With `RADSCORE_OIDC_JWKS` set, a bearer credential that is a JWT rather than an API key
//! is verified by [`super::oidc::Oidc`] against the identity provider's key set; its tenant
//! and admin right come from its claims.
//!
//! `RADSCORE_AUTH=disabled` serves everything as the tenant [`DEFAULT_TENANT`] without a
//! key: for a local demo only (a loud warning is logged at startup).

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::oidc::Oidc;
use super::{AppState, Problem};
use crate::store::{ApiKeyRow, Db, StoreError, now_ms};

/// The tenant of rows written before tenancy existed, and of every request when
/// authentication is disabled.
pub const DEFAULT_TENANT: &str = "default";

/// Prefix of every radscore API key (recognisable in secret scanners and logs).
pub const KEY_PREFIX: &str = "rsk_";

/// Random bytes of a key's public id (64 bits: collisions are negligible).
pub const KEY_ID_BYTES: usize = 8;

/// Random bytes of a key's secret part (256 bits).
pub const KEY_SECRET_BYTES: usize = 32;

/// Longest tenant name.
pub const MAX_TENANT_CHARS: usize = 64;

/// The `WWW-Authenticate` challenge of a 401 (RFC 6750 §3).
const CHALLENGE: &str = "Bearer realm=\"radscore\"";

/// The challenge for a credential that was sent but is not valid (RFC 6750 §3.1).
const CHALLENGE_INVALID: &str = "Bearer realm=\"radscore\", error=\"invalid_token\"";

/// Whether requests need a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Every route except /healthz, /readyz and /metrics needs a valid API key.
    Required,
    /// No key needed; everything belongs to the tenant `default`. Local demos only.
    Disabled,
}

/// Authentication settings and the per-key rate limiter, shared by all requests.
pub struct Auth {
    pub mode: AuthMode,
    /// `None` when rate limiting is off.
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    /// Verifier of OIDC bearer tokens; `None`: API keys only.
    oidc: Option<Arc<Oidc>>,
}

impl Auth {
    /// Authentication in `mode` with at most `per_minute` requests per key (0: no limit).
    pub fn new(mode: AuthMode, per_minute: u32) -> Self {
        let limiter = NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)));
        Auth {
            mode,
            limiter,
            oidc: None,
        }
    }

    /// Also accept OIDC bearer tokens that `oidc` verifies.
    #[must_use]
    pub fn with_oidc(mut self, oidc: Option<Arc<Oidc>>) -> Self {
        self.oidc = oidc;
        self
    }

    /// `Err(seconds to wait)` when `key_id` has used up its requests for now.
    fn check_rate(&self, key_id: &str) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&key_id.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            // Round up: a client that waits the advertised seconds is admitted.
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// Who sent a request: the tenant every query is scoped to, and the key (for the audit
/// log). Put into the request by [`authenticate`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: String,
    /// The API key's public id; `None` when authentication is disabled.
    pub key_id: Option<String>,
    /// Admin keys may also read their tenant's audit log.
    pub admin: bool,
}

/// The caller's tenant; every store query of a handler is scoped to it.
#[derive(Debug, Clone)]
pub struct Tenant(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Absent only on a route outside the authentication layer: fail closed.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| unauthorized("this route requires an API key", CHALLENGE))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Caller::from_request_parts(parts, state)
            .await
            .map(|c| Tenant(c.tenant))
    }
}

tokio::task_local! {
    /// The `x-request-id` of the request a handler is serving (for audit events).
    static REQUEST_ID: Option<String>;
}

/// The `x-request-id` of the request being served, inside [`authenticate`]'s scope.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok().flatten()
}

/// Middleware on every protected route: resolve the key to a [`Caller`], apply the
/// per-key rate limit, and run the handler with the request id in scope.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let caller = match state.auth.mode {
        AuthMode::Disabled => Caller {
            tenant: DEFAULT_TENANT.to_string(),
            key_id: None,
            admin: true,
        },
        AuthMode::Required => match caller_of(&state.db, &state.auth, presented_key(&req)).await {
            Ok(caller) => caller,
            Err(problem) => return problem.into_response(),
        },
    };
    if let Some(key_id) = &caller.key_id
        && let Err(wait_s) = state.auth.check_rate(key_id)
    {
        metrics::counter!("radscore_rate_limited_total").increment(1);
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Rate limit exceeded",
            format!("this API key has used up its requests for now; retry in {wait_s} s"),
        );
        p.retry_after_s = Some(wait_s.max(1));
        return p.into_response();
    }
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    tracing::Span::current().record("tenant", caller.tenant.as_str());
    req.extensions_mut().insert(caller);
    REQUEST_ID.scope(request_id, next.run(req)).await
}

/// The caller the presented key (or OIDC token) names, or the 401 to answer.
async fn caller_of(db: &Db, auth: &Auth, presented: Option<String>) -> Result<Caller, Response> {
    let Some(presented) = presented else {
        return Err(unauthorized(
            "this route requires an API key: send 'Authorization: Bearer <key>' or \
             'X-Api-Key: <key>'",
            CHALLENGE,
        )
        .into_response());
    };
    let invalid = || {
        unauthorized(
            "the API key is not valid (unknown, malformed or revoked)",
            CHALLENGE_INVALID,
        )
        .into_response()
    };
    if let Some(oidc) = &auth.oidc
        && super::oidc::looks_like_jwt(&presented)
    {
        return oidc.verify(&presented).await.map_err(|fault| {
            metrics::counter!("radscore_oidc_tokens_refused_total").increment(1);
            unauthorized(&fault.to_string(), CHALLENGE_INVALID).into_response()
        });
    }
    let Some(id) = key_id_of(&presented) else {
        return Err(invalid());
    };
    let row = db
        .api_key(id)
        .await
        .map_err(|e| Problem::from(e).into_response())?;
    match row {
        Some(row) if row.revoked_at_ms.is_none() && hash_matches(&row, &presented) => Ok(Caller {
            tenant: row.tenant_id,
            key_id: Some(row.id),
            admin: row.admin,
        }),
        _ => Err(invalid()),
    }
}

/// The key from `Authorization: Bearer` (scheme case-insensitive, RFC 9110 §11.1) or
/// `X-Api-Key`.
fn presented_key(req: &Request) -> Option<String> {
    let headers = req.headers();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?.trim();
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
}

/// The public id of a well-formed key.
fn key_id_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex =
        |s: &str, bytes: usize| s.len() == 2 * bytes && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, KEY_ID_BYTES) && hex(secret, KEY_SECRET_BYTES)).then_some(id)
}

/// SHA-256 of a whole key, in hex.
///
/// A plain hash is enough here, unlike for passwords: the key holds 256 random bits, so
/// no dictionary or brute-force search over a leaked hash can find it, and a slow KDF
/// (argon2, bcrypt) would only add latency to every request.
fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Compare in constant time, so response timing says nothing about the stored hash.
fn hash_matches(row: &ApiKeyRow, presented: &str) -> bool {
    row.key_hash
        .as_bytes()
        .ct_eq(key_hash(presented).as_bytes())
        .into()
}

fn unauthorized(detail: &str, challenge: &'static str) -> Problem {
    let mut p = Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Authentication required",
        detail,
    );
    p.www_authenticate = Some(HeaderValue::from_static(challenge));
    p
}

/// Whether `tenant` is a valid tenant name: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_tenant(tenant: &str) -> bool {
    (1..=MAX_TENANT_CHARS).contains(&tenant.len())
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Errors of key administration.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "tenant '{0}' is not a valid tenant name (1 to {MAX_TENANT_CHARS} letters, digits, '.', '_' or '-')"
    )]
    InvalidTenant(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Create a key for `tenant`; returns its row and the key itself, which is stored nowhere
/// (show it once).
///
/// # Errors
/// An invalid tenant name, or the store failing.
pub async fn create_key(
    db: &Db,
    tenant: &str,
    name: Option<&str>,
    admin: bool,
) -> Result<(ApiKeyRow, String), KeyError> {
    if !valid_tenant(tenant) {
        return Err(KeyError::InvalidTenant(tenant.to_string()));
    }
    // ThreadRng is a cryptographically secure generator seeded from the OS.
    let random = |n: usize| {
        let mut bytes = vec![0u8; n];
        rand::rng().fill_bytes(&mut bytes);
        hex::encode(bytes)
    };
    let id = random(KEY_ID_BYTES);
    let key = format!("{KEY_PREFIX}{id}_{}", random(KEY_SECRET_BYTES));
    let row = ApiKeyRow {
        id,
        tenant_id: tenant.to_string(),
        name: name.map(str::to_string),
        admin,
        key_hash: key_hash(&key),
        created_at_ms: now_ms(),
        revoked_at_ms: None,
    };
    db.insert_api_key(&row).await?;
    Ok((row, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_read_only_from_well_formed_keys() {
        let id = "0123456789abcdef";
        let secret = "ab".repeat(KEY_SECRET_BYTES);
        assert_eq!(key_id_of(&format!("rsk_{id}_{secret}")), Some(id));
        assert_eq!(key_id_of(&format!("rsk_{id}_{}", &secret[2..])), None);
        assert_eq!(key_id_of(&format!("xyz_{id}_{secret}")), None);
        assert_eq!(key_id_of(&format!("rsk_{id}{secret}")), None);
        assert_eq!(key_id_of(&format!("rsk_{id}_{}zz", &secret[2..])), None);
    }

    #[test]
    fn tenant_names_are_restricted() {
        assert!(valid_tenant("trial-42.site_A"));
        assert!(!valid_tenant(""));
        assert!(!valid_tenant("a b"));
        assert!(!valid_tenant("../x"));
        assert!(!valid_tenant(&"t".repeat(MAX_TENANT_CHARS + 1)));
    }

    #[test]
    fn rate_limit_answers_with_a_wait() {
        let auth = Auth::new(AuthMode::Required, 2);
        assert!(auth.check_rate("k").is_ok());
        assert!(auth.check_rate("k").is_ok());
        let wait = auth.check_rate("k").expect_err("third request in a minute");
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(auth.check_rate("other").is_ok(), "limits are per key");
        assert!(Auth::new(AuthMode::Required, 0).check_rate("k").is_ok());
    }
}
