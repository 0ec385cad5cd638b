//! IBSI 1 reference-value tests for every feature family registered in
//! [`radscore::features::FAMILIES`].
//!
//! Scenario: load an IBSI 1 reference data set from `shared/data` (NIfTI), compute every
//! registered family with the data set's IBSI configuration and compare every produced
//! feature with every row of `ibsi1_reference_values_long.csv` that carries its tag.
//! The crop keeps the pipeline's context margin around the mask, because local intensity
//! features average image voxels outside the ROI (IBSI 3.2).
//!
//! * Digital phantom (IBSI 1 chapter 3 tables): no discretisation, no re-segmentation,
//!   all six GLCM aggregations.
//! * CT phantom, configuration A (IBSI manual §5): no interpolation, re-segmentation to
//!   [−500, 400] HU of the intensity mask only, FBS 25 HU from −500 HU, 2D and 2.5D GLCM.
//!   The intensity-volume histogram uses the HU themselves ("none (discrete HU)").
//!
//! A test fails, naming each offending tag with expected, actual and tolerance, when a
//! value is out of tolerance, when a produced tag has no reference row, or when a
//! reference row of a family we implement was not produced. Features the table lists
//! without a value ("not standardized") are printed, not compared.
//!
//! The data directory is `$RADSCORE_SHARED_DATA`, else `<CARGO_MANIFEST_DIR>/../shared/data`.

mod common;

use std::collections::BTreeMap;

use common::{Reference, read_nifti};
use ndarray::Array3;
use radscore::features::settings::TextureAggregation;
use radscore::features::{Discretisation, FamilySettings, Feature, Roi};
use radscore::pipeline::ROI_CONTEXT_MARGIN_MM;

/// Relative slack for floating-point noise at a tolerance boundary (values computed in
/// `f64` from integer data; far below any IBSI tolerance).
const FLOAT_SLACK_REL: f64 = 1e-9;

/// Re-segmentation range of configuration A, HU (IBSI manual §5, table of configurations;
/// `ibsi1_ct_phantom_configs.csv`).
const CONFIG_A_RESEGMENT_HU: [f64; 2] = [-500.0, 400.0];

/// Fixed bin size of configuration A, HU (IBSI manual §5).
const CONFIG_A_BIN_WIDTH_HU: f64 = 25.0;

/// GLCM distance of every IBSI 1 configuration (IBSI manual §5), Chebyshev voxels.
const IBSI_GLCM_DISTANCE_VOX: u32 = 1;

/// Tag prefixes of the families this test covers; reference rows with these prefixes
/// must be produced.
const FAMILY_PREFIXES: &[&str] = &[
    "morph_", "stat_", "cm_", "loc_", "ih_", "ivh_", "rlm_", "szm_", "dzm_", "ngt_", "ngl_",
];

/// Image and mask of a data set, cropped to the mask's bounding box plus the pipeline's
/// context margin ([`ROI_CONTEXT_MARGIN_MM`] per axis, clipped to the image), where the
/// masks are false.
fn load_roi(dir: &str, image: &str, mask: &str, resegment_hu: Option<[f64; 2]>) -> Roi {
    let (hu, spacing_mm) = read_nifti(&format!("{dir}/nifti/image/{image}"));
    let (mask, mask_spacing) = read_nifti(&format!("{dir}/nifti/mask/{mask}"));
    assert_eq!(hu.dim(), mask.dim(), "{dir}: image and mask shapes differ");
    assert_eq!(
        spacing_mm, mask_spacing,
        "{dir}: image and mask spacing differ"
    );
    let mask = mask.mapv(|m| m > 0.5);
    let mut lo = [usize::MAX; 3];
    let mut hi = [0; 3];
    for ((z, y, x), _) in mask.indexed_iter().filter(|(_, m)| **m) {
        for (a, v) in [z, y, x].into_iter().enumerate() {
            lo[a] = lo[a].min(v);
            hi[a] = hi[a].max(v);
        }
    }
    assert!(lo[0] <= hi[0], "{dir}: empty mask");
    let shape = [hu.dim().0, hu.dim().1, hu.dim().2];
    for a in 0..3 {
        let margin = (ROI_CONTEXT_MARGIN_MM / spacing_mm[a]).ceil() as usize;
        lo[a] = lo[a].saturating_sub(margin);
        hi[a] = (hi[a] + margin).min(shape[a] - 1);
    }
    // `s![]` expands to code with `allow(unsafe_code)`, which the crate forbids.
    let dim = (hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1);
    let at = |(z, y, x): (usize, usize, usize)| [z + lo[0], y + lo[1], x + lo[2]];
    let hu = Array3::from_shape_fn(dim, |i| hu[at(i)]);
    let morph_mask = Array3::from_shape_fn(dim, |i| mask[at(i)]);
    let mut intensity_mask = morph_mask.clone();
    if let Some([min, max]) = resegment_hu {
        ndarray::Zip::from(&mut intensity_mask)
            .and(&hu)
            .for_each(|m, &v| {
                *m = *m && (min..=max).contains(&f64::from(v));
            });
    }
    Roi {
        hu,
        intensity_mask,
        morph_mask,
        spacing_mm,
    }
}

/// Compute every family the settings enable (all of [`radscore::features::FAMILIES`]),
/// checking that each family's `names` lists exactly what its `compute` returns.
fn compute(roi: &Roi, settings: &FamilySettings) -> Vec<Feature> {
    let mut out = Vec::new();
    for family in radscore::features::enabled(settings) {
        let name = family.name;
        let started = std::time::Instant::now();
        let features = (family.compute)(roi, settings).unwrap_or_else(|e| panic!("{name}: {e}"));
        println!(
            "{name}: {} features in {:?}",
            features.len(),
            started.elapsed()
        );
        let produced: Vec<&str> = features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            produced,
            (family.names)(settings),
            "{name}: names() differs from compute()"
        );
        out.extend(features);
    }
    out
}

/// Compare features with the reference rows; panics listing every problem.
fn check(data_set: &str, features: &[Feature]) {
    // Diagnostics rows describe processing steps, not features.
    let refs: Vec<Reference> = common::references(data_set)
        .into_iter()
        .filter(|r| !r.is_diagnostic())
        .collect();
    let unreferenced = common::not_standardised(data_set);
    let mut by_tag: BTreeMap<&str, Vec<&Reference>> = BTreeMap::new();
    for r in &refs {
        by_tag.entry(r.tag.as_str()).or_default().push(r);
    }
    let mut problems = Vec::new();
    let mut passed = 0;
    let mut passed_by_prefix: BTreeMap<&str, usize> = BTreeMap::new();
    for f in features {
        let Some(rows) = by_tag.get(f.name.as_str()) else {
            if unreferenced.contains(&f.name) {
                println!(
                    "{data_set}: {} = {} (not standardised: no reference)",
                    f.name, f.value
                );
                continue;
            }
            problems.push(format!(
                "{}: produced ({}) but has no reference row",
                f.name, f.value
            ));
            continue;
        };
        for r in rows {
            let tol = r.effective_tolerance();
            let slack = FLOAT_SLACK_REL * r.value.abs();
            if (f.value - r.value).abs() <= tol + slack {
                passed += 1;
                if let Some(p) = FAMILY_PREFIXES.iter().find(|p| f.name.starts_with(**p)) {
                    *passed_by_prefix.entry(p).or_default() += 1;
                }
            } else {
                problems.push(format!(
                    "{}: expected {} ± {tol}, got {} (difference {:+.4e})",
                    f.name,
                    r.value,
                    f.value,
                    f.value - r.value
                ));
            }
        }
    }
    let produced: Vec<&str> = features.iter().map(|f| f.name.as_str()).collect();
    for r in &refs {
        let covered = FAMILY_PREFIXES.iter().any(|p| r.tag.starts_with(p));
        if covered && !produced.contains(&r.tag.as_str()) {
            problems.push(format!(
                "{}: reference row ({}) was not produced",
                r.tag, r.value
            ));
        }
    }
    println!(
        "{data_set}: {passed} reference comparisons passed, {} problems; passed by prefix: \
         {passed_by_prefix:?}",
        problems.len()
    );
    assert!(
        problems.is_empty(),
        "{data_set}: {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// All six GLCM aggregations, for the digital phantom.
const ALL_AGGREGATIONS: [TextureAggregation; 6] = [
    TextureAggregation::D2Avg,
    TextureAggregation::D2Comb,
    TextureAggregation::D25Avg,
    TextureAggregation::D25Comb,
    TextureAggregation::D3Avg,
    TextureAggregation::D3Comb,
];

/// The digital phantom (74 voxels, 2 mm) against the IBSI chapter 3 reference values.
#[test]
fn digital_phantom_matches_ibsi_reference() {
    let roi = load_roi(
        "ibsi1/digital_phantom",
        "phantom.nii.gz",
        "mask.nii.gz",
        None,
    );
    assert_eq!(
        roi.morph_mask.iter().filter(|&&m| m).count(),
        74,
        "phantom mask voxel count"
    );
    // IVH "none": the phantom's intensities are already discrete (configs CSV).
    let settings = digital_phantom_settings();
    check("digital_phantom", &compute(&roi, &settings));
}

/// The digital phantom's IBSI settings (chapter 3 tables), every feature.
fn digital_phantom_settings() -> FamilySettings {
    FamilySettings {
        families: radscore::features::ibsi_families()
            .map(|f| f.name.to_string())
            .collect(),
        ivh_discretisation: None,
        ngldm_alpha: 0,
        resegment_range_hu: None,
        discretisation: Discretisation::None,
        texture_distance_vox: IBSI_GLCM_DISTANCE_VOX,
        texture_aggregations: ALL_AGGREGATIONS.to_vec(),
        min_voxels: 1,
        interpolation: None,
        resegment_outlier_sigma: None,
        voxel_array_shift: None,
        image_filters: Default::default(),
        normalisation: None,
        features: None,
    }
}

/// A feature selection (`features`, what a PyRadiomics parameter file maps to) outputs
/// exactly the selected tags, in family order, with the values of the full computation,
/// and those values still meet the IBSI references; families and morphology parts that no
/// selected feature needs are not run (their failure would fail the whole lesion).
#[test]
fn feature_selection_outputs_the_full_runs_values_for_its_tags() {
    let roi = load_roi(
        "ibsi1/digital_phantom",
        "phantom.nii.gz",
        "mask.nii.gz",
        None,
    );
    let full_settings = digital_phantom_settings();
    let full = radscore::features::compute_all(&roi, &full_settings).unwrap();
    // PyRadiomics' shape class plus one feature of three other families, listed out of
    // output order.
    let selected = [
        "cm_contrast_3D_avg",
        "morph_volume",
        "morph_vol_approx",
        "morph_area_mesh",
        "morph_av",
        "morph_sphericity",
        "morph_diam",
        "morph_pca_maj_axis",
        "morph_pca_min_axis",
        "morph_pca_least_axis",
        "morph_pca_elongation",
        "morph_pca_flatness",
        "stat_mean",
        "szm_z_perc_3D",
    ];
    let mut settings = full_settings.clone();
    settings.features = Some(selected.iter().map(|t| t.to_string()).collect());
    let part = radscore::features::compute_all(&roi, &settings).unwrap();
    let expected: Vec<&Feature> = full
        .iter()
        .filter(|f| selected.contains(&f.name.as_str()))
        .collect();
    assert_eq!(expected.len(), selected.len(), "every selected tag exists");
    assert_eq!(part.iter().collect::<Vec<_>>(), expected);
    assert_eq!(
        radscore::features::feature_names(&settings),
        expected.iter().map(|f| f.name.clone()).collect::<Vec<_>>()
    );
    let refs = common::references("digital_phantom");
    for f in &part {
        let row = refs
            .iter()
            .find(|r| r.tag == f.name)
            .unwrap_or_else(|| panic!("{} has a reference row", f.name));
        let tol = row.effective_tolerance() + FLOAT_SLACK_REL * row.value.abs();
        assert!(
            (f.value - row.value).abs() <= tol,
            "{} = {} vs {row:?}",
            f.name,
            f.value
        );
    }

    // A constant-intensity ROI: Moran's I and Geary's C are undefined, so the full
    // morphology family fails, but a selection without them succeeds.
    let mut flat = roi.clone();
    flat.hu.fill(1.0);
    let mut morph_only = full_settings.clone();
    morph_only.families = vec!["morphology".into()];
    let err = radscore::features::compute_all(&flat, &morph_only).unwrap_err();
    assert!(err.to_string().contains("morph_moran_i"), "{err}");
    morph_only.features = Some(vec!["morph_volume".into(), "morph_diam".into()]);
    let ok = radscore::features::compute_all(&flat, &morph_only).unwrap();
    let names: Vec<&str> = ok.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["morph_volume", "morph_diam"]);

    // A tag no enabled family produces, or an empty selection, is refused by name.
    morph_only.features = Some(vec!["morph_volume".into(), "cm_contrast_3D_avg".into()]);
    let refused = morph_only.validate().unwrap_err();
    assert!(refused.contains("'cm_contrast_3D_avg'"), "{refused}");
    morph_only.features = Some(vec![]);
    assert!(
        morph_only
            .validate()
            .unwrap_err()
            .contains("empty selection")
    );
}

/// The CT phantom (PAT1 GTV-1) with configuration A against the IBSI reference values.
#[test]
fn ct_phantom_config_a_matches_ibsi_reference() {
    let roi = load_roi(
        "ibsi1/ct_phantom",
        "phantom.nii.gz",
        "mask.nii.gz",
        Some(CONFIG_A_RESEGMENT_HU),
    );
    let settings = FamilySettings {
        families: radscore::features::ibsi_families()
            .map(|f| f.name.to_string())
            .collect(),
        // IVH "none (discrete HU)" (configs CSV, config A): G = the re-segmentation range.
        ivh_discretisation: None,
        ngldm_alpha: 0,
        resegment_range_hu: Some(CONFIG_A_RESEGMENT_HU),
        discretisation: Discretisation::FixedBinSize {
            bin_width_hu: CONFIG_A_BIN_WIDTH_HU,
            lower_bound_hu: Some(CONFIG_A_RESEGMENT_HU[0]),
            pyradiomics_edges: false,
        },
        texture_distance_vox: IBSI_GLCM_DISTANCE_VOX,
        texture_aggregations: ALL_AGGREGATIONS[..4].to_vec(),
        min_voxels: 1,
        interpolation: None,
        resegment_outlier_sigma: None,
        voxel_array_shift: None,
        image_filters: Default::default(),
        normalisation: None,
        features: None,
    };
    check("config_A", &compute(&roi, &settings));
}
