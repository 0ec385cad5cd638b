//! Why a lesion got its probability, and how far to trust it: the out-of-distribution
//! check against the training ranges, the top contributing features of a linear model, and
//! the robustness class of each used feature at the lesion's location. Everything comes
//! from the manifest (written by `training/pipeline.py`); a manifest without a section
//! gives an empty or `null` answer for it, never a guess.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Manifest;

/// How many contributions a lesion result lists (largest absolute value first).
pub const TOP_CONTRIBUTIONS: usize = 5;

/// Robustness class of a feature the manifest has no class for at a location.
pub const UNASSESSED_ROBUSTNESS: &str = "not_assessed";

/// A feature value outside the range the model saw in training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutOfRange {
    pub feature: String,
    pub value: f64,
    pub training_min: f64,
    pub training_max: f64,
}

/// One feature's share of the logit: `coefficient · (value − mean) / scale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub feature: String,
    /// The lesion's value.
    pub value: f64,
    /// `(value − mean) / scale`, in training standard deviations.
    pub standardised: f64,
    /// Logit units; positive pushes towards responder.
    pub contribution: f64,
}

/// The trust annotations of one scored lesion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LesionExplanation {
    /// True when at least one used feature is outside its training range.
    pub out_of_distribution: bool,
    /// Every used feature outside its training range; `null` when the manifest has no
    /// training ranges (nothing was checked).
    pub out_of_range_features: Option<Vec<OutOfRange>>,
    /// The largest contributions by absolute value; `null` for a model without linear
    /// terms in its manifest.
    pub top_contributions: Option<Vec<Contribution>>,
    /// Robustness class of each used feature at the lesion's location (`excellent`,
    /// `good`, `poor` or `not_assessed`); `null` when the manifest has no robustness table.
    pub feature_robustness: Option<BTreeMap<String, String>>,
}

/// Annotate one lesion: `row` holds its values in [`Manifest::feature_names`] order and
/// `location` is its location name.
pub fn explain(manifest: &Manifest, row: &[f64], location: &str) -> LesionExplanation {
    let named = || manifest.feature_names.iter().zip(row.iter().copied());

    let out_of_range_features = (!manifest.training_ranges.is_empty()).then(|| {
        named()
            .filter_map(|(name, value)| {
                let range = manifest.training_ranges.get(name)?;
                (value < range.min || value > range.max).then(|| OutOfRange {
                    feature: name.clone(),
                    value,
                    training_min: range.min,
                    training_max: range.max,
                })
            })
            .collect::<Vec<_>>()
    });

    let top_contributions = manifest.explanation.as_ref().map(|linear| {
        let mut all: Vec<Contribution> = named()
            .filter_map(|(name, value)| {
                let term = linear.terms.get(name)?;
                let standardised = (value - term.mean) / term.scale;
                Some(Contribution {
                    feature: name.clone(),
                    value,
                    standardised,
                    contribution: term.coefficient * standardised,
                })
            })
            .collect();
        all.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
        all.truncate(TOP_CONTRIBUTIONS);
        all
    });

    let feature_robustness = (!manifest.robustness.is_empty()).then(|| {
        let classes = manifest.robustness.get(location);
        manifest
            .feature_names
            .iter()
            .map(|name| {
                let class = classes
                    .and_then(|c| c.get(name))
                    .map_or(UNASSESSED_ROBUSTNESS, String::as_str);
                (name.clone(), class.to_owned())
            })
            .collect()
    });

    LesionExplanation {
        out_of_distribution: out_of_range_features
            .as_ref()
            .is_some_and(|v| !v.is_empty()),
        out_of_range_features,
        top_contributions,
        feature_robustness,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FeatureRange, LinearExplanation, LinearTerm};

    fn manifest() -> Manifest {
        let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/models/demo/manifest.json");
        let mut m = Manifest::read(std::path::Path::new(demo)).unwrap();
        m.feature_names = vec!["a".into(), "b".into(), "c".into()];
        m
    }

    #[test]
    fn out_of_range_features_are_named_with_their_range() {
        let mut m = manifest();
        m.training_ranges
            .insert("a".into(), FeatureRange { min: 0.0, max: 1.0 });
        m.training_ranges
            .insert("b".into(), FeatureRange { min: 0.0, max: 1.0 });
        let e = explain(&m, &[0.5, 3.0, 99.0], "pleura");
        assert!(e.out_of_distribution);
        let out = e.out_of_range_features.unwrap();
        assert_eq!(out.len(), 1, "c has no range, a is inside");
        assert_eq!((out[0].feature.as_str(), out[0].value), ("b", 3.0));

        let inside = explain(&m, &[0.0, 1.0, 99.0], "pleura");
        assert!(!inside.out_of_distribution);
        assert_eq!(inside.out_of_range_features, Some(vec![]));
        assert_eq!(
            explain(&manifest(), &[0.0; 3], "pleura").out_of_range_features,
            None
        );
    }

    #[test]
    fn contributions_are_coefficient_times_standardised_value_largest_first() {
        let mut m = manifest();
        let term = |coefficient, mean, scale| LinearTerm {
            coefficient,
            mean,
            scale,
        };
        m.explanation = Some(LinearExplanation {
            intercept: 0.1,
            terms: [
                ("a".to_owned(), term(2.0, 1.0, 2.0)),
                ("b".to_owned(), term(-1.0, 0.0, 1.0)),
                ("c".to_owned(), term(0.5, 0.0, 1.0)),
            ]
            .into(),
        });
        let e = explain(&m, &[5.0, 3.0, 1.0], "pleura");
        let top = e.top_contributions.unwrap();
        // a: 2 · (5 − 1) / 2 = 4; b: −1 · 3 = −3; c: 0.5.
        let got: Vec<(&str, f64)> = top
            .iter()
            .map(|c| (c.feature.as_str(), c.contribution))
            .collect();
        assert_eq!(got, vec![("a", 4.0), ("b", -3.0), ("c", 0.5)]);
        assert_eq!(top[0].standardised, 2.0);
    }

    #[test]
    fn robustness_is_read_at_the_lesion_location() {
        let mut m = manifest();
        m.robustness.insert(
            "pleura".into(),
            [
                ("a".to_owned(), "excellent".to_owned()),
                ("b".to_owned(), "poor".to_owned()),
            ]
            .into(),
        );
        let at_pleura = explain(&m, &[0.0; 3], "pleura").feature_robustness.unwrap();
        assert_eq!(at_pleura["a"], "excellent");
        assert_eq!(at_pleura["b"], "poor");
        assert_eq!(at_pleura["c"], UNASSESSED_ROBUSTNESS);
        let elsewhere = explain(&m, &[0.0; 3], "peritoneum")
            .feature_robustness
            .unwrap();
        assert!(elsewhere.values().all(|c| c == UNASSESSED_ROBUSTNESS));
    }
}
