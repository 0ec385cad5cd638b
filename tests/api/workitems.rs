//! UPS-RS work items, driven by a real client (python `requests`, `tests/support/
//! ups_client.py`) against a running server; bad work items answer problem+json naming
//! the fault.

use serde_json::{Value, json};

use crate::helpers::*;

/// A demo series and its label map, uploaded; `(series id, segmentation id)`.
async fn inputs(app: &TestApp) -> (String, String) {
    let (series_id, seg_id, _) = app.upload_demo_case(3).await;
    (series_id, seg_id)
}

async fn client(app: &TestApp, series: &str, seg: &str, mode: &str) -> Value {
    let args: Vec<String> = [
        "--base",
        &app.base,
        "--key",
        &app.key,
        "--series-id",
        series,
        "--segmentation-id",
        seg,
        "--mode",
        mode,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_support("ups_client.py", &args)
    })
    .await
    .unwrap();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A work item created over UPS-RS runs as a job and reaches COMPLETED, its Output
/// Information naming the SR that result.dcm serves; a state search finds it.
#[tokio::test]
async fn a_work_item_runs_to_completed_and_references_its_report() {
    let app = spawn_app().await;
    let (series, seg) = inputs(&app).await;
    let summary = client(&app, &series, &seg, "complete").await;

    assert_eq!(summary["job"]["status"], "succeeded", "{summary}");
    assert_eq!(summary["job"]["series_id"], series.as_str());
    let lesions = summary["job"]["lesions"].as_array().unwrap();
    assert!(!lesions.is_empty());
    assert!(
        lesions.iter().all(|l| l["location"] == "pleura"),
        "{summary}"
    );
    assert_eq!(summary["progress"].as_f64(), Some(100.0), "{summary}");
    assert_eq!(
        summary["states"].as_array().unwrap().last().unwrap(),
        "COMPLETED"
    );
    let job_id = summary["job"]["id"].as_str().unwrap();
    let expected_uid = radscore::api::workitems::workitem_uid(job_id).unwrap();
    assert_eq!(summary["uid"], expected_uid.as_str());
    let (_, sr_uid) = radscore::sr::report_uids(job_id);
    assert_eq!(summary["sr_uid"], sr_uid.as_str());

    // The job was created by the work item, and audited as such.
    let admin = app.as_tenant(TEST_TENANT, true).await;
    let (_, audit) = status_json(
        admin
            .client
            .get(admin.url("/v1/audit"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let created: Vec<&Value> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "job.create" && e["object_id"] == job_id)
        .collect();
    assert_eq!(created.len(), 1, "{audit}");
    assert_eq!(created[0]["detail"]["via"], "ups-rs");
}

/// With no worker running, a work item stays SCHEDULED; a client may cancel it (then it is
/// CANCELED, its job cancelled) but not set IN PROGRESS, nor cancel it twice.
#[tokio::test]
async fn a_scheduled_work_item_is_cancelled_and_performer_states_are_refused() {
    let app = spawn_app_configured(0, |_| {}).await;
    let (series, seg) = inputs(&app).await;
    let summary = client(&app, &series, &seg, "cancel").await;

    assert_eq!(summary["scheduled_found"], true, "{summary}");
    assert_eq!(
        summary["refused"]["type"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next(),
        Some("ups-state-not-allowed")
    );
    assert_eq!(summary["state"], "CANCELED", "{summary}");
    assert_eq!(summary["again"]["state"], "CANCELED", "{summary}");
    assert_eq!(summary["job"]["status"], "cancelled", "{summary}");
    assert_eq!(summary["reason"], "cancelled on request");
    assert_eq!(summary["canceled_found"], true);
}

/// Faulty work items are refused with problem+json naming the fault.
#[tokio::test]
async fn faulty_work_items_name_their_fault() {
    let app = spawn_app_configured(0, |_| {}).await;
    let (series, _) = inputs(&app).await;
    let on_series = json!([{ "00404021": { "vr": "SQ", "Value": [
        { "00081190": { "vr": "UR", "Value": [format!("/v1/series/{series}")] } }
    ] } }]);
    let post = |body: String, ct: &'static str, query: &'static str| {
        let req = app
            .client
            .post(app.url(&format!("/workitems{query}")))
            .header("content-type", ct)
            .body(body);
        async move { status_json(req.send().await.unwrap()).await }
    };
    let dicom = "application/dicom+json";

    let (status, body) = post(on_series.to_string(), dicom, "").await;
    assert_problem(
        status,
        &body,
        422,
        "invalid-workitem",
        &["no lesion location"],
    );
    let (status, body) = post(on_series.to_string(), dicom, "?1.2.3").await;
    assert_problem(
        status,
        &body,
        400,
        "invalid-workitem",
        &["assigns work item UIDs"],
    );
    let (status, body) = post(on_series.to_string(), "text/plain", "").await;
    assert_eq!(status, 415, "{body}");
    let (status, body) = post("[{}]".into(), dicom, "").await;
    assert_problem(
        status,
        &body,
        422,
        "invalid-workitem",
        &["Input Information Sequence"],
    );
    let (status, body) = post("[1, 2]".into(), dicom, "").await;
    assert_problem(status, &body, 400, "invalid-workitem", &["one dataset"]);

    let mut bad_location = on_series.clone();
    bad_location[0]["00741210"] = json!({ "vr": "SQ", "Value": [{
        "0040A040": { "vr": "CS", "Value": ["TEXT"] },
        "0040A043": { "vr": "SQ", "Value": [{
            "00080100": { "vr": "SH", "Value": ["LESLOC"] },
            "00080102": { "vr": "SH", "Value": ["99RADSCORE"] } }] },
        "0040A160": { "vr": "UT", "Value": ["lung"] } }] });
    let (status, body) = post(bad_location.to_string(), dicom, "").await;
    assert_problem(
        status,
        &body,
        422,
        "invalid-workitem",
        &["'lung'", "soft_tissue"],
    );

    let resp = app
        .client
        .get(app.url("/workitems?PatientName=x"))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(resp).await;
    assert_problem(
        status,
        &body,
        400,
        "invalid-workitem",
        &["PatientName", "ProcedureStepState"],
    );
    let resp = app
        .client
        .get(app.url("/workitems/1.2.3"))
        .send()
        .await
        .unwrap();
    let (status, _) = status_json(resp).await;
    assert_eq!(status, 404);
}
