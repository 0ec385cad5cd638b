//! Ingestion tests on the IBSI 1 CT phantom: DICOM series assembly, NIfTI label maps and
//! NIfTI volumes, DICOM SEG written by highdicom, and the errors users meet.
//!
//! Data: `$RADSCORE_SHARED_DATA` or `<crate>/../shared/data` (see its README for the
//! phantom facts used below). Python helpers: `tests/support/*.py`, run with
//! `$RADSCORE_PYTHON` or `<crate>/.venv/bin/python`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use radscore::dicom::{AssembledSeries, DicomError, InputFile, assemble_series, read_seg};
use radscore::image::labelmap::{LabelMapError, read_nifti_labelmap, read_nifti_volume};
use radscore::image::{LesionMask, Segmentation};

/// Phantom facts from `shared/data/README.md` §2.
const PHANTOM_SHAPE: [usize; 3] = [60, 201, 204];
const PHANTOM_SPACING: [f64; 3] = [3.0, 0.977, 0.977];
const PHANTOM_ORIGIN_Z_MM: f64 = -100.4;
const PHANTOM_HU_RANGE: (f32, f32) = (-1000.0, 3065.0);
const PHANTOM_MASK_VOXELS: usize = 125_256;
/// Mask bounding box, `[z, y, x]` (README: 100 × 99 × 26 voxels as x, y, z).
const PHANTOM_MASK_BBOX_DIM: [usize; 3] = [26, 99, 100];
/// DS values are written with about 6 significant digits; positions agree to 1e-3 mm.
const POSITION_TOLERANCE_MM: f64 = 1e-3;
/// A fixed synthetic UID root for rewritten test series.
const OTHER_SERIES_UID: &str = "1.2.826.0.1.3680043.8.498.424242";
const PHI_NAME: &str = "Doe^Jane-PHI";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn data_dir() -> PathBuf {
    std::env::var_os("RADSCORE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir().join("../shared/data"))
}

fn phantom_dir() -> PathBuf {
    data_dir().join("ibsi1/ct_phantom")
}

fn mask_path() -> PathBuf {
    phantom_dir().join("nifti/mask/mask.nii.gz")
}

fn python() -> PathBuf {
    std::env::var_os("RADSCORE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir().join(".venv/bin/python"))
}

/// Run a helper in `tests/support/`, failing the test with its stderr if it fails.
fn run_support(script: &str, args: &[&str]) {
    let out = Command::new(python())
        .arg(crate_dir().join("tests/support").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); set RADSCORE_PYTHON",
                python().display()
            )
        });
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The 60 CT files in file-name order, read once.
fn ct_files() -> &'static [InputFile] {
    static FILES: OnceLock<Vec<InputFile>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = phantom_dir().join("dicom/image");
        radscore::dicom::files_from_dir(&dir).expect("phantom DICOM directory is readable")
    })
}

/// The phantom assembled once per test process.
fn phantom() -> &'static AssembledSeries {
    static SERIES: OnceLock<AssembledSeries> = OnceLock::new();
    SERIES.get_or_init(|| assemble_series(ct_files()).expect("phantom assembles"))
}

/// The NIfTI mask mapped onto the phantom grid, once.
fn nifti_mask() -> &'static Segmentation {
    static SEG: OnceLock<Segmentation> = OnceLock::new();
    SEG.get_or_init(|| {
        let bytes = std::fs::read(mask_path()).unwrap();
        read_nifti_labelmap(&bytes, "mask.nii.gz", &phantom().volume.grid).expect("mask maps")
    })
}

/// Rewrite one DICOM file with `edit` applied to its data set.
fn rewrite(
    file: &InputFile,
    edit: impl FnOnce(&mut dicom_object::DefaultDicomObject),
) -> InputFile {
    let mut obj = dicom_object::OpenFileOptions::new()
        .from_reader(std::io::Cursor::new(&file.bytes[..]))
        .unwrap();
    edit(&mut obj);
    let mut out = Vec::new();
    obj.write_all(&mut out).unwrap();
    InputFile {
        name: file.name.clone(),
        bytes: Bytes::from(out),
    }
}

fn assert_same_lesion(a: &LesionMask, b: &LesionMask) {
    assert_eq!(a.offset_zyx, b.offset_zyx, "crop offsets differ");
    assert_eq!(a.mask.dim(), b.mask.dim(), "crop shapes differ");
    assert!(a.mask == b.mask, "masks differ");
}

/// The CT phantom assembles with the geometry and HU range the README documents.
#[test]
fn assembles_ct_phantom_geometry_and_hu() {
    let s = phantom();
    let g = &s.volume.grid;
    assert_eq!(g.shape_vox, PHANTOM_SHAPE);
    assert_eq!(s.volume.hu.dim(), (60, 201, 204));
    // Slope 1 and a whole intercept: the volume keeps 16-bit HU samples, 2 bytes a voxel.
    assert!(matches!(
        s.volume.hu,
        radscore::image::Intensities::Stored16 { .. }
    ));
    assert_eq!(s.volume.hu.heap_bytes(), 60 * 201 * 204 * 2);
    for (found, expected) in g.spacing_mm.iter().zip(PHANTOM_SPACING) {
        assert!((found - expected).abs() < POSITION_TOLERANCE_MM, "{g:?}");
    }
    assert!((g.origin_mm[2] - PHANTOM_ORIGIN_Z_MM).abs() < POSITION_TOLERANCE_MM);
    assert_eq!(
        g.direction,
        [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    );
    let min = s.volume.hu.iter().fold(f32::INFINITY, f32::min);
    let max = s.volume.hu.iter().fold(f32::NEG_INFINITY, f32::max);
    assert_eq!((min, max), PHANTOM_HU_RANGE);
    assert_eq!(s.instance_count, 60);
    assert!((s.measured_slice_spacing_mm - 3.0).abs() < POSITION_TOLERANCE_MM);
    assert!(
        !s.series_uid.is_empty() && s.warnings.is_empty(),
        "{:?}",
        s.warnings
    );
}

/// A shuffled upload order gives the identical volume and grid.
#[test]
fn shuffled_file_order_gives_identical_volume() {
    let mut files = ct_files().to_vec();
    files.reverse();
    files.rotate_left(17);
    let shuffled = assemble_series(&files).unwrap();
    assert_eq!(shuffled.volume.grid, phantom().volume.grid);
    assert!(shuffled.volume.hu == phantom().volume.hu);
}

/// The NIfTI mask lands on the DICOM grid with the reference voxel count, and the NIfTI
/// image equals the DICOM HU voxel for voxel (README: the two are the same CT).
#[test]
fn nifti_mask_and_image_match_dicom_grid() {
    let seg = nifti_mask();
    assert_eq!(seg.lesions.len(), 1);
    let lesion = &seg.lesions[0];
    assert_eq!(lesion.label, 1);
    assert_eq!(lesion.voxel_count(), PHANTOM_MASK_VOXELS);
    let [lo, hi] = lesion.bbox_zyx();
    assert_eq!([0, 1, 2].map(|a| hi[a] - lo[a] + 1), PHANTOM_MASK_BBOX_DIM);

    let image = std::fs::read(phantom_dir().join("nifti/image/phantom.nii.gz")).unwrap();
    let volume = read_nifti_volume(&image, "phantom.nii.gz").unwrap();
    assert_eq!(phantom().volume.grid.check_same_as(&volume.grid), Ok(()));
    assert!(
        volume.hu == phantom().volume.hu,
        "NIfTI HU differ from DICOM HU"
    );
}

/// Label maps with permuted or flipped axes map through world coordinates; a cropped or
/// shifted one is refused with a message naming what differs.
#[test]
fn nifti_variants_are_mapped_or_refused_precisely() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    run_support(
        "nifti_variants.py",
        &["--mask", mask_path().to_str().unwrap(), "--out-dir", out],
    );
    let grid = &phantom().volume.grid;
    let read = |name: &str| {
        let bytes = std::fs::read(dir.path().join(name)).unwrap();
        read_nifti_labelmap(&bytes, name, grid)
    };

    for name in ["flipped_y.nii.gz", "swapped_xy.nii.gz"] {
        let seg = read(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_same_lesion(&seg.lesions[0], &nifti_mask().lesions[0]);
    }

    let err = read("cropped.nii.gz").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LabelMapError::GridMismatch { .. }), "{msg}");
    assert!(
        msg.contains("dimensions differ") && msg.contains("[55, 201, 204]"),
        "{msg}"
    );
    assert!(msg.contains("[60, 201, 204]"), "{msg}");

    let msg = read("shifted.nii.gz").unwrap_err().to_string();
    assert!(
        msg.contains("origin differs") && msg.contains("x (column)"),
        "{msg}"
    );
}

/// Removing a middle slice is reported as a missing slice with the gap position.
#[test]
fn missing_middle_slice_names_the_gap() {
    let mut files = ct_files().to_vec();
    // DCM_IMG_00030 is at z = 76.6 − 30·3 = −13.4 mm (file order runs opposite to z).
    files.remove(30);
    let err = assemble_series(&files).unwrap_err();
    let DicomError::MissingSlice {
        from_mm,
        to_mm,
        expected_mm,
        missing,
        ..
    } = err
    else {
        panic!("expected MissingSlice, got {err}");
    };
    assert!(
        (from_mm - -16.4).abs() < 0.01 && (to_mm - -10.4).abs() < 0.01,
        "{err}"
    );
    assert!((expected_mm - 3.0).abs() < 0.01 && missing == 1);
    assert!(err.to_string().contains("-16.400 mm"), "{err}");
}

/// Set ImagePositionPatient of `file` to its value plus `delta_mm` (LPS x, y, z).
fn moved(file: &InputFile, delta_mm: [f64; 3]) -> InputFile {
    rewrite(file, |obj| {
        let ipp = obj
            .element(tags::IMAGE_POSITION_PATIENT)
            .unwrap()
            .to_multi_float64()
            .unwrap();
        let text: Vec<String> = (0..3)
            .map(|c| format!("{:.4}", ipp[c] + delta_mm[c]))
            .collect();
        obj.put(DataElement::new(
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            PrimitiveValue::Strs(text.into()),
        ));
    })
}

/// A slice moved 1 mm along z breaks uniform spacing; one moved 2 mm in-plane is a
/// sheared stack; another PixelSpacing is named as inconsistent, with its file.
#[test]
fn irregular_stacks_are_refused_naming_the_fault() {
    let mut files = ct_files().to_vec();
    files[20] = moved(&files[20], [0.0, 0.0, 1.0]);
    let err = assemble_series(&files).unwrap_err();
    assert!(matches!(err, DicomError::NonUniformSpacing { .. }), "{err}");

    let mut files = ct_files().to_vec();
    files[20] = moved(&files[20], [2.0, 0.0, 0.0]);
    let err = assemble_series(&files).unwrap_err();
    let DicomError::ShearedStack {
        file, offset_mm, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(file, &ct_files()[20].name);
    assert!((offset_mm - 2.0).abs() < POSITION_TOLERANCE_MM, "{err}");

    let mut files = ct_files().to_vec();
    files[9] = rewrite(&files[9], |obj| {
        obj.put(DataElement::new(
            tags::PIXEL_SPACING,
            VR::DS,
            PrimitiveValue::Strs(vec!["0.5".to_owned(), "0.5".to_owned()].into()),
        ));
    });
    let msg = assemble_series(&files).unwrap_err().to_string();
    assert!(
        msg.contains("PixelSpacing") && msg.contains(&files[9].name),
        "{msg}"
    );
}

/// A zip upload (with a macOS resource fork and a directory entry) assembles like the
/// directory it was made from.
#[test]
fn zip_upload_assembles_like_the_directory() {
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buf);
    let opts = zip::write::SimpleFileOptions::default();
    zip.add_directory("series/", opts).unwrap();
    for f in ct_files() {
        zip.start_file(format!("series/{}", f.name), opts).unwrap();
        zip.write_all(&f.bytes).unwrap();
    }
    zip.start_file("__MACOSX/series/._DCM_IMG_00000.dcm", opts)
        .unwrap();
    zip.write_all(b"resource fork").unwrap();
    zip.finish().unwrap();

    let limits = radscore::dicom::ArchiveLimits::default();
    let files = radscore::dicom::files_from_zip(Bytes::from(buf.into_inner()), &limits).unwrap();
    assert_eq!(files.len(), 60);
    let series = assemble_series(&files).unwrap();
    assert!(series.volume.hu == phantom().volume.hu);
}

/// Files of two series are refused, listing both UIDs with their instance counts.
#[test]
fn mixed_series_lists_both_uids() {
    let mut files = ct_files().to_vec();
    for f in files.iter_mut().take(10) {
        *f = rewrite(f, |obj| {
            obj.put(DataElement::new(
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from(OTHER_SERIES_UID),
            ));
        });
    }
    let err = assemble_series(&files).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DicomError::MixedSeries { .. }), "{msg}");
    assert!(
        msg.contains(&format!("{OTHER_SERIES_UID} (10 instances)")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("{} (50 instances)", phantom().series_uid)),
        "{msg}"
    );
}

/// An instance of another modality in a CT upload (found by the break test: an "MR" slice
/// was accepted into the volume) is refused naming the file and the attribute.
#[test]
fn an_instance_of_another_modality_is_refused_by_name() {
    let mut files = ct_files().to_vec();
    files[7] = rewrite(&files[7], |obj| {
        obj.put(DataElement::new(
            tags::MODALITY,
            VR::CS,
            PrimitiveValue::from("MR"),
        ));
    });
    let err = assemble_series(&files).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DicomError::BadValue { .. }), "{msg}");
    assert!(msg.contains(&files[7].name), "{msg}");
    assert!(
        msg.contains("Modality (0008,0060)") && msg.contains("CT"),
        "{msg}"
    );
}

/// One instance of another patient or study is refused naming the attribute and both
/// files, never the values; an absent attribute differs from a present one.
#[test]
fn mixed_patient_or_study_is_refused_without_the_values() {
    /// Values planted in one file (the phantom's own are the reference).
    const OTHER_ID: &str = "MRN-OTHER-5512";
    const OTHER_NAME: &str = "Quorra^Bexley";
    const OTHER_STUDY: &str = "1.2.826.0.1.3680043.8.498.515151";
    let original = |tag| {
        let obj = dicom_object::OpenFileOptions::new()
            .from_reader(std::io::Cursor::new(&ct_files()[0].bytes[..]))
            .unwrap();
        obj.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_str().ok().map(|s| s.trim().to_owned()))
            .unwrap_or_default()
    };
    // (tag, VR, planted value or None to remove, keyword named in the message)
    let cases: [(dicom_core::Tag, VR, Option<&str>, &str); 4] = [
        (
            tags::PATIENT_ID,
            VR::LO,
            Some(OTHER_ID),
            "PatientID (0010,0020)",
        ),
        (
            tags::PATIENT_NAME,
            VR::PN,
            Some(OTHER_NAME),
            "PatientName (0010,0010)",
        ),
        (
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            Some(OTHER_STUDY),
            "StudyInstanceUID (0020,000D)",
        ),
        (tags::PATIENT_ID, VR::LO, None, "PatientID (0010,0020)"),
    ];
    for (tag, vr, value, keyword) in cases {
        let mut files = ct_files().to_vec();
        files[12] = rewrite(&files[12], |obj| match value {
            Some(v) => {
                obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
            }
            None => {
                obj.remove_element(tag);
            }
        });
        let err = assemble_series(&files).unwrap_err();
        let text = format!("{err} {err:?}");
        let DicomError::MixedPatientOrStudy {
            tag: named,
            file,
            reference_file,
        } = &err
        else {
            panic!("{keyword}: expected MixedPatientOrStudy, got {err}");
        };
        assert_eq!(*named, keyword, "{text}");
        assert_eq!(
            (file.as_str(), reference_file.as_str()),
            (files[12].name.as_str(), files[0].name.as_str())
        );
        let own = original(tag);
        // The phantom's own PatientID is "1", too short to search for; the planted values
        // and its name are.
        for secret in [value.unwrap_or_default(), own.as_str()] {
            assert!(
                secret.len() < 4 || !text.contains(secret),
                "'{secret}' in {text}"
            );
        }
    }
}

/// A SOPInstanceUID repeated at another position is a conflict naming both files and the
/// UID, not a missing slice; an exact repeat is dropped with a warning.
#[test]
fn conflicting_duplicate_sop_uid_names_both_files() {
    let mut files = ct_files().to_vec();
    let uid_of_9 = {
        let obj = dicom_object::OpenFileOptions::new()
            .from_reader(std::io::Cursor::new(&files[9].bytes[..]))
            .unwrap();
        obj.element(tags::SOP_INSTANCE_UID)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches('\0')
            .to_owned()
    };
    files[8] = rewrite(&files[8], |obj| {
        obj.put(DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(uid_of_9.as_str()),
        ));
    });
    let err = assemble_series(&files).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, DicomError::ConflictingDuplicate { first_file, file, uid }
            if first_file == &files[8].name && file == &files[9].name && uid == &uid_of_9),
        "{msg}"
    );
    assert!(
        msg.contains(&uid_of_9) && !msg.contains("missing slice"),
        "{msg}"
    );

    let mut files = ct_files().to_vec();
    files.push(files[9].clone());
    let ok = assemble_series(&files).unwrap();
    assert_eq!((ok.instance_count, ok.warnings.len()), (60, 1));
}

/// A NIfTI header with a negative or zero size, or a vox_offset beyond the end of the
/// file, is refused naming the field; an all-background label map is refused naming the
/// file.
#[test]
fn nifti_header_lies_and_empty_label_maps_are_refused_by_field() {
    use std::io::Read;
    /// NIfTI-1 header: `dim` (8 × int16) at byte 40, `vox_offset` (float32) at byte 108.
    const DIM_AT: usize = 40;
    const VOX_OFFSET_AT: usize = 108;
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&std::fs::read(mask_path()).unwrap()[..])
        .read_to_end(&mut raw)
        .unwrap();
    let grid = &phantom().volume.grid;
    let patched = |at: usize, bytes: &[u8]| {
        let mut b = raw.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        b
    };
    let cases: [(Vec<u8>, &[&str]); 4] = [
        (
            patched(DIM_AT + 2, &(-5i16).to_le_bytes()),
            &["dim[1] is -5", "positive"],
        ),
        (
            patched(DIM_AT + 6, &0i16.to_le_bytes()),
            &["dim[3] is 0", "positive"],
        ),
        (
            patched(VOX_OFFSET_AT, &1e30f32.to_le_bytes()),
            &[
                "vox_offset is 1000000000000000000000000000000",
                "beyond the end",
                &format!("({} bytes", raw.len()),
            ],
        ),
        (
            patched(VOX_OFFSET_AT, &((raw.len() + 4) as f32).to_le_bytes()),
            &["vox_offset", "beyond the end"],
        ),
    ];
    for (bytes, needles) in cases {
        let msg = read_nifti_labelmap(&bytes, "lie.nii", grid)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("'lie.nii'"), "{msg}");
        for n in needles {
            assert!(msg.contains(n), "lacks '{n}': {msg}");
        }
        assert!(
            !msg.contains("65531") && !msg.contains("18446744073709551615"),
            "{msg}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    run_support(
        "nifti_variants.py",
        &[
            "--mask",
            mask_path().to_str().unwrap(),
            "--out-dir",
            dir.path().to_str().unwrap(),
        ],
    );
    let empty = std::fs::read(dir.path().join("empty.nii.gz")).unwrap();
    let err = read_nifti_labelmap(&empty, "empty.nii.gz", grid).unwrap_err();
    assert!(matches!(err, LabelMapError::NoLabels { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("'empty.nii.gz' holds no nonzero label"),
        "{err}"
    );
}

/// A non-DICOM file and a truncated DICOM file give errors naming the file, no panic.
#[test]
fn non_dicom_and_truncated_files_are_errors() {
    let mut files = ct_files().to_vec();
    files.push(InputFile {
        name: "notes.txt".into(),
        bytes: Bytes::from_static(b"hello"),
    });
    let err = assemble_series(&files).unwrap_err();
    assert!(
        matches!(&err, DicomError::NotDicom { file } if file == "notes.txt"),
        "{err}"
    );

    let original = &ct_files()[3];
    for keep in [
        original.bytes.len() - 1000,
        original.bytes.len() / 2,
        200,
        10,
    ] {
        let mut files = ct_files().to_vec();
        files[3] = InputFile {
            name: "cut.dcm".into(),
            bytes: original.bytes.slice(..keep),
        };
        let err = assemble_series(&files).unwrap_err();
        assert!(err.to_string().contains("cut.dcm"), "{keep} bytes: {err}");
    }
}

/// Pixel data shorter than Rows × Columns is an error, not a panic.
#[test]
fn short_pixel_data_is_an_error() {
    let mut files = ct_files().to_vec();
    files[5] = rewrite(&files[5], |obj| {
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(vec![0u16; 100].into()),
        ));
    });
    let err = assemble_series(&files).unwrap_err();
    assert!(err.to_string().contains(&files[5].name), "{err}");
}

/// Captures everything logged through `tracing` during a closure.
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A patient name never reaches an error message, a warning or a log line.
#[test]
fn patient_name_does_not_leak_into_errors_warnings_or_logs() {
    let capture = LogCapture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();

    let mut texts = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        let with_name = |f: &InputFile, extra: &dyn Fn(&mut dicom_object::DefaultDicomObject)| {
            rewrite(f, |obj| {
                obj.put(DataElement::new(
                    tags::PATIENT_NAME,
                    VR::PN,
                    PrimitiveValue::from(PHI_NAME),
                ));
                extra(obj);
            })
        };
        // 1. A missing required attribute; 2. an unparsable value that holds the name;
        // 3. one instance of another patient (the name differs from the others');
        // 4. a duplicated instance (a warning on success).
        let cases: [&dyn Fn(&mut dicom_object::DefaultDicomObject); 3] = [
            &|obj| {
                obj.remove_element(tags::IMAGE_POSITION_PATIENT);
            },
            &|obj| {
                obj.put(DataElement::new(
                    tags::PIXEL_SPACING,
                    VR::DS,
                    PrimitiveValue::from(PHI_NAME),
                ));
            },
            &|_| {},
        ];
        for edit in cases {
            let mut files = ct_files().to_vec();
            files[7] = with_name(&files[7], edit);
            let err = assemble_series(&files).unwrap_err();
            texts.push(format!("{err} {err:?}"));
        }
        let mut files: Vec<InputFile> = ct_files().iter().map(|f| with_name(f, &|_| {})).collect();
        files.push(files[0].clone());
        let ok = assemble_series(&files).unwrap();
        assert_eq!(ok.warnings.len(), 1);
        texts.extend(ok.warnings);
    });
    texts.push(String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned());
    let all = texts.join("\n");
    assert!(
        all.contains("ImagePositionPatient") && all.contains("PixelSpacing"),
        "{all}"
    );
    assert!(all.contains("repeats the SOPInstanceUID"), "{all}");
    assert!(all.contains("different PatientName (0010,0010)"), "{all}");
    for fragment in ["Doe", "Jane", "PHI", "PAT1"] {
        assert!(!all.contains(fragment), "'{fragment}' leaked: {all}");
    }
}

/// Build a SEG with `tests/support/make_seg.py`; the file lives as long as the TempDir.
fn make_seg_file(extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("seg.dcm");
    let (series, mask) = (phantom_dir().join("dicom/image"), mask_path());
    let mut args = vec![
        "--series",
        utf8(&series),
        "--mask",
        utf8(&mask),
        "--out",
        utf8(&out),
    ];
    args.extend_from_slice(extra);
    run_support("make_seg.py", &args);
    (dir, out)
}

/// Build a SEG with `make_seg.py` and read it onto the phantom grid.
fn seg_from_python(extra: &[&str]) -> Result<Segmentation, DicomError> {
    let (_dir, out) = make_seg_file(extra);
    read_seg(
        &std::fs::read(&out).unwrap(),
        "seg.dcm",
        &phantom().volume.grid,
        phantom().frame_of_reference_uid.as_deref(),
    )
}

/// A highdicom BINARY SEG of the phantom mask gives exactly the NIfTI route's mask.
#[test]
fn highdicom_binary_seg_matches_nifti_mask() {
    let seg = seg_from_python(&[]).unwrap();
    assert_eq!(seg.lesions.len(), 1);
    assert_eq!(seg.lesions[0].label, 1);
    assert_eq!(seg.lesions[0].name.as_deref(), Some("GTV-1"));
    assert_same_lesion(&seg.lesions[0], &nifti_mask().lesions[0]);
}

/// Two overlapping segments, FRACTIONAL encoding and frames in shuffled order.
#[test]
fn shuffled_two_segment_fractional_seg_is_placed_by_position() {
    for encoding in [&[][..], &["--fractional"][..]] {
        let mut extra = vec!["--box", "20,23,50,60,60,70", "--shuffle-frames", "7"];
        extra.extend_from_slice(encoding);
        let seg = seg_from_python(&extra).unwrap();
        assert_eq!(seg.lesions.len(), 2, "{encoding:?}");
        assert_same_lesion(&seg.lesions[0], &nifti_mask().lesions[0]);
        let b = &seg.lesions[1];
        assert_eq!((b.label, b.name.as_deref()), (2, Some("BOX")));
        assert_eq!(b.offset_zyx, [20, 50, 60]);
        assert_eq!(b.mask.dim(), (3, 10, 10));
        assert_eq!(b.voxel_count(), 300);
    }
}

/// Compressed SEG pixel data is decoded as the CT path decodes it and gives exactly the
/// native SEG's masks: RLE Lossless (FRACTIONAL, two segments), JPEG 2000 Lossless (BINARY:
/// frames of 0/1 samples, and FRACTIONAL), all encapsulated per frame by highdicom, and a
/// Deflated Explicit VR data set (pydicom). JPEG-LS, which this build cannot decode, is
/// refused naming its transfer syntax.
#[test]
fn compressed_seg_pixel_data_gives_the_native_masks() {
    let native = seg_from_python(&["--box", "20,23,50,60,60,70"]).unwrap();
    for extra in [
        &["--transfer-syntax", "rle", "--fractional"][..],
        &["--transfer-syntax", "j2k"][..],
        &["--transfer-syntax", "j2k", "--fractional"][..],
        &["--transfer-syntax", "deflate"][..],
    ] {
        let mut args = extra.to_vec();
        args.extend_from_slice(&["--box", "20,23,50,60,60,70"]);
        let seg = seg_from_python(&args).unwrap_or_else(|e| panic!("{extra:?}: {e}"));
        assert_eq!(seg.lesions.len(), 2, "{extra:?}");
        for (found, expected) in seg.lesions.iter().zip(&native.lesions) {
            assert_eq!(found.label, expected.label, "{extra:?}");
            assert_same_lesion(found, expected);
        }
    }
    assert_same_lesion(&native.lesions[0], &nifti_mask().lesions[0]);
    let err = seg_from_python(&["--transfer-syntax", "jpegls", "--fractional"]).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, DicomError::UnsupportedTransferSyntax { .. })
            && msg.contains("1.2.840.10008.1.2.4.80"),
        "{msg}"
    );
}

/// A SEG whose Rows or Columns is 0 is refused naming that attribute (the break test had
/// Rows = 0 reported as NumberOfFrames).
#[test]
fn seg_with_zero_rows_or_columns_names_the_attribute() {
    let (_dir, out) = make_seg_file(&[]);
    let seg = InputFile {
        name: "seg.dcm".into(),
        bytes: Bytes::from(std::fs::read(&out).unwrap()),
    };
    for (tag, keyword) in [(tags::ROWS, "Rows"), (tags::COLUMNS, "Columns")] {
        let zero = rewrite(&seg, |obj| {
            obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(0_u16)));
        });
        let err = read_seg(&zero.bytes, &zero.name, &phantom().volume.grid, None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("attribute {keyword} is invalid")),
            "{msg}"
        );
    }
}

/// A SEG read against a grid shifted by half a slice is refused, naming a frame.
#[test]
fn seg_off_the_series_grid_names_the_frame() {
    let (_dir, out) = make_seg_file(&[]);
    let mut grid = phantom().volume.grid.clone();
    grid.origin_mm[2] += 1.5;
    let err = read_seg(&std::fs::read(&out).unwrap(), "seg.dcm", &grid, None).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, DicomError::SegFrameGrid { frame: 1.., .. }),
        "{msg}"
    );
    assert!(msg.contains("frame") && msg.contains("z (slice)"), "{msg}");

    let ct = &ct_files()[0];
    let err = read_seg(&ct.bytes, &ct.name, &phantom().volume.grid, None).unwrap_err();
    assert!(matches!(err, DicomError::NotSegmentation { .. }), "{err}");
}

/// Paths in this repository and the temp dir are UTF-8.
fn utf8(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Sorted-slice index of a phantom file: its position along the phantom's normal.
fn slice_index(file: &InputFile, grid: &radscore::image::Grid) -> usize {
    let obj = dicom_object::OpenFileOptions::new()
        .from_reader(std::io::Cursor::new(&file.bytes[..]))
        .unwrap();
    let ipp = obj
        .element(tags::IMAGE_POSITION_PATIENT)
        .unwrap()
        .to_multi_float64()
        .unwrap();
    let along: f64 = (0..3)
        .map(|c| (ipp[c] - grid.origin_mm[c]) * grid.direction[0][c])
        .sum();
    (along / grid.spacing_mm[0]).round() as usize
}

/// The phantom as a gantry-tilted acquisition: slice k's origin moved k columns along the
/// row direction, so the stack axis leans atan(column spacing / slice spacing) ≈ 18°.
fn tilted_phantom() -> Vec<InputFile> {
    let grid = &phantom().volume.grid;
    ct_files()
        .iter()
        .map(|f| {
            let k = slice_index(f, grid) as f64;
            moved(
                f,
                [0, 1, 2].map(|c| grid.direction[2][c] * grid.spacing_mm[2] * k),
            )
        })
        .collect()
}

/// A tilted stack is refused by default with its tilt angle; resampled, every acquired
/// pixel lands exactly on the regular grid (slice k shifted k columns), the field the
/// tilt uncovers is air, and the series says why it was resampled.
#[test]
fn tilted_stack_is_refused_with_its_angle_or_resampled_exactly() {
    use radscore::dicom::geometry::RESAMPLE_FILL_HU;
    use radscore::dicom::{GeometryPolicy, GeometryStatus, assemble_series_with};
    let base = phantom();
    let grid = &base.volume.grid;
    let files = tilted_phantom();
    let expected_deg = (grid.spacing_mm[2] / grid.spacing_mm[0])
        .atan()
        .to_degrees();

    let err = assemble_series(&files).unwrap_err();
    let DicomError::ShearedStack { angle_deg, .. } = &err else {
        panic!("{err}")
    };
    assert!((angle_deg - expected_deg).abs() < 0.01, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{expected_deg:.2}°")) && msg.contains("RADSCORE_GEOMETRY=resample"),
        "{msg}"
    );

    let r = assemble_series_with(&files, GeometryPolicy::Resample).unwrap();
    let GeometryStatus::Resampled { reason } = &r.geometry else {
        panic!("not resampled: {:?}", r.geometry)
    };
    assert!(
        reason.contains("gantry tilt") && reason.contains(&format!("{expected_deg:.2}°")),
        "{reason}"
    );
    let [nz, ny, nx] = grid.shape_vox;
    assert_eq!(r.volume.grid.shape_vox, [nz, ny, nx + nz - 1]);
    for a in 0..3 {
        assert!((r.volume.grid.spacing_mm[a] - grid.spacing_mm[a]).abs() < POSITION_TOLERANCE_MM);
    }
    for k in 0..nz {
        for i in 0..ny {
            for j in 0..nx + nz - 1 {
                let got = r.volume.hu.at([k, i, j]);
                let want = if j >= k && j - k < nx {
                    base.volume.hu.at([k, i, j - k])
                } else {
                    RESAMPLE_FILL_HU
                };
                assert_eq!(got, want, "voxel [{k}, {i}, {j}]");
            }
        }
    }
}

/// One slice 1 mm off its place: refused naming the gap, or resampled onto the median
/// spacing, where the plane the slice left is interpolated linearly from its neighbours
/// by distance (1/4 and 3/4 for a 3 mm gap grown to 4 mm).
#[test]
fn non_uniform_spacing_is_refused_or_interpolated_along_the_normal() {
    use radscore::dicom::{GeometryPolicy, GeometryStatus, assemble_series_with};
    let base = phantom();
    let grid = &base.volume.grid;
    let m = 20;
    let files: Vec<InputFile> = ct_files()
        .iter()
        .map(|f| {
            if slice_index(f, grid) == m {
                moved(f, grid.direction[0].map(|c| c * 1.0))
            } else {
                f.clone()
            }
        })
        .collect();
    let msg = assemble_series(&files).unwrap_err().to_string();
    assert!(
        msg.contains("non-uniform slice spacing: gap of 4.000 mm")
            && msg.contains("RADSCORE_GEOMETRY=resample"),
        "{msg}"
    );

    let r = assemble_series_with(&files, GeometryPolicy::Resample).unwrap();
    assert!(matches!(r.geometry, GeometryStatus::Resampled { .. }));
    assert_eq!(r.volume.grid.shape_vox, grid.shape_vox);
    assert!((r.volume.grid.spacing_mm[0] - 3.0).abs() < POSITION_TOLERANCE_MM);
    let [_, ny, nx] = grid.shape_vox;
    for i in 0..ny {
        for j in 0..nx {
            let want =
                0.25 * base.volume.hu.at([m - 1, i, j]) + 0.75 * base.volume.hu.at([m, i, j]);
            let got = r.volume.hu.at([m, i, j]);
            assert!(
                (got - want).abs() < 1e-3,
                "[{m}, {i}, {j}]: {got} vs {want}"
            );
            for k in [m - 1, m + 1] {
                assert_eq!(r.volume.hu.at([k, i, j]), base.volume.hu.at([k, i, j]));
            }
        }
    }
}
