//! DICOMweb push of job reports against a real DICOMweb server: Debian's Orthanc with its
//! DICOMweb plugin, started by `tests/support/push_e2e.py` in a private network namespace
//! (`unshare -n`: only loopback exists there, as Orthanc 1.10 cannot choose its listen
//! address) together with the real `radscore serve` binary.

use std::process::Command;

use serde_json::Value;

use crate::helpers::*;

/// Attempts the script configures (RADSCORE_DICOMWEB_PUSH_MAX_ATTEMPTS).
const PUSH_MAX_ATTEMPTS: u64 = 3;

/// A CT series and its SEG go into radscore by STOW-RS, a job runs, and its SR lands in
/// Orthanc, where dicomweb-client reads it back equal to radscore's report and JSON result;
/// with Orthanc stopped, the next job's delivery is retried, then reported failed, and its
/// result is still served.
#[test]
fn report_is_pushed_to_orthanc_and_a_dead_destination_is_retried_then_reported() {
    let work = tempfile::tempdir().unwrap();
    let series_dir = ct_phantom().join("dicom/image");
    let seg = work.path().join("mask.seg.dcm");
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
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(python())
        .arg(crate_dir().join("tests/support/push_e2e.py"))
        .arg("--radscore")
        .arg(env!("CARGO_BIN_EXE_radscore"))
        .arg("--model-dir")
        .arg(crate_dir().join("models/demo"))
        .arg("--series-dir")
        .arg(&series_dir)
        .arg("--seg")
        .arg(&seg)
        .arg("--work-dir")
        .arg(work.path())
        .output()
        .expect("unshare runs (util-linux; needs root or user namespaces)");
    assert!(
        out.status.success(),
        "push_e2e.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));

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
