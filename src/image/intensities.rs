//! The intensities of a [`Volume`](super::Volume), kept in the series' stored 16-bit form.
//!
//! A CT series stores 16-bit samples (PS3.3 C.8.2.1.1.4: BitsAllocated 16) and maps them
//! to Hounsfield units by the Modality LUT, `HU = stored × RescaleSlope + RescaleIntercept`
//! (PS3.3 C.11.1.1.2). Keeping the samples at 16 bits and widening only a lesion's crop to
//! `f32` holds a 512 × 512 × 300 series in 150 MiB instead of 300 MiB; the features see
//! exactly the values an `f32` HU volume would hold, because the widening applies the
//! same rescale in the same precision ([`Rescale16::hu`]).
//!
//! Volumes that are not 16-bit samples (NIfTI/NRRD images, stacks resampled onto a regular
//! grid, series whose planes carry different rescales) are held as `f32` HU.

use std::ops::Range;

use ndarray::{Array3, ArrayView3, Zip, s};

/// The Modality LUT of a volume's 16-bit samples: `HU = sample × slope + intercept`
/// (PS3.3 C.11.1.1.2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rescale16 {
    /// RescaleSlope (0028,1053).
    pub slope: f64,
    /// RescaleIntercept (0028,1052), HU.
    pub intercept: f64,
}

impl Rescale16 {
    /// The identity: the samples are HU themselves.
    pub const IDENTITY: Rescale16 = Rescale16 {
        slope: 1.0,
        intercept: 0.0,
    };

    /// One sample in HU, computed in `f64` and rounded once to `f32`, as dicom-pixeldata
    /// does when it converts stored values to `f32` through the Modality LUT.
    #[inline]
    pub fn hu(self, sample: i16) -> f32 {
        if self == Self::IDENTITY {
            f32::from(sample)
        } else {
            (f64::from(sample) * self.slope + self.intercept) as f32
        }
    }

    /// One sample in HU, in `f64` (for whole-image statistics).
    #[inline]
    pub fn hu_f64(self, sample: i16) -> f64 {
        f64::from(sample) * self.slope + self.intercept
    }
}

/// A volume's intensities, indexed `[z, y, x]`.
#[derive(Debug, Clone)]
pub enum Intensities {
    /// 16-bit samples and the rescale that maps them to HU.
    Stored16 {
        samples: Array3<i16>,
        rescale: Rescale16,
    },
    /// HU as `f32`.
    F32(Array3<f32>),
}

impl From<Array3<f32>> for Intensities {
    fn from(hu: Array3<f32>) -> Self {
        Intensities::F32(hu)
    }
}

/// Two volumes are equal when they hold the same HU values on the same shape, however
/// they store them.
impl PartialEq for Intensities {
    fn eq(&self, other: &Self) -> bool {
        self.dim() == other.dim() && self.iter().eq(other.iter())
    }
}

impl Intensities {
    /// Shape `(z, y, x)`.
    pub fn dim(&self) -> (usize, usize, usize) {
        match self {
            Intensities::Stored16 { samples, .. } => samples.dim(),
            Intensities::F32(hu) => hu.dim(),
        }
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        let (z, y, x) = self.dim();
        z * y * x
    }

    /// Whether the volume has no voxels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the voxels occupy in memory.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Intensities::Stored16 { samples, .. } => samples.len() * size_of::<i16>(),
            Intensities::F32(hu) => hu.len() * size_of::<f32>(),
        }
    }

    /// The HU value at `index_zyx`.
    ///
    /// # Panics
    /// When the index lies outside the volume (as ndarray indexing does).
    pub fn at(&self, index_zyx: [usize; 3]) -> f32 {
        match self {
            Intensities::Stored16 { samples, rescale } => rescale.hu(samples[index_zyx]),
            Intensities::F32(hu) => hu[index_zyx],
        }
    }

    /// The HU value at `index_zyx`, or `None` outside the volume.
    pub fn get(&self, index_zyx: [usize; 3]) -> Option<f32> {
        match self {
            Intensities::Stored16 { samples, rescale } => {
                samples.get(index_zyx).map(|&v| rescale.hu(v))
            }
            Intensities::F32(hu) => hu.get(index_zyx).copied(),
        }
    }

    /// Every HU value in `[z, y, x]` order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = f32> + '_> {
        match self {
            Intensities::Stored16 { samples, rescale } => {
                let rescale = *rescale;
                Box::new(samples.iter().map(move |&v| rescale.hu(v)))
            }
            Intensities::F32(hu) => Box::new(hu.iter().copied()),
        }
    }

    /// The box `window` (series indices `[z, y, x]`) as `f32` HU, each value passed through
    /// `map` (the identity, or a whole-image normalisation).
    ///
    /// # Panics
    /// When the window reaches beyond the volume (callers clip it to the grid).
    pub fn crop_with(
        &self,
        window: &[Range<usize>; 3],
        map: impl Fn(f32) -> f32 + Sync,
    ) -> Array3<f32> {
        let w = s![window[0].clone(), window[1].clone(), window[2].clone()];
        match self {
            Intensities::Stored16 { samples, rescale } => {
                let rescale = *rescale;
                samples.slice(w).mapv(|v| map(rescale.hu(v)))
            }
            Intensities::F32(hu) => hu.slice(w).mapv(map),
        }
    }

    /// The box `window` as `f32` HU.
    ///
    /// # Panics
    /// As [`Intensities::crop_with`].
    pub fn crop(&self, window: &[Range<usize>; 3]) -> Array3<f32> {
        self.crop_with(window, |v| v)
    }

    /// The whole volume as `f32` HU (a copy twice the size of 16-bit samples: for tests
    /// and small images, never for a series on the extraction path).
    pub fn to_f32(&self) -> Array3<f32> {
        let (z, y, x) = self.dim();
        self.crop(&[0..z, 0..y, 0..x])
    }

    /// The `f32` HU array when the volume is held as one, without copying.
    pub fn as_f32(&self) -> Option<ArrayView3<'_, f32>> {
        match self {
            Intensities::F32(hu) => Some(hu.view()),
            Intensities::Stored16 { .. } => None,
        }
    }

    /// Smallest and largest HU within `window` (`None` for an empty window), read in
    /// place.
    ///
    /// # Panics
    /// As [`Intensities::crop_with`].
    pub fn min_max(&self, window: &[Range<usize>; 3]) -> Option<(f32, f32)> {
        let w = s![window[0].clone(), window[1].clone(), window[2].clone()];
        match self {
            Intensities::Stored16 { samples, rescale } => {
                let view = samples.slice(w);
                let lo = view.iter().min()?;
                let hi = view.iter().max()?;
                // A negative slope swaps the ends.
                let (a, b) = (rescale.hu(*lo), rescale.hu(*hi));
                Some((a.min(b), a.max(b)))
            }
            Intensities::F32(hu) => hu.slice(w).iter().fold(None, |acc, &v| match acc {
                None => Some((v, v)),
                Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
            }),
        }
    }

    /// Largest |HU| within `window` (0 for an empty window), read in place.
    ///
    /// # Panics
    /// As [`Intensities::crop_with`].
    pub fn max_abs(&self, window: &[Range<usize>; 3]) -> f64 {
        let w = s![window[0].clone(), window[1].clone(), window[2].clone()];
        match self {
            Intensities::Stored16 { samples, rescale } => samples
                .slice(w)
                .iter()
                .fold(0.0f64, |m, &v| m.max(f64::from(rescale.hu(v)).abs())),
            Intensities::F32(hu) => hu
                .slice(w)
                .iter()
                .fold(0.0f64, |m, &v| m.max(f64::from(v).abs())),
        }
    }

    /// Mean and sample standard deviation (divisor `N − 1`; `N` when `N` = 1) of every HU
    /// value, in one pass over the voxels without copying them.
    ///
    /// 16-bit samples are summed exactly in `i64` integers,
    /// then rescaled; `f32` volumes use Welford's update in `f64` (Welford 1962,
    /// doi:10.1080/00401706.1962.10490022), which does not lose precision to the large
    /// sums that a naive one-pass formula subtracts. `None` for an empty volume.
    pub fn mean_sd(&self) -> Option<(f64, f64)> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        let divisor = (n as f64 - 1.0).max(1.0);
        match self {
            Intensities::Stored16 { samples, rescale } => {
                // |v| ≤ 2^15, so Σv² stays below 2^63 up to 2^33 voxels.
                let (mut sum, mut squares) = (0i64, 0i64);
                Zip::from(samples).for_each(|&v| {
                    sum += i64::from(v);
                    squares += i64::from(i32::from(v) * i32::from(v));
                });
                // Σ(v − μ)² = Σv² − (Σv)² / N, exact as n·Σv² − (Σv)² over n.
                let centred = (n as i128) * i128::from(squares) - i128::from(sum) * i128::from(sum);
                let variance = centred as f64 / n as f64 / divisor;
                let mean = sum as f64 / n as f64;
                Some((
                    mean * rescale.slope + rescale.intercept,
                    variance.sqrt() * rescale.slope.abs(),
                ))
            }
            Intensities::F32(hu) => {
                let (mut count, mut mean, mut m2) = (0.0f64, 0.0f64, 0.0f64);
                for &v in hu {
                    let v = f64::from(v);
                    count += 1.0;
                    let delta = v - mean;
                    mean += delta / count;
                    m2 += delta * (v - mean);
                }
                Some((mean, (m2 / divisor).sqrt()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> Intensities {
        let samples = Array3::from_shape_fn((2, 3, 4), |(z, y, x)| {
            (z * 1000 + y * 100 + x) as i16 - 1024
        });
        Intensities::Stored16 {
            samples,
            rescale: Rescale16 {
                slope: 0.5,
                intercept: -3.25,
            },
        }
    }

    #[test]
    fn stored_samples_read_as_rescaled_hu_everywhere() {
        let v = stored();
        let hu = v.to_f32();
        assert_eq!(v.at([1, 2, 3]), (1203.0 - 1024.0) * 0.5 - 3.25);
        assert_eq!(hu[[1, 2, 3]], v.at([1, 2, 3]));
        assert_eq!(v.get([2, 0, 0]), None);
        let crop = v.crop(&[1..2, 1..3, 0..2]);
        assert_eq!(crop.dim(), (1, 2, 2));
        assert_eq!(crop[[0, 1, 1]], hu[[1, 2, 1]]);
        assert_eq!(v, Intensities::F32(hu.clone()));
        assert_eq!(
            v.max_abs(&[0..2, 0..3, 0..4]),
            hu.iter().fold(0.0f64, |m, &x| m.max(f64::from(x).abs()))
        );
        assert_eq!(
            v.crop_with(&[0..1, 0..1, 0..1], |x| x * 2.0)[[0, 0, 0]],
            hu[[0, 0, 0]] * 2.0
        );
    }

    /// The one-pass statistics equal the two-pass textbook formula on both storages.
    #[test]
    fn one_pass_mean_and_sd_match_two_passes() {
        let v = stored();
        let hu: Vec<f64> = v.iter().map(f64::from).collect();
        let n = hu.len() as f64;
        let mean = hu.iter().sum::<f64>() / n;
        let sd = (hu.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        /// Relative tolerance: a few f64 roundings over 24 values.
        const REL_TOL: f64 = 1e-12;
        for storage in [v.clone(), Intensities::F32(v.to_f32())] {
            let (m, s) = storage.mean_sd().unwrap();
            assert!((m - mean).abs() <= REL_TOL * mean.abs(), "{m} vs {mean}");
            assert!((s - sd).abs() <= REL_TOL * sd, "{s} vs {sd}");
        }
        let one = Intensities::F32(Array3::from_elem((1, 1, 1), 7.0));
        assert_eq!(one.mean_sd(), Some((7.0, 0.0)));
    }
}
