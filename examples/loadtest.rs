//! Load test for a running radscore server on the loopback interface: concurrent series
//! uploads, segmentation uploads, job submissions and job polls for a fixed time, reporting
//! throughput, p50/p99 latency and responses by status per request kind, and the server's
//! resident memory sampled from `/proc/<pid>/status`.
//!
//! Run it through `scripts/loadtest.sh`, which builds and starts the real binary and puts
//! the report into `docs/benchmarks.md`. Exits non-zero when a request got a 5xx or no
//! answer, or when the server's RSS went over `--max-rss-mb`.
//!
//! Written with reqwest and tokio rather than driving `oha`/`wrk`: the workload is a chain
//! (upload → segmentation → job → poll) whose later requests need ids from earlier answers,
//! which fixed-request load tools cannot express.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};

/// Interval between RSS samples of the server process.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(250);
/// Interval between samples of the machine's 1-minute load average.
const LOAD_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Longest pause a submitter honours from a 429's `Retry-After`, so it keeps probing.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Most (series, segmentation) pairs kept for job submissions.
const MAX_UPLOADED_CASES: usize = 64;
/// Status code recorded for a request that got no HTTP answer (connection error, timeout).
const NO_ANSWER: u16 = 0;
/// Per-request timeout: a request slower than this counts as having no answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Parser)]
struct Args {
    /// Server base URL; must be on the loopback interface.
    #[arg(long)]
    base: String,
    /// API key sent as `Authorization: Bearer` (`radscore keys create`).
    #[arg(long, env = "RADSCORE_API_KEY")]
    api_key: String,
    /// Directory written by `radscore demo-data` (series.zip, lesions.nii.gz, lesions.json).
    #[arg(long)]
    sample: PathBuf,
    /// Measured duration, seconds.
    #[arg(long, default_value_t = 60)]
    duration_s: u64,
    /// Concurrent clients uploading a series and its segmentation in a loop.
    #[arg(long, default_value_t = 4)]
    uploaders: usize,
    /// Concurrent clients submitting jobs and polling them in a loop.
    #[arg(long, default_value_t = 4)]
    submitters: usize,
    /// Server process id, for RSS sampling.
    #[arg(long)]
    server_pid: u32,
    /// Fail when the server's RSS goes over this, MiB.
    #[arg(long, default_value_t = 2048)]
    max_rss_mb: u64,
    /// Write the markdown report here (else stdout).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Request kinds, in report order.
const KINDS: [&str; 4] = [
    "POST /v1/series",
    "POST /v1/segmentations",
    "POST /v1/jobs",
    "GET /v1/jobs/{id}",
];

/// Everything measured, shared by the client tasks.
#[derive(Default)]
struct Recorder {
    latencies_ms: BTreeMap<&'static str, Vec<f64>>,
    statuses: BTreeMap<(&'static str, u16), u64>,
}

type Shared<T> = Arc<Mutex<T>>;

/// The fixed request bodies and the client.
struct Workload {
    client: reqwest::Client,
    base: String,
    series_zip: bytes::Bytes,
    mask: bytes::Bytes,
    lesions: Value,
    recorder: Shared<Recorder>,
    cases: Shared<Vec<(String, String)>>,
    jobs: Shared<Vec<String>>,
    deadline: Instant,
}

impl Workload {
    /// Send a request, record its latency and status; the body as JSON when it has one.
    async fn send(
        &self,
        kind: &'static str,
        req: reqwest::RequestBuilder,
    ) -> (u16, Value, Option<u64>) {
        let started = Instant::now();
        let (status, body, retry_after) = match req.timeout(REQUEST_TIMEOUT).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse().ok());
                let body = resp.json::<Value>().await.unwrap_or(Value::Null);
                (status, body, retry_after)
            }
            Err(_) => (NO_ANSWER, Value::Null, None),
        };
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let mut rec = self.recorder.lock().expect("recorder lock");
        rec.latencies_ms.entry(kind).or_default().push(ms);
        *rec.statuses.entry((kind, status)).or_default() += 1;
        (status, body, retry_after)
    }

    /// Upload a series and its segmentation until the deadline; keep the ids for jobs.
    async fn upload_loop(self: Arc<Self>) {
        while Instant::now() < self.deadline {
            let req = self
                .client
                .post(format!("{}/v1/series", self.base))
                .header("content-type", "application/zip")
                .body(self.series_zip.clone());
            let (status, series, _) = self.send(KINDS[0], req).await;
            let Some(series_id) = series["id"].as_str().filter(|_| status == 201) else {
                continue;
            };
            let req = self
                .client
                .post(format!(
                    "{}/v1/segmentations?series_id={series_id}",
                    self.base
                ))
                .header("content-type", "application/octet-stream")
                .body(self.mask.clone());
            let (status, seg, _) = self.send(KINDS[1], req).await;
            if let Some(seg_id) = seg["id"].as_str().filter(|_| status == 201) {
                let mut cases = self.cases.lock().expect("cases lock");
                if cases.len() == MAX_UPLOADED_CASES {
                    cases.remove(0);
                }
                cases.push((series_id.to_string(), seg_id.to_string()));
            }
        }
    }

    /// Submit a job on an uploaded case, then poll a known job, until the deadline.
    async fn submit_loop(self: Arc<Self>, seed: usize) {
        let mut turn = seed;
        while Instant::now() < self.deadline {
            turn = turn.wrapping_add(1);
            let case = {
                let cases = self.cases.lock().expect("cases lock");
                (!cases.is_empty()).then(|| cases[turn % cases.len()].clone())
            };
            let Some((series_id, seg_id)) = case else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let body =
                json!({"series_id": series_id, "segmentation_id": seg_id, "lesions": self.lesions});
            let req = self
                .client
                .post(format!("{}/v1/jobs", self.base))
                .json(&body);
            let (status, job, retry_after) = self.send(KINDS[2], req).await;
            if let Some(id) = job["id"].as_str().filter(|_| status == 202) {
                self.jobs.lock().expect("jobs lock").push(id.to_string());
            }
            self.poll_one(turn).await;
            if status == 429 {
                let wait = Duration::from_secs(retry_after.unwrap_or(1)).min(MAX_BACKOFF);
                tokio::time::sleep(wait).await;
            }
        }
    }

    async fn poll_one(&self, turn: usize) {
        let id = {
            let jobs = self.jobs.lock().expect("jobs lock");
            (!jobs.is_empty()).then(|| jobs[turn % jobs.len()].clone())
        };
        if let Some(id) = id {
            let req = self.client.get(format!("{}/v1/jobs/{id}", self.base));
            self.send(KINDS[3], req).await;
        }
    }
}

/// Resident set size of a process, MiB, from `/proc/<pid>/status`.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The machine's 1-minute load average.
fn load_1min() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Sample `probe` every `every` until the deadline.
async fn sample_until(
    deadline: Instant,
    every: Duration,
    probe: impl Fn() -> Option<f64>,
) -> Vec<f64> {
    let mut samples = Vec::new();
    while Instant::now() < deadline {
        samples.extend(probe());
        tokio::time::sleep(every).await;
    }
    samples.extend(probe());
    samples
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A client that sends `key` as `Authorization: Bearer` on every request.
fn authed_client(key: &str) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {key}")
        .parse()
        .context("the API key is not a valid header value")?;
    headers.insert(reqwest::header::AUTHORIZATION, value);
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}

fn require_loopback(base: &str) -> anyhow::Result<()> {
    let host = base
        .strip_prefix("http://")
        .context("--base must be an http:// URL")?
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    if !matches!(host, "127.0.0.1" | "localhost") {
        bail!("--base must be on the loopback interface (127.0.0.1), got host '{host}'");
    }
    Ok(())
}

/// Jobs by status and queue depth as the server exports them.
async fn server_job_counts(client: &reqwest::Client, base: &str) -> BTreeMap<String, f64> {
    let text = match client.get(format!("{base}/metrics")).send().await {
        Ok(resp) => resp.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .filter(|l| l.starts_with("radscore_jobs{") || l.starts_with("radscore_queue_depth"))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    require_loopback(&args.base)?;
    let read = |name: &str| {
        let path = args.sample.join(name);
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
    };
    let lesions_doc: Value = serde_json::from_slice(&read("lesions.json")?)?;
    let lesions: Vec<Value> = lesions_doc["lesions"]
        .as_array()
        .context("lesions.json has no lesions")?
        .iter()
        .map(|l| json!({"label": l["label"], "location": l["location"]}))
        .collect();

    let duration = Duration::from_secs(args.duration_s);
    let started = Instant::now();
    let workload = Arc::new(Workload {
        client: authed_client(&args.api_key)?,
        base: args.base.trim_end_matches('/').to_string(),
        series_zip: read("series.zip")?.into(),
        mask: read("lesions.nii.gz")?.into(),
        lesions: Value::Array(lesions),
        recorder: Arc::default(),
        cases: Arc::default(),
        jobs: Arc::default(),
        deadline: started + duration,
    });
    let rss_before = rss_mib(args.server_pid).context("server process not found in /proc")?;

    let pid = args.server_pid;
    let rss = tokio::spawn(sample_until(
        workload.deadline,
        RSS_SAMPLE_INTERVAL,
        move || rss_mib(pid),
    ));
    let load = tokio::spawn(sample_until(
        workload.deadline,
        LOAD_SAMPLE_INTERVAL,
        load_1min,
    ));
    let mut clients = Vec::new();
    for _ in 0..args.uploaders {
        clients.push(tokio::spawn(workload.clone().upload_loop()));
    }
    for seed in 0..args.submitters {
        clients.push(tokio::spawn(workload.clone().submit_loop(seed)));
    }
    for c in clients {
        c.await?;
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let rss = rss.await?;
    let load = load.await?;
    let counts = server_job_counts(&workload.client, &workload.base).await;

    let recorder = std::mem::take(&mut *workload.recorder.lock().expect("recorder lock"));
    let upload_kib = (
        workload.series_zip.len() as f64 / 1024.0,
        workload.mask.len() as f64 / 1024.0,
    );
    let report = Report {
        args: &args,
        elapsed_s,
        recorder,
        upload_kib,
        rss_before,
        rss,
        load,
        counts,
    };
    let markdown = report.markdown();
    match &args.out {
        Some(path) => std::fs::write(path, &markdown)
            .with_context(|| format!("writing {}", path.display()))?,
        None => println!("{markdown}"),
    }
    report.verdict()
}

/// The measurements of one run.
struct Report<'a> {
    args: &'a Args,
    elapsed_s: f64,
    recorder: Recorder,
    /// Sizes of the series zip and of the mask, KiB.
    upload_kib: (f64, f64),
    rss_before: f64,
    rss: Vec<f64>,
    load: Vec<f64>,
    counts: BTreeMap<String, f64>,
}

impl Report<'_> {
    fn peak_rss(&self) -> f64 {
        self.rss.iter().copied().fold(self.rss_before, f64::max)
    }

    /// Requests that failed on the server's side or got no answer.
    fn failures(&self) -> u64 {
        self.recorder
            .statuses
            .iter()
            .filter(|((_, status), _)| *status >= 500 || *status == NO_ANSWER)
            .map(|(_, n)| n)
            .sum()
    }

    fn markdown(&self) -> String {
        let mut md = Vec::new();
        md.push(format!(
            "Run: {:.1} s; {} uploader clients (a {:.0} KiB series zip, then its {:.0} KiB NIfTI mask) and {} job-submitter clients (a job on an uploaded case, then one poll; on 429 they wait for `Retry-After`, at most {} s).\n",
            self.elapsed_s,
            self.args.uploaders,
            self.upload_kib.0,
            self.upload_kib.1,
            self.args.submitters,
            MAX_BACKOFF.as_secs()
        ));
        md.push("| request | count | throughput (req/s) | p50 (ms) | p99 (ms) | max (ms) | responses by status |".into());
        md.push("|---|---:|---:|---:|---:|---:|---|".into());
        for kind in KINDS {
            let mut lat = self
                .recorder
                .latencies_ms
                .get(kind)
                .cloned()
                .unwrap_or_default();
            lat.sort_by(f64::total_cmp);
            let statuses: Vec<String> = self
                .recorder
                .statuses
                .iter()
                .filter(|((k, _), _)| *k == kind)
                .map(|((_, s), n)| match *s {
                    NO_ANSWER => format!("no answer: {n}"),
                    s => format!("{s}: {n}"),
                })
                .collect();
            md.push(format!(
                "| `{kind}` | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
                lat.len(),
                lat.len() as f64 / self.elapsed_s,
                percentile(&lat, 50.0),
                percentile(&lat, 99.0),
                lat.last().copied().unwrap_or(f64::NAN),
                statuses.join(", ")
            ));
        }
        let mut load = self.load.clone();
        load.sort_by(f64::total_cmp);
        md.push(String::new());
        md.push(format!(
            "- Server RSS: {:.0} MiB before, peak {:.0} MiB, {:.0} MiB at the end (limit {} MiB; {} samples, every {} ms).",
            self.rss_before,
            self.peak_rss(),
            self.rss.last().copied().unwrap_or(f64::NAN),
            self.args.max_rss_mb,
            self.rss.len(),
            RSS_SAMPLE_INTERVAL.as_millis()
        ));
        md.push(format!(
            "- Machine load during the run (1-min load average, sampled each second): min {:.2}, median {:.2}, max {:.2} on {} logical cores.",
            load.first().copied().unwrap_or(f64::NAN),
            percentile(&load, 50.0),
            load.last().copied().unwrap_or(f64::NAN),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ));
        let counts: Vec<String> = self
            .counts
            .iter()
            .map(|(k, v)| format!("`{k}` {v}"))
            .collect();
        md.push(format!(
            "- Jobs at the end (server's `/metrics`): {}.",
            counts.join(", ")
        ));
        md.push(format!(
            "- 5xx or unanswered requests: {}.",
            self.failures()
        ));
        md.join("\n") + "\n"
    }

    fn verdict(&self) -> anyhow::Result<()> {
        if self.failures() > 0 {
            bail!(
                "{} requests failed with a 5xx or got no answer",
                self.failures()
            );
        }
        if self.peak_rss() > self.args.max_rss_mb as f64 {
            bail!(
                "server RSS peaked at {:.0} MiB, over {} MiB",
                self.peak_rss(),
                self.args.max_rss_mb
            );
        }
        Ok(())
    }
}
