//! Criterion benchmark of feature extraction (issue #3): every lesion of a case through
//! [`radscore::pipeline::extract_lesions`] (per-lesion crop, re-segmentation, every enabled
//! family; lesions and families in parallel), for the bundled location profiles (`job`)
//! and for every IBSI 1 family (`ibsi`).
//!
//! Cases: the synthetic 512 × 512 × 300 CT with lesions of 10–200 cm³, generated into a
//! temporary directory at start-up ([`radscore::demo::generate_bench_ct`]), and the IBSI CT
//! phantom, read from `$RADSCORE_SHARED_DATA/ibsi1/ct_phantom/dicom` (default
//! `../shared/data`; CC BY-NC, read in place, never copied; skipped when absent).
//!
//! The series is assembled once per case, outside the timed loop; `radscore bench run`
//! (driven by `scripts/bench.sh extraction`) measures the whole path with peak memory.
//!
//! ```sh
//! cargo bench --bench extraction
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use radscore::benchmark::FeatureSet;
use radscore::demo::BENCH_CT_LESIONS;
use radscore::dicom::{AssembledSeries, assemble_series, files_from_dir};
use radscore::features::{ExtractionSettings, Location};
use radscore::image::Segmentation;
use radscore::pipeline::{self, LesionRequest};

/// Seed of the synthetic CT (the one `scripts/bench.sh` uses).
const SEED: u64 = 1;
/// Samples per benchmark: criterion's minimum; one sample extracts a whole case.
const SAMPLES: usize = 10;
/// Measurement time per benchmark; criterion extends it when a sample takes longer.
const MEASUREMENT: Duration = Duration::from_secs(20);

/// An assembled series, its segmentation and the lesions to extract.
struct Case {
    name: &'static str,
    series: AssembledSeries,
    seg: Segmentation,
    requests: Vec<LesionRequest>,
}

fn load(name: &'static str, series_dir: &Path, mask: &Path, requests: Vec<LesionRequest>) -> Case {
    let files = files_from_dir(series_dir).expect("series files");
    let series = assemble_series(&files).expect("series assembles");
    let bytes = std::fs::read(mask).expect("segmentation file");
    let (_, seg) = pipeline::read_segmentation(
        &bytes,
        mask.file_name().and_then(|n| n.to_str()),
        &series.volume.grid,
        series.frame_of_reference_uid.as_deref(),
    )
    .expect("segmentation maps onto the series");
    Case {
        name,
        series,
        seg,
        requests,
    }
}

fn synthetic_ct(dir: &Path) -> Case {
    radscore::demo::generate_bench_ct(dir, SEED).expect("synthetic CT");
    let requests = BENCH_CT_LESIONS
        .iter()
        .enumerate()
        .map(|(i, &(location, _))| LesionRequest {
            label: u32::try_from(i + 1).expect("five labels"),
            location,
        })
        .collect();
    load(
        "synthetic_ct_512x512x300",
        &dir.join("series"),
        &dir.join("lesions.nii.gz"),
        requests,
    )
}

fn ct_phantom() -> Option<Case> {
    let shared = std::env::var_os("RADSCORE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let dicom = shared.join("ibsi1/ct_phantom/dicom");
    if !dicom.is_dir() {
        eprintln!(
            "extraction bench: no IBSI CT phantom at {}; skipped",
            dicom.display()
        );
        return None;
    }
    let mask = std::fs::read_dir(dicom.join("mask"))
        .expect("phantom mask directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "dcm"))
        .expect("phantom RTSTRUCT");
    let requests = vec![LesionRequest {
        label: 1,
        location: Location::Other,
    }];
    Some(load(
        "ibsi_ct_phantom",
        &dicom.join("image"),
        &mask,
        requests,
    ))
}

fn extraction(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let mut cases = vec![synthetic_ct(tmp.path())];
    cases.extend(ct_phantom());
    let bundled = ExtractionSettings::bundled();

    let mut group = c.benchmark_group("extraction");
    group.sample_size(SAMPLES).measurement_time(MEASUREMENT);
    for case in &cases {
        for set in [FeatureSet::Job, FeatureSet::Ibsi] {
            let settings = set.settings(&bundled);
            let id = format!("{}/{:?}", case.name, set).to_lowercase();
            group.bench_function(id, |b| {
                b.iter(|| {
                    let lesions = pipeline::extract_lesions(
                        &case.series.volume,
                        &case.seg,
                        &case.requests,
                        &settings,
                        &|_| {},
                    );
                    assert!(lesions.iter().all(|l| l.features.is_ok()));
                    lesions
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, extraction);
criterion_main!(benches);
