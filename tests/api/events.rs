//! `GET /v1/jobs/{id}/events`: job status and progress as Server-Sent Events until the job
//! has ended.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// Longest a stream may take in a test (a digital-phantom job takes seconds).
const STREAM_TIMEOUT: Duration = Duration::from_secs(120);

/// Read an SSE response to its end; the `data` of every `job` event, in order.
async fn read_events(app: &TestApp, job_id: &str) -> Vec<Value> {
    let mut resp = app
        .client
        .get(app.url(&format!("/v1/jobs/{job_id}/events")))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut text = String::new();
    tokio::time::timeout(STREAM_TIMEOUT, async {
        while let Some(chunk) = resp.chunk().await.expect("stream chunk") {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("the stream ends when the job has ended");

    let mut events = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut name = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        if name.as_deref() == Some("job") {
            events.push(serde_json::from_str(&data).expect("event data is JSON"));
        }
    }
    events
}

/// A job followed from creation: the events start queued or running, progress never goes
/// back, no two consecutive events are equal, and the last one shows it succeeded.
#[tokio::test]
async fn events_follow_a_job_until_it_succeeds() {
    let app = spawn_app().await;
    let (series_id, seg_id, _, _) = app.upload_digital_phantom().await;
    let (status, _, job) = app
        .post_job(&json!({
            "series_id": series_id, "segmentation_id": seg_id,
            "lesions": [{"label": 1, "location": "pleura"}],
        }))
        .await;
    assert_eq!(status, 202, "{job}");
    let events = read_events(&app, job["id"].as_str().unwrap()).await;

    assert!(!events.is_empty());
    let first = events[0]["status"].as_str().unwrap();
    assert!(matches!(first, "queued" | "running"), "{first}");
    let last = events.last().unwrap();
    assert_eq!(last["status"], "succeeded", "{last}");
    assert_eq!(last["progress"], 1.0);
    assert!(last["result_url"].is_string());
    let progress: Vec<f64> = events
        .iter()
        .map(|e| e["progress"].as_f64().unwrap())
        .collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert!(events.windows(2).all(|w| w[0] != w[1]), "repeated event");
}

/// A job that has already ended gives exactly one event and the stream ends; an unknown
/// job is a 404 problem.
#[tokio::test]
async fn events_of_a_finished_job_end_at_once_and_unknown_jobs_404() {
    let app = spawn_app().await;
    let (series_id, seg_id, _, _) = app.upload_digital_phantom().await;
    let result = app
        .run_job(
            &series_id,
            &seg_id,
            json!([{"label": 1, "location": "pleura"}]),
        )
        .await;
    let events = read_events(&app, result["job_id"].as_str().unwrap()).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["status"], "succeeded");
    assert!(
        events[0]["delivery"].is_null(),
        "no push destination configured"
    );

    let resp = app
        .client
        .get(app.url("/v1/jobs/nope/events"))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(resp).await;
    assert_problem(status, &body, 404, "not-found", &["nope"]);
}
