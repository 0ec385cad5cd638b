//! IBSI 1 radiomics features, one feature family per file.
//!
//! Every family has the same signature, [`FamilyFn`]: it takes a [`Roi`] (the lesion's
//! intensities and masks, cropped, with spacing) and the effective [`FamilySettings`], and
//! returns named values. Names are the IBSI / MIRP feature tags used by the IBSI 1
//! reference tables (`stat_mean`, `morph_volume`, `cm_contrast_3D_avg`), so results join
//! directly with IBSI reference values; see `docs/feature-names.md`.
//!
//! Reference: Zwanenburg A. et al., *The Image Biomarker Standardisation Initiative*,
//! Radiology 2020; IBSI 1 reference manual, arXiv:1612.07003 (chapter 3, "Image features").

pub mod glcm;
pub mod gldzm;
pub mod glrlm;
pub mod glszm;
pub mod intensity_histogram;
pub mod intensity_stats;
pub mod ivh;
pub mod local_intensity;
pub mod morphology;
pub mod neighbourhood;
pub mod ngldm;
pub mod ngtdm;
pub mod pyradiomics_energy;
pub mod settings;
pub mod texture;

pub use settings::{Discretisation, ExtractionSettings, FamilySettings, Location};

use ndarray::Array3;

/// The input of every feature family: one lesion, cropped to its bounding box.
#[derive(Debug, Clone)]
pub struct Roi {
    /// Intensities (HU), indexed `[z, y, x]`, over the crop.
    pub hu: Array3<f32>,
    /// Intensity mask (IBSI 2.1: voxels used for intensity and texture features), after
    /// re-segmentation. Same shape as `hu`.
    pub intensity_mask: Array3<bool>,
    /// Morphological mask (IBSI 2.1: voxels used for morphology), before re-segmentation.
    pub morph_mask: Array3<bool>,
    /// Voxel spacing along `[z, y, x]`, millimetres.
    pub spacing_mm: [f64; 3],
}

/// One computed feature: its IBSI tag and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    /// IBSI / MIRP tag, e.g. `stat_mean` or `cm_joint_max_3D_avg`.
    pub name: String,
    /// The value; always finite (families return an error instead of NaN/∞).
    pub value: f64,
}

impl Feature {
    /// A named value.
    pub fn new(name: impl Into<String>, value: f64) -> Self {
        Feature {
            name: name.into(),
            value,
        }
    }
}

/// Why a family could not compute a lesion. Codes are stable and machine-readable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeatureError {
    /// The intensity or morphological mask holds no voxel.
    #[error("the region of interest is empty")]
    EmptyRoi,
    /// Fewer voxels than the family needs.
    #[error("the region of interest has {found} voxel(s); at least {required} are needed")]
    TooFewVoxels { found: usize, required: usize },
    /// The lesion spans too few slices for 3D features.
    #[error("the region of interest spans {found} slice(s); at least {required} are needed")]
    TooFewSlices { found: usize, required: usize },
    /// A computation produced a non-finite value (e.g. a degenerate distribution).
    #[error("feature {feature} is not defined for this region ({reason})")]
    Undefined {
        feature: String,
        reason: &'static str,
    },
    /// Settings that cannot be applied (e.g. zero bin width).
    #[error("invalid settings: {0}")]
    InvalidSettings(String),
    /// An image filter cannot be applied to this lesion (e.g. the image is too small for
    /// the LoG kernel).
    #[error(transparent)]
    Filter(#[from] crate::image::filters::FilterError),
}

impl FeatureError {
    /// Stable machine-readable code for API results.
    pub fn code(&self) -> &'static str {
        match self {
            FeatureError::EmptyRoi => "empty_roi",
            FeatureError::TooFewVoxels { .. } => "too_few_voxels",
            FeatureError::TooFewSlices { .. } => "single_slice",
            FeatureError::Undefined { .. } => "feature_undefined",
            FeatureError::InvalidSettings(_) => "invalid_settings",
            FeatureError::Filter(_) => "filter_failed",
        }
    }
}

/// The signature every feature family implements.
pub type FamilyFn = fn(&Roi, &FamilySettings) -> Result<Vec<Feature>, FeatureError>;

/// The names a family outputs for given settings, in output order, without computing and
/// before the feature selection ([`FamilySettings::features`]) is applied: a family's
/// `compute` may leave out unselected features, and [`compute_all`] drops the rest.
pub type NamesFn = fn(&FamilySettings) -> Vec<String>;

/// A feature family: its name, computation and the names it produces.
pub struct Family {
    /// Short family name, e.g. `glcm`.
    pub name: &'static str,
    /// Computes the family on one lesion.
    pub compute: FamilyFn,
    /// Lists the names `compute` returns, in the same order.
    pub names: NamesFn,
}

/// The families computed by this build, in output order.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "morphology",
        compute: morphology::compute,
        names: morphology::names,
    },
    Family {
        name: "local_intensity",
        compute: local_intensity::compute,
        names: local_intensity::names,
    },
    Family {
        name: "intensity_stats",
        compute: intensity_stats::compute,
        names: intensity_stats::names,
    },
    Family {
        name: "intensity_histogram",
        compute: intensity_histogram::compute,
        names: intensity_histogram::names,
    },
    Family {
        name: "ivh",
        compute: ivh::compute,
        names: ivh::names,
    },
    Family {
        name: "glcm",
        compute: glcm::compute,
        names: glcm::names,
    },
    Family {
        name: "glrlm",
        compute: glrlm::compute,
        names: glrlm::names,
    },
    Family {
        name: "glszm",
        compute: glszm::compute,
        names: glszm::names,
    },
    Family {
        name: "gldzm",
        compute: gldzm::compute,
        names: gldzm::names,
    },
    Family {
        name: "ngtdm",
        compute: ngtdm::compute,
        names: ngtdm::names,
    },
    Family {
        name: "ngldm",
        compute: ngldm::compute,
        names: ngldm::names,
    },
    // Not IBSI: PyRadiomics' energy definitions with `voxelArrayShift`.
    Family {
        name: "pyradiomics_energy",
        compute: pyradiomics_energy::compute,
        names: pyradiomics_energy::names,
    },
];

/// Families outside IBSI 1 (computed only when asked for, never by the IBSI configurations).
pub const NON_IBSI_FAMILIES: &[&str] = &["pyradiomics_energy"];

/// The IBSI 1 families of this build, in output order.
pub fn ibsi_families() -> impl Iterator<Item = &'static Family> {
    FAMILIES
        .iter()
        .filter(|f| !NON_IBSI_FAMILIES.contains(&f.name))
}

/// Every feature name produced with `settings`, in output order: the original image's,
/// then each filtered image's prefixed with its image type ([`filtered_name`]).
pub fn feature_names(settings: &FamilySettings) -> Vec<String> {
    let mut names: Vec<String> = enabled(settings)
        .flat_map(|f| (f.names)(settings))
        .filter(|n| settings.wants(n))
        .collect();
    for image in &settings.image_filters.images {
        let image_type = image.filter.image_type();
        names.extend(
            feature_names(&settings.for_filtered(image))
                .into_iter()
                .map(|n| filtered_name(&image_type, &n)),
        );
    }
    names
}

/// The name of feature `tag` computed on the filtered image `image_type`, e.g.
/// `wavelet-LHH_stat_mean` (PyRadiomics' image type, `_`, the IBSI tag).
pub fn filtered_name(image_type: &str, tag: &str) -> String {
    format!("{image_type}_{tag}")
}

/// The families `settings` enables, in [`FAMILIES`] order.
pub fn enabled(settings: &FamilySettings) -> impl Iterator<Item = &'static Family> + '_ {
    FAMILIES.iter().filter(|f| settings.enables(f.name))
}

/// The enabled families that produce at least one selected feature
/// ([`FamilySettings::features`]), in [`FAMILIES`] order: the ones worth computing.
fn needed(settings: &FamilySettings) -> impl Iterator<Item = &'static Family> + '_ {
    enabled(settings).filter(|f| {
        settings.features.is_none() || (f.names)(settings).iter().any(|n| settings.wants(n))
    })
}

/// Compute every enabled family of [`FAMILIES`] on one lesion; the families run in
/// parallel on rayon's pool (they only read the ROI), the output is in family order and
/// holds the selected features only ([`FamilySettings::features`]).
///
/// # Errors
/// The first family error in family order; a lesion either has its full feature vector or
/// an error, so the result schema stays stable.
pub fn compute_all(roi: &Roi, settings: &FamilySettings) -> Result<Vec<Feature>, FeatureError> {
    use rayon::prelude::*;
    let families: Vec<&Family> = needed(settings).collect();
    let per_family: Vec<Result<Vec<Feature>, FeatureError>> = families
        .par_iter()
        .map(|family| (family.compute)(roi, settings))
        .collect();
    let mut out = Vec::new();
    for features in per_family {
        out.extend(features?.into_iter().filter(|f| settings.wants(&f.name)));
    }
    if let Some(bad) = out.iter().find(|f| !f.value.is_finite()) {
        return Err(FeatureError::Undefined {
            feature: bad.name.clone(),
            reason: "non-finite",
        });
    }
    Ok(out)
}
