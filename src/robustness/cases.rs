//! Reading the cases of a robustness run from files: one image + mask on the command line,
//! or a JSON manifest listing many.
//!
//! Manifest format (paths relative to the manifest's directory):
//!
//! ```json
//! {"cases": [{"id": "case-1", "series": "c1/series", "mask": "c1/lesions.nii.gz",
//!             "lesions": [{"label": 1, "location": "pleura"}]}]}
//! ```
//!
//! `series` is a DICOM directory, a zip of DICOM files, or a NIfTI or NRRD image; `mask` a
//! NIfTI or NRRD label map or a DICOM SEG on that series' grid.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use super::RobustnessCase;
use crate::pipeline::{self, LesionRequest};

/// A robustness manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseManifest {
    pub cases: Vec<CaseEntry>,
}

/// One case of a manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseEntry {
    /// Identifier used in the report; `case-<n>` (1-based position) when absent. Do not
    /// use patient identifiers.
    #[serde(default)]
    pub id: Option<String>,
    pub series: PathBuf,
    pub mask: PathBuf,
    pub lesions: Vec<LesionRequest>,
}

/// Read a manifest and load every case it lists.
///
/// # Errors
/// Unreadable or invalid manifests and cases, naming the file.
pub fn load_manifest(path: &Path) -> anyhow::Result<Vec<RobustnessCase>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: CaseManifest = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid robustness manifest", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    manifest
        .cases
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let id = entry.id.unwrap_or_else(|| format!("case-{}", i + 1));
            load_case(
                id,
                &base.join(&entry.series),
                &base.join(&entry.mask),
                entry.lesions,
            )
        })
        .collect()
}

/// Load one case: its volume and segmentation, mapped onto the volume's grid.
///
/// # Errors
/// Unreadable or invalid files, naming them.
pub fn load_case(
    case_id: String,
    series: &Path,
    mask: &Path,
    lesions: Vec<LesionRequest>,
) -> anyhow::Result<RobustnessCase> {
    let (volume, frame_of_reference) = crate::batch::load_volume(series)?;
    let bytes = std::fs::read(mask).with_context(|| format!("reading {}", mask.display()))?;
    let name = mask.file_name().map(|n| n.to_string_lossy().to_string());
    let (_, segmentation) = pipeline::read_segmentation(
        &bytes,
        name.as_deref(),
        &volume.grid,
        frame_of_reference.as_deref(),
    )
    .with_context(|| format!("reading the segmentation {}", mask.display()))?;
    Ok(RobustnessCase {
        case_id,
        volume,
        segmentation,
        lesions,
    })
}
