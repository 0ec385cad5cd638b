//! DICOMweb STOW-RS (`POST /studies`): the real `dicomweb-client` package pushes the CT
//! phantom and a highdicom SEG to the running server; hand-built bodies check the
//! partial-failure (202), all-failed (409) and media-type (415) answers.

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
    let seg_path = dir.path().join("mask.seg.dcm");
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
    let response = push(&app, &[seg_path.to_str().unwrap()]).await;
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
    let seg_path = dir.path().join("mask.seg.dcm");
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
