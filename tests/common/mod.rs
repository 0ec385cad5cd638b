//! Helpers shared by the reference-data test binaries: where the shared data and the
//! Python interpreter are, the IBSI 1 long reference table and NIfTI volumes as
//! `[z, y, x]` arrays.
//!
//! Each test binary includes this module with `mod common;` and uses what it needs.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ndarray::Array3;
use nifti::{IntoNdArray, NiftiObject, ReaderOptions};

/// `$RADSCORE_SHARED_DATA`, else `<CARGO_MANIFEST_DIR>/../shared/data`.
pub fn shared_data() -> PathBuf {
    std::env::var_os("RADSCORE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}

/// `$RADSCORE_PYTHON`, else the project venv's interpreter.
pub fn python() -> PathBuf {
    std::env::var_os("RADSCORE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"))
}

/// A helper script in `tests/support/`.
pub fn support_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(name)
}

/// Run `tests/support/<script>` with the project Python, `input` as JSON on its stdin, and
/// parse the JSON it prints. Panics with the script's stderr when it fails.
pub fn run_support_json<T: serde::de::DeserializeOwned>(
    script: &str,
    input: &serde_json::Value,
) -> T {
    let mut child = Command::new(python())
        .arg(support_script(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); set RADSCORE_PYTHON",
                python().display()
            )
        });
    let body = serde_json::to_vec(input).expect("JSON encodes");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(&body)
        .expect("python reads its input");
    let out = child.wait_with_output().expect("python runs");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{script} printed no JSON ({e})"))
}

/// One row of `ibsi1_reference_values_long.csv`.
#[derive(Debug, Clone)]
pub struct Reference {
    pub family: String,
    pub tag: String,
    pub value: f64,
    pub tolerance: f64,
}

impl Reference {
    /// A diagnostics row (a processing-stage check, IBSI 1 chapter 5), not a feature.
    pub fn is_diagnostic(&self) -> bool {
        self.family.starts_with("Diagnostics")
    }

    /// The tolerance a row is checked with: the IBSI tolerance, or for rows with
    /// tolerance 0 (values rounded to 3 significant digits, `shared/data/README.md`)
    /// half a unit of the last digit, as the product's compliance check computes it.
    pub fn effective_tolerance(&self) -> f64 {
        if self.tolerance > 0.0 {
            return self.tolerance;
        }
        radscore::compliance::rounding_tolerance(self.value)
    }
}

/// Every reference row of one data set (`digital_phantom`, `config_A`, …) that has a
/// value ("not standardized" rows have none and are left out, as the data README says),
/// each `(tag, value)` once (the diagnostics block of config A lists two rows twice).
pub fn references(data_set: &str) -> Vec<Reference> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for row in table_rows(data_set) {
        let Some(value) = row.value else { continue };
        if !seen.insert((row.tag.clone(), value.to_bits())) {
            continue;
        }
        out.push(Reference {
            family: row.family,
            tag: row.tag,
            value,
            tolerance: row.tolerance.unwrap_or(0.0),
        });
    }
    assert!(!out.is_empty(), "no reference rows for {data_set}");
    out
}

/// Tags the reference table lists for `data_set` without a value (consensus "not
/// standardized"): a value radscore produces for them cannot be compared.
pub fn not_standardised(data_set: &str) -> BTreeSet<String> {
    table_rows(data_set)
        .into_iter()
        .filter(|r| r.value.is_none())
        .map(|r| r.tag)
        .collect()
}

struct TableRow {
    family: String,
    tag: String,
    value: Option<f64>,
    tolerance: Option<f64>,
}

/// The rows of `ibsi1_reference_values_long.csv` for one data set, in file order.
fn table_rows(data_set: &str) -> Vec<TableRow> {
    let path = shared_data().join("ibsi1/reference_values/ibsi1_reference_values_long.csv");
    let mut reader = csv::Reader::from_path(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    let headers = reader
        .headers()
        .expect("reference CSV has a header row")
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let (c_set, c_family, c_tag) = (col("data_set"), col("family"), col("tag"));
    let (c_value, c_tol) = (col("reference_value"), col("tolerance"));
    let number = |s: &str| -> Option<f64> {
        let s = s.trim();
        (!s.is_empty()).then(|| s.parse().expect("numeric reference value or tolerance"))
    };
    reader
        .records()
        .map(|record| record.expect("reference CSV row parses"))
        .filter(|r| &r[c_set] == data_set)
        .map(|r| TableRow {
            family: r[c_family].to_string(),
            tag: r[c_tag].to_string(),
            value: number(&r[c_value]),
            tolerance: number(&r[c_tol]),
        })
        .collect()
}

/// A NIfTI volume under the shared data directory as a `[z, y, x]` array plus its
/// spacing `[z, y, x]` in mm.
pub fn read_nifti(rel: &str) -> (Array3<f32>, [f64; 3]) {
    let path = shared_data().join(rel);
    let obj = ReaderOptions::new()
        .read_file(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let pixdim = obj.header().pixdim;
    let data = obj
        .into_volume()
        .into_ndarray::<f32>()
        .expect("NIfTI volume converts to f32");
    let shape = data.shape().to_vec();
    assert_eq!(shape.len(), 3, "{rel}: expected a 3D volume, got {shape:?}");
    let (nx, ny, nz) = (shape[0], shape[1], shape[2]);
    // Logical iteration order of an (x, y, z) array: x slowest, z fastest.
    let flat: Vec<f32> = data.iter().copied().collect();
    let zyx = Array3::from_shape_fn((nz, ny, nx), |(z, y, x)| flat[(x * ny + y) * nz + z]);
    let spacing = [
        f64::from(pixdim[3]),
        f64::from(pixdim[2]),
        f64::from(pixdim[1]),
    ];
    (zyx, spacing)
}
