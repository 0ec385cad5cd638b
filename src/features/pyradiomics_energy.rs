//! PyRadiomics' shifted energy features (`firstorder` Energy, TotalEnergy and
//! RootMeanSquared), tags `pyr_*`. Not an IBSI family.
//!
//! PyRadiomics adds `voxelArrayShift` `c` to every intensity before squaring, so that
//! negative intensities (CT air) do not dominate; IBSI energy and RMS (3.3.17, 3.3.18,
//! tags `stat_energy`, `stat_rms`) use no shift. Input: the raw intensities of the voxels
//! in the intensity mask and the voxel size; output:
//!
//! ```text
//! pyr_energy        E_c  = Σ (X_k + c)²
//! pyr_total_energy  E_c · V_voxel          (V_voxel = Δz·Δy·Δx, mm³)
//! pyr_rms           sqrt(E_c / N)
//! ```
//!
//! Reference: PyRadiomics `radiomics/firstorder.py` (`getEnergyFeatureValue`,
//! `getTotalEnergyFeatureValue`, `getRootMeanSquaredFeatureValue`) and its documentation.
//! `c` is [`FamilySettings::voxel_array_shift`] (0 when absent; PyRadiomics' default
//! is 0 as well).

use super::{FamilySettings, Feature, FeatureError, Roi};

/// Feature tags in output order.
pub const TAGS: [&str; 3] = ["pyr_energy", "pyr_total_energy", "pyr_rms"];

/// Names produced by [`compute`], independent of settings.
pub fn names(_s: &FamilySettings) -> Vec<String> {
    TAGS.iter().map(|t| (*t).to_string()).collect()
}

/// Compute the shifted energy, total energy and RMS over the intensity mask.
///
/// # Errors
/// [`FeatureError::EmptyRoi`] when the intensity mask is empty.
pub fn compute(roi: &Roi, s: &FamilySettings) -> Result<Vec<Feature>, FeatureError> {
    let shift = s.voxel_array_shift.unwrap_or(0.0);
    let (mut n, mut energy) = (0usize, 0.0f64);
    for (&x, _) in roi
        .hu
        .iter()
        .zip(roi.intensity_mask.iter())
        .filter(|(_, m)| **m)
    {
        n += 1;
        energy += (f64::from(x) + shift).powi(2);
    }
    if n == 0 {
        return Err(FeatureError::EmptyRoi);
    }
    let voxel_volume_mm3: f64 = roi.spacing_mm.iter().product();
    Ok(vec![
        Feature::new(TAGS[0], energy),
        Feature::new(TAGS[1], energy * voxel_volume_mm3),
        Feature::new(TAGS[2], (energy / n as f64).sqrt()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn shift_is_added_before_squaring() {
        // Intensities -1, 1, 3 with c = 1: (0² + 2² + 4²) = 20; voxel 2×1×1 mm³.
        let hu = Array3::from_shape_vec((1, 1, 3), vec![-1.0, 1.0, 3.0]).unwrap();
        let mask = Array3::from_elem(hu.dim(), true);
        let roi = Roi {
            hu,
            intensity_mask: mask.clone(),
            morph_mask: mask,
            spacing_mm: [2.0, 1.0, 1.0],
        };
        let mut s = crate::features::ExtractionSettings::bundled()
            .for_location(crate::features::Location::Other)
            .clone();
        s.voxel_array_shift = Some(1.0);
        let f = compute(&roi, &s).unwrap();
        assert_eq!(f[0].value, 20.0);
        assert_eq!(f[1].value, 40.0);
        assert!((f[2].value - (20.0f64 / 3.0).sqrt()).abs() < 1e-12);
        s.voxel_array_shift = None;
        assert_eq!(compute(&roi, &s).unwrap()[0].value, 11.0);
    }
}
