//! Per-job extraction settings: `settings`, `pyradiomics_params` and `naming` in job and
//! batch requests; unsupported keys named; effective settings and their hash recorded in
//! the job and the result; models pinned to other settings refused or left unscored.

use serde_json::{Value, json};

use crate::helpers::*;
use radscore::features::ExtractionSettings;

/// A PyRadiomics parameter file as a core lab writes it (YAML, with comments and `label`,
/// which the job's `lesions` list overrides).
const PARAMS_YAML: &str = "\
# first-order and GLCM only
setting:
  binWidth: 10
  label: 1
featureClass:
  firstorder: [Mean, Kurtosis]
  glcm: [Contrast]
";

/// The PyRadiomics columns [`PARAMS_YAML`] selects.
const PARAMS_COLUMNS: [&str; 3] = [
    "original_firstorder_Mean",
    "original_firstorder_Kurtosis",
    "original_glcm_Contrast",
];

/// A demo series with its label map; (series id, segmentation id, first label).
async fn demo_case(app: &TestApp) -> (String, String, u8) {
    let (series_id, seg_id, labels) = app.upload_demo_case(5).await;
    (series_id, seg_id, labels[0])
}

fn job_body(series: &str, seg: &str, label: u8, extra: Value) -> Value {
    let mut body = json!({"series_id": series, "segmentation_id": seg,
                          "lesions": [{"label": label, "location": "other"}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// Run a job and return (final job document, result).
async fn run(app: &TestApp, body: &Value) -> (Value, Value) {
    let (status, location, job) = app.post_job(body).await;
    assert_eq!(status, 202, "{job}");
    let location = location.unwrap();
    let done = app.wait_for_job(&location).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (status, result) = app.get_json(&format!("{location}/result")).await;
    assert_eq!(status, 200, "{result}");
    (done, result)
}

/// The settings a parameter file maps to, computed here the way the CLI does.
fn mapped(yaml: &str) -> ExtractionSettings {
    radscore::pyradiomics::params::parse(yaml, "job")
        .unwrap()
        .settings
}

/// A job with a PyRadiomics parameter file runs with its settings (recorded in the job and
/// the result with their hash), names its features as PyRadiomics does, and is not scored
/// by the active model, which was trained with other settings; the same file with
/// `naming: ibsi` gives the same values under IBSI tags.
#[tokio::test]
async fn pyradiomics_params_drive_the_job_and_its_names() {
    let app = spawn_app().await;
    let (series, seg, label) = demo_case(&app).await;
    let want = mapped(PARAMS_YAML);
    let service_hash = ExtractionSettings::bundled().hash();

    let body = job_body(
        &series,
        &seg,
        label,
        json!({"pyradiomics_params": PARAMS_YAML}),
    );
    let (job, result) = run(&app, &body).await;
    assert_eq!(job["settings_source"], "pyradiomics_params");
    assert_eq!(job["settings_hash"], want.hash());
    assert_eq!(job["naming"], "pyradiomics");
    assert_eq!(result["settings_hash"], want.hash());
    assert_eq!(result["settings"], serde_json::to_value(&want).unwrap());
    assert_eq!(result["naming"], "pyradiomics");
    let lesion = &result["lesions"][0];
    let mut names: Vec<&str> = lesion["features"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    let mut want = PARAMS_COLUMNS;
    want.sort_unstable();
    assert_eq!(names, want, "{lesion}");
    assert_eq!(lesion["status"], "unscored", "{lesion}");
    assert_eq!(lesion["error"]["code"], "settings_mismatch");
    assert!(lesion["response_probability"].is_null());
    let message = lesion["error"]["message"].as_str().unwrap();
    assert!(message.contains(&service_hash), "{message}");

    let ibsi = job_body(
        &series,
        &seg,
        label,
        json!({"pyradiomics_params": PARAMS_YAML, "naming": "ibsi"}),
    );
    let (job, ibsi) = run(&app, &ibsi).await;
    assert_eq!(job["naming"], "ibsi");
    let tags = &ibsi["lesions"][0]["features"];
    let named = &lesion["features"];
    assert_eq!(named["original_firstorder_Mean"], tags["stat_mean"]);
    assert_eq!(named["original_glcm_Contrast"], tags["cm_contrast_3D_avg"]);
    // PyRadiomics' kurtosis is Pearson's: IBSI's excess kurtosis + 3.
    let excess = tags["stat_kurt"].as_f64().unwrap();
    let pearson = named["original_firstorder_Kurtosis"].as_f64().unwrap();
    assert!(
        (pearson - (excess + 3.0)).abs() <= 1e-12 * pearson.abs(),
        "{pearson} {excess}"
    );
}

/// A job without settings records the service's (and is scored); one with a `settings`
/// document runs with it: the texture of a coarser discretisation differs while the mean
/// intensity does not, and its settings hash is recorded.
#[tokio::test]
async fn settings_documents_are_used_and_recorded() {
    let app = spawn_app().await;
    let (series, seg, label) = demo_case(&app).await;
    let service = ExtractionSettings::bundled();

    let (job, default) = run(&app, &job_body(&series, &seg, label, json!({}))).await;
    assert_eq!(job["settings_source"], "service");
    assert_eq!(job["settings_hash"], service.hash());
    assert_eq!(default["settings_source"], "service");
    assert_eq!(default["lesions"][0]["status"], "ok", "{default}");

    let mut own = serde_json::to_value(&service).unwrap();
    own["name"] = json!("coarse");
    for profile in own["profiles"].as_object_mut().unwrap().values_mut() {
        profile["discretisation"] = json!({"method": "fixed_bin_number", "bins": 8});
    }
    let parsed = ExtractionSettings::from_json(&own.to_string()).unwrap();
    let (job, coarse) = run(
        &app,
        &job_body(&series, &seg, label, json!({"settings": own})),
    )
    .await;
    assert_eq!(job["settings_source"], "settings");
    assert_eq!(job["settings_name"], "coarse");
    assert_eq!(job["settings_hash"], parsed.hash());
    assert_eq!(coarse["settings_hash"], parsed.hash());
    let (a, b) = (
        &default["lesions"][0]["features"],
        &coarse["lesions"][0]["features"],
    );
    assert_eq!(a["stat_mean"], b["stat_mean"]);
    assert_ne!(a["cm_contrast_3D_avg"], b["cm_contrast_3D_avg"]);
    assert_eq!(coarse["lesions"][0]["error"]["code"], "settings_mismatch");
}

/// Every unsupported key is named in one 422, for both kinds of settings; other bad values
/// of the new fields are refused with the field named.
#[tokio::test]
async fn unsupported_settings_keys_are_each_named() {
    let app = spawn_app().await;
    let (series, seg, label) = demo_case(&app).await;
    let post = |extra: Value| {
        let body = job_body(&series, &seg, label, extra);
        let app = &app;
        async move {
            let (status, _, problem) = app.post_job(&body).await;
            (status, problem)
        }
    };
    let keys = |problem: &Value| -> Vec<String> {
        problem["unsupported_keys"]
            .as_array()
            .unwrap_or_else(|| panic!("no unsupported_keys: {problem}"))
            .iter()
            .map(|e| e["key"].as_str().unwrap().to_string())
            .collect()
    };

    let params = "setting:\n  bogus: 1\n  distances: [1, 2]\nimageType:\n  LBP3D: {}\n";
    let (status, problem) = post(json!({"pyradiomics_params": params})).await;
    assert_problem(
        status,
        &problem,
        422,
        "invalid-settings",
        &["pyradiomics_params.setting.bogus"],
    );
    let named = keys(&problem);
    for key in [
        "pyradiomics_params.setting.bogus",
        "pyradiomics_params.setting.distances",
        "pyradiomics_params.imageType.LBP3D",
    ] {
        assert!(named.iter().any(|k| k == key), "{key} not in {named:?}");
    }
    let object = json!({"voxelSetting": {"kernelRadius": 2}, "setting": {"binWidth": 5}});
    let (status, problem) = post(json!({"pyradiomics_params": object})).await;
    assert_problem(status, &problem, 422, "invalid-settings", &["voxelSetting"]);

    let mut own = serde_json::to_value(ExtractionSettings::bundled()).unwrap();
    own["colour"] = json!("blue");
    own["profiles"]["other"]["bins"] = json!(4);
    let (status, problem) = post(json!({"settings": own})).await;
    assert_problem(
        status,
        &problem,
        422,
        "invalid-settings",
        &["settings.colour"],
    );
    let mut named = keys(&problem);
    named.sort_unstable();
    assert_eq!(named, ["settings.colour", "settings.profiles.other.bins"]);

    let mut fine = serde_json::to_value(ExtractionSettings::bundled()).unwrap();
    fine["schema_version"] = json!(99);
    let (status, problem) = post(json!({"settings": fine})).await;
    assert_problem(
        status,
        &problem,
        422,
        "invalid-settings",
        &["schema_version 99"],
    );
    let resample = "setting:\n  resampledPixelSpacing: [0.01, 0.01, 0.01]\n";
    let (status, problem) = post(json!({"pyradiomics_params": resample})).await;
    assert_problem(status, &problem, 422, "invalid-settings", &["0.01 mm"]);

    let both = json!({"settings": ExtractionSettings::bundled(), "pyradiomics_params": {}});
    let (status, problem) = post(both).await;
    assert_problem(status, &problem, 422, "invalid-settings", &["not both"]);
    let (status, problem) = post(json!({"pyradiomics_params": 3})).await;
    assert_problem(
        status,
        &problem,
        422,
        "invalid-settings",
        &["pyradiomics_params"],
    );
    let (status, problem) = post(json!({"pyradiomics_params": "setting: [unclosed"})).await;
    assert_problem(
        status,
        &problem,
        422,
        "invalid-settings",
        &["cannot be read"],
    );
    let (status, problem) = post(json!({"settings": "binWidth: 25"})).await;
    assert_problem(status, &problem, 422, "invalid-settings", &["settings"]);
    let (status, problem) = post(json!({"naming": "camel"})).await;
    assert_problem(
        status,
        &problem,
        422,
        "invalid-settings",
        &["naming", "camel"],
    );
    let (status, problem) = post(json!({"naming": 1})).await;
    assert_problem(status, &problem, 422, "invalid-settings", &["naming"]);
}

/// A job that names its model must use that model's settings (422 with both hashes);
/// settings equal to the model's are accepted and scored.
#[tokio::test]
async fn a_named_model_pinned_to_other_settings_is_refused() {
    let app = spawn_app().await;
    let (series, seg, label) = demo_case(&app).await;
    let (status, list) = app.get_json("/v1/models").await;
    assert_eq!(status, 200, "{list}");
    let model_id = list["models"][0]["id"].as_str().unwrap().to_string();
    let model_hash = list["models"][0]["settings_hash"]
        .as_str()
        .unwrap()
        .to_string();

    let extra = json!({"model_id": model_id, "pyradiomics_params": PARAMS_YAML});
    let (status, _, problem) = app.post_job(&job_body(&series, &seg, label, extra)).await;
    assert_problem(
        status,
        &problem,
        422,
        "settings-model-mismatch",
        &[&model_hash],
    );
    assert_eq!(problem["settings_hash"], mapped(PARAMS_YAML).hash());
    assert_eq!(problem["model_settings_hash"], model_hash);

    let same = json!({"model_id": model_id, "settings": ExtractionSettings::bundled()});
    let (_, result) = run(&app, &job_body(&series, &seg, label, same)).await;
    assert_eq!(result["lesions"][0]["status"], "ok", "{result}");
    assert!(result["lesions"][0]["response_probability"].is_number());
}

/// A batch entry with unsupported PyRadiomics keys refuses the whole batch, naming the
/// entry and the key; a good entry's settings are recorded in its job.
#[tokio::test]
async fn batch_entries_carry_their_own_settings() {
    let app = spawn_app().await;
    let (series, seg, label) = demo_case(&app).await;
    let good = job_body(
        &series,
        &seg,
        label,
        json!({"pyradiomics_params": PARAMS_YAML}),
    );
    let bad = job_body(
        &series,
        &seg,
        label,
        json!({"pyradiomics_params": {"setting": {"bogus": 1}}}),
    );
    let post = |body: Value| {
        let app = &app;
        async move {
            status_json(
                app.client
                    .post(app.url("/v1/batches"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let (status, problem) = post(json!({"jobs": [good.clone(), bad]})).await;
    assert_problem(
        status,
        &problem,
        422,
        "invalid-settings",
        &["jobs[1]", "setting.bogus"],
    );
    assert_eq!(problem["job_index"], 1);

    let (status, batch) = post(json!({"jobs": [good]})).await;
    assert_eq!(status, 202, "{batch}");
    let job = app
        .wait_for_job(batch["jobs"][0]["url"].as_str().unwrap())
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["settings_source"], "pyradiomics_params");
    assert_eq!(job["settings_hash"], mapped(PARAMS_YAML).hash());
    assert_eq!(job["naming"], "pyradiomics");
}
