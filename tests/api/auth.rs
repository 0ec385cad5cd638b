//! Authentication: every route but the probes and metrics needs a valid API key (Bearer or
//! X-Api-Key), answers 401 problem+json with a challenge otherwise; keys are managed by
//! `radscore keys`; `RADSCORE_AUTH=disabled` serves without keys; per-key rate limits
//! answer 429 with Retry-After.

use std::process::Command;

use crate::helpers::*;
use crate::openapi::spec_operations;

/// Operations served without a key.
const PUBLIC: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// A key in the right format that no server issued.
const FORGED_KEY: &str =
    "rsk_0123456789abcdef_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

async fn send(
    client: &reqwest::Client,
    method: &str,
    url: String,
) -> (u16, Option<String>, serde_json::Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let resp = client.request(m, url).send().await.unwrap();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let (status, body) = status_json(resp).await;
    (status, challenge, body)
}

/// Without a key, or with a forged one, every protected operation answers 401 with a
/// Bearer challenge before it looks at the request; the probes and metrics need none.
#[tokio::test]
async fn every_protected_route_requires_a_valid_key() {
    let app = spawn_app().await;
    let anonymous = reqwest::Client::new();
    let forged = authed_client(FORGED_KEY);
    for (method, path) in spec_operations() {
        let url = app.url(&path.replace("{id}", "x").replace("{study}", "1.2"));
        if PUBLIC.contains(&path.as_str()) {
            let resp = anonymous.get(&url).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200, "{path} is public");
            continue;
        }
        let (status, challenge, body) = send(&anonymous, &method, url.clone()).await;
        assert_problem(status, &body, 401, "unauthorized", &["requires an API key"]);
        assert_eq!(
            challenge.as_deref(),
            Some("Bearer realm=\"radscore\""),
            "{path}"
        );
        let (status, challenge, body) = send(&forged, &method, url).await;
        assert_problem(status, &body, 401, "unauthorized", &["not valid"]);
        assert!(
            challenge.unwrap().contains("error=\"invalid_token\""),
            "{method} {path}"
        );
    }
}

/// A key works as `Authorization: Bearer` (any case) and as `X-Api-Key`, until it is
/// revoked; malformed headers are refused.
#[tokio::test]
async fn keys_work_in_both_headers_until_revoked() {
    let app = spawn_app().await;
    let url = app.url("/v1/models");
    let plain = reqwest::Client::new();
    for (header, value) in [
        ("authorization", format!("Bearer {}", app.key)),
        ("authorization", format!("bearer {}", app.key)),
        ("x-api-key", app.key.clone()),
    ] {
        let resp = plain.get(&url).header(header, value).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{header}");
    }
    for (header, value) in [
        ("authorization", format!("Basic {}", app.key)),
        ("authorization", app.key.clone()),
        ("x-api-key", format!("{}0", app.key)),
        ("x-api-key", "rsk_short_key".to_string()),
    ] {
        let resp = plain.get(&url).header(header, value).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{header}");
    }

    let id = app.key.split('_').nth(1).unwrap();
    let db = app.db.as_ref().unwrap();
    assert!(
        db.revoke_api_key(id, radscore::store::now_ms())
            .await
            .unwrap()
    );
    let (status, _, body) = send(&app.client, "GET", url).await;
    assert_problem(status, &body, 401, "unauthorized", &["revoked"]);
}

fn radscore_cli(database_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_radscore"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .output()
        .expect("radscore runs")
}

/// `radscore keys create|list|revoke`: the key is printed once and listed by id only;
/// a revoked key is listed as revoked and cannot be revoked twice.
#[tokio::test]
async fn keys_cli_creates_lists_and_revokes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let key = cli_key(&url, "trial-7", true);
    let id = key
        .split('_')
        .nth(1)
        .expect("rsk_<id>_<secret>")
        .to_string();
    assert_eq!(key.len(), "rsk_".len() + 16 + 1 + 64, "{key}");

    let list = radscore_cli(&url, &["keys", "list"]);
    let text = String::from_utf8(list.stdout).unwrap();
    assert!(list.status.success());
    let line = text
        .lines()
        .find(|l| l.starts_with(&id))
        .expect("key listed");
    assert!(line.contains("trial-7") && line.contains("active") && line.contains("admin"));
    assert!(!text.contains(&key[20..]), "the secret is never listed");

    assert!(
        radscore_cli(&url, &["keys", "revoke", &id])
            .status
            .success()
    );
    let again = radscore_cli(&url, &["keys", "revoke", &id]);
    assert!(!again.status.success(), "revoked once");
    let text = String::from_utf8(radscore_cli(&url, &["keys", "list"]).stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with(&id) && l.contains("revoked"))
    );

    let bad = radscore_cli(&url, &["keys", "create", "--tenant", "no spaces"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a valid tenant name"));
}

/// `RADSCORE_AUTH=disabled`: no key needed (local demos).
#[tokio::test]
async fn disabled_auth_serves_without_a_key() {
    let app = spawn_app_configured(0, |c| {
        c.auth = radscore::api::auth::AuthMode::Disabled;
    })
    .await;
    let resp = reqwest::Client::new()
        .get(app.url("/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

/// With a limit of 3 requests a minute, a key's 4th request gets 429 with Retry-After,
/// while another key and the probes are unaffected.
#[tokio::test]
async fn rate_limit_is_per_key_with_retry_after() {
    let app = spawn_app_configured(0, |c| c.rate_limit_per_min = 3).await;
    for _ in 0..3 {
        let resp = app.client.get(app.url("/v1/models")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    let resp = app.client.get(app.url("/v1/models")).send().await.unwrap();
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let (status, body) = status_json(resp).await;
    assert_problem(status, &body, 429, "rate-limited", &["retry in"]);

    let other = app.as_tenant(TEST_TENANT, false).await;
    let resp = other
        .client
        .get(app.url("/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "limits are per key");
    let resp = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "probes are not limited");
}
