//! The synthetic anatomy and lesions: what the voxels of a demo case contain.
//!
//! Positions are LPS mm on the demo grid (centred on the origin, axis-aligned); see
//! [`super`] for the overall picture.

use std::f64::consts::PI;

use ndarray::Array3;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{DemoError, DemoLesion, LOCATION_MIX, PLACEMENT_ATTEMPTS};
use crate::features::Location;
use crate::image::Grid;
use crate::image::grid::dot;

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

/// The cartoon anatomy, in LPS mm.
pub(super) struct Anatomy {
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
    pub(super) fn new(grid: &Grid) -> Self {
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
    pub(super) fn render(&self, grid: &Grid, rng: &mut ChaCha8Rng) -> Array3<f32> {
        // LIMITATION: cartoon anatomy: no partial-volume blur, white (not CT-like) noise.
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

pub(super) fn draw_location(rng: &mut ChaCha8Rng) -> Location {
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
pub(super) fn add_lesion(
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

/// Like [`add_lesion`], but at a given `location` and with the radius scaled so that the
/// painted lesion's voxel volume is within [`VOLUME_TOLERANCE`] of `volume_mm3` (shape,
/// texture and irregularity are still drawn from `rng`). For the extraction benchmark's
/// fixed lesion sizes.
pub(super) fn add_lesion_of_volume(
    label: u8,
    location: Location,
    volume_mm3: f64,
    (grid, anatomy): (&Grid, &Anatomy),
    hu: &mut Array3<f32>,
    labels: &mut Array3<u8>,
    rng: &mut ChaCha8Rng,
) -> Result<DemoLesion, DemoError> {
    let voxel_mm3: f64 = grid.spacing_mm.iter().product();
    let mut model = LesionModel::draw(rng);
    let axes: f64 = model.semi_axis_scale.iter().product();
    model.radius_mm = (3.0 * volume_mm3 / (4.0 * PI * axes)).cbrt();
    for _ in 0..PLACEMENT_ATTEMPTS {
        let centre_mm = anatomy.sample_centre(location, model.extent_mm(), rng);
        let mut voxels = rasterise(&model, centre_mm, grid);
        // The surface wobble and the voxel grid change the volume: rescale the radius by
        // the volume ratio until it is close enough (converges in 2–3 steps).
        for _ in 0..VOLUME_FIT_STEPS {
            let found = voxels.len() as f64 * voxel_mm3;
            if found > 0.0 && (found / volume_mm3 - 1.0).abs() <= VOLUME_TOLERANCE {
                break;
            }
            model.radius_mm *= (volume_mm3 / found.max(voxel_mm3)).cbrt();
            voxels = rasterise(&model, centre_mm, grid);
        }
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

/// Relative tolerance of [`add_lesion_of_volume`] on the lesion volume.
const VOLUME_TOLERANCE: f64 = 0.02;
/// Radius corrections [`add_lesion_of_volume`] tries.
const VOLUME_FIT_STEPS: usize = 6;

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
