//! `/metrics` after a job: Prometheus text with queue depth, jobs by state, real
//! histograms for job, feature-extraction and model-inference latency, and upload bytes.

use serde_json::json;

use crate::helpers::*;

/// The value of the first sample whose line starts with `series` (name plus labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// After one job on the digital phantom, every operational metric is exported with its
/// Prometheus type, and the values account for this test's upload and job. The recorder is
/// shared by every test in this binary, so counters are checked as lower bounds.
#[tokio::test]
async fn metrics_after_a_job_cover_queue_jobs_latency_and_uploads() {
    let app = spawn_app().await;
    let (series_id, seg_id, _, uploaded_bytes) = app.upload_digital_phantom().await;
    app.run_job(
        &series_id,
        &seg_id,
        json!([{"label": 1, "location": "other"}]),
    )
    .await;

    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();

    for (name, kind) in [
        ("radscore_queue_depth", "gauge"),
        ("radscore_jobs", "gauge"),
        ("radscore_jobs_finished_total", "counter"),
        ("radscore_upload_bytes_total", "counter"),
        ("radscore_job_duration_seconds", "histogram"),
        ("radscore_feature_extraction_seconds", "histogram"),
        ("radscore_model_inference_seconds", "histogram"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}")),
            "{name} is not a {kind}:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no HELP:\n{text}"
        );
    }
    assert!(sample(&text, "radscore_queue_depth").is_some(), "{text}");
    assert!(
        sample(&text, "radscore_jobs{status=\"succeeded\"}") >= Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, "radscore_jobs_finished_total{status=\"succeeded\"}") >= Some(1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "radscore_job_duration_seconds_bucket{status=\"succeeded\",le=\"+Inf\"}"
        ) >= Some(1.0),
        "{text}"
    );
    for histogram in [
        "radscore_feature_extraction_seconds",
        "radscore_model_inference_seconds",
    ] {
        assert!(
            sample(&text, &format!("{histogram}_bucket{{le=\"+Inf\"}}")) >= Some(1.0),
            "{text}"
        );
        assert!(
            sample(&text, &format!("{histogram}_sum")) > Some(0.0),
            "{text}"
        );
    }
    let series_bytes = sample(&text, "radscore_upload_bytes_total{kind=\"series\"}").unwrap_or(0.0);
    let seg_bytes =
        sample(&text, "radscore_upload_bytes_total{kind=\"segmentation\"}").unwrap_or(0.0);
    assert!(series_bytes + seg_bytes >= uploaded_bytes as f64, "{text}");
}
