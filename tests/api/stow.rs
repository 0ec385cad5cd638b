//! DICOMweb STOW-RS (`POST /studies`): the real `dicomweb-client` package pushes the CT
//! phantom and a highdicom SEG to the running server, in one request or split over many
//! as a PACS router does; hand-built bodies check the partial-failure (202), all-failed
//! (409) and media-type (415) answers.

use serde_json::Value;

use crate::helpers::*;

/// PS3.6 keys of the Store Instances Response.
const REFERENCED_SOP_SEQUENCE: &str = "00081199";
const FAILED_SOP_SEQUENCE: &str = "00081198";
const RETRIEVE_URL: &str = "00081190";
const FAILURE_REASON: &str = "00081197";
const ERROR_COMMENT: &str = "00000902";
const REFERENCED_SOP_INSTANCE_UID: &str = "00081155";
/// PS3.4 GG.4-1: Cannot understand; PS3.18 10.5.3: does not match (study).
const CANNOT_UNDERSTAND: u64 = 0xC000;
const DOES_NOT_MATCH: u64 = 0xA900;
/// PS3.4 Table B.2-1: Refused: Out of Resources.
const OUT_OF_RESOURCES: u64 = 0xA700;
/// PS3.4 GG.4-1: Processing failure.
const PROCESSING_FAILURE: u64 = 0x0110;

/// `RADSCORE_STOW_STABLE_S` of the tests that split a series over requests: long enough
/// for every push of the series to land within it on a loaded machine, short for the wait.
const STABLE_S: u64 = 8;
/// Longest wait for a series to become stable, or an auto-triggered job to appear.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

const BOUNDARY: &str = "radscore-test-boundary";

fn items<'a>(response: &'a Value, key: &str) -> Vec<&'a Value> {
    response[key]["Value"]
        .as_array()
        .map(|v| v.iter().collect())
        .unwrap_or_default()
}

fn first_value<'a>(item: &'a Value, key: &str) -> &'a Value {
    &item[key]["Value"][0]
}

/// Push with dicomweb-client; the printed response as JSON. The client runs on the
/// blocking pool: the test runtime has one thread, which the in-process server needs.
async fn push(app: &TestApp, paths: &[&str]) -> Value {
    let mut args = vec![
        "--url".to_owned(),
        app.base.clone(),
        "--api-key".to_owned(),
        app.key.clone(),
    ];
    args.extend(paths.iter().map(|p| p.to_string()));
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_support("stow_push.py", &args)
    })
    .await
    .expect("push finished");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Push `paths` with dicomweb-client `per_request` instances per request, in order; the
/// responses of the requests.
async fn push_split(app: &TestApp, paths: &[String], per_request: usize) -> Vec<Value> {
    let mut args = vec![
        "--url".to_owned(),
        app.base.clone(),
        "--api-key".to_owned(),
        app.key.clone(),
        "--per-request".to_owned(),
        per_request.to_string(),
    ];
    args.extend(paths.iter().cloned());
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_support("stow_push.py", &args)
    })
    .await
    .expect("push finished");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The RetrieveURL of every stored instance of a response.
fn stored_urls(response: &Value) -> Vec<String> {
    items(response, REFERENCED_SOP_SEQUENCE)
        .iter()
        .map(|i| first_value(i, RETRIEVE_URL).as_str().unwrap().to_owned())
        .collect()
}

/// The phantom's CT instance files, sorted by name.
fn phantom_paths() -> Vec<String> {
    let mut paths: Vec<String> = std::fs::read_dir(ct_phantom().join("dicom/image"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".dcm"))
        .collect();
    paths.sort();
    paths
}

/// A SEG of the phantom's mask written by highdicom into `dir`.
fn phantom_seg(dir: &std::path::Path) -> String {
    let seg_path = dir.join("mask.seg.dcm");
    let series_dir = ct_phantom().join("dicom/image");
    let mask = ct_phantom().join("nifti/mask/mask.nii.gz");
    run_support(
        "make_seg.py",
        &[
            "--series",
            series_dir.to_str().unwrap(),
            "--mask",
            mask.to_str().unwrap(),
            "--out",
            seg_path.to_str().unwrap(),
        ],
    );
    seg_path.display().to_string()
}

/// An RT Structure Set of the phantom written by make_rtstruct.py (`case`, else its
/// default shapes) into `dir`.
fn phantom_rtstruct(dir: &std::path::Path, case: Option<&str>) -> std::path::PathBuf {
    let rs_path = dir.join("rs.dcm");
    let series_dir = ct_phantom().join("dicom/image");
    let mut args = vec![
        "--series",
        series_dir.to_str().unwrap(),
        "--out",
        rs_path.to_str().unwrap(),
    ];
    if let Some(case) = case {
        args.extend(["--case", case]);
    }
    run_support("make_rtstruct.py", &args);
    rs_path
}

/// Give the admin's tenant an auto-trigger rule with this default location.
async fn set_auto_trigger(admin: &TestApp, default_location: &str) {
    let rule = serde_json::json!({ "auto_trigger": { "default_location": default_location } });
    let resp = admin
        .client
        .put(admin.url("/v1/tenant/dicomweb"))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

/// Poll `GET {url}` until its `stow.state` is `state`.
async fn wait_for_stow_state(app: &TestApp, url: &str, state: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (status, series) = app.get_json(url).await;
        assert_eq!(status, 200, "{series}");
        if series["stow"]["state"] == state {
            return series;
        }
        assert!(
            started.elapsed() < SETTLE_TIMEOUT,
            "never {state}: {series}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// A multipart/related body of `(content type, bytes)` parts.
fn related_body(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (media, bytes) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Type: {media}\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn post_related(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let resp = app
        .client
        .post(app.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, body)
}

fn dicom_related() -> String {
    format!("multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}")
}

/// dicomweb-client pushes the 60 CT slices: 200, every instance referenced with the
/// radscore series it became; then a SEG of that series is stored as its segmentation.
#[tokio::test]
async fn dicomweb_client_pushes_a_series_and_its_seg() {
    let app = spawn_app().await;
    let series_dir = ct_phantom().join("dicom/image");
    let response = push(&app, &[series_dir.to_str().unwrap()]).await;
    let stored = items(&response, REFERENCED_SOP_SEQUENCE);
    assert_eq!(stored.len(), 60, "{response}");
    assert!(
        items(&response, FAILED_SOP_SEQUENCE).is_empty(),
        "{response}"
    );
    let url = first_value(stored[0], RETRIEVE_URL)
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with("/v1/series/"), "{url}");
    assert!(
        stored
            .iter()
            .all(|i| first_value(i, RETRIEVE_URL) == url.as_str())
    );

    let series: Value = app
        .client
        .get(app.url(&url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(series["instance_count"], 60, "{series}");
    assert_eq!(series["dimensions"]["z"], 60, "{series}");

    let dir = tempfile::tempdir().unwrap();
    let seg_path = phantom_seg(dir.path());
    let response = push(&app, &[seg_path.as_str()]).await;
    let stored = items(&response, REFERENCED_SOP_SEQUENCE);
    assert_eq!(stored.len(), 1, "{response}");
    let seg_url = first_value(stored[0], RETRIEVE_URL).as_str().unwrap();
    assert!(seg_url.starts_with("/v1/segmentations/"), "{seg_url}");
    let seg: Value = app
        .client
        .get(app.url(seg_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        seg["series_id"],
        url.trim_start_matches("/v1/series/"),
        "{seg}"
    );
    assert_eq!(seg["format"], "dicom_seg");
    assert_eq!(seg["lesions"][0]["voxel_count"], 125_256, "{seg}");
}

/// One junk part among good slices: 202, the series stored, the junk part failed with
/// 0xC000 and a comment naming it; a wrong study in the path fails every part (409).
#[tokio::test]
async fn partial_and_total_failures_follow_ps3_18() {
    let app = spawn_app().await;
    let files = dicom_files(&ct_phantom().join("dicom/image"));
    let mut parts: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(_, bytes)| ("application/dicom", bytes.as_slice()))
        .collect();
    parts.push(("application/dicom", b"not a DICOM file".as_slice()));
    let (status, response) =
        post_related(&app, "/studies", &dicom_related(), related_body(&parts)).await;
    assert_eq!(status, 202, "{response}");
    assert_eq!(items(&response, REFERENCED_SOP_SEQUENCE).len(), 60);
    let failed = items(&response, FAILED_SOP_SEQUENCE);
    assert_eq!(failed.len(), 1, "{response}");
    assert_eq!(first_value(failed[0], FAILURE_REASON), CANNOT_UNDERSTAND);
    let comment = first_value(failed[0], ERROR_COMMENT).as_str().unwrap();
    assert!(comment.contains("part 61"), "{comment}");

    let one = [("application/dicom", files[0].1.as_slice())];
    let (status, response) = post_related(
        &app,
        "/studies/1.2.3.4",
        &dicom_related(),
        related_body(&one),
    )
    .await;
    assert_eq!(status, 409, "{response}");
    let failed = items(&response, FAILED_SOP_SEQUENCE);
    assert_eq!(first_value(failed[0], FAILURE_REASON), DOES_NOT_MATCH);
    assert!(first_value(failed[0], REFERENCED_SOP_INSTANCE_UID).is_string());
    assert!(items(&response, REFERENCED_SOP_SEQUENCE).is_empty());
}

/// A SEG over `RADSCORE_MAX_SEGMENTATION_MB` (here 0) pushed with its CT fails alone
/// with 0xA700 and a comment naming the limit; the CT is stored (202).
#[tokio::test]
async fn a_seg_over_the_segmentation_limit_fails_alone() {
    let app = spawn_app_configured(0, |c| c.max_segmentation_mb = 0).await;
    let series_dir = ct_phantom().join("dicom/image");
    let dir = tempfile::tempdir().unwrap();
    let seg_path = phantom_seg(dir.path());
    let files = dicom_files(&series_dir);
    let seg = std::fs::read(&seg_path).unwrap();
    let mut parts: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(_, bytes)| ("application/dicom", bytes.as_slice()))
        .collect();
    parts.push(("application/dicom", seg.as_slice()));
    let (status, response) =
        post_related(&app, "/studies", &dicom_related(), related_body(&parts)).await;
    assert_eq!(status, 202, "{response}");
    assert_eq!(items(&response, REFERENCED_SOP_SEQUENCE).len(), 60);
    let failed = items(&response, FAILED_SOP_SEQUENCE);
    assert_eq!(failed.len(), 1, "{response}");
    assert_eq!(first_value(failed[0], FAILURE_REASON), OUT_OF_RESOURCES);
    let comment = first_value(failed[0], ERROR_COMMENT).as_str().unwrap();
    assert!(
        comment.contains("RADSCORE_MAX_SEGMENTATION_MB"),
        "{comment}"
    );
}

/// A body that is not multipart/related of application/dicom is a 415 problem.
#[tokio::test]
async fn other_media_types_are_refused() {
    let app = spawn_app().await;
    let wrong = format!("multipart/related; type=\"application/dicom+json\"; boundary={BOUNDARY}");
    let (status, body) = post_related(&app, "/studies", &wrong, related_body(&[])).await;
    assert_problem(
        status,
        &body,
        415,
        "unsupported-media-type",
        &["application/dicom"],
    );
}

/// A PACS pushing one instance per request, out of order, re-sending some and a SEG before
/// the last slice (in the middle of the series): one series with all 60 slices behind one URL, the SEG waits and then
/// binds to the whole series, jobs wait for stability, and the result equals the one of
/// the same series uploaded at once.
#[tokio::test]
async fn a_series_split_over_requests_is_one_series_equal_to_a_single_upload() {
    let app = spawn_app_configured(2, |c| c.stow_stable_s = STABLE_S).await;
    let paths = phantom_paths();
    let dir = tempfile::tempdir().unwrap();
    let seg_path = phantom_seg(dir.path());

    // Out of order, one per request; a slice in the lesion is held back (the SEG's frames
    // lie on it, and the others leave a gap).
    let mut rest = paths.clone();
    let last = rest.remove(30);
    let mut shuffled: Vec<String> = rest.iter().step_by(2).cloned().collect();
    shuffled.extend(rest.iter().skip(1).step_by(2).rev().cloned());
    let responses = push_split(&app, &shuffled, 1).await;
    assert_eq!(responses.len(), 59);
    let url = stored_urls(&responses[0])[0].clone();
    assert!(url.starts_with("/v1/series/"), "{url}");
    for response in &responses {
        assert_eq!(stored_urls(response), vec![url.clone()], "{response}");
    }

    // The SEG before the last slice waits for it.
    let response = push(&app, &[seg_path.as_str()]).await;
    let seg_url = stored_urls(&response)[0].clone();
    assert!(seg_url.starts_with("/v1/segmentations/"), "{response}");
    let (status, seg) = app.get_json(&seg_url).await;
    assert_eq!(status, 200, "{seg}");
    assert_eq!(seg["status"], "pending", "{seg}");
    assert!(
        seg["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{seg}"
    );

    // Re-sent instances are the same instances; other bytes under a known UID are refused.
    let again = push_split(&app, &rest[..3], 3).await;
    assert_eq!(stored_urls(&again[0]), vec![url.clone(); 3], "{again:?}");
    let mut altered = std::fs::read(&rest[0]).unwrap();
    let end = altered.len() - 1;
    altered[end] ^= 0x01;
    let (status, response) = post_related(
        &app,
        "/studies",
        &dicom_related(),
        related_body(&[("application/dicom", altered.as_slice())]),
    )
    .await;
    assert_eq!(status, 409, "{response}");
    let failed = items(&response, FAILED_SOP_SEQUENCE);
    assert_eq!(first_value(failed[0], FAILURE_REASON), PROCESSING_FAILURE);
    let comment = first_value(failed[0], ERROR_COMMENT).as_str().unwrap();
    assert!(comment.contains("other content"), "{comment}");

    // The last slice completes the series and binds the waiting SEG to all of it.
    let response = push(&app, &[last.as_str()]).await;
    assert_eq!(stored_urls(&response), vec![url.clone()], "{response}");
    let (_, seg) = app.get_json(&seg_url).await;
    let series_id = url.trim_start_matches("/v1/series/");
    assert_eq!(seg["status"], "bound", "{seg}");
    assert_eq!(seg["series_id"], series_id, "{seg}");
    assert_eq!(seg["lesions"][0]["voxel_count"], 125_256, "{seg}");
    let (_, series) = app.get_json(&url).await;
    assert_eq!(series["instance_count"], 60, "{series}");
    assert_eq!(series["dimensions"]["z"], 60, "{series}");
    assert_eq!(series["stow"]["state"], "receiving", "{series}");

    // Jobs wait for the stability delay, then run on the whole series.
    let seg_id = seg["id"].as_str().unwrap();
    let lesions = serde_json::json!([{ "label": 1, "location": "pleura" }]);
    let body = serde_json::json!({
        "series_id": series_id, "segmentation_id": seg_id, "lesions": lesions
    });
    let (status, _, problem) = app.post_job(&body).await;
    assert_problem(status, &problem, 409, "series-not-stable", &[series_id]);
    let retry_after_s = problem["retry_after_s"].as_u64().expect("retry_after_s");
    assert!((1..=STABLE_S).contains(&retry_after_s), "{problem}");
    wait_for_stow_state(&app, &url, "complete").await;
    let split = app.run_job(series_id, seg_id, lesions.clone()).await;

    let (status, whole) = app
        .post_series_multipart(&dicom_files(&ct_phantom().join("dicom/image")))
        .await;
    assert_eq!(status, 201, "{whole}");
    let whole_id = whole["id"].as_str().unwrap();
    let seg_bytes = std::fs::read(&seg_path).unwrap();
    let (status, whole_seg) = app
        .post_segmentation(whole_id, seg_bytes, "mask.seg.dcm")
        .await;
    assert_eq!(status, 201, "{whole_seg}");
    let single = app
        .run_job(whole_id, whole_seg["id"].as_str().unwrap(), lesions)
        .await;
    assert_eq!(
        split["lesions"][0]["features"],
        single["lesions"][0]["features"]
    );
    assert_eq!(
        split["lesions"][0]["response_probability"],
        single["lesions"][0]["response_probability"]
    );
    assert!(split["lesions"][0]["features"].is_object(), "{split}");
}

/// Under an auto-trigger rule, a series pushed in six requests with its SEG in between
/// starts exactly one job, after the stability delay; a later new instance opens the next
/// version of the series, leaving the one the job used as it was. A series with a missing
/// slice stays incomplete and refuses jobs with the reason.
#[tokio::test]
async fn auto_trigger_fires_once_on_the_stable_series_and_gaps_stay_incomplete() {
    let app = spawn_app_configured(2, |c| c.stow_stable_s = STABLE_S).await;
    let admin = app.as_tenant("stow-auto", true).await;
    set_auto_trigger(&admin, "pleura").await;
    let paths = phantom_paths();
    let dir = tempfile::tempdir().unwrap();
    let seg_path = phantom_seg(dir.path());

    push_split(&admin, &paths[..30], 10).await;
    let seg_url = stored_urls(&push(&admin, &[seg_path.as_str()]).await)[0].clone();
    let responses = push_split(&admin, &paths[30..], 10).await;
    let url = stored_urls(&responses[0])[0].clone();
    let (_, seg) = admin.get_json(&seg_url).await;
    assert_eq!(seg["status"], "bound", "{seg}");
    let (_, jobs) = admin.get_json("/v1/jobs").await;
    assert!(jobs["jobs"].as_array().unwrap().is_empty(), "early: {jobs}");

    let started = std::time::Instant::now();
    let job = loop {
        let (_, jobs) = admin.get_json("/v1/jobs").await;
        if let Some(job) = jobs["jobs"].as_array().unwrap().first() {
            break job.clone();
        }
        assert!(started.elapsed() < SETTLE_TIMEOUT, "no auto-triggered job");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    assert_eq!(
        job["series_id"],
        url.trim_start_matches("/v1/series/"),
        "{job}"
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (_, jobs) = admin.get_json("/v1/jobs").await;
    assert_eq!(
        jobs["jobs"].as_array().unwrap().len(),
        1,
        "fired more than once: {jobs}"
    );

    // A PACS retry re-sends the SEG: the same segmentation answers, no second one is
    // stored and no second job is triggered (found by the break test).
    let again_seg = push(&admin, &[seg_path.as_str()]).await;
    assert_eq!(
        stored_urls(&again_seg),
        vec![seg_url.clone()],
        "{again_seg}"
    );
    tokio::time::sleep(std::time::Duration::from_secs(STABLE_S + 2)).await;
    let (_, jobs) = admin.get_json("/v1/jobs").await;
    assert_eq!(
        jobs["jobs"].as_array().unwrap().len(),
        1,
        "a re-sent SEG triggered again: {jobs}"
    );

    // After a job used it, a re-sent instance changes nothing; a new one opens version 2.
    let again = push(&admin, &[paths[0].as_str()]).await;
    assert_eq!(stored_urls(&again), vec![url.clone()], "{again}");
    let edited = dir.path().join("edited");
    run_support(
        "edit_dicom.py",
        &[
            "--in-dir",
            ct_phantom().join("dicom/image").to_str().unwrap(),
            "--out-dir",
            edited.to_str().unwrap(),
            "--set-first",
            "SOPInstanceUID=1.2.826.0.1.3680043.10.1234.9",
        ],
    );
    let mut edited_paths: Vec<_> = std::fs::read_dir(&edited)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    edited_paths.sort();
    let response = push(&admin, &[edited_paths[0].as_str()]).await;
    let next = stored_urls(&response)[0].clone();
    assert_ne!(next, url, "{response}");
    let (_, series) = admin.get_json(&next).await;
    assert_eq!(series["stow"]["version"], 2, "{series}");
    assert_eq!(series["stow"]["instances_received"], 61, "{series}");
    let (_, used) = admin.get_json(&url).await;
    assert_eq!(used["instance_count"], 60, "{used}");
    assert_eq!(used["stow"]["state"], "complete", "{used}");

    // Another tenant's copy with a slice missing in the middle: incomplete, jobs refused.
    let gap = app.as_tenant("stow-gap", false).await;
    let mut holed = paths.clone();
    holed.remove(30);
    let responses = push_split(&gap, &holed, 20).await;
    let gap_url = stored_urls(&responses[0])[0].clone();
    let series = wait_for_stow_state(&gap, &gap_url, "incomplete").await;
    let reason = series["stow"]["reason"].as_str().unwrap().to_owned();
    assert!(!reason.is_empty(), "{series}");
    let body = serde_json::json!({
        "series_id": gap_url.trim_start_matches("/v1/series/"),
        "segmentation_id": "none",
        "lesions": [{ "label": 1, "location": "pleura" }],
    });
    let (status, _, problem) = gap.post_job(&body).await;
    assert_problem(
        status,
        &problem,
        409,
        "series-incomplete",
        &[reason.as_str()],
    );
}

/// An RT Structure Set pushed by STOW-RS after its CT is stored as the series'
/// segmentation (its closed ROIs as lesions) and, under an auto-trigger rule, starts one
/// job on them once the series is stable.
#[tokio::test]
async fn an_rtstruct_pushed_by_stow_rs_arms_the_auto_trigger_like_a_seg() {
    let app = spawn_app_configured(2, |c| c.stow_stable_s = STABLE_S).await;
    let admin = app.as_tenant("stow-rt", true).await;
    set_auto_trigger(&admin, "soft_tissue").await;
    let dir = tempfile::tempdir().unwrap();
    let rs_path = phantom_rtstruct(dir.path(), None);

    let responses = push_split(&admin, &phantom_paths(), 60).await;
    let url = stored_urls(&responses[0])[0].clone();
    let rs = std::fs::read(&rs_path).unwrap();
    let body = related_body(&[("application/dicom", rs.as_slice())]);
    let (status, response) = post_related(&admin, "/studies", &dicom_related(), body).await;
    assert_eq!(status, 200, "{response}");
    let seg_url = stored_urls(&response)[0].clone();
    let (status, seg) = admin.get_json(&seg_url).await;
    assert_eq!(status, 200, "{seg}");
    assert_eq!(seg["format"], "dicom_rtstruct", "{seg}");
    assert_eq!(
        seg["series_id"],
        url.trim_start_matches("/v1/series/"),
        "{seg}"
    );
    let rois = seg["lesions"].as_array().unwrap().len();
    assert!(rois >= 1, "{seg}");

    let started = std::time::Instant::now();
    let job = loop {
        let (_, jobs) = admin.get_json("/v1/jobs").await;
        if let Some(job) = jobs["jobs"].as_array().unwrap().first() {
            break job.clone();
        }
        assert!(started.elapsed() < SETTLE_TIMEOUT, "no auto-triggered job");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    assert_eq!(job["segmentation_id"], seg["id"], "{job}");
    assert_eq!(job["lesions"].as_array().unwrap().len(), rois, "{job}");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (_, jobs) = admin.get_json("/v1/jobs").await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1, "{jobs}");
}

/// An RT Structure Set without an RT Referenced Series is routed by the CT instance its
/// contours reference (Contour Image Sequence) to the series holding it; pushed before
/// any of its CT instances arrived, it fails naming what was missing.
#[tokio::test]
async fn an_rtstruct_without_a_series_reference_is_routed_by_its_contour_images() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let rs_path = phantom_rtstruct(dir.path(), Some("no-series-reference"));
    let rs = std::fs::read(&rs_path).unwrap();
    let body = || related_body(&[("application/dicom", rs.as_slice())]);

    let (status, early) = post_related(&app, "/studies", &dicom_related(), body()).await;
    assert_eq!(status, 409, "{early}");
    assert!(
        early.to_string().contains("Contour Image Sequence"),
        "{early}"
    );

    let responses = push_split(&app, &phantom_paths(), 60).await;
    let url = stored_urls(&responses[0])[0].clone();
    let (status, response) = post_related(&app, "/studies", &dicom_related(), body()).await;
    assert_eq!(status, 200, "{response}");
    let (_, seg) = app.get_json(&stored_urls(&response)[0]).await;
    assert_eq!(seg["format"], "dicom_rtstruct", "{seg}");
    assert_eq!(
        seg["series_id"],
        url.trim_start_matches("/v1/series/"),
        "{seg}"
    );
    assert_eq!(seg["lesions"][0]["voxel_count"], 4000, "{seg}");
}

/// With the job queue full (`RADSCORE_MAX_QUEUED_JOBS` = 0), a due auto-trigger waits
/// instead of queueing a job past the bound: no job after the stability delay, and the
/// segmentation stays bound and usable.
#[tokio::test]
async fn auto_trigger_respects_the_queue_bound() {
    let app = spawn_app_configured(2, |c| {
        c.stow_stable_s = 1;
        c.max_queued_jobs = 0;
    })
    .await;
    let admin = app.as_tenant("stow-full", true).await;
    set_auto_trigger(&admin, "pleura").await;
    let dir = tempfile::tempdir().unwrap();
    let seg_path = phantom_seg(dir.path());
    push_split(&admin, &phantom_paths(), 60).await;
    let seg_url = stored_urls(&push(&admin, &[seg_path.as_str()]).await)[0].clone();
    let (_, seg) = admin.get_json(&seg_url).await;
    assert_eq!(seg["status"], "bound", "{seg}");
    // Stable after 1 s; the background task looks every second.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let (_, jobs) = admin.get_json("/v1/jobs").await;
    assert!(
        jobs["jobs"].as_array().unwrap().is_empty(),
        "past the bound: {jobs}"
    );
}

/// The blob files at or under `path` (a series prefix is a directory of instances).
fn blob_files(path: &std::path::Path) -> usize {
    if path.is_file() {
        return 1;
    }
    std::fs::read_dir(path).map_or(0, |entries| {
        entries.map(|e| blob_files(&e.unwrap().path())).sum()
    })
}

/// A SEG pushed (by dicomweb-client) before any CT instance of its series is held, not
/// refused: it opens the series resource (no instances yet), `GET` shows it `pending` and
/// why, and the CT instances pushed later land in that same resource and bind it to the
/// whole series.
#[tokio::test]
async fn a_seg_pushed_before_its_series_waits_and_binds_when_the_series_arrives() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let seg_path = phantom_seg(dir.path());

    let response = push(&app, &[seg_path.as_str()]).await;
    assert!(
        items(&response, FAILED_SOP_SEQUENCE).is_empty(),
        "{response}"
    );
    let seg_url = stored_urls(&response)[0].clone();
    assert!(seg_url.starts_with("/v1/segmentations/"), "{response}");
    let (status, seg) = app.get_json(&seg_url).await;
    assert_eq!(status, 200, "{seg}");
    assert_eq!(seg["status"], "pending", "{seg}");
    let reason = seg["reason"].as_str().unwrap();
    assert!(reason.contains("no CT instance"), "{reason}");
    let series_url = format!("/v1/series/{}", seg["series_id"].as_str().unwrap());
    let (status, series) = app.get_json(&series_url).await;
    assert_eq!(status, 200, "{series}");
    assert_eq!(series["instance_count"], 0, "{series}");
    // A resource without instances is not a series: never `complete` (found by the break
    // test), and says why.
    assert_ne!(series["stow"]["state"], "complete", "{series}");
    let why = series["stow"]["reason"].as_str().unwrap_or_default();
    assert!(why.contains("no CT instance"), "{series}");

    let series_dir = ct_phantom().join("dicom/image");
    let response = push(&app, &[series_dir.to_str().unwrap()]).await;
    assert_eq!(stored_urls(&response), vec![series_url.clone(); 60]);
    let (_, seg) = app.get_json(&seg_url).await;
    assert_eq!(seg["status"], "bound", "{seg}");
    assert_eq!(seg["lesions"][0]["voxel_count"], 125_256, "{seg}");
}

/// A SEG refused for its own content (here another frame of reference) fails at once with
/// its reason while its series is still receiving instances: no instance still to come can
/// make it map, so it is neither answered as stored nor left waiting (found by the break
/// test, where a SEG with short pixel data was answered as stored and waited for ever).
#[tokio::test]
async fn a_seg_faulty_in_itself_fails_while_its_series_receives() {
    let app = spawn_app_configured(1, |c| c.stow_stable_s = 600).await;
    let paths = phantom_paths();
    let halves: Vec<&str> = paths[..30].iter().map(String::as_str).collect();
    let response = push(&app, &halves).await;
    let series_url = stored_urls(&response)[0].clone();
    let (_, series) = app.get_json(&series_url).await;
    assert_eq!(series["stow"]["state"], "receiving", "{series}");

    let dir = tempfile::tempdir().unwrap();
    let seg_path = dir.path().join("other-frame.seg.dcm");
    let series_dir = ct_phantom().join("dicom/image");
    let mask = ct_phantom().join("nifti/mask/mask.nii.gz");
    run_support(
        "make_seg.py",
        &[
            "--series",
            series_dir.to_str().unwrap(),
            "--mask",
            mask.to_str().unwrap(),
            "--out",
            seg_path.to_str().unwrap(),
            "--frame-of-reference",
            "1.2.826.0.1.3680043.8.498.77",
        ],
    );
    let seg = std::fs::read(&seg_path).unwrap();
    let parts = [("application/dicom", seg.as_slice())];
    let (status, response) =
        post_related(&app, "/studies", &dicom_related(), related_body(&parts)).await;
    assert_eq!(status, 409, "{response}");
    assert!(
        items(&response, REFERENCED_SOP_SEQUENCE).is_empty(),
        "{response}"
    );
    let failed = items(&response, FAILED_SOP_SEQUENCE);
    assert_eq!(failed.len(), 1, "{response}");
    assert_eq!(
        first_value(failed[0], FAILURE_REASON),
        PROCESSING_FAILURE,
        "{response}"
    );
    let comment = first_value(failed[0], ERROR_COMMENT).as_str().unwrap();
    assert!(
        comment.contains("1.2.826.0.1.3680043.8.498.77") && comment.contains("FrameOfReferenceUID"),
        "{comment}"
    );
}

/// A STOW-RS series resource that never assembles and the SEG waiting for it.
struct Unassembled {
    series_url: String,
    series_id: String,
    seg_url: String,
    seg_id: String,
    /// The instance files pushed.
    pushed: Vec<String>,
}

/// Push 35 phantom slices with a gap of five (so they never assemble), then the phantom's
/// SEG, which waits for them (`status: pending`, bound to that series resource).
async fn unassembled_with_waiting_seg(app: &TestApp) -> Unassembled {
    let paths = phantom_paths();
    let pushed: Vec<String> = paths[..20].iter().chain(&paths[25..40]).cloned().collect();
    let with_gap: Vec<&str> = pushed.iter().map(String::as_str).collect();
    let response = push(app, &with_gap).await;
    let series_url = stored_urls(&response)[0].clone();
    let series_id = series_url.trim_start_matches("/v1/series/").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let seg_path = phantom_seg(dir.path());
    let response = push(app, &[seg_path.as_str()]).await;
    let seg_url = stored_urls(&response)[0].clone();
    let seg_id = seg_url.trim_start_matches("/v1/segmentations/").to_owned();
    let (_, seg) = app.get_json(&seg_url).await;
    assert_eq!(seg["status"], "pending", "{seg}");
    assert_eq!(seg["series_id"], series_id.as_str(), "{seg}");
    Unassembled {
        series_url,
        series_id,
        seg_url,
        seg_id,
        pushed,
    }
}

/// `DELETE /v1/series/{id}` of a STOW-RS series whose instances never assembled (a gap
/// in the stack) deletes what was staged: 204 (not 404), its instance files and the SEG
/// waiting for it are removed, both answer 410 afterwards, and the same instances pushed
/// again open a new series resource.
#[tokio::test]
async fn deleting_an_unassembled_stow_series_removes_its_instances_and_waiting_segs() {
    let app = spawn_app().await;
    let Unassembled {
        series_url,
        series_id,
        seg_url,
        seg_id,
        pushed,
    } = unassembled_with_waiting_seg(&app).await;
    let with_gap: Vec<&str> = pushed.iter().map(String::as_str).collect();

    let series_blobs = app.blob_dir().join("series").join(&series_id);
    let seg_blob = app.blob_dir().join("segmentations").join(&seg_id);
    assert_eq!((blob_files(&series_blobs), blob_files(&seg_blob)), (35, 1));
    let (status, body) = app.delete(&series_url).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!((blob_files(&series_blobs), blob_files(&seg_blob)), (0, 0));
    for url in [&series_url, &seg_url] {
        let (status, body) = app.get_json(url).await;
        assert_eq!(status, 410, "{url}: {body}");
    }
    let (status, body) = app.delete(&series_url).await;
    assert_eq!(status, 410, "{body}");

    let response = push(&app, &with_gap[..3]).await;
    let again = stored_urls(&response)[0].clone();
    assert!(
        again.starts_with("/v1/series/") && again != series_url,
        "{again}"
    );
}

/// A series pushed one instance per request is re-planned on every request from the
/// process-wide header cache: each instance's header is parsed once, not once per later
/// request (O(n), not O(n²)). Counted by `/metrics` of a server process of its own.
#[tokio::test]
async fn one_instance_per_request_parses_each_header_once() {
    use crate::process::{sigterm, start_server_with};
    /// Instances pushed, one per request.
    const PUSHED: usize = 20;
    let mut server = start_server_with(&["--no-workers"], &[]);
    let app = TestApp::external(&server.base, &server.key);
    let responses = push_split(&app, &phantom_paths()[..PUSHED], 1).await;
    assert_eq!(responses.len(), PUSHED);
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |outcome: &str| -> u64 {
        let series = format!("radscore_dicom_header_cache_total{{outcome=\"{outcome}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .unwrap_or_else(|| panic!("no {series} in {metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    // Request n plans n instances: one new, n - 1 cached.
    assert_eq!(count("miss"), PUSHED as u64, "{metrics}");
    assert!(
        count("hit") >= (PUSHED * (PUSHED - 1) / 2) as u64,
        "{metrics}"
    );
    sigterm(&server.child);
    let _ = server.child.wait();
}

/// The retention purge removes a STOW-RS series resource whose instances never assembled
/// (it has no series row) once its last instance is older than the period, with the SEG
/// waiting for it: both answer 410 naming retention and their files are gone.
#[tokio::test]
async fn retention_purges_an_unassembled_stow_series_and_its_waiting_seg() {
    let app = spawn_app_configured(1, |c| {
        // Long enough for the pushes below to finish on a loaded machine first.
        c.retention_hours = 15.0 / 3600.0;
        c.retention_sweep_s = 1;
    })
    .await;
    let Unassembled {
        series_url,
        series_id,
        seg_url,
        seg_id,
        ..
    } = unassembled_with_waiting_seg(&app).await;

    let started = std::time::Instant::now();
    let problem = loop {
        let (status, body) = app.get_json(&series_url).await;
        if status == 410 {
            break body;
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(90),
            "the unassembled series was never purged: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert_problem(410, &problem, 410, "gone", &["retention"]);
    let (status, problem) = app.get_json(&seg_url).await;
    assert_problem(status, &problem, 410, "gone", &["retention"]);
    let series_blobs = app.blob_dir().join("series").join(&series_id);
    let seg_blob = app.blob_dir().join("segmentations").join(&seg_id);
    assert_eq!((blob_files(&series_blobs), blob_files(&seg_blob)), (0, 0));
}

/// A part without header lines (an empty header block) is read whole: taken as
/// `application/dicom` when it is a DICOM Part 10 file, else the request is refused with a
/// 400 naming the part.
#[tokio::test]
async fn a_part_without_header_lines_is_dicom_or_a_400_naming_it() {
    let app = spawn_app().await;
    let paths = phantom_paths();
    let slice = std::fs::read(&paths[0]).unwrap();
    let body = |second: &[u8]| {
        let mut body =
            format!("--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n").into_bytes();
        body.extend_from_slice(&std::fs::read(&paths[1]).unwrap());
        body.extend_from_slice(format!("\r\n--{BOUNDARY}\r\n\r\n").as_bytes());
        body.extend_from_slice(second);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        body
    };
    let (status, response) = post_related(&app, "/studies", &dicom_related(), body(&slice)).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(stored_urls(&response).len(), 2, "{response}");

    let not_dicom = b"Content-Type: application/dicom\r\n\r\nnot a DICOM file";
    let (status, problem) = post_related(&app, "/studies", &dicom_related(), body(not_dicom)).await;
    assert_problem(
        status,
        &problem,
        400,
        "malformed-multipart",
        &["part 2", "no header lines", "Part 10"],
    );
    assert_eq!(problem["part"], 2, "{problem}");
}
