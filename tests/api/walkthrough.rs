//! The README walkthrough over real HTTP on the IBSI phantoms.

use serde_json::{Value, json};

use crate::helpers::*;

/// Agreement required between radscore's and Python onnxruntime's probability (issue #2).
const ONNX_PROBABILITY_TOL: f64 = 1e-5;

async fn upload_ct_phantom(app: &TestApp) -> (String, Value) {
    let files = dicom_files(&ct_phantom().join("dicom/image"));
    let (status, series) = app.post_series_zip(zip_files(&files)).await;
    assert_eq!(status, 201, "{series}");
    (series["id"].as_str().unwrap().to_string(), series)
}

fn lesion_features(result: &Value, i: usize) -> &serde_json::Map<String, Value> {
    result["lesions"][i]["features"]
        .as_object()
        .expect("features object")
}

/// Score the result's feature vectors with Python onnxruntime and compare.
fn assert_matches_python_onnxruntime(result: &Value) {
    let lesions: Vec<&Value> = result["lesions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["status"] == "ok")
        .collect();
    let rows: Vec<&Value> = lesions.iter().map(|l| &l["features"]).collect();
    let dir = tempfile::tempdir().unwrap();
    let rows_path = dir.path().join("rows.json");
    std::fs::write(&rows_path, serde_json::to_vec(&rows).unwrap()).unwrap();
    let model_dir = crate_dir().join("models/demo");
    let out = run_support(
        "onnx_reference.py",
        &[
            "--model",
            model_dir.join("model.onnx").to_str().unwrap(),
            "--manifest",
            model_dir.join("manifest.json").to_str().unwrap(),
            "--features",
            rows_path.to_str().unwrap(),
        ],
    );
    let expected: Vec<f64> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(expected.len(), lesions.len());
    for (lesion, want) in lesions.iter().zip(expected) {
        let got = lesion["response_probability"]
            .as_f64()
            .expect("probability");
        assert!(
            (got - want).abs() <= ONNX_PROBABILITY_TOL,
            "radscore {got} vs onnxruntime {want}"
        );
    }
}

/// README walkthrough on the IBSI CT phantom: zip upload, NIfTI mask, job, result; the
/// probability equals Python onnxruntime's for the same feature vector.
#[tokio::test]
async fn ct_phantom_walkthrough_matches_python_onnxruntime() {
    let app = spawn_app().await;
    let (series_id, series) = upload_ct_phantom(&app).await;
    assert_eq!(series["dimensions"], json!({"x": 204, "y": 201, "z": 60}));
    assert!((series["spacing_mm"]["z"].as_f64().unwrap() - 3.0).abs() < 1e-6);
    assert!((series["spacing_mm"]["x"].as_f64().unwrap() - 0.977).abs() < 1e-3);
    assert!(
        (series["origin_mm"][2].as_f64().unwrap() + 100.4).abs() < 1e-3,
        "{series}"
    );

    let mask = std::fs::read(ct_phantom().join("nifti/mask/mask.nii.gz")).unwrap();
    let (status, seg) = app.post_segmentation(&series_id, mask, "mask.nii.gz").await;
    assert_eq!(status, 201, "{seg}");
    assert_eq!(seg["format"], "nifti");
    assert_eq!(seg["lesions"][0]["label"], 1);
    assert_eq!(seg["lesions"][0]["voxel_count"], 125_256);

    let seg_id = seg["id"].as_str().unwrap();
    let result = app
        .run_job(
            &series_id,
            seg_id,
            json!([{"label": 1, "location": "pleura"}]),
        )
        .await;
    let lesion = &result["lesions"][0];
    assert_eq!(lesion["status"], "ok", "{lesion}");
    assert_eq!(lesion["location"], "pleura");
    let p = lesion["response_probability"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p));
    assert_eq!(result["model"]["synthetic_demo"], true);
    assert!(
        result["disclaimer"]
            .as_str()
            .unwrap()
            .contains("not be used for clinical")
    );
    assert!(result["model"]["sha256"].as_str().unwrap().len() >= 64);
    // Config A's voxel-count volume holds on the unresampled grid (IBSI 3.1.2).
    let vol = lesion_features(&result, 0)["morph_vol_approx"]
        .as_f64()
        .unwrap();
    assert!((vol - 358_000.0).abs() <= 5_000.0, "morph_vol_approx {vol}");
    assert_matches_python_onnxruntime(&result);

    let (status, ready) =
        status_json(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["database"], "ok");
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "radscore_jobs_finished_total",
        "radscore_upload_bytes_total",
        "radscore_job_duration_seconds",
        "radscore_feature_extraction_seconds",
        "radscore_model_inference_seconds",
        "radscore_jobs{status=\"succeeded\"}",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}:\n{metrics}");
    }
}

/// A DICOM SEG built with highdicom for the CT phantom, and a shuffled multipart upload of
/// the same series, give exactly the features of the zip + NIfTI route.
#[tokio::test]
async fn seg_and_shuffled_upload_give_identical_features() {
    let app = spawn_app().await;
    let (series_id, _) = upload_ct_phantom(&app).await;
    let nifti = std::fs::read(ct_phantom().join("nifti/mask/mask.nii.gz")).unwrap();
    let (_, seg_nifti) = app
        .post_segmentation(&series_id, nifti.clone(), "mask.nii.gz")
        .await;

    let dir = tempfile::tempdir().unwrap();
    let seg_path = dir.path().join("mask.seg.dcm");
    run_support(
        "make_seg.py",
        &[
            "--series",
            ct_phantom().join("dicom/image").to_str().unwrap(),
            "--mask",
            ct_phantom()
                .join("nifti/mask/mask.nii.gz")
                .to_str()
                .unwrap(),
            "--out",
            seg_path.to_str().unwrap(),
        ],
    );
    let (status, seg_dicom) = app
        .post_segmentation(
            &series_id,
            std::fs::read(&seg_path).unwrap(),
            "mask.seg.dcm",
        )
        .await;
    assert_eq!(status, 201, "{seg_dicom}");
    assert_eq!(seg_dicom["format"], "dicom_seg");
    assert_eq!(seg_dicom["lesions"][0]["voxel_count"], 125_256);

    let mut files = dicom_files(&ct_phantom().join("dicom/image"));
    files.reverse();
    files.swap(3, 40);
    files.swap(10, 25);
    let (status, shuffled) = app.post_series_multipart(&files).await;
    assert_eq!(status, 201, "{shuffled}");
    let shuffled_id = shuffled["id"].as_str().unwrap();
    let (_, seg_shuffled) = app
        .post_segmentation(shuffled_id, nifti, "mask.nii.gz")
        .await;

    let lesions = json!([{"label": 1, "location": "lymph_node"}]);
    let a = app
        .run_job(
            &series_id,
            seg_nifti["id"].as_str().unwrap(),
            lesions.clone(),
        )
        .await;
    let b = app
        .run_job(
            &series_id,
            seg_dicom["id"].as_str().unwrap(),
            lesions.clone(),
        )
        .await;
    let c = app
        .run_job(shuffled_id, seg_shuffled["id"].as_str().unwrap(), lesions)
        .await;
    assert_eq!(
        lesion_features(&a, 0),
        lesion_features(&b, 0),
        "SEG vs NIfTI"
    );
    assert_eq!(
        lesion_features(&a, 0),
        lesion_features(&c, 0),
        "shuffled vs ordered"
    );
    assert_eq!(
        a["lesions"][0]["response_probability"],
        c["lesions"][0]["response_probability"]
    );
}

/// The IBSI digital phantom, converted to a DICOM series, through the full HTTP flow: the
/// intensity and morphology features equal the IBSI reference values.
#[tokio::test]
async fn digital_phantom_walkthrough_matches_ibsi_reference() {
    let app = spawn_app().await;
    let phantom = shared_data().join("ibsi1/digital_phantom/nifti");
    let dir = tempfile::tempdir().unwrap();
    run_support(
        "nifti_to_dicom.py",
        &[
            "--image",
            phantom.join("image/phantom.nii.gz").to_str().unwrap(),
            "--out-dir",
            dir.path().to_str().unwrap(),
        ],
    );
    let (status, series) = app.post_series_multipart(&dicom_files(dir.path())).await;
    assert_eq!(status, 201, "{series}");
    assert_eq!(series["dimensions"], json!({"x": 5, "y": 4, "z": 4}));
    let series_id = series["id"].as_str().unwrap();
    let mask = std::fs::read(phantom.join("mask/mask.nii.gz")).unwrap();
    let (status, seg) = app.post_segmentation(series_id, mask, "mask.nii.gz").await;
    assert_eq!(status, 201, "{seg}");
    assert_eq!(seg["lesions"][0]["voxel_count"], 74);

    let result = app
        .run_job(
            series_id,
            seg["id"].as_str().unwrap(),
            json!([{"label": 1, "location": "other"}]),
        )
        .await;
    let features = lesion_features(&result, 0);
    let refs = reference_rows("digital_phantom");
    let unreferenced = unreferenced_tags("digital_phantom");
    let mut checked = 0;
    for (tag, value) in features {
        if !(tag.starts_with("stat_") || tag.starts_with("morph_")) {
            continue; // texture depends on the profile's discretisation; see tests/ibsi_features.rs
        }
        if unreferenced.contains(tag.as_str()) {
            continue; // IBSI lists it without a value ("not standardized", e.g. OMBB/MVEE)
        }
        let (reference, tol) = refs
            .iter()
            .find(|(t, _, _)| t == tag)
            .map(|(_, r, t)| (*r, *t))
            .expect(tag);
        let got = value.as_f64().unwrap();
        // Rows with tolerance 0 are rounded to 3 significant digits (IBSI tables).
        let allowed = tol.max(radscore::compliance::rounding_tolerance(reference));
        assert!(
            (got - reference).abs() <= allowed,
            "{tag}: {got} vs IBSI {reference} ± {allowed}"
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} features checked");
    assert_matches_python_onnxruntime(&result);
}

/// (tag, reference value, tolerance) rows of one IBSI data set.
fn reference_rows(data_set: &str) -> Vec<(String, f64, f64)> {
    let path = shared_data().join("ibsi1/reference_values/ibsi1_reference_values_long.csv");
    let mut rdr = csv::Reader::from_path(path).unwrap();
    rdr.records()
        .map(|r| r.unwrap())
        .filter(|r| &r[0] == data_set)
        .filter_map(|r| Some((r[3].to_string(), r[5].parse().ok()?, r[6].parse().ok()?)))
        .collect()
}

/// Tags the IBSI table lists for `data_set` without a reference value.
fn unreferenced_tags(data_set: &str) -> std::collections::BTreeSet<String> {
    let path = shared_data().join("ibsi1/reference_values/ibsi1_reference_values_long.csv");
    let mut rdr = csv::Reader::from_path(path).unwrap();
    rdr.records()
        .map(|r| r.unwrap())
        .filter(|r| &r[0] == data_set && r[5].parse::<f64>().is_err())
        .map(|r| r[3].to_string())
        .collect()
}

/// A lesion that cannot be computed (single voxel, single slice) fails alone: it carries an
/// error code, the others have results, and the schema is the same. A label the
/// segmentation does not have is refused when the job is created, naming it and the
/// labels there are.
#[tokio::test]
async fn uncomputable_lesions_fail_alone() {
    let app = spawn_app().await;
    let (series_id, _) = upload_ct_phantom(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mask_extra.nii.gz");
    run_support(
        "add_small_labels.py",
        &[
            "--mask",
            ct_phantom()
                .join("nifti/mask/mask.nii.gz")
                .to_str()
                .unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let (status, seg) = app
        .post_segmentation(
            &series_id,
            std::fs::read(&out).unwrap(),
            "mask_extra.nii.gz",
        )
        .await;
    assert_eq!(status, 201, "{seg}");
    let seg_id = seg["id"].as_str().unwrap();
    let (status, _, problem) = app
        .post_job(
            &json!({"series_id": series_id, "segmentation_id": seg_id, "lesions": [
                {"label": 1, "location": "pleura"},
                {"label": 9, "location": "soft_tissue"},
                {"label": 12, "location": "other"},
            ]}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/unknown-lesion-label")
    );
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("label(s) 9, 12 are not lesions")
            && detail.contains("its labels are 1, 2, 3"),
        "{detail}"
    );
    assert_eq!(problem["available_labels"], json!([1, 2, 3]));
    let lesions = json!([
        {"label": 1, "location": "pleura"},
        {"label": 2, "location": "other"},
        {"label": 3, "location": "other"},
    ]);
    let result = app.run_job(&series_id, seg_id, lesions).await;
    let l = result["lesions"].as_array().unwrap();
    assert_eq!(l[0]["status"], "ok");
    assert!(l[0]["response_probability"].is_number());
    let codes: Vec<&str> = l[1..]
        .iter()
        .map(|x| x["error"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["too_few_voxels", "single_slice"]);
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    for lesion in &l[1..] {
        assert_eq!(keys(lesion), keys(&l[0]), "stable schema");
        assert!(lesion["response_probability"].is_null());
        assert!(lesion["features"].as_object().unwrap().is_empty());
    }
    assert_matches_python_onnxruntime(&result);
}

/// The running service proves its own compliance: the bundled digital phantom is computed
/// with this build and every computed feature is within the IBSI tolerance.
#[tokio::test]
async fn compliance_endpoint_passes_every_computed_feature() {
    let app = spawn_app().await;
    let (status, report) = status_json(
        app.client
            .get(app.url("/v1/compliance"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["data_set"], "digital_phantom");
    assert_eq!(report["failed"], 0, "{report}");
    assert!(
        report["passed"].as_u64().unwrap() >= 177,
        "{}",
        report["passed"]
    );
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 487, "every reference row is listed");
}
