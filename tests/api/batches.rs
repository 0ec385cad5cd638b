//! `POST /v1/batches` and `GET /v1/batches/{id}`: many jobs in one request, validated up
//! front, one status for all of them.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

/// How long a small batch may take before the test calls it stuck.
const BATCH_TIMEOUT: Duration = Duration::from_secs(180);

async fn upload_demo_case(app: &TestApp) -> (String, String, Vec<u8>) {
    app.upload_demo_case(3).await
}

async fn post_batch(app: &TestApp, body: &Value, key: Option<&str>) -> (u16, Value) {
    let mut req = app.client.post(app.url("/v1/batches")).json(body);
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    status_json(req.send().await.unwrap()).await
}

/// A batch with one bad entry is refused whole, naming the entry; a good batch runs every
/// job, replays under its idempotency key and reports one status with per-job links.
#[tokio::test]
async fn batch_is_validated_up_front_and_reports_one_status() {
    let app = spawn_app().await;
    let (series_id, seg_id, labels) = upload_demo_case(&app).await;
    let job = |label: u32| {
        json!({"series_id": series_id, "segmentation_id": seg_id,
               "lesions": [{"label": label, "location": "other"}]})
    };
    // Two jobs: the test server's queue holds at most MAX_QUEUED_JOBS_IN_TESTS (3).
    let labels = &labels[..2];
    let good: Vec<Value> = labels.iter().map(|&l| job(u32::from(l))).collect();

    let mut bad = good.clone();
    bad.push(json!({"series_id": series_id, "segmentation_id": "nope", "lesions": []}));
    let (status, problem) = post_batch(&app, &json!({ "jobs": bad }), None).await;
    assert_eq!(status, 422, "{problem}");
    let bad_index = good.len();
    assert_eq!(problem["job_index"], bad_index);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("jobs[{bad_index}]"))
    );
    let (status, problem) = post_batch(&app, &json!({ "jobs": [] }), None).await;
    assert_eq!(status, 422, "{problem}");

    let body = json!({ "jobs": good });
    let (status, batch) = post_batch(&app, &body, Some("batch-1")).await;
    assert_eq!(status, 202, "{batch}");
    let id = batch["id"].as_str().unwrap().to_string();
    assert_eq!(batch["job_count"], labels.len());
    let (status, again) = post_batch(&app, &body, Some("batch-1")).await;
    assert_eq!((status, again["id"].as_str()), (202, Some(id.as_str())));
    let other = json!({ "jobs": [job(u32::from(labels[0]))] });
    let (status, _) = post_batch(&app, &other, Some("batch-1")).await;
    assert_eq!(status, 409);

    let started = Instant::now();
    let done = loop {
        let resp = app
            .client
            .get(app.url(&format!("/v1/batches/{id}")))
            .send()
            .await;
        let (status, doc) = status_json(resp.unwrap()).await;
        assert_eq!(status, 200, "{doc}");
        let counts = &doc["counts"];
        let total: u64 = ["queued", "running", "succeeded", "failed", "cancelled"]
            .iter()
            .map(|s| counts[s].as_u64().unwrap())
            .sum();
        assert_eq!(total, labels.len() as u64, "{doc}");
        if doc["status"] == "finished" {
            break doc;
        }
        assert!(started.elapsed() < BATCH_TIMEOUT, "batch stuck: {doc}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["counts"]["succeeded"], labels.len(), "{done}");
    assert_eq!(done["progress"], 1.0);
    for entry in done["jobs"].as_array().unwrap() {
        let url = entry["result_url"].as_str().expect("result link");
        let resp = app.client.get(app.url(url)).send().await.unwrap();
        let (status, result) = status_json(resp).await;
        assert_eq!(status, 200, "{result}");
        assert_eq!(result["job_id"], entry["id"]);
    }
    let resp = app
        .client
        .get(app.url("/v1/batches/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(status_json(resp).await.0, 404);
}
