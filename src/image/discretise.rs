//! Intensity discretisation (IBSI 1 section 2.7) for the texture families.
//!
//! Input: intensities in HU over a lesion crop (`[z, y, x]`), the intensity mask and the
//! [`Discretisation`] of the lesion's settings. Output: [`GreyLevels`], an array of 1-based
//! grey levels on the same crop (0 marks voxels outside the intensity mask) and the number
//! of grey levels `N_g`.
//!
//! * Fixed bin number (IBSI 2.7.1, `FBN`):
//!   `X_d = floor(N_g · (X − X_min) / (X_max − X_min)) + 1`, and `X_d = N_g` for `X = X_max`.
//!   `X_min`, `X_max` are taken over the intensity mask.
//! * Fixed bin size (IBSI 2.7.2, `FBS`): `X_d = floor((X − X_gl,min) / w_b) + 1`, with
//!   `X_gl,min` = `lower_bound_hu`, else the lower re-segmentation bound, else the ROI
//!   minimum. `N_g` is the largest grey level in the ROI. With `pyradiomics_edges`,
//!   `X_gl,min` is instead the largest multiple of `w_b` not above the ROI minimum, as
//!   PyRadiomics' `binWidth` places its bin edges (`radiomics.imageoperations.getBinEdges`).
//! * [`Discretisation::None`]: intensities are rounded to the nearest integer and used as
//!   grey levels as they are (IBSI digital phantom); `N_g` is the largest of them.

use ndarray::{Array3, Zip};

use crate::features::{Discretisation, FamilySettings, FeatureError, Roi};

/// Grey levels of one lesion after discretisation.
#[derive(Debug, Clone, PartialEq)]
pub struct GreyLevels {
    /// 1-based grey level of every intensity-mask voxel, `0` outside the mask; `[z, y, x]`.
    pub levels: Array3<u32>,
    /// Number of grey levels `N_g` (the largest grey level that can occur).
    pub n_levels: u32,
}

/// Discretise a [`Roi`]'s intensity-mask voxels with the settings' discretisation,
/// using the settings' re-segmentation lower bound as the FBS fallback lower bound.
///
/// # Errors
/// See [`discretise_voxels`].
pub fn discretise(roi: &Roi, settings: &FamilySettings) -> Result<GreyLevels, FeatureError> {
    let reseg_lower_hu = settings.resegment_range_hu.map(|[lo, _]| lo);
    discretise_voxels(
        &roi.hu,
        &roi.intensity_mask,
        &settings.discretisation,
        reseg_lower_hu,
    )
}

/// Discretise the voxels of `hu` where `mask` is set (IBSI 2.7).
///
/// # Errors
/// * [`FeatureError::EmptyRoi`] if the mask is empty;
/// * [`FeatureError::InvalidSettings`] for a non-positive bin count or width, a voxel
///   below the FBS lower bound, a rounded intensity below 1 with
///   [`Discretisation::None`] (grey levels are 1-based), or a grey level that does not fit
///   in `u32`;
/// * [`FeatureError::Undefined`] if an intensity is not finite.
pub fn discretise_voxels(
    hu: &Array3<f32>,
    mask: &Array3<bool>,
    method: &Discretisation,
    reseg_lower_hu: Option<f64>,
) -> Result<GreyLevels, FeatureError> {
    if hu.dim() != mask.dim() {
        return Err(FeatureError::InvalidSettings(format!(
            "intensity array {:?} and mask {:?} differ in shape",
            hu.dim(),
            mask.dim()
        )));
    }
    let (min_hu, max_hu) = masked_range(hu, mask)?;
    let mut levels = Array3::<u32>::zeros(hu.dim());
    let mut failure: Option<FeatureError> = None;
    let mut n_levels = 0_u32;
    let level_of: Box<dyn Fn(f64) -> Result<u32, FeatureError>> = match *method {
        Discretisation::FixedBinNumber { bins } => {
            if bins == 0 {
                return Err(FeatureError::InvalidSettings(
                    "fixed_bin_number needs bins ≥ 1".into(),
                ));
            }
            n_levels = bins;
            let range = max_hu - min_hu;
            Box::new(move |x| Ok(fbn_level(x, min_hu, range, bins)))
        }
        Discretisation::FixedBinSize {
            bin_width_hu,
            lower_bound_hu,
            pyradiomics_edges,
        } => {
            if !(bin_width_hu.is_finite() && bin_width_hu > 0.0) {
                return Err(FeatureError::InvalidSettings(format!(
                    "bin_width_hu must be > 0, got {bin_width_hu}"
                )));
            }
            let lower = if pyradiomics_edges {
                pyradiomics_lower_bound(min_hu, bin_width_hu)
            } else {
                lower_bound_hu.or(reseg_lower_hu).unwrap_or(min_hu)
            };
            Box::new(move |x| {
                let bin = ((x - lower) / bin_width_hu).floor() + 1.0;
                if bin < 1.0 {
                    return Err(FeatureError::InvalidSettings(format!(
                        "intensity {x} HU lies below the fixed-bin-size lower bound {lower} HU"
                    )));
                }
                to_level(bin)
            })
        }
        Discretisation::None => Box::new(|x| {
            let g = x.round();
            if g < 1.0 {
                return Err(FeatureError::InvalidSettings(format!(
                    "discretisation 'none' uses intensities as 1-based grey levels, \
                     found {x}; use fixed_bin_size or fixed_bin_number"
                )));
            }
            to_level(g)
        }),
    };
    Zip::from(&mut levels)
        .and(hu)
        .and(mask)
        .for_each(|l, &x, &m| {
            if m && failure.is_none() {
                match level_of(f64::from(x)) {
                    Ok(g) => *l = g,
                    Err(e) => failure = Some(e),
                }
            }
        });
    if let Some(e) = failure {
        return Err(e);
    }
    if !matches!(method, Discretisation::FixedBinNumber { .. }) {
        n_levels = levels.iter().copied().max().unwrap_or(0);
    }
    Ok(GreyLevels { levels, n_levels })
}

/// PyRadiomics' lowest `binWidth` edge: `min − (min mod w_b)` with a floored modulo, the
/// largest multiple of `w_b` not above `min_hu` (`radiomics.imageoperations.getBinEdges`).
pub fn pyradiomics_lower_bound(min_hu: f64, bin_width_hu: f64) -> f64 {
    min_hu - min_hu.rem_euclid(bin_width_hu)
}

/// FBN grey level of `x` (IBSI 2.7.1); the ROI maximum maps to `bins`, and a flat ROI
/// (`range == 0`) maps to level 1.
fn fbn_level(x: f64, min_hu: f64, range_hu: f64, bins: u32) -> u32 {
    if range_hu <= 0.0 {
        return 1;
    }
    let bin = (f64::from(bins) * (x - min_hu) / range_hu).floor() + 1.0;
    // `x` is within [min, max], so `bin` is within [1, bins + 1]; clamp the maximum to N_g.
    (bin as u32).clamp(1, bins)
}

/// A float grey level (already ≥ 1 and integral) as `u32`.
fn to_level(g: f64) -> Result<u32, FeatureError> {
    if g <= f64::from(u32::MAX) {
        Ok(g as u32)
    } else {
        Err(FeatureError::InvalidSettings(format!(
            "grey level {g} is too large"
        )))
    }
}

/// Minimum and maximum intensity over the mask.
fn masked_range(hu: &Array3<f32>, mask: &Array3<bool>) -> Result<(f64, f64), FeatureError> {
    let mut range: Option<(f64, f64)> = None;
    for (&x, _) in hu.iter().zip(mask.iter()).filter(|(_, m)| **m) {
        let x = f64::from(x);
        if !x.is_finite() {
            return Err(FeatureError::Undefined {
                feature: "discretisation".into(),
                reason: "non-finite intensity in the region of interest",
            });
        }
        range = Some(match range {
            None => (x, x),
            Some((lo, hi)) => (lo.min(x), hi.max(x)),
        });
    }
    range.ok_or(FeatureError::EmptyRoi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn line(values: &[f32]) -> (Array3<f32>, Array3<bool>) {
        let hu = Array3::from_shape_vec((1, 1, values.len()), values.to_vec()).unwrap();
        let mask = Array3::from_elem(hu.dim(), true);
        (hu, mask)
    }

    #[test]
    fn fbn_maps_min_to_one_and_max_to_ng() {
        let (hu, mask) = line(&[0.0, 2.5, 5.0, 7.5, 10.0]);
        let g = discretise_voxels(
            &hu,
            &mask,
            &Discretisation::FixedBinNumber { bins: 4 },
            None,
        )
        .unwrap();
        assert_eq!(
            g.levels.iter().copied().collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 4]
        );
        assert_eq!(g.n_levels, 4);
    }

    #[test]
    fn fbs_uses_resegmentation_lower_bound_then_explicit_bound() {
        let (hu, mask) = line(&[-500.0, -476.0, -475.0, 399.0]);
        let fbs = Discretisation::FixedBinSize {
            bin_width_hu: 25.0,
            lower_bound_hu: None,
            pyradiomics_edges: false,
        };
        let g = discretise_voxels(&hu, &mask, &fbs, Some(-500.0)).unwrap();
        // (399 + 500) / 25 = 35.96 → bin 36.
        assert_eq!(
            g.levels.iter().copied().collect::<Vec<_>>(),
            vec![1, 1, 2, 36]
        );
        assert_eq!(g.n_levels, 36);
        let explicit = Discretisation::FixedBinSize {
            bin_width_hu: 25.0,
            lower_bound_hu: Some(-600.0),
            pyradiomics_edges: false,
        };
        let g = discretise_voxels(&hu, &mask, &explicit, Some(-500.0)).unwrap();
        assert_eq!(g.levels[[0, 0, 0]], 5);
    }

    #[test]
    fn pyradiomics_edges_sit_at_multiples_of_the_bin_width() {
        // PyRadiomics getBinEdges: lowBound = min - (min % w) = -476 - 24 = -500, so the
        // edges are -500, -475, …; the re-segmentation bound (-1000) plays no part.
        let (hu, mask) = line(&[-476.0, -451.0, 10.0]);
        let fbs = Discretisation::FixedBinSize {
            bin_width_hu: 25.0,
            lower_bound_hu: None,
            pyradiomics_edges: true,
        };
        let g = discretise_voxels(&hu, &mask, &fbs, Some(-1000.0)).unwrap();
        assert_eq!(g.levels.iter().copied().collect::<Vec<_>>(), vec![1, 2, 21]);
        assert_eq!(pyradiomics_lower_bound(50.0, 25.0), 50.0);
        assert_eq!(pyradiomics_lower_bound(-0.5, 25.0), -25.0);
    }

    #[test]
    fn fbs_below_lower_bound_is_an_error() {
        let (hu, mask) = line(&[-501.0, 0.0]);
        let fbs = Discretisation::FixedBinSize {
            bin_width_hu: 25.0,
            lower_bound_hu: Some(-500.0),
            pyradiomics_edges: false,
        };
        assert!(matches!(
            discretise_voxels(&hu, &mask, &fbs, None),
            Err(FeatureError::InvalidSettings(_))
        ));
    }

    #[test]
    fn none_rounds_and_masks() {
        let (hu, mut mask) = line(&[1.2, 5.6, 9.0]);
        mask[[0, 0, 2]] = false;
        let g = discretise_voxels(&hu, &mask, &Discretisation::None, None).unwrap();
        assert_eq!(g.levels.iter().copied().collect::<Vec<_>>(), vec![1, 6, 0]);
        assert_eq!(g.n_levels, 6);
        let (hu, mask) = line(&[0.2]);
        assert!(discretise_voxels(&hu, &mask, &Discretisation::None, None).is_err());
    }

    #[test]
    fn empty_mask_is_an_error() {
        let (hu, _) = line(&[1.0]);
        let mask = Array3::from_elem(hu.dim(), false);
        assert_eq!(
            discretise_voxels(&hu, &mask, &Discretisation::None, None),
            Err(FeatureError::EmptyRoi)
        );
    }
}
