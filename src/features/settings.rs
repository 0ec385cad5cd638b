//! Extraction settings: a documented, versioned configuration with one profile per lesion
//! location, and a stable hash of the effective settings that model manifests pin.
//!
//! The bundled default lives in `config/extraction-settings.json` and is compiled in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::image::filters::ImageFilter;
pub use crate::image::resample::{ImageInterpolation, MaskInterpolation};

/// The settings schema version this build reads.
pub const SETTINGS_SCHEMA_VERSION: u32 = 1;

/// The bundled default settings file.
pub const DEFAULT_SETTINGS_JSON: &str = include_str!("../../config/extraction-settings.json");

/// Anatomical location of a target lesion, as in the pilot study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    Pleura,
    LymphNode,
    Peritoneum,
    SoftTissue,
    Other,
}

impl Location {
    /// All locations, in a fixed order.
    pub const ALL: [Location; 5] = [
        Location::Pleura,
        Location::LymphNode,
        Location::Peritoneum,
        Location::SoftTissue,
        Location::Other,
    ];

    /// The snake_case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Pleura => "pleura",
            Location::LymphNode => "lymph_node",
            Location::Peritoneum => "peritoneum",
            Location::SoftTissue => "soft_tissue",
            Location::Other => "other",
        }
    }

    /// Parse the wire name.
    pub fn parse(s: &str) -> Option<Location> {
        Location::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// Intensity discretisation (IBSI 1 section 2.7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum Discretisation {
    /// Fixed bin number `N_g` (IBSI 2.7.1): bins span the ROI's own intensity range.
    FixedBinNumber {
        /// Number of bins `N_g`.
        bins: u32,
    },
    /// Fixed bin size `w_b` (IBSI 2.7.2) from lower bound `X_gl,min`.
    FixedBinSize {
        /// Bin width `w_b` in HU.
        bin_width_hu: f64,
        /// Lower bound `X_gl,min` in HU. IBSI sets it to the lower re-segmentation bound;
        /// when absent, the re-segmentation lower bound is used, else the ROI minimum.
        #[serde(default)]
        lower_bound_hu: Option<f64>,
        /// PyRadiomics `binWidth` edges instead of IBSI's: the lower bound is the largest
        /// integer multiple of `w_b` not above the ROI minimum (after re-segmentation), so
        /// bin edges sit at multiples of `w_b`. Not IBSI 2.7.2; absent from the JSON (and
        /// the hash) when false. Excludes `lower_bound_hu`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pyradiomics_edges: bool,
    },
    /// No discretisation: intensities are used as grey levels directly (rounded to the
    /// nearest integer). For already-discrete data such as the IBSI digital phantom.
    None,
}

/// Aggregation of texture matrices (IBSI 1 section 3.1.3 and figure 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TextureAggregation {
    /// 2D: per slice and direction, features averaged over both.
    #[serde(rename = "2D_avg")]
    D2Avg,
    /// 2D: per slice, directions merged, averaged over slices.
    #[serde(rename = "2D_comb")]
    D2Comb,
    /// 2.5D: per direction, slices merged, averaged over directions.
    #[serde(rename = "2_5D_avg")]
    D25Avg,
    /// 2.5D: all slices and directions merged.
    #[serde(rename = "2_5D_comb")]
    D25Comb,
    /// 3D: per direction (13), features averaged.
    #[serde(rename = "3D_avg")]
    D3Avg,
    /// 3D: all 13 directions merged.
    #[serde(rename = "3D_comb")]
    D3Comb,
}

impl TextureAggregation {
    /// The IBSI tag suffix, e.g. `3D_avg`.
    pub fn suffix(self) -> &'static str {
        match self {
            TextureAggregation::D2Avg => "2D_avg",
            TextureAggregation::D2Comb => "2D_comb",
            TextureAggregation::D25Avg => "2_5D_avg",
            TextureAggregation::D25Comb => "2_5D_comb",
            TextureAggregation::D3Avg => "3D_avg",
            TextureAggregation::D3Comb => "3D_comb",
        }
    }
}

/// The settings one lesion is extracted with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilySettings {
    /// Feature families to compute, by [`super::Family::name`]; output follows the order of
    /// [`super::FAMILIES`], not of this list.
    pub families: Vec<String>,
    /// Only these features, by IBSI tag without image-type prefix (`morph_volume`,
    /// `cm_contrast_3D_avg`), are computed and output, on the original and every filtered
    /// image; `None` = every feature of the enabled families. Families skip the work that
    /// no selected feature needs (e.g. the oriented minimum bounding box). Absent from the
    /// JSON (and the hash) when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    /// Re-segmentation range `[min, max]` in HU (IBSI 2.5, range re-segmentation):
    /// voxels outside are removed from the intensity mask only.
    #[serde(default)]
    pub resegment_range_hu: Option<[f64; 2]>,
    /// Discretisation for the intensity histogram and texture families (IBSI 2.7).
    pub discretisation: Discretisation,
    /// Discretisation for the intensity-volume histogram (IBSI 3.5). `None` = the
    /// intensities themselves as discrete HU (IBSI's setting for CT).
    #[serde(default)]
    pub ivh_discretisation: Option<Discretisation>,
    /// Neighbour distance δ for GLCM, NGTDM and NGLDM, Chebyshev norm, in voxels
    /// (IBSI 3.6, 3.10, 3.11).
    pub texture_distance_vox: u32,
    /// NGLDM coarseness parameter α (IBSI 3.11); IBSI's reference configurations use 0.
    #[serde(default)]
    pub ngldm_alpha: u32,
    /// Aggregation variants to output for every texture family (IBSI 3.1.3).
    pub texture_aggregations: Vec<TextureAggregation>,
    /// Lesions with fewer voxels in the intensity mask are refused (too small for texture).
    pub min_voxels: usize,
    /// Resampling of image and mask before re-segmentation (IBSI 2.4). `None`: features are
    /// computed on the series grid. Absent from the JSON (and the hash) when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpolation: Option<Interpolation>,
    /// Intensity outlier filtering (IBSI 2.5): voxels outside `μ ± k·σ` of the ROI
    /// intensities are removed from the intensity mask; this is `k` (IBSI uses 3). μ and σ
    /// are taken over the ROI after range re-segmentation. Absent from the JSON when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resegment_outlier_sigma: Option<f64>,
    /// PyRadiomics `voxelArrayShift` `c`, added to intensities by the `pyradiomics_energy`
    /// family (energy, total energy, RMS) so negative values do not square to large ones.
    /// Not used by any IBSI family. Absent from the JSON when `None` (= 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voxel_array_shift: Option<f64>,
    /// Filtered images (PyRadiomics image types) whose intensity features are computed
    /// beside the original image's. Absent from the JSON (and the hash) when there are
    /// none, so settings without filters keep the hash they had before filters existed.
    #[serde(default, skip_serializing_if = "ImageFilters::is_empty")]
    pub image_filters: ImageFilters,
    /// Whole-image intensity normalisation before anything else (PyRadiomics `normalize`).
    /// Absent from the JSON (and the hash) when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalisation: Option<Normalisation>,
}

/// PyRadiomics' `normalize`: `f(x) = s · clip((x − μ) / σ, −n, n)` with the mean `μ` and the
/// sample standard deviation `σ` of the *whole image* (SimpleITK `Normalize`), the outlier
/// bound `n` (`removeOutliers`, no clipping when absent) and the scale `s`
/// (`normalizeScale`). Applied to the series before resampling and filters (IBSI 2
/// "intensity normalisation" is the same idea; this follows PyRadiomics' definition).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalisation {
    /// `s`, PyRadiomics `normalizeScale`.
    pub scale: f64,
    /// `n` in σ, PyRadiomics `removeOutliers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_outliers_sigma: Option<f64>,
}

/// The filtered images of a profile and the region their filters see.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageFilters {
    /// One entry per filtered image, in output order.
    pub images: Vec<FilteredImage>,
    /// The image a filter sees: `None` = the whole series (PyRadiomics without
    /// resampling or `preCrop`); `Some(n)` = the lesion's bounding box padded by `n`
    /// voxels (PyRadiomics' `padDistance` with resampling or `preCrop`). With
    /// interpolation, boxes are on the new grid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop_pad_vox: Option<usize>,
}

impl ImageFilters {
    /// Whether no filtered image is configured.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty() && self.crop_pad_vox.is_none()
    }
}

/// One filtered image: the filter and the features computed on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilteredImage {
    /// The filter (see [`crate::image::filters`]).
    pub filter: ImageFilter,
    /// Intensity families computed on the filtered image (not `morphology`: shape does
    /// not depend on the filter). Names are prefixed with the filter's image type, e.g.
    /// `log-sigma-3-0-mm-3D_stat_mean`.
    pub families: Vec<String>,
    /// Discretisation for this image instead of the profile's (PyRadiomics per-image-type
    /// `binWidth` / `binCount`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discretisation: Option<Discretisation>,
}

/// Image and mask interpolation onto an isotropic or in-plane grid (IBSI 1 section 2.4),
/// see [`crate::image::resample`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interpolation {
    /// Target voxel spacing `[z, y, x]`, mm. With `in_plane_only`, the z entry is ignored
    /// and the series' slice spacing is kept.
    pub spacing_mm: [f64; 3],
    /// Interpolate within slices only (IBSI 2D configurations A and B).
    #[serde(default)]
    pub in_plane_only: bool,
    /// Interpolator for intensities.
    pub image_method: ImageInterpolation,
    /// Interpolator for the lesion mask's membership fraction.
    pub mask_method: MaskInterpolation,
    /// Partial-volume threshold: an interpolated voxel belongs to the ROI when its
    /// membership fraction is at least this (IBSI uses 0.5).
    #[serde(default = "default_mask_threshold")]
    pub mask_threshold: f64,
    /// Round interpolated intensities to the nearest integer (IBSI: for CT, whose HU are
    /// integers).
    #[serde(default)]
    pub round_intensities: bool,
}

/// IBSI's partial-volume threshold for interpolated masks (IBSI 1 section 2.4; chapter 5,
/// configurations B–E: "ROI partial mask volume 0.5").
pub const DEFAULT_MASK_THRESHOLD: f64 = 0.5;

fn default_mask_threshold() -> f64 {
    DEFAULT_MASK_THRESHOLD
}

impl Interpolation {
    /// The spacing actually used on a series of spacing `series_spacing_mm` (`[z, y, x]`).
    pub fn target_spacing_mm(&self, series_spacing_mm: [f64; 3]) -> [f64; 3] {
        let mut s = self.spacing_mm;
        if self.in_plane_only {
            s[0] = series_spacing_mm[0];
        }
        s
    }

    fn validate(&self) -> Result<(), String> {
        let used = if self.in_plane_only {
            &self.spacing_mm[1..]
        } else {
            &self.spacing_mm[..]
        };
        if let Some(bad) = used.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(format!("interpolation spacing_mm must be > 0, got {bad}"));
        }
        if !(self.mask_threshold > 0.0 && self.mask_threshold <= 1.0) {
            return Err(format!(
                "interpolation mask_threshold must be in (0, 1], got {}",
                self.mask_threshold
            ));
        }
        Ok(())
    }
}

impl FamilySettings {
    /// Whether the family called `name` is enabled.
    pub fn enables(&self, name: &str) -> bool {
        self.families.iter().any(|f| f == name)
    }

    /// Whether the feature `tag` (IBSI tag, no image-type prefix) is selected: always when
    /// [`FamilySettings::features`] is `None`.
    pub fn wants(&self, tag: &str) -> bool {
        self.features
            .as_ref()
            .is_none_or(|selected| selected.iter().any(|t| t == tag))
    }

    /// Whether any of `tags` is selected.
    pub fn wants_any(&self, tags: &[&str]) -> bool {
        tags.iter().any(|t| self.wants(t))
    }
}

/// A versioned settings document: defaults plus one profile per location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractionSettings {
    /// Schema version; must equal [`SETTINGS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Human-readable name of this settings set.
    pub name: String,
    /// Profiles per location. A location without a profile uses `other`.
    pub profiles: BTreeMap<Location, FamilySettings>,
}

/// Why a settings document was refused.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("settings are not valid JSON for schema version {SETTINGS_SCHEMA_VERSION}: {0}")]
    Parse(#[from] serde_json::Error),
    #[error(
        "settings schema_version {found} is not supported (expected {SETTINGS_SCHEMA_VERSION})"
    )]
    Version { found: u32 },
    #[error("settings have no profile for location 'other', which is the fallback")]
    NoFallback,
    #[error("profile '{location}' produces other feature names than profile 'other'")]
    NamesDiffer { location: &'static str },
    #[error("profile '{location}': {reason}")]
    Invalid {
        location: &'static str,
        reason: String,
    },
}

impl ExtractionSettings {
    /// The bundled default settings.
    pub fn bundled() -> Self {
        Self::from_json(DEFAULT_SETTINGS_JSON).expect("bundled settings are valid (unit-tested)")
    }

    /// Parse and validate a settings document.
    pub fn from_json(text: &str) -> Result<Self, SettingsError> {
        let s: ExtractionSettings = serde_json::from_str(text)?;
        if s.schema_version != SETTINGS_SCHEMA_VERSION {
            return Err(SettingsError::Version {
                found: s.schema_version,
            });
        }
        let fallback = s
            .profiles
            .get(&Location::Other)
            .ok_or(SettingsError::NoFallback)?;
        let names = super::feature_names(fallback);
        for (loc, p) in &s.profiles {
            p.validate().map_err(|reason| SettingsError::Invalid {
                location: loc.as_str(),
                reason,
            })?;
            if super::feature_names(p) != names {
                return Err(SettingsError::NamesDiffer {
                    location: loc.as_str(),
                });
            }
        }
        Ok(s)
    }

    /// The profile for a location (falls back to `other`).
    pub fn for_location(&self, location: Location) -> &FamilySettings {
        self.profiles
            .get(&location)
            .or_else(|| self.profiles.get(&Location::Other))
            .expect("validated: profile 'other' exists")
    }

    /// Feature names produced with these settings, in output order (same for every profile).
    pub fn feature_names(&self) -> Vec<String> {
        super::feature_names(self.for_location(Location::Other))
    }

    /// Stable hash of the effective settings: `sha256:` + hex of the canonical JSON
    /// (struct fields in declaration order, profiles sorted by location).
    pub fn hash(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("settings serialise");
        format!("sha256:{}", hex::encode(Sha256::digest(&canonical)))
    }
}

impl FamilySettings {
    /// Check values that the type system cannot.
    pub fn validate(&self) -> Result<(), String> {
        match &self.discretisation {
            Discretisation::FixedBinNumber { bins } if *bins < 2 => {
                return Err(format!(
                    "fixed_bin_number needs at least 2 bins, got {bins}"
                ));
            }
            Discretisation::FixedBinSize { bin_width_hu, .. }
                if !(bin_width_hu.is_finite() && *bin_width_hu > 0.0) =>
            {
                return Err(format!("bin_width_hu must be > 0, got {bin_width_hu}"));
            }
            Discretisation::FixedBinSize {
                lower_bound_hu: Some(_),
                pyradiomics_edges: true,
                ..
            } => {
                return Err("lower_bound_hu and pyradiomics_edges exclude each other".into());
            }
            _ => {}
        }
        if let Some([lo, hi]) = self.resegment_range_hu
            && lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less)
        {
            return Err(format!("resegment_range_hu [{lo}, {hi}] is empty"));
        }
        if let Some(k) = self.resegment_outlier_sigma
            && !(k.is_finite() && k > 0.0)
        {
            return Err(format!("resegment_outlier_sigma must be > 0, got {k}"));
        }
        if let Some(interpolation) = &self.interpolation {
            interpolation.validate()?;
        }
        if let Some(c) = self.voxel_array_shift
            && !c.is_finite()
        {
            return Err(format!("voxel_array_shift must be finite, got {c}"));
        }
        if self.texture_distance_vox == 0 {
            return Err("texture_distance_vox must be at least 1".into());
        }
        self.validate_filters()?;
        if let Some(n) = &self.normalisation
            && (!(n.scale.is_finite() && n.scale != 0.0)
                || n.remove_outliers_sigma
                    .is_some_and(|k| !(k.is_finite() && k > 0.0)))
        {
            return Err(format!(
                "normalisation needs a finite non-zero scale and outliers > 0, got {n:?}"
            ));
        }
        if let Some(unknown) = self
            .families
            .iter()
            .find(|f| !super::FAMILIES.iter().any(|k| k.name == f.as_str()))
        {
            let known: Vec<&str> = super::FAMILIES.iter().map(|k| k.name).collect();
            return Err(format!(
                "unknown feature family '{unknown}'; known: {}",
                known.join(", ")
            ));
        }
        self.validate_selection()
    }

    /// Every selected feature must be produced by an enabled family (on the original image
    /// or a filtered one), and the selection must not be empty.
    fn validate_selection(&self) -> Result<(), String> {
        let Some(selected) = &self.features else {
            return Ok(());
        };
        if selected.is_empty() {
            return Err("features is an empty selection; omit it to compute every feature".into());
        }
        let mut all = self.clone();
        all.features = None;
        let mut producible: std::collections::BTreeSet<String> =
            super::enabled(&all).flat_map(|f| (f.names)(&all)).collect();
        for image in &all.image_filters.images {
            let on_image = all.for_filtered(image);
            producible.extend(super::enabled(&on_image).flat_map(|f| (f.names)(&on_image)));
        }
        match selected.iter().find(|t| !producible.contains(t.as_str())) {
            Some(unknown) => Err(format!(
                "features: '{unknown}' is not produced by the enabled families ({}) with these \
                 settings",
                self.families.join(", ")
            )),
            None => Ok(()),
        }
    }
}

impl FamilySettings {
    /// The settings the features of `image` are computed with: this profile with the
    /// image's families and discretisation, and no filtered images of its own.
    pub fn for_filtered(&self, image: &FilteredImage) -> FamilySettings {
        let mut s = self.clone();
        s.families = image.families.clone();
        if let Some(d) = &image.discretisation {
            s.discretisation = d.clone();
        }
        s.image_filters = ImageFilters::default();
        s
    }

    fn validate_filters(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for image in &self.image_filters.images {
            image.filter.validate().map_err(|e| e.to_string())?;
            let name = image.filter.image_type();
            if !seen.insert(name.clone()) {
                return Err(format!("filtered image {name} is listed twice"));
            }
            if image.families.iter().any(|f| f == "morphology") {
                return Err(format!(
                    "filtered image {name}: morphology is computed on the original image only"
                ));
            }
            // The selection is checked once, for the profile: it may name features that
            // only the original image produces.
            let mut on_image = self.for_filtered(image);
            on_image.features = None;
            on_image
                .validate()
                .map_err(|e| format!("filtered image {name}: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_settings_parse_and_hash_is_stable() {
        let s = ExtractionSettings::bundled();
        assert_eq!(s.hash(), ExtractionSettings::bundled().hash());
        assert!(s.hash().starts_with("sha256:"));
        for loc in Location::ALL {
            s.for_location(loc);
        }
    }

    /// The bundled settings' hash, recorded with `radscore settings --print hash` before the
    /// interpolation and outlier-filtering settings were added: optional settings that are
    /// absent must not change it (model manifests pin it).
    const BUNDLED_HASH_BEFORE_INTERPOLATION: &str =
        "sha256:c3167b557a1663c4dcb983a8dcb077d1e0787ad6e88bea13e78396a98a2f2eb5";

    #[test]
    fn absent_interpolation_and_outlier_settings_keep_the_bundled_hash() {
        assert_eq!(
            ExtractionSettings::bundled().hash(),
            BUNDLED_HASH_BEFORE_INTERPOLATION
        );
    }

    #[test]
    fn interpolation_settings_round_trip_and_change_the_hash() {
        let s = ExtractionSettings::bundled();
        let mut t = s.clone();
        let p = t.profiles.get_mut(&Location::Other).unwrap();
        p.interpolation = Some(Interpolation {
            spacing_mm: [2.0, 2.0, 2.0],
            in_plane_only: false,
            image_method: ImageInterpolation::CubicSpline,
            mask_method: MaskInterpolation::Linear,
            mask_threshold: DEFAULT_MASK_THRESHOLD,
            round_intensities: true,
        });
        p.resegment_outlier_sigma = Some(3.0);
        assert_ne!(s.hash(), t.hash());
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.contains(r#""image_method":"cubic_spline""#), "{json}");
        assert_eq!(ExtractionSettings::from_json(&json).unwrap(), t);
    }

    #[test]
    fn bad_interpolation_and_outlier_settings_are_refused() {
        let mut p = ExtractionSettings::bundled()
            .for_location(Location::Other)
            .clone();
        p.resegment_outlier_sigma = Some(0.0);
        assert!(p.validate().is_err());
        p.resegment_outlier_sigma = None;
        p.interpolation = Some(Interpolation {
            spacing_mm: [0.0, 1.0, 1.0],
            in_plane_only: true,
            image_method: ImageInterpolation::Linear,
            mask_method: MaskInterpolation::Linear,
            mask_threshold: DEFAULT_MASK_THRESHOLD,
            round_intensities: false,
        });
        // The z spacing is not used in-plane, so 0 there is accepted...
        assert_eq!(p.validate(), Ok(()));
        // ...but not in 3D, and neither is a threshold above 1.
        p.interpolation.as_mut().unwrap().in_plane_only = false;
        assert!(p.validate().is_err());
        p.interpolation.as_mut().unwrap().spacing_mm = [1.0; 3];
        p.interpolation.as_mut().unwrap().mask_threshold = 1.5;
        assert!(p.validate().is_err());
    }

    #[test]
    fn changing_a_setting_changes_the_hash() {
        let s = ExtractionSettings::bundled();
        let mut t = s.clone();
        t.profiles
            .get_mut(&Location::Other)
            .unwrap()
            .texture_distance_vox = 2;
        assert_ne!(s.hash(), t.hash());
    }
}
