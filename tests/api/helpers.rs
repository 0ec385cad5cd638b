//! Test harness: spawn the app, upload helpers, reference-data paths, Python helpers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use radscore::config::Config;
use reqwest::Client;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Queue bound of test servers: small, so backpressure is testable with few jobs.
pub const MAX_QUEUED_JOBS_IN_TESTS: u64 = 3;

/// How long a job may take in a test before it is considered stuck.
const JOB_TIMEOUT: Duration = Duration::from_secs(120);

/// The tenant of the key every [`TestApp`] client sends.
pub const TEST_TENANT: &str = "test";

/// A running server. Its `client` sends an API key of [`TEST_TENANT`] on every request.
pub struct TestApp {
    pub base: String,
    pub client: Client,
    /// The API key `client` sends.
    pub key: String,
    /// The server's database (in-process servers only), to create more keys.
    pub db: Option<radscore::store::Db>,
    pub _dir: tempfile::TempDir,
    shutdown: CancellationToken,
}

/// A client that sends `key` as `Authorization: Bearer` on every request.
pub fn authed_client(key: &str) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {key}")
        .parse()
        .expect("key is a header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    Client::builder()
        .default_headers(headers)
        .build()
        .expect("reqwest client")
}

/// Create an API key with the real `radscore keys create` against `database_url`.
pub fn cli_key(database_url: &str, tenant: &str, admin: bool) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_radscore"));
    command
        .args(["keys", "create", "--tenant", tenant, "--name", "tests"])
        .env("DATABASE_URL", database_url);
    if admin {
        command.arg("--admin");
    }
    let out = command.output().expect("radscore keys create runs");
    assert!(
        out.status.success(),
        "keys create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8 key")
        .trim()
        .to_string()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn shared_data() -> PathBuf {
    std::env::var_os("RADSCORE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir().join("../shared/data"))
}

pub fn ct_phantom() -> PathBuf {
    shared_data().join("ibsi1/ct_phantom")
}

pub fn python() -> PathBuf {
    std::env::var_os("RADSCORE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir().join(".venv/bin/python"))
}

/// Run a `tests/support/*.py` helper; panics with its stderr on failure.
pub fn run_support(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(crate_dir().join("tests/support").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script} with {}: {e}", python().display()));
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Start a server with `max_upload_mb` and two in-process workers.
pub async fn spawn_app_with(max_upload_mb: u64) -> TestApp {
    spawn_app_with_workers(max_upload_mb, 2).await
}

/// Start a server with `max_upload_mb` and `workers` in-process workers (0: jobs stay
/// queued, for tests of the queue itself).
pub async fn spawn_app_with_workers(max_upload_mb: u64, workers: usize) -> TestApp {
    spawn_app_configured(workers, |c| c.max_upload_mb = max_upload_mb).await
}

/// Start a server with `workers` in-process workers and the test configuration as
/// changed by `edit`.
pub async fn spawn_app_configured(workers: usize, edit: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config {
        database_url: format!("sqlite://{}", dir.path().join("radscore.db").display()),
        blob_dir: dir.path().join("blobs"),
        blob_url: None,
        s3_endpoint: None,
        s3_allow_http: false,
        model_dir: crate_dir().join("models/demo"),
        ort_dylib: None,
        settings: None,
        workers: Some(2),
        max_upload_mb: 1024,
        max_segmentation_mb: 256,
        max_unzipped_mb: 1024,
        max_files: 5000,
        geometry: radscore::dicom::GeometryPolicy::Refuse,
        max_concurrent_uploads: 4,
        max_queued_jobs: MAX_QUEUED_JOBS_IN_TESTS,
        job_lease_s: 60,
        job_max_attempts: 3,
        job_retry_base_ms: 5000,
        job_retry_max_s: 300,
        retention_hours: 0.0,
        retention_sweep_s: 300,
        request_timeout_s: 600,
        body_idle_timeout_s: 60,
        cors_origins: None,
        dicomweb_push_url: None,
        dicomweb_push_authorization: None,
        dicomweb_push_max_attempts: 5,
        dicomweb_push_retry_base_ms: 2000,
        dicomweb_push_timeout_s: 60,
        stow_stable_s: 30,
        auth: radscore::api::auth::AuthMode::Required,
        rate_limit_per_min: 0,
        oidc: Default::default(),
    };
    edit(&mut config);
    let app = radscore::app::build(&config).await.expect("app builds");
    let db = app.state.db.clone();
    let (_, key) = radscore::api::auth::create_key(&db, TEST_TENANT, Some("tests"), false)
        .await
        .expect("test key");
    let shutdown = CancellationToken::new();
    if workers > 0 {
        tokio::spawn(radscore::jobs::run_worker_pool(
            app.jobs.clone(),
            workers,
            shutdown.clone(),
        ));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let token = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, radscore::api::router(app.state))
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await
            .expect("server");
    });
    TestApp {
        base: format!("http://{addr}"),
        client: authed_client(&key),
        key,
        db: Some(db),
        _dir: dir,
        shutdown,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(1024).await
}

/// Every `.dcm` file of a directory, sorted by name.
pub fn dicom_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// A zip archive of named files, in memory.
pub fn zip_files(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in files {
            zip.start_file(name.as_str(), opts).expect("zip entry");
            zip.write_all(bytes).expect("zip write");
        }
        zip.finish().expect("zip finish");
    }
    buf.into_inner()
}

impl TestApp {
    /// A client for a server running elsewhere (a child process) at `base`, sending `key`.
    pub fn external(base: &str, key: &str) -> TestApp {
        TestApp {
            base: base.to_string(),
            client: authed_client(key),
            key: key.to_string(),
            db: None,
            _dir: tempfile::tempdir().expect("temp dir"),
            shutdown: CancellationToken::new(),
        }
    }

    /// A new key of `tenant` on this (in-process) server.
    pub async fn key_for(&self, tenant: &str, admin: bool) -> String {
        let db = self.db.as_ref().expect("in-process server");
        radscore::api::auth::create_key(db, tenant, Some("tests"), admin)
            .await
            .expect("key created")
            .1
    }

    /// This server seen through a client of another tenant (a new key of `tenant`).
    pub async fn as_tenant(&self, tenant: &str, admin: bool) -> TestApp {
        let key = self.key_for(tenant, admin).await;
        let mut other = TestApp::external(&self.base, &key);
        other.db = self.db.clone();
        other
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The local blob directory of an in-process server.
    pub fn blob_dir(&self) -> PathBuf {
        self._dir.path().join("blobs")
    }

    /// GET `path`; returns (status, JSON body).
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        status_json(resp).await
    }

    /// DELETE `path`; returns the status and the body (`Null` when empty, as for 204).
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .delete(self.url(path))
            .send()
            .await
            .expect("request");
        if resp.status() == reqwest::StatusCode::NO_CONTENT {
            return (204, Value::Null);
        }
        status_json(resp).await
    }

    /// POST a zip series; returns (status, body).
    pub async fn post_series_zip(&self, zip: Vec<u8>) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url("/v1/series"))
            .header("content-type", "application/zip")
            .body(zip)
            .send()
            .await
            .expect("request");
        status_json(resp).await
    }

    /// Generate the demo case of `seed` (`radscore demo-data`), upload its series and label
    /// map; `(series id, segmentation id, lesion labels)`.
    pub async fn upload_demo_case(&self, seed: u64) -> (String, String, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let case =
            radscore::demo::generate(dir.path(), seed, &radscore::demo::DemoOptions::default())
                .expect("demo case");
        let (status, series) = self
            .post_series_zip(std::fs::read(&case.series_zip).unwrap())
            .await;
        assert_eq!(status, 201, "{series}");
        let series_id = series["id"].as_str().unwrap().to_string();
        let labelmap = std::fs::read(&case.labelmap).unwrap();
        let (status, seg) = self
            .post_segmentation(&series_id, labelmap, "lesions.nii.gz")
            .await;
        assert_eq!(status, 201, "{seg}");
        let labels = case.lesions.iter().map(|l| l.label).collect();
        (series_id, seg["id"].as_str().unwrap().to_string(), labels)
    }

    /// POST a series as multipart, one part per file.
    pub async fn post_series_multipart(&self, files: &[(String, Vec<u8>)]) -> (u16, Value) {
        let mut form = reqwest::multipart::Form::new();
        for (name, bytes) in files {
            let part = reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.clone());
            form = form.part("file", part);
        }
        let resp = self
            .client
            .post(self.url("/v1/series"))
            .multipart(form)
            .send()
            .await
            .expect("request");
        status_json(resp).await
    }

    /// POST a segmentation file as a raw body bound to `series_id`.
    pub async fn post_segmentation(
        &self,
        series_id: &str,
        bytes: Vec<u8>,
        name: &str,
    ) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(&format!(
                "/v1/segmentations?series_id={series_id}&filename={name}"
            )))
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .expect("request");
        status_json(resp).await
    }

    /// Upload the IBSI digital phantom as a zipped DICOM series (written by
    /// `nifti_to_dicom.py`) and its NIfTI mask; returns (series id, segmentation id,
    /// instance count, bytes uploaded).
    pub async fn upload_digital_phantom(&self) -> (String, String, usize, usize) {
        let dicom_dir = tempfile::tempdir().expect("temp dir");
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
        let files = dicom_files(dicom_dir.path());
        let zip = zip_files(&files);
        let zip_len = zip.len();
        let (status, series) = self.post_series_zip(zip).await;
        assert_eq!(status, 201, "{series}");
        let series_id = series["id"].as_str().unwrap().to_string();
        let mask = std::fs::read(phantom.join("mask/mask.nii.gz")).unwrap();
        let mask_len = mask.len();
        let (status, seg) = self
            .post_segmentation(&series_id, mask, "mask.nii.gz")
            .await;
        assert_eq!(status, 201, "{seg}");
        let seg_id = seg["id"].as_str().unwrap().to_string();
        (series_id, seg_id, files.len(), zip_len + mask_len)
    }

    /// POST a job; returns (status, Location header, body).
    pub async fn post_job(&self, body: &Value) -> (u16, Option<String>, Value) {
        self.post_located("/v1/jobs", body).await
    }

    /// POST a JSON document that creates a resource; (status, Location header, body).
    pub async fn post_located(&self, path: &str, body: &Value) -> (u16, Option<String>, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request");
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let (status, json) = status_json(resp).await;
        (status, location, json)
    }

    /// Poll a job until it leaves queued/running; returns the final job document.
    pub async fn wait_for_job(&self, location: &str) -> Value {
        let started = Instant::now();
        loop {
            let (status, job) =
                status_json(self.client.get(self.url(location)).send().await.unwrap()).await;
            assert_eq!(status, 200, "{job}");
            let p = job["progress"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&p), "progress {p}");
            match job["status"].as_str().unwrap() {
                "queued" | "running" => {}
                _ => return job,
            }
            assert!(started.elapsed() < JOB_TIMEOUT, "job stuck: {job}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// POST an empty body to `path` (an action such as `/activate`); returns (status, body).
    pub async fn post_action(&self, path: &str) -> (u16, Value) {
        status_json(
            self.client
                .post(self.url(path))
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    /// POST a model to the registry as multipart (`model` = ONNX, `manifest` = JSON).
    pub async fn post_model(&self, onnx: Vec<u8>, manifest: Vec<u8>) -> (u16, Value) {
        let form = reqwest::multipart::Form::new()
            .part(
                "model",
                reqwest::multipart::Part::bytes(onnx).file_name("model.onnx"),
            )
            .part(
                "manifest",
                reqwest::multipart::Part::bytes(manifest).file_name("manifest.json"),
            );
        let resp = self
            .client
            .post(self.url("/v1/models"))
            .multipart(form)
            .send()
            .await
            .expect("request");
        status_json(resp).await
    }

    /// Run a job `body` to success and return its result document.
    pub async fn run_job_body(&self, body: &Value) -> Value {
        let (status, location, job) = self.post_job(body).await;
        assert_eq!(status, 202, "{job}");
        let location = location.expect("Location header");
        let done = self.wait_for_job(&location).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        let (status, result) = self.get_json(&format!("{location}/result")).await;
        assert_eq!(status, 200, "{result}");
        result
    }

    /// Upload, segment, run a job for `lesions` and return the result document.
    pub async fn run_job(&self, series_id: &str, segmentation_id: &str, lesions: Value) -> Value {
        let body = serde_json::json!({
            "series_id": series_id, "segmentation_id": segmentation_id, "lesions": lesions
        });
        let (status, location, job) = self.post_job(&body).await;
        assert_eq!(status, 202, "{job}");
        let location = location.expect("Location header");
        let done = self.wait_for_job(&location).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        let (status, result) = status_json(
            self.client
                .get(self.url(&format!("{location}/result")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{result}");
        result
    }
}

/// Status and JSON body; asserts problem+json on 4xx/5xx.
pub async fn status_json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = resp.text().await.expect("body");
    if status >= 400 {
        assert_eq!(
            ct, "application/problem+json",
            "error without problem+json: {status} {text}"
        );
    }
    let json =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, json)
}

/// Assert a problem document: status, kind slug and a detail containing every needle.
pub fn assert_problem(
    status: u16,
    body: &Value,
    expected_status: u16,
    kind: &str,
    needles: &[&str],
) {
    assert_eq!(status, expected_status, "{body}");
    let ty = body["type"].as_str().unwrap_or_default();
    assert!(
        ty.ends_with(&format!("/{kind}")),
        "type {ty} is not {kind}: {body}"
    );
    let detail = body["detail"].as_str().unwrap_or_default();
    for n in needles {
        assert!(detail.contains(n), "detail lacks '{n}': {detail}");
    }
}
