//! Morphology features without IBSI reference values (OMBB and MVEE densities, IBSI 1
//! §3.1.19 – 3.1.24) on shapes whose answer is known, and the MVEE against an independent
//! implementation (Khachiyan's algorithm in numpy, `tests/support/mvee_reference.py`, run
//! with `$RADSCORE_PYTHON`).
//!
//! Scenario: voxelise an ellipsoid and a rotated box, take the convex hull of the mesh
//! vertices as the morphology family does, and check the minimum-volume enclosing
//! ellipsoid and the oriented minimum bounding box.

mod common;

use ndarray::Array3;
use radscore::features::morphology::{hull, mesh, mvee, ombb};

/// The voxelised test shapes use isotropic 1 mm voxels.
const VOXEL_MM: f64 = 1.0;

/// Mesh vertices sit at most half a voxel outside the voxel centres of the shape, and a
/// voxel centre inside the shape may be up to one voxel diagonal (√3/2 per axis) from its
/// surface: enclosing quantities agree with the analytic shape within one voxel per axis.
const VOXELISATION_SLACK_MM: f64 = 1.0;

/// radscore stops Khachiyan at ε = 1e-5 (volume within 1.5e-5); numpy to 1e-7.
const MVEE_AGREEMENT_REL: f64 = 1e-4;

/// Hull vertices (mm) and hull triangles of a mask's mesh, as the morphology family
/// builds them.
fn hull_of(mask: &Array3<bool>) -> (Vec<[f64; 3]>, Vec<[usize; 3]>) {
    let lattice = mesh::surface_vertices(mask);
    let faces = hull::hull_triangles(&lattice).expect("3D shape");
    let mut used: Vec<usize> = faces.iter().flatten().copied().collect();
    used.sort_unstable();
    used.dedup();
    let local = |i: usize| used.binary_search(&i).expect("hull vertex");
    let vertices = used
        .iter()
        .map(|&i| lattice[i].map(|c| c as f64 * VOXEL_MM / 2.0))
        .collect();
    (vertices, faces.iter().map(|f| f.map(local)).collect())
}

fn numpy_mvee(points: &[[f64; 3]]) -> [f64; 3] {
    let v: serde_json::Value = common::run_support_json(
        "mvee_reference.py",
        &serde_json::json!({ "points_mm": points }),
    );
    let axes: Vec<f64> = v["semi_axes_mm"]
        .as_array()
        .expect("semi_axes_mm")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect();
    [axes[0], axes[1], axes[2]]
}

/// The MVEE of a voxelised ellipsoid is that ellipsoid (within the voxelisation) and
/// agrees with numpy's Khachiyan on the same hull vertices.
#[test]
fn mvee_of_a_voxelised_ellipsoid() {
    let semi_axes_mm = [11.0, 7.0, 4.5];
    let half = semi_axes_mm.map(|s| (s / VOXEL_MM).ceil() as usize + 1);
    let mask = Array3::from_shape_fn(
        (2 * half[2] + 1, 2 * half[1] + 1, 2 * half[0] + 1),
        |(z, y, x)| {
            let p = [
                x as f64 - half[0] as f64,
                y as f64 - half[1] as f64,
                z as f64 - half[2] as f64,
            ];
            (0..3)
                .map(|k| (p[k] * VOXEL_MM / semi_axes_mm[k]).powi(2))
                .sum::<f64>()
                <= 1.0
        },
    );
    let (vertices, _) = hull_of(&mask);
    let ours = mvee::mvee_semi_axes_mm(&vertices).expect("3D");
    for k in 0..3 {
        assert!(
            (ours[k] - semi_axes_mm[k]).abs() <= VOXELISATION_SLACK_MM,
            "semi-axes {ours:?}, analytic {semi_axes_mm:?}"
        );
    }
    let reference = numpy_mvee(&vertices);
    for k in 0..3 {
        assert!(
            (ours[k] - reference[k]).abs() <= MVEE_AGREEMENT_REL * reference[k],
            "radscore {ours:?}, numpy {reference:?}"
        );
    }
}

/// The oriented minimum box of a voxelised box rotated by 30° about z is that box
/// (within the voxelisation), far smaller than its axis-aligned bounding box.
#[test]
fn ombb_of_a_rotated_voxelised_box() {
    let (length_mm, width_mm, height_mm) = (30.0, 12.0, 8.0);
    let angle = 30_f64.to_radians();
    let (c, s) = (angle.cos(), angle.sin());
    let n = 40;
    let mask = Array3::from_shape_fn((12, n, n), |(z, y, x)| {
        let (px, py) = (x as f64 - n as f64 / 2.0, y as f64 - n as f64 / 2.0);
        let (u, v) = (c * px + s * py, -s * px + c * py);
        u.abs() <= length_mm / 2.0
            && v.abs() <= width_mm / 2.0
            && (z as f64 - 6.0).abs() <= height_mm / 2.0
    });
    let (vertices, faces) = hull_of(&mask);
    let b = ombb::oriented_minimum_box(&vertices, &faces).expect("faces");
    let lo = (length_mm - VOXELISATION_SLACK_MM) * (width_mm - VOXELISATION_SLACK_MM) * height_mm;
    let hi = (length_mm + VOXELISATION_SLACK_MM)
        * (width_mm + VOXELISATION_SLACK_MM)
        * (height_mm + VOXELISATION_SLACK_MM);
    assert!(
        b.volume_mm3 >= lo && b.volume_mm3 <= hi,
        "OMBB {b:?}, bounds {lo} … {hi}"
    );
    let extent = |k: usize| {
        let (mn, mx) = vertices
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, z), p| {
                (a.min(p[k]), z.max(p[k]))
            });
        mx - mn
    };
    let aabb_mm3 = extent(0) * extent(1) * extent(2);
    assert!(
        b.volume_mm3 < 0.75 * aabb_mm3,
        "OMBB {b:?} vs AABB {aabb_mm3}"
    );
}
