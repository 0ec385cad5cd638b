//! `openapi.yaml` and the router agree: every documented operation is routed, and every
//! route in `src/api/mod.rs` is documented.

use std::collections::BTreeSet;

use crate::helpers::*;

/// Every (METHOD, path) operation `openapi.yaml` documents.
pub(crate) fn spec_operations() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(crate_dir().join("openapi.yaml")).unwrap();
    let spec: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut ops = BTreeSet::new();
    for (path, item) in spec["paths"].as_mapping().unwrap() {
        for (method, _) in item.as_mapping().unwrap() {
            ops.insert((
                method.as_str().unwrap().to_uppercase(),
                path.as_str().unwrap().to_string(),
            ));
        }
    }
    ops
}

/// The route table as written in `src/api/mod.rs` (`.route("/path", get(..).post(..))`).
fn router_operations() -> BTreeSet<(String, String)> {
    let src = std::fs::read_to_string(crate_dir().join("src/api/mod.rs")).unwrap();
    let mut ops = BTreeSet::new();
    for line in src
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(".route(\""))
    {
        let path = line.split('"').nth(1).unwrap().to_string();
        for method in ["get", "post", "put", "delete", "patch"] {
            if line.contains(&format!(" {method}(")) || line.contains(&format!(".{method}(")) {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// Spec and router list the same operations, and each documented one is really routed.
#[tokio::test]
async fn spec_and_router_agree() {
    let spec = spec_operations();
    let router = router_operations();
    assert!(router.len() >= 10, "route table not found: {router:?}");
    assert_eq!(spec, router, "openapi.yaml vs src/api/mod.rs");

    let app = spawn_app().await;
    for (method, path) in &spec {
        let url = app.url(&path.replace("{id}", "does-not-exist"));
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = app.client.request(m, url).send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert!(
            !body.contains("/no-route") && !body.contains("/method-not-allowed"),
            "{method} {path}: {body}"
        );
        assert!(status < 500, "{method} {path} gave {status}: {body}");
    }
}
