//! Deletion and retention over HTTP: `DELETE /v1/series/{id}` and
//! `DELETE /v1/segmentations/{id}`, 409 while jobs use an upload, 410 Gone afterwards,
//! blobs removed, results of finished jobs kept; the retention purge of the worker pool.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

/// How long a test waits for the retention task to purge an expired upload.
const PURGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether any blob file lies under `dir` (a series prefix is a directory of instances).
fn has_blobs(path: &Path) -> bool {
    path.exists()
        && (path.is_file()
            || std::fs::read_dir(path)
                .unwrap()
                .any(|e| has_blobs(&e.unwrap().path())))
}

fn lesion_body(series_id: &str, seg_id: &str) -> Value {
    json!({"series_id": series_id, "segmentation_id": seg_id,
           "lesions": [{"label": 1, "location": "other"}]})
}

/// A queued job blocks deleting its series and segmentation (409 naming the job); once
/// it is cancelled the segmentation, then the series are deleted (204), their blobs are
/// gone, a GET answers 410 saying when and why, and new uploads or jobs that name them
/// are refused.
#[tokio::test]
async fn deletion_waits_for_unfinished_jobs_and_removes_blobs() {
    let app = spawn_app_with_workers(1024, 0).await;
    let (series_id, seg_id, _, _) = app.upload_digital_phantom().await;
    let series_blobs = app.blob_dir().join("series").join(&series_id);
    let seg_blob = app.blob_dir().join("segmentations").join(&seg_id);
    assert!(has_blobs(&series_blobs) && has_blobs(&seg_blob));
    let (status, _, job) = app.post_job(&lesion_body(&series_id, &seg_id)).await;
    assert_eq!(status, 202, "{job}");
    let job_id = job["id"].as_str().unwrap();

    for path in [
        format!("/v1/series/{series_id}"),
        format!("/v1/segmentations/{seg_id}"),
    ] {
        let (status, problem) = app.delete(&path).await;
        assert_problem(
            status,
            &problem,
            409,
            "upload-in-use",
            &[job_id, "queued or running"],
        );
        assert_eq!(problem["job_ids"], json!([job_id]), "{problem}");
    }
    let (status, _) = app.delete(&format!("/v1/jobs/{job_id}")).await;
    assert_eq!(status, 200, "cancel");

    let (status, body) = app.delete(&format!("/v1/segmentations/{seg_id}")).await;
    assert_eq!((status, &body), (204, &Value::Null));
    assert!(!has_blobs(&seg_blob), "segmentation blob removed");
    assert!(has_blobs(&series_blobs), "the series stays");
    let (status, problem) = app.get_json(&format!("/v1/segmentations/{seg_id}")).await;
    assert_problem(status, &problem, 410, "gone", &[&seg_id, "DELETE request"]);
    assert_eq!(problem["reason"], "deleted");
    assert!(
        problem["deleted_at"].as_str().unwrap().ends_with('Z'),
        "{problem}"
    );

    let (status, _) = app.delete(&format!("/v1/series/{series_id}")).await;
    assert_eq!(status, 204);
    assert!(!has_blobs(&series_blobs), "series blobs removed");
    let (status, problem) = app.get_json(&format!("/v1/series/{series_id}")).await;
    assert_problem(status, &problem, 410, "gone", &[&series_id, "deleted"]);
    let (status, problem) = app.delete(&format!("/v1/series/{series_id}")).await;
    assert_problem(status, &problem, 410, "gone", &[&series_id]);

    let (status, _, problem) = app.post_job(&lesion_body(&series_id, &seg_id)).await;
    assert_problem(
        status,
        &problem,
        422,
        "series-deleted",
        &[&series_id, "deleted"],
    );
    let mask =
        std::fs::read(shared_data().join("ibsi1/digital_phantom/nifti/mask/mask.nii.gz")).unwrap();
    let (status, problem) = app.post_segmentation(&series_id, mask, "mask.nii.gz").await;
    assert_problem(status, &problem, 422, "series-deleted", &[&series_id]);
}

/// Unknown ids answer 404 on DELETE, for both kinds.
#[tokio::test]
async fn deleting_unknown_uploads_is_404() {
    let app = spawn_app_with_workers(1024, 0).await;
    for path in ["/v1/series/nope", "/v1/segmentations/nope"] {
        let (status, problem) = app.delete(path).await;
        assert_problem(status, &problem, 404, "not-found", &["nope"]);
    }
}

/// Deleting a series deletes its segmentation too; the finished job's result document is
/// kept unchanged and its status stays readable.
#[tokio::test]
async fn deleting_a_series_keeps_finished_results() {
    let app = spawn_app().await;
    let (series_id, seg_id, _, _) = app.upload_digital_phantom().await;
    let result = app
        .run_job(
            &series_id,
            &seg_id,
            json!([{"label": 1, "location": "other"}]),
        )
        .await;
    let job_id = result["job_id"].as_str().unwrap().to_string();

    let (status, _) = app.delete(&format!("/v1/series/{series_id}")).await;
    assert_eq!(status, 204);
    let (status, problem) = app.get_json(&format!("/v1/segmentations/{seg_id}")).await;
    assert_problem(status, &problem, 410, "gone", &[&seg_id]);
    assert!(!has_blobs(
        &app.blob_dir().join("segmentations").join(&seg_id)
    ));

    let (status, kept) = app.get_json(&format!("/v1/jobs/{job_id}/result")).await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept, result, "the result document is kept as it was");
    let (status, job) = app.get_json(&format!("/v1/jobs/{job_id}")).await;
    assert_eq!((status, job["status"].as_str()), (200, Some("succeeded")));
}

/// With a retention period of a few seconds, the worker pool's retention task purges an
/// upload once its job has finished: GET answers 410 naming retention, the blobs are
/// gone, the result is kept.
#[tokio::test]
async fn retention_purges_uploads_after_their_jobs_finished() {
    let app = spawn_app_configured(2, |c| {
        c.retention_hours = 4.0 / 3600.0;
        c.retention_sweep_s = 1;
    })
    .await;
    let (series_id, seg_id, _, _) = app.upload_digital_phantom().await;
    let result = app
        .run_job(
            &series_id,
            &seg_id,
            json!([{"label": 1, "location": "other"}]),
        )
        .await;
    let job_id = result["job_id"].as_str().unwrap().to_string();

    let started = Instant::now();
    let problem = loop {
        let (status, body) = app.get_json(&format!("/v1/series/{series_id}")).await;
        if status == 410 {
            break body;
        }
        assert_eq!(status, 200, "{body}");
        assert!(started.elapsed() < PURGE_TIMEOUT, "series never purged");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_problem(410, &problem, 410, "gone", &[&series_id, "retention"]);
    assert_eq!(problem["reason"], "retention");
    let (status, problem) = app.get_json(&format!("/v1/segmentations/{seg_id}")).await;
    assert_problem(status, &problem, 410, "gone", &["retention"]);
    // The tombstones are written first, then the blobs go: wait for them.
    let blobs = [
        app.blob_dir().join("series").join(&series_id),
        app.blob_dir().join("segmentations").join(&seg_id),
    ];
    while blobs.iter().any(|b| has_blobs(b)) {
        assert!(started.elapsed() < PURGE_TIMEOUT, "blobs never removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (status, kept) = app.get_json(&format!("/v1/jobs/{job_id}/result")).await;
    assert_eq!((status, &kept), (200, &result));

    // The purge is in the tenant's audit log: the service acted, so no key id.
    let admin = app.as_tenant(TEST_TENANT, true).await;
    let (status, audit) = admin.get_json("/v1/audit").await;
    assert_eq!(status, 200, "{audit}");
    let purged = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "delete.series" && e["object_id"] == series_id.as_str())
        .unwrap_or_else(|| panic!("no audit event for the purge: {audit}"));
    assert_eq!(purged["detail"]["reason"], "retention", "{purged}");
    assert_eq!(purged["detail"]["uploads_removed"], 2, "{purged}");
    assert!(purged["key_id"].is_null(), "{purged}");
}

/// `radscore purge` (one pass by hand, here beside an API-only server) purges an upload
/// older than RADSCORE_RETENTION_HOURS and reports it; with retention off it purges
/// nothing.
#[tokio::test]
async fn the_purge_command_runs_one_retention_pass() {
    use crate::process::{sigterm, sqlite_url, start_server_with};

    let mut server = start_server_with(&["--no-workers"], &[]);
    let app = TestApp::external(&server.base, &server.key);
    let (series_id, seg_id, _, _) = app.upload_digital_phantom().await;
    let purge = |hours: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_radscore"))
            .arg("purge")
            .env("DATABASE_URL", sqlite_url(server.dir.path()))
            .env("RADSCORE_BLOB_DIR", server.dir.path().join("blobs"))
            .env("RADSCORE_RETENTION_HOURS", hours)
            .output()
            .expect("radscore purge runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("a JSON report")
    };

    let report = purge("0");
    assert_eq!(
        (
            report["series_purged"].as_u64(),
            report["segmentations_purged"].as_u64()
        ),
        (Some(0), Some(0))
    );
    let (status, _) = app.get_json(&format!("/v1/series/{series_id}")).await;
    assert_eq!(status, 200, "retention 0 keeps uploads");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = purge(&(1.0 / 3600.0).to_string());
    assert_eq!(report["series_purged"], 1, "{report}");
    let (status, problem) = app.get_json(&format!("/v1/series/{series_id}")).await;
    assert_problem(status, &problem, 410, "gone", &["retention"]);
    let (status, _) = app.get_json(&format!("/v1/segmentations/{seg_id}")).await;
    assert_eq!(status, 410);
    assert!(!has_blobs(
        &server.dir.path().join("blobs/series").join(&series_id)
    ));

    sigterm(&server.child);
    let _ = server.child.wait();
}

/// `radscore healthcheck` exits 0 while a server answers on RADSCORE_BIND (0.0.0.0 is
/// probed on loopback) and fails, saying why, when nothing listens there.
#[tokio::test]
async fn the_healthcheck_command_probes_healthz() {
    use crate::process::{sigterm, start_server_with};

    let mut server = start_server_with(&["--no-workers"], &[]);
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let probe = |bind: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_radscore"))
            .arg("healthcheck")
            .env("RADSCORE_BIND", bind)
            .output()
            .expect("radscore healthcheck runs")
    };
    let ok = probe(format!("0.0.0.0:{port}"));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    sigterm(&server.child);
    let _ = server.child.wait();
    let down = probe(format!("127.0.0.1:{port}"));
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).contains("connecting to 127.0.0.1"));
}

/// Rounds of [`a_job_and_a_deletion_of_its_series_never_both_succeed`].
const RACE_ROUNDS: usize = 16;

/// `POST /v1/jobs` and `DELETE /v1/series/{id}` sent at the same time (one of them
/// staggered by 0 to 2 ms) on fresh uploads: in every round exactly one of them wins —
/// 202 and a 409 naming the job, or a 422 `series-deleted` and 204 — unless the job had
/// already run when the deletion ran (workers are quick on the phantom): then it succeeded. Every job that won runs to success on a series
/// that still answers 200; the series of every round the deletion won answers 410.
#[tokio::test]
async fn a_job_and_a_deletion_of_its_series_never_both_succeed() {
    let app = spawn_app().await;
    // One DICOM conversion of the digital phantom, uploaded afresh every round.
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
    let zip = zip_files(&dicom_files(dicom_dir.path()));
    let mask = std::fs::read(phantom.join("mask/mask.nii.gz")).unwrap();

    let (mut jobs_won, mut deletions_won) = (Vec::new(), Vec::new());
    for round in 0..RACE_ROUNDS {
        let (status, series) = app.post_series_zip(zip.clone()).await;
        assert_eq!(status, 201, "{series}");
        let series_id = series["id"].as_str().unwrap().to_string();
        let (status, seg) = app
            .post_segmentation(&series_id, mask.clone(), "mask.nii.gz")
            .await;
        assert_eq!(status, 201, "{seg}");
        let body = lesion_body(&series_id, seg["id"].as_str().unwrap());
        let path = format!("/v1/series/{series_id}");
        // Even rounds hold the deletion back by 0 to 2 ms, odd rounds the job.
        let stagger = Duration::from_micros(500 * (round / 2 % 5) as u64);
        let (job_delay, delete_delay) = if round.is_multiple_of(2) {
            (Duration::ZERO, stagger)
        } else {
            (stagger, Duration::ZERO)
        };
        let ((job_status, _, job), (delete_status, deleted)) = tokio::join!(
            async {
                tokio::time::sleep(job_delay).await;
                app.post_job(&body).await
            },
            async {
                tokio::time::sleep(delete_delay).await;
                app.delete(&path).await
            }
        );
        match (job_status, delete_status) {
            (202, 409) => {
                let job_id = job["id"].as_str().unwrap().to_string();
                assert_problem(409, &deleted, 409, "upload-in-use", &[&job_id]);
                assert_eq!(deleted["job_ids"], json!([job_id]), "{deleted}");
                jobs_won.push((job_id, series_id));
            }
            (422, 204) => {
                // The series' segmentation goes with it: which of the two the job's
                // checks found deleted first depends on timing.
                let kind = if job["type"]
                    .as_str()
                    .unwrap_or_default()
                    .ends_with("/series-deleted")
                {
                    "series-deleted"
                } else {
                    "segmentation-deleted"
                };
                assert_problem(422, &job, 422, kind, &["was deleted by a DELETE request"]);
                deletions_won.push(series_id);
            }
            (202, 204) => {
                // Only right when the job had already run when the deletion took the
                // lock (its tombstone time is taken before, so times cannot tell): a job
                // whose upload was deleted under it fails, saying the series is gone.
                let job_id = job["id"].as_str().unwrap();
                let done = app.wait_for_job(&format!("/v1/jobs/{job_id}")).await;
                assert_eq!(
                    done["status"], "succeeded",
                    "round {round}: both the job and the deletion succeeded: {done}"
                );
            }
            _ => {
                panic!("round {round}: job {job_status} {job}, deletion {delete_status} {deleted}")
            }
        }
    }
    eprintln!(
        "{} of {RACE_ROUNDS} rounds: the job won; {} the deletion",
        jobs_won.len(),
        deletions_won.len()
    );
    for (job_id, series_id) in &jobs_won {
        let done = app.wait_for_job(&format!("/v1/jobs/{job_id}")).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        let (status, series) = app.get_json(&format!("/v1/series/{series_id}")).await;
        assert_eq!(
            status, 200,
            "the series of a job that won is kept: {series}"
        );
    }
    for series_id in &deletions_won {
        let (status, problem) = app.get_json(&format!("/v1/series/{series_id}")).await;
        assert_problem(status, &problem, 410, "gone", &[series_id]);
    }
}
