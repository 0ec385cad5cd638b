//! `GET` and `PUT /v1/tenant/dicomweb`: the caller's tenant's DICOMweb settings — its push
//! destination (STOW-RS base URL and optional `Authorization`) and its auto-trigger rule
//! ([`crate::jobs::trigger::TriggerRule`]). Reading is open to every key of the tenant
//! (the Authorization value is never returned, only whether one is set); changing needs an
//! admin key. `radscore tenants set-push|set-trigger|show` does the same from the command
//! line, through [`set_push`] and [`set_trigger`].
//!
//! LIMITATION: the push Authorization value is stored in the database in plain text (as
//! the process default sits in the environment); protect database access accordingly.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::audit::audit_caller;
use super::auth::{Caller, Tenant, valid_tenant};
use super::{ApiResult, AppState, Problem};
use crate::jobs::delivery::Destination;
use crate::jobs::trigger::TriggerRule;
use crate::store::{Db, StoreError, TenantSettingsRow};

/// Why a settings change was refused.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("tenant '{0}' is not a valid tenant name")]
    InvalidTenant(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Set (`Some(url)`) or clear (`None`) `tenant`'s push destination; the URL and the
/// Authorization value are checked first.
///
/// # Errors
/// An invalid tenant name, URL or header value; the store failing.
pub async fn set_push(
    db: &Db,
    tenant: &str,
    url: Option<&str>,
    authorization: Option<&str>,
) -> Result<(), SettingsError> {
    if !valid_tenant(tenant) {
        return Err(SettingsError::InvalidTenant(tenant.into()));
    }
    if let Some(url) = url {
        Destination::new(url, authorization).map_err(SettingsError::Invalid)?;
    }
    let authorization = url.and(authorization);
    db.set_tenant_push(tenant, url, authorization).await?;
    Ok(())
}

/// Set (`Some`) or clear (`None`) `tenant`'s auto-trigger rule.
///
/// # Errors
/// An invalid tenant name; the store failing.
pub async fn set_trigger(
    db: &Db,
    tenant: &str,
    rule: Option<&TriggerRule>,
) -> Result<(), SettingsError> {
    if !valid_tenant(tenant) {
        return Err(SettingsError::InvalidTenant(tenant.into()));
    }
    let json = rule
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| SettingsError::Invalid(e.to_string()))?;
    db.set_tenant_auto_trigger(tenant, json.as_deref()).await?;
    Ok(())
}

/// The settings as shown (never the Authorization value).
pub fn settings_json(tenant: &str, row: Option<&TenantSettingsRow>) -> Value {
    let push = row.and_then(|r| {
        let url = r.push_url.as_deref()?;
        let shown =
            Destination::new(url, None).map_or_else(|_| url.to_string(), |d| d.shown().to_string());
        Some(json!({ "url": shown, "authorization_set": r.push_authorization.is_some() }))
    });
    let rule = row
        .and_then(|r| r.auto_trigger.as_deref())
        .and_then(|j| serde_json::from_str::<Value>(j).ok());
    json!({
        "tenant": tenant,
        "push": push,
        "auto_trigger": rule,
        "updated_at": row.and_then(|r| super::jobs::rfc3339(Some(r.updated_at_ms))),
    })
}

/// `GET /v1/tenant/dicomweb`.
pub async fn get(State(state): State<AppState>, Tenant(tenant): Tenant) -> ApiResult<Json<Value>> {
    let row = state.db.tenant_settings(&tenant).await?;
    Ok(Json(settings_json(&tenant, row.as_ref())))
}

/// `PUT /v1/tenant/dicomweb` with `{"push": {"url", "authorization"?} | null,
/// "auto_trigger": {rule} | null}`; a member left out is unchanged, `null` clears it.
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<Json<Value>> {
    if !caller.admin {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Admin key required",
            "the tenant's DICOMweb settings can be changed with an admin key only \
             (radscore keys create --admin)",
        ));
    }
    let (_, doc) = super::jobs::read_json_request(&state, req).await?;
    let obj = doc
        .as_object()
        .ok_or_else(|| invalid("the body must be a JSON object"))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["push", "auto_trigger"].contains(&k.as_str()))
    {
        return Err(invalid(format!(
            "unknown field '{k}'; expected 'push' and/or 'auto_trigger'"
        )));
    }
    let tenant = caller.tenant.as_str();
    if let Some(push) = obj.get("push") {
        let (url, authorization) = parse_push(push)?;
        set_push(&state.db, tenant, url, authorization)
            .await
            .map_err(settings_problem)?;
    }
    if let Some(rule) = obj.get("auto_trigger") {
        let rule = match rule {
            Value::Null => None,
            other => Some(TriggerRule::parse(&other.to_string()).map_err(invalid)?),
        };
        set_trigger(&state.db, tenant, rule.as_ref())
            .await
            .map_err(settings_problem)?;
    }
    let row = state.db.tenant_settings(tenant).await?;
    let shown = settings_json(tenant, row.as_ref());
    let detail = json!({
        "push": obj.get("push").map(|p| if p.is_null() { "cleared" } else { "set" }),
        "auto_trigger": obj.get("auto_trigger").map(|p| if p.is_null() { "cleared" } else { "set" }),
    });
    audit_caller(&state, &caller, "tenant.dicomweb", "tenant", tenant, detail).await?;
    Ok(Json(shown))
}

/// The `push` member: `null`, or `{"url": string, "authorization"?: string}`.
fn parse_push(push: &Value) -> ApiResult<(Option<&str>, Option<&str>)> {
    let Some(obj) = push.as_object() else {
        return if push.is_null() {
            Ok((None, None))
        } else {
            Err(invalid(
                "'push' must be an object {\"url\", \"authorization\"} or null",
            ))
        };
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !["url", "authorization"].contains(&k.as_str()))
    {
        return Err(invalid(format!(
            "unknown field 'push.{k}'; expected 'url' and 'authorization'"
        )));
    }
    let url = obj
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("'push.url' is required and must be a string"))?;
    let authorization = match obj.get("authorization") {
        None | Some(Value::Null) => None,
        Some(Value::String(a)) => Some(a.as_str()),
        Some(_) => return Err(invalid("'push.authorization' must be a string")),
    };
    Ok((Some(url), authorization))
}

fn settings_problem(e: SettingsError) -> Problem {
    match e {
        SettingsError::Store(s) => s.into(),
        other => invalid(other.to_string()),
    }
}

fn invalid<D: Into<String>>(detail: D) -> Problem {
    Problem::unprocessable("invalid-tenant-settings", "Invalid tenant settings", detail)
}
