//! Undecimated (stationary) wavelet decomposition (PyRadiomics image type `Wavelet`).
//!
//! PyRadiomics (`imageoperations._swt3`) pads every odd-length axis by one voxel copied
//! from the start of the axis ("wrap"), then runs PyWavelets' `swtn` at level 1 along x,
//! y and z. Each axis gets the low-pass (`L`, decomposition low filter) or high-pass
//! (`H`) filter, giving the 8 bands `LLL` … `HHH` named in x, y, z order. With
//! `start_level` or `level` > 1 the `LLL` approximation is decomposed again, *with the
//! same, not upsampled, filters* (PyRadiomics calls `swtn(level=1)` each time; not the
//! à-trous scheme of IBSI 2), and the padding is cut off at the end. With `force2D` only x
//! and y are filtered and bands have two letters (`LH`).
//!
//! One axis of one level, with the filter `f` of length `F`, periodic over the (padded)
//! axis length `N` (PyWavelets' `swt` convolution):
//! ```text
//! y[i] = Σ_{j<F} f[j] · x[(i + ⌊F/2⌋ − j) mod N]
//! ```
//! Where the lesion window plus [`margin_vox`] stays inside the image, the periodic wrap
//! never reaches the wanted voxels and radscore filters only that window; an axis whose
//! window reaches the image border is filtered whole, so the wrap is exact.

// LIMITATION: filtered intensities are stored as f32; Haar on integer images yields exact ties and bin-edge values that PyRadiomics' f64 rounding noise assigns differently (see tests/pyradiomics_filters.rs).
use std::f64::consts::FRAC_1_SQRT_2;

use ndarray::{Array3, Axis, concatenate, s};

use super::map_lines;

/// The highest `start_level + level` accepted (PyRadiomics has no limit; 8 levels of a
/// filter of length 12 already reach 96 voxels).
pub const MAX_LEVELS: u32 = 8;

/// PyWavelets' decomposition filters `(name, dec_lo, dec_hi)` of the wavelets radscore
/// supports, as `pywt.Wavelet(name).dec_lo / .dec_hi` (PyWavelets 1.9).
pub const WAVELETS: &[(&str, &[f64], &[f64])] = &[
    (
        "haar",
        &[FRAC_1_SQRT_2, FRAC_1_SQRT_2],
        &[-FRAC_1_SQRT_2, FRAC_1_SQRT_2],
    ),
    (
        "db1",
        &[FRAC_1_SQRT_2, FRAC_1_SQRT_2],
        &[-FRAC_1_SQRT_2, FRAC_1_SQRT_2],
    ),
    (
        "db2",
        &[
            -0.12940952255126037,
            0.2241438680420134,
            0.8365163037378079,
            0.48296291314453416,
        ],
        &[
            -0.48296291314453416,
            0.8365163037378079,
            -0.2241438680420134,
            -0.12940952255126037,
        ],
    ),
    (
        "db3",
        &[
            0.03522629188570953,
            -0.08544127388202666,
            -0.13501102001025458,
            0.45987750211849154,
            0.8068915093110925,
            0.33267055295008263,
        ],
        &[
            -0.33267055295008263,
            0.8068915093110925,
            -0.45987750211849154,
            -0.13501102001025458,
            0.08544127388202666,
            0.03522629188570953,
        ],
    ),
    (
        "db4",
        &[
            -0.010597401785069032,
            0.0328830116668852,
            0.030841381835560764,
            -0.18703481171909309,
            -0.027983769416859854,
            0.6308807679298589,
            0.7148465705529157,
            0.2303778133088965,
        ],
        &[
            -0.2303778133088965,
            0.7148465705529157,
            -0.6308807679298589,
            -0.027983769416859854,
            0.18703481171909309,
            0.030841381835560764,
            -0.0328830116668852,
            -0.010597401785069032,
        ],
    ),
    (
        "sym2",
        &[
            -0.12940952255092145,
            0.22414386804185735,
            0.836516303737469,
            0.48296291314469025,
        ],
        &[
            -0.48296291314469025,
            0.836516303737469,
            -0.22414386804185735,
            -0.12940952255092145,
        ],
    ),
    (
        "sym3",
        &[
            0.035226291882100656,
            -0.08544127388224149,
            -0.13501102001039084,
            0.4598775021193313,
            0.8068915093133388,
            0.3326705529509569,
        ],
        &[
            -0.3326705529509569,
            0.8068915093133388,
            -0.4598775021193313,
            -0.13501102001039084,
            0.08544127388224149,
            0.035226291882100656,
        ],
    ),
    (
        "sym4",
        &[
            -0.07576571478927333,
            -0.02963552764599851,
            0.49761866763201545,
            0.8037387518059161,
            0.29785779560527736,
            -0.09921954357684722,
            -0.012603967262037833,
            0.0322231006040427,
        ],
        &[
            -0.0322231006040427,
            -0.012603967262037833,
            0.09921954357684722,
            0.29785779560527736,
            -0.8037387518059161,
            0.49761866763201545,
            0.02963552764599851,
            -0.07576571478927333,
        ],
    ),
    (
        "coif1",
        &[
            -0.015655728135791993,
            -0.07273261951252645,
            0.3848648468648578,
            0.8525720202116004,
            0.3378976624574818,
            -0.07273261951252645,
        ],
        &[
            0.07273261951252645,
            0.3378976624574818,
            -0.8525720202116004,
            0.3848648468648578,
            0.07273261951252645,
            -0.015655728135791993,
        ],
    ),
    (
        "coif2",
        &[
            -0.000720549445520347,
            -0.0018232088709110323,
            0.005611434819368834,
            0.02368017194684777,
            -0.05943441864643109,
            -0.07648859907828076,
            0.4170051844232391,
            0.8127236354494135,
            0.3861100668227629,
            -0.0673725547237256,
            -0.04146493678687178,
            0.01638733646320364,
        ],
        &[
            -0.01638733646320364,
            -0.04146493678687178,
            0.0673725547237256,
            0.3861100668227629,
            -0.8127236354494135,
            0.4170051844232391,
            0.07648859907828076,
            -0.05943441864643109,
            -0.02368017194684777,
            0.005611434819368834,
            0.0018232088709110323,
            -0.000720549445520347,
        ],
    ),
];

/// PyRadiomics' default wavelet (`wavelet: coif1`).
pub const DEFAULT_WAVELET: &str = "coif1";

/// The 8 bands in PyRadiomics' output order (PyWavelets' key order, `a` → `L`, `d` → `H`),
/// the approximation `LLL` last.
pub const BANDS: [&str; 8] = ["LLH", "LHL", "LHH", "HLL", "HLH", "HHL", "HHH", "LLL"];
/// The 4 in-plane bands of PyRadiomics' `force2D` decomposition (x and y only), `LL` last.
pub const BANDS_2D: [&str; 4] = ["LH", "HL", "HH", "LL"];

/// PyRadiomics' image type name: `wavelet-LHH` at level 1, `wavelet2-LHH` beyond.
pub fn image_type(level: u32, band: &str) -> String {
    if level == 1 {
        format!("wavelet-{band}")
    } else {
        format!("wavelet{level}-{band}")
    }
}

fn filters(wavelet: &str) -> Option<(&'static [f64], &'static [f64])> {
    WAVELETS
        .iter()
        .find(|(name, _, _)| *name == wavelet)
        .map(|(_, lo, hi)| (*lo, *hi))
}

/// Check a wavelet image's parameters; the error names the fault.
pub fn validate(wavelet: &str, start_level: u32, level: u32, band: &str) -> Result<(), String> {
    if filters(wavelet).is_none() {
        let known: Vec<&str> = WAVELETS.iter().map(|w| w.0).collect();
        // LIMITATION: only the wavelets in WAVELETS are built in (PyWavelets has ~100); others are refused by name.
        return Err(format!(
            "wavelet '{wavelet}' is not supported; supported: {}",
            known.join(", ")
        ));
    }
    if level == 0 || start_level + level > MAX_LEVELS {
        return Err(format!(
            "level must be ≥ 1 and start_level + level ≤ {MAX_LEVELS}, got {start_level} + {level}"
        ));
    }
    if !(2..=3).contains(&band.len()) || !band.chars().all(|c| c == 'L' || c == 'H') {
        return Err(format!(
            "band must be three of L/H (x, y, z), or two (x, y) for PyRadiomics' force2D, \
             got '{band}'"
        ));
    }
    Ok(())
}

/// Voxels of context the decomposition reads on each side after `levels` levels.
pub fn margin_vox(wavelet: &str, levels: u32) -> usize {
    filters(wavelet).map_or(0, |(lo, _)| lo.len() * levels as usize)
}

/// One band of the decomposition of `image`. `whole[a]`: axis `a` of `image` is the
/// image's whole axis (padded and wrapped as PyRadiomics does); otherwise it is a window
/// whose outer [`margin_vox`] voxels are not valid.
pub fn band(
    image: &Array3<f64>,
    whole: [bool; 3],
    wavelet: &str,
    start_level: u32,
    level: u32,
    band: &str,
) -> Result<Array3<f64>, String> {
    validate(wavelet, start_level, level, band)?;
    let (lo, hi) = filters(wavelet).expect("validated");
    let approximation = &"LLL"[..band.len()];
    let shape = image.shape().to_vec();

    let mut data = image.clone();
    for axis in 0..3 {
        if whole[axis] && shape[axis] % 2 == 1 {
            let first = data.slice_axis(Axis(axis), (0..1).into()).to_owned();
            data = concatenate(Axis(axis), &[data.view(), first.view()])
                .expect("same shape off the axis");
        }
    }
    for _ in 0..start_level {
        data = decompose(&data, approximation, lo, hi);
    }
    for _ in 1..level {
        data = decompose(&data, approximation, lo, hi);
    }
    let out = decompose(&data, band, lo, hi);
    Ok(out.slice(s![..shape[0], ..shape[1], ..shape[2]]).to_owned())
}

/// One level: the band's filter along x, then y, then z (PyWavelets' axis order); a
/// two-letter band filters x and y only.
fn decompose(data: &Array3<f64>, band: &str, lo: &[f64], hi: &[f64]) -> Array3<f64> {
    let mut out = data.clone();
    for (c, axis) in band.chars().zip([2, 1, 0]) {
        let f = if c == 'L' { lo } else { hi };
        out = map_lines(&out, axis, |x, y| periodic_convolution(x, f, y));
    }
    out
}

/// `y[i] = Σ_j f[j] · x[(i + F/2 − j) mod N]`.
fn periodic_convolution(x: &[f64], f: &[f64], y: &mut [f64]) {
    let n = x.len();
    let shift = f.len() / 2;
    for (i, out) in y.iter_mut().enumerate() {
        let mut sum = 0.0;
        for (j, fj) in f.iter().enumerate() {
            // (i + shift − j) mod n without going negative.
            let k = (i + shift + n * f.len() - j) % n;
            sum += fj * x[k];
        }
        *out = sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haar_bands_of_a_constant() {
        // Low pass of a constant c is c·√2 per axis; any high pass is 0.
        let image = Array3::from_elem((3, 4, 5), 2.0);
        let lll = band(&image, [true; 3], "haar", 0, 1, "LLL").unwrap();
        assert!(
            lll.iter()
                .all(|v| (v - 2.0 * 2f64.sqrt().powi(3)).abs() < 1e-12)
        );
        let hll = band(&image, [true; 3], "haar", 0, 1, "HLL").unwrap();
        assert!(hll.iter().all(|v| v.abs() < 1e-12));
        assert_eq!(hll.dim(), (3, 4, 5));
    }

    #[test]
    fn window_agrees_with_the_whole_image_inside_the_margin() {
        let image = Array3::from_shape_fn((40, 40, 40), |(z, y, x)| {
            ((z * 7 + y * 13 + x * 3) % 11) as f64
        });
        let whole = band(&image, [true; 3], "coif1", 0, 2, "HLH").unwrap();
        let window = image.slice(s![2..38, 2..38, 2..38]).to_owned();
        let part = band(&window, [false; 3], "coif1", 0, 2, "HLH").unwrap();
        // Valid window voxels: margin (12) from each end, i.e. window 12..24 = image 14..26.
        assert_eq!(margin_vox("coif1", 2), 12);
        let a = whole.slice(s![14..26, 14..26, 14..26]);
        let b = part.slice(s![12..24, 12..24, 12..24]);
        assert!(a.iter().zip(b.iter()).all(|(p, q)| (p - q).abs() < 1e-12));
    }

    #[test]
    fn refuses_unknown_parameters() {
        assert!(
            validate("bior1.3", 0, 1, "LLH")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(validate("coif1", 0, 0, "LLH").is_err());
        assert!(validate("coif1", 0, 1, "LXH").is_err());
    }
}
