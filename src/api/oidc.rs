//! OAuth2 / OpenID Connect bearer tokens: signed JWTs (RFC 7519) from a hospital's identity
//! provider, accepted beside API keys when `RADSCORE_OIDC_JWKS` is set.
//!
//! A token is accepted when its signature verifies with a key of the configured JSON Web
//! Key Set (RFC 7517; a file, or an `https://` URL such as the provider's `jwks_uri`), its
//! algorithm is an asymmetric one the key is meant for, and its `iss`, `aud`, `exp` and
//! `nbf` claims hold (with [`CLOCK_LEEWAY_S`] of clock skew). The tenant comes from one
//! claim (`RADSCORE_OIDC_TENANT_CLAIM`, default `radscore_tenant`), and the admin right from
//! a role in another (`RADSCORE_OIDC_ROLES_CLAIM` holding `RADSCORE_OIDC_ADMIN_ROLE`).
//!
//! A key set fetched from a URL is fetched again every `RADSCORE_OIDC_JWKS_REFRESH_S`
//! seconds, and at once (at most every [`MIN_REFETCH`]) when a token names a key id the
//! set does not hold, so a provider's key rotation needs no restart. A key set that cannot
//! be read at startup stops the process; one that cannot be refreshed later keeps the
//! previous keys and logs a warning.
//!
//! Symmetric algorithms (HS256…) are refused: with a published key set they would let
//! anyone who reads the public key sign tokens (algorithm confusion).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::RwLock;

use super::auth::{Caller, valid_tenant};

/// Clock skew tolerated on `exp` and `nbf`, seconds (RFC 7519 §4.1.4 allows "a small
/// leeway").
pub const CLOCK_LEEWAY_S: u64 = 60;

/// Shortest time between two fetches of a key set URL triggered by unknown key ids, so
/// tokens with made-up key ids cannot make the service hammer the provider.
pub const MIN_REFETCH: Duration = Duration::from_secs(30);

/// Longest accepted key set document, bytes.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Time limit of one key set fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest `sub` kept as the caller's id in the audit log, characters.
const MAX_SUBJECT_CHARS: usize = 128;

/// The asymmetric algorithms a token may be signed with (RFC 7518 §3.1, RFC 8037).
const ALLOWED_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// OIDC settings (all optional: without `RADSCORE_OIDC_JWKS` only API keys are accepted).
#[derive(Debug, Clone, Args)]
pub struct OidcConfig {
    /// JSON Web Key Set of the identity provider that signs bearer tokens: a file path or
    /// an `http(s)://` URL (its `jwks_uri`). Unset: no OIDC tokens, API keys only.
    #[arg(long = "oidc-jwks", env = "RADSCORE_OIDC_JWKS")]
    pub jwks: Option<String>,
    /// Required `iss` of every token (the provider's issuer URL).
    #[arg(long = "oidc-issuer", env = "RADSCORE_OIDC_ISSUER")]
    pub issuer: Option<String>,
    /// Required `aud` of every token (radscore's client id at the provider).
    #[arg(long = "oidc-audience", env = "RADSCORE_OIDC_AUDIENCE")]
    pub audience: Option<String>,
    /// Claim that names the caller's tenant.
    #[arg(
        long = "oidc-tenant-claim",
        env = "RADSCORE_OIDC_TENANT_CLAIM",
        default_value = "radscore_tenant"
    )]
    pub tenant_claim: String,
    /// Claim holding the caller's roles (an array, or a space-separated string).
    #[arg(
        long = "oidc-roles-claim",
        env = "RADSCORE_OIDC_ROLES_CLAIM",
        default_value = "roles"
    )]
    pub roles_claim: String,
    /// Role that makes the caller an admin of its tenant (audit log access).
    #[arg(
        long = "oidc-admin-role",
        env = "RADSCORE_OIDC_ADMIN_ROLE",
        default_value = "radscore-admin"
    )]
    pub admin_role: String,
    /// Seconds between fetches of a key set URL.
    #[arg(
        long = "oidc-jwks-refresh-s",
        env = "RADSCORE_OIDC_JWKS_REFRESH_S",
        default_value_t = 300
    )]
    pub jwks_refresh_s: u64,
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig {
            jwks: None,
            issuer: None,
            audience: None,
            tenant_claim: "radscore_tenant".to_string(),
            roles_claim: "roles".to_string(),
            admin_role: "radscore-admin".to_string(),
            jwks_refresh_s: 300,
        }
    }
}

/// Why OIDC could not be set up (stops the process at startup).
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("RADSCORE_OIDC_JWKS is set, so {0} must be set too")]
    Missing(&'static str),
    #[error("RADSCORE_OIDC_JWKS: cannot read the key set {source_name}: {reason}")]
    Unreadable { source_name: String, reason: String },
    #[error("RADSCORE_OIDC_JWKS: {source_name} is not a JSON Web Key Set: {reason}")]
    Invalid { source_name: String, reason: String },
}

/// Where the key set comes from.
#[derive(Debug, Clone)]
enum JwksSource {
    File(PathBuf),
    Url(String),
}

impl JwksSource {
    fn name(&self) -> String {
        match self {
            JwksSource::File(p) => p.display().to_string(),
            JwksSource::Url(u) => u.clone(),
        }
    }
}

/// The current keys and when they were fetched.
struct Keys {
    set: JwkSet,
    fetched_at: Instant,
}

/// A verifier of bearer tokens against one identity provider's key set.
pub struct Oidc {
    source: JwksSource,
    issuer: String,
    audience: String,
    tenant_claim: String,
    roles_claim: String,
    admin_role: String,
    refresh: Duration,
    keys: RwLock<Keys>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("source", &self.source.name())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused; the text is the 401's detail (it names the fault, never the
/// token or its claims' values).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFault {
    #[error("the bearer token is not a well-formed signed JWT")]
    Malformed,
    #[error("the bearer token is signed with {0}; accepted are RS*, PS*, ES256, ES384 and EdDSA")]
    Algorithm(String),
    #[error("the bearer token's signing key (kid {0}) is not in the identity provider's key set")]
    UnknownKey(String),
    #[error("the bearer token's signature does not verify with the identity provider's key")]
    Signature,
    #[error("the bearer token has expired")]
    Expired,
    #[error("the bearer token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the bearer token was issued by another issuer than the configured one")]
    Issuer,
    #[error("the bearer token is for another audience than this service")]
    Audience,
    #[error("the bearer token lacks the claim '{0}'")]
    MissingClaim(String),
    #[error("the bearer token's claim '{0}' is not a valid tenant name")]
    InvalidTenant(String),
}

impl Oidc {
    /// The verifier `config` describes, with its key set read; `None` without
    /// `RADSCORE_OIDC_JWKS`.
    ///
    /// # Errors
    /// A missing issuer or audience, or a key set that cannot be read or parsed.
    pub async fn from_config(config: &OidcConfig) -> Result<Option<Arc<Oidc>>, OidcError> {
        let Some(jwks) = &config.jwks else {
            return Ok(None);
        };
        let issuer = config
            .issuer
            .clone()
            .ok_or(OidcError::Missing("RADSCORE_OIDC_ISSUER"))?;
        let audience = config
            .audience
            .clone()
            .ok_or(OidcError::Missing("RADSCORE_OIDC_AUDIENCE"))?;
        let source = if jwks.starts_with("https://") || jwks.starts_with("http://") {
            JwksSource::Url(jwks.clone())
        } else {
            JwksSource::File(PathBuf::from(jwks.strip_prefix("file://").unwrap_or(jwks)))
        };
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| OidcError::Unreadable {
                source_name: source.name(),
                reason: e.to_string(),
            })?;
        let set = fetch(&http, &source).await?;
        tracing::info!(
            jwks = %source.name(),
            keys = set.keys.len(),
            "OIDC bearer tokens accepted beside API keys"
        );
        Ok(Some(Arc::new(Oidc {
            source,
            issuer,
            audience,
            tenant_claim: config.tenant_claim.clone(),
            roles_claim: config.roles_claim.clone(),
            admin_role: config.admin_role.clone(),
            refresh: Duration::from_secs(config.jwks_refresh_s.max(1)),
            keys: RwLock::new(Keys {
                set,
                fetched_at: Instant::now(),
            }),
            http,
        })))
    }

    /// The caller a valid token names.
    ///
    /// # Errors
    /// The first fault found, in the order: form, algorithm, key, signature, times,
    /// issuer, audience, tenant claim.
    pub async fn verify(&self, token: &str) -> Result<Caller, TokenFault> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenFault::Malformed)?;
        if !ALLOWED_ALGORITHMS.contains(&header.alg) {
            return Err(TokenFault::Algorithm(format!("{:?}", header.alg)));
        }
        let jwk = self.key_for(header.kid.as_deref()).await?;
        if let Some(alg) = jwk.common.key_algorithm
            && format!("{alg:?}") != format!("{:?}", header.alg)
        {
            // The key is published for another algorithm (RFC 7517 §4.4).
            return Err(TokenFault::Algorithm(format!("{:?}", header.alg)));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| TokenFault::Signature)?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = CLOCK_LEEWAY_S;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| fault_of(e.kind()))?;
        self.caller_of(&data.claims)
    }

    /// Tenant, admin right and subject from verified claims.
    fn caller_of(&self, claims: &Value) -> Result<Caller, TokenFault> {
        let tenant = match claims.get(&self.tenant_claim) {
            Some(Value::String(t)) if valid_tenant(t) => t.clone(),
            Some(_) => return Err(TokenFault::InvalidTenant(self.tenant_claim.clone())),
            None => return Err(TokenFault::MissingClaim(self.tenant_claim.clone())),
        };
        let admin = match claims.get(&self.roles_claim) {
            Some(Value::Array(roles)) => roles.iter().any(|r| r == self.admin_role.as_str()),
            Some(Value::String(roles)) => roles.split_whitespace().any(|r| r == self.admin_role),
            _ => false,
        };
        let subject: String = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| TokenFault::MissingClaim("sub".to_string()))?
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_SUBJECT_CHARS)
            .collect();
        Ok(Caller {
            tenant,
            key_id: Some(format!("oidc:{subject}")),
            admin,
        })
    }

    /// The key a token's `kid` names (the only key when the token has no `kid` and the
    /// set holds one), fetching the set again when it may have rotated.
    async fn key_for(&self, kid: Option<&str>) -> Result<Jwk, TokenFault> {
        let unknown = || TokenFault::UnknownKey(kid.unwrap_or("none").chars().take(64).collect());
        {
            let keys = self.keys.read().await;
            let stale = keys.fetched_at.elapsed() >= self.refresh;
            if let Some(jwk) = find(&keys.set, kid)
                && !(stale && matches!(self.source, JwksSource::Url(_)))
            {
                return Ok(jwk);
            }
            let may_refetch = matches!(self.source, JwksSource::Url(_))
                && (stale || keys.fetched_at.elapsed() >= MIN_REFETCH);
            if !may_refetch {
                return find(&keys.set, kid).ok_or_else(unknown);
            }
        }
        let mut keys = self.keys.write().await;
        // Another request may have fetched meanwhile.
        if keys.fetched_at.elapsed() >= MIN_REFETCH.min(self.refresh) {
            match fetch(&self.http, &self.source).await {
                Ok(set) => {
                    tracing::info!(keys = set.keys.len(), "OIDC key set fetched again");
                    keys.set = set;
                }
                Err(e) => tracing::warn!(
                    error.message = %e,
                    "OIDC key set could not be fetched again; keeping the previous keys"
                ),
            }
            // Also after a failure: wait MIN_REFETCH before the next attempt.
            keys.fetched_at = Instant::now();
        }
        find(&keys.set, kid).ok_or_else(unknown)
    }
}

/// The key named `kid`, or the only key when there is no `kid`.
fn find(set: &JwkSet, kid: Option<&str>) -> Option<Jwk> {
    match kid {
        Some(kid) => set.find(kid).cloned(),
        None if set.keys.len() == 1 => set.keys.first().cloned(),
        None => None,
    }
}

/// Read and parse a key set.
async fn fetch(http: &reqwest::Client, source: &JwksSource) -> Result<JwkSet, OidcError> {
    let unreadable = |reason: String| OidcError::Unreadable {
        source_name: source.name(),
        reason,
    };
    let bytes = match source {
        JwksSource::File(path) => tokio::fs::read(path)
            .await
            .map_err(|e| unreadable(e.to_string()))?,
        JwksSource::Url(url) => {
            let resp = http
                .get(url)
                .send()
                .await
                .map_err(|e| unreadable(e.to_string()))?;
            if !resp.status().is_success() {
                return Err(unreadable(format!("HTTP {}", resp.status())));
            }
            resp.bytes()
                .await
                .map_err(|e| unreadable(e.to_string()))?
                .to_vec()
        }
    };
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(unreadable(format!(
            "{} bytes, more than {MAX_JWKS_BYTES}",
            bytes.len()
        )));
    }
    let set: JwkSet = serde_json::from_slice(&bytes).map_err(|e| OidcError::Invalid {
        source_name: source.name(),
        reason: e.to_string(),
    })?;
    if set.keys.is_empty() {
        return Err(OidcError::Invalid {
            source_name: source.name(),
            reason: "it holds no keys".to_string(),
        });
    }
    Ok(set)
}

/// The fault a failed `jsonwebtoken::decode` names.
fn fault_of(kind: &ErrorKind) -> TokenFault {
    match kind {
        ErrorKind::ExpiredSignature => TokenFault::Expired,
        ErrorKind::ImmatureSignature => TokenFault::NotYetValid,
        ErrorKind::InvalidIssuer => TokenFault::Issuer,
        ErrorKind::InvalidAudience => TokenFault::Audience,
        ErrorKind::InvalidSignature => TokenFault::Signature,
        ErrorKind::InvalidAlgorithm => TokenFault::Algorithm("a mismatching algorithm".into()),
        ErrorKind::MissingRequiredClaim(claim) => TokenFault::MissingClaim(claim.clone()),
        _ => TokenFault::Malformed,
    }
}

/// Whether a bearer credential looks like a JWT (three base64url parts), not an API key.
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|p| !p.is_empty())
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwts_are_told_from_api_keys() {
        assert!(looks_like_jwt("eyJhbGciOi.eyJzdWIiOi.c2ln"));
        assert!(!looks_like_jwt(&format!(
            "rsk_{}_{}",
            "0".repeat(16),
            "a".repeat(64)
        )));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c d"));
        assert!(!looks_like_jwt(".b.c"));
    }

    #[test]
    fn decode_errors_name_the_fault() {
        assert_eq!(fault_of(&ErrorKind::ExpiredSignature), TokenFault::Expired);
        assert_eq!(fault_of(&ErrorKind::InvalidAudience), TokenFault::Audience);
        assert_eq!(
            fault_of(&ErrorKind::MissingRequiredClaim("exp".into())),
            TokenFault::MissingClaim("exp".into())
        );
    }
}
