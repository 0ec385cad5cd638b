//! Local intensity features (IBSI 1 section 3.2, family 9ST6, tags `loc_*`).
//!
//! Input: the lesion crop's intensities (HU) **including the context margin** around the
//! lesion (see `pipeline::build_roi`), the intensity mask and the voxel spacing in mm.
//! Output: the local intensity peak (`loc_peak_loc`) and the global intensity peak
//! (`loc_peak_glob`).
//!
//! Both average the image in a sphere of 1 cm³ around a centre voxel: every voxel of the
//! image (not only of the ROI) whose centre lies within [`SPHERE_RADIUS_MM`] of the
//! centre voxel's centre, measured in millimetres with the voxel spacing. Voxels outside
//! the image do not exist and do not count; the crop's margin is at least the radius, so
//! cropping removes no voxel of the image from a sphere.
//!
//! Algorithm: the sphere is a stack of x-runs, one per `(dz, dy)` offset, each of
//! half-width `⌊√(r² − (dz·s_z)² − (dy·s_y)²) / s_x⌋`. With prefix sums along every
//! image row, a run costs O(1), so a sphere mean costs O(number of runs) (about 60 for
//! 1 × 1 × 3 mm CT) instead of O(number of voxels in the sphere) (about 350).

use ndarray::{Array3, Axis};

use super::{FamilySettings, Feature, FeatureError, Roi};

/// Feature tags in output order (IBSI 3.2.1, 3.2.2).
pub const TAGS: [&str; 2] = ["loc_peak_loc", "loc_peak_glob"];

/// Radius of a sphere of 1 cm³, mm: `r = (3 / (4π))^(1/3) cm` (IBSI 3.2.1, local
/// intensity peak, VJGA; 6.2035 mm to 0.1 µm).
pub const SPHERE_RADIUS_MM: f64 = 6.2035;

/// Names produced by [`compute`]: the 2 tags of [`TAGS`], independent of settings.
pub fn names(_s: &FamilySettings) -> Vec<String> {
    TAGS.iter().map(|t| (*t).to_string()).collect()
}

/// Compute the local and global intensity peaks (IBSI 3.2).
///
/// ```text
/// mean_k     mean of the image X over {m : ‖(c_m − c_k) ∘ spacing‖₂ ≤ r}
/// peak_loc   max of mean_k over the ROI voxels k with X_k = max over the ROI  (3.2.1)
/// peak_glob  max of mean_k over all ROI voxels k                               (3.2.2)
/// ```
///
/// The ROI is the intensity mask. When several ROI voxels share the maximum intensity,
/// the local peak is the highest of their sphere means (IBSI 3.2.1).
///
/// # Errors
/// [`FeatureError::EmptyRoi`] for an empty intensity mask; [`FeatureError::InvalidSettings`]
/// for a non-positive or non-finite spacing or mismatched array shapes;
/// [`FeatureError::Undefined`] for a non-finite intensity anywhere in the crop.
pub fn compute(roi: &Roi, _s: &FamilySettings) -> Result<Vec<Feature>, FeatureError> {
    if roi.hu.dim() != roi.intensity_mask.dim() {
        return Err(FeatureError::InvalidSettings(
            "intensity array and mask differ in shape".into(),
        ));
    }
    if roi.spacing_mm.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(FeatureError::InvalidSettings(format!(
            "voxel spacing must be positive, got {:?} mm",
            roi.spacing_mm
        )));
    }
    if roi.hu.iter().any(|v| !v.is_finite()) {
        return Err(FeatureError::Undefined {
            feature: "loc_peak_loc".into(),
            reason: "non-finite intensity in the lesion crop",
        });
    }
    let runs = sphere_runs(roi.spacing_mm, SPHERE_RADIUS_MM);
    let prefix = row_prefix_sums(&roi.hu);
    let roi_max = roi
        .hu
        .iter()
        .zip(roi.intensity_mask.iter())
        .filter(|(_, m)| **m)
        .map(|(&v, _)| v)
        .fold(None, |acc: Option<f32>, v| {
            Some(acc.map_or(v, |a| a.max(v)))
        })
        .ok_or(FeatureError::EmptyRoi)?;
    let (mut peak_loc, mut peak_glob) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for ((z, y, x), _) in roi.intensity_mask.indexed_iter().filter(|(_, m)| **m) {
        let mean = sphere_mean(&prefix, &runs, [z, y, x]);
        peak_glob = peak_glob.max(mean);
        if roi.hu[[z, y, x]] == roi_max {
            peak_loc = peak_loc.max(mean);
        }
    }
    Ok(vec![
        Feature::new(TAGS[0], peak_loc),
        Feature::new(TAGS[1], peak_glob),
    ])
}

/// One x-run of the sphere: rows at `(dz, dy)` from the centre, `|dx| ≤ half_width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    dz: isize,
    dy: isize,
    half_width: usize,
}

/// The x-runs making up the voxel-centre sphere of radius `radius_mm`.
fn sphere_runs(spacing_mm: [f64; 3], radius_mm: f64) -> Vec<Run> {
    let r2 = radius_mm * radius_mm;
    let reach = |s: f64| (radius_mm / s).floor() as isize;
    let mut runs = Vec::new();
    for dz in -reach(spacing_mm[0])..=reach(spacing_mm[0]) {
        for dy in -reach(spacing_mm[1])..=reach(spacing_mm[1]) {
            let rest =
                r2 - (dz as f64 * spacing_mm[0]).powi(2) - (dy as f64 * spacing_mm[1]).powi(2);
            if rest >= 0.0 {
                let half_width = (rest.sqrt() / spacing_mm[2]).floor() as usize;
                runs.push(Run { dz, dy, half_width });
            }
        }
    }
    runs
}

/// Prefix sums along x: `p[[z, y, x]] = Σ_{x' < x} hu[[z, y, x']]`, one extra column.
fn row_prefix_sums(hu: &Array3<f32>) -> Array3<f64> {
    let (nz, ny, nx) = hu.dim();
    let mut p = Array3::<f64>::zeros((nz, ny, nx + 1));
    for (src, mut dst) in hu.lanes(Axis(2)).into_iter().zip(p.lanes_mut(Axis(2))) {
        let mut acc = 0.0;
        for (x, &v) in src.iter().enumerate() {
            dst[x] = acc;
            acc += f64::from(v);
        }
        dst[nx] = acc;
    }
    p
}

/// Mean intensity of the image voxels of the sphere around `centre` (never empty: the
/// centre voxel belongs to its own sphere).
fn sphere_mean(prefix: &Array3<f64>, runs: &[Run], centre: [usize; 3]) -> f64 {
    let (nz, ny, np) = prefix.dim();
    let nx = np - 1;
    let (mut sum, mut count) = (0.0, 0_usize);
    for run in runs {
        let (Some(z), Some(y)) = (
            centre[0].checked_add_signed(run.dz).filter(|&v| v < nz),
            centre[1].checked_add_signed(run.dy).filter(|&v| v < ny),
        ) else {
            continue;
        };
        let lo = centre[2].saturating_sub(run.half_width);
        let hi = (centre[2] + run.half_width + 1).min(nx);
        sum += prefix[[z, y, hi]] - prefix[[z, y, lo]];
        count += hi - lo;
    }
    sum / count as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> FamilySettings {
        crate::features::neighbourhood::test_settings(&[])
    }

    fn get(f: &[Feature], tag: &str) -> f64 {
        f.iter().find(|x| x.name == tag).unwrap().value
    }

    #[test]
    fn radius_is_that_of_one_cubic_centimetre() {
        let r_mm = 10.0 * (3.0 / (4.0 * std::f64::consts::PI)).cbrt();
        assert!((r_mm - SPHERE_RADIUS_MM).abs() < 1e-4);
    }

    #[test]
    fn runs_match_brute_force_sphere() {
        let spacing = [3.0, 0.977, 0.977];
        let runs = sphere_runs(spacing, SPHERE_RADIUS_MM);
        let from_runs: usize = runs.iter().map(|r| 2 * r.half_width + 1).sum();
        let mut brute = 0;
        for dz in -10_i32..=10 {
            for dy in -10_i32..=10 {
                for dx in -10_i32..=10 {
                    let d2 = (f64::from(dz) * spacing[0]).powi(2)
                        + (f64::from(dy) * spacing[1]).powi(2)
                        + (f64::from(dx) * spacing[2]).powi(2);
                    if d2 <= SPHERE_RADIUS_MM * SPHERE_RADIUS_MM {
                        brute += 1;
                    }
                }
            }
        }
        assert_eq!(from_runs, brute);
    }

    #[test]
    fn peaks_average_image_voxels_outside_the_roi() {
        // 1 × 1 × 9 line, 5 mm voxels: the sphere of a voxel holds it and its two
        // neighbours (5 mm ≤ r < 10 mm). ROI = voxels 3 and 5 only.
        let values = [0.0, 0.0, 0.0, 9.0, 30.0, 6.0, 0.0, 0.0, 0.0];
        let hu = Array3::from_shape_vec((1, 1, 9), values.to_vec()).unwrap();
        let mut mask = Array3::from_elem(hu.dim(), false);
        mask[[0, 0, 3]] = true;
        mask[[0, 0, 5]] = true;
        let roi = Roi {
            hu,
            intensity_mask: mask.clone(),
            morph_mask: mask,
            spacing_mm: [5.0; 3],
        };
        let f = compute(&roi, &settings()).unwrap();
        assert_eq!(names(&settings()).len(), f.len());
        // Local: the ROI maximum is voxel 3 (9): mean(0, 9, 30) = 13.
        assert!((get(&f, "loc_peak_loc") - 13.0).abs() < 1e-12);
        // Global: voxel 5: mean(30, 6, 0) = 12 < 13, so also 13.
        assert!((get(&f, "loc_peak_glob") - 13.0).abs() < 1e-12);
    }

    /// A 1 × 1 × 6 line of 5 mm voxels whose last two voxels are outside the ROI.
    fn line_roi(values: [f32; 6]) -> Roi {
        let hu = Array3::from_shape_vec((1, 1, 6), values.to_vec()).unwrap();
        let mut mask = Array3::from_elem(hu.dim(), true);
        mask[[0, 0, 4]] = false;
        mask[[0, 0, 5]] = false;
        Roi {
            hu,
            intensity_mask: mask.clone(),
            morph_mask: mask,
            spacing_mm: [5.0; 3],
        }
    }

    #[test]
    fn global_peak_can_exceed_local_peak() {
        // Maximum 5 at the image edge: mean(5, 0) = 2.5. Voxel 3: mean(0, 4, 20) = 8.
        let f = compute(&line_roi([5.0, 0.0, 0.0, 4.0, 20.0, 20.0]), &settings()).unwrap();
        assert!((get(&f, "loc_peak_loc") - 2.5).abs() < 1e-12);
        assert!((get(&f, "loc_peak_glob") - 8.0).abs() < 1e-12);
    }

    #[test]
    fn tied_maxima_take_the_highest_mean() {
        // Maximum 5 at voxel 0 (mean 2.5) and voxel 3 (mean(0, 5, 20) = 25/3).
        let f = compute(&line_roi([5.0, 0.0, 0.0, 5.0, 20.0, 20.0]), &settings()).unwrap();
        assert!((get(&f, "loc_peak_loc") - 25.0 / 3.0).abs() < 1e-12);
    }
}
