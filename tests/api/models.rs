//! The model registry over HTTP: uploads validated with a 422 naming the fault, activation,
//! per-request model choice, trust annotations (out-of-distribution flag, contributions,
//! robustness) and results that keep the model that made them.
//!
//! The models are built by `tests/support/make_test_models.py` with the pinned
//! scikit-learn / skl2onnx in `.venv`, trained on `training/data/cohort.csv`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::helpers::{TestApp, assert_problem, crate_dir, run_support, spawn_app, status_json};
use super::tenancy::post_demo_model_copy;

/// Build the test models into a temporary directory.
fn build_models() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().to_path_buf();
    run_support(
        "make_test_models.py",
        &[
            "--demo-manifest",
            crate_dir()
                .join("models/demo/manifest.json")
                .to_str()
                .unwrap(),
            "--cohort",
            crate_dir()
                .join("training/data/cohort.csv")
                .to_str()
                .unwrap(),
            "--out-dir",
            out.to_str().unwrap(),
        ],
    );
    (dir, out)
}

fn read_model(dir: &Path, name: &str) -> (Vec<u8>, Value) {
    let onnx = std::fs::read(dir.join(name).join("model.onnx")).unwrap();
    let manifest = std::fs::read(dir.join(name).join("manifest.json")).unwrap();
    (onnx, serde_json::from_slice(&manifest).unwrap())
}

async fn upload(app: &TestApp, dir: &Path, name: &str) -> (u16, Value) {
    let (onnx, manifest) = read_model(dir, name);
    app.post_model(onnx, serde_json::to_vec(&manifest).unwrap())
        .await
}

/// The bundled model is registered at startup as the only, active model.
#[tokio::test]
async fn the_bundled_model_is_registered_and_active() {
    let app = spawn_app().await;
    let (status, list) = app.get_json("/v1/models").await;
    assert_eq!(status, 200, "{list}");
    let models = list["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "{list}");
    assert_eq!(models[0]["bundled"], true);
    assert_eq!(models[0]["active"], true);
    assert_eq!(models[0]["name"], "radscore-demo-logreg");
    let id = models[0]["id"].as_str().unwrap();
    let (status, one) = app.get_json(&format!("/v1/models/{id}")).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["manifest"]["name"], "radscore-demo-logreg");
    let (status, missing) = app.get_json("/v1/models/nope").await;
    assert_problem(status, &missing, 404, "not-found", &["nope"]);
}

/// Each kind of unusable upload is refused with a 422 whose type and detail name the fault.
#[tokio::test]
async fn unusable_uploads_are_refused_with_the_reason() {
    let app = spawn_app().await;
    let (_tmp, dir) = build_models();

    let (status, body) = upload(&app, &dir, "mismatch").await;
    assert_problem(
        status,
        &body,
        422,
        "model-signature-mismatch",
        &[
            "input 'input' has shape",
            "expected [batch, 3] for 3 feature names",
        ],
    );

    let (status, body) = upload(&app, &dir, "regression").await;
    assert_problem(status, &body, 422, "not-a-probability", &["outside [0, 1]"]);

    let (status, body) = upload(&app, &dir, "unknown").await;
    assert_problem(
        status,
        &body,
        422,
        "unknown-features",
        &["wavelet_hhh_glcm_contrast"],
    );
    assert_eq!(body["features"], json!(["wavelet_hhh_glcm_contrast"]));

    // A consistent manifest for another extraction profile: settings and hash agree with
    // each other, not with the service.
    let (onnx, mut manifest) = read_model(&dir, "narrow");
    manifest["extraction_settings"]["name"] = json!("another-profile");
    let other = radscore::features::ExtractionSettings::from_json(
        &manifest["extraction_settings"].to_string(),
    )
    .unwrap();
    manifest["settings_hash"] = json!(other.hash());
    let (status, body) = app
        .post_model(onnx.clone(), serde_json::to_vec(&manifest).unwrap())
        .await;
    assert_problem(
        status,
        &body,
        422,
        "unknown-settings-profile",
        &[&other.hash()],
    );

    let (status, body) = app.post_model(onnx.clone(), b"{not json".to_vec()).await;
    assert_problem(status, &body, 422, "invalid-manifest", &["manifest"]);

    let (_, good_manifest) = read_model(&dir, "narrow");
    let manifest_bytes = serde_json::to_vec(&good_manifest).unwrap();
    let (status, body) = app
        .post_model(b"not an onnx graph".to_vec(), manifest_bytes)
        .await;
    assert_problem(status, &body, 422, "invalid-onnx", &[]);

    let (status, list) = app.get_json("/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(
        list["models"].as_array().unwrap().len(),
        1,
        "nothing stored: {list}"
    );
}

/// Upload, per-request choice, activation, deactivation, trust annotations, and old results
/// that keep the model version that made them.
#[tokio::test]
async fn registry_lifecycle_and_results_keep_their_model() {
    let app = spawn_app().await;
    let (_tmp, dir) = build_models();
    let (series, seg, _, _) = app.upload_digital_phantom().await;
    let job = |model_id: Option<&str>| {
        let mut body = json!({
            "series_id": series, "segmentation_id": seg,
            "lesions": [{"label": 1, "location": "other"}]
        });
        if let Some(id) = model_id {
            body["model_id"] = json!(id);
        }
        body
    };

    // Registered inactive; a second upload of the same name and version is a conflict.
    let (status, narrow) = upload(&app, &dir, "narrow").await;
    assert_eq!(status, 201, "{narrow}");
    assert_eq!(narrow["active"], false);
    let narrow_id = narrow["id"].as_str().unwrap().to_string();
    let (status, body) = upload(&app, &dir, "narrow").await;
    assert_problem(status, &body, 409, "model-exists", &[&narrow_id]);

    // Without model_id: the bundled (active) model.
    let first = app.run_job_body(&job(None)).await;
    assert_eq!(first["model"]["name"], "radscore-demo-logreg");
    let bundled_id = first["model"]["id"].as_str().unwrap().to_string();
    assert!(bundled_id.starts_with("bundled-"), "{}", first["model"]);
    assert_eq!(first["model"]["settings_hash"], first["settings_hash"]);

    // Per request: the uploaded model, with its trust annotations. The digital phantom's
    // intensities (1–6) are far below the CT cohort's mean intensity range.
    let chosen = app.run_job_body(&job(Some(&narrow_id))).await;
    assert_eq!(chosen["model"]["id"], narrow_id.as_str());
    assert_eq!(chosen["model"]["version"], "1.0.0");
    assert_eq!(chosen["model"]["sha256"], narrow["sha256"]);
    let lesion = &chosen["lesions"][0];
    let p = lesion["response_probability"]
        .as_f64()
        .unwrap_or_else(|| panic!("no probability: {lesion}"));
    assert!((0.0..=1.0).contains(&p));
    let trust = &lesion["trust"];
    assert_eq!(trust["out_of_distribution"], true, "{trust}");
    let out = trust["out_of_range_features"].as_array().unwrap();
    assert!(out.iter().any(|f| f["feature"] == "stat_mean"), "{trust}");
    for f in out {
        let v = f["value"].as_f64().unwrap();
        let (lo, hi) = (
            f["training_min"].as_f64().unwrap(),
            f["training_max"].as_f64().unwrap(),
        );
        assert!(v < lo || v > hi, "{f} is listed but inside its range");
        assert_eq!(
            lesion["features"][f["feature"].as_str().unwrap()],
            f["value"]
        );
    }
    let top = trust["top_contributions"].as_array().unwrap();
    assert_eq!(top.len(), 3, "three features, all listed: {trust}");
    let magnitudes: Vec<f64> = top
        .iter()
        .map(|c| c["contribution"].as_f64().unwrap().abs())
        .collect();
    assert!(
        magnitudes.windows(2).all(|w| w[0] >= w[1]),
        "{magnitudes:?}"
    );
    assert_eq!(trust["feature_robustness"]["morph_volume"], "excellent");
    assert_eq!(trust["feature_robustness"]["stat_mean"], "poor");
    assert_eq!(trust["feature_robustness"]["stat_var"], "not_assessed");

    // Activate: jobs without model_id now use it; only one model is active.
    let (status, activated) = app
        .post_action(&format!("/v1/models/{narrow_id}/activate"))
        .await;
    assert_eq!(status, 200, "{activated}");
    assert_eq!(activated["active"], true);
    let (_, list) = app.get_json("/v1/models").await;
    let active: Vec<&Value> = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["active"] == true)
        .collect();
    assert_eq!(active.len(), 1, "{list}");
    assert_eq!(active[0]["id"], narrow_id.as_str());
    let second = app.run_job_body(&job(None)).await;
    assert_eq!(second["model"]["id"], narrow_id.as_str());

    // A new version with wide training ranges: the same lesion is in distribution.
    let (status, wide) = upload(&app, &dir, "wide").await;
    assert_eq!(status, 201, "{wide}");
    let wide_id = wide["id"].as_str().unwrap().to_string();
    let (status, _) = app
        .post_action(&format!("/v1/models/{wide_id}/activate"))
        .await;
    assert_eq!(status, 200);
    let third = app.run_job_body(&job(None)).await;
    assert_eq!(third["model"]["version"], "2.0.0");
    assert_eq!(third["lesions"][0]["trust"]["out_of_distribution"], false);
    assert_eq!(
        third["lesions"][0]["trust"]["out_of_range_features"],
        json!([])
    );

    // Old results keep the model that made them.
    let first_job = first["job_id"].as_str().unwrap();
    let (_, again) = app.get_json(&format!("/v1/jobs/{first_job}/result")).await;
    assert_eq!(again["model"], first["model"]);
    let second_job = second["job_id"].as_str().unwrap();
    let (_, again) = app.get_json(&format!("/v1/jobs/{second_job}/result")).await;
    assert_eq!(again["model"]["id"], narrow_id.as_str());
    assert_eq!(again["model"]["version"], "1.0.0");

    // Deactivated: a job must name a model; unknown ids are refused.
    let (status, off) = app
        .post_action(&format!("/v1/models/{wide_id}/deactivate"))
        .await;
    assert_eq!((status, &off["active"]), (200, &json!(false)));
    let (status, _, body) = app.post_job(&job(None)).await;
    assert_problem(
        status,
        &body,
        422,
        "no-active-model",
        &["no model is active"],
    );
    let (status, _, body) = app.post_job(&job(Some("no-such-model"))).await;
    assert_problem(status, &body, 422, "unknown-model", &["no-such-model"]);
    let named = app.run_job_body(&job(Some(&bundled_id))).await;
    assert_eq!(named["model"]["id"], bundled_id.as_str());
    let (status, body) = app.post_action("/v1/models/nope/activate").await;
    assert_problem(status, &body, 404, "not-found", &["nope"]);
}

/// A series outside the manifest's acquisition envelope: a warning per lesion naming the
/// attribute, or (`on_violation: refuse`) an unscored lesion that says why.
#[tokio::test]
async fn series_outside_the_acquisition_envelope_warn_or_refuse() {
    let app = spawn_app().await;
    let (_tmp, dir) = build_models();
    let (series, seg, _, _) = app.upload_digital_phantom().await;
    let (onnx, base) = read_model(&dir, "wide");
    let register = async |version: &str, on_violation: &str| -> String {
        let mut manifest = base.clone();
        manifest["version"] = json!(version);
        // The phantom's slices are 2 mm thick and it records no kVp.
        manifest["acquisition"] = json!({
            "slice_thickness_mm": {"min": 0.5, "max": 1.0},
            "kvp": {"min": 100.0, "max": 140.0},
            "on_violation": on_violation,
        });
        let (status, body) = app
            .post_model(onnx.clone(), serde_json::to_vec(&manifest).unwrap())
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    };
    let warn_id = register("3.0.0", "warn").await;
    let refuse_id = register("4.0.0", "refuse").await;
    let job = |id: &str| {
        json!({
            "series_id": series, "segmentation_id": seg, "model_id": id,
            "lesions": [{"label": 1, "location": "other"}]
        })
    };

    let warned = app.run_job_body(&job(&warn_id)).await;
    assert_eq!(warned["acquisition"]["slice_thickness_mm"], 2.0, "{warned}");
    let lesion = &warned["lesions"][0];
    assert_eq!(lesion["status"], "ok");
    assert!(lesion["response_probability"].is_number());
    let warnings: Vec<&str> = lesion["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("acquisition: slice thickness 2 mm is outside")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("kVp is not recorded")),
        "{warnings:?}"
    );

    let refused = app.run_job_body(&job(&refuse_id)).await;
    let lesion = &refused["lesions"][0];
    assert_eq!(lesion["status"], "unscored", "{lesion}");
    assert_eq!(lesion["response_probability"], Value::Null);
    assert_eq!(lesion["trust"], Value::Null);
    assert_eq!(lesion["error"]["code"], "outside_training_envelope");
    let message = lesion["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("slice thickness") && message.contains("kVp"),
        "{message}"
    );
    assert!(
        lesion["features"].as_object().unwrap().len() > 3,
        "features are still reported"
    );
}

/// Model ids with a graph in the blob store.
fn stored_graphs(app: &TestApp) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(app.blob_dir().join("models"))
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Activation is per tenant: A's choice does not change B's default, B deactivating the
/// shared bundled model leaves A and a third tenant alone, and each tenant's jobs without
/// `model_id` run with that tenant's active model. A refused duplicate stores no graph.
#[tokio::test]
async fn activation_is_per_tenant_and_the_bundled_model_is_shared() {
    let a = spawn_app().await;
    let b = a.as_tenant("trial-b", false).await;
    let c = a.as_tenant("trial-c", false).await;
    let (status, own) = post_demo_model_copy(&a, "a-1").await;
    assert_eq!(status, 201, "{own}");
    assert_eq!(
        (&own["shared"], &own["bundled"]),
        (&json!(false), &json!(false))
    );
    let own_id = own["id"].as_str().unwrap().to_string();

    let graphs = stored_graphs(&a);
    assert_eq!(graphs.len(), 2, "bundled and A's: {graphs:?}");
    let (status, body) = post_demo_model_copy(&a, "a-1").await;
    assert_problem(status, &body, 409, "model-exists", &[&own_id]);
    assert_eq!(
        stored_graphs(&a),
        graphs,
        "the duplicate left no graph behind"
    );

    let (status, on) = a
        .post_action(&format!("/v1/models/{own_id}/activate"))
        .await;
    assert_eq!((status, &on["active"]), (200, &json!(true)), "{on}");
    let active_of = async |app: &TestApp| -> Vec<String> {
        let (status, list) = app.get_json("/v1/models").await;
        assert_eq!(status, 200, "{list}");
        list["models"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["active"] == true)
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(active_of(&a).await, std::slice::from_ref(&own_id));
    let bundled = active_of(&b).await;
    assert_eq!(bundled.len(), 1);
    assert!(bundled[0].starts_with("bundled-"), "{bundled:?}");

    let job = async |app: &TestApp| -> (u16, Value) {
        let (series, seg, _, _) = app.upload_digital_phantom().await;
        let body = json!({
            "series_id": series, "segmentation_id": seg,
            "lesions": [{"label": 1, "location": "other"}]
        });
        let (status, location, job) = app.post_job(&body).await;
        if status != 202 {
            return (status, job);
        }
        let done = app.wait_for_job(&location.unwrap()).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        let (_, result) = app
            .get_json(&format!("/v1/jobs/{}/result", done["id"].as_str().unwrap()))
            .await;
        (200, result)
    };
    let (_, result) = job(&a).await;
    assert_eq!(result["model"]["id"], own_id.as_str());
    let (_, result) = job(&b).await;
    assert_eq!(result["model"]["id"], bundled[0].as_str());

    // B turns the shared default off for itself only.
    let (status, off) = b
        .post_action(&format!("/v1/models/{}/deactivate", bundled[0]))
        .await;
    assert_eq!((status, &off["active"]), (200, &json!(false)), "{off}");
    assert!(active_of(&b).await.is_empty());
    assert_eq!(active_of(&c).await, bundled, "C still has the default");
    assert_eq!(active_of(&a).await, std::slice::from_ref(&own_id));
    let (status, body) = job(&b).await;
    assert_problem(status, &body, 422, "no-active-model", &[]);
    let (status, on) = b
        .post_action(&format!("/v1/models/{}/activate", bundled[0]))
        .await;
    assert_eq!((status, &on["active"]), (200, &json!(true)), "{on}");
    assert_eq!(active_of(&b).await, bundled);
}

/// POST a location-aware bundle from `dir/name`: its manifest and one `model.<id>` part per
/// `<id>.onnx` file.
async fn post_bundle(
    app: &TestApp,
    dir: &Path,
    name: &str,
    manifest: Option<&Value>,
) -> (u16, Value) {
    let d = dir.join(name);
    let manifest = match manifest {
        Some(doc) => serde_json::to_vec(doc).unwrap(),
        None => std::fs::read(d.join("manifest.json")).unwrap(),
    };
    let mut form = reqwest::multipart::Form::new().part(
        "manifest",
        reqwest::multipart::Part::bytes(manifest).file_name("manifest.json"),
    );
    let mut graphs: Vec<PathBuf> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    graphs.sort();
    for path in graphs {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        form = form.part(
            format!("model.{stem}"),
            reqwest::multipart::Part::bytes(bytes).file_name(format!("{stem}.onnx")),
        );
    }
    let resp = app
        .client
        .post(app.url("/v1/models"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    status_json(resp).await
}

/// P(responder) of a logistic sub-model from its manifest's linear terms (the scaler and
/// logistic layer the graph was exported from), as an independent reference.
fn logistic_reference(manifest: &Value, features: &Value) -> f64 {
    let terms = &manifest["explanation"]["terms"];
    let logit = manifest["feature_names"].as_array().unwrap().iter().fold(
        manifest["explanation"]["intercept"].as_f64().unwrap(),
        |acc, name| {
            let t = &terms[name.as_str().unwrap()];
            let x = features[name.as_str().unwrap()].as_f64().unwrap();
            let z = (x - t["mean"].as_f64().unwrap()) / t["scale"].as_f64().unwrap();
            acc + t["coefficient"].as_f64().unwrap() * z
        },
    );
    1.0 / (1.0 + (-logit).exp())
}

/// A location-aware bundle: each sub-model is validated against its own feature list (a
/// mismatch names the sub-model), each lesion is scored by the sub-model of its location
/// (probability equal to that sub-model's logistic formula), the result names the
/// sub-model, and a lesion at an uncovered location is unscored with the reason while the
/// job succeeds.
#[tokio::test]
async fn location_bundles_route_lesions_and_leave_uncovered_ones_unscored() {
    let app = spawn_app().await;
    let (_tmp, dir) = build_models();

    let (status, body) = post_bundle(&app, &dir, "bundle_mismatch", None).await;
    assert_problem(
        status,
        &body,
        422,
        "model-signature-mismatch",
        &[
            "sub-model 'pleura'",
            "expected [batch, 2] for 2 feature names",
        ],
    );
    let doc: Value =
        serde_json::from_slice(&std::fs::read(dir.join("bundle/manifest.json")).unwrap()).unwrap();
    let mut overlapping = doc.clone();
    overlapping["sub_models"][1]["locations"] = json!(["other", "pleura"]);
    let (status, body) = post_bundle(&app, &dir, "bundle", Some(&overlapping)).await;
    assert_problem(
        status,
        &body,
        422,
        "invalid-manifest",
        &["location 'pleura' is covered by sub-models 'pleura' and 'rest'"],
    );
    let (onnx, _) = read_model(&dir, "narrow");
    let (status, body) = app
        .post_model(onnx, serde_json::to_vec(&doc).unwrap())
        .await;
    assert_problem(
        status,
        &body,
        422,
        "invalid-model-upload",
        &["model.<sub-model id>"],
    );

    let (status, bundle) = post_bundle(&app, &dir, "bundle", None).await;
    assert_eq!(status, 201, "{bundle}");
    let bundle_id = bundle["id"].as_str().unwrap().to_string();
    let subs = bundle["sub_models"].as_array().unwrap();
    assert_eq!(subs.len(), 2, "{bundle}");
    assert_eq!(subs[0]["id"], "pleura");
    assert_eq!(
        subs[0]["feature_names"],
        json!(["morph_volume", "stat_mean"])
    );
    assert_eq!(subs[1]["locations"], json!(["other", "soft_tissue"]));
    for sub in subs {
        assert!(
            sub["sha256"].as_str().unwrap().starts_with("sha256:"),
            "{sub}"
        );
    }

    let case_dir = tempfile::tempdir().unwrap();
    let options = radscore::demo::DemoOptions {
        min_lesions: 3,
        max_lesions: 3,
        ..Default::default()
    };
    let case = radscore::demo::generate(case_dir.path(), 11, &options).unwrap();
    let (status, series) = app
        .post_series_zip(std::fs::read(&case.series_zip).unwrap())
        .await;
    assert_eq!(status, 201, "{series}");
    let (status, seg) = app
        .post_segmentation(
            series["id"].as_str().unwrap(),
            std::fs::read(&case.labelmap).unwrap(),
            "lesions.nii.gz",
        )
        .await;
    assert_eq!(status, 201, "{seg}");
    let labels: Vec<u32> = case.lesions.iter().map(|l| u32::from(l.label)).collect();
    let result = app
        .run_job_body(&json!({
            "series_id": series["id"], "segmentation_id": seg["id"], "model_id": bundle_id,
            "lesions": [
                {"label": labels[0], "location": "pleura"},
                {"label": labels[1], "location": "other"},
                {"label": labels[2], "location": "lymph_node"},
            ]
        }))
        .await;
    assert_eq!(result["model"]["id"], bundle_id.as_str());
    assert_eq!(result["model"]["sha256"], bundle["sha256"]);
    assert_eq!(result["model"]["sub_models"].as_array().unwrap().len(), 2);

    for (i, sub_id) in [(0, "pleura"), (1, "rest")] {
        let lesion = &result["lesions"][i];
        assert_eq!(lesion["status"], "ok", "{lesion}");
        assert_eq!(lesion["sub_model"]["id"], sub_id, "{lesion}");
        let sub_manifest = &doc["sub_models"][i]["manifest"];
        let expected = logistic_reference(sub_manifest, &lesion["features"]);
        let p = lesion["response_probability"].as_f64().unwrap();
        // float32 inference against the float64 formula.
        assert!((p - expected).abs() < 1e-4, "{sub_id}: {p} vs {expected}");
        let used: Vec<&Value> = lesion["trust"]["top_contributions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["feature"])
            .collect();
        assert_eq!(
            used.len(),
            sub_manifest["feature_names"].as_array().unwrap().len()
        );
    }
    let uncovered = &result["lesions"][2];
    assert_eq!(uncovered["status"], "unscored", "{uncovered}");
    assert_eq!(uncovered["response_probability"], Value::Null);
    assert_eq!(uncovered["sub_model"], Value::Null);
    assert_eq!(uncovered["error"]["code"], "location_not_covered");
    let message = uncovered["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("'lymph_node'") && message.contains("pleura"),
        "{message}"
    );
    assert!(!uncovered["features"].as_object().unwrap().is_empty());

    // training/make_bundle.py assembles a bundle the service accepts from model directories.
    let made = dir.join("made");
    let out = std::process::Command::new(super::helpers::python())
        .arg(crate_dir().join("training/make_bundle.py"))
        .args(["--name", "made-bundle", "--version", "1.0.0", "--out"])
        .arg(&made)
        .arg("--sub")
        .arg(format!("chest={}:pleura", dir.join("narrow").display()))
        .arg("--sub")
        .arg(format!(
            "nodes={}:lymph_node,peritoneum",
            dir.join("wide").display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, made_bundle) = post_bundle(&app, &dir, "made", None).await;
    assert_eq!(status, 201, "{made_bundle}");
    let ids: Vec<&Value> = made_bundle["sub_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(ids, [&json!("chest"), &json!("nodes")]);
}

/// Every scored lesion gets a prediction interval from re-scoring perturbed re-extractions
/// (bounded by the job option, off with 0, refused above the maximum), and the result has
/// a patient-level summary aggregating the lesions as documented.
#[tokio::test]
async fn prediction_intervals_and_the_patient_summary() {
    let app = spawn_app().await;
    let case_dir = tempfile::tempdir().unwrap();
    let options = radscore::demo::DemoOptions {
        min_lesions: 2,
        max_lesions: 2,
        ..Default::default()
    };
    let case = radscore::demo::generate(case_dir.path(), 13, &options).unwrap();
    let (_, series) = app
        .post_series_zip(std::fs::read(&case.series_zip).unwrap())
        .await;
    let (_, seg) = app
        .post_segmentation(
            series["id"].as_str().unwrap(),
            std::fs::read(&case.labelmap).unwrap(),
            "lesions.nii.gz",
        )
        .await;
    let body = |interval: Value| {
        json!({
            "series_id": series["id"], "segmentation_id": seg["id"],
            "lesions": [
                {"label": case.lesions[0].label, "location": "pleura"},
                {"label": case.lesions[1].label, "location": "soft_tissue"},
            ],
            "prediction_interval": interval,
        })
    };

    let (status, _, refused) = app.post_job(&body(json!({"perturbations": 33}))).await;
    assert_problem(
        status,
        &refused,
        422,
        "invalid-job-request",
        &["at most 32"],
    );
    let (status, _, refused) = app.post_job(&body(json!({"perturbations": -1}))).await;
    assert_problem(
        status,
        &refused,
        422,
        "invalid-job-request",
        &["prediction_interval"],
    );

    let result = app.run_job_body(&body(json!({"perturbations": 6}))).await;
    let mut probabilities = Vec::new();
    for lesion in result["lesions"].as_array().unwrap() {
        let p = lesion["response_probability"].as_f64().unwrap();
        probabilities.push(p);
        let iv = &lesion["prediction_interval"];
        assert_eq!(iv["perturbations"], 6, "{iv}");
        let scored = iv["scored"].as_u64().unwrap();
        assert!((1..=6).contains(&scored), "{iv}");
        assert!(iv["method"].as_str().unwrap().contains("erosion/dilation"));
        let [min, q05, q95, max] = ["min", "q05", "q95", "max"].map(|k| iv[k].as_f64().unwrap());
        assert!(
            (0.0..=1.0).contains(&min) && min <= q05 && q05 <= q95 && q95 <= max && max <= 1.0,
            "{iv}"
        );
        // ±1 voxel changes the volume the demo model weighs: the scores spread.
        assert!(max > min, "a real interval, not a point: {iv}");
    }
    let summary = &result["patient_summary"];
    assert_eq!(summary["lesions"], 2, "{summary}");
    let counts = ["scored", "unscored", "failed"].map(|k| summary[k].as_u64().unwrap());
    assert_eq!(counts, [2, 0, 0], "{summary}");
    let mean = (probabilities[0] + probabilities[1]) / 2.0;
    assert!((summary["mean_probability"].as_f64().unwrap() - mean).abs() < 1e-12);
    let max = probabilities[0].max(probabilities[1]);
    assert_eq!(summary["max_probability"].as_f64().unwrap(), max);
    let volume: f64 = result["lesions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["features"]["morph_volume"].as_f64().unwrap())
        .sum();
    assert!((summary["sum_volume_mm3"].as_f64().unwrap() - volume).abs() < 1e-9);
    assert_eq!(summary["measured"], 2);

    let off = app.run_job_body(&body(json!({"perturbations": 0}))).await;
    assert_eq!(off["lesions"][0]["prediction_interval"], Value::Null);
    assert_eq!(
        off["lesions"][0]["response_probability"], result["lesions"][0]["response_probability"],
        "the interval does not change the probability"
    );
}
