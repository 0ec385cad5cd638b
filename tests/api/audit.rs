//! The audit trail: uploads, jobs, cancels, result reads and batches are recorded with
//! tenant, key id and request id; admin keys read their tenant's events over HTTP;
//! `radscore audit export` writes valid JSON lines without patient identifiers or keys.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::*;

/// Run a job, cancel another, create a batch: every action appears once with its object
/// and the caller's key id; the export is valid JSONL without PHI or key material.
#[tokio::test]
async fn actions_are_audited_and_exported_as_jsonl_without_phi() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let case =
        radscore::demo::generate(dir.path(), 11, &radscore::demo::DemoOptions::default()).unwrap();
    let (_, series) = app
        .post_series_zip(std::fs::read(&case.series_zip).unwrap())
        .await;
    let series_id = series["id"].as_str().unwrap().to_string();
    let labelmap = std::fs::read(&case.labelmap).unwrap();
    let (_, seg) = app
        .post_segmentation(&series_id, labelmap, "l.nii.gz")
        .await;
    let seg_id = seg["id"].as_str().unwrap().to_string();
    let lesions = json!([{ "label": case.lesions[0].label, "location": "other" }]);
    app.run_job(&series_id, &seg_id, lesions.clone()).await;
    let body = json!({ "series_id": series_id, "segmentation_id": seg_id, "lesions": lesions });
    let (status, _, job) = app.post_job(&body).await;
    assert_eq!(status, 202, "{job}");
    let cancel = app
        .client
        .delete(app.url(&format!("/v1/jobs/{}", job["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    let cancelled = cancel.status().as_u16();
    let resp = app
        .client
        .post(app.url("/v1/batches"))
        .json(&json!({ "jobs": [body] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);

    // Over HTTP: admin keys only.
    let (status, body) =
        status_json(app.client.get(app.url("/v1/audit")).send().await.unwrap()).await;
    assert_problem(status, &body, 403, "forbidden", &["admin key"]);
    let admin = app.as_tenant(TEST_TENANT, true).await;
    let (status, audit) = status_json(
        admin
            .client
            .get(admin.url("/v1/audit"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{audit}");
    let events = audit["events"].as_array().unwrap();
    let actions: BTreeSet<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    let mut expected = vec![
        "series.upload",
        "segmentation.upload",
        "job.create",
        "result.read",
        "batch.create",
    ];
    if cancelled == 200 {
        expected.push("job.cancel");
    }
    for action in expected {
        assert!(actions.contains(action), "{action} not audited: {audit}");
    }
    let key_id = app.key.split('_').nth(1).unwrap();
    let upload = events
        .iter()
        .find(|e| e["action"] == "series.upload")
        .unwrap();
    assert_eq!(upload["object_id"], series_id.as_str());
    assert_eq!(upload["key_id"], key_id);
    assert_eq!(upload["tenant"], TEST_TENANT);
    assert!(
        upload["request_id"].as_str().is_some_and(|r| !r.is_empty()),
        "{upload}"
    );
    let (status, later) = status_json(
        admin
            .client
            .get(admin.url("/v1/audit?since=2999-01-01T00:00:00Z"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(later["events"].as_array().unwrap().is_empty(), "{later}");
    let (status, bad) = status_json(
        admin
            .client
            .get(admin.url("/v1/audit?since=yesterday"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_problem(status, &bad, 400, "invalid-since", &["RFC 3339"]);

    // The CLI export: one JSON object per line, the same events, nothing identifying.
    let url = format!("sqlite://{}", app._dir.path().join("radscore.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_radscore"))
        .args([
            "audit",
            "export",
            "--tenant",
            TEST_TENANT,
            "--since",
            "2000-01-01T00:00:00Z",
        ])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), events.len(), "{text}");
    assert!(
        lines
            .iter()
            .all(|l| l["tenant"] == TEST_TENANT && l["time"].is_string())
    );
    for needle in [
        radscore::demo::PATIENT_NAME,
        case.patient_id.as_str(),
        &app.key[20..],
    ] {
        assert!(!text.contains(needle), "'{needle}' in the audit export");
    }
}
