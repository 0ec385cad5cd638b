//! Tenancy over HTTP: tenant B's key tried on every route against tenant A's objects gets
//! exactly the answer a nonexistent id gets (404, or the 422 of an unknown reference), and
//! A's objects are unchanged afterwards. Idempotency keys and STOW-RS are per tenant too.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::openapi::spec_operations;

/// Operations that hold no tenant data (probes, metrics, the spec, the compliance
/// self-check): nothing to isolate.
const TENANT_FREE: [(&str, &str); 5] = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.yaml"),
    ("GET", "/v1/compliance"),
];

/// (method, path template, path with A's id, path with a missing id, the two bodies).
type WorkitemCase = (
    &'static str,
    &'static str,
    String,
    String,
    Option<Value>,
    Option<Value>,
);

/// An id no tenant has.
const MISSING: &str = "0190a000-0000-7000-8000-000000000000";

/// Tenant A's objects: a series, its segmentation, a finished job, a batch and an
/// uploaded model.
struct Objects {
    series_id: String,
    seg_id: String,
    job_id: String,
    batch_id: String,
    model_id: String,
    case: radscore::demo::DemoCase,
    _dir: tempfile::TempDir,
}

async fn create_objects(a: &TestApp) -> Objects {
    let dir = tempfile::tempdir().unwrap();
    let case = radscore::demo::generate(dir.path(), 5, &radscore::demo::DemoOptions::default())
        .expect("demo case");
    let (status, series) = a
        .post_series_zip(std::fs::read(&case.series_zip).unwrap())
        .await;
    assert_eq!(status, 201, "{series}");
    let series_id = series["id"].as_str().unwrap().to_string();
    let labelmap = std::fs::read(&case.labelmap).unwrap();
    let (status, seg) = a
        .post_segmentation(&series_id, labelmap, "lesions.nii.gz")
        .await;
    assert_eq!(status, 201, "{seg}");
    let seg_id = seg["id"].as_str().unwrap().to_string();
    let label = case.lesions[0].label;
    let lesions = json!([{ "label": label, "location": "other" }]);
    a.run_job(&series_id, &seg_id, lesions.clone()).await;
    let body = json!({ "series_id": series_id, "segmentation_id": seg_id, "lesions": lesions });
    let resp = a
        .client
        .post(a.url("/v1/jobs"))
        .header("idempotency-key", "shared-key")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, job) = status_json(resp).await;
    assert_eq!(status, 202, "{job}");
    let job_id = job["id"].as_str().unwrap().to_string();
    let resp = a
        .client
        .post(a.url("/v1/batches"))
        .json(&json!({ "jobs": [body] }))
        .send()
        .await
        .unwrap();
    let (status, batch) = status_json(resp).await;
    assert_eq!(status, 202, "{batch}");
    let (status, model) = post_demo_model_copy(a, "tenant-a").await;
    assert_eq!(status, 201, "{model}");
    Objects {
        series_id,
        seg_id,
        job_id,
        batch_id: batch["id"].as_str().unwrap().to_string(),
        model_id: model["id"].as_str().unwrap().to_string(),
        case,
        _dir: dir,
    }
}

/// Upload the bundled demo model again as version `version` (a valid model of the caller's
/// own, without needing the Python toolchain).
pub async fn post_demo_model_copy(app: &TestApp, version: &str) -> (u16, Value) {
    let dir = crate_dir().join("models/demo");
    let onnx = std::fs::read(dir.join("model.onnx")).unwrap();
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    manifest["version"] = json!(version);
    app.post_model(onnx, serde_json::to_vec(&manifest).unwrap())
        .await
}

/// Send `method path` (with an optional JSON body) as `app`'s tenant.
async fn call(app: &TestApp, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app.client.request(m, app.url(path));
    if let Some(body) = body {
        req = req.json(body);
    }
    status_json(req.send().await.unwrap()).await
}

/// The response with every occurrence of `id` replaced, to compare "someone else's id"
/// with "no such id" answers.
fn without(body: &Value, id: &str) -> String {
    body.to_string().replace(id, "<id>")
}

/// Tenant B on each of A's objects answers exactly as on a nonexistent id, on every
/// route; A still sees its objects unchanged.
#[tokio::test]
async fn another_tenants_ids_answer_like_missing_ones_on_every_route() {
    let a = spawn_app().await;
    let objects = create_objects(&a).await;
    let b = a.as_tenant("other-trial", true).await;
    let o = &objects;
    let lesions = json!([{ "label": o.case.lesions[0].label, "location": "other" }]);
    let job_body = |series: &str, seg: &str| json!({ "series_id": series, "segmentation_id": seg, "lesions": lesions });

    // (method, path template, A's id, body template) — `{id}` is replaced by A's id or
    // by MISSING; a body's ids likewise.
    let cases: Vec<(&str, &str, &str, Option<Value>)> = vec![
        ("GET", "/v1/series/{id}", &o.series_id, None),
        ("GET", "/v1/segmentations/{id}", &o.seg_id, None),
        ("GET", "/v1/jobs/{id}", &o.job_id, None),
        ("GET", "/v1/jobs/{id}/result", &o.job_id, None),
        ("GET", "/v1/jobs/{id}/result.dcm", &o.job_id, None),
        ("GET", "/v1/jobs/{id}/result.csv", &o.job_id, None),
        ("GET", "/v1/jobs/{id}/result.png", &o.job_id, None),
        ("GET", "/v1/jobs/{id}/events", &o.job_id, None),
        ("DELETE", "/v1/jobs/{id}", &o.job_id, None),
        ("GET", "/v1/batches/{id}", &o.batch_id, None),
        ("DELETE", "/v1/series/{id}", &o.series_id, None),
        ("DELETE", "/v1/segmentations/{id}", &o.seg_id, None),
        ("GET", "/v1/models/{id}", &o.model_id, None),
        ("POST", "/v1/models/{id}/activate", &o.model_id, None),
        ("POST", "/v1/models/{id}/deactivate", &o.model_id, None),
        (
            "POST",
            "/v1/jobs",
            &o.series_id,
            Some(job_body("{id}", &o.seg_id)),
        ),
        (
            "POST",
            "/v1/robustness",
            &o.series_id,
            Some(job_body("{id}", &o.seg_id)),
        ),
        (
            "POST",
            "/v1/batches",
            &o.series_id,
            Some(json!({ "jobs": [job_body("{id}", &o.seg_id)] })),
        ),
    ];
    let mut covered: BTreeSet<(String, String)> = BTreeSet::new();
    for (method, template, id, body) in &cases {
        let fill = |with: &str| {
            let path = template.replace("{id}", with);
            let body = body.as_ref().map(|b| {
                serde_json::from_str::<Value>(&b.to_string().replace("{id}", with)).unwrap()
            });
            (path, body)
        };
        let (path, body_theirs) = fill(id);
        let (status, theirs) = call(&b, method, &path, body_theirs.as_ref()).await;
        let (path_missing, body_missing) = fill(MISSING);
        let (missing_status, missing) =
            call(&b, method, &path_missing, body_missing.as_ref()).await;
        assert!(
            status == 404 || status == 422,
            "{method} {template}: {status} {theirs}"
        );
        assert_eq!(
            (status, without(&theirs, id)),
            (missing_status, without(&missing, MISSING)),
            "{method} {template}: A's id and a missing id must answer alike"
        );
        covered.insert((method.to_string(), template.to_string()));
    }

    // Segmentation upload onto A's series: like an unknown series.
    let labelmap = std::fs::read(&o.case.labelmap).unwrap();
    let (status, theirs) = b
        .post_segmentation(&o.series_id, labelmap.clone(), "x.nii.gz")
        .await;
    let (missing_status, missing) = b.post_segmentation(MISSING, labelmap, "x.nii.gz").await;
    assert_eq!(
        (status, without(&theirs, &o.series_id)),
        (missing_status, without(&missing, MISSING))
    );
    assert_problem(status, &theirs, 422, "unknown-series", &[]);
    covered.insert(("POST".into(), "/v1/segmentations".into()));

    // Uploads of B's own create B's objects only; covered here and in the STOW-RS test.
    let (status, own) = b
        .post_series_zip(std::fs::read(&o.case.series_zip).unwrap())
        .await;
    assert_eq!(status, 201, "{own}");
    let (status, _) = call(
        &a,
        "GET",
        &format!("/v1/series/{}", own["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(status, 404, "A does not see B's series");
    covered.insert(("POST".into(), "/v1/series".into()));
    covered.insert(("POST".into(), "/studies".into()));
    covered.insert(("POST".into(), "/studies/{study}".into()));

    // B's own series and segmentation with A's model: like an unknown model.
    let own_series = own["id"].as_str().unwrap();
    let labelmap = std::fs::read(&o.case.labelmap).unwrap();
    let (status, own_seg) = b.post_segmentation(own_series, labelmap, "b.nii.gz").await;
    assert_eq!(status, 201, "{own_seg}");
    let with_model = |model: &str| {
        let mut body = job_body(own_series, own_seg["id"].as_str().unwrap());
        body["model_id"] = json!(model);
        body
    };
    let (status, theirs) = call(&b, "POST", "/v1/jobs", Some(&with_model(&o.model_id))).await;
    let (missing_status, missing) = call(&b, "POST", "/v1/jobs", Some(&with_model(MISSING))).await;
    assert_eq!(
        (status, without(&theirs, &o.model_id)),
        (missing_status, without(&missing, MISSING))
    );
    assert_problem(status, &theirs, 422, "unknown-model", &[]);

    // B's model list: the shared bundled model only, active for B, none of A's models.
    let (status, list) = call(&b, "GET", "/v1/models", None).await;
    assert_eq!(status, 200, "{list}");
    let models = list["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "{list}");
    assert_eq!(
        (&models[0]["shared"], &models[0]["active"]),
        (&json!(true), &json!(true))
    );
    assert!(!list.to_string().contains(&o.model_id), "{list}");
    covered.insert(("GET".into(), "/v1/models".into()));

    // B may upload a model of the same name and version as A's: no conflict leaks A's
    // registry, and A does not see B's.
    let (status, b_model) = post_demo_model_copy(&b, "tenant-a").await;
    assert_eq!(status, 201, "{b_model}");
    let b_model_id = b_model["id"].as_str().unwrap();
    assert_ne!(b_model_id, o.model_id);
    let (status, _) = call(&a, "GET", &format!("/v1/models/{b_model_id}"), None).await;
    assert_eq!(status, 404, "A does not see B's model");
    covered.insert(("POST".into(), "/v1/models".into()));

    // B's audit log holds none of A's events.
    let (status, audit) = call(&b, "GET", "/v1/audit", None).await;
    assert_eq!(status, 200, "{audit}");
    for id in [&o.series_id, &o.seg_id, &o.job_id, &o.batch_id] {
        assert!(!audit.to_string().contains(id.as_str()), "{audit}");
    }
    covered.insert(("GET".into(), "/v1/audit".into()));

    // Work items (UPS-RS): A's work item UID answers like a UID no tenant has; a work
    // item on A's series is refused like one on a missing series.
    let uid = |id: &str| radscore::api::workitems::workitem_uid(id).unwrap();
    let (a_uid, missing_uid) = (uid(&o.job_id), uid(MISSING));
    let cancel = json!([{ "00741000": { "vr": "CS", "Value": ["CANCELED"] } }]);
    let on_series = |id: &str| {
        json!([{ "00404021": { "vr": "SQ", "Value": [
            { "00081190": { "vr": "UR", "Value": [format!("/v1/series/{id}")] } }
        ] } }])
    };
    let workitem_cases: Vec<WorkitemCase> = vec![
        (
            "GET",
            "/workitems/{uid}",
            format!("/workitems/{a_uid}"),
            format!("/workitems/{missing_uid}"),
            None,
            None,
        ),
        (
            "PUT",
            "/workitems/{uid}/state",
            format!("/workitems/{a_uid}/state"),
            format!("/workitems/{missing_uid}/state"),
            Some(cancel.clone()),
            Some(cancel),
        ),
        (
            "POST",
            "/workitems/{uid}/cancelrequest",
            format!("/workitems/{a_uid}/cancelrequest"),
            format!("/workitems/{missing_uid}/cancelrequest"),
            None,
            None,
        ),
        (
            "POST",
            "/workitems",
            "/workitems".into(),
            "/workitems".into(),
            Some(on_series(&o.series_id)),
            Some(on_series(MISSING)),
        ),
    ];
    for (method, template, theirs_path, missing_path, theirs_body, missing_body) in workitem_cases {
        let (status, theirs) = call(&b, method, &theirs_path, theirs_body.as_ref()).await;
        let (missing_status, missing) =
            call(&b, method, &missing_path, missing_body.as_ref()).await;
        assert!(
            status == 404 || status == 422,
            "{method} {template}: {status} {theirs}"
        );
        let strip = |v: &Value| {
            without(v, &a_uid)
                .replace(&missing_uid, "<id>")
                .replace(&o.series_id, "<id>")
                .replace(MISSING, "<id>")
        };
        assert_eq!(
            (status, strip(&theirs)),
            (missing_status, strip(&missing)),
            "{method} {template}: A's id and a missing id must answer alike"
        );
        covered.insert((method.to_string(), template.to_string()));
    }
    let resp = b.client.get(b.url("/workitems")).send().await.unwrap();
    assert_eq!(resp.status(), 204, "B has no work items");
    let resp = a.client.get(a.url("/workitems")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.text().await.unwrap().contains(&a_uid),
        "A sees its work item"
    );
    covered.insert(("GET".into(), "/workitems".into()));

    // B's job list holds none of A's jobs.
    let (status, jobs) = call(&b, "GET", "/v1/jobs", None).await;
    assert_eq!(status, 200, "{jobs}");
    assert!(!jobs.to_string().contains(&o.job_id), "{jobs}");
    let (_, jobs) = call(&a, "GET", "/v1/jobs", None).await;
    assert!(jobs.to_string().contains(&o.job_id), "{jobs}");
    covered.insert(("GET".into(), "/v1/jobs".into()));

    // B's DICOMweb settings are B's alone.
    let settings = json!({ "push": { "url": "http://127.0.0.1:1/dicom-web" },
        "auto_trigger": { "default_location": "pleura" } });
    let (status, body) = call(&b, "PUT", "/v1/tenant/dicomweb", Some(&settings)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tenant"], "other-trial", "{body}");
    let (status, body) = call(&a, "GET", "/v1/tenant/dicomweb", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["push"].is_null() && body["auto_trigger"].is_null(),
        "{body}"
    );
    covered.insert(("GET".into(), "/v1/tenant/dicomweb".into()));
    covered.insert(("PUT".into(), "/v1/tenant/dicomweb".into()));

    // Every documented operation is either tried above or holds no tenant data.
    for free in TENANT_FREE {
        covered.insert((free.0.to_string(), free.1.to_string()));
    }
    let untested: Vec<_> = spec_operations().difference(&covered).cloned().collect();
    assert!(
        untested.is_empty(),
        "routes without a tenancy case: {untested:?}"
    );

    // A's objects are all still there, and B's cancel did not cancel A's job.
    for path in [
        format!("/v1/series/{}", o.series_id),
        format!("/v1/segmentations/{}", o.seg_id),
        format!("/v1/batches/{}", o.batch_id),
    ] {
        let (status, body) = call(&a, "GET", &path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, job) = call(&a, "GET", &format!("/v1/jobs/{}", o.job_id), None).await;
    assert_ne!(job["status"], "cancelled", "{job}");
    let (status, model) = call(&a, "GET", &format!("/v1/models/{}", o.model_id), None).await;
    assert_eq!(status, 200, "{model}");
    assert_eq!(
        model["active"], false,
        "B's activate did not activate A's model"
    );
}

/// The same Idempotency-Key in two tenants makes two jobs; neither sees the other's.
#[tokio::test]
async fn idempotency_keys_are_per_tenant() {
    let a = spawn_app_with_workers(1024, 0).await;
    let b = a.as_tenant("other-trial", false).await;
    let mut ids = Vec::new();
    for app in [&a, &b] {
        let dir = tempfile::tempdir().unwrap();
        let case = radscore::demo::generate(dir.path(), 7, &radscore::demo::DemoOptions::default())
            .unwrap();
        let (_, series) = app
            .post_series_zip(std::fs::read(&case.series_zip).unwrap())
            .await;
        let series_id = series["id"].as_str().unwrap().to_string();
        let labelmap = std::fs::read(&case.labelmap).unwrap();
        let (_, seg) = app
            .post_segmentation(&series_id, labelmap, "l.nii.gz")
            .await;
        let body = json!({
            "series_id": series_id, "segmentation_id": seg["id"],
            "lesions": [{ "label": case.lesions[0].label, "location": "other" }]
        });
        let resp = app
            .client
            .post(app.url("/v1/jobs"))
            .header("idempotency-key", "same-key")
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, job) = status_json(resp).await;
        assert_eq!(status, 202, "{job}");
        ids.push(job["id"].as_str().unwrap().to_string());
    }
    assert_ne!(ids[0], ids[1], "each tenant got its own job");
}

/// STOW-RS: a SEG pushed by tenant B that references tenant A's series is treated like one
/// referencing a series never stored: it waits (pending) for that series in B's own
/// namespace and never binds to A's; pushed by A it is stored on A's series.
#[tokio::test]
async fn stow_segmentations_bind_only_to_the_tenants_own_series() {
    let a = spawn_app().await;
    let b = a.as_tenant("other-trial", false).await;
    let dir = tempfile::tempdir().unwrap();
    let case =
        radscore::demo::generate(dir.path(), 9, &radscore::demo::DemoOptions::default()).unwrap();
    let (status, series) = a
        .post_series_zip(std::fs::read(&case.series_zip).unwrap())
        .await;
    assert_eq!(status, 201, "{series}");
    let seg_path = dir.path().join("lesions.seg.dcm");
    run_support(
        "make_seg.py",
        &[
            "--series",
            case.series_dir.to_str().unwrap(),
            "--mask",
            case.labelmap.to_str().unwrap(),
            "--out",
            seg_path.to_str().unwrap(),
        ],
    );
    let seg = std::fs::read(&seg_path).unwrap();
    let boundary = "tenancy-boundary";
    let mut body = format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").into_bytes();
    body.extend_from_slice(&seg);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let content_type =
        format!("multipart/related; type=\"application/dicom\"; boundary={boundary}");
    let push = |app: &TestApp| {
        app.client
            .post(app.url("/studies"))
            .header("content-type", content_type.clone())
            .body(body.clone())
            .send()
    };
    let resp = push(&b).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    assert!(!text.contains(series["id"].as_str().unwrap()), "{text}");
    let response: serde_json::Value = serde_json::from_str(&text).unwrap();
    let url = response["00081199"]["Value"][0]["00081190"]["Value"][0]
        .as_str()
        .unwrap();
    let (status, seg) = b.get_json(url).await;
    assert_eq!(status, 200, "{seg}");
    assert_eq!(seg["status"], "pending", "{seg}");
    assert_ne!(seg["series_id"], series["id"], "{seg}");
    let (status, _) = a.get_json(url).await;
    assert_eq!(
        status, 404,
        "tenant A does not see B's waiting segmentation"
    );
    let resp = push(&a).await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("/v1/segmentations/"), "{text}");
}
