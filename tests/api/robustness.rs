//! Robustness analysis as a job (`POST /v1/robustness`): it runs on the job queue, its JSON,
//! CSV and PNG are the files `radscore robustness` writes for the same inputs and seed, bad
//! requests get a 422 naming the fault, other tenants see nothing, and it can be cancelled.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

/// Seed of the demo case the tests analyse: 4 lesions, none lost to an erosion, so three
/// share `pleura` (ICCs defined) and one is `lymph_node` alone (ICCs undefined).
const DEMO_SEED: u64 = 8;

/// Few perturbations keep the test quick; 2 is the fewest an ICC needs.
const TEST_PERTURBATIONS: usize = 3;

/// Seed of the perturbation draws, given to the API and to the CLI alike.
const ANALYSIS_SEED: u64 = 5;

/// The demo lesions with locations: two or more share `pleura`, so that location has an
/// ICC; a fourth lesion, when the case has one, is `lymph_node` alone (undefined ICC).
fn lesions(labels: &[u8]) -> Vec<(u8, &'static str)> {
    labels
        .iter()
        .enumerate()
        .map(|(i, &l)| (l, if i < 3 { "pleura" } else { "lymph_node" }))
        .collect()
}

fn body(series_id: &str, segmentation_id: &str, lesions: &[(u8, &str)]) -> Value {
    let lesions: Vec<Value> = lesions
        .iter()
        .map(|(label, location)| json!({ "label": label, "location": location }))
        .collect();
    json!({
        "series_id": series_id,
        "segmentation_id": segmentation_id,
        "lesions": lesions,
        "perturbations": TEST_PERTURBATIONS,
        "seed": ANALYSIS_SEED,
        "thresholds": { "good": 0.7, "excellent": 0.95 },
    })
}

impl TestApp {
    /// POST a robustness request; (status, Location header, body).
    async fn post_robustness(&self, body: &Value) -> (u16, Option<String>, Value) {
        self.post_located("/v1/robustness", body).await
    }

    /// GET `path` as bytes with its status and content type.
    async fn get_bytes(&self, path: &str) -> (u16, String, Vec<u8>) {
        let resp = self.client.get(self.url(path)).send().await.unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, ct, resp.bytes().await.unwrap().to_vec())
    }
}

/// Run `radscore robustness` on the demo case of [`DEMO_SEED`] (regenerated: the same seed
/// gives byte-identical files) and return its output directory.
fn run_cli(lesions: &[(u8, &str)]) -> tempfile::TempDir {
    let input = tempfile::tempdir().unwrap();
    let case = radscore::demo::generate(
        input.path(),
        DEMO_SEED,
        &radscore::demo::DemoOptions::default(),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_radscore"));
    cmd.arg("robustness")
        .arg("--series")
        .arg(&case.series_zip)
        .arg("--mask")
        .arg(&case.labelmap)
        .args(["--perturbations", &TEST_PERTURBATIONS.to_string()])
        .args(["--seed", &ANALYSIS_SEED.to_string()])
        .args(["--good", "0.7", "--excellent", "0.95", "--quiet"])
        .arg("--out-dir")
        .arg(out.path());
    for (label, location) in lesions {
        cmd.args(["--lesion", &format!("{label}:{location}")]);
    }
    let run = cmd.output().unwrap();
    assert!(
        run.status.success(),
        "radscore robustness failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

/// A robustness job on the demo case succeeds; its JSON equals the CLI's robustness.json,
/// its CSV the CLI's robustness.csv (and the JSON's rows), and its PNG decodes.
#[tokio::test]
async fn robustness_job_gives_the_cli_files_for_the_same_seed() {
    let app = spawn_app().await;
    let (series_id, seg_id, labels) = app.upload_demo_case(DEMO_SEED).await;
    let lesions = lesions(&labels);

    let (status, location, job) = app
        .post_robustness(&body(&series_id, &seg_id, &lesions))
        .await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["kind"], "robustness", "{job}");
    assert_eq!(job["robustness"]["perturbations"], TEST_PERTURBATIONS);
    let location = location.expect("Location header");
    let done = app.wait_for_job(&location).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress"], 1.0);
    assert_eq!(done["report_url"], Value::Null);
    let csv_url = done["csv_url"].as_str().unwrap().to_string();
    let png_url = done["heatmap_url"].as_str().unwrap().to_string();

    let (status, report) = app.get_json(&format!("{location}/result")).await;
    assert_eq!(status, 200, "{report}");
    let (status, ct, csv) = app.get_bytes(&csv_url).await;
    assert_eq!((status, ct.as_str()), (200, "text/csv; charset=utf-8"));
    let (status, ct, png) = app.get_bytes(&png_url).await;
    assert_eq!((status, ct.as_str()), (200, "image/png"));

    let cli = run_cli(&lesions);
    let cli_json: Value =
        serde_json::from_slice(&std::fs::read(cli.path().join("robustness.json")).unwrap())
            .unwrap();
    assert_eq!(report, cli_json, "API result vs CLI robustness.json");
    let cli_csv = std::fs::read(cli.path().join("robustness.csv")).unwrap();
    assert_eq!(
        String::from_utf8(csv.clone()).unwrap(),
        String::from_utf8(cli_csv).unwrap(),
        "API result.csv vs CLI robustness.csv"
    );
    assert_csv_matches_json(&csv, &report);
    let cli_png = std::fs::read(cli.path().join("robustness.png")).unwrap();
    assert_eq!(decode_png(&png), decode_png(&cli_png), "heat map pixels");

    let pleura_iccs = report["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["location"] == "pleura" && r["icc"].is_number())
        .count();
    assert!(pleura_iccs > 0, "no ICC at pleura: {report}");
}

/// Relative difference allowed between a CSV cell (parsed exactly by Rust) and the same
/// value read from the JSON by serde_json, whose default float parsing may be one ulp off.
const JSON_PARSE_RELATIVE: f64 = 2.0 * f64::EPSILON;

/// Every CSV row is the JSON row of the same location and feature.
fn assert_csv_matches_json(csv: &[u8], report: &Value) {
    let rows = report["features"].as_array().unwrap();
    let mut reader = csv::Reader::from_reader(csv);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), rows.len());
    let same = |cell: &str, json: &Value, what: &str| match (cell, json.as_f64()) {
        ("", None) => {}
        (text, Some(want)) => {
            let got: f64 = text.parse().unwrap();
            let scale = got.abs().max(want.abs());
            assert!(
                (got - want).abs() <= JSON_PARSE_RELATIVE * scale,
                "{what}: CSV {got} vs JSON {want}"
            );
        }
        (text, None) => panic!("{what}: CSV '{text}' vs JSON {json}"),
    };
    for (record, row) in records.iter().zip(rows) {
        let feature = &record[1];
        assert_eq!(record[0], *row["location"].as_str().unwrap());
        assert_eq!(feature, row["feature"].as_str().unwrap());
        assert_eq!(record[2], row["n_lesions"].to_string());
        assert_eq!(record[3], row["n_perturbations"].to_string());
        same(&record[4], &row["icc"], feature);
        same(&record[5], &row["ci95_lower"], feature);
        same(&record[6], &row["ci95_upper"], feature);
        assert_eq!(record[7], *row["class"].as_str().unwrap());
        assert_eq!(&record[8], row["note"].as_str().unwrap_or_default());
    }
}

/// Width, height and RGBA pixels of a PNG.
fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut reader = png::Decoder::new(bytes).read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).expect("PNG pixels");
    pixels.truncate(frame.buffer_size());
    assert!(frame.width > 0 && frame.height > 0);
    (frame.width, frame.height, pixels)
}

/// Bad requests get a 422 naming the fault; a robustness job has no DICOM report and an
/// extraction job no heat map.
#[tokio::test]
async fn bad_robustness_requests_name_the_fault() {
    let app = spawn_app_with_workers(1024, 0).await;
    let (series_id, seg_id, labels) = app.upload_demo_case(DEMO_SEED).await;
    let good = body(&series_id, &seg_id, &lesions(&labels));
    let with = |key: &str, value: Value| {
        let mut b = good.clone();
        b[key] = value;
        b
    };
    let cases: Vec<(Value, &str, Vec<&str>)> = vec![
        (
            with("perturbations", json!(1)),
            "invalid-robustness-request",
            vec!["at least 2 perturbations", "1 requested"],
        ),
        (
            with("perturbations", json!(101)),
            "invalid-robustness-request",
            vec!["at most 100"],
        ),
        (
            with("perturbations", json!("ten")),
            "invalid-robustness-request",
            vec!["'perturbations'"],
        ),
        (
            with("seed", json!(-1)),
            "invalid-robustness-request",
            vec!["'seed'"],
        ),
        (
            with("thresholds", json!({"good": 0.95, "excellent": 0.9})),
            "invalid-robustness-request",
            vec!["good 0.95, excellent 0.9"],
        ),
        (
            with("limits", json!({"noise_sd_hu": -1.0})),
            "invalid-robustness-request",
            vec!["noise_sd_hu"],
        ),
        (
            with("limits", json!({"rotation": 5})),
            "invalid-robustness-request",
            vec!["'limits'", "unknown field `rotation`"],
        ),
        (
            with("model_id", json!("m")),
            "invalid-robustness-request",
            vec!["unknown field 'model_id'"],
        ),
        (
            with("lesions", json!([{"label": 1, "location": "liver"}])),
            "invalid-robustness-request",
            vec!["lesions[0].location 'liver'"],
        ),
        (
            with("lesions", json!([{"label": 200, "location": "pleura"}])),
            "unknown-lesion-label",
            vec!["label(s) 200"],
        ),
        (
            with("series_id", json!("nope")),
            "unknown-series",
            vec!["series 'nope' does not exist"],
        ),
    ];
    for (request, kind, needles) in cases {
        let (status, _, problem) = app.post_robustness(&request).await;
        assert_problem(status, &problem, 422, kind, &needles);
    }

    let (status, location, job) = app.post_robustness(&good).await;
    assert_eq!(status, 202, "{job}");
    let location = location.unwrap();
    let (status, problem) = app.get_json(&format!("{location}/result.dcm")).await;
    assert_problem(
        status,
        &problem,
        409,
        "wrong-job-kind",
        &["of kind 'robustness'", "only for 'extraction'"],
    );
    let (status, problem) = app.get_json(&format!("{location}/result.png")).await;
    assert_problem(status, &problem, 409, "job-not-finished", &["is queued"]);

    let extraction = json!({
        "series_id": series_id, "segmentation_id": seg_id,
        "lesions": [{"label": labels[0], "location": "pleura"}],
    });
    let (status, location, job) = app.post_job(&extraction).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["kind"], "extraction");
    let (status, problem) = app
        .get_json(&format!("{}/result.csv", location.unwrap()))
        .await;
    assert_problem(
        status,
        &problem,
        409,
        "wrong-job-kind",
        &["of kind 'extraction'", "only for 'robustness'"],
    );

    // A retry with the same Idempotency-Key is the same job; another body is a conflict.
    let keyed = |body: &Value| {
        app.client
            .post(app.url("/v1/robustness"))
            .header("idempotency-key", "robustness-1")
            .json(body)
            .send()
    };
    let (status, first) = status_json(keyed(&good).await.unwrap()).await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = status_json(keyed(&good).await.unwrap()).await;
    assert_eq!((status, &again["id"]), (202, &first["id"]));
    let other = with("seed", json!(99));
    let (status, problem) = status_json(keyed(&other).await.unwrap()).await;
    assert_problem(status, &problem, 409, "idempotency-key-reused", &[]);

    let (status, list) = app.get_json("/v1/jobs?kind=robustness").await;
    assert_eq!(status, 200, "{list}");
    let kinds: Vec<&Value> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| &j["kind"])
        .collect();
    assert_eq!(kinds, [&json!("robustness"); 2]);
    let (status, problem) = app.get_json("/v1/jobs?kind=training").await;
    assert_problem(
        status,
        &problem,
        400,
        "invalid-query",
        &["'kind' must be one of extraction, robustness"],
    );
}

/// Another tenant gets 404 for the job and its artefacts, cannot cancel it, and cannot
/// start an analysis on the first tenant's upload.
#[tokio::test]
async fn another_tenant_sees_no_robustness_job() {
    let app = spawn_app_with_workers(1024, 0).await;
    let (series_id, seg_id, labels) = app.upload_demo_case(DEMO_SEED).await;
    let request = body(&series_id, &seg_id, &lesions(&labels));
    let (status, location, job) = app.post_robustness(&request).await;
    assert_eq!(status, 202, "{job}");
    let location = location.unwrap();

    let other = app.as_tenant("other-trial", false).await;
    for path in ["", "/result", "/result.csv", "/result.png"] {
        let (status, problem) = other.get_json(&format!("{location}{path}")).await;
        assert_problem(status, &problem, 404, "not-found", &[]);
    }
    let (status, problem) = other.delete(&location).await;
    assert_problem(status, &problem, 404, "not-found", &[]);
    let (status, _, problem) = other.post_robustness(&request).await;
    assert_problem(status, &problem, 422, "unknown-series", &[&series_id]);
    let (_, list) = other.get_json("/v1/jobs").await;
    assert_eq!(list["jobs"], json!([]));
}

/// Longest time a cancelled analysis may go on: the heartbeat that finds the lease gone
/// (1 s in tests) plus the perturbation in progress, with room for a loaded machine.
const STOP_BOUND: Duration = Duration::from_secs(20);

/// Progress at which the pace of the run is measured before it is cancelled.
const MEASURED_PROGRESS: f64 = 0.02;

/// A running robustness job is cancelled, stops at its next perturbation (the only worker
/// starts the next job long before the cancelled run would have ended) and keeps no result.
#[tokio::test]
async fn a_cancelled_robustness_job_stops_early() {
    let app = spawn_app_with_workers(1024, 1).await;
    let (series_id, seg_id, labels) = app.upload_demo_case(DEMO_SEED).await;
    let mut long = body(&series_id, &seg_id, &lesions(&labels));
    long["perturbations"] = json!(radscore::robustness::MAX_PERTURBATIONS);

    let (status, location, job) = app.post_robustness(&long).await;
    let posted = Instant::now();
    assert_eq!(status, 202, "{job}");
    let location = location.unwrap();
    let progress = loop {
        let (_, job) = app.get_json(&location).await;
        let progress = job["progress"].as_f64().unwrap();
        if job["status"] == "running" && progress >= MEASURED_PROGRESS {
            break progress;
        }
        assert!(
            job["status"] == "queued" || job["status"] == "running",
            "{job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // What the rest of the run would take at the pace so far (an overestimate: the time
    // so far includes decoding the series, and progress is reported a heartbeat late).
    let remaining = posted.elapsed().mul_f64((1.0 - progress) / progress);
    assert!(
        remaining > 2 * STOP_BOUND,
        "the run is too short to tell: {remaining:?}"
    );

    let (status, cancelled) = app.delete(&location).await;
    let cancelled_at = Instant::now();
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");

    let mut short = body(&series_id, &seg_id, &lesions(&labels));
    short["perturbations"] = json!(2);
    let (status, next, job) = app.post_robustness(&short).await;
    assert_eq!(status, 202, "{job}");
    let next = next.unwrap();
    loop {
        let (_, job) = app.get_json(&next).await;
        if job["status"] != "queued" {
            break;
        }
        assert!(
            cancelled_at.elapsed() < STOP_BOUND,
            "the cancelled analysis still holds the worker after {:?} (its rest: {remaining:?})",
            cancelled_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = app.wait_for_job(&next).await;
    assert_eq!(done["status"], "succeeded", "{done}");

    let (_, job) = app.get_json(&location).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    assert!(job["progress"].as_f64().unwrap() < 1.0, "{job}");
    let (status, problem) = app.get_json(&format!("{location}/result.csv")).await;
    assert_problem(status, &problem, 409, "job-cancelled", &["was cancelled"]);
    let (status, problem) = app.delete(&location).await;
    assert_problem(
        status,
        &problem,
        409,
        "job-finished",
        &["already cancelled"],
    );
}

/// A queued robustness job is cancelled at once and never runs.
#[tokio::test]
async fn a_queued_robustness_job_is_cancelled() {
    let app = spawn_app_with_workers(1024, 0).await;
    let (series_id, seg_id, labels) = app.upload_demo_case(DEMO_SEED).await;
    let (status, location, job) = app
        .post_robustness(&body(&series_id, &seg_id, &lesions(&labels)))
        .await;
    assert_eq!(status, 202, "{job}");
    let location = location.unwrap();
    let (status, cancelled) = app.delete(&location).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(
        (&cancelled["status"], &cancelled["kind"]),
        (&json!("cancelled"), &json!("robustness"))
    );
    let (status, problem) = app.get_json(&format!("{location}/result")).await;
    assert_problem(status, &problem, 409, "job-cancelled", &[]);
}
