//! `GET /v1/jobs/{id}/result.dcm`: the DICOM SR measurement report (TID 1500) of a job,
//! read back by independent tools: highdicom (`tests/support/sr_check.py`: every value,
//! code and reference) and dcmtk's `dsrdump` (the SR tree decodes without error).

use std::path::Path;
use std::process::Command;

use serde_json::{Map, Value, json};

use crate::helpers::*;

/// Fetch the report; (status, content type, body).
async fn get_report(app: &TestApp, job_id: &str) -> (u16, String, Vec<u8>) {
    let resp = app
        .client
        .get(app.url(&format!("/v1/jobs/{job_id}/result.dcm")))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let media = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, media, resp.bytes().await.unwrap().to_vec())
}

/// radscore's code of every feature of the result, for the checker to find each value.
fn feature_codes(result: &Value) -> Value {
    let mut codes = Map::new();
    for lesion in result["lesions"].as_array().unwrap() {
        for tag in lesion["features"].as_object().unwrap().keys() {
            let c = radscore::sr::codes::feature_concept(tag);
            codes.insert(
                tag.clone(),
                json!({
                    "value": c.name.value, "scheme": c.name.scheme, "meaning": c.name.meaning,
                    "unit": c.unit.value, "derivation": c.derivation.map(|d| d.value),
                }),
            );
        }
    }
    Value::Object(codes)
}

/// Run sr_check.py (highdicom) and dsrdump (dcmtk) on the report; returns the checker's
/// summary line.
async fn check_report(
    report: Vec<u8>,
    result: &Value,
    source_dir: &Path,
    segmentation: Option<(&Path, &str)>,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let sr_path = dir.path().join("report.dcm");
    std::fs::write(&sr_path, report).unwrap();
    let expected = json!({ "result": result, "feature_codes": feature_codes(result) });
    let expected_path = dir.path().join("expected.json");
    std::fs::write(&expected_path, serde_json::to_vec(&expected).unwrap()).unwrap();

    let mut args = vec![
        "--sr".to_owned(),
        sr_path.display().to_string(),
        "--expected".to_owned(),
        expected_path.display().to_string(),
        "--source-dir".to_owned(),
        source_dir.display().to_string(),
    ];
    if let Some((path, kind)) = segmentation {
        args.extend([
            "--segmentation".to_owned(),
            path.display().to_string(),
            "--segmentation-kind".to_owned(),
            kind.to_owned(),
        ]);
    }
    let summary = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_support("sr_check.py", &args)
    })
    .await
    .unwrap();

    // dcmtk's SR decoder checks the document tree against the IOD's rules.
    let dump = Command::new("dsrdump")
        .arg("-Ee")
        .arg(&sr_path)
        .output()
        .expect("dsrdump (dcmtk, installed by scripts/setup.sh) runs");
    let stderr = String::from_utf8_lossy(&dump.stderr);
    assert!(
        dump.status.success() && !stderr.contains("E:"),
        "dsrdump failed: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&dump.stdout);
    assert!(stdout.contains("Imaging Measurement Report"), "{stdout}");
    summary
}

/// The CT phantom with a two-segment DICOM SEG (GTV-1 and a box): the report references
/// both segments by number, the source series and the SEG; every probability and feature
/// value round-trips exactly through highdicom; dsrdump decodes it.
#[tokio::test]
async fn seg_job_report_round_trips_through_highdicom_and_dcmtk() {
    let app = spawn_app().await;
    let source_dir = ct_phantom().join("dicom/image");
    let files = dicom_files(&source_dir);
    let (status, series) = app.post_series_zip(zip_files(&files)).await;
    assert_eq!(status, 201, "{series}");
    let series_id = series["id"].as_str().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let seg_path = dir.path().join("mask.seg.dcm");
    let mask = ct_phantom().join("nifti/mask/mask.nii.gz");
    run_support(
        "make_seg.py",
        &[
            "--series",
            source_dir.to_str().unwrap(),
            "--mask",
            mask.to_str().unwrap(),
            "--box",
            "20,30,80,100,80,100",
            "--out",
            seg_path.to_str().unwrap(),
        ],
    );
    let (status, seg) = app
        .post_segmentation(series_id, std::fs::read(&seg_path).unwrap(), "mask.seg.dcm")
        .await;
    assert_eq!(status, 201, "{seg}");
    let lesions = json!([
        {"label": 1, "location": "pleura"},
        {"label": 2, "location": "lymph_node"},
    ]);
    let result = app
        .run_job(series_id, seg["id"].as_str().unwrap(), lesions)
        .await;
    let job_id = result["job_id"].as_str().unwrap();

    let (status, media, report) = get_report(&app, job_id).await;
    assert_eq!(status, 200);
    assert_eq!(media, "application/dicom");
    let (_, _, again) = get_report(&app, job_id).await;
    assert_eq!(report, again, "the report of a job is reproducible");
    let summary = check_report(report, &result, &source_dir, Some((&seg_path, "seg"))).await;
    assert!(summary.starts_with("ok 2 lesions"), "{summary}");
}

/// The IBSI digital phantom with a NIfTI mask (no DICOM segmentation to reference) and
/// the location `other` (no finding site): groups without ROI references still carry
/// every value.
#[tokio::test]
async fn nifti_job_report_has_groups_without_segment_references() {
    let app = spawn_app().await;
    let dicom_dir = tempfile::tempdir().unwrap();
    let phantom = shared_data().join("ibsi1/digital_phantom/nifti");
    run_support(
        "nifti_to_dicom.py",
        &[
            "--image",
            phantom.join("image/phantom.nii.gz").to_str().unwrap(),
            "--out-dir",
            dicom_dir.path().to_str().unwrap(),
        ],
    );
    let (status, series) = app
        .post_series_zip(zip_files(&dicom_files(dicom_dir.path())))
        .await;
    assert_eq!(status, 201, "{series}");
    let series_id = series["id"].as_str().unwrap();
    let mask = std::fs::read(phantom.join("mask/mask.nii.gz")).unwrap();
    let (status, seg) = app.post_segmentation(series_id, mask, "mask.nii.gz").await;
    assert_eq!(status, 201, "{seg}");
    let result = app
        .run_job(
            series_id,
            seg["id"].as_str().unwrap(),
            json!([{"label": 1, "location": "other"}]),
        )
        .await;
    let (status, _, report) = get_report(&app, result["job_id"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let summary = check_report(report, &result, dicom_dir.path(), None).await;
    assert!(summary.starts_with("ok 1 lesions"), "{summary}");
}

/// A job that has not succeeded has no report (409 naming its status); an unknown job 404.
#[tokio::test]
async fn report_of_unfinished_or_unknown_job_is_refused() {
    let app = spawn_app_with_workers(1024, 0).await;
    let (series_id, seg_id, _, _) = app.upload_digital_phantom().await;
    let (status, _, job) = app
        .post_job(&json!({
            "series_id": series_id, "segmentation_id": seg_id,
            "lesions": [{"label": 1, "location": "pleura"}],
        }))
        .await;
    assert_eq!(status, 202, "{job}");
    let resp = app
        .client
        .get(app.url(&format!(
            "/v1/jobs/{}/result.dcm",
            job["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(resp).await;
    assert_problem(status, &body, 409, "job-not-succeeded", &["queued"]);

    let resp = app
        .client
        .get(app.url("/v1/jobs/nope/result.dcm"))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(resp).await;
    assert_problem(status, &body, 404, "not-found", &["nope"]);
}
