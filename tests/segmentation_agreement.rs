//! The same lesion in every segmentation format gives the same features.
//!
//! * Voxel-exact: the RTSTRUCT shapes of `tests/support/make_rtstruct.py` (squares with
//!   corners on half-voxel positions, a ring with a hole) have a known voxel answer, written
//!   by the script as a NIfTI label map. That map as NRRD (`convert_labelmap.py`), as DICOM
//!   SEG (`make_seg.py`, highdicom) and the RTSTRUCT itself must all give the identical mask
//!   and therefore bit-identical features.
//! * Rasterisation tolerance: the IBSI CT phantom's own RTSTRUCT (GTV-1) against its NIfTI
//!   mask, which IBSI rasterised with another tool. In general boundary voxels whose
//!   centres lie within a fraction of a voxel of a contour can go either way between two
//!   rasterisers; for this pair radscore's centre sampling with the even-odd rule
//!   reproduces IBSI's mask exactly (125,256 voxels, the IBSI diagnostics value
//!   `int_mask_vox_count_init_roi`), so the stated tolerance is zero differing voxels and
//!   the features must be identical.

use std::path::PathBuf;
use std::process::Command;

use radscore::dicom::{assemble_series, read_rtstruct, read_seg};
use radscore::features::{ExtractionSettings, Location};
use radscore::image::labelmap::read_nifti_labelmap;
use radscore::image::nrrd::read_nrrd_labelmap;
use radscore::image::{LesionMask, Volume};
use radscore::pipeline::compute_lesion;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn phantom_dir() -> PathBuf {
    std::env::var_os("RADSCORE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir().join("../shared/data"))
        .join("ibsi1/ct_phantom")
}

fn run_support(script: &str, args: &[&str]) {
    let python = std::env::var_os("RADSCORE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir().join(".venv/bin/python"));
    let out = Command::new(&python)
        .arg(crate_dir().join("tests/support").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e})", python.display()));
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The phantom series: volume and FrameOfReferenceUID.
fn phantom() -> (Volume, String) {
    let files = radscore::dicom::files_from_dir(&phantom_dir().join("dicom/image")).unwrap();
    let series = assemble_series(&files).unwrap();
    let frame = series
        .frame_of_reference_uid
        .clone()
        .expect("phantom has a frame of reference");
    (series.volume, frame)
}

fn features(volume: &Volume, lesion: &LesionMask) -> Vec<(String, f64)> {
    let settings = ExtractionSettings::bundled();
    compute_lesion(volume, lesion, settings.for_location(Location::Other))
        .unwrap_or_else(|e| panic!("lesion {}: {e}", lesion.label))
        .into_iter()
        .map(|f| (f.name, f.value))
        .collect()
}

fn lesion(seg: &radscore::image::Segmentation, label: u32) -> &LesionMask {
    seg.lesions
        .iter()
        .find(|l| l.label == label)
        .unwrap_or_else(|| panic!("label {label} missing"))
}

/// RTSTRUCT, NIfTI, NRRD and SEG of the same voxel-exact lesions give the same mask and
/// identical features.
#[test]
fn voxel_exact_lesion_is_identical_in_every_format() {
    let (volume, frame) = phantom();
    let grid = &volume.grid;
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let series = phantom_dir().join("dicom/image");
    let series = series.to_str().unwrap();
    run_support(
        "make_rtstruct.py",
        &[
            "--series",
            series,
            "--out",
            &p("rs.dcm"),
            "--labels-out",
            &p("labels.nii.gz"),
        ],
    );
    run_support(
        "convert_labelmap.py",
        &["--mask", &p("labels.nii.gz"), "--out", &p("labels.nrrd")],
    );
    run_support(
        "make_seg.py",
        &[
            "--series",
            series,
            "--mask",
            &p("labels.nii.gz"),
            "--out",
            &p("ring.dcm"),
            "--label",
            "1",
        ],
    );
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();

    let rt = read_rtstruct(&read("rs.dcm"), "rs.dcm", grid, Some(&frame)).unwrap();
    let nifti = read_nifti_labelmap(&read("labels.nii.gz"), "labels.nii.gz", grid).unwrap();
    let nrrd = read_nrrd_labelmap(&read("labels.nrrd"), "labels.nrrd", grid).unwrap();
    let seg = read_seg(&read("ring.dcm"), "ring.dcm", grid, Some(&frame)).unwrap();
    assert_eq!(rt.lesions.len(), 2, "MARKER (a POINT ROI) is not a lesion");

    for label in [1, 2] {
        let reference = lesion(&nifti, label);
        for (format, other) in [
            ("RTSTRUCT", lesion(&rt, label)),
            ("NRRD", lesion(&nrrd, label)),
        ] {
            assert_eq!(
                other.offset_zyx, reference.offset_zyx,
                "{format} label {label}"
            );
            assert!(
                other.mask == reference.mask,
                "{format} label {label}: masks differ"
            );
        }
    }
    let ring = lesion(&seg, 1);
    assert!(ring.mask == lesion(&nifti, 1).mask && ring.offset_zyx == lesion(&nifti, 1).offset_zyx);

    let expected = features(&volume, lesion(&nifti, 1));
    for (format, l) in [
        ("RTSTRUCT", lesion(&rt, 1)),
        ("NRRD", lesion(&nrrd, 1)),
        ("SEG", ring),
    ] {
        assert_eq!(features(&volume, l), expected, "{format}: features differ");
    }
}

/// The IBSI CT phantom's RTSTRUCT rasterised by radscore agrees with IBSI's NIfTI mask
/// within the stated rasterisation tolerances, voxel for voxel and feature by feature.
#[test]
fn ibsi_rtstruct_agrees_with_the_ibsi_mask() {
    let (volume, frame) = phantom();
    let grid = &volume.grid;
    let rs = std::fs::read(phantom_dir().join("dicom/mask/DCM_RS_00060.dcm")).unwrap();
    let rt = read_rtstruct(&rs, "DCM_RS_00060.dcm", grid, Some(&frame)).unwrap();
    assert_eq!(rt.lesions.len(), 1);
    let gtv = &rt.lesions[0];
    assert_eq!((gtv.label, gtv.name.as_deref()), (1, Some("GTV-1")));

    let mask = std::fs::read(phantom_dir().join("nifti/mask/mask.nii.gz")).unwrap();
    let nifti = read_nifti_labelmap(&mask, "mask.nii.gz", grid).unwrap();
    let reference = lesion(&nifti, 1);
    let dense = |l: &LesionMask| {
        let mut all = ndarray::Array3::from_elem(
            (grid.shape_vox[0], grid.shape_vox[1], grid.shape_vox[2]),
            false,
        );
        let [z, y, x] = l.offset_zyx;
        let (dz, dy, dx) = l.mask.dim();
        all.slice_mut(ndarray::s![z..z + dz, y..y + dy, x..x + dx])
            .assign(&l.mask);
        all
    };
    let (a, b) = (dense(gtv), dense(reference));
    let differing = a.iter().zip(b.iter()).filter(|(p, q)| p != q).count();
    assert_eq!(
        differing,
        0,
        "{differing} voxels differ (RTSTRUCT {} voxels, NIfTI mask {})",
        gtv.voxel_count(),
        reference.voxel_count()
    );
    assert_eq!(features(&volume, gtv), features(&volume, reference));
}
