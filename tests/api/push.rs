//! DICOMweb push of job reports against a real DICOMweb server: Debian's Orthanc with its
//! DICOMweb plugin, started by `tests/support/push_e2e.py` in a private network namespace
//! (`unshare -n`: only loopback exists there, as Orthanc 1.10 cannot choose its listen
//! address) together with the real `radscore serve` binary.

use std::process::Command;

use serde_json::Value;

use crate::helpers::*;

/// Attempts the script configures (RADSCORE_DICOMWEB_PUSH_MAX_ATTEMPTS).
const PUSH_MAX_ATTEMPTS: u64 = 3;

/// A SEG of the CT phantom (highdicom), written into `work`.
fn phantom_seg(work: &std::path::Path) -> std::path::PathBuf {
    let series_dir = ct_phantom().join("dicom/image");
    let seg = work.join("mask.seg.dcm");
    run_support(
        "make_seg.py",
        &[
            "--series",
            series_dir.to_str().unwrap(),
            "--mask",
            ct_phantom()
                .join("nifti/mask/mask.nii.gz")
                .to_str()
                .unwrap(),
            "--out",
            seg.to_str().unwrap(),
        ],
    );
    seg
}

/// Run an end-to-end script (`tests/support/*.py`) in a private network namespace with
/// the real `radscore` binary; its JSON summary.
fn run_e2e(script: &str) -> Value {
    let work = tempfile::tempdir().unwrap();
    let seg = phantom_seg(work.path());
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(python())
        .arg(crate_dir().join("tests/support").join(script))
        .arg("--radscore")
        .arg(env!("CARGO_BIN_EXE_radscore"))
        .arg("--model-dir")
        .arg(crate_dir().join("models/demo"))
        .arg("--series-dir")
        .arg(ct_phantom().join("dicom/image"))
        .arg("--seg")
        .arg(&seg)
        .arg("--work-dir")
        .arg(work.path())
        .output()
        .expect("unshare runs (util-linux; needs root or user namespaces)");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A CT series and its SEG go into radscore by STOW-RS, a job runs, and its SR lands in
/// Orthanc, where dicomweb-client reads it back equal to radscore's report and JSON result;
/// with Orthanc stopped, the next job's delivery is retried, then reported failed, and its
/// result is still served.
#[test]
fn report_is_pushed_to_orthanc_and_a_dead_destination_is_retried_then_reported() {
    let summary = run_e2e("push_e2e.py");
    let delivered = &summary["delivered"]["delivery"];
    assert_eq!(delivered["status"], "delivered", "{summary}");
    assert_eq!(delivered["attempts"], 1, "{summary}");
    assert!(delivered["last_error"].is_null(), "{summary}");
    assert!(
        delivered["destination"]
            .as_str()
            .unwrap()
            .ends_with("/dicom-web")
    );

    let failed = &summary["failed"]["delivery"];
    assert_eq!(failed["status"], "failed", "{summary}");
    assert_eq!(failed["attempts"], PUSH_MAX_ATTEMPTS, "{summary}");
}

/// With only a tenant destination and auto-trigger rule set by the CLI, a CT series and a
/// SEG pushed by STOW-RS start a job by themselves once the series is stable; its SR lands
/// in Orthanc equal to the JSON result; with Orthanc stopped a delivery is retried then
/// reported failed (result kept); a delivery cut off by SIGKILL is resumed by the next
/// process.
#[test]
fn stow_rs_auto_triggers_a_job_whose_report_reaches_the_tenant_pacs_even_across_a_crash() {
    let summary = run_e2e("auto_e2e.py");

    let delivered = &summary["delivered"];
    assert_eq!(delivered["delivery"]["status"], "delivered", "{summary}");
    assert_eq!(delivered["delivery"]["attempts"], 1, "{summary}");
    assert_eq!(
        delivered["audit"]["detail"]["via"], "auto-trigger",
        "{summary}"
    );
    assert!(delivered["audit"]["key_id"].is_null(), "{summary}");

    let failed = &summary["failed"]["delivery"];
    assert_eq!(failed["status"], "failed", "{summary}");
    assert_eq!(failed["attempts"], PUSH_MAX_ATTEMPTS, "{summary}");
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{summary}"
    );
    // A failed delivery stays failed: a restart resumes only interrupted ones.
    assert_eq!(summary["failed_after_restart"], *failed, "{summary}");

    let resumed = &summary["resumed"]["delivery"];
    assert_eq!(resumed["status"], "delivered", "{summary}");
    assert!(resumed["attempts"].as_i64().unwrap() >= 3, "{summary}");
}
