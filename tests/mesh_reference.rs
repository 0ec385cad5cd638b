//! Mesh volume and area (IBSI 1 §3.1.1, §3.1.3) against an independent implementation:
//! scikit-image's classic marching cubes (`method="lorensen"`, the Lorensen & Cline case
//! table the IBSI reference teams used), run by `tests/support/mesh_reference.py` in the
//! project venv (`$RADSCORE_PYTHON`).
//!
//! Scenario: every one of the 254 non-trivial 2×2×2 corner configurations, pseudo-random
//! masks with anisotropic spacing, the IBSI digital phantom mask and the CT phantom mask
//! (`shared/data`, see its README) are meshed by
//! [`radscore::features::morphology::mesh_volume_area`] and by scikit-image; volume and
//! area must agree to floating-point rounding, which holds only if every cube is
//! triangulated the same way.

mod common;

use ndarray::Array3;
use radscore::features::morphology::mesh_volume_area;

/// Both sides sum the same triangles in `f64` from exact lattice vertices; only summation
/// order differs.
const AGREEMENT_REL: f64 = 1e-9;

/// Anisotropic spacing `[z, y, x]` (mm) for the synthetic masks, so that a triangulation
/// that matched only up to a rotation of the cube would show.
const SYNTHETIC_SPACING_MM: [f64; 3] = [3.0, 0.8, 1.7];

/// Shape and count of the pseudo-random masks.
const RANDOM_SHAPE: (usize, usize, usize) = (6, 7, 8);
const RANDOM_MASKS: u64 = 12;

struct Case {
    name: String,
    mask: Array3<bool>,
    spacing_mm: [f64; 3],
}

/// scikit-image's `(volume_mm3, area_mm2)` for each case, in order.
fn skimage_mesh(cases: &[Case]) -> Vec<(f64, f64)> {
    let input: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            let voxels: String = c.mask.iter().map(|&m| if m { '1' } else { '0' }).collect();
            let (z, y, x) = c.mask.dim();
            serde_json::json!({ "shape": [z, y, x], "spacing_mm": c.spacing_mm, "voxels": voxels })
        })
        .collect();
    let rows: Vec<serde_json::Value> =
        common::run_support_json("mesh_reference.py", &serde_json::Value::Array(input));
    rows.iter()
        .map(|r| {
            let get = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("no {k} in {r}"));
            (get("volume_mm3"), get("area_mm2"))
        })
        .collect()
}

fn assert_agree(cases: &[Case]) {
    let reference = skimage_mesh(cases);
    assert_eq!(reference.len(), cases.len());
    let mut failures = Vec::new();
    for (case, (sk_volume, sk_area)) in cases.iter().zip(reference) {
        let (volume, area) = mesh_volume_area(&case.mask, case.spacing_mm);
        let close = |a: f64, b: f64| (a - b).abs() <= AGREEMENT_REL * b.abs().max(1.0);
        if !close(volume, sk_volume) || !close(area, sk_area) {
            failures.push(format!(
                "{}: radscore V = {volume} mm³, A = {area} mm²; scikit-image V = {sk_volume}, \
                 A = {sk_area}",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Deterministic pseudo-random masks (LCG), about half the voxels set.
fn random_masks() -> Vec<Case> {
    let mut state = 0x5eed_u64;
    (0..RANDOM_MASKS)
        .map(|k| {
            let mask = Array3::from_shape_fn(RANDOM_SHAPE, |_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 61) < 4
            });
            Case {
                name: format!("random mask {k}"),
                mask,
                spacing_mm: SYNTHETIC_SPACING_MM,
            }
        })
        .collect()
}

/// Each 2×2×2 corner configuration matches scikit-image's classic table.
#[test]
fn every_cube_configuration_matches_the_classic_table() {
    let cases: Vec<Case> = (1..255_usize)
        .map(|case| Case {
            name: format!("corner case {case:#010b}"),
            mask: Array3::from_shape_fn((2, 2, 2), |(z, y, x)| {
                case & (1 << (z * 4 + y * 2 + x)) != 0
            }),
            spacing_mm: SYNTHETIC_SPACING_MM,
        })
        .collect();
    assert_agree(&cases);
}

/// Random masks (many cubes of every kind side by side) match scikit-image.
#[test]
fn random_masks_match_the_classic_table() {
    assert_agree(&random_masks());
}

/// The IBSI digital phantom and CT phantom masks match scikit-image.
#[test]
fn ibsi_phantom_masks_match_the_classic_table() {
    let cases: Vec<Case> = [
        (
            "digital phantom",
            "ibsi1/digital_phantom/nifti/mask/mask.nii.gz",
        ),
        ("CT phantom", "ibsi1/ct_phantom/nifti/mask/mask.nii.gz"),
    ]
    .into_iter()
    .map(|(name, rel)| {
        let (mask, spacing_mm) = common::read_nifti(rel);
        Case {
            name: name.into(),
            mask: mask.mapv(|m| m > 0.5),
            spacing_mm,
        }
    })
    .collect();
    assert_agree(&cases);
}
