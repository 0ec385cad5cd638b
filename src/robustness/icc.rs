//! Intraclass correlation ICC(3,1): two-way mixed effects, consistency, single rater, with
//! its confidence interval from the F distribution.
//!
//! Subjects (rows) are lesions, raters (columns) are perturbations; the same perturbation
//! settings are applied to every lesion, so the raters are fixed effects (two-way mixed).
//!
//! ```text
//! MS_R = k Σ_i (ȳ_i· − ȳ)² / (n − 1)                      between subjects
//! MS_C = n Σ_j (ȳ_·j − ȳ)² / (k − 1)                      between raters
//! MS_E = (SS_T − SS_R − SS_C) / ((n − 1)(k − 1))          residual
//! ICC(3,1) = (MS_R − MS_E) / (MS_R + (k − 1) MS_E)
//!
//! F₀ = MS_R / MS_E,  df₁ = n − 1,  df₂ = (n − 1)(k − 1)
//! F_L = F₀ / F(1 − α/2; df₁, df₂),   F_U = F₀ · F(1 − α/2; df₂, df₁)
//! CI = [(F_L − 1) / (F_L + k − 1),  (F_U − 1) / (F_U + k − 1)]
//! ```
//!
//! References: Shrout P.E., Fleiss J.L., *Intraclass correlations: uses in assessing rater
//! reliability*, Psychol. Bull. 86(2), 1979, case 3 (doi:10.1037/0033-2909.86.2.420);
//! McGraw K.O., Wong S.P., *Forming inferences about some intraclass correlation
//! coefficients*, Psychol. Methods 1(1), 1996, table 7, "ICC(C,1)"
//! (doi:10.1037/1082-989X.1.1.30). Checked against `pingouin.intraclass_corr` (ICC3) in
//! `tests/robustness_icc.rs`.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, FisherSnedecor};

/// Two-sided confidence level of the reported interval.
pub const CONFIDENCE_LEVEL: f64 = 0.95;

/// ICC(3,1) and its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Icc {
    /// The point estimate; at most 1, may be negative.
    pub value: f64,
    /// Lower bound of the [`CONFIDENCE_LEVEL`] interval.
    pub ci_lower: f64,
    /// Upper bound of the [`CONFIDENCE_LEVEL`] interval.
    pub ci_upper: f64,
}

/// Why an ICC is not defined for a table.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IccError {
    #[error("ICC needs at least 2 subjects and 2 raters, found {subjects} × {raters}")]
    TooSmall { subjects: usize, raters: usize },
    #[error("row {row} has {found} ratings, expected {expected}")]
    Ragged {
        row: usize,
        found: usize,
        expected: usize,
    },
    #[error("row {row} holds a value that is not finite")]
    NonFinite { row: usize },
    #[error("every subject has the same value: the ICC is undefined (0/0)")]
    NoVariance,
}

/// ICC(3,1) of `ratings[subject][rater]` with its [`CONFIDENCE_LEVEL`] interval.
///
/// When the residual mean square is 0 and subjects differ (every rater agrees exactly),
/// the ICC is 1 and so are both bounds.
///
/// # Errors
/// [`IccError`] for fewer than 2 subjects or raters, ragged rows, non-finite values, or a
/// table without any between-subject or residual variance.
pub fn icc3_1(ratings: &[Vec<f64>]) -> Result<Icc, IccError> {
    let (n, k) = check_table(ratings)?;
    let squares = MeanSquares::of(ratings, n, k);
    let (ms_r, ms_e) = (squares.rows, squares.error);

    let denominator = ms_r + (k as f64 - 1.0) * ms_e;
    if denominator <= 0.0 || !denominator.is_finite() {
        return Err(IccError::NoVariance);
    }
    let value = (ms_r - ms_e) / denominator;
    if ms_e <= 0.0 {
        return Ok(Icc {
            value,
            ci_lower: 1.0,
            ci_upper: 1.0,
        });
    }

    let f0 = ms_r / ms_e;
    let df1 = (n - 1) as f64;
    let df2 = ((n - 1) * (k - 1)) as f64;
    let upper_tail = 1.0 - (1.0 - CONFIDENCE_LEVEL) / 2.0;
    let f_l = f0 / f_quantile(upper_tail, df1, df2);
    let f_u = f0 * f_quantile(upper_tail, df2, df1);
    let bound = |f: f64| (f - 1.0) / (f + k as f64 - 1.0);
    Ok(Icc {
        value,
        ci_lower: bound(f_l),
        ci_upper: bound(f_u),
    })
}

/// The between-subject and residual mean squares of a two-way table.
struct MeanSquares {
    rows: f64,
    error: f64,
}

impl MeanSquares {
    fn of(ratings: &[Vec<f64>], n: usize, k: usize) -> MeanSquares {
        let total: f64 = ratings.iter().flatten().sum();
        let grand = total / (n * k) as f64;
        let row_means: Vec<f64> = ratings
            .iter()
            .map(|r| r.iter().sum::<f64>() / k as f64)
            .collect();
        let col_means: Vec<f64> = (0..k)
            .map(|j| ratings.iter().map(|r| r[j]).sum::<f64>() / n as f64)
            .collect();

        let ss_rows = k as f64 * row_means.iter().map(|m| (m - grand).powi(2)).sum::<f64>();
        let ss_cols = n as f64 * col_means.iter().map(|m| (m - grand).powi(2)).sum::<f64>();
        let ss_total: f64 = ratings.iter().flatten().map(|v| (v - grand).powi(2)).sum();
        // Rounding can leave a tiny negative residual for a perfectly additive table.
        let ss_error = (ss_total - ss_rows - ss_cols).max(0.0);
        MeanSquares {
            rows: ss_rows / (n - 1) as f64,
            error: ss_error / ((n - 1) * (k - 1)) as f64,
        }
    }
}

/// `(n, k)` of a rectangular, finite table of at least 2 × 2.
fn check_table(ratings: &[Vec<f64>]) -> Result<(usize, usize), IccError> {
    let n = ratings.len();
    let k = ratings.first().map_or(0, Vec::len);
    if n < 2 || k < 2 {
        return Err(IccError::TooSmall {
            subjects: n,
            raters: k,
        });
    }
    for (row, r) in ratings.iter().enumerate() {
        if r.len() != k {
            return Err(IccError::Ragged {
                row,
                found: r.len(),
                expected: k,
            });
        }
        if r.iter().any(|v| !v.is_finite()) {
            return Err(IccError::NonFinite { row });
        }
    }
    Ok((n, k))
}

/// Quantile `p` of the F distribution with `(df1, df2)` degrees of freedom.
fn f_quantile(p: f64, df1: f64, df2: f64) -> f64 {
    // Both degrees of freedom are ≥ 1 here (n, k ≥ 2), which FisherSnedecor accepts.
    FisherSnedecor::new(df1, df2)
        .map(|f| f.inverse_cdf(p))
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shrout & Fleiss (1979), table 2: 6 targets rated by 4 judges.
    fn shrout_fleiss_table() -> Vec<Vec<f64>> {
        vec![
            vec![9.0, 2.0, 5.0, 8.0],
            vec![6.0, 1.0, 3.0, 2.0],
            vec![8.0, 4.0, 6.0, 8.0],
            vec![7.0, 1.0, 2.0, 6.0],
            vec![10.0, 5.0, 6.0, 9.0],
            vec![6.0, 2.0, 4.0, 7.0],
        ]
    }

    /// Shrout & Fleiss report ICC(3,1) = .71 (two decimals) for their table 2.
    const SHROUT_FLEISS_ICC31: f64 = 0.71;
    const TWO_DECIMALS: f64 = 0.005;

    #[test]
    fn reproduces_the_shrout_fleiss_example() {
        let icc = icc3_1(&shrout_fleiss_table()).unwrap();
        assert!(
            (icc.value - SHROUT_FLEISS_ICC31).abs() < TWO_DECIMALS,
            "{icc:?}"
        );
        assert!(icc.ci_lower < icc.value && icc.value < icc.ci_upper);
    }

    #[test]
    fn rater_offsets_do_not_lower_a_consistency_icc() {
        // Every rater adds a constant: perfect consistency (ICC 1) despite disagreement.
        let table: Vec<Vec<f64>> = (0..5)
            .map(|i| (0..3).map(|j| i as f64 * 2.0 + j as f64 * 10.0).collect())
            .collect();
        let icc = icc3_1(&table).unwrap();
        assert_eq!((icc.value, icc.ci_lower, icc.ci_upper), (1.0, 1.0, 1.0));
    }

    #[test]
    fn refuses_tables_without_an_icc() {
        assert_eq!(
            icc3_1(&[vec![1.0, 2.0]]),
            Err(IccError::TooSmall {
                subjects: 1,
                raters: 2
            })
        );
        assert_eq!(
            icc3_1(&[vec![3.0, 3.0], vec![3.0, 3.0]]),
            Err(IccError::NoVariance)
        );
        assert!(matches!(
            icc3_1(&[vec![1.0, 2.0], vec![1.0]]),
            Err(IccError::Ragged { row: 1, .. })
        ));
        assert!(matches!(
            icc3_1(&[vec![1.0, f64::NAN], vec![1.0, 2.0]]),
            Err(IccError::NonFinite { row: 0 })
        ));
    }
}
