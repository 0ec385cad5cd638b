//! Location-aware model bundles: one sub-model per lesion location, each with its own
//! robust-feature list, registered and versioned as one model.
//!
//! The pilot study found that which features are reproducible depends on where the
//! lesion is, and recommends a separate model per location. A bundle manifest
//! ([`BundleManifest`]) names the bundle and lists its sub-models; each sub-model has an
//! id, the locations it covers (no location is covered twice) and an ordinary single-model
//! [`Manifest`] (feature list, settings, training ranges, explanation, robustness,
//! acquisition envelope). Each sub-model's graph is checked like a single model's: its
//! input width must equal its own feature count, its output must be a probability.
//!
//! A job routes each lesion to the sub-model covering its location
//! ([`LoadedModel::route`]); a lesion whose location no sub-model covers is left unscored
//! with the reason instead of failing the job.
//!
//! # Wire format
//! `POST /v1/models` takes the bundle manifest in the `manifest` part and one ONNX graph
//! per sub-model in a part named [`SUB_MODEL_FIELD_PREFIX`]`<id>` (e.g. `model.pleura`).
//! A bundle manifest is recognised by its `bundle_version` key.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Manifest, Model, ModelError, onnx_sha256};
use crate::features::{ExtractionSettings, Location};

/// The bundle manifest schema version this build reads.
pub const BUNDLE_SCHEMA_VERSION: u32 = 1;

/// Multipart field prefix of a sub-model's ONNX graph: `model.<sub-model id>`.
pub const SUB_MODEL_FIELD_PREFIX: &str = "model.";

/// Longest sub-model id (it becomes part of a blob key and a multipart field name).
pub const MAX_SUB_MODEL_ID_CHARS: usize = 64;

/// A bundle's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleManifest {
    /// Must equal [`BUNDLE_SCHEMA_VERSION`]; its presence marks a bundle.
    pub bundle_version: u32,
    /// Bundle name (the registry's name; unique per tenant with `version`).
    pub name: String,
    pub version: String,
    /// True when any sub-model is a synthetic demo (then it must be true).
    pub synthetic_demo: bool,
    /// Plain-language intended use and its limits.
    pub intended_use: String,
    /// The sub-models, in routing order (locations are disjoint, so order only matters for
    /// display).
    pub sub_models: Vec<SubModelSpec>,
}

/// One sub-model of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubModelSpec {
    /// Letters, digits, `_` or `-`; unique in the bundle.
    pub id: String,
    /// The lesion locations it scores (non-empty; no location in two sub-models).
    pub locations: Vec<Location>,
    /// `sha256:<hex>` of its ONNX graph: optional on upload (checked when given), always
    /// set in the registry's copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Its own single-model manifest (its `feature_names` are its robust features).
    pub manifest: Manifest,
}

impl BundleManifest {
    /// Whether a manifest document is a bundle manifest (it has `bundle_version`).
    pub fn is_bundle(doc: &serde_json::Value) -> bool {
        doc.get("bundle_version").is_some()
    }

    /// Check the bundle's own consistency and each sub-manifest's.
    ///
    /// # Errors
    /// [`ModelError::ManifestInvalid`] naming the sub-model and the fault: schema version,
    /// no sub-models, a bad or repeated id, no locations, a location in two sub-models,
    /// sub-models with different settings hashes, a synthetic sub-model in a bundle not
    /// marked synthetic, or any fault of [`Manifest::validate`].
    pub fn validate(&self) -> Result<(), ModelError> {
        let invalid = |msg: String| Err(ModelError::ManifestInvalid(msg));
        if self.bundle_version != BUNDLE_SCHEMA_VERSION {
            return invalid(format!(
                "bundle_version {} is not supported (expected {BUNDLE_SCHEMA_VERSION})",
                self.bundle_version
            ));
        }
        if self.sub_models.is_empty() {
            return invalid("sub_models is empty".to_owned());
        }
        let mut ids = std::collections::HashSet::new();
        let mut owner: BTreeMap<Location, &str> = BTreeMap::new();
        for sub in &self.sub_models {
            if !valid_sub_model_id(&sub.id) {
                return invalid(format!(
                    "sub-model id '{}' is not 1 to {MAX_SUB_MODEL_ID_CHARS} letters, digits, \
                     '_' or '-'",
                    sub.id
                        .chars()
                        .take(MAX_SUB_MODEL_ID_CHARS)
                        .collect::<String>()
                ));
            }
            if !ids.insert(sub.id.as_str()) {
                return invalid(format!("sub-model id '{}' appears twice", sub.id));
            }
            if sub.locations.is_empty() {
                return invalid(format!("sub-model '{}' covers no location", sub.id));
            }
            for location in &sub.locations {
                if let Some(other) = owner.insert(*location, &sub.id) {
                    return invalid(format!(
                        "location '{}' is covered by sub-models '{other}' and '{}'",
                        location.as_str(),
                        sub.id
                    ));
                }
            }
            sub.manifest
                .validate()
                .map_err(|e| in_sub_model(&sub.id, e))?;
            if sub.manifest.synthetic_demo && !self.synthetic_demo {
                return invalid(format!(
                    "sub-model '{}' is a synthetic demo, so the bundle must set \
                     synthetic_demo: true",
                    sub.id
                ));
            }
        }
        let first = &self.sub_models[0];
        if let Some(other) = self
            .sub_models
            .iter()
            .find(|s| s.manifest.settings_hash != first.manifest.settings_hash)
        {
            return invalid(format!(
                "sub-models '{}' and '{}' use different extraction settings ({} and {}); a \
                 bundle is extracted once",
                first.id, other.id, first.manifest.settings_hash, other.manifest.settings_hash
            ));
        }
        Ok(())
    }

    /// Every sub-model must be usable with `settings` ([`Manifest::check_compatible`]).
    ///
    /// # Errors
    /// As [`Manifest::check_compatible`], for the first sub-model that fails.
    pub fn check_compatible(&self, settings: &ExtractionSettings) -> Result<(), ModelError> {
        for sub in &self.sub_models {
            sub.manifest
                .check_compatible(settings)
                .map_err(|e| in_sub_model(&sub.id, e))?;
        }
        Ok(())
    }

    /// The settings hash every sub-model shares (after [`BundleManifest::validate`]).
    pub fn settings_hash(&self) -> &str {
        self.sub_models
            .first()
            .map_or("", |s| s.manifest.settings_hash.as_str())
    }

    /// The locations no sub-model covers.
    pub fn uncovered(&self) -> Vec<Location> {
        Location::ALL
            .into_iter()
            .filter(|l| !self.sub_models.iter().any(|s| s.locations.contains(l)))
            .collect()
    }
}

/// Whether `id` may name a sub-model.
pub fn valid_sub_model_id(id: &str) -> bool {
    (1..=MAX_SUB_MODEL_ID_CHARS).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// The digest a bundle is registered under: `sha256:` over `<id> <sha256>\n` of each
/// sub-model, in manifest order (so a changed graph or routing changes the bundle digest).
pub fn bundle_sha256(manifest: &BundleManifest) -> String {
    let mut hasher = Sha256::new();
    for sub in &manifest.sub_models {
        hasher.update(sub.id.as_bytes());
        hasher.update(b" ");
        hasher.update(sub.sha256.as_deref().unwrap_or("").as_bytes());
        hasher.update(b"\n");
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Put the sub-model's id in front of a validation error, keeping its kind (so the API
/// still answers with the problem type of the check that failed).
pub fn in_sub_model(id: &str, e: ModelError) -> ModelError {
    let prefix = |s: String| format!("sub-model '{id}': {s}");
    match e {
        ModelError::ManifestInvalid(s) => ModelError::ManifestInvalid(prefix(s)),
        ModelError::Signature(s) => ModelError::Signature(prefix(s)),
        ModelError::NotProbability(s) => ModelError::NotProbability(prefix(s)),
        ModelError::Session { path, reason } => ModelError::Session {
            path,
            reason: prefix(reason),
        },
        other => other,
    }
}

/// A loaded bundle: its manifest (with every sub-model's `sha256` set) and one loaded
/// [`Model`] per sub-model, in manifest order.
#[derive(Debug)]
pub struct Bundle {
    manifest: BundleManifest,
    models: Vec<Arc<Model>>,
}

impl Bundle {
    /// Load every sub-model from its graph bytes (`graphs` by sub-model id), checking each
    /// graph against its own manifest, and fill in (or check) each sub-model's `sha256`.
    ///
    /// Blocking (ONNX Runtime sessions are built); call it from `spawn_blocking`.
    ///
    /// # Errors
    /// [`ModelError::ManifestInvalid`] for a missing graph or a `sha256` that does not
    /// match its graph; errors of [`Model::from_bytes`], naming the sub-model.
    pub fn from_graphs(
        mut manifest: BundleManifest,
        graphs: &BTreeMap<String, bytes::Bytes>,
        origin: &Path,
    ) -> Result<Bundle, ModelError> {
        manifest.validate()?;
        let mut models = Vec::with_capacity(manifest.sub_models.len());
        for sub in &mut manifest.sub_models {
            let graph = graphs.get(&sub.id).ok_or_else(|| {
                ModelError::ManifestInvalid(format!(
                    "sub-model '{}' has no graph (send it as part '{SUB_MODEL_FIELD_PREFIX}{}')",
                    sub.id, sub.id
                ))
            })?;
            let digest = onnx_sha256(graph);
            if let Some(declared) = &sub.sha256
                && *declared != digest
            {
                return Err(ModelError::ManifestInvalid(format!(
                    "sub-model '{}': sha256 is {declared} but its graph hashes to {digest}",
                    sub.id
                )));
            }
            sub.sha256 = Some(digest);
            let origin = origin.join(format!("{}.onnx", sub.id));
            let model = Model::from_bytes(sub.manifest.clone(), graph, &origin)
                .map_err(|e| in_sub_model(&sub.id, e))?;
            models.push(Arc::new(model));
        }
        if let Some(extra) = graphs
            .keys()
            .find(|k| !manifest.sub_models.iter().any(|s| &s.id == *k))
        {
            return Err(ModelError::ManifestInvalid(format!(
                "graph '{SUB_MODEL_FIELD_PREFIX}{extra}' names no sub-model of the manifest"
            )));
        }
        Ok(Bundle { manifest, models })
    }

    /// Score the probe rows of every sub-model ([`Model::check_probability_output`]).
    ///
    /// # Errors
    /// [`ModelError::NotProbability`] naming the sub-model.
    pub fn check_probability_output(&self) -> Result<(), ModelError> {
        for (sub, model) in self.manifest.sub_models.iter().zip(&self.models) {
            model
                .check_probability_output()
                .map_err(|e| in_sub_model(&sub.id, e))?;
        }
        Ok(())
    }

    /// The manifest, with every sub-model's `sha256`.
    pub fn manifest(&self) -> &BundleManifest {
        &self.manifest
    }

    /// See [`bundle_sha256`].
    pub fn sha256(&self) -> String {
        bundle_sha256(&self.manifest)
    }
}

/// What a job scores with: one model for every lesion, or a bundle that routes by
/// location.
#[derive(Debug, Clone)]
pub enum LoadedModel {
    Single(Arc<Model>),
    Bundle(Arc<Bundle>),
}

/// The model a lesion is scored with.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    /// Index of the sub-model (0 for a single model), for grouping rows.
    pub index: usize,
    /// The sub-model's spec; `None` for a single model.
    pub sub_model: Option<&'a SubModelSpec>,
    pub model: &'a Arc<Model>,
}

impl LoadedModel {
    /// The model for a lesion at `location`; `None` when a bundle has no sub-model for it.
    pub fn route(&self, location: Location) -> Option<Route<'_>> {
        match self {
            LoadedModel::Single(model) => Some(Route {
                index: 0,
                sub_model: None,
                model,
            }),
            LoadedModel::Bundle(bundle) => bundle
                .manifest
                .sub_models
                .iter()
                .zip(&bundle.models)
                .enumerate()
                .find(|(_, (sub, _))| sub.locations.contains(&location))
                .map(|(index, (sub, model))| Route {
                    index,
                    sub_model: Some(sub),
                    model,
                }),
        }
    }

    /// Every model (the single one, or each sub-model in order).
    pub fn models(&self) -> Vec<&Arc<Model>> {
        match self {
            LoadedModel::Single(model) => vec![model],
            LoadedModel::Bundle(bundle) => bundle.models.iter().collect(),
        }
    }

    /// The bundle's manifest, for a bundle.
    pub fn bundle_manifest(&self) -> Option<&BundleManifest> {
        match self {
            LoadedModel::Single(_) => None,
            LoadedModel::Bundle(bundle) => Some(&bundle.manifest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO_MANIFEST: &str = include_str!("../../models/demo/manifest.json");

    fn bundle() -> BundleManifest {
        let demo: Manifest = serde_json::from_str(DEMO_MANIFEST).unwrap();
        let sub = |id: &str, locations: Vec<Location>| SubModelSpec {
            id: id.into(),
            locations,
            sha256: None,
            manifest: demo.clone(),
        };
        BundleManifest {
            bundle_version: BUNDLE_SCHEMA_VERSION,
            name: "b".into(),
            version: "1".into(),
            synthetic_demo: true,
            intended_use: "tests".into(),
            sub_models: vec![
                sub("chest", vec![Location::Pleura]),
                sub("rest", vec![Location::Other, Location::SoftTissue]),
            ],
        }
    }

    fn refusal(b: &BundleManifest) -> String {
        match b.validate() {
            Err(ModelError::ManifestInvalid(m)) => m,
            other => panic!("expected ManifestInvalid, got {other:?}"),
        }
    }

    #[test]
    fn a_consistent_bundle_validates_and_names_its_gaps() {
        let b = bundle();
        b.validate().unwrap();
        assert_eq!(b.uncovered(), [Location::LymphNode, Location::Peritoneum]);
        assert!(BundleManifest::is_bundle(
            &serde_json::to_value(&b).unwrap()
        ));
        let single: serde_json::Value = serde_json::from_str(DEMO_MANIFEST).unwrap();
        assert!(!BundleManifest::is_bundle(&single));
    }

    #[test]
    fn each_inconsistency_is_refused_with_the_sub_model_named() {
        let mut b = bundle();
        b.sub_models[1].locations.push(Location::Pleura);
        assert!(refusal(&b).contains("'pleura' is covered by sub-models 'chest' and 'rest'"));

        let mut b = bundle();
        b.sub_models[1].id = "chest".into();
        assert!(refusal(&b).contains("'chest' appears twice"));

        let mut b = bundle();
        b.sub_models[0].id = "a/b".into();
        assert!(refusal(&b).contains("'a/b' is not"));

        let mut b = bundle();
        b.sub_models[0].locations.clear();
        assert!(refusal(&b).contains("'chest' covers no location"));

        let mut b = bundle();
        b.synthetic_demo = false;
        assert!(refusal(&b).contains("synthetic_demo: true"));

        let mut b = bundle();
        b.sub_models[1].manifest.feature_names.clear();
        assert!(refusal(&b).starts_with("sub-model 'rest': "));

        let mut b = bundle();
        b.sub_models.clear();
        assert!(refusal(&b).contains("sub_models is empty"));
    }

    #[test]
    fn the_bundle_digest_depends_on_graphs_and_routing() {
        let mut b = bundle();
        b.sub_models[0].sha256 = Some("sha256:aa".into());
        b.sub_models[1].sha256 = Some("sha256:bb".into());
        let digest = bundle_sha256(&b);
        let mut other = b.clone();
        other.sub_models[1].sha256 = Some("sha256:cc".into());
        assert_ne!(bundle_sha256(&other), digest);
        let mut renamed = b.clone();
        renamed.sub_models[1].id = "others".into();
        assert_ne!(bundle_sha256(&renamed), digest);
        // `printf 'chest sha256:aa\nrest sha256:bb\n' | sha256sum` (GNU coreutils).
        assert_eq!(
            digest,
            "sha256:088f069f3aec2cfd0a00a636ff2c1e90d93e57b67c4574e1634cef847954011c"
        );
    }
}
