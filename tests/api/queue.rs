//! Job queue behaviour over HTTP: idempotent creation and cancellation.

use serde_json::{Value, json};

use crate::helpers::*;

/// Upload the digital phantom (as DICOM) and its mask; returns (series id, segmentation id).
async fn phantom_inputs(app: &TestApp) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let phantom = shared_data().join("ibsi1/digital_phantom/nifti");
    run_support(
        "nifti_to_dicom.py",
        &[
            "--image",
            phantom.join("image/phantom.nii.gz").to_str().unwrap(),
            "--out-dir",
            dir.path().to_str().unwrap(),
        ],
    );
    let (status, series) = app.post_series_multipart(&dicom_files(dir.path())).await;
    assert_eq!(status, 201, "{series}");
    let series_id = series["id"].as_str().unwrap().to_string();
    let mask = std::fs::read(phantom.join("mask/mask.nii.gz")).unwrap();
    let (status, seg) = app.post_segmentation(&series_id, mask, "mask.nii.gz").await;
    assert_eq!(status, 201, "{seg}");
    (series_id, seg["id"].as_str().unwrap().to_string())
}

async fn post_with_key(app: &TestApp, key: &str, body: &Value) -> (u16, Option<String>, Value) {
    let resp = app
        .client
        .post(app.url("/v1/jobs"))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let location = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    let (status, json) = status_json(resp).await;
    (status, location, json)
}

/// A retried creation with the same Idempotency-Key returns the same job; the same key
/// with another body is a 409; a queued job can be cancelled once, then 409.
#[tokio::test]
async fn idempotent_creation_and_cancellation() {
    let app = spawn_app_with_workers(1024, 0).await;
    let (series_id, seg_id) = phantom_inputs(&app).await;
    let body = json!({"series_id": series_id, "segmentation_id": seg_id,
                      "lesions": [{"label": 1, "location": "other"}]});

    let (s1, loc1, job1) = post_with_key(&app, "retry-42", &body).await;
    let (s2, loc2, job2) = post_with_key(&app, "retry-42", &body).await;
    assert_eq!((s1, s2), (202, 202), "{job1} {job2}");
    assert_eq!(
        job1["id"], job2["id"],
        "a retry must not create a second job"
    );
    assert_eq!(loc1, loc2);

    let mut other = body.clone();
    other["lesions"][0]["location"] = json!("pleura");
    let (status, _, problem) = post_with_key(&app, "retry-42", &other).await;
    assert_problem(
        status,
        &problem,
        409,
        "idempotency-key-reused",
        &["different request"],
    );

    let location = loc1.unwrap();
    let resp = app.client.delete(app.url(&location)).send().await.unwrap();
    let (status, cancelled) = status_json(resp).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");

    let resp = app.client.delete(app.url(&location)).send().await.unwrap();
    let (status, problem) = status_json(resp).await;
    assert_problem(status, &problem, 409, "job-finished", &["cancelled"]);
    let resp = app
        .client
        .get(app.url(&format!("{location}/result")))
        .send()
        .await
        .unwrap();
    let (status, problem) = status_json(resp).await;
    assert_problem(status, &problem, 409, "job-cancelled", &[]);
}

/// With the queue at its bound, job creation answers 429 with Retry-After, but a client
/// retry with an Idempotency-Key that is already stored still gets its job back.
#[tokio::test]
async fn full_queue_answers_429_with_retry_after() {
    let app = spawn_app_with_workers(1024, 0).await;
    let (series_id, seg_id) = phantom_inputs(&app).await;
    let body = json!({"series_id": series_id, "segmentation_id": seg_id,
                      "lesions": [{"label": 1, "location": "other"}]});
    let (status, first_id, job) = post_with_key(&app, "retry-when-full", &body).await;
    assert_eq!(status, 202, "{job}");
    for _ in 1..MAX_QUEUED_JOBS_IN_TESTS {
        let (status, _, job) = app.post_job(&body).await;
        assert_eq!(status, 202, "{job}");
    }
    let (status, retried_id, job) = post_with_key(&app, "retry-when-full", &body).await;
    assert_eq!(
        status, 202,
        "a retry of a stored job is not refused by backpressure: {job}"
    );
    assert_eq!(retried_id, first_id);
    let resp = app
        .client
        .post(app.url("/v1/jobs"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let (status, problem) = status_json(resp).await;
    assert_problem(status, &problem, 429, "queue-full", &["already queued"]);
    assert_eq!(retry_after.as_deref(), Some("30"));
}
