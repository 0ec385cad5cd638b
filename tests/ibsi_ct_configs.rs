//! IBSI 1 CT phantom, image processing configurations A–E: interpolation, mask
//! resampling, rounding, re-segmentation and every registered feature family against the
//! IBSI 1 reference values.
//!
//! Scenario: load the CT phantom (PAT1, GTV-1) from `shared/data` as NIfTI through the
//! production readers, run [`radscore::pipeline::build_roi`] with each configuration's
//! settings, compute every IBSI family of [`radscore::features::FAMILIES`] and compare with
//! `ibsi1_reference_values_long.csv`:
//!
//! * **Diagnostics** rows (IBSI 1 chapter 5, "Diagnostic features") check each processing
//!   stage: the initial image and ROI, the interpolated image (the whole series resampled
//!   with [`radscore::image::resample`]), the interpolated ROI (the morphological mask of
//!   the [`Roi`]) and the re-segmented ROI (its intensity mask).
//! * **Feature** rows: every tag a family produces must have a reference row and agree
//!   within the IBSI tolerance; every reference row whose tag prefix belongs to a
//!   registered family must be produced. Families are discovered from `ibsi_families()`, so
//!   families added later are checked without editing this file.
//!
//! A row that cannot be matched is listed with its reason in [`SKIPPED`]; skipped rows are
//! printed, never dropped silently. A test fails listing every offending tag with
//! expected value, actual value and tolerance.
//!
//! The data directory is `$RADSCORE_SHARED_DATA`, else `<CARGO_MANIFEST_DIR>/../shared/data`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use common::Reference;
use ndarray::{Array3, Zip};
use radscore::features::{FamilySettings, Feature, Roi, ibsi_families};
use radscore::image::labelmap::{read_nifti_labelmap, read_nifti_volume};
use radscore::image::resample::{self, AlignedGrid, SourceRegion};
use radscore::image::{LesionMask, Volume};

/// Set this environment variable to print every comparison, not only the problems.
const VERBOSE_ENV: &str = "RADSCORE_TEST_VERBOSE";

/// Relative slack for floating-point noise at a tolerance boundary.
const FLOAT_SLACK_REL: f64 = 1e-9;

/// Reference rows that are not compared, with the reason: `(data set or "*", tag, why)`.
const SKIPPED: &[(&str, &str, &str)] = &[
    (
        "*",
        "int_mask_dim_x_init_roi",
        "radscore keeps ROI masks cropped to the lesion; the full-grid mask dimension \
         equals img_dim_x_init_img, which is compared",
    ),
    ("*", "int_mask_dim_y_init_roi", "as int_mask_dim_x_init_roi"),
    ("*", "int_mask_dim_z_init_roi", "as int_mask_dim_x_init_roi"),
    (
        "*",
        "int_mask_dim_x_interp_roi",
        "cropped ROI; equals img_dim_x_interp_img, which is compared",
    ),
    (
        "*",
        "int_mask_dim_y_interp_roi",
        "as int_mask_dim_x_interp_roi",
    ),
    (
        "*",
        "int_mask_dim_z_interp_roi",
        "as int_mask_dim_x_interp_roi",
    ),
    (
        "*",
        "int_mask_dim_x_reseg_roi",
        "cropped ROI; equals img_dim_x_interp_img, which is compared",
    ),
    (
        "*",
        "int_mask_dim_y_reseg_roi",
        "as int_mask_dim_x_reseg_roi",
    ),
    (
        "*",
        "int_mask_dim_z_reseg_roi",
        "as int_mask_dim_x_reseg_roi",
    ),
];

/// Reference rows of registered families that radscore may not produce, with the reason:
/// their absence is not a failure; when they are produced they are compared as usual.
const NOT_PRODUCED: &[(&str, &str)] = &[
    (
        "morph_com",
        "centre-of-mass shift: not implemented at the time of writing",
    ),
    (
        "morph_diam",
        "maximum 3D diameter: not implemented at the time of writing",
    ),
    (
        "morph_pca_maj_axis",
        "PCA axis lengths: not implemented at the time of writing",
    ),
    (
        "morph_pca_min_axis",
        "PCA axis lengths: not implemented at the time of writing",
    ),
    (
        "morph_pca_least_axis",
        "PCA axis lengths: not implemented at the time of writing",
    ),
    (
        "morph_pca_elongation",
        "PCA axis lengths: not implemented at the time of writing",
    ),
    (
        "morph_pca_flatness",
        "PCA axis lengths: not implemented at the time of writing",
    ),
    (
        "morph_vol_dens_aabb",
        "bounding-box densities: not implemented at the time of writing",
    ),
    (
        "morph_area_dens_aabb",
        "bounding-box densities: not implemented at the time of writing",
    ),
    (
        "morph_vol_dens_aee",
        "ellipsoid densities: not implemented at the time of writing",
    ),
    (
        "morph_area_dens_aee",
        "ellipsoid densities: not implemented at the time of writing",
    ),
    (
        "morph_vol_dens_conv_hull",
        "convex hull: not implemented at the time of writing",
    ),
    (
        "morph_area_dens_conv_hull",
        "convex hull: not implemented at the time of writing",
    ),
    (
        "morph_integ_int",
        "integrated intensity: not implemented at the time of writing",
    ),
    (
        "morph_moran_i",
        "Moran's I: not implemented at the time of writing",
    ),
    (
        "morph_geary_c",
        "Geary's C: not implemented at the time of writing",
    ),
];

/// One IBSI configuration: its data set name in the reference table and its settings.
struct Config {
    data_set: &'static str,
    settings: FamilySettings,
}

/// The configurations of IBSI 1 chapter 5, as the product defines them
/// (`radscore::compliance::configs`, transcribed from `05_Reference_data_sets.rst` and
/// `ibsi1_ct_phantom_configs.csv`).
fn config(name: char) -> Config {
    let (data_set, settings) = radscore::compliance::configs::ct_phantom(name)
        .unwrap_or_else(|| panic!("no IBSI configuration {name}"));
    settings
        .validate()
        .unwrap_or_else(|e| panic!("{data_set}: settings invalid: {e}"));
    Config { data_set, settings }
}

/// Why a reference row is skipped, if it is.
fn skip_reason(data_set: &str, tag: &str) -> Option<&'static str> {
    SKIPPED
        .iter()
        .find(|(set, t, _)| (*set == "*" || *set == data_set) && *t == tag)
        .map(|(_, _, why)| *why)
}

/// The CT phantom image and its single lesion, through the production NIfTI readers.
fn load_phantom() -> (Volume, LesionMask) {
    let dir = common::shared_data().join("ibsi1/ct_phantom/nifti");
    let read = |rel: &str| {
        let path = dir.join(rel);
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    };
    let volume = read_nifti_volume(&read("image/phantom.nii.gz"), "phantom.nii.gz")
        .expect("CT phantom image reads");
    let seg = read_nifti_labelmap(&read("mask/mask.nii.gz"), "mask.nii.gz", &volume.grid)
        .expect("CT phantom mask maps onto the image grid");
    assert_eq!(
        seg.lesions.len(),
        1,
        "the phantom mask holds one ROI (GTV-1)"
    );
    let lesion = seg.lesions.into_iter().next().expect("one lesion");
    (volume, lesion)
}

/// Count, mean, minimum and maximum of the intensities inside `mask`.
fn masked_stats(hu: &Array3<f32>, mask: &Array3<bool>) -> [f64; 4] {
    let (mut n, mut sum) = (0usize, 0.0f64);
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    Zip::from(hu).and(mask).for_each(|&v, &m| {
        if m {
            let v = f64::from(v);
            n += 1;
            sum += v;
            min = min.min(v);
            max = max.max(v);
        }
    });
    [n as f64, sum / n as f64, min, max]
}

/// Bounding-box extent of a mask in voxels, `[z, y, x]`.
fn bbox_dims(mask: &Array3<bool>) -> [usize; 3] {
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    for ((z, y, x), _) in mask.indexed_iter().filter(|(_, m)| **m) {
        for (a, v) in [z, y, x].into_iter().enumerate() {
            lo[a] = lo[a].min(v);
            hi[a] = hi[a].max(v);
        }
    }
    std::array::from_fn(|a| if lo[a] > hi[a] { 0 } else { hi[a] - lo[a] + 1 })
}

/// Push `<prefix>_{x,y,z}_<suffix>` rows from `[z, y, x]` values.
fn push_xyz(out: &mut Vec<Feature>, prefix: &str, suffix: &str, zyx: [f64; 3]) {
    for (axis, a) in [("x", 2), ("y", 1), ("z", 0)] {
        out.push(Feature::new(format!("{prefix}_{axis}_{suffix}"), zyx[a]));
    }
}

/// Push the diagnostics of one ROI stage (`init_roi`, `interp_roi`, `reseg_roi`).
fn push_roi_stage(
    out: &mut Vec<Feature>,
    stage: &str,
    hu: &Array3<f32>,
    intensity_mask: &Array3<bool>,
    morph_mask: &Array3<bool>,
) {
    let as_f64 = |d: [usize; 3]| d.map(|v| v as f64);
    push_xyz(
        out,
        "int_mask_bb_dim",
        stage,
        as_f64(bbox_dims(intensity_mask)),
    );
    push_xyz(
        out,
        "morph_mask_bb_dim",
        stage,
        as_f64(bbox_dims(morph_mask)),
    );
    let [n, mean, min, max] = masked_stats(hu, intensity_mask);
    let morph_count = morph_mask.iter().filter(|&&m| m).count() as f64;
    out.push(Feature::new(format!("int_mask_vox_count_{stage}"), n));
    out.push(Feature::new(
        format!("morph_mask_vox_count_{stage}"),
        morph_count,
    ));
    out.push(Feature::new(format!("int_mask_mean_int_{stage}"), mean));
    out.push(Feature::new(format!("int_mask_min_int_{stage}"), min));
    out.push(Feature::new(format!("int_mask_max_int_{stage}"), max));
}

/// Push the diagnostics of a whole image (`init_img` or `interp_img`).
fn push_image(out: &mut Vec<Feature>, stage: &str, hu: &Array3<f32>, spacing_mm: [f64; 3]) {
    let (nz, ny, nx) = hu.dim();
    push_xyz(out, "img_dim", stage, [nz as f64, ny as f64, nx as f64]);
    push_xyz(out, "vox_dim", stage, spacing_mm);
    let all = Array3::from_elem(hu.dim(), true);
    let [_, mean, min, max] = masked_stats(hu, &all);
    out.push(Feature::new(format!("mean_int_{stage}"), mean));
    out.push(Feature::new(format!("min_int_{stage}"), min));
    out.push(Feature::new(format!("max_int_{stage}"), max));
}

/// The whole series resampled as the configuration asks (for the `interp_img` rows).
fn interpolated_series(volume: &Volume, settings: &FamilySettings) -> (Array3<f32>, [f64; 3]) {
    let Some(interpolation) = &settings.interpolation else {
        return (volume.hu.to_f32(), volume.grid.spacing_mm);
    };
    let spacing = volume.grid.spacing_mm;
    let grid = AlignedGrid::align_centres(
        volume.grid.shape_vox,
        spacing,
        interpolation.target_spacing_mm(spacing),
    );
    let window = std::array::from_fn(|a| 0..grid.shape_vox[a]);
    let whole = volume.hu.to_f32();
    let source = SourceRegion {
        voxels: whole.view(),
        offset_zyx: [0, 0, 0],
    };
    let mut hu = resample::resample_image(source, &grid, &window, interpolation.image_method);
    if interpolation.round_intensities {
        hu.mapv_inplace(f32::round_ties_even);
    }
    (hu, grid.spacing_mm)
}

/// Every `Diagnostics-*` value radscore can compute for a configuration.
fn diagnostics(
    volume: &Volume,
    lesion: &LesionMask,
    roi: &Roi,
    settings: &FamilySettings,
) -> Vec<Feature> {
    let mut out = Vec::new();
    push_image(
        &mut out,
        "init_img",
        &volume.hu.to_f32(),
        volume.grid.spacing_mm,
    );
    let (interp, spacing) = interpolated_series(volume, settings);
    push_image(&mut out, "interp_img", &interp, spacing);

    // Initial ROI: the lesion's own crop of the series.
    let [o, _] = lesion.bbox_zyx();
    let (dz, dy, dx) = lesion.mask.dim();
    let hu = Array3::from_shape_fn((dz, dy, dx), |(z, y, x)| {
        volume.hu.at([o[0] + z, o[1] + y, o[2] + x])
    });
    push_roi_stage(&mut out, "init_roi", &hu, &lesion.mask, &lesion.mask);

    // Before re-segmentation the intensity mask is the (interpolated) morphological mask.
    push_roi_stage(
        &mut out,
        "interp_roi",
        &roi.hu,
        &roi.morph_mask,
        &roi.morph_mask,
    );
    push_roi_stage(
        &mut out,
        "reseg_roi",
        &roi.hu,
        &roi.intensity_mask,
        &roi.morph_mask,
    );
    out
}

/// Every registered family on the ROI. A family that fails or whose `names()` disagree
/// with what it computes becomes a problem; tag prefixes (`morph`, `cm`, …) of each
/// family are returned so that missing reference rows can be attributed.
fn compute_families(
    roi: &Roi,
    settings: &FamilySettings,
    problems: &mut Vec<String>,
) -> (Vec<Feature>, BTreeSet<String>) {
    let mut features = Vec::new();
    let mut prefixes = BTreeSet::new();
    for family in ibsi_families() {
        let names = (family.names)(settings);
        prefixes.extend(
            names
                .iter()
                .filter_map(|n| n.split('_').next())
                .map(String::from),
        );
        match (family.compute)(roi, settings) {
            Ok(produced) => {
                let got: Vec<&str> = produced.iter().map(|f| f.name.as_str()).collect();
                if got != names {
                    problems.push(format!("{}: names() differs from compute()", family.name));
                }
                features.extend(produced);
            }
            Err(e) => problems.push(format!("family {} failed: {e}", family.name)),
        }
    }
    (features, prefixes)
}

/// Tallies of one configuration's comparison.
#[derive(Debug, Default)]
struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
    /// Reference rows of families this build does not register (not compared).
    unregistered: usize,
}

/// Compare produced values with the reference rows; returns the tally and the problems.
fn compare(
    data_set: &str,
    produced: &[Feature],
    covered_prefixes: &BTreeSet<String>,
    problems: &mut Vec<String>,
) -> Tally {
    let refs = common::references(data_set);
    let mut by_tag: BTreeMap<&str, Vec<&Reference>> = BTreeMap::new();
    for r in &refs {
        by_tag.entry(r.tag.as_str()).or_default().push(r);
    }
    let values: BTreeMap<&str, f64> = produced
        .iter()
        .map(|f| (f.name.as_str(), f.value))
        .collect();
    let mut tally = Tally::default();

    let unreferenced = common::not_standardised(data_set);
    for f in produced {
        if unreferenced.contains(&f.name) {
            println!(
                "{data_set}: {} = {} (not standardised: no reference)",
                f.name, f.value
            );
        } else if !by_tag.contains_key(f.name.as_str()) {
            tally.failed += 1;
            problems.push(format!(
                "{}: produced ({}) but has no reference row",
                f.name, f.value
            ));
        }
    }
    for r in &refs {
        if let Some(why) = skip_reason(data_set, &r.tag) {
            tally.skipped += 1;
            let got = values
                .get(r.tag.as_str())
                .map_or("not produced".into(), |v| v.to_string());
            println!(
                "{data_set}: SKIP {} (reference {}, {got}): {why}",
                r.tag, r.value
            );
            continue;
        }
        let tol = r.effective_tolerance();
        if std::env::var_os(VERBOSE_ENV).is_some() {
            println!(
                "{data_set}: {} = {:?} (reference {} ± {tol})",
                r.tag,
                values.get(r.tag.as_str()),
                r.value
            );
        }
        match values.get(r.tag.as_str()) {
            Some(&v) if (v - r.value).abs() <= tol + FLOAT_SLACK_REL * r.value.abs() => {
                tally.passed += 1;
            }
            Some(&v) => {
                tally.failed += 1;
                problems.push(format!(
                    "{}: expected {} ± {tol}, got {v} (difference {:+.4e})",
                    r.tag,
                    r.value,
                    v - r.value
                ));
            }
            None => {
                let prefix = r.tag.split('_').next().unwrap_or_default();
                let required = r.is_diagnostic() || covered_prefixes.contains(prefix);
                if let Some((_, why)) = NOT_PRODUCED.iter().find(|(t, _)| *t == r.tag) {
                    tally.skipped += 1;
                    println!(
                        "{data_set}: NOT PRODUCED {} (reference {}): {why}",
                        r.tag, r.value
                    );
                } else if required {
                    tally.failed += 1;
                    problems.push(format!(
                        "{}: reference row ({}) was not produced",
                        r.tag, r.value
                    ));
                } else {
                    tally.unregistered += 1;
                }
            }
        }
    }
    tally
}

/// Run one configuration end to end and fail with every problem listed.
fn check_config(name: char) {
    let started = Instant::now();
    let Config { data_set, settings } = config(name);
    let (volume, lesion) = load_phantom();
    let roi = radscore::pipeline::build_roi(&volume, &lesion, &settings)
        .unwrap_or_else(|e| panic!("{data_set}: build_roi failed: {e}"));

    let mut problems = Vec::new();
    let (mut produced, prefixes) = compute_families(&roi, &settings, &mut problems);
    produced.extend(diagnostics(&volume, &lesion, &roi, &settings));
    let tally = compare(data_set, &produced, &prefixes, &mut problems);

    println!(
        "{data_set}: {} passed, {} failed, {} skipped, {} rows of unregistered families, {:.1} s",
        tally.passed,
        tally.failed,
        tally.skipped,
        tally.unregistered,
        started.elapsed().as_secs_f64()
    );
    assert!(
        problems.is_empty(),
        "{data_set}: {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Configuration A: 2D, no interpolation, range re-segmentation [−500, 400] HU.
#[test]
fn config_a_matches_ibsi_reference() {
    check_config('A');
}

/// Configuration B: 2D, bilinear in-plane interpolation to 2 mm, rounding, bilinear mask.
#[test]
fn config_b_matches_ibsi_reference() {
    check_config('B');
}

/// Configuration C: 3D, trilinear interpolation to 2 mm, range [−1000, 400] HU.
#[test]
fn config_c_matches_ibsi_reference() {
    check_config('C');
}

/// Configuration D: 3D, trilinear interpolation, 3σ outlier filtering, no range.
#[test]
fn config_d_matches_ibsi_reference() {
    check_config('D');
}

/// Configuration E: 3D, tricubic B-spline interpolation, range then 3σ outlier filtering.
#[test]
fn config_e_matches_ibsi_reference() {
    check_config('E');
}
