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

use std::f64::consts::PI;
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
use crate::image::grid::dot;

mod dicom_out;
mod nifti_out;

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

/// Tissue intensities of the cartoon anatomy, HU.
const AIR_HU: f64 = -1000.0;
const SOFT_TISSUE_HU: f64 = 40.0;
const LUNG_HU: f64 = -850.0;
/// Standard deviation of the white image noise, HU (a typical CT noise level).
const NOISE_SD_HU: f64 = 12.0;

/// Ranges the latent lesion parameters are drawn from, uniformly.
const RADIUS_MM: (f64, f64) = (4.0, 11.0);
const IRREGULARITY: (f64, f64) = (0.0, 0.3);
const MEAN_HU: (f64, f64) = (15.0, 85.0);
const HETEROGENEITY_HU: (f64, f64) = (5.0, 40.0);
/// Relative deviation of each ellipsoid semi-axis from the radius.
const ELONGATION: f64 = 0.2;
/// Wavelengths of the lesion texture's cosine components, mm.
const TEXTURE_WAVELENGTH_MM: (f64, f64) = (3.0, 9.0);
const TEXTURE_COMPONENTS: usize = 6;
/// Angular harmonics of the surface perturbation.
const SHAPE_HARMONICS: usize = 4;
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
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub frame_of_reference_uid: String,
    /// The series grid (also the label map's).
    pub grid: Grid,
    /// Directory with one DICOM file per slice.
    pub series_dir: PathBuf,
    /// The slice files, in slice order (inferior to superior).
    pub dicom_files: Vec<PathBuf>,
    /// Zip of the slice files.
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
    #[error("invalid demo options: {0}")]
    InvalidOptions(String),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode DICOM file {}: {reason}", path.display())]
    Dicom { path: PathBuf, reason: String },
    #[error("cannot write NIfTI file {}: {reason}", path.display())]
    Nifti { path: PathBuf, reason: String },
    #[error("cannot write zip {}: {reason}", path.display())]
    Zip { path: PathBuf, reason: String },
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

    let series_dir = out_dir.join("series");
    std::fs::create_dir_all(&series_dir).map_err(io_error(&series_dir))?;
    let uids = dicom_out::CaseUids::new(seed);
    let patient_id = format!("DEMO-{seed}");
    let dicom_files = dicom_out::write_series(&series_dir, &grid, &hu, &uids, &patient_id)?;
    let series_zip = out_dir.join("series.zip");
    dicom_out::write_zip(&series_zip, &dicom_files)?;
    let labelmap = out_dir.join("lesions.nii.gz");
    nifti_out::write_labelmap(&labelmap, &grid, &labels)?;

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
        if self.spacing_mm.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return bad(format!("spacing_mm {:?} must be positive", self.spacing_mm));
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

/// The cartoon anatomy, in LPS mm.
struct Anatomy {
    /// Body ellipse semi-axes (x, y); the body spans every slice.
    body_mm: [f64; 2],
    /// Lung ellipses: centre (x, y) and semi-axes (x, y).
    lungs: [([f64; 2], [f64; 2]); 2],
    /// Lungs occupy z ≥ this (the upper part of the volume).
    lung_floor_z_mm: f64,
    /// z range of the volume (first and last slice centre).
    z_range_mm: [f64; 2],
}

impl Anatomy {
    fn new(grid: &Grid) -> Self {
        let half = |a: usize| (grid.shape_vox[a] as f64 - 1.0) / 2.0 * grid.spacing_mm[a];
        let (hx, hy, hz) = (half(2), half(1), half(0));
        Anatomy {
            body_mm: [0.92 * hx, 0.75 * hy],
            lungs: [
                ([-0.42 * hx, -0.05 * hy], [0.3 * hx, 0.45 * hy]),
                ([0.42 * hx, -0.05 * hy], [0.3 * hx, 0.45 * hy]),
            ],
            lung_floor_z_mm: -0.2 * hz,
            z_range_mm: [-hz, hz],
        }
    }

    fn in_body(&self, p: [f64; 3]) -> bool {
        ellipse_value(p, [0.0, 0.0], self.body_mm) <= 1.0
    }

    fn in_lung(&self, p: [f64; 3]) -> bool {
        p[2] >= self.lung_floor_z_mm
            && self
                .lungs
                .iter()
                .any(|(c, r)| ellipse_value(p, *c, *r) <= 1.0)
    }

    /// Air, soft tissue and lung, each with white noise.
    fn render(&self, grid: &Grid, rng: &mut ChaCha8Rng) -> Array3<f32> {
        let mut hu = Array3::<f32>::zeros(grid.shape_vox);
        for ((k, j, i), v) in hu.indexed_iter_mut() {
            let p = grid.index_to_world([k as f64, j as f64, i as f64]);
            let base = if !self.in_body(p) {
                AIR_HU
            } else if self.in_lung(p) {
                LUNG_HU
            } else {
                SOFT_TISSUE_HU
            };
            *v = (base + NOISE_SD_HU * gaussian(rng)) as f32;
        }
        hu
    }

    /// A lesion centre for `location`, in LPS mm, `margin_mm` inside the volume in z.
    fn sample_centre(&self, location: Location, margin_mm: f64, rng: &mut ChaCha8Rng) -> [f64; 3] {
        let [z_lo, z_hi] = [
            self.z_range_mm[0] + margin_mm,
            self.z_range_mm[1] - margin_mm,
        ];
        let mut z_in =
            |lo: f64, hi: f64| rng.random_range(lo.max(z_lo)..=hi.min(z_hi).max(lo.max(z_lo)));
        match location {
            Location::Pleura => {
                // On the boundary of a lung: the lesion abuts the lung surface.
                let z = z_in(self.lung_floor_z_mm + margin_mm, self.z_range_mm[1]);
                let (c, r) = self.lungs[rng.random_range(0..2)];
                let t = rng.random_range(0.0..2.0 * PI);
                [c[0] + r[0] * t.cos(), c[1] + r[1] * t.sin(), z]
            }
            Location::LymphNode => {
                // Mediastinum: between the lungs.
                let z = z_in(self.lung_floor_z_mm, self.z_range_mm[1]);
                let x = rng.random_range(-0.08..=0.08) * self.body_mm[0];
                let y = rng.random_range(-0.3..=0.2) * self.body_mm[1];
                [x, y, z]
            }
            Location::Peritoneum => {
                // Below the lungs, along the inside of the anterior abdominal wall.
                let z = z_in(self.z_range_mm[0], self.lung_floor_z_mm);
                let t = rng.random_range(1.15 * PI..=1.85 * PI);
                let s = rng.random_range(0.6..=0.75);
                [
                    s * self.body_mm[0] * t.cos(),
                    s * self.body_mm[1] * t.sin(),
                    z,
                ]
            }
            Location::SoftTissue | Location::Other => {
                // Body wall, any level.
                let z = z_in(self.z_range_mm[0], self.z_range_mm[1]);
                let t = rng.random_range(0.0..2.0 * PI);
                let s = rng.random_range(0.8..=0.88);
                [
                    s * self.body_mm[0] * t.cos(),
                    s * self.body_mm[1] * t.sin(),
                    z,
                ]
            }
        }
    }
}

/// `(x−cx)²/rx² + (y−cy)²/ry²`: ≤ 1 inside the ellipse.
fn ellipse_value(p: [f64; 3], c: [f64; 2], r: [f64; 2]) -> f64 {
    ((p[0] - c[0]) / r[0]).powi(2) + ((p[1] - c[1]) / r[1]).powi(2)
}

/// Standard normal variate (Box–Muller); `rand_distr` is not a dependency.
fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

fn uniform(rng: &mut ChaCha8Rng, (lo, hi): (f64, f64)) -> f64 {
    rng.random_range(lo..=hi)
}

fn random_unit_vector(rng: &mut ChaCha8Rng) -> [f64; 3] {
    let z = rng.random_range(-1.0..=1.0_f64);
    let t = rng.random_range(0.0..2.0 * PI);
    let r = (1.0 - z * z).sqrt();
    [r * t.cos(), r * t.sin(), z]
}

fn draw_location(rng: &mut ChaCha8Rng) -> Location {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (location, weight) in LOCATION_MIX {
        acc += weight;
        if u < acc {
            return location;
        }
    }
    LOCATION_MIX[LOCATION_MIX.len() - 1].0
}

/// Shape and texture of one lesion, independent of where it is placed.
struct LesionModel {
    radius_mm: f64,
    irregularity: f64,
    semi_axis_scale: [f64; 3],
    /// Surface perturbation: (direction, frequency, phase, amplitude) per harmonic.
    harmonics: Vec<([f64; 3], f64, f64, f64)>,
    mean_hu: f64,
    heterogeneity_hu: f64,
    /// Texture: (wave vector in rad/mm, phase) per cosine component.
    texture: Vec<([f64; 3], f64)>,
}

impl LesionModel {
    fn draw(rng: &mut ChaCha8Rng) -> Self {
        let radius_mm = uniform(rng, RADIUS_MM);
        let irregularity = uniform(rng, IRREGULARITY);
        let semi_axis_scale = [0; 3].map(|_| 1.0 + rng.random_range(-ELONGATION..=ELONGATION));
        let harmonics = (0..SHAPE_HARMONICS)
            .map(|_| {
                let dir = random_unit_vector(rng);
                (
                    dir,
                    rng.random_range(2.0..=5.0),
                    rng.random_range(0.0..2.0 * PI),
                    rng.random_range(0.5..=1.0),
                )
            })
            .collect();
        let mean_hu = uniform(rng, MEAN_HU);
        let heterogeneity_hu = uniform(rng, HETEROGENEITY_HU);
        let texture = (0..TEXTURE_COMPONENTS)
            .map(|_| {
                let k = 2.0 * PI / uniform(rng, TEXTURE_WAVELENGTH_MM);
                (
                    random_unit_vector(rng).map(|c| c * k),
                    rng.random_range(0.0..2.0 * PI),
                )
            })
            .collect();
        LesionModel {
            radius_mm,
            irregularity,
            semi_axis_scale,
            harmonics,
            mean_hu,
            heterogeneity_hu,
            texture,
        }
    }

    /// Largest distance from the centre any lesion voxel can have, mm.
    fn extent_mm(&self) -> f64 {
        let scale = self.semi_axis_scale.iter().copied().fold(0.0, f64::max);
        self.radius_mm * scale * (1.0 + self.irregularity)
    }

    /// Is offset `d` (LPS mm from the centre) inside the perturbed ellipsoid?
    fn contains(&self, d: [f64; 3]) -> bool {
        let scaled = [0, 1, 2].map(|c| d[c] / self.semi_axis_scale[c]);
        let r = scaled.iter().map(|v| v * v).sum::<f64>().sqrt();
        if r == 0.0 {
            return true;
        }
        let u = scaled.map(|v| v / r);
        let total_amplitude: f64 = self.harmonics.iter().map(|h| h.3).sum();
        let wobble: f64 = self
            .harmonics
            .iter()
            .map(|(v, f, ph, a)| a * (f * dot(u, *v) + ph).sin())
            .sum();
        r <= self.radius_mm * (1.0 + self.irregularity * wobble / total_amplitude)
    }

    /// Intensity at offset `d`: mean + heterogeneity × unit-variance smooth field.
    fn intensity(&self, d: [f64; 3]) -> f64 {
        // Each cosine with amplitude √(2/K) has variance 1/K, so the sum has variance 1.
        let amplitude = (2.0 / self.texture.len() as f64).sqrt();
        let field: f64 = self
            .texture
            .iter()
            .map(|(k, ph)| amplitude * (dot(*k, d) + ph).cos())
            .sum();
        self.mean_hu + self.heterogeneity_hu * field
    }
}

/// Draw a lesion, place it where it overlaps no earlier lesion, and paint it.
fn add_lesion(
    label: u8,
    grid: &Grid,
    anatomy: &Anatomy,
    hu: &mut Array3<f32>,
    labels: &mut Array3<u8>,
    rng: &mut ChaCha8Rng,
) -> Result<DemoLesion, DemoError> {
    let location = draw_location(rng);
    let model = LesionModel::draw(rng);
    for _ in 0..PLACEMENT_ATTEMPTS {
        let centre_mm = anatomy.sample_centre(location, model.extent_mm(), rng);
        let voxels = rasterise(&model, centre_mm, grid);
        if voxels.is_empty() || voxels.iter().any(|&(idx, _)| labels[idx] != 0) {
            continue;
        }
        for &(idx, d) in &voxels {
            labels[idx] = label;
            hu[idx] = (model.intensity(d) + NOISE_SD_HU * gaussian(rng)) as f32;
        }
        return Ok(DemoLesion {
            label,
            location,
            centre_mm,
            radius_mm: model.radius_mm,
            shape_irregularity: model.irregularity,
            mean_hu: model.mean_hu,
            heterogeneity_hu: model.heterogeneity_hu,
            voxel_count: voxels.len(),
        });
    }
    Err(DemoError::Placement { label, location })
}

/// Voxels (index `[z, y, x]`, offset from the centre in mm) inside the lesion, clipped to
/// the grid, in index order.
fn rasterise(model: &LesionModel, centre_mm: [f64; 3], grid: &Grid) -> Vec<([usize; 3], [f64; 3])> {
    let c = grid.world_to_index(centre_mm);
    let reach = model.extent_mm();
    let range = |a: usize| {
        let half = (reach / grid.spacing_mm[a]).ceil() + 1.0;
        let lo = (c[a] - half).floor().max(0.0) as usize;
        let hi = ((c[a] + half).ceil().max(0.0) as usize).min(grid.shape_vox[a].saturating_sub(1));
        lo..=hi
    };
    let mut voxels = Vec::new();
    for k in range(0) {
        for j in range(1) {
            for i in range(2) {
                let p = grid.index_to_world([k as f64, j as f64, i as f64]);
                let d = [
                    p[0] - centre_mm[0],
                    p[1] - centre_mm[1],
                    p[2] - centre_mm[2],
                ];
                if model.contains(d) {
                    voxels.push(([k, j, i], d));
                }
            }
        }
    }
    voxels
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
