//! The robustness result: per location and feature the ICC, its interval and class; per
//! lesion whether it took part. Written as JSON (everything) and CSV (the feature table).

use std::io::Write;

use serde::{Deserialize, Serialize};

use super::icc::{Icc, IccError};
use super::{Perturbation, RobustnessCase, RobustnessOptions, Thresholds};
use crate::features::Location;
use crate::pipeline::LesionRequest;

/// How reproducible a feature is at a location (Koo & Li 2016, thresholds configurable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RobustnessClass {
    /// ICC ≥ the `excellent` threshold.
    Excellent,
    /// ICC ≥ the `good` threshold.
    Good,
    /// ICC below the `good` threshold.
    Poor,
    /// No ICC (too few lesions, or no variance at all).
    Undefined,
}

impl RobustnessClass {
    /// The class of an ICC point estimate.
    pub fn of(icc: Option<f64>, thresholds: &Thresholds) -> Self {
        match icc {
            None => RobustnessClass::Undefined,
            Some(v) if v >= thresholds.excellent => RobustnessClass::Excellent,
            Some(v) if v >= thresholds.good => RobustnessClass::Good,
            Some(_) => RobustnessClass::Poor,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RobustnessClass::Excellent => "excellent",
            RobustnessClass::Good => "good",
            RobustnessClass::Poor => "poor",
            RobustnessClass::Undefined => "undefined",
        }
    }
}

/// One row of the table: a feature at a location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureRobustness {
    pub location: Location,
    pub feature: String,
    /// Lesions (subjects) the ICC is computed over.
    pub n_lesions: usize,
    /// Perturbations (raters) per lesion.
    pub n_perturbations: usize,
    /// ICC(3,1); `null` when undefined.
    pub icc: Option<f64>,
    /// Lower bound of the 95 % interval.
    pub ci95_lower: Option<f64>,
    /// Upper bound of the 95 % interval.
    pub ci95_upper: Option<f64>,
    /// Class of `icc` under the run's thresholds.
    pub class: RobustnessClass,
    /// Why the ICC is undefined, when it is.
    pub note: Option<String>,
}

impl FeatureRobustness {
    /// A row from an ICC computation.
    pub fn new(
        location: Location,
        feature: &str,
        n_lesions: usize,
        n_perturbations: usize,
        icc: Result<Icc, IccError>,
        thresholds: &Thresholds,
    ) -> Self {
        let (value, note) = match icc {
            Ok(icc) => (Some(icc), None),
            Err(e) => (None, Some(e.to_string())),
        };
        FeatureRobustness {
            location,
            feature: feature.to_owned(),
            n_lesions,
            n_perturbations,
            icc: value.map(|i| i.value),
            ci95_lower: value.map(|i| i.ci_lower),
            ci95_upper: value.map(|i| i.ci_upper),
            class: RobustnessClass::of(value.map(|i| i.value), thresholds),
            note,
        }
    }
}

/// Whether a lesion took part, and why not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LesionOutcome {
    pub case_id: String,
    pub label: u32,
    pub location: Location,
    /// `included` or `excluded`.
    pub status: String,
    /// Why it was excluded (e.g. an erosion left too few voxels).
    pub reason: Option<String>,
}

impl LesionOutcome {
    pub(super) fn included(case: &RobustnessCase, request: &LesionRequest) -> Self {
        LesionOutcome {
            case_id: case.case_id.clone(),
            label: request.label,
            location: request.location,
            status: "included".into(),
            reason: None,
        }
    }

    pub(super) fn excluded(case: &RobustnessCase, request: &LesionRequest, reason: String) -> Self {
        LesionOutcome {
            status: "excluded".into(),
            reason: Some(reason),
            ..Self::included(case, request)
        }
    }
}

/// The full result of a robustness run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobustnessReport {
    pub settings_name: String,
    pub settings_hash: String,
    pub options: RobustnessOptions,
    /// The drawn perturbation settings, in rater order.
    pub perturbations: Vec<Perturbation>,
    pub lesions: Vec<LesionOutcome>,
    /// One row per location and feature, locations in [`Location::ALL`] order.
    pub features: Vec<FeatureRobustness>,
}

/// Columns of the CSV table, in order.
pub const CSV_HEADER: [&str; 9] = [
    "location",
    "feature",
    "n_lesions",
    "n_perturbations",
    "icc",
    "ci95_lower",
    "ci95_upper",
    "class",
    "note",
];

impl RobustnessReport {
    /// The feature table as CSV ([`CSV_HEADER`]); undefined values are empty cells.
    ///
    /// # Errors
    /// I/O errors of `out`.
    pub fn write_csv(&self, out: impl Write) -> csv::Result<()> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(CSV_HEADER)?;
        let cell = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        for row in &self.features {
            w.write_record([
                row.location.as_str().to_owned(),
                row.feature.clone(),
                row.n_lesions.to_string(),
                row.n_perturbations.to_string(),
                cell(row.icc),
                cell(row.ci95_lower),
                cell(row.ci95_upper),
                row.class.as_str().to_owned(),
                row.note.clone().unwrap_or_default(),
            ])?;
        }
        w.flush()?;
        Ok(())
    }

    /// The locations that have rows, in [`Location::ALL`] order.
    pub fn locations(&self) -> Vec<Location> {
        Location::ALL
            .into_iter()
            .filter(|l| self.features.iter().any(|r| r.location == *l))
            .collect()
    }

    /// Feature names in first-seen order.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for row in &self.features {
            if !names.contains(&row.feature) {
                names.push(row.feature.clone());
            }
        }
        names
    }

    /// The row of `feature` at `location`.
    pub fn row(&self, location: Location, feature: &str) -> Option<&FeatureRobustness> {
        self.features
            .iter()
            .find(|r| r.location == location && r.feature == feature)
    }
}
