//! One extraction run: a CT volume, its lesion masks and the extraction settings in,
//! per-lesion features (and, with a model, response probabilities) out.
//!
//! Shared by the worker pool ([`crate::jobs`]) and the offline `radscore extract` command,
//! so both give identical numbers. A lesion that cannot be computed fails alone: it carries
//! an error code and message and the other lesions keep their results.

use serde::{Deserialize, Serialize};

use crate::features::{self, ExtractionSettings, FamilySettings, FeatureError, Location, Roi};
use crate::image::{Grid, LesionMask, Segmentation, Volume};

/// The minimum number of slices a lesion must span for 3D features to be meaningful
/// (a one-slice mask has no extent along the slice axis to mesh or co-occur over).
pub const MIN_LESION_SLICES: usize = 2;

/// Radius of a 1 cm³ sphere, mm: the neighbourhood of the local intensity peak
/// (IBSI 1 section 3.2.1, `r = (3 / (4π))^(1/3) cm`). The ROI crop keeps this much image
/// context around the lesion.
pub const ROI_CONTEXT_MARGIN_MM: f64 = 6.2035;

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
        let lesion = segmentation
            .lesions
            .iter()
            .find(|l| l.label == request.label);
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
    // Crop with a context margin: local intensity features (IBSI 3.2) average the image,
    // not only the ROI, within a 1 cm³ sphere around ROI voxels.
    let margin: [usize; 3] = std::array::from_fn(|a| {
        (ROI_CONTEXT_MARGIN_MM / volume.grid.spacing_mm[a]).ceil() as usize
    });
    let lo = [
        oz.saturating_sub(margin[0]),
        oy.saturating_sub(margin[1]),
        ox.saturating_sub(margin[2]),
    ];
    let hi = [
        (oz + dz + margin[0]).min(shape.0),
        (oy + dy + margin[1]).min(shape.1),
        (ox + dx + margin[2]).min(shape.2),
    ];
    let hu = volume
        .hu
        .slice(ndarray::s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]])
        .to_owned();
    let mut morph_mask = ndarray::Array3::from_elem(hu.dim(), false);
    morph_mask
        .slice_mut(ndarray::s![
            oz - lo[0]..oz - lo[0] + dz,
            oy - lo[1]..oy - lo[1] + dy,
            ox - lo[2]..ox - lo[2] + dx
        ])
        .assign(&lesion.mask);

    let mut intensity_mask = morph_mask.clone();
    if let Some([lo, hi]) = settings.resegment_range_hu {
        ndarray::Zip::from(&mut intensity_mask)
            .and(&hu)
            .for_each(|m, &v| {
                let v = f64::from(v);
                *m = *m && v >= lo && v <= hi;
            });
    }

    let voxels = intensity_mask.iter().filter(|&&m| m).count();
    if morph_mask.iter().all(|&m| !m) || voxels == 0 {
        return Err(FeatureError::EmptyRoi);
    }
    if voxels < settings.min_voxels {
        return Err(FeatureError::TooFewVoxels {
            found: voxels,
            required: settings.min_voxels,
        });
    }
    let slices = morph_mask
        .outer_iter()
        .filter(|s| s.iter().any(|&m| m))
        .count();
    if slices < MIN_LESION_SLICES {
        return Err(FeatureError::TooFewSlices {
            found: slices,
            required: MIN_LESION_SLICES,
        });
    }

    Ok(Roi {
        hu,
        intensity_mask,
        morph_mask,
        spacing_mm: volume.grid.spacing_mm,
    })
}

/// Segmentation file formats radscore reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentationFormat {
    /// DICOM Segmentation Storage (binary or fractional).
    DicomSeg,
    /// NIfTI-1 label map, `.nii` or `.nii.gz`.
    Nifti,
}

impl SegmentationFormat {
    /// Detect the format from the file's leading bytes (not its name).
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        /// DICOM PS3.10 7.1: 128-byte preamble, then the magic `DICM`.
        const DICOM_MAGIC_OFFSET: usize = 128;
        /// RFC 1952: gzip member header magic.
        const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
        /// NIfTI-1: `sizeof_hdr` is 348, little or big endian.
        const NIFTI1_HEADER_SIZE: i32 = 348;

        if bytes.get(DICOM_MAGIC_OFFSET..DICOM_MAGIC_OFFSET + 4) == Some(b"DICM") {
            return Some(SegmentationFormat::DicomSeg);
        }
        if bytes.starts_with(&GZIP_MAGIC) {
            return Some(SegmentationFormat::Nifti);
        }
        let head: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
        let sizeof_hdr = [i32::from_le_bytes(head), i32::from_be_bytes(head)];
        sizeof_hdr
            .contains(&NIFTI1_HEADER_SIZE)
            .then_some(SegmentationFormat::Nifti)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SegmentationFormat::DicomSeg => "dicom_seg",
            SegmentationFormat::Nifti => "nifti",
        }
    }
}

/// Why a segmentation file could not be mapped onto its series.
#[derive(Debug, thiserror::Error)]
pub enum SegmentationError {
    #[error(
        "file '{file}' is neither a DICOM SEG (no 'DICM' magic at byte 128) nor a NIfTI-1 \
         label map (no gzip magic, sizeof_hdr is not 348)"
    )]
    UnknownFormat { file: String },
    #[error(transparent)]
    Dicom(#[from] crate::dicom::DicomError),
    #[error(transparent)]
    Image(#[from] crate::image::labelmap::LabelMapError),
}

/// Read a segmentation of either format and map its lesions onto `grid`.
pub fn read_segmentation(
    bytes: &[u8],
    file_name: Option<&str>,
    grid: &Grid,
) -> Result<(SegmentationFormat, Segmentation), SegmentationError> {
    let file = file_name.unwrap_or("segmentation").to_string();
    let format = SegmentationFormat::sniff(bytes)
        .ok_or_else(|| SegmentationError::UnknownFormat { file: file.clone() })?;
    let seg = match format {
        SegmentationFormat::DicomSeg => crate::dicom::seg::read_seg(bytes, &file, grid)?,
        SegmentationFormat::Nifti => {
            crate::image::labelmap::read_nifti_labelmap(bytes, &file, grid)?
        }
    };
    Ok((format, seg))
}
