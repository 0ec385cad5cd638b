//! Crash recovery on PostgreSQL with the real binary: one `radscore serve --no-workers`
//! and two `radscore worker` processes share a fresh schema; one worker is killed with
//! SIGKILL in the middle of a job several times (and restarted). Every job must end
//! succeeded exactly once, with the result a single worker computes for the same request.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{authed_client, cli_key, crate_dir, status_json};
use crate::pg::PgSchema;

/// Jobs submitted while a worker is being killed (the figure).
const JOBS: usize = 200;

/// Times the second worker is killed mid-job and restarted.
const KILLS: usize = 3;

/// The killed worker starts this many jobs after each (re)start before it is killed.
const JOBS_BEFORE_KILL: usize = 4;

/// Short lease so a killed worker's job is recovered within seconds.
const LEASE_S: &str = "2";

/// Short backoff before a recovered job runs again.
const RETRY_BASE_MS: &str = "100";

/// Attempts per job: enough that a job hit by every kill still succeeds.
const MAX_ATTEMPTS: &str = "10";

/// Bound on the whole run (about 10 s on an idle 2-core machine; generous for load).
const RUN_TIMEOUT: Duration = Duration::from_secs(900);

/// A `radscore` child process whose JSON log lines are forwarded to a channel.
struct Proc {
    child: Child,
    lines: Receiver<String>,
    log: Vec<String>,
}

impl Proc {
    fn start(args: &[&str], database_url: &str, blobs: &Path) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_radscore"))
            .args(args)
            .env("DATABASE_URL", database_url)
            .env("RADSCORE_BLOB_DIR", blobs)
            .env("RADSCORE_MODEL_DIR", crate_dir().join("models/demo"))
            .env("RADSCORE_WORKERS", "1")
            .env("RADSCORE_JOB_LEASE_S", LEASE_S)
            .env("RADSCORE_JOB_RETRY_BASE_MS", RETRY_BASE_MS)
            .env("RADSCORE_JOB_MAX_ATTEMPTS", MAX_ATTEMPTS)
            .env("RADSCORE_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("radscore binary starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Wait for a log line whose message is `message`; returns it parsed.
    fn wait_for(&mut self, message: &str) -> Value {
        let deadline = Instant::now() + RUN_TIMEOUT;
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_secs(1)) {
                Ok(line) => {
                    self.log.push(line.clone());
                    let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                    if v["message"] == message {
                        return v;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => panic!("process ended before '{message}':\n{}", self.log.join("\n")),
            }
        }
        panic!("no '{message}' within {RUN_TIMEOUT:?}")
    }

    /// Every log line so far, the unread ones included.
    fn drain(&mut self) -> Vec<String> {
        self.log.extend(self.lines.try_iter());
        std::mem::take(&mut self.log)
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Upload the demo case through the API; returns (series id, segmentation id, labels).
async fn upload_demo_case(
    client: &reqwest::Client,
    base: &str,
    dir: &Path,
) -> (String, String, Vec<u8>) {
    let case = radscore::demo::generate(dir, 7, &radscore::demo::DemoOptions::default())
        .expect("demo case");
    let resp = client
        .post(format!("{base}/v1/series"))
        .header("content-type", "application/zip")
        .body(std::fs::read(&case.series_zip).unwrap())
        .send()
        .await
        .unwrap();
    let (status, series) = status_json(resp).await;
    assert_eq!(status, 201, "{series}");
    let series_id = series["id"].as_str().unwrap().to_string();
    let resp = client
        .post(format!(
            "{base}/v1/segmentations?series_id={series_id}&filename=lesions.nii.gz"
        ))
        .header("content-type", "application/octet-stream")
        .body(std::fs::read(&case.labelmap).unwrap())
        .send()
        .await
        .unwrap();
    let (status, seg) = status_json(resp).await;
    assert_eq!(status, 201, "{seg}");
    let labels = case.lesions.iter().map(|l| l.label).collect();
    (series_id, seg["id"].as_str().unwrap().to_string(), labels)
}

/// The job's result without the fields that name the job itself.
fn comparable(mut result: Value) -> Value {
    result
        .as_object_mut()
        .expect("result object")
        .remove("job_id");
    result
}

async fn submit(client: &reqwest::Client, base: &str, body: &Value) -> String {
    let resp = client
        .post(format!("{base}/v1/jobs"))
        .json(body)
        .send()
        .await
        .unwrap();
    let (status, job) = status_json(resp).await;
    assert_eq!(status, 202, "{job}");
    job["id"].as_str().unwrap().to_string()
}

async fn unfinished_jobs(db: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')")
        .fetch_one(db)
        .await
        .unwrap()
}

async fn wait_until_done(db: &sqlx::PgPool) {
    let started = Instant::now();
    while unfinished_jobs(db).await > 0 {
        assert!(started.elapsed() < RUN_TIMEOUT, "jobs still unfinished");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn result_of(client: &reqwest::Client, base: &str, id: &str) -> Value {
    let resp = client
        .get(format!("{base}/v1/jobs/{id}/result"))
        .send()
        .await
        .unwrap();
    let (status, result) = status_json(resp).await;
    assert_eq!(status, 200, "job {id}: {result}");
    comparable(result)
}

/// How many times each job id was logged as finished with `succeeded`.
fn successes_in(log: &[String], counts: &mut HashMap<String, usize>) {
    for line in log {
        let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        if v["message"] == "job finished" && v["status"] == "succeeded" {
            let id = v["span"]["job_id"]
                .as_str()
                .expect("job span in log")
                .to_string();
            *counts.entry(id).or_default() += 1;
        }
    }
}

/// 200 jobs, two workers, one of them SIGKILLed mid-job three times: every job succeeds
/// exactly once with the single-worker result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_lose_no_job_and_change_no_result() {
    let schema = PgSchema::create().await;
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs");
    let mut api = Proc::start(
        &["serve", "--no-workers", "--bind", "127.0.0.1:0"],
        &schema.url,
        &blobs,
    );
    let addr = api.wait_for("radscore listening")["address"]
        .as_str()
        .expect("address")
        .to_string();
    let base = format!("http://{addr}");
    let client = authed_client(&cli_key(&schema.url, "crash", false));
    let db = sqlx::PgPool::connect(&schema.url).await.unwrap();
    let (series_id, seg_id, labels) =
        upload_demo_case(&client, &base, &dir.path().join("case")).await;
    let body_for = |label: u8| {
        json!({"series_id": series_id, "segmentation_id": seg_id,
               "lesions": [{"label": label, "location": "other"}]})
    };

    // Reference: one worker alone computes one job per lesion.
    let mut survivor = Proc::start(&["worker"], &schema.url, &blobs);
    let mut reference = HashMap::new();
    for &label in &labels {
        reference.insert(label, submit(&client, &base, &body_for(label)).await);
    }
    wait_until_done(&db).await;
    let mut expected = HashMap::new();
    for (label, id) in &reference {
        expected.insert(*label, result_of(&client, &base, id).await);
    }

    // The crash run: both workers, the second killed mid-job and restarted.
    let mut jobs = Vec::with_capacity(JOBS);
    for n in 0..JOBS {
        let label = labels[n % labels.len()];
        jobs.push((submit(&client, &base, &body_for(label)).await, label));
    }
    let mut victim_logs = Vec::new();
    for _ in 0..KILLS {
        let mut victim = Proc::start(&["worker"], &schema.url, &blobs);
        for _ in 0..JOBS_BEFORE_KILL {
            victim.wait_for("job started");
        }
        victim.kill();
        victim_logs.extend(victim.drain());
    }
    let mut last = Proc::start(&["worker"], &schema.url, &blobs);
    wait_until_done(&db).await;

    // Every job succeeded, once, with the reference result.
    let statuses: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT id, status, attempts FROM jobs")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(statuses.len(), JOBS + labels.len());
    for (id, status, _) in &statuses {
        assert_eq!(status, "succeeded", "job {id}");
    }
    let retried = statuses
        .iter()
        .filter(|(_, _, attempts)| *attempts > 1)
        .count();
    assert!(retried >= 1, "no kill hit a running job");
    for (id, label) in &jobs {
        assert_eq!(
            &result_of(&client, &base, id).await,
            &expected[label],
            "job {id}"
        );
    }
    let mut successes = HashMap::new();
    successes_in(&victim_logs, &mut successes);
    successes_in(&survivor.drain(), &mut successes);
    successes_in(&last.drain(), &mut successes);
    for (id, n) in &successes {
        assert_eq!(*n, 1, "job {id} finished as succeeded {n} times");
    }
    db.close().await;
}
