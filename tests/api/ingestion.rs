//! Series ingestion over HTTP: irregular geometry refused or resampled by configuration,
//! de-identification of stored instances, and multipart bodies that lack their boundary.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

/// The CT phantom's files with `edit` applied to each (given its sorted slice index).
fn edited_phantom(
    mut edit: impl FnMut(usize, &mut dicom_object::DefaultDicomObject),
) -> Vec<(String, Vec<u8>)> {
    let files = dicom_files(&ct_phantom().join("dicom/image"));
    let z = |bytes: &[u8]| -> f64 {
        let obj = dicom_object::OpenFileOptions::new()
            .from_reader(std::io::Cursor::new(bytes))
            .unwrap();
        obj.element(tags::IMAGE_POSITION_PATIENT)
            .unwrap()
            .to_multi_float64()
            .unwrap()[2]
    };
    let mut order: Vec<(f64, usize)> = files
        .iter()
        .enumerate()
        .map(|(n, f)| (z(&f.1), n))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut index = vec![0; files.len()];
    for (k, (_, n)) in order.iter().enumerate() {
        index[*n] = k;
    }
    files
        .into_iter()
        .enumerate()
        .map(|(n, (name, bytes))| {
            let mut obj = dicom_object::OpenFileOptions::new()
                .from_reader(std::io::Cursor::new(&bytes[..]))
                .unwrap();
            edit(index[n], &mut obj);
            let mut out = Vec::new();
            obj.write_all(&mut out).unwrap();
            (name, out)
        })
        .collect()
}

/// The phantom (image x axis along LPS +x, slices along +z) tilted: slice k's origin moved
/// k columns along x, a tilt of atan(0.977 / 3) = 18.04° between stack axis and normal.
fn tilted_phantom() -> Vec<(String, Vec<u8>)> {
    edited_phantom(|k, obj| {
        let ipp = obj
            .element(tags::IMAGE_POSITION_PATIENT)
            .unwrap()
            .to_multi_float64()
            .unwrap();
        let column_mm = obj
            .element(tags::PIXEL_SPACING)
            .unwrap()
            .to_multi_float64()
            .unwrap()[1];
        let moved = [ipp[0] + k as f64 * column_mm, ipp[1], ipp[2]];
        let text: Vec<String> = moved.iter().map(|v| format!("{v:.4}")).collect();
        obj.put(DataElement::new(
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            PrimitiveValue::Strs(text.into()),
        ));
    })
}

/// A gantry-tilted series is refused by default with the tilt angle; with
/// `RADSCORE_GEOMETRY=resample` it is stored on a regular grid wide enough for the drift,
/// reports why, and takes a label map of the resampled grid as well as the phantom's
/// RTSTRUCT, placed on the acquired (tilted) slices: the tilt shifts each slice by whole
/// columns, so the contours land on exactly the IBSI mask's 125,256 voxels, and a job on
/// the worker's identical resampling gives the shape features of the untilted series (the
/// tilt moves the slices, not their pixels, so the contours, fixed in patient space, see
/// other intensities).
#[tokio::test]
async fn tilted_series_is_refused_or_resampled_by_configuration() {
    let zip = zip_files(&tilted_phantom());
    let app = spawn_app().await;
    let (status, problem) = app.post_series_zip(zip.clone()).await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/sheared-stack")
    );
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("gantry tilt") && detail.contains("18.04°"),
        "{detail}"
    );

    let app = spawn_app_configured(2, |c| {
        c.geometry = radscore::dicom::GeometryPolicy::Resample;
    })
    .await;
    let (status, series) = app.post_series_zip(zip).await;
    assert_eq!(status, 201, "{series}");
    assert_eq!(series["geometry"]["status"], "resampled", "{series}");
    let reason = series["geometry"]["reason"].as_str().unwrap();
    assert!(reason.contains("18.04°"), "{reason}");
    assert_eq!(
        series["dimensions"],
        json!({"x": 204 + 59, "y": 201, "z": 60})
    );
    let series_id = series["id"].as_str().unwrap();

    let rtstruct = std::fs::read(ct_phantom().join("dicom/mask/DCM_RS_00060.dcm")).unwrap();
    let (status, rs) = app
        .post_segmentation(series_id, rtstruct.clone(), "rs.dcm")
        .await;
    assert_eq!(status, 201, "{rs}");
    assert_eq!(rs["format"], "dicom_rtstruct", "{rs}");
    assert_eq!(rs["lesions"][0]["voxel_count"], 125_256, "{rs}");
    assert_eq!(rs["lesions"][0]["warnings"], json!([]), "{rs}");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("box.nii.gz");
    let geometry = series.to_string();
    run_support(
        "labelmap_for_grid.py",
        &[
            "--series-json",
            &geometry,
            "--box",
            "20,30,60,110,100,160",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let (status, seg) = app
        .post_segmentation(series_id, std::fs::read(&out).unwrap(), "box.nii.gz")
        .await;
    assert_eq!(status, 201, "{seg}");
    assert_eq!(seg["lesions"][0]["voxel_count"], 10 * 50 * 60);
    let result = app
        .run_job(
            series_id,
            seg["id"].as_str().unwrap(),
            json!([{"label": 1, "location": "other"}]),
        )
        .await;
    assert_eq!(result["lesions"][0]["status"], "ok", "{result}");

    let lesion = json!([{"label": 1, "location": "other"}]);
    let tilted = app
        .run_job(series_id, rs["id"].as_str().unwrap(), lesion.clone())
        .await;
    let (status, straight) = app
        .post_series_zip(zip_files(&edited_phantom(|_, _| {})))
        .await;
    assert_eq!(status, 201, "{straight}");
    assert_eq!(straight["geometry"]["status"], "regular", "{straight}");
    let straight_id = straight["id"].as_str().unwrap();
    let (status, rs) = app.post_segmentation(straight_id, rtstruct, "rs.dcm").await;
    assert_eq!(status, 201, "{rs}");
    let straight = app
        .run_job(straight_id, rs["id"].as_str().unwrap(), lesion)
        .await;
    assert_eq!(tilted["lesions"][0]["status"], "ok", "{tilted}");
    for name in [
        "morph_volume",
        "morph_vol_approx",
        "morph_area_mesh",
        "morph_sphericity",
        "morph_diam",
        "morph_pca_maj_axis",
    ] {
        let value = |r: &Value| r["lesions"][0]["features"][name].as_f64().unwrap();
        let (a, b) = (value(&tilted), value(&straight));
        assert!(
            (a / b - 1.0).abs() < 1e-9,
            "{name}: tilted {a}, straight {b}"
        );
    }
}

/// Identifying attributes planted in the series.
const PHI: [(Tag, VR, &str); 5] = [
    (tags::PATIENT_NAME, VR::PN, "Doe^Jane-PHI"),
    (tags::PATIENT_ID, VR::LO, "MRN-PHI-4711"),
    (tags::PATIENT_BIRTH_DATE, VR::DA, "19700101"),
    (tags::INSTITUTION_NAME, VR::LO, "St PHI Hospital"),
    (tags::OPERATORS_NAME, VR::PN, "Operator^PHI"),
];

/// A private attribute (odd group) with recognisable content.
const PRIVATE_TAG: Tag = Tag(0x0009, 0x1010);

/// `?deidentify=true`: the stored instances hold none of the planted identifiers (nor a
/// private attribute), at the top level or nested two sequences deep, say so (PatientIdentityRemoved), and keep pixel data, geometry and
/// UIDs byte for byte; the series grid is the same as without de-identification.
#[tokio::test]
async fn deidentified_series_keeps_pixels_and_geometry_but_no_identifiers() {
    let files = edited_phantom(|_, obj| {
        for (tag, vr, value) in PHI {
            obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
        }
        obj.put(DataElement::new(
            Tag(0x0009, 0x0010),
            VR::LO,
            PrimitiveValue::from("PHI CREATOR"),
        ));
        obj.put(DataElement::new(
            PRIVATE_TAG,
            VR::LO,
            PrimitiveValue::from("private PHI note"),
        ));
        // The same identifiers inside a kept sequence's item, two levels deep.
        let mut inner = InMemDicomObject::new_empty();
        for (tag, vr, value) in PHI {
            inner.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
        }
        inner.put(DataElement::new(
            PRIVATE_TAG,
            VR::LO,
            PrimitiveValue::from("private nested note"),
        ));
        let mut item = InMemDicomObject::new_empty();
        item.put(DataElement::new(
            tags::REFERENCED_SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.2"),
        ));
        item.put(DataElement::new(
            tags::SOURCE_IMAGE_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![inner]),
        ));
        obj.put(DataElement::new(
            tags::SOURCE_IMAGE_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![item]),
        ));
    });
    let app = spawn_app().await;
    let (status, plain) = app.post_series_zip(zip_files(&files)).await;
    assert_eq!(status, 201, "{plain}");
    let resp = app
        .client
        .post(app.url("/v1/series?deidentify=true"))
        .header("content-type", "application/zip")
        .body(zip_files(&files))
        .send()
        .await
        .unwrap();
    let (status, series) = status_json(resp).await;
    assert_eq!(status, 201, "{series}");
    for key in [
        "dimensions",
        "spacing_mm",
        "origin_mm",
        "direction",
        "series_instance_uid",
    ] {
        assert_eq!(series[key], plain[key], "{key}");
    }

    let stored_dir = app
        ._dir
        .path()
        .join("blobs/series")
        .join(series["id"].as_str().unwrap());
    let mut stored: Vec<_> = std::fs::read_dir(&stored_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    stored.sort();
    assert_eq!(stored.len(), files.len());
    let originals: std::collections::HashMap<String, dicom_object::DefaultDicomObject> = files
        .iter()
        .map(|(_, bytes)| {
            let obj = dicom_object::OpenFileOptions::new()
                .from_reader(std::io::Cursor::new(&bytes[..]))
                .unwrap();
            (sop_uid(&obj), obj)
        })
        .collect();
    for path in stored {
        let bytes = std::fs::read(&path).unwrap();
        for (_, _, value) in PHI {
            assert!(
                !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
                "{} still holds '{value}'",
                path.display()
            );
        }
        assert!(
            !bytes.windows(7).any(|w| w == b"private"),
            "private attribute kept"
        );
        let obj = dicom_object::OpenFileOptions::new()
            .from_reader(std::io::Cursor::new(&bytes[..]))
            .unwrap();
        for tag in [
            tags::PATIENT_NAME,
            tags::PATIENT_ID,
            tags::PATIENT_BIRTH_DATE,
        ] {
            assert_eq!(
                obj.element(tag).unwrap().to_str().unwrap().trim(),
                "",
                "{tag}"
            );
        }
        assert!(obj.element_opt(tags::INSTITUTION_NAME).unwrap().is_none());
        assert!(obj.element_opt(PRIVATE_TAG).unwrap().is_none());
        let outer = &obj
            .element(tags::SOURCE_IMAGE_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()[0];
        let nested = &outer
            .element(tags::SOURCE_IMAGE_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()[0];
        assert_eq!(
            nested
                .element(tags::PATIENT_NAME)
                .unwrap()
                .to_str()
                .unwrap()
                .trim(),
            "",
            "a nested PatientName is emptied, not left"
        );
        assert!(
            nested
                .element_opt(tags::INSTITUTION_NAME)
                .unwrap()
                .is_none()
        );
        assert!(nested.element_opt(PRIVATE_TAG).unwrap().is_none());
        assert_eq!(
            obj.element(tags::PATIENT_IDENTITY_REMOVED)
                .unwrap()
                .to_str()
                .unwrap()
                .trim(),
            "YES"
        );
        let original = &originals[&sop_uid(&obj)];
        for tag in [
            tags::PIXEL_DATA,
            tags::IMAGE_POSITION_PATIENT,
            tags::IMAGE_ORIENTATION_PATIENT,
            tags::PIXEL_SPACING,
            tags::RESCALE_INTERCEPT,
            tags::SERIES_INSTANCE_UID,
            tags::FRAME_OF_REFERENCE_UID,
        ] {
            assert_eq!(
                obj.element(tag).unwrap().to_bytes().unwrap(),
                original.element(tag).unwrap().to_bytes().unwrap(),
                "{tag} changed"
            );
        }
    }
}

fn sop_uid(obj: &dicom_object::DefaultDicomObject) -> String {
    obj.element(tags::SOP_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .to_string()
}

/// POST a chunked body of `total` bytes of `x` with `content_type`, reading the answer
/// while still sending; returns the status, the problem document and the bytes that had
/// been sent when the answer came.
pub(crate) async fn chunked_post(
    app: &TestApp,
    path: &str,
    content_type: &str,
    total: usize,
) -> (u16, Value, usize) {
    let addr = app.base.trim_start_matches("http://").to_string();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Authorization: Bearer {key}\r\nTransfer-Encoding: chunked\r\n\r\n",
        key = app.key
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    let sender = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 * 1024];
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(&chunk);
        framed.extend_from_slice(b"\r\n");
        while counter.load(std::sync::atomic::Ordering::Relaxed) < total {
            if writer.write_all(&framed).await.is_err() {
                return;
            }
            counter.fetch_add(chunk.len(), std::sync::atomic::Ordering::Relaxed);
        }
        let _ = writer.write_all(b"0\r\n\r\n").await;
    });
    let mut response = Vec::new();
    let mut buf = vec![0u8; 8192];
    let body_start = loop {
        let n = reader.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed without an answer");
        response.extend_from_slice(&buf[..n]);
        if let Some(i) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let sent_at_answer = sent.load(std::sync::atomic::Ordering::Relaxed);
    let head = String::from_utf8_lossy(&response[..body_start]).to_string();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .expect("content-length");
    while response.len() < body_start + length {
        let n = reader.read(&mut buf).await.unwrap();
        assert!(n > 0, "body cut short");
        response.extend_from_slice(&buf[..n]);
    }
    sender.abort();
    let body = serde_json::from_slice(&response[body_start..body_start + length]).unwrap();
    (status, body, sent_at_answer)
}

/// A chunked multipart body that never contains its boundary is refused with a 400 naming
/// the boundary as soon as the preamble bound passes, long before the body ends (multer
/// alone rescans the growing buffer on every chunk: 16 s of CPU for 200 MB), for series
/// form uploads and STOW-RS alike; the server keeps serving.
#[tokio::test]
async fn multipart_body_without_its_boundary_fails_fast() {
    const TOTAL: usize = 512 << 20;
    let app = spawn_app().await;
    for (path, content_type) in [
        ("/v1/series", "multipart/form-data; boundary=XyZ"),
        (
            "/studies",
            "multipart/related; type=\"application/dicom\"; boundary=XyZ",
        ),
        (
            "/v1/segmentations?series_id=x",
            "multipart/form-data; boundary=XyZ",
        ),
    ] {
        let (status, problem, sent) = chunked_post(&app, path, content_type, TOTAL).await;
        assert_eq!(status, 400, "{path}: {problem}");
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .ends_with("/malformed-multipart"),
            "{problem}"
        );
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("multipart boundary '--XyZ'") && detail.contains("first 16384 bytes"),
            "{path}: {detail}"
        );
        assert!(sent < TOTAL / 4, "{path}: answered only after {sent} bytes");
    }
    let resp = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

/// A multipart/form-data part without header lines (an empty header block, so no
/// Content-Disposition naming its field) is refused with a 400 naming the part, for the
/// spooled series upload and the in-memory segmentation upload alike; before, multer took
/// the part's first bytes for headers.
#[tokio::test]
async fn form_data_part_without_header_lines_is_a_400_naming_it() {
    let app = spawn_app().await;
    let slice = &dicom_files(&ct_phantom().join("dicom/image"))[0].1;
    let mut body =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.dcm\"\r\n\r\n"
            .to_vec();
    body.extend_from_slice(slice);
    body.extend_from_slice(b"\r\n--XyZ\r\n\r\n");
    body.extend_from_slice(slice);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    for path in ["/v1/series", "/v1/segmentations?series_id=x"] {
        let resp = app
            .client
            .post(app.url(path))
            .header("content-type", "multipart/form-data; boundary=XyZ")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let (status, problem) = status_json(resp).await;
        assert_problem(
            status,
            &problem,
            400,
            "malformed-multipart",
            &["part 2", "no header lines", "Content-Disposition"],
        );
        assert_eq!(problem["part"], 2, "{path}: {problem}");
    }
}
