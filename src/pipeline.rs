//! One extraction run: a CT volume, its lesion masks and the extraction settings in,
//! per-lesion features (and, with a model, response probabilities) out.
//!
//! Shared by the worker pool ([`crate::jobs`]) and the offline `radscore extract` command,
//! so both give identical numbers. A lesion that cannot be computed fails alone: it carries
//! an error code and message and the other lesions keep their results.

use serde::{Deserialize, Serialize};

use crate::features::{self, ExtractionSettings, FamilySettings, FeatureError, Location, Roi};
use crate::image::{LesionMask, Segmentation, Volume};

/// The minimum number of slices a lesion must span for 3D features to be meaningful
/// (a one-slice mask has no extent along the slice axis to mesh or co-occur over).
pub const MIN_LESION_SLICES: usize = 2;

/// A lesion to compute: label in the segmentation and its anatomical location.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LesionRequest {
    /// Label value (label map) or segment number (DICOM SEG).
    pub label: u32,
    /// Where the lesion is; selects the settings profile.
    pub location: Location,
}

/// Why one lesion has no features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LesionError {
    /// Stable machine-readable code, e.g. `label_absent`, `too_few_voxels`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// The features of one lesion, or why there are none.
#[derive(Debug, Clone, PartialEq)]
pub struct LesionFeatures {
    /// The request this answers.
    pub request: LesionRequest,
    /// Segment / ROI name, when the segmentation format has one.
    pub name: Option<String>,
    /// Voxels in the lesion mask (0 when the label is absent).
    pub voxel_count: usize,
    /// Feature values in [`ExtractionSettings::feature_names`] order, or the error.
    pub features: Result<Vec<features::Feature>, LesionError>,
}

/// Compute every requested lesion. `progress` receives the fraction done after each lesion.
pub fn extract_lesions(
    volume: &Volume,
    segmentation: &Segmentation,
    requests: &[LesionRequest],
    settings: &ExtractionSettings,
    progress: &mut dyn FnMut(f64),
) -> Vec<LesionFeatures> {
    let mut out = Vec::with_capacity(requests.len());
    for (done, request) in requests.iter().enumerate() {
        let lesion = segmentation.lesions.iter().find(|l| l.label == request.label);
        let profile = settings.for_location(request.location);
        let features = match lesion {
            None => Err(LesionError {
                code: "label_absent".into(),
                message: format!("label {} is not present in the segmentation", request.label),
            }),
            Some(mask) => compute_lesion(volume, mask, profile).map_err(|e| LesionError {
                code: e.code().into(),
                message: e.to_string(),
            }),
        };
        out.push(LesionFeatures {
            request: *request,
            name: lesion.and_then(|l| l.name.clone()),
            voxel_count: lesion.map_or(0, LesionMask::voxel_count),
            features,
        });
        progress((done + 1) as f64 / requests.len().max(1) as f64);
    }
    out
}

/// Build the lesion's ROI and compute every feature family on it.
pub fn compute_lesion(
    volume: &Volume,
    lesion: &LesionMask,
    settings: &FamilySettings,
) -> Result<Vec<features::Feature>, FeatureError> {
    let roi = build_roi(volume, lesion, settings)?;
    features::compute_all(&roi, settings)
}

/// Crop the volume to the lesion and derive the morphological and intensity masks
/// (IBSI 1 section 2.1). Range re-segmentation (IBSI 2.5) only shrinks the intensity mask.
pub fn build_roi(
    volume: &Volume,
    lesion: &LesionMask,
    settings: &FamilySettings,
) -> Result<Roi, FeatureError> {
    let (dz, dy, dx) = lesion.mask.dim();
    let [oz, oy, ox] = lesion.offset_zyx;
    let shape = volume.hu.dim();
    if oz + dz > shape.0 || oy + dy > shape.1 || ox + dx > shape.2 {
        return Err(FeatureError::InvalidSettings(
            "lesion mask extends beyond the series grid".into(),
        ));
    }
    let hu = volume.hu.slice(ndarray::s![oz..oz + dz, oy..oy + dy, ox..ox + dx]).to_owned();
    let morph_mask = lesion.mask.clone();

    let mut intensity_mask = morph_mask.clone();
    if let Some([lo, hi]) = settings.resegment_range_hu {
        ndarray::Zip::from(&mut intensity_mask).and(&hu).for_each(|m, &v| {
            let v = f64::from(v);
            *m = *m && v >= lo && v <= hi;
        });
    }

    let voxels = intensity_mask.iter().filter(|&&m| m).count();
    if morph_mask.iter().all(|&m| !m) || voxels == 0 {
        return Err(FeatureError::EmptyRoi);
    }
    if voxels < settings.min_voxels {
        return Err(FeatureError::TooFewVoxels { found: voxels, required: settings.min_voxels });
    }
    let slices = morph_mask.outer_iter().filter(|s| s.iter().any(|&m| m)).count();
    if slices < MIN_LESION_SLICES {
        return Err(FeatureError::TooFewSlices { found: slices, required: MIN_LESION_SLICES });
    }

    Ok(Roi {
        hu,
        intensity_mask,
        morph_mask,
        spacing_mm: volume.grid.spacing_mm,
    })
}

