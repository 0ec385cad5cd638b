//! The real `radscore serve` binary as a child process: its logs never carry patient
//! identifiers, and SIGTERM shuts it down cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

/// A recognisable fake patient name and ID that must never leave the upload.
const FAKE_PATIENT_NAME: &str = "Doe^Jane-PHI7731";
const FAKE_PATIENT_ID_FRAGMENT: &str = "PHI7731";

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) log: Arc<Mutex<String>>,
    pub(crate) dir: tempfile::TempDir,
    /// An API key of [`TEST_TENANT`], made with `radscore keys create` before the start.
    pub(crate) key: String,
}

/// A server still running when its test ends (or panics) is killed.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    start_server_with(&["--workers", "1"], &[])
}

/// `radscore serve` with extra arguments and environment, a fresh SQLite database and blob
/// directory in its temporary `dir`, and no inherited `AWS_*` variables.
pub(crate) fn start_server_with(args: &[&str], env: &[(&str, String)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let key = cli_key(&sqlite_url(dir.path()), TEST_TENANT, false);
    let mut command = Command::new(env!("CARGO_BIN_EXE_radscore"));
    command
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(args)
        .env("DATABASE_URL", sqlite_url(dir.path()))
        .env("RADSCORE_BLOB_DIR", dir.path().join("blobs"))
        .env("RADSCORE_MODEL_DIR", crate_dir().join("models/demo"))
        .env("RUST_LOG", "debug")
        .env("RADSCORE_LOG_FORMAT", "json");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("radscore binary starts");
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("radscore listening") {
                let _ = tx.send(line.clone());
            }
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("server did not start: {}", log.lock().unwrap()));
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    let addr = v["address"].as_str().expect("address field").to_string();
    Server {
        child,
        base: format!("http://{addr}"),
        log,
        dir,
        key,
    }
}

/// The SQLite database of a server started in `dir`.
pub(crate) fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("db.sqlite").display())
}

pub(crate) fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A series carrying a fake patient name goes through success and error paths; the name
/// and ID appear in no response and no log line. SIGTERM then stops the server cleanly.
#[tokio::test]
async fn patient_identifiers_never_reach_logs_or_responses_and_sigterm_stops() {
    let mut server = start_server();
    let client = authed_client(&server.key);
    let dir = tempfile::tempdir().unwrap();
    let phantom = shared_data().join("ibsi1/digital_phantom/nifti");
    run_support(
        "nifti_to_dicom.py",
        &[
            "--image",
            phantom.join("image/phantom.nii.gz").to_str().unwrap(),
            "--out-dir",
            dir.path().to_str().unwrap(),
            "--patient-name",
            FAKE_PATIENT_NAME,
            "--patient-id",
            "ID-PHI7731",
        ],
    );
    let files = dicom_files(dir.path());
    let mut responses = String::new();

    // Success path: upload, mask, job, result.
    let upload = |files: Vec<(String, Vec<u8>)>| {
        let mut form = reqwest::multipart::Form::new();
        for (name, bytes) in files {
            form = form.part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name),
            );
        }
        client
            .post(format!("{}/v1/series", server.base))
            .multipart(form)
            .send()
    };
    let text = upload(files.clone()).await.unwrap().text().await.unwrap();
    responses.push_str(&text);
    let series: serde_json::Value = serde_json::from_str(&text).unwrap();
    let series_id = series["id"].as_str().expect("series created").to_string();
    let mask = std::fs::read(phantom.join("mask/mask.nii.gz")).unwrap();
    let text = client
        .post(format!(
            "{}/v1/segmentations?series_id={series_id}",
            server.base
        ))
        .header("content-type", "application/octet-stream")
        .body(mask)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    responses.push_str(&text);
    let seg: serde_json::Value = serde_json::from_str(&text).unwrap();
    let body = json!({"series_id": series_id, "segmentation_id": seg["id"], "lesions": [{"label": 1, "location": "other"}]});
    let resp = client
        .post(format!("{}/v1/jobs", server.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    responses.push_str(&resp.text().await.unwrap());
    let started = Instant::now();
    loop {
        let text = client
            .get(format!("{}{location}", server.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("\"succeeded\"") || text.contains("\"failed\"") {
            assert!(text.contains("\"succeeded\""), "{text}");
            responses.push_str(&text);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "job stuck: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = client
        .get(format!("{}{location}/result", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    responses.push_str(&text);

    // Error paths: a truncated file, and a mixed upload.
    let mut broken = files.clone();
    broken[1].1.truncate(400);
    responses.push_str(&upload(broken).await.unwrap().text().await.unwrap());
    let mut mixed = files.clone();
    mixed.extend(
        dicom_files(&ct_phantom().join("dicom/image"))
            .into_iter()
            .take(1),
    );
    responses.push_str(&upload(mixed).await.unwrap().text().await.unwrap());
    responses.push_str(
        &client
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );

    sigterm(&server.child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");

    let log = server.log.lock().unwrap().clone();
    assert!(
        log.contains("job finished"),
        "expected job lifecycle logs: {log}"
    );
    for needle in [FAKE_PATIENT_NAME, "Doe^Jane", FAKE_PATIENT_ID_FRAGMENT] {
        assert!(
            !responses.contains(needle),
            "'{needle}' leaked into a response: {responses}"
        );
        assert!(!log.contains(needle), "'{needle}' leaked into the log");
    }
}

/// With `RADSCORE_ADMIN_ADDR`, the probes and metrics are served there without a key and
/// no longer on the API port, which still serves the API.
#[tokio::test]
async fn admin_address_serves_probes_apart_from_the_api() {
    let server = start_server_with(
        &["--workers", "1"],
        &[("RADSCORE_ADMIN_ADDR", "127.0.0.1:0".to_string())],
    );
    let admin = server
        .log
        .lock()
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "admin endpoints listening")
        .and_then(|v| v["address"].as_str().map(str::to_string))
        .expect("admin address logged");
    let anonymous = reqwest::Client::new();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let resp = anonymous
            .get(format!("http://{admin}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path} on the admin address");
        let resp = anonymous
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 404, "{path} not on the API port");
    }
    let resp = anonymous
        .get(format!("http://{admin}/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404, "no API on the admin address");
    let resp = authed_client(&server.key)
        .get(format!("{}/v1/models", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}
