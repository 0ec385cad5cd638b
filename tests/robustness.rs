//! `radscore::robustness` end to end on synthetic cases: deterministic with a seed,
//! identical raters give ICC 1, the CSV / PNG outputs are written, progress counts
//! perturbations and a stop request ends a run.

use std::path::Path;

use radscore::features::ExtractionSettings;
use radscore::pipeline::LesionRequest;
use radscore::robustness::{
    self, PerturbationLimits, RobustnessCase, RobustnessClass, RobustnessOptions,
};

/// Two synthetic patients with two pleural lesions each, loaded like the CLI loads them.
fn cases(dir: &Path) -> Vec<RobustnessCase> {
    [2u64, 4]
        .iter()
        .map(|&seed| {
            let out = dir.join(format!("case_{seed}"));
            let case = radscore::demo::generate(&out, seed, &Default::default()).unwrap();
            let lesions = case
                .lesions
                .iter()
                .map(|l| LesionRequest {
                    label: u32::from(l.label),
                    location: l.location,
                })
                .collect();
            robustness::cases::load_case(
                format!("case-{seed}"),
                &out.join("series"),
                &out.join("lesions.nii.gz"),
                lesions,
            )
            .unwrap()
        })
        .collect()
}

/// The sums of squares cancel to the last few bits of f64.
const ROUNDING: f64 = 1e-12;

fn options(limits: PerturbationLimits) -> RobustnessOptions {
    RobustnessOptions {
        perturbations: 3,
        seed: 5,
        limits,
        ..Default::default()
    }
}

#[test]
fn same_seed_same_report_and_outputs_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let cases = cases(dir.path());
    let settings = ExtractionSettings::bundled();
    let opts = options(PerturbationLimits::default());

    let a = robustness::analyse(&cases, &settings, &opts, &mut |_| {}).unwrap();
    let b = robustness::analyse(&cases, &settings, &opts, &mut |_| {}).unwrap();
    assert_eq!(a, b, "the same seed must give the same report");
    assert!(a.lesions.iter().any(|l| l.status == "included"));
    assert!(a.features.iter().any(|r| r.icc.is_some()));

    let mut csv = Vec::new();
    a.write_csv(&mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("location,feature,n_lesions,n_perturbations,icc,"));
    assert_eq!(csv.lines().count(), a.features.len() + 1);

    let png = dir.path().join("robustness.png");
    robustness::heatmap::write_png(&a, &png).unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
}

#[test]
fn unperturbed_raters_agree_perfectly() {
    let dir = tempfile::tempdir().unwrap();
    let none = PerturbationLimits {
        max_rotation_deg: 0.0,
        max_translation_vox: 0.0,
        noise_sd_hu: 0.0,
        volume_adaptation: false,
        contour_randomisation: false,
    };
    let report = robustness::analyse(
        &cases(dir.path()),
        &ExtractionSettings::bundled(),
        &options(none),
        &mut |_| {},
    )
    .unwrap();
    for row in report.features.iter().filter(|r| r.n_lesions >= 2) {
        // Identical raters: zero residual, so ICC 1 (or undefined without any variance).
        match row.icc {
            Some(icc) => {
                assert!(
                    (icc - 1.0).abs() < ROUNDING,
                    "{} at {:?}: {icc}",
                    row.feature,
                    row.location
                );
                assert_eq!(row.class, RobustnessClass::Excellent);
            }
            None => assert_eq!(row.class, RobustnessClass::Undefined),
        }
    }
    assert!(report.features.iter().any(|r| r.icc.is_some()));
}

/// Progress advances once per perturbation of every lesion, and a stop request ends the
/// run at the next perturbation.
#[test]
fn progress_counts_perturbations_and_a_stop_ends_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let cases = cases(dir.path());
    let settings = ExtractionSettings::bundled();
    let opts = options(PerturbationLimits::default());
    let steps = cases.iter().map(|c| c.lesions.len()).sum::<usize>() * opts.perturbations;

    let mut seen = Vec::new();
    robustness::analyse(&cases, &settings, &opts, &mut |p| seen.push(p)).unwrap();
    let expected: Vec<f64> = (1..=steps).map(|i| i as f64 / steps as f64).collect();
    assert_eq!(seen, expected);

    let ticks = std::cell::Cell::new(0usize);
    let stop_after = 2;
    let stopped = robustness::analyse_until(
        &cases,
        &settings,
        &opts,
        &mut |_| ticks.set(ticks.get() + 1),
        &|| ticks.get() >= stop_after,
    );
    assert!(matches!(stopped, Err(robustness::RobustnessError::Stopped)));
    assert_eq!(ticks.get(), stop_after);
}
