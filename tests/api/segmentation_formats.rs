//! Segmentation formats over HTTP: every accepted format lands on the CT phantom series
//! with the same lesion, and faults are refused with a precise problem document.

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
