//! Shared pieces of the neighbourhood-based texture families, NGTDM (IBSI 1 section 3.10)
//! and NGLDM (section 3.11).
//!
//! Both families look at every voxel of the intensity mask together with its neighbours
//! within Chebyshev distance `δ = texture_distance_vox` (IBSI "Grid distances", norm PVMT),
//! counting only neighbours that lie in the intensity mask. Their matrices are built per
//! slice (in-plane neighbourhood, `(2δ+1)² − 1` voxels) or over the volume (`(2δ+1)³ − 1`
//! voxels), and aggregated as IBSI 3.10 / 3.11 describe:
//!
//! * `2D`: one matrix per slice, features averaged over slices (IBSI 8QNN);
//! * `2_5D`: the slice matrices merged (summed), features from the merged matrix (62GR);
//! * `3D`: one matrix from the 3D neighbourhood (KOBO).
//!
//! The IBSI tags of these families carry only the dimension (`ngt_coarseness_2D`), not the
//! `avg`/`comb` of the direction-based families, so [`Dimension::from_aggregations`] maps
//! the configured [`TextureAggregation`]s onto the three dimensions.

use ndarray::Array3;

use super::settings::TextureAggregation;
use super::{FamilySettings, FeatureError};

/// Largest neighbourhood distance δ the neighbourhood families accept, voxels.
///
/// The cost per voxel grows as `(2δ + 1)³`; IBSI's reference configurations use δ = 1
/// (IBSI manual §5). A larger value is refused rather than left to run for minutes.
pub const MAX_DISTANCE_VOX: u32 = 5;

/// The three ways IBSI 3.10 / 3.11 aggregate neighbourhood matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// Per-slice matrices, features averaged over slices (IBSI 8QNN).
    D2,
    /// Per-slice matrices merged into one (IBSI 62GR).
    D25,
    /// One matrix from the 3D neighbourhood (IBSI KOBO).
    D3,
}

impl Dimension {
    /// The IBSI tag suffix: `2D`, `2_5D` or `3D`.
    pub fn suffix(self) -> &'static str {
        match self {
            Dimension::D2 => "2D",
            Dimension::D25 => "2_5D",
            Dimension::D3 => "3D",
        }
    }

    /// The dimensions the configured aggregations ask for, in settings order, each once:
    /// `2D_avg`/`2D_comb` → `2D`, `2_5D_*` → `2_5D`, `3D_*` → `3D`.
    pub fn from_aggregations(aggregations: &[TextureAggregation]) -> Vec<Dimension> {
        let mut out = Vec::new();
        for agg in aggregations {
            let dim = match agg {
                TextureAggregation::D2Avg | TextureAggregation::D2Comb => Dimension::D2,
                TextureAggregation::D25Avg | TextureAggregation::D25Comb => Dimension::D25,
                TextureAggregation::D3Avg | TextureAggregation::D3Comb => Dimension::D3,
            };
            if !out.contains(&dim) {
                out.push(dim);
            }
        }
        out
    }
}

/// The neighbourhood distance δ of the settings, checked against [`MAX_DISTANCE_VOX`].
///
/// # Errors
/// [`FeatureError::InvalidSettings`] for δ = 0 or δ > [`MAX_DISTANCE_VOX`].
pub fn distance(s: &FamilySettings) -> Result<usize, FeatureError> {
    let delta = s.texture_distance_vox;
    if delta == 0 || delta > MAX_DISTANCE_VOX {
        return Err(FeatureError::InvalidSettings(format!(
            "texture_distance_vox must be within 1..={MAX_DISTANCE_VOX} for NGTDM/NGLDM, \
             got {delta}"
        )));
    }
    Ok(delta as usize)
}

/// Offsets `[dz, dy, dx]` of all voxels within Chebyshev distance `delta`, the centre
/// excluded; in-plane only (`dz = 0`) when `in_plane`.
pub fn offsets(delta: usize, in_plane: bool) -> Vec<[isize; 3]> {
    let d = delta as isize;
    let z_range = if in_plane { 0..=0 } else { -d..=d };
    let mut out = Vec::new();
    for dz in z_range {
        for dy in -d..=d {
            for dx in -d..=d {
                if (dz, dy, dx) != (0, 0, 0) {
                    out.push([dz, dy, dx]);
                }
            }
        }
    }
    out
}

/// Grey levels of the ROI re-indexed to the distinct levels that occur, so matrices stay
/// small whatever the grey level values are.
pub struct LevelIndex {
    /// Index into [`LevelIndex::values`] per voxel, `-1` outside the intensity mask;
    /// `[z, y, x]`.
    pub index: Array3<i32>,
    /// The distinct grey levels, ascending.
    pub values: Vec<f64>,
}

impl LevelIndex {
    /// Index the 1-based grey levels of [`crate::image::discretise::GreyLevels`]
    /// (`0` = outside the mask).
    ///
    /// # Errors
    /// [`FeatureError::InvalidSettings`] if more distinct levels occur than fit an `i32`.
    pub fn new(levels: &Array3<u32>) -> Result<Self, FeatureError> {
        let mut distinct: Vec<u32> = levels.iter().copied().filter(|&g| g > 0).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if i32::try_from(distinct.len()).is_err() {
            return Err(FeatureError::InvalidSettings(
                "too many distinct grey levels".into(),
            ));
        }
        let index = levels.mapv(|g| match distinct.binary_search(&g) {
            Ok(i) if g > 0 => i as i32,
            _ => -1,
        });
        let values = distinct.iter().map(|&g| f64::from(g)).collect();
        Ok(LevelIndex { index, values })
    }

    /// Number of distinct grey levels.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no voxel is in the mask.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Calls `visit(centre, neighbours)` for every mask voxel in slices `zs`, with the
    /// level indices of its in-mask neighbours at `offsets` (buffer reused between calls).
    pub fn for_each_voxel(
        &self,
        offsets: &[[isize; 3]],
        zs: std::ops::Range<usize>,
        mut visit: impl FnMut(usize, &[usize]),
    ) {
        let (nz, ny, nx) = self.index.dim();
        let mut neighbours = Vec::with_capacity(offsets.len());
        for z in zs {
            for y in 0..ny {
                for x in 0..nx {
                    let Ok(centre) = usize::try_from(self.index[[z, y, x]]) else {
                        continue;
                    };
                    neighbours.clear();
                    for d in offsets {
                        let at = (
                            z.checked_add_signed(d[0]).filter(|&v| v < nz),
                            y.checked_add_signed(d[1]).filter(|&v| v < ny),
                            x.checked_add_signed(d[2]).filter(|&v| v < nx),
                        );
                        if let (Some(z2), Some(y2), Some(x2)) = at
                            && let Ok(n) = usize::try_from(self.index[[z2, y2, x2]])
                        {
                            neighbours.push(n);
                        }
                    }
                    visit(centre, &neighbours);
                }
            }
        }
    }
}

/// Mean of per-slice feature vectors, skipping slices without a matrix (`None`).
pub fn mean_of<const N: usize>(
    per_slice: impl IntoIterator<Item = Option<[f64; N]>>,
) -> Option<[f64; N]> {
    let mut sum = [0.0; N];
    let mut count = 0_usize;
    for values in per_slice.into_iter().flatten() {
        for (s, v) in sum.iter_mut().zip(values) {
            *s += v;
        }
        count += 1;
    }
    (count > 0).then(|| sum.map(|s| s / count as f64))
}

/// Minimal valid settings for unit tests of the families in this change: discretisation
/// `none`, δ = 1, α = 0, no re-segmentation, the given aggregations. Parsed from JSON so
/// that optional fields added to [`FamilySettings`] later take their defaults.
#[cfg(test)]
pub(crate) fn test_settings(aggregations: &[TextureAggregation]) -> FamilySettings {
    serde_json::from_value(serde_json::json!({
        "families": [],
        "discretisation": { "method": "none" },
        "texture_distance_vox": 1,
        "texture_aggregations": aggregations,
        "min_voxels": 1,
    }))
    .expect("minimal settings parse")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_the_chebyshev_neighbourhood() {
        assert_eq!(offsets(1, true).len(), 8);
        assert_eq!(offsets(1, false).len(), 26);
        assert_eq!(offsets(2, false).len(), 124);
    }

    #[test]
    fn aggregations_map_to_dimensions_once() {
        let dims = Dimension::from_aggregations(&[
            TextureAggregation::D25Comb,
            TextureAggregation::D2Avg,
            TextureAggregation::D2Comb,
            TextureAggregation::D25Avg,
        ]);
        assert_eq!(dims, vec![Dimension::D25, Dimension::D2]);
    }

    #[test]
    fn neighbours_outside_mask_or_crop_are_skipped() {
        let mut levels = Array3::from_elem((1, 1, 3), 2_u32);
        levels[[0, 0, 2]] = 0;
        let idx = LevelIndex::new(&levels).unwrap();
        let mut seen = Vec::new();
        idx.for_each_voxel(&offsets(1, true), 0..1, |c, n| seen.push((c, n.len())));
        assert_eq!(seen, vec![(0, 1), (0, 1)]);
    }

    #[test]
    fn mean_skips_missing_slices() {
        assert_eq!(mean_of([Some([1.0]), None, Some([3.0])]), Some([2.0]));
        assert_eq!(mean_of::<1>([None]), None);
    }
}
