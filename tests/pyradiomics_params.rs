//! PyRadiomics compatibility from the outside: every example parameter file shipped with
//! PyRadiomics (`shared/data/pyradiomics/params/*.yaml`) is either mapped or refused with
//! exactly the keys radscore cannot honour, and `radscore extract --manifest` runs a
//! batch in PyRadiomics columns and resumes an interrupted run.
//!
//! The data directory is `$RADSCORE_SHARED_DATA`, else `<CARGO_MANIFEST_DIR>/../shared/data`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use radscore::features::Location;
use radscore::features::settings::ImageInterpolation;
use radscore::pyradiomics::params::{self, ParamsError};
use serde_json::Value;

fn shared_data() -> PathBuf {
    std::env::var_os("RADSCORE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}

/// The keys radscore refuses in each PyRadiomics example file, and why (in words).
const EXPECTED_REFUSALS: &[(&str, &[&str])] = &[
    ("Params.yaml", &[]),
    // Lists the per-plane diameters explicitly.
    (
        "example_allShape.yaml",
        &[
            "featureClass.shape.Maximum2DDiameterSlice",
            "featureClass.shape.Maximum2DDiameterColumn",
            "featureClass.shape.Maximum2DDiameterRow",
        ],
    ),
    ("exampleCT.yaml", &[]),
    ("exampleMR_3mm.yaml", &[]),
    ("exampleMR_5mm.yaml", &[]),
    ("exampleMR_NoResampling.yaml", &[]),
    ("MR_2D_extraction.yaml", &["featureClass.shape2D"]),
    ("exampleVoxel.yaml", &["voxelSetting"]),
];

/// Remove a dotted key (`a.b` or `a.b.Item` for a list entry) from a parameter document.
fn remove_key(doc: &mut Value, key: &str) {
    let parts: Vec<&str> = key.split('.').collect();
    let mut node = doc;
    for part in &parts[..parts.len() - 1] {
        match node.get_mut(*part) {
            Some(child) => node = child,
            None => return,
        }
    }
    let last = parts[parts.len() - 1];
    if let Some(obj) = node.as_object_mut() {
        obj.remove(last);
    } else if let Some(list) = node.as_array_mut() {
        list.retain(|v| v.as_str() != Some(last));
    }
}

#[test]
fn every_pyradiomics_example_file_maps_or_names_its_refused_keys() {
    let dir = shared_data().join("pyradiomics/params");
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("params directory") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let expected = EXPECTED_REFUSALS
            .iter()
            .find(|(f, _)| *f == name)
            .unwrap_or_else(|| panic!("{name}: no expectation; add it to EXPECTED_REFUSALS"))
            .1;
        seen.insert(name.clone());
        let text = std::fs::read_to_string(&path).unwrap();
        let refused: BTreeSet<String> = match params::parse(&text, &name) {
            Ok(_) => BTreeSet::new(),
            Err(ParamsError::Unsupported(list)) => list.into_iter().map(|u| u.key).collect(),
            Err(e) => panic!("{name}: {e}"),
        };
        let want: BTreeSet<String> = expected.iter().map(|k| k.to_string()).collect();
        assert_eq!(refused, want, "{name}");

        // Without the refused keys, the rest of the file maps.
        let mut doc: Value = serde_yaml_ng::from_str(&text).unwrap();
        for key in &want {
            remove_key(&mut doc, key);
        }
        let mapped = params::from_value(&doc, &name)
            .unwrap_or_else(|e| panic!("{name} without refused keys: {e}"));
        assert_eq!(mapped.label, 1, "{name}");
    }
    assert_eq!(
        seen.len(),
        EXPECTED_REFUSALS.len(),
        "files missing: {seen:?}"
    );
}

#[test]
fn example_ct_settings_map_onto_radscore_settings() {
    let path = shared_data().join("pyradiomics/params/exampleCT.yaml");
    let doc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let p = params::from_value(&doc, "exampleCT.yaml").unwrap();
    let s = p.settings.for_location(Location::Pleura);
    let i = s
        .interpolation
        .as_ref()
        .expect("resampledPixelSpacing [1, 1, 1]");
    assert_eq!(i.spacing_mm, [1.0, 1.0, 1.0]);
    assert_eq!(i.image_method, ImageInterpolation::CubicSpline);
    assert_eq!(s.voxel_array_shift, Some(1000.0));
    // glcm lists every feature except SumAverage.
    let names = params::output_names(&p);
    assert!(names.contains(&"original_glcm_Contrast".to_string()));
    assert!(!names.contains(&"original_glcm_SumAverage".to_string()));
    assert!(
        !names.iter().any(|n| n.contains("_ngtdm_")),
        "ngtdm is not enabled"
    );
    // LoG σ 1…5 mm and the 8 coif1 wavelet bands, cropped with padDistance 10 (resampled).
    let images: Vec<String> = s
        .image_filters
        .images
        .iter()
        .map(|i| i.filter.image_type())
        .collect();
    assert_eq!(images.len(), 5 + 8, "{images:?}");
    assert_eq!(images[2], "log-sigma-3-0-mm-3D");
    assert_eq!(images[5], "wavelet-LLH");
    assert_eq!(images[12], "wavelet-LLL");
    assert_eq!(s.image_filters.crop_pad_vox, Some(10));
    assert!(names.contains(&"wavelet-HHL_glcm_Contrast".to_string()));
    assert!(names.contains(&"log-sigma-5-0-mm-3D_firstorder_Mean".to_string()));
    assert!(!names.iter().any(|n| n.starts_with("wavelet-LLL_shape")));
}

fn radscore(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_radscore"))
        .args(args)
        .output()
        .expect("run radscore")
}

fn data_rows(path: &Path) -> Vec<Vec<String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}

/// IBSI 1 digital phantom, `stat_mean` consensus value (reference manual table 3.3.1,
/// 3 significant digits; the phantom's mean intensity over its 74 ROI voxels).
const PHANTOM_MEAN: f64 = 2.15;

#[test]
fn manifest_batch_writes_pyradiomics_columns_and_resumes_an_interrupted_run() {
    let phantom = shared_data().join("ibsi1/digital_phantom/nifti");
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("cases.csv");
    let image = phantom.join("image/phantom.nii.gz");
    let mask = phantom.join("mask/mask.nii.gz");
    std::fs::write(
        &manifest,
        format!(
            "Image,Mask,Label,location\n{i},{m},1,pleura\n{i},{m},2,\n{d}/missing.nii.gz,{m},1,\n",
            i = image.display(),
            m = mask.display(),
            d = dir.path().display()
        ),
    )
    .unwrap();
    let params = dir.path().join("params.json");
    std::fs::write(
        &params,
        r#"{"setting": {"binWidth": 1, "voxelArrayShift": 0}, "featureClass": {"firstorder": null}}"#,
    )
    .unwrap();
    let run = |out: &Path| {
        let o = radscore(&[
            "extract",
            "--manifest",
            manifest.to_str().unwrap(),
            "--params",
            params.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--jobs",
            "2",
            "--quiet",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };

    let full = dir.path().join("full.csv");
    run(&full);
    let header: Vec<String> = csv::Reader::from_path(&full)
        .unwrap()
        .headers()
        .unwrap()
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(header[..4], ["image", "mask", "label", "location"]);
    assert!(header.contains(&"diagnostics_Configuration_SettingsHash".to_string()));
    let mean_col = header
        .iter()
        .position(|h| h == "original_firstorder_Mean")
        .expect("PyRadiomics column");
    let status_col = header
        .iter()
        .position(|h| h == "diagnostics_radscore_Status")
        .unwrap();
    let rows = data_rows(&full);
    assert_eq!(rows.len(), 3);
    let ok = rows
        .iter()
        .find(|r| r[2] == "1" && r[3] == "pleura")
        .unwrap();
    let mean: f64 = ok[mean_col].parse().unwrap();
    assert!((mean - PHANTOM_MEAN).abs() < 0.005, "mean {mean}");
    let statuses: BTreeSet<&str> = rows.iter().map(|r| r[status_col].as_str()).collect();
    assert_eq!(statuses, BTreeSet::from(["ok", "error"]));

    // An interrupted run: the first row is complete (with a marker value that a rerun
    // must keep), the second was cut off mid-write.
    let text = std::fs::read_to_string(&full).unwrap();
    let mut lines = text.lines();
    let header_line = lines.next().unwrap();
    let mut first: Vec<String> = rows[0].clone();
    first[mean_col] = "-12345".into();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&first).unwrap();
    let first_line = String::from_utf8(w.into_inner().unwrap()).unwrap();
    let partial = &lines.nth(1).unwrap()[..20];
    let resumed = dir.path().join("resumed.csv");
    std::fs::write(&resumed, format!("{header_line}\n{first_line}{partial}")).unwrap();
    run(&resumed);

    let after = data_rows(&resumed);
    assert_eq!(after.len(), 3, "one kept row plus two computed");
    assert_eq!(
        after[0][mean_col], "-12345",
        "the finished row was recomputed"
    );
    let key = |r: &Vec<String>| (r[0].clone(), r[1].clone(), r[2].clone());
    let want: BTreeSet<_> = rows.iter().map(key).collect();
    let got: BTreeSet<_> = after.iter().map(key).collect();
    assert_eq!(got, want);
    // A rerun of a finished output computes nothing.
    run(&resumed);
    assert_eq!(data_rows(&resumed).len(), 3);
}

#[test]
fn extract_refuses_unsupported_parameters_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let params = dir.path().join("p.yaml");
    std::fs::write(
        &params,
        "setting:\n  distances: [1, 2]\n  weightingNorm: euclidean\n",
    )
    .unwrap();
    let phantom = shared_data().join("ibsi1/digital_phantom/nifti");
    let o = radscore(&[
        "extract",
        "--series",
        phantom.join("image/phantom.nii.gz").to_str().unwrap(),
        "--mask",
        phantom.join("mask/mask.nii.gz").to_str().unwrap(),
        "--params",
        params.to_str().unwrap(),
        "--out",
        dir.path().join("o.csv").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("setting.distances"), "{err}");
    assert!(err.contains("setting.weightingNorm"), "{err}");
}

/// PyRadiomics' features that `docs/pyradiomics-parity.md` lists as differing for the
/// base configurations, with the cause given there (surface mesh; PCA covariance
/// normalisation).
const DOCUMENTED_DEVIATIONS: &[&str] = &[
    "original_shape_MeshVolume",
    "original_shape_SurfaceArea",
    "original_shape_SurfaceVolumeRatio",
    "original_shape_Sphericity",
    "original_shape_MajorAxisLength",
    "original_shape_MinorAxisLength",
    "original_shape_LeastAxisLength",
];

/// The relative tolerance of `docs/pyradiomics-parity.md` for "matching".
const PARITY_REL_TOL: f64 = 1e-6;

/// Every other feature of the base configuration (binWidth 25, voxelArrayShift 2000, 3D,
/// no resampling) matches PyRadiomics' committed baseline values on brain1, brain2 and
/// breast1, read straight from the NRRD files.
#[test]
fn base_configuration_matches_the_pyradiomics_baselines() {
    let base = shared_data().join("pyradiomics");
    let dir = tempfile::tempdir().unwrap();
    let params = dir.path().join("base.json");
    std::fs::write(
        &params,
        r#"{"setting": {"binWidth": 25, "voxelArrayShift": 2000, "label": 1, "distances": [1],
            "gldm_a": 0, "padDistance": 5, "force2D": false},
            "featureClass": {"shape": null, "firstorder": null, "glcm": null, "glrlm": null,
            "glszm": null, "gldm": null, "ngtdm": null}}"#,
    )
    .unwrap();
    let mut compared = 0;
    for case in ["brain1", "brain2", "breast1"] {
        let out = dir.path().join(format!("{case}.json"));
        let o = radscore(&[
            "extract",
            "--series",
            base.join(format!("images/{case}_image.nrrd"))
                .to_str()
                .unwrap(),
            "--mask",
            base.join(format!("images/{case}_label.nrrd"))
                .to_str()
                .unwrap(),
            "--params",
            params.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let features = doc["lesions"][0]["features"].as_object().unwrap().clone();
        for class in [
            "shape",
            "firstorder",
            "glcm",
            "glrlm",
            "glszm",
            "gldm",
            "ngtdm",
        ] {
            let path = base.join(format!("baseline/baseline_{class}.csv"));
            let mut reader = csv::Reader::from_path(&path).unwrap();
            let col = reader
                .headers()
                .unwrap()
                .iter()
                .position(|h| h == case)
                .unwrap();
            for record in reader.records() {
                let record = record.unwrap();
                let name = &record[0];
                if DOCUMENTED_DEVIATIONS.contains(&name) || !name.starts_with("original_") {
                    continue;
                }
                let Some(ours) = features.get(name).and_then(Value::as_f64) else {
                    continue; // not computed (listed in docs/feature-names.md)
                };
                let want: f64 = record[col].parse().unwrap();
                let rel = if want == 0.0 {
                    ours.abs()
                } else {
                    ((ours - want) / want).abs()
                };
                assert!(
                    rel <= PARITY_REL_TOL,
                    "{case} {name}: {ours} vs baseline {want}"
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 250, "only {compared} features compared");
}

/// A filtered image on which some features are undefined by IBSI does not cost the lesion
/// its other features: breast1 with `exampleCT.yaml` has a flat GLCM on the LoG σ = 5 mm
/// image (and one discretised grey level, where IBSI's histogram skewness is undefined).
/// The unselected histogram moments are dropped, and the selected GLCM correlation and
/// Imc1 take PyRadiomics' documented flat-region values (1 and 0; PyRadiomics 3.x gives
/// exactly these on this case), so every column PyRadiomics writes is present.
#[test]
fn flat_filtered_images_keep_the_lesion_with_pyradiomics_values() {
    let data = shared_data().join("pyradiomics");
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("breast1.json");
    let run = radscore(&[
        "extract",
        "--series",
        data.join("images/breast1_image.nrrd").to_str().unwrap(),
        "--mask",
        data.join("images/breast1_label.nrrd").to_str().unwrap(),
        "--params",
        data.join("params/exampleCT.yaml").to_str().unwrap(),
        "--out",
        json.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let doc: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let lesion = &doc["lesions"][0];
    assert_eq!(lesion["status"], "ok", "{}", lesion["error"]);
    let features = lesion["features"].as_object().unwrap();
    let expected = params::output_names(
        &params::parse(
            &std::fs::read_to_string(data.join("params/exampleCT.yaml")).unwrap(),
            "exampleCT.yaml",
        )
        .unwrap(),
    );
    let missing: Vec<&String> = expected
        .iter()
        .filter(|n| !features.contains_key(n.as_str()))
        .collect();
    assert!(missing.is_empty(), "{missing:?}");
    assert_eq!(features["log-sigma-5-0-mm-3D_glcm_Correlation"], 1.0);
    assert_eq!(features["log-sigma-5-0-mm-3D_glcm_Imc1"], 0.0);
}
