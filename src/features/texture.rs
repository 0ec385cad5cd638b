//! Machinery shared by the texture families (IBSI 1 chapter 3, sections 3.6 – 3.9).
//!
//! * Neighbour directions ([`DIRECTIONS_2D`], [`DIRECTIONS_3D`]) and grey levels re-indexed
//!   to the levels that occur in the ROI ([`LevelIndex`]).
//! * Feature aggregation (IBSI 3.1.3, figure 3.2 of the manual):
//!   - directional families (GLCM, GLRLM) build one matrix per direction and slice;
//!     [`aggregate_by_direction`] yields the six variants `2D_avg`, `2D_comb`, `2_5D_avg`,
//!     `2_5D_comb`, `3D_avg`, `3D_comb`;
//!   - zone families (GLSZM, GLDZM) have no direction; [`aggregate_by_slice`] yields
//!     `2D` (per-slice features averaged over slices, IBSI 8QNN), `2_5D` (slice matrices
//!     merged, 62GR) and `3D` (one volume matrix, KOBO). See [`SliceAggregation`] for how
//!     the six configured variants map onto these three.
//! * [`LengthMatrix`], the grey level × length count matrix of GLRLM (run length), GLSZM
//!   (zone size) and GLDZM (zone distance), whose 16 features share one set of formulas.
//!
//! `*_avg` variants average the feature vectors of the matrices; `*_comb` variants (and
//! `2_5D` of the zone families) merge the counts first. A matrix without any count (e.g. a
//! slice without a neighbouring pair) takes no part in an average.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use std::ops::Range;

use ndarray::Array3;

use super::settings::TextureAggregation;
use super::{Feature, FeatureError};

/// The 4 unique in-plane neighbour directions `[dz, dy, dx]` (IBSI 3.1.3: 0°, 45°, 90°,
/// 135° in the axial plane).
pub const DIRECTIONS_2D: [[isize; 3]; 4] = [[0, 0, 1], [0, 1, 1], [0, 1, 0], [0, 1, -1]];

/// The 13 unique 3D neighbour directions `[dz, dy, dx]` (IBSI 3.1.3, 26-connectedness
/// halved by symmetry).
pub const DIRECTIONS_3D: [[isize; 3]; 13] = [
    [0, 0, 1],
    [0, 1, 1],
    [0, 1, 0],
    [0, 1, -1],
    [1, -1, -1],
    [1, -1, 0],
    [1, -1, 1],
    [1, 0, -1],
    [1, 0, 0],
    [1, 0, 1],
    [1, 1, -1],
    [1, 1, 0],
    [1, 1, 1],
];

/// Largest number of distinct grey levels in a ROI for which texture matrices are built.
///
/// LIMITATION: GLCM matrices are dense L×L; more distinct levels (e.g. `none` on raw HU)
/// are refused by every texture family alike.
pub const MAX_GREY_LEVELS: usize = 2048;

/// A feature IBSI leaves undefined for one matrix: `(feature, reason)`.
pub type Degenerate = (&'static str, &'static str);

/// A direction scaled to Chebyshev distance `delta`.
pub fn scale(d: [isize; 3], delta: isize) -> [isize; 3] {
    [d[0] * delta, d[1] * delta, d[2] * delta]
}

/// The voxel at `v + d` if it lies in an array of shape `dim` and within slices `zs`.
pub fn step(
    dim: (usize, usize, usize),
    v: [usize; 3],
    d: [isize; 3],
    zs: &Range<usize>,
) -> Option<[usize; 3]> {
    let z = v[0].checked_add_signed(d[0]).filter(|z| zs.contains(z))?;
    let y = v[1].checked_add_signed(d[1]).filter(|&y| y < dim.1)?;
    let x = v[2].checked_add_signed(d[2]).filter(|&x| x < dim.2)?;
    Some([z, y, x])
}

/// Grey levels of the ROI re-indexed to the distinct levels that occur.
pub struct LevelIndex {
    /// Index into `values` per voxel, `-1` outside the intensity mask; `[z, y, x]`.
    pub index: Array3<i32>,
    /// The distinct grey levels, ascending.
    pub values: Vec<f64>,
    /// `N_g` from discretisation.
    pub n_g: f64,
}

impl LevelIndex {
    /// Re-index 1-based grey levels (`0` = outside the mask); `family` names the caller
    /// in the error.
    ///
    /// # Errors
    /// [`FeatureError::InvalidSettings`] for more than [`MAX_GREY_LEVELS`] distinct levels.
    pub fn new(levels: &Array3<u32>, n_levels: u32, family: &str) -> Result<Self, FeatureError> {
        let mut distinct: Vec<u32> = levels.iter().copied().filter(|&g| g > 0).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() > MAX_GREY_LEVELS {
            return Err(FeatureError::InvalidSettings(format!(
                "{} distinct grey levels; {family} supports at most {MAX_GREY_LEVELS}",
                distinct.len()
            )));
        }
        // At most MAX_GREY_LEVELS distinct levels, so every index fits in i32.
        let index = levels.mapv(|g| match distinct.binary_search(&g) {
            Ok(i) if g > 0 => i as i32,
            _ => -1,
        });
        let values = distinct.iter().map(|&g| f64::from(g)).collect();
        Ok(LevelIndex {
            index,
            values,
            n_g: f64::from(n_levels),
        })
    }

    /// Number of distinct grey levels.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no voxel has a grey level.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Number of slices (`z` extent) of the crop.
    pub fn n_slices(&self) -> usize {
        self.index.dim().0
    }

    /// Level index of voxel `v`, `None` outside the intensity mask.
    pub fn at(&self, v: [usize; 3]) -> Option<usize> {
        usize::try_from(self.index[v]).ok()
    }
}

/// A count matrix that aggregation can merge (IBSI 3.1.3 "merging" = summing counts).
pub trait TextureMatrix: Clone {
    /// Add the counts of `other` to `self`.
    fn merge(&mut self, other: &Self);
}

/// How a family names its outputs: tags `<prefix>_<feature>_<suffix>`.
pub struct FamilyTags<const N: usize> {
    /// Tag prefix, e.g. `cm` for `cm_contrast_3D_avg`.
    pub prefix: &'static str,
    /// Short feature names in output order.
    pub features: [&'static str; N],
    /// Why an aggregation has no matrix with counts (the error reason).
    pub empty_reason: &'static str,
}

impl<const N: usize> FamilyTags<N> {
    /// Tags for every suffix, feature by feature.
    pub fn names<'a>(
        &'a self,
        suffixes: impl IntoIterator<Item = &'static str> + 'a,
    ) -> impl Iterator<Item = String> + 'a {
        suffixes.into_iter().flat_map(move |s| {
            self.features
                .iter()
                .map(move |f| format!("{}_{f}_{s}", self.prefix))
        })
    }
}

/// A texture family as the aggregation helpers see it: `N` features per matrix.
pub trait MatrixFamily<const N: usize> {
    /// The family's count matrix.
    type Matrix: TextureMatrix;
    /// The family's tags.
    fn tags(&self) -> &FamilyTags<N>;
    /// A matrix without counts.
    fn empty(&self) -> Self::Matrix;
    /// The features of one matrix; `Ok(None)` for a matrix without counts.
    fn features(&self, m: &Self::Matrix) -> Result<Option<[f64; N]>, Degenerate>;
}

/// A family whose matrix is a [`LengthMatrix`] (GLRLM, GLSZM, GLDZM).
pub struct LengthFamily<'a> {
    /// The ROI's grey levels.
    pub levels: &'a LevelIndex,
    /// The family's tags.
    pub tags: &'static FamilyTags<N_LENGTH_FEATURES>,
}

impl MatrixFamily<N_LENGTH_FEATURES> for LengthFamily<'_> {
    type Matrix = LengthMatrix;

    fn tags(&self) -> &FamilyTags<N_LENGTH_FEATURES> {
        self.tags
    }

    fn empty(&self) -> LengthMatrix {
        LengthMatrix::default()
    }

    fn features(&self, m: &LengthMatrix) -> Result<Option<[f64; N_LENGTH_FEATURES]>, Degenerate> {
        Ok(m.features(&self.levels.values))
    }
}

/// Running mean of the feature vectors of one aggregation; `add` skips empty matrices.
pub struct Averager<const N: usize> {
    prefix: &'static str,
    suffix: &'static str,
    sum: [f64; N],
    count: usize,
}

impl<const N: usize> Averager<N> {
    /// An empty mean for tags `<prefix>_<feature>_<suffix>`.
    pub fn new(prefix: &'static str, suffix: &'static str) -> Self {
        Averager {
            prefix,
            suffix,
            sum: [0.0; N],
            count: 0,
        }
    }

    /// Add one matrix's features.
    ///
    /// LIMITATION: one degenerate matrix (e.g. a flat slice in `2D_avg`) makes the whole
    /// aggregation undefined, because IBSI gives no value to average in its place.
    pub fn add(&mut self, f: Result<Option<[f64; N]>, Degenerate>) -> Result<(), FeatureError> {
        match f {
            Ok(Some(values)) => {
                for (s, v) in self.sum.iter_mut().zip(values) {
                    *s += v;
                }
                self.count += 1;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err((feature, reason)) => Err(FeatureError::Undefined {
                feature: format!("{}_{feature}_{}", self.prefix, self.suffix),
                reason,
            }),
        }
    }

    /// The mean, `None` if no non-empty matrix was added.
    pub fn mean(&self) -> Option<[f64; N]> {
        (self.count > 0).then(|| self.sum.map(|s| s / self.count as f64))
    }
}

/// The features of one merged matrix as a one-element mean.
fn single<F: MatrixFamily<N>, const N: usize>(
    family: &F,
    suffix: &'static str,
    m: &F::Matrix,
) -> Result<Averager<N>, FeatureError> {
    let mut avg = Averager::new(family.tags().prefix, suffix);
    avg.add(family.features(m))?;
    Ok(avg)
}

/// Features of a directional family (GLCM, GLRLM) for every configured aggregation, in
/// settings order. `count(d, zs)` builds the matrix of direction `d` (a unit direction of
/// [`DIRECTIONS_2D`] / [`DIRECTIONS_3D`]) over slices `zs`.
///
/// # Errors
/// [`FeatureError::Undefined`] for a degenerate matrix (see [`Averager::add`]) or an
/// aggregation without any non-empty matrix.
pub fn aggregate_by_direction<F: MatrixFamily<N>, const N: usize>(
    family: &F,
    aggs: &[TextureAggregation],
    n_slices: usize,
    count: impl Fn([isize; 3], Range<usize>) -> F::Matrix,
) -> Result<Vec<Feature>, FeatureError> {
    use TextureAggregation as A;
    let wants = |a: A| aggs.contains(&a);
    let mut results: Vec<(A, Averager<N>)> = Vec::new();
    if [A::D2Avg, A::D2Comb, A::D25Avg, A::D25Comb]
        .into_iter()
        .any(wants)
    {
        let mut avg_2d = Averager::new(family.tags().prefix, A::D2Avg.suffix());
        let mut comb_2d = Averager::new(family.tags().prefix, A::D2Comb.suffix());
        let mut per_direction = vec![family.empty(); DIRECTIONS_2D.len()];
        for z in 0..n_slices {
            let mats: Vec<F::Matrix> = DIRECTIONS_2D.iter().map(|d| count(*d, z..z + 1)).collect();
            if wants(A::D2Avg) {
                for m in &mats {
                    avg_2d.add(family.features(m))?;
                }
            }
            if wants(A::D2Comb) {
                comb_2d.add(family.features(&merged(family, &mats)))?;
            }
            for (acc, m) in per_direction.iter_mut().zip(&mats) {
                acc.merge(m);
            }
        }
        let mut avg_25d = Averager::new(family.tags().prefix, A::D25Avg.suffix());
        if wants(A::D25Avg) {
            for m in &per_direction {
                avg_25d.add(family.features(m))?;
            }
        }
        if wants(A::D25Comb) {
            let m = merged(family, &per_direction);
            results.push((A::D25Comb, single(family, A::D25Comb.suffix(), &m)?));
        }
        results.push((A::D2Avg, avg_2d));
        results.push((A::D2Comb, comb_2d));
        results.push((A::D25Avg, avg_25d));
    }
    if wants(A::D3Avg) || wants(A::D3Comb) {
        let mut avg_3d = Averager::new(family.tags().prefix, A::D3Avg.suffix());
        let mut all = family.empty();
        for d in DIRECTIONS_3D {
            let m = count(d, 0..n_slices);
            if wants(A::D3Avg) {
                avg_3d.add(family.features(&m))?;
            }
            all.merge(&m);
        }
        if wants(A::D3Comb) {
            results.push((A::D3Comb, single(family, A::D3Comb.suffix(), &all)?));
        }
        results.push((A::D3Avg, avg_3d));
    }
    let lookup = |a: A| results.iter().find(|(k, _)| *k == a).map(|(_, v)| v);
    collect(family.tags(), aggs.iter().map(|a| (a.suffix(), lookup(*a))))
}

/// The sum of `mats`.
fn merged<F: MatrixFamily<N>, const N: usize>(family: &F, mats: &[F::Matrix]) -> F::Matrix {
    let mut out = family.empty();
    for m in mats {
        out.merge(m);
    }
    out
}

/// The aggregation variants of the zone families (GLSZM IBSI 3.8, GLDZM IBSI 3.9), which
/// have no directions: IBSI reports them as `2D`, `2_5D` and `3D`.
///
/// A configured [`TextureAggregation`] maps by its dimension: `2D_avg` and `2D_comb` →
/// [`SliceAggregation::D2`], `2_5D_avg` and `2_5D_comb` → [`SliceAggregation::D25`],
/// `3D_avg` and `3D_comb` → [`SliceAggregation::D3`]; each variant is output once, at the
/// position of its first configured aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceAggregation {
    /// Features per slice, averaged over slices (IBSI 8QNN).
    D2,
    /// Slice matrices merged into one (IBSI 62GR).
    D25,
    /// One matrix of the volume (IBSI KOBO).
    D3,
}

impl SliceAggregation {
    /// The IBSI tag suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            SliceAggregation::D2 => "2D",
            SliceAggregation::D25 => "2_5D",
            SliceAggregation::D3 => "3D",
        }
    }

    /// The variant a configured aggregation maps to.
    pub fn of(a: TextureAggregation) -> Self {
        match a {
            TextureAggregation::D2Avg | TextureAggregation::D2Comb => SliceAggregation::D2,
            TextureAggregation::D25Avg | TextureAggregation::D25Comb => SliceAggregation::D25,
            TextureAggregation::D3Avg | TextureAggregation::D3Comb => SliceAggregation::D3,
        }
    }

    /// The variants to output for configured aggregations, without repeats, in order.
    pub fn requested(aggs: &[TextureAggregation]) -> Vec<Self> {
        let mut out: Vec<Self> = Vec::new();
        for v in aggs.iter().map(|a| Self::of(*a)) {
            if !out.contains(&v) {
                out.push(v);
            }
        }
        out
    }
}

/// Features of a zone family for `variants`, in order. `slice(z)` builds the 2D matrix of
/// slice `z`, `volume()` the 3D matrix; each is called only if a variant needs it.
///
/// # Errors
/// Errors of `slice` / `volume`; [`FeatureError::Undefined`] for a degenerate matrix or a
/// variant without any non-empty matrix.
pub fn aggregate_by_slice<F: MatrixFamily<N>, const N: usize>(
    family: &F,
    variants: &[SliceAggregation],
    n_slices: usize,
    mut slice: impl FnMut(usize) -> Result<F::Matrix, FeatureError>,
    volume: impl FnOnce() -> Result<F::Matrix, FeatureError>,
) -> Result<Vec<Feature>, FeatureError> {
    use SliceAggregation as S;
    let mut results: Vec<(S, Averager<N>)> = Vec::new();
    if variants.contains(&S::D2) || variants.contains(&S::D25) {
        let mut avg_2d = Averager::new(family.tags().prefix, S::D2.suffix());
        let mut all = family.empty();
        for z in 0..n_slices {
            let m = slice(z)?;
            if variants.contains(&S::D2) {
                avg_2d.add(family.features(&m))?;
            }
            all.merge(&m);
        }
        results.push((S::D2, avg_2d));
        if variants.contains(&S::D25) {
            results.push((S::D25, single(family, S::D25.suffix(), &all)?));
        }
    }
    if variants.contains(&S::D3) {
        results.push((S::D3, single(family, S::D3.suffix(), &volume()?)?));
    }
    let lookup = |a: S| results.iter().find(|(k, _)| *k == a).map(|(_, v)| v);
    collect(
        family.tags(),
        variants.iter().map(|v| (v.suffix(), lookup(*v))),
    )
}

/// Named features of every `(suffix, mean)`; a missing or empty mean is an error.
fn collect<'a, const N: usize>(
    tags: &FamilyTags<N>,
    means: impl Iterator<Item = (&'static str, Option<&'a Averager<N>>)>,
) -> Result<Vec<Feature>, FeatureError> {
    let mut out = Vec::new();
    for (suffix, averager) in means {
        let mean = averager
            .and_then(Averager::mean)
            .ok_or_else(|| FeatureError::Undefined {
                feature: format!("{}_{}_{suffix}", tags.prefix, tags.features[0]),
                reason: tags.empty_reason,
            })?;
        out.extend(
            tags.features
                .iter()
                .zip(mean)
                .map(|(f, v)| Feature::new(format!("{}_{f}_{suffix}", tags.prefix), v)),
        );
    }
    Ok(out)
}

/// Number of features of a [`LengthMatrix`] (IBSI 3.7, 3.8, 3.9: 16 each).
pub const N_LENGTH_FEATURES: usize = 16;

/// A grey level × length count matrix: `r_ij` counts runs (GLRLM), zones of size `j`
/// (GLSZM) or zones at distance `j` (GLDZM) with grey level index `i`, together with the
/// number of voxels `N_v` they cover.
///
/// Counts are integers in a sparse map, so merging is exact and independent of order;
/// features sum in sorted order, so results are reproducible to the bit. The map hashes
/// with FxHash: its keys are small integer pairs the process makes itself, so the
/// DoS-resistant default hasher (most of the counting time in a profile) buys nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LengthMatrix {
    counts: FxHashMap<(u32, u32), u64>,
    n_voxels: u64,
}

impl TextureMatrix for LengthMatrix {
    fn merge(&mut self, other: &Self) {
        for (k, c) in &other.counts {
            *self.counts.entry(*k).or_insert(0) += c;
        }
        self.n_voxels += other.n_voxels;
    }
}

impl LengthMatrix {
    /// Count one run or zone of grey level index `level` and length `length` (≥ 1) that
    /// covers `voxels` voxels.
    pub fn add(&mut self, level: usize, length: u32, voxels: u64) {
        // Level indices are below MAX_GREY_LEVELS (LevelIndex::new), so they fit in u32.
        *self.counts.entry((level as u32, length)).or_insert(0) += 1;
        self.n_voxels += voxels;
    }

    /// The 16 features shared by GLRLM, GLSZM and GLDZM, `None` without counts.
    ///
    /// With `values[i]` the grey level `i`, `j` the length, `N_s = Σ r_ij`, `r_i. = Σ_j
    /// r_ij`, `r_.j = Σ_i r_ij`, `p_ij = r_ij / N_s` and `N_v` the voxels covered (summed
    /// over merged matrices, IBSI 3.7 "aggregating features"):
    ///
    /// ```text
    ///  0 short emphasis        Σ_j r_.j / j² / N_s
    ///  1 long emphasis         Σ_j r_.j j² / N_s
    ///  2 low grey emphasis     Σ_i r_i. / i² / N_s
    ///  3 high grey emphasis    Σ_i r_i. i² / N_s
    ///  4 short low grey        Σ r_ij / (i² j²) / N_s
    ///  5 short high grey       Σ r_ij i² / j² / N_s
    ///  6 long low grey         Σ r_ij j² / i² / N_s
    ///  7 long high grey        Σ r_ij i² j² / N_s
    ///  8 grey non-uniformity   Σ_i r_i.² / N_s
    ///  9   normalised          Σ_i r_i.² / N_s²
    /// 10 length non-unif.      Σ_j r_.j² / N_s
    /// 11   normalised          Σ_j r_.j² / N_s²
    /// 12 percentage            N_s / N_v
    /// 13 grey level variance   Σ (i − μ_i)² p_ij,  μ_i = Σ i p_ij
    /// 14 length variance       Σ (j − μ_j)² p_ij,  μ_j = Σ j p_ij
    /// 15 entropy               −Σ p_ij log2 p_ij
    /// ```
    ///
    /// Every feature is finite for a non-empty matrix (`i, j ≥ 1`, `N_s, N_v ≥ 1`), so
    /// none is undefined.
    pub fn features(&self, values: &[f64]) -> Option<[f64; N_LENGTH_FEATURES]> {
        let mut entries: Vec<((u32, u32), f64)> =
            self.counts.iter().map(|(k, &c)| (*k, c as f64)).collect();
        entries.sort_unstable_by_key(|(k, _)| *k);
        let n_s: f64 = entries.iter().map(|(_, c)| c).sum();
        if n_s <= 0.0 || self.n_voxels == 0 {
            return None;
        }
        let grey = |i: u32| values.get(i as usize).copied().unwrap_or(f64::NAN);
        let mut per_level: BTreeMap<u32, f64> = BTreeMap::new();
        let mut per_length: BTreeMap<u32, f64> = BTreeMap::new();
        let mut f = [0.0; N_LENGTH_FEATURES];
        let (mut mu_i, mut mu_j) = (0.0, 0.0);
        for &((i, j), r) in &entries {
            *per_level.entry(i).or_insert(0.0) += r;
            *per_length.entry(j).or_insert(0.0) += r;
            let (gi2, j2) = (grey(i).powi(2), f64::from(j).powi(2));
            f[4] += r / (gi2 * j2);
            f[5] += r * gi2 / j2;
            f[6] += r * j2 / gi2;
            f[7] += r * gi2 * j2;
            let p = r / n_s;
            mu_i += grey(i) * p;
            mu_j += f64::from(j) * p;
            f[15] -= p * p.log2();
        }
        for (&j, &r) in &per_length {
            let j2 = f64::from(j).powi(2);
            f[0] += r / j2;
            f[1] += r * j2;
            f[10] += r * r;
        }
        for (&i, &r) in &per_level {
            let gi2 = grey(i).powi(2);
            f[2] += r / gi2;
            f[3] += r * gi2;
            f[8] += r * r;
        }
        for &((i, j), r) in &entries {
            let p = r / n_s;
            f[13] += (grey(i) - mu_i).powi(2) * p;
            f[14] += (f64::from(j) - mu_j).powi(2) * p;
        }
        for k in [0, 1, 2, 3, 4, 5, 6, 7, 8, 10] {
            f[k] /= n_s;
        }
        f[9] = f[8] / n_s;
        f[11] = f[10] / n_s;
        f[12] = n_s / self.n_voxels as f64;
        Some(f)
    }
}

/// Builders shared by the texture families' unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use ndarray::Array3;

    use crate::features::settings::TextureAggregation;
    use crate::features::{FamilySettings, Feature, Roi};

    /// Settings enabling `family` with no discretisation (grey levels = rounded
    /// intensities), distance 1 and `aggs`. Built from JSON so fields with serde
    /// defaults need no mention here.
    pub fn settings(family: &str, aggs: Vec<TextureAggregation>) -> FamilySettings {
        let json = serde_json::json!({
            "families": [family],
            "discretisation": { "method": "none" },
            "texture_distance_vox": 1,
            "texture_aggregations": aggs,
            "min_voxels": 1,
        });
        serde_json::from_value(json).expect("test settings are valid")
    }

    /// A `z × y × x` ROI of `values` with both masks full.
    pub fn roi(z: usize, y: usize, x: usize, values: &[f32]) -> Roi {
        let hu = Array3::from_shape_vec((z, y, x), values.to_vec()).expect("shape fits values");
        let mask = Array3::from_elem(hu.dim(), true);
        Roi {
            hu,
            intensity_mask: mask.clone(),
            morph_mask: mask,
            spacing_mm: [1.0; 3],
        }
    }

    /// The value of feature `tag`.
    pub fn get(f: &[Feature], tag: &str) -> f64 {
        f.iter()
            .find(|x| x.name == tag)
            .unwrap_or_else(|| panic!("{tag} not produced"))
            .value
    }

    /// Equal up to floating-point rounding of a handful of operations.
    pub fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small hand-made matrix: grey levels 1..4, counts
    /// `[[2,1,0], [1,0,1], [1,1,0], [1,0,0]]` over lengths 1..3, `N_v = Σ j r_ij`.
    fn example() -> LengthMatrix {
        let mut m = LengthMatrix::default();
        for (level, length, count) in [
            (0, 1, 2),
            (0, 2, 1),
            (1, 1, 1),
            (1, 3, 1),
            (2, 1, 1),
            (2, 2, 1),
            (3, 1, 1),
        ] {
            for _ in 0..count {
                m.add(level, length, u64::from(length));
            }
        }
        m
    }

    #[test]
    fn length_matrix_features_by_hand() {
        let f = example().features(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        // N_s = 8, N_v = 2+2+1+3+1+2+1 = 12; r_.j = [5, 2, 1]; r_i. = [3, 2, 2, 1].
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(f[0], (5.0 + 2.0 / 4.0 + 1.0 / 9.0) / 8.0));
        assert!(close(f[1], (5.0 + 8.0 + 9.0) / 8.0));
        assert!(close(
            f[2],
            (3.0 + 2.0 / 4.0 + 2.0 / 9.0 + 1.0 / 16.0) / 8.0
        ));
        assert!(close(f[3], (3.0 + 8.0 + 18.0 + 16.0) / 8.0));
        assert!(close(f[8], (9.0 + 4.0 + 4.0 + 1.0) / 8.0));
        assert!(close(f[9], 18.0 / 64.0));
        assert!(close(f[10], (25.0 + 4.0 + 1.0) / 8.0));
        assert!(close(f[11], 30.0 / 64.0));
        assert!(close(f[12], 8.0 / 12.0));
        // μ_i = (3 + 4 + 6 + 4) / 8 = 17/8; μ_j = (5 + 4 + 3) / 8 = 1.5.
        let gl_var = [(1.0, 3.0), (2.0, 2.0), (3.0, 2.0), (4.0, 1.0)]
            .iter()
            .map(|(g, c)| (g - 17.0 / 8.0_f64).powi(2) * c / 8.0)
            .sum::<f64>();
        assert!(close(f[13], gl_var));
        assert!(close(f[14], (5.0 * 0.25 + 2.0 * 0.25 + 2.25) / 8.0));
        // Six cells of 1/8 and one of 2/8.
        assert!(close(f[15], 6.0 * (3.0 / 8.0) + 0.25 * 2.0));
        // srhge: Σ r i² / j² = 2 + 1/4 + 4 + 4/9 + 9 + 9/4 + 16.
        assert!(close(
            f[5],
            (2.0 + 0.25 + 4.0 + 4.0 / 9.0 + 9.0 + 2.25 + 16.0) / 8.0
        ));
    }

    #[test]
    fn merging_sums_counts_and_voxels_and_empty_has_no_features() {
        let mut m = example();
        m.merge(&example());
        let f = m.features(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        let g = example().features(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        // Doubling every count keeps the normalised features, doubles the plain sums.
        assert!((f[12] - g[12]).abs() < 1e-12);
        assert!((f[9] - g[9]).abs() < 1e-12);
        assert!((f[8] - 2.0 * g[8]).abs() < 1e-12);
        assert_eq!(LengthMatrix::default().features(&[1.0]), None);
    }

    #[test]
    fn slice_variants_map_by_dimension_in_first_order() {
        use TextureAggregation as A;
        let v = SliceAggregation::requested(&[A::D3Comb, A::D2Avg, A::D2Comb, A::D3Avg]);
        assert_eq!(v, vec![SliceAggregation::D3, SliceAggregation::D2]);
    }

    #[test]
    fn step_stays_in_bounds_and_slices() {
        let dim = (2, 2, 2);
        assert_eq!(step(dim, [0, 0, 0], [0, 0, -1], &(0..2)), None);
        assert_eq!(step(dim, [0, 1, 1], [1, 0, 0], &(0..1)), None);
        assert_eq!(step(dim, [0, 1, 0], [1, -1, 1], &(0..2)), Some([1, 0, 1]));
    }
}
