//! Deterministic synthetic CT cases for demos, tests and the demo model's training data.
//!
//! [`generate`] draws one synthetic patient from a seed and writes, under `out_dir`:
//!
//! * `series/CT_0000.dcm …` — a CT series, one file per slice: CT Image Storage,
//!   uncompressed Explicit VR Little Endian, `int16` stored values with Rescale Intercept
//!   −1024 HU and slope 1;
//! * `series.zip` — the same files, flat, for upload;
//! * `lesions.nii.gz` — a NIfTI-1 label map (`uint8`, labels `1..=k`) on exactly the
//!   series grid;
//! * `lesions.json` — per label: its location and the latent parameters the lesion was
//!   drawn from (radius, shape irregularity, mean HU, texture heterogeneity).
//!
//! The anatomy is a cartoon: an elliptic soft-tissue body (~40 HU) in air, two lung-like
//! low-density regions in the upper part of the volume, and lesions that are perturbed
//! ellipsoids with a smooth random texture. Locations follow the pilot study's mix (55 %
//! pleura, the rest lymph node, peritoneum and soft tissue) and are placed accordingly.
//! Same seed and options ⇒ byte-identical files (ChaCha8, no clock, no thread order).
//!
//! Axes and coordinates follow [`crate::image`]: arrays `[z, y, x]`, world LPS mm.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ndarray::Array3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::features::Location;
use crate::image::Grid;

mod dicom_out;
mod nifti_out;
mod phantom;

use phantom::{Anatomy, add_lesion};

/// Stored value = HU − this (DICOM PS3.3 C.11.1.1.2: HU = stored × slope + intercept).
pub const RESCALE_INTERCEPT_HU: f64 = -1024.0;

/// Patient Name (0010,0010) of every demo case.
pub const PATIENT_NAME: &str = "RADSCORE^DEMO";

/// The pilot study's mix of lesion locations; the weights sum to 1.
pub const LOCATION_MIX: [(Location, f64); 4] = [
    (Location::Pleura, 0.55),
    (Location::LymphNode, 0.15),
    (Location::Peritoneum, 0.15),
    (Location::SoftTissue, 0.15),
];

/// Largest voxel spacing accepted, mm (clinical CT is below 10 mm).
const MAX_SPACING_MM: f64 = 20.0;
/// Attempts to place a lesion without overlapping the earlier ones.
const PLACEMENT_ATTEMPTS: usize = 200;

/// Size and lesion count of a generated case.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoOptions {
    /// Voxels along `[z, y, x]`.
    pub shape_vox: [usize; 3],
    /// Voxel spacing along `[z, y, x]`, mm (z is also the slice thickness).
    pub spacing_mm: [f64; 3],
    /// Fewest lesions per case.
    pub min_lesions: usize,
    /// Most lesions per case (at most 255: labels are `uint8`).
    pub max_lesions: usize,
}

impl Default for DemoOptions {
    /// 96 × 96 pixels of 0.8 mm, 32 slices of 2.5 mm, 2 to 4 lesions.
    fn default() -> Self {
        DemoOptions {
            shape_vox: [32, 96, 96],
            spacing_mm: [2.5, 0.8, 0.8],
            min_lesions: 2,
            max_lesions: 4,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct DemoCase {
    /// Seed the case was drawn from.
    pub seed: u64,
    /// Patient ID (0010,0020): `DEMO-<seed>`.
    pub patient_id: String,
    /// Study Instance UID (0020,000D), derived from the seed.
    pub study_instance_uid: String,
    /// Series Instance UID (0020,000E), derived from the seed.
    pub series_instance_uid: String,
    /// Frame of Reference UID (0020,0052), shared by the series and the label map's grid.
    pub frame_of_reference_uid: String,
    /// The series grid (also the label map's).
    pub grid: Grid,
    /// Directory with one DICOM file per slice.
    pub series_dir: PathBuf,
    /// The slice files, in slice order (inferior to superior).
    pub dicom_files: Vec<PathBuf>,
    /// Zip of the slice files ([`generate_bench_ct`] names it but does not write it).
    pub series_zip: PathBuf,
    /// NIfTI label map.
    pub labelmap: PathBuf,
    /// The JSON description of the lesions.
    pub lesions_json: PathBuf,
    /// The lesions, by ascending label.
    pub lesions: Vec<DemoLesion>,
}

/// One generated lesion and the latent parameters it was drawn from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoLesion {
    /// Label value in `lesions.nii.gz`.
    pub label: u8,
    /// Anatomical location, drawn from [`LOCATION_MIX`]; decides where the lesion sits.
    pub location: Location,
    /// Centre, LPS mm.
    pub centre_mm: [f64; 3],
    /// Mean radius before shape perturbation, mm.
    pub radius_mm: f64,
    /// Amplitude of the surface perturbation, as a fraction of the radius (0 = ellipsoid).
    pub shape_irregularity: f64,
    /// Mean intensity, HU.
    pub mean_hu: f64,
    /// Standard deviation of the smooth texture field, HU (white noise comes on top).
    pub heterogeneity_hu: f64,
    /// Voxels in the label map.
    pub voxel_count: usize,
}

/// Why a case could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The options describe no usable grid or lesion count.
    #[error("invalid demo options: {0}")]
    InvalidOptions(String),
    /// A file or directory could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// dicom-object refused to encode a slice.
    #[error("cannot encode DICOM file {}: {reason}", path.display())]
    Dicom { path: PathBuf, reason: String },
    /// The nifti writer failed.
    #[error("cannot write NIfTI file {}: {reason}", path.display())]
    Nifti { path: PathBuf, reason: String },
    /// The zip writer failed.
    #[error("cannot write zip {}: {reason}", path.display())]
    Zip { path: PathBuf, reason: String },
    /// The lesions do not fit into the grid without overlapping.
    #[error(
        "could not place lesion {label} ({location:?}) without overlap in {PLACEMENT_ATTEMPTS} \
         attempts; use a larger grid or fewer lesions"
    )]
    Placement { label: u8, location: Location },
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Generate one synthetic case from `seed` into `out_dir` (created if needed; files of an
/// earlier case with the same names are overwritten).
///
/// # Errors
/// [`DemoError::InvalidOptions`] for an empty grid, non-positive spacing or a bad lesion
/// count; [`DemoError::Placement`] when the lesions do not fit; write errors otherwise.
pub fn generate(out_dir: &Path, seed: u64, opts: &DemoOptions) -> Result<DemoCase, DemoError> {
    opts.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let grid = demo_grid(opts);
    let anatomy = Anatomy::new(&grid);

    let mut hu = anatomy.render(&grid, &mut rng);
    let n_lesions = rng.random_range(opts.min_lesions..=opts.max_lesions);
    let mut labels = Array3::<u8>::zeros(grid.shape_vox);
    let mut lesions = Vec::with_capacity(n_lesions);
    for label in (1..=n_lesions).filter_map(|l| u8::try_from(l).ok()) {
        lesions.push(add_lesion(
            label,
            &grid,
            &anatomy,
            &mut hu,
            &mut labels,
            &mut rng,
        )?);
    }

    write_case(out_dir, seed, grid, &hu, &labels, lesions, true)
}

/// Series shape `[z, y, x]` of the extraction benchmark's synthetic CT (issue #3): 300
/// slices of 512 × 512.
pub const BENCH_CT_SHAPE_VOX: [usize; 3] = [300, 512, 512];

/// Voxel spacing `[z, y, x]` of the benchmark CT, mm: a typical thorax/abdomen CT.
pub const BENCH_CT_SPACING_MM: [f64; 3] = [1.25, 0.8, 0.8];

/// The benchmark CT's lesions: location and volume in cm³ (10 to 200 cm³).
pub const BENCH_CT_LESIONS: [(Location, f64); 5] = [
    (Location::LymphNode, 10.0),
    (Location::Peritoneum, 25.0),
    (Location::SoftTissue, 50.0),
    (Location::Other, 100.0),
    (Location::Pleura, 200.0),
];

/// mm³ per cm³.
const MM3_PER_CM3: f64 = 1000.0;

/// Write the extraction benchmark's synthetic CT into `out_dir`: a
/// [`BENCH_CT_SHAPE_VOX`] series at [`BENCH_CT_SPACING_MM`] (the demo anatomy, `int16`
/// stored values) with the five lesions of [`BENCH_CT_LESIONS`], each with drawn shape
/// irregularity and texture and a voxel volume within 2 % of its target. Same layout as
/// [`generate`] but without `series.zip` (the benchmark reads the slice files, as a worker
/// reads them from the blob store). Deterministic for a seed. Generated at benchmark time,
/// never stored in the repository (≈ 160 MB of DICOM).
///
/// # Errors
/// As [`generate`].
pub fn generate_bench_ct(out_dir: &Path, seed: u64) -> Result<DemoCase, DemoError> {
    let opts = DemoOptions {
        shape_vox: BENCH_CT_SHAPE_VOX,
        spacing_mm: BENCH_CT_SPACING_MM,
        min_lesions: BENCH_CT_LESIONS.len(),
        max_lesions: BENCH_CT_LESIONS.len(),
    };
    opts.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let grid = demo_grid(&opts);
    let anatomy = Anatomy::new(&grid);
    let mut hu = anatomy.render(&grid, &mut rng);
    let mut labels = Array3::<u8>::zeros(grid.shape_vox);
    let mut lesions = Vec::with_capacity(BENCH_CT_LESIONS.len());
    // Largest first: it is the hardest to place without overlap.
    for (index, &(location, volume_cm3)) in BENCH_CT_LESIONS.iter().enumerate().rev() {
        let label = u8::try_from(index + 1).unwrap_or(u8::MAX);
        lesions.push(phantom::add_lesion_of_volume(
            label,
            location,
            volume_cm3 * MM3_PER_CM3,
            (&grid, &anatomy),
            &mut hu,
            &mut labels,
            &mut rng,
        )?);
    }
    lesions.sort_by_key(|l| l.label);
    write_case(out_dir, seed, grid, &hu, &labels, lesions, false)
}

/// Write a drawn case: the DICOM series (and its zip when `zip`), the label map and
/// `lesions.json`.
fn write_case(
    out_dir: &Path,
    seed: u64,
    grid: Grid,
    hu: &Array3<f32>,
    labels: &Array3<u8>,
    lesions: Vec<DemoLesion>,
    zip: bool,
) -> Result<DemoCase, DemoError> {
    let series_dir = out_dir.join("series");
    std::fs::create_dir_all(&series_dir).map_err(io_error(&series_dir))?;
    let uids = dicom_out::CaseUids::new(seed);
    let patient_id = format!("DEMO-{seed}");
    let dicom_files = dicom_out::write_series(&series_dir, &grid, hu, &uids, &patient_id)?;
    let series_zip = out_dir.join("series.zip");
    if zip {
        dicom_out::write_zip(&series_zip, &dicom_files)?;
    }
    let labelmap = out_dir.join("lesions.nii.gz");
    nifti_out::write_labelmap(&labelmap, &grid, labels)?;

    let case = DemoCase {
        seed,
        patient_id,
        study_instance_uid: uids.study,
        series_instance_uid: uids.series,
        frame_of_reference_uid: uids.frame_of_reference,
        grid,
        series_dir,
        dicom_files,
        series_zip,
        labelmap,
        lesions_json: out_dir.join("lesions.json"),
        lesions,
    };
    write_json(&case)?;
    Ok(case)
}

impl DemoOptions {
    fn validate(&self) -> Result<(), DemoError> {
        let bad = |m: String| Err(DemoError::InvalidOptions(m));
        if self.shape_vox.iter().any(|&n| n < 8) || self.shape_vox.iter().any(|&n| n > 1024) {
            return bad(format!(
                "shape_vox {:?} must be 8..=1024 per axis",
                self.shape_vox
            ));
        }
        // The upper bound keeps every coordinate within a 16-character DS (dicom_out::ds).
        if self
            .spacing_mm
            .iter()
            .any(|s| !(s.is_finite() && *s > 0.0 && *s <= MAX_SPACING_MM))
        {
            return bad(format!(
                "spacing_mm {:?} must be in (0, {MAX_SPACING_MM}] mm",
                self.spacing_mm
            ));
        }
        if self.min_lesions == 0 || self.min_lesions > self.max_lesions || self.max_lesions > 255 {
            return bad(format!(
                "lesion count {}..={} must satisfy 1 <= min <= max <= 255",
                self.min_lesions, self.max_lesions
            ));
        }
        Ok(())
    }
}

/// Axis-aligned grid centred on the LPS origin: rows run posterior (+y), columns left
/// (+x), slices superior (+z).
fn demo_grid(opts: &DemoOptions) -> Grid {
    let origin = |a: usize| -(opts.shape_vox[a] as f64 - 1.0) / 2.0 * opts.spacing_mm[a];
    Grid {
        shape_vox: opts.shape_vox,
        spacing_mm: opts.spacing_mm,
        origin_mm: [origin(2), origin(1), origin(0)],
        direction: [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]],
    }
}

/// `lesions.json`: the case without local paths, for the training pipeline.
fn write_json(case: &DemoCase) -> Result<(), DemoError> {
    #[derive(Serialize)]
    struct Doc<'a> {
        generator: &'static str,
        seed: u64,
        patient_id: &'a str,
        study_instance_uid: &'a str,
        series_instance_uid: &'a str,
        grid: &'a Grid,
        lesions: &'a [DemoLesion],
    }
    let doc = Doc {
        generator: concat!("radscore demo-data ", env!("CARGO_PKG_VERSION")),
        seed: case.seed,
        patient_id: &case.patient_id,
        study_instance_uid: &case.study_instance_uid,
        series_instance_uid: &case.series_instance_uid,
        grid: &case.grid,
        lesions: &case.lesions,
    };
    let path = &case.lesions_json;
    let file = File::create(path).map_err(io_error(path))?;
    let mut w = BufWriter::new(file);
    serde_json::to_writer_pretty(&mut w, &doc).map_err(|e| DemoError::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    w.write_all(b"\n")
        .and_then(|()| w.flush())
        .map_err(io_error(path))
}

/// A UID under the UUID arc 2.25 (DICOM PS3.5 B.2), derived from the seed: the UUID is
/// the first 16 bytes of SHA-256(namespace, seed, kind, index), as a version-8 UUID.
pub(crate) fn derived_uid(seed: u64, kind: &str, index: u32) -> String {
    /// Fixed namespace of demo UIDs; changing it changes every demo UID.
    const UID_NAMESPACE: &str = "radscore/demo-data/v1";
    let digest = Sha256::digest(format!("{UID_NAMESPACE}/{seed}/{kind}/{index}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let uuid = uuid::Builder::from_custom_bytes(bytes).into_uuid();
    format!("2.25.{}", uuid.as_u128())
}

#[cfg(test)]
mod tests;
