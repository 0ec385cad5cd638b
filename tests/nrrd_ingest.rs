//! NRRD images and label maps read by radscore agree with SimpleITK and pynrrd
//! (`tests/support/nrrd_reference.py`) on geometry and on every voxel value: the
//! PyRadiomics test images and label maps (`$RADSCORE_SHARED_DATA/pyradiomics/images`)
//! and files pynrrd writes in every scalar type, encoding, byte order and space.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use radscore::image::Volume;
use radscore::image::nrrd::{read_nrrd_labelmap, read_nrrd_volume};
use radscore::pipeline::{SegmentationFormat, read_segmentation};
use serde_json::Value;

/// Geometry agreement with SimpleITK: both parse the same decimal text to `f64`; the
/// normalisation of direction vectors leaves at most a few ulp.
const GEOMETRY_TOLERANCE: f64 = 1e-9;

/// PyRadiomics data README: brain1's label holds 4,137 voxels of label 1.
const BRAIN1_LABEL_VOXELS: usize = 4137;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pyradiomics_images() -> PathBuf {
    std::env::var_os("RADSCORE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir().join("../shared/data"))
        .join("pyradiomics/images")
}

fn python() -> PathBuf {
    std::env::var_os("RADSCORE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir().join(".venv/bin/python"))
}

/// Run `nrrd_reference.py` with `args`; its stdout.
fn reference_script(args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(crate_dir().join("tests/support/nrrd_reference.py"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e})", python().display()));
    assert!(
        out.status.success(),
        "nrrd_reference.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// SimpleITK's reading of one file: geometry and voxel values `[z, y, x]`.
struct Reference {
    doc: Value,
    values: Vec<f64>,
}

/// Reference reads of `files`, in order.
fn references(files: &[PathBuf]) -> Vec<Reference> {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["read", "--out-dir", dir.path().to_str().unwrap()];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    reference_script(&args);
    (0..files.len())
        .map(|n| {
            let doc = std::fs::read_to_string(dir.path().join(format!("{n}.json"))).unwrap();
            let raw = std::fs::read(dir.path().join(format!("{n}.f64"))).unwrap();
            Reference {
                doc: serde_json::from_str(&doc).unwrap(),
                values: raw
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            }
        })
        .collect()
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|x| match x {
            Value::Array(inner) => inner.iter().map(|y| y.as_f64().unwrap()).collect(),
            other => vec![other.as_f64().unwrap()],
        })
        .collect()
}

fn assert_close(name: &str, what: &str, found: &[f64], expected: &[f64]) {
    assert_eq!(found.len(), expected.len(), "{name}: {what}");
    for (f, e) in found.iter().zip(expected) {
        assert!(
            (f - e).abs() <= GEOMETRY_TOLERANCE,
            "{name}: {what} {found:?}, SimpleITK {expected:?}"
        );
    }
}

/// Compare our volume with SimpleITK's reading: geometry within the tolerance, every
/// voxel value equal (as `f32`, the volume's type).
fn assert_matches(name: &str, volume: &Volume, reference: &Reference) {
    let g = &volume.grid;
    let shape: Vec<f64> = g.shape_vox.iter().map(|&n| n as f64).collect();
    assert_close(name, "shape", &shape, &numbers(&reference.doc["shape_zyx"]));
    assert_close(
        name,
        "spacing",
        &g.spacing_mm,
        &numbers(&reference.doc["spacing_zyx"]),
    );
    assert_close(
        name,
        "origin",
        &g.origin_mm,
        &numbers(&reference.doc["origin_lps"]),
    );
    let direction: Vec<f64> = g.direction.iter().flatten().copied().collect();
    assert_close(
        name,
        "direction",
        &direction,
        &numbers(&reference.doc["direction_zyx"]),
    );
    let ours = volume.hu.to_f32();
    let ours = ours.as_slice().expect("standard layout");
    assert_eq!(ours.len(), reference.values.len(), "{name}: voxel count");
    for (n, (a, b)) in ours.iter().zip(&reference.values).enumerate() {
        assert_eq!(*a, *b as f32, "{name}: voxel {n}");
    }
}

fn read_volume(path: &Path) -> Volume {
    let bytes = std::fs::read(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy();
    read_nrrd_volume(&bytes, &name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every PyRadiomics test image and label map (gzip, LPS, negative y and x directions).
#[test]
fn pyradiomics_files_match_simpleitk() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(pyradiomics_images())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "nrrd"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 8, "{files:?}");
    for (file, reference) in files.iter().zip(references(&files)) {
        let name = file.file_name().unwrap().to_string_lossy();
        assert_matches(&name, &read_volume(file), &reference);
    }
}

/// pynrrd-written files in every scalar type, raw and gzip, little and big endian, the
/// LPS, RAS and LAS spaces, permuted negative axes, and ascii.
#[test]
fn every_type_encoding_and_space_matches_simpleitk() {
    let dir = tempfile::tempdir().unwrap();
    let listing = reference_script(&["variants", "--out-dir", dir.path().to_str().unwrap()]);
    let files: Vec<PathBuf> = listing.lines().map(|l| dir.path().join(l)).collect();
    assert!(files.len() >= 30, "{listing}");
    for (file, reference) in files.iter().zip(references(&files)) {
        let name = file.file_name().unwrap().to_string_lossy();
        assert_matches(&name, &read_volume(file), &reference);
    }
}

/// Label maps map onto their image's grid through the sniffer: brain1 has the documented
/// voxel count, the prostate phantom's labels {1, 7, 8, 9} each become a lesion with the
/// voxel count SimpleITK sees.
#[test]
fn label_maps_become_lesions() {
    let dir = pyradiomics_images();
    let brain = read_volume(&dir.join("brain1_image.nrrd"));
    let label = std::fs::read(dir.join("brain1_label.nrrd")).unwrap();
    let (format, seg) =
        read_segmentation(&label, Some("brain1_label.nrrd"), &brain.grid, None).unwrap();
    assert_eq!(format, SegmentationFormat::Nrrd);
    assert_eq!(seg.lesions.len(), 1);
    assert_eq!(seg.lesions[0].label, 1);
    assert_eq!(seg.lesions[0].voxel_count(), BRAIN1_LABEL_VOXELS);

    let image = read_volume(&dir.join("prostate_phantom_subvolume.nrrd"));
    let label_path = dir.join("prostate_phantom_subvolume-label.nrrd");
    let reference = references(std::slice::from_ref(&label_path)).remove(0);
    let mut expected: BTreeMap<u32, usize> = BTreeMap::new();
    for v in reference.values.iter().filter(|&&v| v != 0.0) {
        *expected.entry(*v as u32).or_default() += 1;
    }
    assert_eq!(expected.keys().copied().collect::<Vec<_>>(), [1, 7, 8, 9]);
    let seg =
        read_nrrd_labelmap(&std::fs::read(&label_path).unwrap(), "p.nrrd", &image.grid).unwrap();
    let found: BTreeMap<u32, usize> = seg
        .lesions
        .iter()
        .map(|l| (l.label, l.voxel_count()))
        .collect();
    assert_eq!(found, expected);

    // The brain label map against the breast grid: refused naming the dimensions.
    let breast = read_volume(&dir.join("breast1_image.nrrd"));
    let err = read_nrrd_labelmap(&label, "brain1_label.nrrd", &breast.grid).unwrap_err();
    assert!(err.to_string().contains("dimensions differ"), "{err}");
}

/// A NRRD whose header contradicts itself (`dimension` against the count of `sizes`) is
/// refused saying so, and an all-background label map is refused naming the file, as an
/// empty NIfTI is; the same header with one labelled voxel maps.
#[test]
fn contradictory_headers_and_empty_label_maps_are_refused() {
    /// A 4 × 3 × 2 `uint8` label map on an LPS grid of 1 mm voxels, with `voxels`.
    fn nrrd(dimension: &str, voxels: &[u8]) -> Vec<u8> {
        let mut bytes = format!(
            "NRRD0004\ntype: uint8\ndimension: {dimension}\nspace: left-posterior-superior\n\
             sizes: 4 3 2\nspace directions: (1,0,0) (0,1,0) (0,0,1)\n\
             space origin: (0,0,0)\nencoding: raw\n\n"
        )
        .into_bytes();
        bytes.extend_from_slice(voxels);
        bytes
    }
    let zeros = [0u8; 24];
    let mut one = zeros;
    one[5] = 3;
    let grid = read_nrrd_volume(&nrrd("3", &zeros), "image.nrrd")
        .unwrap()
        .grid;

    let cases: [(Vec<u8>, &str, &[&str]); 2] = [
        (
            nrrd("4", &zeros),
            "lie.nrrd",
            &[
                "'lie.nrrd'",
                "'dimension' is 4",
                "'sizes' field lists 3 value(s) [4, 3, 2]",
            ],
        ),
        (
            nrrd("3", &zeros),
            "empty.nrrd",
            &["'empty.nrrd' holds no nonzero label"],
        ),
    ];
    for (bytes, name, needles) in cases {
        let msg = read_nrrd_labelmap(&bytes, name, &grid)
            .unwrap_err()
            .to_string();
        for n in needles {
            assert!(msg.contains(n), "{name}: lacks '{n}': {msg}");
        }
        assert!(!msg.contains("expected a 3-D volume"), "{msg}");
    }
    let seg = read_nrrd_labelmap(&nrrd("3", &one), "one.nrrd", &grid).unwrap();
    assert_eq!(
        seg.lesions
            .iter()
            .map(|l| (l.label, l.voxel_count()))
            .collect::<Vec<_>>(),
        [(3, 1)]
    );
}
