//! The extraction settings a job runs with, and what they change in its result.
//!
//! A job records its effective settings when it is created (the request's `settings`, its
//! `pyradiomics_params` mapped by [`crate::pyradiomics::params`], or the service's). The
//! worker extracts with them; it scores only with a model whose manifest pins the same
//! settings hash ([`crate::model::ModelManifest::settings_hash`]), because a model fed
//! features computed otherwise would give meaningless probabilities. Otherwise the
//! lesions keep their features and are `unscored` with [`SETTINGS_MISMATCH_CODE`]. With
//! `naming: pyradiomics`, the result's feature keys are PyRadiomics names
//! ([`crate::pyradiomics::names::to_pyradiomics_all`]).

use std::sync::Arc;

use super::{JobRequest, JobResult};
use crate::features::{ExtractionSettings, Feature};
use crate::pipeline::LesionError;
use crate::pyradiomics::names::{Naming, Selection, to_pyradiomics_all};

/// Error code of a lesion left unscored because the job's settings are not the model's.
pub const SETTINGS_MISMATCH_CODE: &str = "settings_mismatch";

/// The settings `request` runs with: its recorded settings, else the service's.
pub fn effective(
    request: &JobRequest,
    service: &Arc<ExtractionSettings>,
) -> Arc<ExtractionSettings> {
    match &request.settings {
        Some(own) => Arc::new(own.clone()),
        None => service.clone(),
    }
}

/// Mark every lesion that has features as `unscored`: the model (pinning
/// `model_settings_hash`) was trained with other settings than `settings`.
pub fn flag_settings_mismatch(
    result: &mut JobResult,
    model_settings_hash: &str,
    settings: &ExtractionSettings,
) {
    let message = format!(
        "not scored: the job's extraction settings ({}) are not the settings the model was \
         trained with ({model_settings_hash}); the features are those of the job's settings",
        settings.hash()
    );
    for lesion in result.lesions.iter_mut().filter(|l| l.status == "ok") {
        lesion.status = "unscored".into();
        lesion.response_probability = None;
        lesion.trust = None;
        lesion.error = Some(LesionError {
            code: SETTINGS_MISMATCH_CODE.into(),
            message: message.clone(),
        });
    }
}

/// Rename the result's features for the request's naming (nothing to do for IBSI tags).
/// PyRadiomics names cover the features of the request's `pyradiomics_params` selection,
/// or every default PyRadiomics feature radscore computed.
pub fn apply_naming(result: &mut JobResult, request: &JobRequest, settings: &ExtractionSettings) {
    let naming = request.naming.unwrap_or_default();
    result.naming = naming;
    if naming == Naming::Ibsi {
        return;
    }
    let selection = selection_of(request);
    for lesion in &mut result.lesions {
        let features: Vec<Feature> = lesion
            .features
            .iter()
            .filter_map(|(name, value)| Some(Feature::new(name.clone(), value.as_f64()?)))
            .collect();
        let profile = settings.for_location(lesion.location);
        lesion.features = to_pyradiomics_all(&features, profile, selection.as_ref())
            .into_iter()
            .filter_map(|f| Some((f.name, serde_json::Number::from_f64(f.value)?.into())))
            .collect();
    }
}

/// The PyRadiomics feature selection of the request's parameter document (validated when
/// the job was created).
fn selection_of(request: &JobRequest) -> Option<Selection> {
    let doc = request.pyradiomics_params.as_ref()?;
    match crate::pyradiomics::params::from_value(doc, "job") {
        Ok(params) => Some(params.selection),
        Err(e) => {
            tracing::warn!(error.message = %e, "stored pyradiomics_params no longer map");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Location;
    use crate::jobs::{LesionResult, ModelSummary};

    fn result_with(features: &[(&str, f64)]) -> JobResult {
        let lesion = LesionResult {
            label: 1,
            name: None,
            location: Location::Other,
            voxel_count: 10,
            status: "ok".into(),
            response_probability: Some(0.5),
            features: features
                .iter()
                .map(|(n, v)| (n.to_string(), serde_json::json!(v)))
                .collect(),
            warnings: Vec::new(),
            error: None,
            trust: None,
            sub_model: None,
            prediction_interval: None,
        };
        JobResult {
            job_id: "j".into(),
            series_id: "s".into(),
            series_uid: "1.2".into(),
            segmentation_id: "g".into(),
            model: ModelSummary {
                id: None,
                name: "m".into(),
                version: "1".into(),
                sha256: "sha256:0".into(),
                synthetic_demo: false,
                settings_hash: None,
                sub_models: None,
            },
            settings_name: "n".into(),
            settings_hash: "sha256:1".into(),
            settings: None,
            settings_source: None,
            naming: Naming::Ibsi,
            disclaimer: None,
            acquisition: None,
            lesions: vec![lesion],
            patient_summary: None,
        }
    }

    fn request(naming: Option<Naming>, params: Option<serde_json::Value>) -> JobRequest {
        JobRequest {
            series_id: "s".into(),
            segmentation_id: "g".into(),
            lesions: Vec::new(),
            model: None,
            model_id: None,
            settings: None,
            settings_source: None,
            pyradiomics_params: params,
            naming,
            prediction_interval: None,
        }
    }

    #[test]
    fn pyradiomics_naming_renames_and_applies_the_kurtosis_transform() {
        let mut result = result_with(&[("stat_kurt", 1.5), ("cm_contrast_3D_avg", 2.0)]);
        let params = serde_json::json!({"featureClass": {"firstorder": ["Kurtosis"]}});
        let req = request(Some(Naming::Pyradiomics), Some(params));
        apply_naming(&mut result, &req, &ExtractionSettings::bundled());
        let names: Vec<&String> = result.lesions[0].features.keys().collect();
        assert_eq!(names, ["original_firstorder_Kurtosis"]);
        // PyRadiomics reports Pearson kurtosis: IBSI's excess kurtosis + 3.
        assert_eq!(
            result.lesions[0].features["original_firstorder_Kurtosis"],
            4.5
        );
        assert_eq!(result.naming, Naming::Pyradiomics);
    }

    #[test]
    fn ibsi_naming_keeps_the_tags() {
        let mut result = result_with(&[("stat_kurt", 1.5)]);
        apply_naming(
            &mut result,
            &request(None, None),
            &ExtractionSettings::bundled(),
        );
        assert!(result.lesions[0].features.contains_key("stat_kurt"));
        assert_eq!(result.naming, Naming::Ibsi);
    }

    #[test]
    fn a_settings_mismatch_unscores_lesions_with_features() {
        let mut result = result_with(&[("stat_kurt", 1.5)]);
        flag_settings_mismatch(&mut result, "sha256:model", &ExtractionSettings::bundled());
        let lesion = &result.lesions[0];
        assert_eq!(lesion.status, "unscored");
        assert_eq!(lesion.response_probability, None);
        let error = lesion.error.as_ref().unwrap();
        assert_eq!(error.code, SETTINGS_MISMATCH_CODE);
        assert!(error.message.contains("sha256:model"), "{}", error.message);
        assert!(!lesion.features.is_empty());
    }
}
