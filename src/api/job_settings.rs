//! Per-job extraction settings in job requests (`POST /v1/jobs`, each entry of
//! `POST /v1/batches`):
//!
//! - `settings`: a radscore settings document (the schema of
//!   [`crate::features::ExtractionSettings`], as `radscore settings --print json` shows);
//! - `pyradiomics_params`: a PyRadiomics parameter file, as its YAML or JSON text or as a
//!   JSON object, mapped by [`crate::pyradiomics::params`];
//! - `naming`: `ibsi` or `pyradiomics` feature names in the result (default `pyradiomics`
//!   with `pyradiomics_params`, else `ibsi`, as `radscore extract` does).
//!
//! Unknown or unsupported keys are refused with one 422 that lists every key
//! (`unsupported_keys`: key path, value, reason). The effective settings (the service's
//! when neither field is given) are recorded in the job, so a job runs with what it was
//! accepted with. A job that names its model (`model_id` or `model`) must use the settings
//! that model was trained with (422 otherwise); a job that names none runs with the
//! active model and, when its settings differ, keeps its features unscored (see
//! [`crate::jobs::settings`]).

use serde_json::{Map, Value, json};

use super::{ApiResult, Problem};
use crate::features::{ExtractionSettings, FamilySettings};
use crate::jobs::{JobRequest, SettingsSource};
use crate::pyradiomics::names::Naming;
use crate::pyradiomics::{ParamsError, Unsupported};
use crate::store::ModelRow;

/// Finest resampling a job may ask for, in mm per axis: finer grids multiply the voxels of
/// every lesion (0.25 mm is half the finest in-plane spacing of common CT protocols).
// LIMITATION: the bound is on the spacing, not on a lesion's resampled voxel count, which
// is only known once the series is read.
pub const MIN_JOB_SPACING_MM: f64 = 0.25;

/// Most unknown keys of a `settings` document named in one answer (each costs a parse).
pub const MAX_REPORTED_KEYS: usize = 32;

/// The per-job settings fields of a job request object.
#[derive(Debug, Default)]
pub struct SettingsFields {
    pub settings: Option<ExtractionSettings>,
    pub source: Option<SettingsSource>,
    pub pyradiomics_params: Option<Value>,
    pub naming: Option<Naming>,
}

/// Read `settings`, `pyradiomics_params` and `naming` from a job request object.
///
/// # Errors
/// 422 `invalid-settings` naming every unsupported key, or the invalid value.
pub fn parse_fields(obj: &Map<String, Value>) -> ApiResult<SettingsFields> {
    let given = |key: &str| obj.get(key).filter(|v| !v.is_null());
    let mut fields = match (given("settings"), given("pyradiomics_params")) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "give either 'settings' or 'pyradiomics_params', not both",
            ));
        }
        (Some(doc), None) => SettingsFields {
            settings: Some(radscore_settings(doc)?),
            source: Some(SettingsSource::Settings),
            ..Default::default()
        },
        (None, Some(doc)) => pyradiomics_settings(doc)?,
        (None, None) => SettingsFields::default(),
    };
    if let Some(settings) = &fields.settings {
        check_job_limits(settings)?;
    }
    fields.naming = match given("naming") {
        None => fields
            .pyradiomics_params
            .as_ref()
            .map(|_| Naming::Pyradiomics),
        Some(Value::String(s)) if s == "ibsi" => Some(Naming::Ibsi),
        Some(Value::String(s)) if s == "pyradiomics" => Some(Naming::Pyradiomics),
        Some(other) => {
            return Err(invalid(format!(
                "field 'naming' must be \"ibsi\" or \"pyradiomics\", got {}",
                clip_value(other)
            ))
            .with("allowed", json!(["ibsi", "pyradiomics"])));
        }
    };
    Ok(fields)
}

/// Record the service's settings in a request that gave none, so the job runs with the
/// settings it was accepted with.
pub fn settle(request: &mut JobRequest, service: &ExtractionSettings) {
    if request.settings.is_none() {
        request.settings = Some(service.clone());
        request.settings_source = Some(SettingsSource::Service);
    }
}

/// A job that names its model must use the settings the model was trained with.
///
/// # Errors
/// 422 `settings-model-mismatch` with both hashes.
pub fn check_model_settings(request: &JobRequest, model: &ModelRow) -> ApiResult<()> {
    let named = request.model_id.is_some() || request.model.is_some();
    let Some(settings) = request.settings.as_ref().filter(|_| named) else {
        return Ok(());
    };
    let hash = settings.hash();
    if hash == model.settings_hash {
        return Ok(());
    }
    Err(Problem::unprocessable(
        "settings-model-mismatch",
        "Settings differ from the model's",
        format!(
            "model '{}' ('{}' version '{}') was trained with extraction settings {}, but the \
             job's settings hash to {hash}; give the model's settings, or name no model to \
             extract features without scoring",
            model.id, model.name, model.version, model.settings_hash
        ),
    )
    .with("settings_hash", hash)
    .with("model_settings_hash", model.settings_hash.clone()))
}

/// Parse a radscore settings document, naming every unknown key with its path.
fn radscore_settings(doc: &Value) -> ApiResult<ExtractionSettings> {
    let mut doc = doc.clone();
    let mut unknown = Vec::new();
    loop {
        let parsed: Result<ExtractionSettings, _> = serde_path_to_error::deserialize(&doc);
        let error = match parsed {
            Ok(_) if unknown.is_empty() => break,
            Ok(_) => return Err(unsupported("settings", unknown)),
            Err(e) => e,
        };
        let path = error.path().to_string();
        let message = error.inner().to_string();
        let removable = unknown.len() < MAX_REPORTED_KEYS;
        let removed = unknown_field(&message)
            .filter(|_| removable)
            .and_then(|field| remove_key(&mut doc, &path, &field));
        match removed {
            Some((key, value)) => {
                unknown.push(Unsupported {
                    key,
                    value: value.to_string(),
                    reason: "unknown key".into(),
                });
            }
            _ if !unknown.is_empty() => return Err(unsupported("settings", unknown)),
            _ => {
                let (path, message) = locate_in_profiles(&doc).unwrap_or((path, message));
                return Err(invalid(format!("settings.{path}: {message}"))
                    .with("field", format!("settings.{path}")));
            }
        }
    }
    // Semantic checks (schema version, profile 'other', value ranges, same names).
    ExtractionSettings::from_json(&doc.to_string())
        .map_err(|e| invalid(format!("settings: {e}")).with("field", "settings"))
}

/// The field name of serde's "unknown field `x`, expected …" message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// Remove `field` from the object at `path` (serde_path_to_error's dotted path, which
/// may end in the field and writes `?` for a map key it could not capture, such as a
/// location); returns the key's full path (`settings.…`) and its value, or `None` when no
/// object on the path holds the field.
fn remove_key(doc: &mut Value, path: &str, field: &str) -> Option<(String, Value)> {
    let mut segments: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
    if segments.last() == Some(&field) {
        segments.pop();
    }
    let mut resolved = vec!["settings".to_string()];
    let value = remove_at(doc, &segments, field, &mut resolved)?;
    resolved.push(field.to_string());
    Some((resolved.join("."), value))
}

fn remove_at(
    at: &mut Value,
    segments: &[&str],
    field: &str,
    resolved: &mut Vec<String>,
) -> Option<Value> {
    let Some((segment, rest)) = segments.split_first() else {
        return at.as_object_mut()?.remove(field);
    };
    match at {
        Value::Object(map) if *segment == "?" => map.iter_mut().find_map(|(key, child)| {
            resolved.push(key.clone());
            let found = remove_at(child, rest, field, resolved);
            if found.is_none() {
                resolved.pop();
            }
            found
        }),
        Value::Object(map) => {
            resolved.push((*segment).to_string());
            remove_at(map.get_mut(*segment)?, rest, field, resolved)
        }
        Value::Array(items) => {
            let index: usize = segment.trim_matches(['[', ']']).parse().ok()?;
            resolved.push(index.to_string());
            remove_at(items.get_mut(index)?, rest, field, resolved)
        }
        _ => None,
    }
}

/// The path and message of the first profile that does not parse, with its location
/// (serde_path_to_error writes `?` for the location keys of `profiles`).
fn locate_in_profiles(doc: &Value) -> Option<(String, String)> {
    doc.get("profiles")?
        .as_object()?
        .iter()
        .find_map(|(location, profile)| {
            let parsed: Result<FamilySettings, _> = serde_path_to_error::deserialize(profile);
            let e = parsed.err()?;
            Some((
                format!("profiles.{location}.{}", e.path()),
                e.inner().to_string(),
            ))
        })
}

/// Map `pyradiomics_params` (YAML/JSON text, or an object).
fn pyradiomics_settings(doc: &Value) -> ApiResult<SettingsFields> {
    let mapped = match doc {
        Value::String(text) => crate::pyradiomics::params::parse(text, "job").and_then(|p| {
            let as_json = parse_text(text)?;
            Ok((p, as_json))
        }),
        Value::Object(_) => {
            crate::pyradiomics::params::from_value(doc, "job").map(|p| (p, doc.clone()))
        }
        _ => {
            return Err(invalid(
                "field 'pyradiomics_params' must be a parameter file's YAML/JSON text or an object",
            ));
        }
    };
    let (params, as_json) = mapped.map_err(|e| match e {
        ParamsError::Unsupported(list) => unsupported("pyradiomics_params", list),
        ParamsError::Parse(msg) => invalid(format!("pyradiomics_params cannot be read: {msg}"))
            .with("field", "pyradiomics_params"),
    })?;
    Ok(SettingsFields {
        settings: Some(params.settings),
        source: Some(SettingsSource::PyradiomicsParams),
        pyradiomics_params: Some(as_json),
        naming: None,
    })
}

/// The JSON equivalent of a parameter file's text (already accepted by the mapper).
fn parse_text(text: &str) -> Result<Value, ParamsError> {
    serde_yaml_ng::from_str(text).map_err(|e| ParamsError::Parse(e.to_string()))
}

/// Bounds on job-supplied settings that the service's own settings file is trusted with.
fn check_job_limits(settings: &ExtractionSettings) -> ApiResult<()> {
    for (location, profile) in &settings.profiles {
        let Some(interpolation) = &profile.interpolation else {
            continue;
        };
        let axes = if interpolation.in_plane_only { 1 } else { 0 };
        if let Some(bad) = interpolation.spacing_mm[axes..]
            .iter()
            .find(|s| **s < MIN_JOB_SPACING_MM)
        {
            return Err(invalid(format!(
                "profile '{}': resampling to {bad} mm is finer than the {MIN_JOB_SPACING_MM} mm \
                 a job may ask for",
                location.as_str()
            ))
            .with("field", "settings"));
        }
    }
    Ok(())
}

/// 422 listing every refused key, prefixed with the request field it is in.
fn unsupported(field: &str, list: Vec<Unsupported>) -> Problem {
    let entries: Vec<Value> = list
        .iter()
        .map(|u| {
            let key = if u.key.starts_with(field) {
                u.key.clone()
            } else {
                format!("{field}.{}", u.key)
            };
            json!({"key": key, "value": u.value, "reason": u.reason})
        })
        .collect();
    let keys: Vec<&str> = entries.iter().filter_map(|e| e["key"].as_str()).collect();
    let detail = format!("unsupported keys: {}", keys.join(", "));
    invalid(detail)
        .with("field", field)
        .with("unsupported_keys", entries)
}

fn clip_value(v: &Value) -> String {
    super::series::clip(&v.to_string()).to_string()
}

fn invalid<D: Into<String>>(detail: D) -> Problem {
    Problem::unprocessable("invalid-settings", "Invalid extraction settings", detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled_json() -> Value {
        serde_json::to_value(ExtractionSettings::bundled()).unwrap()
    }

    #[test]
    fn every_unknown_settings_key_is_named_with_its_path() {
        let mut doc = bundled_json();
        doc["colour"] = json!("blue");
        doc["profiles"]["other"]["bogus"] = json!(1);
        doc["profiles"]["pleura"]["discretisation"]["extra"] = json!(2);
        let Err(p) = radscore_settings(&doc) else {
            panic!("unknown keys accepted");
        };
        let keys: Vec<&str> = p.extra["unsupported_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["key"].as_str().unwrap())
            .collect();
        for want in [
            "settings.colour",
            "settings.profiles.other.bogus",
            "settings.profiles.pleura.discretisation.extra",
        ] {
            assert!(keys.contains(&want), "{want} not in {keys:?}");
        }
    }

    #[test]
    fn bundled_settings_round_trip_and_a_bad_value_is_named() {
        let s = radscore_settings(&bundled_json()).unwrap();
        assert_eq!(s.hash(), ExtractionSettings::bundled().hash());
        let mut doc = bundled_json();
        doc["profiles"]["other"]["texture_distance_vox"] = json!("one");
        let p = radscore_settings(&doc).unwrap_err();
        assert_eq!(
            p.extra["field"],
            "settings.profiles.other.texture_distance_vox"
        );
    }

    #[test]
    fn pyradiomics_text_and_object_give_the_same_settings() {
        let text = "setting:\n  binWidth: 10\nfeatureClass:\n  glcm: [Contrast]\n";
        let obj = json!({"setting": {"binWidth": 10}, "featureClass": {"glcm": ["Contrast"]}});
        let mut a = Map::new();
        a.insert("pyradiomics_params".into(), json!(text));
        let mut b = Map::new();
        b.insert("pyradiomics_params".into(), obj.clone());
        let (a, b) = (parse_fields(&a).unwrap(), parse_fields(&b).unwrap());
        assert_eq!(a.settings, b.settings);
        assert_eq!(a.pyradiomics_params, Some(obj));
        assert_eq!(a.naming, Some(Naming::Pyradiomics));
    }

    #[test]
    fn keys_are_found_through_uncaptured_map_keys() {
        let mut doc = json!({"profiles": {"pleura": {"a": 1}, "other": {"x": 2}}});
        let (key, value) = remove_key(&mut doc, "profiles.?.x", "x").unwrap();
        assert_eq!(
            (key.as_str(), value),
            ("settings.profiles.other.x", json!(2))
        );
        assert_eq!(remove_key(&mut doc, "profiles.?", "x"), None);
        let (key, _) = remove_key(&mut doc, ".", "profiles").unwrap();
        assert_eq!(key, "settings.profiles");
    }
}
