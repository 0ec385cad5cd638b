//! Segmentation formats over HTTP: every accepted format lands on the CT phantom series
//! with the same lesion, and faults are refused with a precise problem document.

use serde_json::Value;

use crate::helpers::*;

/// Upload the CT phantom series; its id.
async fn phantom_series(app: &TestApp) -> String {
    let files = dicom_files(&ct_phantom().join("dicom/image"));
    let (status, series) = app.post_series_zip(zip_files(&files)).await;
    assert_eq!(status, 201, "{series}");
    series["id"].as_str().unwrap().to_owned()
}

/// The phantom's NIfTI mask rewritten as NRRD (`convert_labelmap.py` with `args`).
fn phantom_mask_as_nrrd(dir: &std::path::Path, name: &str, args: &[&str]) -> Vec<u8> {
    let mask = ct_phantom().join("nifti/mask/mask.nii.gz");
    let out = dir.join(name);
    let mut all = vec![
        "--mask",
        mask.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    run_support("convert_labelmap.py", &all);
    std::fs::read(out).unwrap()
}

/// A 3D Slicer-style NRRD label map in RAS space with a reversed y axis is accepted: the
/// lesion keeps its segment name and the reference voxel count.
#[tokio::test]
async fn accepts_nrrd_label_map_in_ras_with_segment_name() {
    let app = spawn_app().await;
    let series_id = phantom_series(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let nrrd = phantom_mask_as_nrrd(
        dir.path(),
        "mask.seg.nrrd",
        &[
            "--space",
            "RAS",
            "--flip-axis",
            "1",
            "--segment-name",
            "1=GTV-1",
        ],
    );
    let (status, body) = app
        .post_segmentation(&series_id, nrrd, "mask.seg.nrrd")
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["format"], "nrrd");
    let lesions = body["lesions"].as_array().unwrap();
    assert_eq!(lesions.len(), 1, "{body}");
    assert_eq!(lesions[0]["label"], 1);
    assert_eq!(lesions[0]["name"], "GTV-1");
    assert_eq!(lesions[0]["voxel_count"], 125_256);
}

/// One case of `tests/data/segmentation_corpus.json`.
#[derive(serde::Deserialize)]
struct CorpusCase {
    name: String,
    status: u16,
    format: Option<String>,
    #[serde(default)]
    lesions: Vec<Value>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    detail: Vec<String>,
}

/// The corpus table, and the directory its files were built into.
fn build_corpus() -> (Vec<CorpusCase>, tempfile::TempDir) {
    let table = crate_dir().join("tests/data/segmentation_corpus.json");
    let dir = tempfile::tempdir().unwrap();
    run_support(
        "build_corpus.py",
        &[
            "--table",
            table.to_str().unwrap(),
            "--shared",
            shared_data().to_str().unwrap(),
            "--out-dir",
            dir.path().to_str().unwrap(),
        ],
    );
    let doc: Value = serde_json::from_slice(&std::fs::read(table).unwrap()).unwrap();
    let cases = serde_json::from_value(doc["cases"].clone()).unwrap();
    (cases, dir)
}

/// Every case of the segmentation corpus (each format variant and each fault) uploaded
/// against the CT phantom series gives the status, format and lesions or the problem type
/// and detail fragments the table states; the series and earlier uploads stay readable.
#[tokio::test]
async fn segmentation_corpus_gives_the_tabled_answers() {
    let (cases, dir) = build_corpus();
    let app = spawn_app().await;
    let series_id = phantom_series(&app).await;
    let mut failures = Vec::new();
    for case in &cases {
        let bytes = std::fs::read(dir.path().join(&case.name)).unwrap();
        let (status, body) = app.post_segmentation(&series_id, bytes, &case.name).await;
        if let Err(why) = check_case(case, status, &body) {
            failures.push(format!("{}: {why}\n  answer {status}: {body}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let (status, _) = status_json(
        app.client
            .get(app.url(&format!("/v1/series/{series_id}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "the series survives the refused uploads");
}

/// Compare one answer with its table row.
fn check_case(case: &CorpusCase, status: u16, body: &Value) -> Result<(), String> {
    if status != case.status {
        return Err(format!("status {status}, expected {}", case.status));
    }
    if let Some(kind) = &case.kind {
        let ty = body["type"].as_str().unwrap_or_default();
        if !ty.ends_with(&format!("/{kind}")) {
            return Err(format!("problem type {ty}, expected {kind}"));
        }
    }
    let detail = body["detail"].as_str().unwrap_or_default();
    if let Some(missing) = case.detail.iter().find(|f| !detail.contains(f.as_str())) {
        return Err(format!("detail lacks '{missing}'"));
    }
    if let Some(format) = &case.format
        && body["format"] != *format
    {
        return Err(format!("format {}, expected {format}", body["format"]));
    }
    if status == 201 {
        let found = body["lesions"].as_array().cloned().unwrap_or_default();
        if found.len() != case.lesions.len() {
            return Err(format!(
                "{} lesions, expected {}",
                found.len(),
                case.lesions.len()
            ));
        }
        for (f, e) in found.iter().zip(&case.lesions) {
            for (key, value) in e.as_object().into_iter().flatten() {
                // "warning": a fragment one of the lesion's warnings must contain.
                if key == "warning" {
                    let fragment = value.as_str().unwrap_or_default();
                    let warnings = f["warnings"].as_array().cloned().unwrap_or_default();
                    if !warnings
                        .iter()
                        .any(|w| w.as_str().is_some_and(|w| w.contains(fragment)))
                    {
                        return Err(format!("no lesion warning contains '{fragment}'"));
                    }
                    continue;
                }
                if f[key] != *value {
                    return Err(format!("lesion {key} = {}, expected {value}", f[key]));
                }
            }
        }
    }
    Ok(())
}
