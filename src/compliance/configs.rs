//! The IBSI 1 reference configurations as extraction settings: the digital phantom and the
//! CT phantom configurations A–E (IBSI 1 manual chapter 5, "Configurations"; transcribed in
//! `ibsi1_ct_phantom_configs.csv` of the reference data).

use crate::features::settings::{
    DEFAULT_MASK_THRESHOLD, ImageInterpolation, Interpolation, MaskInterpolation,
    TextureAggregation,
};
use crate::features::{Discretisation, FamilySettings, ibsi_families};

/// GLCM / NGTDM / NGLDM distance δ in every IBSI configuration.
const IBSI_TEXTURE_DISTANCE_VOX: u32 = 1;
/// NGLDM coarseness α in every IBSI configuration.
const IBSI_NGLDM_ALPHA: u32 = 0;
/// Isotropic (B: in-plane) resampled spacing of configurations B–E, mm.
const IBSI_RESAMPLED_SPACING_MM: [f64; 3] = [2.0, 2.0, 2.0];
/// Outlier re-segmentation of configurations D and E: μ ± 3σ.
const IBSI_OUTLIER_SIGMA: f64 = 3.0;
/// Fixed bin size of configurations A and C, HU.
const IBSI_BIN_WIDTH_HU: f64 = 25.0;
/// Fixed bin number of configurations B, D and E.
const IBSI_BIN_NUMBER: u32 = 32;
/// IVH discretisation: configuration C bin width (HU) and configuration E bin count.
const IBSI_IVH_BIN_WIDTH_HU: f64 = 2.5;
const IBSI_IVH_BIN_NUMBER: u32 = 1000;
/// Re-segmentation ranges: configurations A/B and C/E, HU.
const RANGE_A_B_HU: [f64; 2] = [-500.0, 400.0];
const RANGE_C_E_HU: [f64; 2] = [-1000.0, 400.0];

/// Texture aggregations with reference values: 2D and 2.5D (A, B), 3D (C–E), all six for
/// the digital phantom.
const AGGREGATIONS_2D: [TextureAggregation; 4] = [
    TextureAggregation::D2Avg,
    TextureAggregation::D2Comb,
    TextureAggregation::D25Avg,
    TextureAggregation::D25Comb,
];
const AGGREGATIONS_3D: [TextureAggregation; 2] =
    [TextureAggregation::D3Avg, TextureAggregation::D3Comb];

/// Settings shared by every configuration: all IBSI families, δ = 1, α = 0, no processing.
pub fn base_settings(aggregations: &[TextureAggregation]) -> FamilySettings {
    FamilySettings {
        families: ibsi_families().map(|f| f.name.to_string()).collect(),
        resegment_range_hu: None,
        discretisation: Discretisation::None,
        ivh_discretisation: None,
        texture_distance_vox: IBSI_TEXTURE_DISTANCE_VOX,
        ngldm_alpha: IBSI_NGLDM_ALPHA,
        texture_aggregations: aggregations.to_vec(),
        min_voxels: 1,
        interpolation: None,
        resegment_outlier_sigma: None,
        voxel_array_shift: None,
        image_filters: Default::default(),
        normalisation: None,
        features: None,
    }
}

/// The digital phantom (IBSI 1 chapter 5): every aggregation, intensities as grey levels.
pub fn digital_phantom() -> FamilySettings {
    let mut all = AGGREGATIONS_2D.to_vec();
    all.extend(AGGREGATIONS_3D);
    base_settings(&all)
}

/// IBSI interpolation with rounding to integers and the 0.5 partial-volume threshold.
fn ibsi_interpolation(image_method: ImageInterpolation, in_plane_only: bool) -> Interpolation {
    Interpolation {
        spacing_mm: IBSI_RESAMPLED_SPACING_MM,
        in_plane_only,
        image_method,
        mask_method: MaskInterpolation::Linear,
        mask_threshold: DEFAULT_MASK_THRESHOLD,
        round_intensities: true,
    }
}

/// The CT phantom configurations `'A'`–`'E'`: `(reference data set name, settings)`.
pub fn ct_phantom(name: char) -> Option<(&'static str, FamilySettings)> {
    let fbs = |lower: f64| Discretisation::FixedBinSize {
        bin_width_hu: IBSI_BIN_WIDTH_HU,
        lower_bound_hu: Some(lower),
        pyradiomics_edges: false,
    };
    let fbn = Discretisation::FixedBinNumber {
        bins: IBSI_BIN_NUMBER,
    };
    let config = match name {
        // A: 2D, no interpolation, range [−500, 400], FBS 25 HU.
        'A' => ("config_A", {
            let mut s = base_settings(&AGGREGATIONS_2D);
            s.resegment_range_hu = Some(RANGE_A_B_HU);
            s.discretisation = fbs(RANGE_A_B_HU[0]);
            s
        }),
        // B: 2D, bilinear to 2 × 2 mm in-plane, range [−500, 400], FBN 32.
        'B' => ("config_B", {
            let mut s = base_settings(&AGGREGATIONS_2D);
            s.interpolation = Some(ibsi_interpolation(ImageInterpolation::Linear, true));
            s.resegment_range_hu = Some(RANGE_A_B_HU);
            s.discretisation = fbn;
            s
        }),
        // C: 3D, trilinear to 2 mm, range [−1000, 400], FBS 25 HU, IVH FBS 2.5 HU.
        'C' => ("config_C", {
            let mut s = base_settings(&AGGREGATIONS_3D);
            s.interpolation = Some(ibsi_interpolation(ImageInterpolation::Linear, false));
            s.resegment_range_hu = Some(RANGE_C_E_HU);
            s.discretisation = fbs(RANGE_C_E_HU[0]);
            s.ivh_discretisation = Some(Discretisation::FixedBinSize {
                bin_width_hu: IBSI_IVH_BIN_WIDTH_HU,
                lower_bound_hu: Some(RANGE_C_E_HU[0]),
                pyradiomics_edges: false,
            });
            s
        }),
        // D: 3D, trilinear to 2 mm, no range, 3σ outlier filtering, FBN 32.
        'D' => ("config_D", {
            let mut s = base_settings(&AGGREGATIONS_3D);
            s.interpolation = Some(ibsi_interpolation(ImageInterpolation::Linear, false));
            s.resegment_outlier_sigma = Some(IBSI_OUTLIER_SIGMA);
            s.discretisation = fbn;
            s
        }),
        // E: 3D, tricubic spline to 2 mm (mask trilinear), range [−1000, 400] and 3σ,
        // FBN 32, IVH 1000 bins.
        'E' => ("config_E", {
            let mut s = base_settings(&AGGREGATIONS_3D);
            s.interpolation = Some(ibsi_interpolation(ImageInterpolation::CubicSpline, false));
            s.resegment_range_hu = Some(RANGE_C_E_HU);
            s.resegment_outlier_sigma = Some(IBSI_OUTLIER_SIGMA);
            s.discretisation = fbn;
            s.ivh_discretisation = Some(Discretisation::FixedBinNumber {
                bins: IBSI_IVH_BIN_NUMBER,
            });
            s
        }),
        _ => return None,
    };
    Some(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configuration_is_valid() {
        for name in ['A', 'B', 'C', 'D', 'E'] {
            let (_, s) = ct_phantom(name).expect("known configuration");
            s.validate()
                .unwrap_or_else(|e| panic!("config {name}: {e}"));
        }
        digital_phantom()
            .validate()
            .expect("phantom settings valid");
        assert!(ct_phantom('F').is_none());
    }
}
