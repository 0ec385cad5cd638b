//! A real S3-compatible server for tests: moto's standalone server (`moto[server]`, pinned
//! in `training/requirements.txt`) started from the project venv on 127.0.0.1 with an
//! ephemeral port, killed when dropped. Shared by `tests/blob_store.rs` and `tests/api`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long moto may take to print its address (it imports boto3 and flask first).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Credentials the test clients sign with; moto accepts any.
pub const ACCESS_KEY_ID: &str = "radscore-test";
pub const SECRET_ACCESS_KEY: &str = "radscore-test-secret";
pub const REGION: &str = "us-east-1";

/// A running moto server.
pub struct MotoServer {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> PathBuf {
    std::env::var_os("RADSCORE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"))
}

impl MotoServer {
    /// Start moto on 127.0.0.1, port chosen by the OS, and wait for its address line.
    pub fn start() -> MotoServer {
        let mut child = Command::new(python())
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto with {}: {e}", python().display()));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut seen = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("Running on http://") {
                    let url = line[at + "Running on ".len()..].split_whitespace().next();
                    let _ = tx.send(Ok(url.unwrap_or_default().to_string()));
                } else if seen.len() < 4096 {
                    seen.push_str(&line);
                    seen.push('\n');
                }
            }
            let _ = tx.send(Err(seen));
        });
        let endpoint = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Ok(url)) => url,
            Ok(Err(output)) => panic!(
                "moto exited without an address (is moto[server] installed in the venv?): {output}"
            ),
            Err(_) => panic!("moto did not start within {STARTUP_TIMEOUT:?}"),
        };
        MotoServer { child, endpoint }
    }

    /// `object_store` options reaching this server with the test credentials.
    #[allow(dead_code)] // tests/api configures its processes through the environment instead
    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_allow_http", "true"),
            ("aws_access_key_id", ACCESS_KEY_ID),
            ("aws_secret_access_key", SECRET_ACCESS_KEY),
            ("aws_region", REGION),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Create a bucket (moto needs no signature for it).
    pub async fn create_bucket(&self, bucket: &str) {
        let resp = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .expect("moto answers");
        assert!(
            resp.status().is_success(),
            "create bucket: {}",
            resp.status()
        );
    }

    /// Every key in a bucket, read with a plain ListObjectsV2 request (not through
    /// radscore), so tests see what really landed in the bucket.
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let xml = reqwest::Client::new()
            .get(format!(
                "{}/{bucket}?list-type=2&max-keys=1000",
                self.endpoint
            ))
            .send()
            .await
            .expect("moto answers")
            .text()
            .await
            .expect("listing body");
        xml.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_string()))
            .collect()
    }
}
