//! OIDC bearer tokens beside API keys: tokens signed by a stand-in identity provider
//! (`tests/support/oidc_issuer.py`, joserfc) with keys from a JWKS file or URL; tenant and
//! admin right from claims; every fault answered 401 naming it; key rotation picked up
//! from the URL without a restart; a bad configuration stops startup.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

const ISSUER: &str = "https://idp.example.test/realms/trial";
const AUDIENCE: &str = "radscore";

fn now_s() -> i64 {
    radscore::store::now_ms() / 1000
}

/// Claims of a valid token of `tenant` for subject `sub`, with `extra` merged in
/// (a `null` value removes a claim).
fn claims(sub: &str, tenant: &str, extra: Value) -> Value {
    let mut c = json!({
        "sub": sub, "iss": ISSUER, "aud": AUDIENCE,
        "iat": now_s(), "exp": now_s() + 600, "radscore_tenant": tenant,
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// Sign `specs` (name → {kid, alg, claims}) with the issuer's keys in `dir` (created on
/// first use, with `jwks.json` and `jwks-rotated.json` beside them).
fn sign(dir: &Path, specs: Value) -> HashMap<String, String> {
    let request = json!({ "dir": dir, "tokens": specs });
    let out = run_support("oidc_issuer.py", &[&request.to_string()]);
    serde_json::from_str(&out).expect("tokens as JSON")
}

/// GET `path` with `token` as the bearer credential: (status, body, WWW-Authenticate).
async fn get_with(app: &TestApp, token: &str, path: &str) -> (u16, Value, String) {
    let resp = reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null), challenge)
}

/// Tokens from a key set file: each names its tenant (another tenant's series is 404),
/// the admin role opens the audit log, the subject is the audit log's caller id, API keys
/// keep working, and every fault gets a 401 saying which it is.
#[tokio::test]
async fn tokens_from_a_key_set_file_carry_tenant_and_role() {
    let idp = tempfile::tempdir().unwrap();
    let t = sign(
        idp.path(),
        json!({
            "alice": {"kid": "k1", "alg": "RS256", "claims": claims("alice", "trial-a", json!({}))},
            "bob": {"kid": "e1", "alg": "ES256", "claims": claims("bob", "trial-b", json!({}))},
            "carol": {"kid": "k1", "alg": "RS256",
                      "claims": claims("carol", "trial-a", json!({"roles": ["reader", "radscore-admin"]}))},
            "expired": {"kid": "k1", "alg": "RS256",
                        "claims": claims("alice", "trial-a", json!({"exp": now_s() - 3600}))},
            "early": {"kid": "k1", "alg": "RS256",
                      "claims": claims("alice", "trial-a", json!({"nbf": now_s() + 3600}))},
            "issuer": {"kid": "k1", "alg": "RS256",
                       "claims": claims("alice", "trial-a", json!({"iss": "https://evil.test"}))},
            "audience": {"kid": "k1", "alg": "RS256",
                         "claims": claims("alice", "trial-a", json!({"aud": "another-app"}))},
            "no_tenant": {"kid": "k1", "alg": "RS256",
                          "claims": claims("alice", "trial-a", json!({"radscore_tenant": null}))},
            "bad_tenant": {"kid": "k1", "alg": "RS256",
                           "claims": claims("alice", "../etc", json!({}))},
            "no_exp": {"kid": "k1", "alg": "RS256",
                       "claims": claims("alice", "trial-a", json!({"exp": null}))},
            "stranger": {"kid": "stranger", "alg": "RS256", "claims": claims("eve", "trial-a", json!({}))},
            "confused": {"kid": "k1", "alg": "HS256", "claims": claims("eve", "trial-a", json!({}))},
            "rotated": {"kid": "k2", "alg": "RS256", "claims": claims("alice", "trial-a", json!({}))},
        }),
    );
    let jwks = idp.path().join("jwks.json");
    let app = spawn_app_configured(2, |c| {
        c.oidc.jwks = Some(jwks.display().to_string());
        c.oidc.issuer = Some(ISSUER.to_string());
        c.oidc.audience = Some(AUDIENCE.to_string());
    })
    .await;

    let alice = TestApp::external(&app.base, &t["alice"]);
    let (series_id, _, _, _) = alice.upload_digital_phantom().await;
    let path = format!("/v1/series/{series_id}");
    assert_eq!(get_with(&app, &t["alice"], &path).await.0, 200);
    let (status, body, _) = get_with(&app, &t["bob"], &path).await;
    assert_eq!(status, 404, "another tenant's series is not found: {body}");
    let (status, body, _) = get_with(&app, &t["alice"], "/v1/audit").await;
    assert_problem(status, &body, 403, "forbidden", &["admin"]);
    let (status, audit, _) = get_with(&app, &t["carol"], "/v1/audit").await;
    assert_eq!(status, 200, "{audit}");
    let upload = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "series.upload" && e["object_id"] == series_id.as_str())
        .unwrap_or_else(|| panic!("upload not audited: {audit}"));
    assert_eq!(upload["key_id"], "oidc:alice", "{upload}");
    let (status, _) = app.get_json("/v1/models").await;
    assert_eq!(status, 200, "API keys still work");

    for (name, needle) in [
        ("expired", "expired"),
        ("early", "not valid yet"),
        ("issuer", "issuer"),
        ("audience", "audience"),
        ("no_tenant", "lacks the claim 'radscore_tenant'"),
        ("bad_tenant", "'radscore_tenant' is not a valid tenant"),
        ("no_exp", "lacks the claim 'exp'"),
        ("stranger", "kid stranger"),
        ("confused", "HS256"),
        ("rotated", "kid k2"),
    ] {
        let (status, body, challenge) = get_with(&app, &t[name], "/v1/models").await;
        assert_problem(status, &body, 401, "unauthorized", &[needle]);
        assert!(challenge.contains("invalid_token"), "{name}: {challenge}");
    }
    let (status, body, _) = get_with(&app, "not.a.jwt!", "/v1/models").await;
    assert_problem(
        status,
        &body,
        401,
        "unauthorized",
        &["API key is not valid"],
    );
}

/// A key set served over HTTP is fetched again when it is older than
/// RADSCORE_OIDC_JWKS_REFRESH_S and a token names a key it lacks: the provider's key
/// rotation needs no restart.
#[tokio::test]
async fn a_rotated_key_set_url_is_fetched_again() {
    let idp = tempfile::tempdir().unwrap();
    let t = sign(
        idp.path(),
        json!({ "rotated": {"kid": "k2", "alg": "RS256",
                            "claims": claims("alice", "trial-a", json!({}))} }),
    );
    let served = idp.path().join("served.json");
    std::fs::copy(idp.path().join("jwks.json"), &served).unwrap();
    let file = served.clone();
    let router = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let file = file.clone();
            async move { std::fs::read_to_string(file).unwrap() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let app = spawn_app_configured(2, |c| {
        c.oidc.jwks = Some(url);
        c.oidc.issuer = Some(ISSUER.to_string());
        c.oidc.audience = Some(AUDIENCE.to_string());
        c.oidc.jwks_refresh_s = 1;
    })
    .await;
    let (status, body, _) = get_with(&app, &t["rotated"], "/v1/models").await;
    assert_problem(status, &body, 401, "unauthorized", &["kid k2"]);

    std::fs::copy(idp.path().join("jwks-rotated.json"), &served).unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body, _) = get_with(&app, &t["rotated"], "/v1/models").await;
    assert_eq!(status, 200, "the rotated-in key is accepted: {body}");
}

/// A key set that cannot be read, or a missing issuer, stops `radscore serve` at startup
/// with a message naming the variable.
#[test]
fn a_bad_oidc_configuration_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_radscore"))
            .args(["serve", "--bind", "127.0.0.1:0", "--no-workers"])
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("db.sqlite").display()),
            )
            .env("RADSCORE_BLOB_DIR", dir.path().join("blobs"))
            .env("RADSCORE_MODEL_DIR", crate_dir().join("models/demo"))
            .envs(env.iter().copied())
            .output()
            .expect("radscore runs");
        assert!(!out.status.success(), "startup must fail for {env:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let missing = dir.path().join("missing-jwks.json");
    let stderr = serve(&[
        ("RADSCORE_OIDC_JWKS", missing.to_str().unwrap()),
        ("RADSCORE_OIDC_ISSUER", ISSUER),
        ("RADSCORE_OIDC_AUDIENCE", AUDIENCE),
    ]);
    assert!(
        stderr.contains("RADSCORE_OIDC_JWKS") && stderr.contains("missing-jwks.json"),
        "{stderr}"
    );
    let not_jwks = dir.path().join("not-jwks.json");
    std::fs::write(&not_jwks, b"{\"keys\": 7}").unwrap();
    let stderr = serve(&[
        ("RADSCORE_OIDC_JWKS", not_jwks.to_str().unwrap()),
        ("RADSCORE_OIDC_ISSUER", ISSUER),
        ("RADSCORE_OIDC_AUDIENCE", AUDIENCE),
    ]);
    assert!(stderr.contains("is not a JSON Web Key Set"), "{stderr}");
    let stderr = serve(&[
        ("RADSCORE_OIDC_JWKS", not_jwks.to_str().unwrap()),
        ("RADSCORE_OIDC_AUDIENCE", AUDIENCE),
    ]);
    assert!(
        stderr.contains("RADSCORE_OIDC_ISSUER must be set"),
        "{stderr}"
    );
}
