//! The model registry over HTTP: uploads validated with a 422 naming the fault, activation,
//! per-request model choice, trust annotations (out-of-distribution flag, contributions,
//! robustness) and results that keep the model that made them.
//!
//! The models are built by `tests/support/make_test_models.py` with the pinned
//! scikit-learn / skl2onnx in `.venv`, trained on `training/data/cohort.csv`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::helpers::{TestApp, assert_problem, crate_dir, run_support, spawn_app};
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
