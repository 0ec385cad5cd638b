//! S3-compatible blob storage end to end: an API process (`serve --no-workers`) and a
//! separate `radscore worker` process share one database and one bucket on a real moto
//! server, as replicas on different machines would; nothing touches a local blob directory.

use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::helpers::*;
use crate::moto::{self, MotoServer};
use crate::process::{sigterm, sqlite_url, start_server_with};

const BUCKET: &str = "radscore-blobs";
const PREFIX: &str = "site-a";

/// The environment that points a radscore process at the moto bucket.
fn s3_env(moto: &MotoServer) -> Vec<(&'static str, String)> {
    vec![
        ("RADSCORE_BLOB_URL", format!("s3://{BUCKET}/{PREFIX}")),
        ("RADSCORE_S3_ENDPOINT", moto.endpoint.clone()),
        ("RADSCORE_S3_ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID.into()),
        ("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY.into()),
        ("AWS_REGION", moto::REGION.into()),
    ]
}

/// A worker process that is killed when dropped.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Upload a DICOM series and its mask through an API process whose blobs are in S3, run the
/// job on a worker process with another (absent) blob directory, read the result, then
/// delete the series and its objects.
#[tokio::test]
async fn upload_job_and_result_with_s3_blobs_across_processes() {
    let moto = MotoServer::start();
    moto.create_bucket(BUCKET).await;
    let env = s3_env(&moto);
    let mut api = start_server_with(&["--no-workers"], &env);
    let worker_blob_dir = tempfile::tempdir().unwrap();
    let worker = Worker(
        Command::new(env!("CARGO_BIN_EXE_radscore"))
            .args(["worker", "--workers", "1"])
            .env("DATABASE_URL", sqlite_url(api.dir.path()))
            .env("RADSCORE_BLOB_DIR", worker_blob_dir.path().join("unused"))
            .env("RADSCORE_MODEL_DIR", crate_dir().join("models/demo"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("worker starts"),
    );
    let app = TestApp::external(&api.base, &api.key);

    let (status, ready) =
        status_json(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["blob_store"], "ok", "{ready}");

    let (series_id, seg_id, instance_count, _) = app.upload_digital_phantom().await;
    let (series_id, seg_id) = (series_id.as_str(), seg_id.as_str());

    // The blobs are in the bucket under the prefix, and not on the local disk.
    let keys = moto.keys(BUCKET).await;
    let series_keys = keys
        .iter()
        .filter(|k| k.starts_with(&format!("{PREFIX}/series/{series_id}/")))
        .count();
    assert_eq!(series_keys, instance_count, "{keys:?}");
    assert!(
        keys.contains(&format!("{PREFIX}/segmentations/{seg_id}")),
        "{keys:?}"
    );
    assert!(
        !api.dir.path().join("blobs").exists(),
        "local blob directory was used"
    );

    // The worker process reads them back from S3 and computes the job.
    let result: Value = app
        .run_job(
            series_id,
            seg_id,
            json!([{"label": 1, "location": "other"}]),
        )
        .await;
    let lesion = &result["lesions"][0];
    assert_eq!(lesion["status"], "ok", "{result}");
    assert!(
        lesion["response_probability"].as_f64().is_some(),
        "{result}"
    );
    assert!(!worker_blob_dir.path().join("unused").exists());

    // Deleting the series removes its objects and its segmentation's from the bucket and
    // nothing else; the result stays.
    let (status, _) = app.delete(&format!("/v1/series/{series_id}")).await;
    assert_eq!(status, 204);
    let keys = moto.keys(BUCKET).await;
    assert!(
        !keys
            .iter()
            .any(|k| k.contains(series_id) || k.contains(seg_id)),
        "objects left after DELETE: {keys:?}"
    );
    let (status, kept) = app
        .get_json(&format!(
            "/v1/jobs/{}/result",
            result["job_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!((status, &kept), (200, &result));

    drop(worker);
    sigterm(&api.child);
    let _ = api.child.wait();
}
