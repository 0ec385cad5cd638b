//! Bad input gets a precise `application/problem+json` 4xx, never a 5xx, and the server
//! keeps serving.

use serde_json::json;

use crate::helpers::*;

/// A file that is not DICOM is refused naming the file.
#[tokio::test]
async fn rejects_non_dicom_file_naming_it() {
    let app = spawn_app().await;
    let mut files = dicom_files(&ct_phantom().join("dicom/image"))[..3].to_vec();
    files.push(("notes.txt".into(), b"this is not a DICOM file".to_vec()));
    let (status, body) = app.post_series_multipart(&files).await;
    assert_problem(status, &body, 422, "not-dicom", &["notes.txt"]);
}

/// Two series mixed in one upload are refused listing both SeriesInstanceUIDs.
#[tokio::test]
async fn rejects_two_mixed_series_listing_both() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let phantom = shared_data().join("ibsi1/digital_phantom/nifti/image/phantom.nii.gz");
    run_support(
        "nifti_to_dicom.py",
        &[
            "--image",
            phantom.to_str().unwrap(),
            "--out-dir",
            dir.path().to_str().unwrap(),
        ],
    );
    let mut files = dicom_files(dir.path());
    files.extend(
        dicom_files(&ct_phantom().join("dicom/image"))
            .into_iter()
            .take(2),
    );
    let (status, body) = app.post_series_multipart(&files).await;
    assert_problem(
        status,
        &body,
        422,
        "mixed-series",
        &["2 series", "(4 instances)", "(2 instances)"],
    );
}

/// A zip entry whose name leaves the archive (`..`, absolute) is refused by position before
/// anything is inflated, and a zip whose entries declare more than the inflate limit is
/// refused from its directory alone (413), without writing the bomb to disk.
#[tokio::test]
async fn rejects_traversal_names_and_declared_zip_bombs() {
    let app = spawn_app_configured(2, |c| c.max_unzipped_mb = 1).await;
    let mut files = dicom_files(&ct_phantom().join("dicom/image"))[..2].to_vec();
    files[1].0 = "../../../../tmp/x.dcm".into();
    let (status, body) = app.post_series_zip(zip_files(&files)).await;
    assert_problem(
        status,
        &body,
        400,
        "invalid-archive",
        &["entry 2", "path traversal"],
    );
    files[1].0 = "/tmp/x.dcm".into();
    let (status, body) = app.post_series_zip(zip_files(&files)).await;
    assert_problem(
        status,
        &body,
        400,
        "invalid-archive",
        &["entry 2", "absolute path"],
    );

    let bomb = vec![("zeros.dcm".to_string(), vec![0u8; 3 << 20])];
    let (status, body) = app.post_series_zip(zip_files(&bomb)).await;
    assert_problem(
        status,
        &body,
        413,
        "archive-too-large",
        &["the total its entries declare"],
    );
}

/// A missing slice is refused naming where the gap is.
#[tokio::test]
async fn rejects_missing_slice_naming_the_gap() {
    let app = spawn_app().await;
    let mut files = dicom_files(&ct_phantom().join("dicom/image"));
    files.remove(30);
    let (status, body) = app.post_series_zip(zip_files(&files)).await;
    assert_problem(
        status,
        &body,
        422,
        "missing-slice",
        &["gap of 6.000 mm", "expected spacing 3.000 mm"],
    );
}

/// A mask with other dimensions is refused saying how it differs, an all-background one
/// saying it holds no label (as an RT Structure Set without contours is); nothing stored
/// is lost.
#[tokio::test]
async fn rejects_mask_with_other_dimensions_or_no_label() {
    let app = spawn_app().await;
    let files = dicom_files(&ct_phantom().join("dicom/image"));
    let (_, series) = app.post_series_zip(zip_files(&files)).await;
    let series_id = series["id"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mask = ct_phantom().join("nifti/mask/mask.nii.gz");
    run_support(
        "nifti_variants.py",
        &[
            "--mask",
            mask.to_str().unwrap(),
            "--out-dir",
            dir.path().to_str().unwrap(),
        ],
    );
    let cropped = std::fs::read(dir.path().join("cropped.nii.gz")).unwrap();
    let (status, body) = app
        .post_segmentation(series_id, cropped, "cropped.nii.gz")
        .await;
    assert_problem(
        status,
        &body,
        422,
        "segmentation-refused",
        &["dimensions differ"],
    );
    let shifted = std::fs::read(dir.path().join("shifted.nii.gz")).unwrap();
    let (status, body) = app
        .post_segmentation(series_id, shifted, "shifted.nii.gz")
        .await;
    assert_problem(
        status,
        &body,
        422,
        "segmentation-refused",
        &["origin differs"],
    );
    let empty = std::fs::read(dir.path().join("empty.nii.gz")).unwrap();
    let (status, body) = app
        .post_segmentation(series_id, empty, "empty.nii.gz")
        .await;
    assert_problem(
        status,
        &body,
        422,
        "segmentation-refused",
        &["'empty.nii.gz' holds no nonzero label"],
    );
    let (status, _) = status_json(
        app.client
            .get(app.url(&format!("/v1/series/{series_id}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "the stored series survives refused masks");
}

/// A job for an unknown series, or with an unknown location, is refused precisely.
#[tokio::test]
async fn rejects_unknown_series_and_unknown_location() {
    let app = spawn_app().await;
    let (status, _, body) = app
        .post_job(&json!({"series_id": "nope", "segmentation_id": "x", "lesions": [{"label": 1, "location": "pleura"}]}))
        .await;
    assert_problem(
        status,
        &body,
        422,
        "unknown-series",
        &["series 'nope' does not exist"],
    );

    let (status, _, body) = app
        .post_job(&json!({"series_id": "nope", "segmentation_id": "x", "lesions": [{"label": 1, "location": "lung"}]}))
        .await;
    assert_problem(
        status,
        &body,
        422,
        "invalid-job-request",
        &["location 'lung'", "pleura, lymph_node"],
    );

    let resp = app
        .client
        .post(app.url("/v1/jobs"))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(resp).await;
    assert_problem(status, &body, 400, "malformed-json", &[]);

    let (status, body) = status_json(
        app.client
            .get(app.url("/v1/jobs/unknown"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_problem(status, &body, 404, "not-found", &["unknown"]);
}

/// An upload over the size limit is refused with 413 from its declared length.
#[tokio::test]
async fn rejects_upload_over_the_size_limit() {
    let app = spawn_app_with(1).await;
    let files = dicom_files(&ct_phantom().join("dicom/image"));
    let (status, body) = app.post_series_multipart(&files).await;
    assert_problem(status, &body, 413, "upload-too-large", &["1048576 bytes"]);
    let (status, _) = status_json(app.client.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(status, 200);
}

/// Unknown routes and methods answer problem+json too.
#[tokio::test]
async fn unknown_route_and_method_are_problems() {
    let app = spawn_app().await;
    let (status, body) =
        status_json(app.client.get(app.url("/v2/nothing")).send().await.unwrap()).await;
    assert_problem(status, &body, 404, "no-route", &["/v2/nothing"]);
    let (status, body) = status_json(
        app.client
            .delete(app.url("/v1/series"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_problem(status, &body, 405, "method-not-allowed", &["DELETE"]);
}

/// Copy the demo series with `edit_dicom.py` edits; returns the edited files.
fn edited_demo_series(args: &[&str]) -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let sample = dir.path().join("sample");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_radscore"))
        .args([
            "demo-data",
            "--seed",
            "3",
            "--out",
            sample.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let out = dir.path().join("edited");
    let (series, out_str) = (sample.join("series"), out.to_str().unwrap().to_string());
    let mut all = vec!["--in-dir", series.to_str().unwrap(), "--out-dir", &out_str];
    all.extend_from_slice(args);
    run_support("edit_dicom.py", &all);
    dicom_files(&out)
}

/// Hostile structure (deep nesting, a 4 GB declared length) is refused before parsing,
/// and corrupt pixel-module values are named; the server keeps serving.
#[tokio::test]
async fn rejects_hostile_structure_and_corrupt_pixel_module() {
    let app = spawn_app().await;
    let cases: [(&[&str], &str, &str); 5] = [
        (
            &["--nest-depth", "3000"],
            "malformed-dicom",
            "nested deeper than 32",
        ),
        (
            &["--huge-pixel-length"],
            "malformed-dicom",
            "declares 4294967280 bytes",
        ),
        (
            &["--set", "BitsStored=0"],
            "invalid-attribute",
            "BitsStored",
        ),
        (
            &["--set", "RescaleSlope=NaN"],
            "invalid-attribute",
            "RescaleSlope",
        ),
        (
            &["--set", "SeriesInstanceUID=1.2.3a"],
            "invalid-attribute",
            "SeriesInstanceUID",
        ),
    ];
    for (args, kind, needle) in cases {
        let files = edited_demo_series(args);
        let (status, body) = app.post_series_multipart(&files).await;
        assert_problem(status, &body, 422, kind, &[needle]);
    }
    let (status, _) = status_json(app.client.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(status, 200, "the server survives");
}

/// A segmentation over `RADSCORE_MAX_SEGMENTATION_MB` is refused with 413 naming that
/// limit, as a raw body and as multipart (read into memory, so it has its own bound); a
/// small one is still stored and the server keeps serving.
#[tokio::test]
async fn rejects_segmentation_over_its_size_limit() {
    /// The limit set for the test, MiB, and a body just over it.
    const LIMIT_MB: u64 = 1;
    let over = vec![0u8; ((LIMIT_MB as usize) << 20) + 1];
    let app = spawn_app_configured(0, |c| c.max_segmentation_mb = LIMIT_MB).await;
    let (series_id, seg_id, _, _) = app.upload_digital_phantom().await;
    let needles = ["1048576 bytes", "RADSCORE_MAX_SEGMENTATION_MB"];

    let (status, body) = app
        .post_segmentation(&series_id, over.clone(), "big.nii")
        .await;
    assert_problem(status, &body, 413, "segmentation-too-large", &needles);

    let form = reqwest::multipart::Form::new()
        .text("series_id", series_id.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(over).file_name("big.nii"),
        );
    let resp = app
        .client
        .post(app.url("/v1/segmentations"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(resp).await;
    assert_problem(status, &body, 413, "segmentation-too-large", &needles);

    let (status, body) = status_json(
        app.client
            .get(app.url(&format!("/v1/segmentations/{seg_id}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Instances that disagree on the patient or the study, a SOPInstanceUID repeated at
/// another position, Rows stored as text, ImagePositionPatient stored as binary integers
/// and a colour pixel module are each refused naming
/// the attribute and the files, and never quoting a patient identifier.
#[tokio::test]
async fn rejects_inconsistent_instances_naming_attribute_and_files() {
    /// The edited first file and the second one, as `edited_demo_series` names them.
    const FIRST: &str = "CT_0000.dcm";
    const SECOND: &str = "CT_0001.dcm";
    let app = spawn_app().await;
    /// edit_dicom.py arguments, problem kind, needles, texts that must not appear.
    type Case<'a> = (&'a [&'a str], &'a str, &'a [&'a str], &'a [&'a str]);
    let cases: [Case; 7] = [
        (
            &["--set-first", "PatientID=OTHER-PID-0815"],
            "mixed-patient-or-study",
            &["PatientID (0010,0020)", FIRST, SECOND, "one patient"],
            &["OTHER-PID-0815", "DEMO-3"],
        ),
        (
            &["--set-first", "PatientName=Otherpatient^Quilla"],
            "mixed-patient-or-study",
            &["PatientName (0010,0010)", FIRST, SECOND],
            &["Otherpatient", "Quilla", radscore::demo::PATIENT_NAME],
        ),
        (
            &[
                "--set-first",
                "StudyInstanceUID=1.2.826.0.1.3680043.8.498.777",
            ],
            "mixed-patient-or-study",
            &["StudyInstanceUID (0020,000D)", FIRST, SECOND],
            &["1.2.826.0.1.3680043.8.498.777"],
        ),
        (
            &["--duplicate-sop-uid"],
            "conflicting-duplicate-instance",
            &["same SOPInstanceUID", FIRST, SECOND, "different images"],
            &["missing slice"],
        ),
        (
            &["--rows-vr", "LO"],
            "invalid-attribute",
            &[FIRST, "Rows", "VR LO", "expected VR US"],
            &["could not be decoded"],
        ),
        (
            &["--position-vr", "US"],
            "invalid-attribute",
            &[FIRST, "ImagePositionPatient", "VR US", "expected VR DS"],
            &["gap", "missing slice"],
        ),
        (
            &["--set-first", "SamplesPerPixel=3"],
            "invalid-attribute",
            &[FIRST, "SamplesPerPixel (0028,0002) is 3", "expected 1"],
            &["could not be decoded"],
        ),
    ];
    for (args, kind, needles, absent) in cases {
        let files = edited_demo_series(args);
        assert_eq!(files[0].0, FIRST, "{args:?}");
        let (status, body) = app.post_series_multipart(&files).await;
        assert_problem(status, &body, 422, kind, needles);
        let text = body.to_string();
        for a in absent {
            assert!(!text.contains(a), "{args:?}: '{a}' in {text}");
        }
    }
}

/// A malformed `deidentify` on a series upload is a problem document naming it, and
/// `deidentify` on STOW-RS, which does not de-identify, is refused before anything is
/// stored instead of being ignored with the patient attributes kept.
#[tokio::test]
async fn deidentify_that_cannot_be_honoured_is_refused_by_name() {
    let app = spawn_app().await;
    let files = dicom_files(&ct_phantom().join("dicom/image"))[..2].to_vec();
    let resp = app
        .client
        .post(app.url("/v1/series?deidentify=yes"))
        .header("content-type", "application/zip")
        .body(zip_files(&files))
        .send()
        .await
        .expect("request");
    let (status, body) = status_json(resp).await;
    assert_problem(status, &body, 400, "invalid-query", &["deidentify"]);

    let boundary = "radscore-bad-input";
    let mut related = Vec::new();
    related.extend_from_slice(
        format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
    );
    related.extend_from_slice(&files[0].1);
    related.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = app
        .client
        .post(app.url("/studies?deidentify=true"))
        .header(
            "content-type",
            format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
        )
        .body(related)
        .send()
        .await
        .expect("request");
    let (status, body) = status_json(resp).await;
    assert_problem(
        status,
        &body,
        400,
        "unsupported-parameter",
        &["deidentify", "nothing was stored"],
    );
    let stored = std::fs::read_dir(app.blob_dir().join("series")).map_or(0, |d| d.count());
    assert_eq!(stored, 0, "a refused push stored instances");
}

/// A malformed query on a segmentation upload (`series_id` given twice) is a problem
/// document naming the parameter, not axum's plain text (found by the break test).
#[tokio::test]
async fn malformed_segmentation_query_is_a_problem_document() {
    let app = spawn_app().await;
    let resp = app
        .client
        .post(app.url("/v1/segmentations?series_id=a&series_id=b"))
        .header("content-type", "application/octet-stream")
        .body(b"not read".to_vec())
        .send()
        .await
        .expect("request");
    let (status, body) = status_json(resp).await;
    assert_problem(status, &body, 400, "invalid-query", &["series_id"]);
}
