//! PHI hygiene: a CT series carrying recognisable fake patient identifiers goes through
//! every path of the real `radscore serve` binary (uploads, segmentations in three
//! formats, a job and its result, STOW-RS, deletion, errors of many kinds), and not one
//! identifier appears in any output channel: debug-level server logs, `/metrics`, every
//! response body and header (problem+json included), the job result, and every row of the
//! database.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::process::{sigterm, start_server_with};

/// The fake identifiers written into every instance (DICOM keyword, value).
const IDENTIFIERS: &[(&str, &str)] = &[
    ("PatientName", "Zyxwv^Quentina"),
    ("PatientID", "PID-8842913"),
    ("PatientBirthDate", "19370514"),
    ("OtherPatientIDs", "OPID-5519047"),
    ("AccessionNumber", "ACC7730021"),
    ("InstitutionName", "Qwertyuiop Hospital"),
    ("ReferringPhysicianName", "Plumtree^Ignatius"),
];

/// What is searched for (case-insensitive): each value, the name components on their own,
/// and the birth date as an ISO date too (a formatter could render it so). A needle of
/// digits only must stand alone, so that it does not match inside a random float.
const NEEDLES: &[&str] = &[
    "Zyxwv",
    "Quentina",
    "PID-8842913",
    "19370514",
    "1937-05-14",
    "OPID-5519047",
    "ACC7730021",
    "Qwertyuiop",
    "Plumtree",
    "Ignatius",
];

/// Longest time the job may take.
const JOB_TIMEOUT: Duration = Duration::from_secs(120);

/// Every response of the session, as text: status line, headers and body.
#[derive(Default)]
struct Transcript {
    text: String,
}

impl Transcript {
    async fn send(&mut self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        self.text.push_str(&format!("\n--- {status}\n"));
        for (name, value) in resp.headers() {
            self.text.push_str(&format!("{name}: {value:?}\n"));
        }
        let body = resp.text().await.unwrap();
        self.text.push_str(&body);
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }
}

fn multipart(files: &[(String, Vec<u8>)]) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new();
    for (name, bytes) in files {
        let part = reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.clone());
        form = form.part("file", part);
    }
    form
}

/// The digital phantom as DICOM with every fake identifier set; returns its directory.
fn identified_series(tmp: &std::path::Path) -> std::path::PathBuf {
    let plain = tmp.join("plain");
    let identified = tmp.join("identified");
    let phantom = shared_data().join("ibsi1/digital_phantom/nifti/image/phantom.nii.gz");
    run_support(
        "nifti_to_dicom.py",
        &[
            "--image",
            phantom.to_str().unwrap(),
            "--out-dir",
            plain.to_str().unwrap(),
        ],
    );
    let assignments: Vec<String> = IDENTIFIERS
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut args = vec![
        "--in-dir",
        plain.to_str().unwrap(),
        "--out-dir",
        identified.to_str().unwrap(),
    ];
    args.extend(assignments.iter().map(String::as_str));
    // Not identifiers: the patient and study attributes highdicom needs to build a SEG.
    args.extend([
        "PatientSex=O",
        "StudyID=S1",
        "StudyDate=20260101",
        "StudyTime=120000",
    ]);
    run_support("set_identifiers.py", &args);
    identified
}

/// Every row of every table of the server's SQLite database, as SQL text.
fn dump_database(db_file: &std::path::Path) -> String {
    let out = std::process::Command::new(python())
        .args([
            "-c",
            "import sqlite3, sys\n\
             con = sqlite3.connect(sys.argv[1])\n\
             print('\\n'.join(con.iterdump()))",
            db_file.to_str().unwrap(),
        ])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Upload, segment (NIfTI, SEG, RTSTRUCT), run a job, push by STOW-RS, delete, and provoke
/// errors; then search logs, metrics, responses and database rows for each identifier.
#[tokio::test]
async fn no_patient_identifier_reaches_any_output_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let series_dir = identified_series(tmp.path());
    let files = dicom_files(&series_dir);
    let first = String::from_utf8_lossy(&files[0].1).into_owned();
    for (keyword, value) in IDENTIFIERS {
        assert!(first.contains(value), "the upload carries {keyword}");
    }
    let seg_file = tmp.path().join("seg.dcm");
    let mask = shared_data().join("ibsi1/digital_phantom/nifti/mask/mask.nii.gz");
    let seg_args = |out: &std::path::Path, extra: &[&str]| {
        let mut a = vec![
            "--series".to_string(),
            series_dir.display().to_string(),
            "--mask".to_string(),
            mask.display().to_string(),
            "--out".to_string(),
            out.display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let args = seg_args(&seg_file, &[]);
    run_support(
        "make_seg.py",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let bad_seg_file = tmp.path().join("seg-other-frame.dcm");
    let args = seg_args(
        &bad_seg_file,
        &["--frame-of-reference", "1.2.826.0.1.3680043.99.1"],
    );
    run_support(
        "make_seg.py",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let rtstruct_file = tmp.path().join("rs-other-frame.dcm");
    run_support(
        "make_rtstruct.py",
        &[
            "--series",
            series_dir.to_str().unwrap(),
            "--out",
            rtstruct_file.to_str().unwrap(),
            "--case",
            "other-frame",
        ],
    );

    let mut server = start_server_with(&["--workers", "1"], &[]);
    let mut t = Transcript::default();
    let client = authed_client(&server.key);
    let base = server.base.clone();
    let post = |path: &str| client.post(format!("{base}{path}"));
    let get = |path: &str| client.get(format!("{base}{path}"));

    // Success paths.
    let (status, series) = t
        .send(post("/v1/series").multipart(multipart(&files)))
        .await;
    assert_eq!(status, 201, "{series}");
    let series_id = series["id"].as_str().unwrap().to_string();
    t.send(get(&format!("/v1/series/{series_id}"))).await;
    let seg_url = format!("/v1/segmentations?series_id={series_id}&filename=mask.nii.gz");
    let raw = |bytes: Vec<u8>| {
        post(&seg_url)
            .header("content-type", "application/octet-stream")
            .body(bytes)
    };
    let (status, nifti_seg) = t.send(raw(std::fs::read(&mask).unwrap())).await;
    assert_eq!(status, 201, "{nifti_seg}");
    let (status, dicom_seg) = t.send(raw(std::fs::read(&seg_file).unwrap())).await;
    assert_eq!(
        status, 201,
        "a SEG carrying the identifiers is stored: {dicom_seg}"
    );
    t.send(get(&format!(
        "/v1/segmentations/{}",
        dicom_seg["id"].as_str().unwrap()
    )))
    .await;
    let job = json!({"series_id": series_id, "segmentation_id": dicom_seg["id"],
                     "lesions": [{"label": 1, "location": "pleura"},
                                 {"label": 7, "location": "other"}]});
    let (status, created) = t.send(post("/v1/jobs").json(&job)).await;
    assert_eq!(status, 202, "{created}");
    let job_path = format!("/v1/jobs/{}", created["id"].as_str().unwrap());
    let started = Instant::now();
    loop {
        let (_, doc) = t.send(get(&job_path)).await;
        match doc["status"].as_str() {
            Some("queued" | "running") => {}
            _ => break,
        }
        assert!(started.elapsed() < JOB_TIMEOUT, "job stuck: {doc}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, result) = t.send(get(&format!("{job_path}/result"))).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(
        result["lesions"][1]["status"], "error",
        "label 7 is not in the SEG"
    );

    // STOW-RS of the same instances (the answer is DICOM JSON).
    let boundary = "phi-boundary";
    let mut body = Vec::new();
    for (_, bytes) in &files {
        body.extend(format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").bytes());
        body.extend(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    let stow_type = format!("multipart/related; type=\"application/dicom\"; boundary={boundary}");
    let (status, stow) = t
        .send(
            post("/studies")
                .header("content-type", stow_type)
                .body(body),
        )
        .await;
    assert_eq!(status, 200, "{stow}");

    // Error paths: refused segmentations, broken and mixed series, unknown ids, bad jobs.
    for file in [&bad_seg_file, &rtstruct_file] {
        let (status, problem) = t.send(raw(std::fs::read(file).unwrap())).await;
        assert_eq!(status, 422, "{problem}");
    }
    let mut broken = files.clone();
    broken[1].1.truncate(400);
    let (status, _) = t
        .send(post("/v1/series").multipart(multipart(&broken)))
        .await;
    assert!((400..500).contains(&status));
    let mut mixed = files.clone();
    mixed.extend(
        dicom_files(&ct_phantom().join("dicom/image"))
            .into_iter()
            .take(1),
    );
    let (status, _) = t
        .send(post("/v1/series").multipart(multipart(&mixed)))
        .await;
    assert_eq!(status, 422);
    let mut not_ct = files.clone();
    not_ct.push(("seg.dcm".into(), std::fs::read(&seg_file).unwrap()));
    t.send(post("/v1/series").multipart(multipart(&not_ct)))
        .await;
    for path in ["/v1/series/nope", "/v1/segmentations/nope", "/v1/jobs/nope"] {
        let (status, _) = t.send(get(path)).await;
        assert_eq!(status, 404);
    }
    let bad_job = json!({"series_id": series_id, "segmentation_id": nifti_seg["id"],
                         "lesions": [{"label": 1, "location": "lung"}]});
    let (status, _) = t.send(post("/v1/jobs").json(&bad_job)).await;
    assert_eq!(status, 422);
    let wrong_pair = json!({"series_id": "nope", "segmentation_id": dicom_seg["id"],
                            "lesions": [{"label": 1, "location": "other"}]});
    let (status, _) = t.send(post("/v1/jobs").json(&wrong_pair)).await;
    assert_eq!(status, 422);

    // Deletion, then the 410 of the deleted series.
    let delete = client.request(Method::DELETE, format!("{base}/v1/series/{series_id}"));
    let (status, _) = t.send(delete).await;
    assert_eq!(status, 204);
    let (status, _) = t.send(get(&format!("/v1/series/{series_id}"))).await;
    assert_eq!(status, 410);
    let metrics = get("/metrics").send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("radscore_uploads_deleted_total"),
        "{metrics}"
    );

    sigterm(&server.child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("\"level\":\"DEBUG\""), "debug logs captured");
    let rows = dump_database(&server.dir.path().join("db.sqlite"));
    assert!(
        rows.contains("INSERT INTO \"jobs\""),
        "database dumped: {rows}"
    );

    let channels = [
        ("server log", &log),
        ("/metrics", &metrics),
        ("responses", &t.text),
        ("database rows", &rows),
    ];
    for (channel, text) in channels {
        for needle in NEEDLES {
            if let Some(at) = find(text, needle) {
                panic!(
                    "'{needle}' leaked into the {channel}: …{}…",
                    context(text, at)
                );
            }
        }
    }
}

/// Where `needle` occurs in `text`, case-insensitively; a needle of digits only counts
/// only where no digit is next to it.
fn find(text: &str, needle: &str) -> Option<usize> {
    let (text, needle) = (text.to_lowercase(), needle.to_lowercase());
    let digits_only = needle.bytes().all(|b| b.is_ascii_digit());
    let bytes = text.as_bytes();
    let digit_at = |i: Option<usize>| i.and_then(|i| bytes.get(i)).is_some_and(u8::is_ascii_digit);
    text.match_indices(&needle).map(|(at, _)| at).find(|&at| {
        !digits_only || !(digit_at(at.checked_sub(1)) || digit_at(Some(at + needle.len())))
    })
}

/// Up to 200 characters around byte `at` of `text`.
fn context(text: &str, at: usize) -> String {
    let boundary_at_or_before = |i: usize| (0..=i).rev().find(|&b| text.is_char_boundary(b));
    let start = boundary_at_or_before(at.saturating_sub(100)).unwrap_or(0);
    let end = boundary_at_or_before((at + 100).min(text.len())).unwrap_or(0);
    text.get(start..end).unwrap_or_default().to_string()
}

/// The search finds a leaked value in any case, and a digits-only value only where it
/// stands alone (not inside a longer number such as a latency).
#[test]
fn the_search_finds_leaks_and_ignores_digits_inside_numbers() {
    assert_eq!(find("{\"name\":\"ZYXWV^QUENTINA\"}", "Zyxwv"), Some(9));
    assert_eq!(find("dob=19370514;", "19370514"), Some(4));
    assert_eq!(find("latency_s=0.0193705142", "19370514"), None);
    assert_eq!(find("nothing here", "Plumtree"), None);
}
