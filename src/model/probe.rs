//! Does a graph's output behave like a probability? Checked once, when a model is
//! registered, by scoring a few probe rows.
//!
//! The signature check ([`super::Model::from_bytes`]) only sees types and shapes; a
//! regression graph with a `float32 [N, 1]` output passes it. The probe scores rows that
//! span the model's input space (zeros, the training range's ends and middle when the
//! manifest has them, and large values of both signs) and requires every value of the
//! probability column to lie in `[0, 1]` and, for a `[N, classes ≥ 2]` output, every row
//! to sum to 1 (a softmax or `[1 − p, p]` pair).

use super::{Model, ModelError};

/// Magnitude of the two extreme probe rows: far outside any radiomics feature's
/// standardised range, so an unbounded (linear) output leaves `[0, 1]`.
pub const PROBE_MAGNITUDE: f64 = 1.0e4;

/// How far a row of class probabilities may sum from 1 (float32 rounding of a softmax
/// over a few classes is ~1e-7; this leaves room and still refuses unnormalised scores).
pub const ROW_SUM_TOLERANCE: f64 = 1.0e-3;

impl Model {
    /// Score the probe rows and refuse an output that is not a probability.
    ///
    /// # Errors
    /// [`ModelError::NotProbability`] naming the probe row and the value found;
    /// [`ModelError::Inference`] if the graph fails on the probe.
    pub fn check_probability_output(&self) -> Result<(), ModelError> {
        let (labels, rows) = self.probe_rows();
        let output = self.run(&rows)?;
        let column = self.manifest().output.probability_column;
        let classes = output.ncols();
        if column >= classes {
            return Err(ModelError::NotProbability(format!(
                "the output has {classes} column(s); the manifest reads column {column}"
            )));
        }

        for (r, label) in labels.iter().enumerate() {
            let row = output.row(r);
            let p = f64::from(row[column]);
            if !(0.0..=1.0).contains(&p) {
                return Err(ModelError::NotProbability(format!(
                    "probe row '{label}' scored {p} in column {column}, outside [0, 1]"
                )));
            }
            let sum: f64 = row.iter().map(|&v| f64::from(v)).sum();
            if classes >= 2 && (sum - 1.0).abs() > ROW_SUM_TOLERANCE {
                return Err(ModelError::NotProbability(format!(
                    "probe row '{label}': the {classes} output columns sum to {sum}, not 1"
                )));
            }
        }
        Ok(())
    }

    /// Named probe rows in model input order.
    fn probe_rows(&self) -> (Vec<String>, Vec<Vec<f64>>) {
        let names = &self.manifest().feature_names;
        let width = names.len();
        let mut labels = vec![
            "zeros".to_owned(),
            format!("all +{PROBE_MAGNITUDE}"),
            format!("all -{PROBE_MAGNITUDE}"),
        ];
        let mut rows = vec![
            vec![0.0; width],
            vec![PROBE_MAGNITUDE; width],
            vec![-PROBE_MAGNITUDE; width],
        ];

        let ranges = &self.manifest().training_ranges;
        if !ranges.is_empty() {
            // A feature without a range keeps 0 in these rows.
            let at = |pick: fn(f64, f64) -> f64| -> Vec<f64> {
                names
                    .iter()
                    .map(|n| ranges.get(n).map_or(0.0, |r| pick(r.min, r.max)))
                    .collect()
            };
            labels.extend(
                ["training minima", "training maxima", "training midpoints"].map(String::from),
            );
            rows.push(at(|lo, _| lo));
            rows.push(at(|_, hi| hi));
            rows.push(at(|lo, hi| 0.5 * (lo + hi)));
        }
        (labels, rows)
    }
}
