//! ICC(3,1) of `radscore::robustness::icc` against `pingouin.intraclass_corr` (ICC3) on
//! fixed tables, and its confidence interval against scipy's F quantiles.
//!
//! Needs the pinned Python environment (`scripts/setup.sh python`), found through
//! `$RADSCORE_PYTHON` or `<crate>/.venv/bin/python`.

mod common;

use radscore::robustness::icc::icc3_1;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Both sides compute the mean squares in f64 from the same numbers.
const ICC_TOLERANCE: f64 = 1e-9;
/// statrs and scipy invert the F CDF with different algorithms.
const CI_TOLERANCE: f64 = 1e-6;
/// pingouin rounds its interval to two decimals.
const PINGOUIN_CI_ROUNDING: f64 = 0.005 + 1e-12;

/// pingouin's answer for every table.
fn pingouin(tables: &[Vec<Vec<f64>>]) -> Vec<serde_json::Value> {
    common::run_support_json("pingouin_icc.py", &serde_json::json!(tables))
}

/// `n` subjects × `k` raters: subject effect of sd `subject_sd`, a fixed offset per rater
/// and residual noise of sd 1.
fn table(seed: u64, n: usize, k: usize, subject_sd: f64) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let offsets: Vec<f64> = (0..k).map(|_| rng.random_range(-2.0..2.0)).collect();
    (0..n)
        .map(|_| {
            let subject = subject_sd * rng.random_range(-1.7..1.7);
            offsets
                .iter()
                .map(|o| 50.0 + subject + o + rng.random_range(-1.7..1.7))
                .collect()
        })
        .collect()
}

#[test]
fn icc3_1_matches_pingouin_and_scipy() {
    let tables = vec![
        // Shrout & Fleiss (1979), table 2.
        vec![
            vec![9.0, 2.0, 5.0, 8.0],
            vec![6.0, 1.0, 3.0, 2.0],
            vec![8.0, 4.0, 6.0, 8.0],
            vec![7.0, 1.0, 2.0, 6.0],
            vec![10.0, 5.0, 6.0, 9.0],
            vec![6.0, 2.0, 4.0, 7.0],
        ],
        table(1, 15, 5, 4.0),  // reliable
        table(2, 30, 10, 1.0), // moderate
        table(3, 8, 3, 0.1),   // noise-dominated: ICC near or below 0
        table(4, 5, 2, 3.0),   // two raters (pingouin needs ≥ 5 subjects)
    ];
    let reference = pingouin(&tables);
    for (t, (table, want)) in tables.iter().zip(&reference).enumerate() {
        let got = icc3_1(table).unwrap();
        let num = |v: &serde_json::Value| v.as_f64().unwrap();
        let icc = num(&want["icc"]);
        assert!(
            (got.value - icc).abs() < ICC_TOLERANCE,
            "table {t}: ICC {} vs pingouin {icc}",
            got.value
        );
        let bounds = [got.ci_lower, got.ci_upper];
        for b in 0..2 {
            let scipy = num(&want["ci_scipy"][b]);
            let rounded = num(&want["ci_rounded"][b]);
            assert!(
                (bounds[b] - scipy).abs() < CI_TOLERANCE,
                "table {t}: CI bound {b} {} vs scipy {scipy}",
                bounds[b]
            );
            assert!(
                (bounds[b] - rounded).abs() < PINGOUIN_CI_ROUNDING,
                "table {t}: CI bound {b} {} vs pingouin {rounded}",
                bounds[b]
            );
        }
    }
}
