//! Offline extraction output and batch runs: `radscore extract` writes one CSV row per
//! lesion, with IBSI tags or PyRadiomics column names ([`Naming`]); `radscore extract
//! --manifest cases.csv` runs many image/mask pairs in parallel into one CSV and resumes
//! an interrupted run by skipping the rows already in the output.
//!
//! Manifest: a CSV with a header naming the columns `image` and `mask` (case-insensitive;
//! PyRadiomics' batch files call them `Image` and `Mask`) and optionally `label` (default:
//! the settings' label) and `location` (default `other`). Relative paths are resolved
//! against the manifest's directory. A row is identified by `(image, mask, label)` as
//! written in the manifest; the output carries these three columns first, so a resumed
//! run recognises finished rows. A case that fails (unreadable file, lesion too small)
//! is a finished row with status `error`, not a stopped batch.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};

use crate::features::{ExtractionSettings, Feature, Location};
use crate::image::Volume;
use crate::pipeline::{self, LesionFeatures, LesionRequest};
use crate::pyradiomics::{self, Selection};

pub use crate::pyradiomics::names::Naming;

/// What the feature columns of an output hold.
#[derive(Debug, Clone)]
pub struct OutputSpec {
    /// The settings the features are computed with.
    pub settings: ExtractionSettings,
    /// Column naming.
    pub naming: Naming,
    /// With PyRadiomics naming, the PyRadiomics features to write (`None`: every
    /// default feature radscore computes with these settings).
    pub selection: Option<Selection>,
}

/// radscore's diagnostics columns in PyRadiomics layout (PyRadiomics writes
/// `diagnostics_Versions_*`, `diagnostics_Configuration_*`, `diagnostics_Mask-original_*`).
pub const DIAGNOSTICS_COLUMNS: [&str; 6] = [
    "diagnostics_Versions_radscore",
    "diagnostics_Configuration_Settings",
    "diagnostics_Configuration_SettingsHash",
    "diagnostics_Configuration_EnabledImageTypes",
    "diagnostics_Mask-original_VoxelNum",
    "diagnostics_radscore_Status",
];

impl OutputSpec {
    /// Feature and diagnostics columns, after the case columns.
    pub fn columns(&self) -> Vec<String> {
        match self.naming {
            Naming::Ibsi => {
                let mut c: Vec<String> = ["location", "voxel_count", "status", "error_code"]
                    .map(String::from)
                    .to_vec();
                c.push("response_probability".into());
                c.extend(self.settings.feature_names());
                c
            }
            Naming::Pyradiomics => {
                let mut c: Vec<String> = vec!["location".into()];
                c.extend(DIAGNOSTICS_COLUMNS.map(String::from));
                c.push("diagnostics_radscore_Error".into());
                c.push("response_probability".into());
                c.extend(self.feature_columns());
                c
            }
        }
    }

    /// The feature columns alone, in the output naming.
    pub fn feature_columns(&self) -> Vec<String> {
        match self.naming {
            Naming::Ibsi => self.settings.feature_names(),
            Naming::Pyradiomics => {
                let names: Vec<Feature> = self
                    .settings
                    .feature_names()
                    .into_iter()
                    .map(|n| Feature::new(n, 0.0))
                    .collect();
                self.rename(&names).into_iter().map(|f| f.name).collect()
            }
        }
    }

    fn rename(&self, features: &[Feature]) -> Vec<Feature> {
        pyradiomics::names::to_pyradiomics_all(
            features,
            self.settings.for_location(Location::Other),
            self.selection.as_ref(),
        )
    }

    /// The values of [`OutputSpec::columns`] for one lesion.
    pub fn row(&self, lesion: &LesionFeatures, probability: Option<f64>) -> Vec<String> {
        let error = lesion.features.as_ref().err();
        let status = if error.is_some() { "error" } else { "ok" };
        let probability = probability.map(|p| p.to_string()).unwrap_or_default();
        let mut row = vec![lesion.request.location.as_str().to_string()];
        let width = self.columns().len();
        match self.naming {
            Naming::Ibsi => {
                row.extend([
                    lesion.voxel_count.to_string(),
                    status.into(),
                    error.map(|e| e.code.clone()).unwrap_or_default(),
                    probability,
                ]);
                if let Ok(f) = &lesion.features {
                    row.extend(f.iter().map(|x| x.value.to_string()));
                }
            }
            Naming::Pyradiomics => {
                let profile = self.settings.for_location(lesion.request.location);
                row.extend([
                    env!("CARGO_PKG_VERSION").to_string(),
                    serde_json::to_string(profile).unwrap_or_default(),
                    self.settings.hash(),
                    pyradiomics::names::enabled_image_types(profile),
                    lesion.voxel_count.to_string(),
                    status.into(),
                    error
                        .map(|e| format!("{}: {}", e.code, e.message))
                        .unwrap_or_default(),
                    probability,
                ]);
                if let Ok(f) = &lesion.features {
                    row.extend(self.rename(f).into_iter().map(|x| x.value.to_string()));
                }
            }
        }
        row.resize(width, String::new());
        row
    }
}

/// Read a CT volume: a DICOM directory or zip, or a NIfTI (`.nii`, `.nii.gz`) or NRRD
/// (`.nrrd`) image; with the series' FrameOfReferenceUID for DICOM (SEG and RTSTRUCT
/// masks must share it).
pub fn load_volume(path: &Path) -> anyhow::Result<(Volume, Option<String>)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".nii") || lower.ends_with(".nii.gz") {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok((
            crate::image::labelmap::read_nifti_volume(&bytes, &name)?,
            None,
        ));
    }
    if lower.ends_with(".nrrd") {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok((crate::image::nrrd::read_nrrd_volume(&bytes, &name)?, None));
    }
    let policy = crate::dicom::GeometryPolicy::Refuse;
    let series = if path.is_dir() {
        // One file in memory at a time.
        let files = crate::dicom::file_refs_from_dir(path)?;
        crate::dicom::assemble_series_from(files.as_slice(), policy)?
    } else {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let files =
            crate::dicom::files_from_zip(bytes.into(), &crate::dicom::ArchiveLimits::default())?;
        crate::dicom::assemble_series_from(files.as_slice(), policy)?
    };
    for w in &series.warnings {
        tracing::warn!(warning = %w, "series assembled with a warning");
    }
    Ok((series.volume, series.frame_of_reference_uid))
}

/// One manifest row.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Image path as written in the manifest.
    pub image: String,
    /// Mask path as written in the manifest.
    pub mask: String,
    /// Mask label.
    pub label: u32,
    /// Lesion location (settings profile).
    pub location: Location,
}

/// What identifies a finished row in the output: image, mask, label and location (the
/// first four output columns), so rows differing only in location are distinct cases.
type CaseKey = (String, String, String, String);

impl Case {
    fn key(&self) -> CaseKey {
        (
            self.image.clone(),
            self.mask.clone(),
            self.label.to_string(),
            self.location.as_str().to_string(),
        )
    }
}

/// Read a manifest; rows without a label get `default_label`.
///
/// # Errors
/// A missing `image`/`mask` column, or a row whose label or location does not parse
/// (named by its line).
pub fn read_manifest(text: &str, default_label: u32) -> anyhow::Result<Vec<Case>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .context("reading the manifest header")?
        .iter()
        .map(str::to_ascii_lowercase)
        .collect();
    let column = |name: &str| header.iter().position(|h| h == name);
    let (Some(image), Some(mask)) = (column("image"), column("mask")) else {
        bail!("the manifest header must name the columns 'image' and 'mask', found {header:?}");
    };
    let (label, location) = (column("label"), column("location"));
    let mut cases = Vec::new();
    let mut seen: std::collections::HashMap<CaseKey, usize> = std::collections::HashMap::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.with_context(|| format!("manifest line {line}"))?;
        let field = |c: Option<usize>| c.and_then(|c| record.get(c)).unwrap_or("").to_string();
        let label = match field(label).as_str() {
            "" => default_label,
            l => l.parse().ok().filter(|&l: &u32| l > 0).with_context(|| {
                format!("manifest line {line}: label '{l}' is not a positive integer")
            })?,
        };
        let location = match field(location).as_str() {
            "" => Location::Other,
            l => Location::parse(l)
                .with_context(|| format!("manifest line {line}: unknown location '{l}'"))?,
        };
        let (image, mask) = (field(Some(image)), field(Some(mask)));
        if image.is_empty() || mask.is_empty() {
            bail!("manifest line {line}: image and mask are required");
        }
        let case = Case {
            image,
            mask,
            label,
            location,
        };
        // A repeated row would be skipped as finished on resume; refuse it up front.
        if let Some(first) = seen.insert(case.key(), line) {
            bail!(
                "manifest line {line} repeats line {first} (same image, mask, label and location)"
            );
        }
        cases.push(case);
    }
    Ok(cases)
}

/// The case columns every batch output starts with.
pub const CASE_COLUMNS: [&str; 3] = ["image", "mask", "label"];

/// Extract one case; any failure becomes the lesion's error.
pub fn extract_case(case: &Case, base: &Path, settings: &ExtractionSettings) -> LesionFeatures {
    let request = LesionRequest {
        label: case.label,
        location: case.location,
    };
    let run = || -> anyhow::Result<LesionFeatures> {
        let (volume, frame_of_reference) = load_volume(&base.join(&case.image))?;
        let mask_path = base.join(&case.mask);
        let bytes = std::fs::read(&mask_path)
            .with_context(|| format!("reading {}", mask_path.display()))?;
        let (_, seg) = pipeline::read_segmentation(
            &bytes,
            Some(&case.mask),
            &volume.grid,
            frame_of_reference.as_deref(),
        )?;
        let mut lesions = pipeline::extract_lesions(&volume, &seg, &[request], settings, &|_| {});
        lesions.pop().context("one lesion requested")
    };
    run().unwrap_or_else(|e| LesionFeatures {
        request,
        name: None,
        voxel_count: 0,
        features: Err(pipeline::LesionError {
            code: "case_unreadable".into(),
            message: format!("{e:#}"),
        }),
    })
}

/// How a batch run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    /// Rows found finished in an existing output and skipped.
    pub skipped: usize,
    /// Rows computed in this run.
    pub computed: usize,
    /// Of those, rows with status `error`.
    pub failed: usize,
}

/// Run every case not yet in `out` with `workers` threads, appending one row per case
/// (flushed at once, so an interrupted run loses at most the rows in flight).
/// `progress(done, total)` is called after each row.
///
/// # Errors
/// An existing output whose header differs (other settings or naming), or an I/O error.
pub fn run(
    cases: &[Case],
    base: &Path,
    spec: &OutputSpec,
    out: &Path,
    workers: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> anyhow::Result<BatchSummary> {
    let mut header: Vec<String> = CASE_COLUMNS.map(String::from).to_vec();
    header.extend(spec.columns());
    let done = finished_rows(out, &header)?;
    let todo: Vec<&Case> = cases.iter().filter(|c| !done.contains(&c.key())).collect();
    let skipped = cases.len() - todo.len();

    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .with_context(|| format!("opening {}", out.display()))?;
    let fresh = file.metadata()?.len() == 0;
    let writer = Mutex::new(csv::Writer::from_writer(file));
    if fresh {
        write_row(&writer, &header)?;
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    progress(0, todo.len());
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| {
                while let Some(case) = todo.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let lesion = extract_case(case, base, &spec.settings);
                    if lesion.features.is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    let (image, mask, label, _location) = case.key();
                    let mut row = vec![image, mask, label];
                    row.extend(spec.row(&lesion, None)); // starts with the location
                    if let Err(e) = write_row(&writer, &row) {
                        if let Ok(mut first) = first_error.lock() {
                            first.get_or_insert(e);
                        }
                        return;
                    }
                    progress(finished.fetch_add(1, Ordering::Relaxed) + 1, todo.len());
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(BatchSummary {
        skipped,
        computed: finished.into_inner(),
        failed: failed.into_inner(),
    })
}

fn write_row(writer: &Mutex<csv::Writer<std::fs::File>>, row: &[String]) -> anyhow::Result<()> {
    let mut w = writer
        .lock()
        .map_err(|_| anyhow::anyhow!("a writer thread panicked"))?;
    w.write_record(row)?;
    w.flush()?;
    Ok(())
}

/// Keys of the complete rows of an existing output. A last line cut off by an interrupted
/// run is removed from the file; a header that differs from `header` is an error.
fn finished_rows(out: &Path, header: &[String]) -> anyhow::Result<HashSet<CaseKey>> {
    let mut done = HashSet::new();
    let mut file = match std::fs::OpenOptions::new().read(true).write(true).open(out) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(e).with_context(|| format!("opening {}", out.display())),
    };
    let mut text = String::new();
    file.read_to_string(&mut text)
        .with_context(|| format!("reading {}", out.display()))?;
    if !text.is_empty() && !text.ends_with('\n') {
        // An interrupted write: drop the partial last row.
        let keep = text.rfind('\n').map_or(0, |i| i + 1);
        text.truncate(keep);
        file.set_len(keep as u64)?;
        file.seek(SeekFrom::End(0))?;
        file.flush()?;
    }
    if text.is_empty() {
        return Ok(done);
    }
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let found: Vec<String> = reader.headers()?.iter().map(String::from).collect();
    if found != header {
        bail!(
            "{} already holds results with other columns (other settings or naming); \
             write to a new file",
            out.display()
        );
    }
    for record in reader.records() {
        let record = record?;
        if record.len() == header.len() {
            done.insert((
                record[0].to_string(),
                record[1].to_string(),
                record[2].to_string(),
                record[3].to_string(),
            ));
        }
    }
    Ok(done)
}

/// The manifest's directory, against which relative case paths are resolved.
pub fn manifest_base(manifest: &Path) -> PathBuf {
    manifest.parent().map(Path::to_path_buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_columns_are_case_insensitive_and_optional() {
        let cases = read_manifest(
            "Image,Mask,Label,location\na.nii.gz,m.nii.gz,2,pleura\nb.nii,n.nii,,\n",
            1,
        )
        .unwrap();
        assert_eq!(cases[0].label, 2);
        assert_eq!(cases[0].location, Location::Pleura);
        assert_eq!(cases[1].label, 1);
        assert_eq!(cases[1].location, Location::Other);
        assert!(read_manifest("img,mask\nx,y\n", 1).is_err());
        let err = read_manifest("image,mask,label\nx,y,zero\n", 1).unwrap_err();
        assert!(format!("{err:#}").contains("line 2"));
    }

    #[test]
    fn rows_differing_only_in_location_are_distinct_and_repeats_are_refused() {
        let cases = read_manifest(
            "image,mask,label,location\na,m,1,pleura\na,m,1,lymph_node\n",
            1,
        )
        .unwrap();
        assert_ne!(cases[0].key(), cases[1].key());
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.csv");
        let header: Vec<String> = ["image", "mask", "label", "location"]
            .map(String::from)
            .to_vec();
        std::fs::write(&out, "image,mask,label,location\na,m,1,pleura\n").unwrap();
        let done = finished_rows(&out, &header).unwrap();
        assert!(done.contains(&cases[0].key()));
        assert!(
            !done.contains(&cases[1].key()),
            "another location is not finished"
        );
        let err = read_manifest("image,mask,label\na,m,1\nb,n,1\na,m,1\n", 1).unwrap_err();
        assert!(
            format!("{err:#}").contains("line 4 repeats line 2"),
            "{err:#}"
        );
    }

    #[test]
    fn a_cut_off_last_row_is_dropped_and_other_headers_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.csv");
        let header: Vec<String> = ["image", "mask", "label", "x"].map(String::from).to_vec();
        std::fs::write(&out, "image,mask,label,x\na,b,1,5\nc,d,1,").unwrap();
        let done = finished_rows(&out, &header).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "image,mask,label,x\na,b,1,5\n"
        );
        let other: Vec<String> = ["image", "mask", "label", "y"].map(String::from).to_vec();
        assert!(finished_rows(&out, &other).is_err());
    }
}
