//! Generate a case and read it back with independent readers (dicom-object, nifti) and
//! with radscore's own label-map reader.

use std::collections::BTreeSet;

use dicom_dictionary_std::tags;
use ndarray::Array3;
use nifti::{IntoNdArray, NiftiObject, ReaderOptions};

use super::phantom::{Anatomy, draw_location};
use super::*;

/// Tolerance for coordinates written as DS / f32 text and read back, mm.
const COORD_TOLERANCE_MM: f64 = 1e-4;

fn small_options() -> DemoOptions {
    DemoOptions {
        shape_vox: [24, 64, 64],
        spacing_mm: [2.5, 0.8, 0.8],
        min_lesions: 3,
        max_lesions: 3,
    }
}

fn dicom_str(obj: &dicom_object::InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(['\0', ' '])
        .to_owned()
}

fn dicom_f64s(obj: &dicom_object::InMemDicomObject, tag: dicom_core::Tag) -> Vec<f64> {
    obj.element(tag).unwrap().to_multi_float64().unwrap()
}

#[test]
fn dicom_series_reads_back_with_its_geometry() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = small_options();
    let case = generate(tmp.path(), 7, &opts).unwrap();
    assert_eq!(case.dicom_files.len(), opts.shape_vox[0]);

    for (k, path) in case.dicom_files.iter().enumerate() {
        let obj = dicom_object::open_file(path).unwrap();
        assert_eq!(
            obj.meta().transfer_syntax().trim_end_matches('\0'),
            "1.2.840.10008.1.2.1"
        );
        assert_eq!(
            dicom_str(&obj, tags::SOP_CLASS_UID),
            "1.2.840.10008.5.1.4.1.1.2"
        );
        assert_eq!(dicom_str(&obj, tags::PATIENT_ID), "DEMO-7");
        assert_eq!(dicom_str(&obj, tags::PATIENT_NAME), PATIENT_NAME);
        assert_eq!(
            dicom_str(&obj, tags::SERIES_INSTANCE_UID),
            case.series_instance_uid
        );
        assert_eq!(
            obj.element(tags::ROWS).unwrap().to_int::<u16>().unwrap(),
            64
        );
        assert_eq!(dicom_f64s(&obj, tags::PIXEL_SPACING), vec![0.8, 0.8]);
        assert_eq!(dicom_f64s(&obj, tags::RESCALE_INTERCEPT), vec![-1024.0]);

        let ipp = dicom_f64s(&obj, tags::IMAGE_POSITION_PATIENT);
        let want = case.grid.index_to_world([k as f64, 0.0, 0.0]);
        for c in 0..3 {
            assert!(
                (ipp[c] - want[c]).abs() < COORD_TOLERANCE_MM,
                "slice {k}: {ipp:?} vs {want:?}"
            );
        }
        let pixels = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
        assert_eq!(pixels.len(), 64 * 64 * 2);
    }

    // UIDs are distinct per instance and valid (≤ 64 chars, digits and dots).
    let sops: BTreeSet<String> = case
        .dicom_files
        .iter()
        .map(|p| dicom_str(&dicom_object::open_file(p).unwrap(), tags::SOP_INSTANCE_UID))
        .collect();
    assert_eq!(sops.len(), case.dicom_files.len());
    for uid in sops
        .iter()
        .chain([&case.study_instance_uid, &case.frame_of_reference_uid])
    {
        assert!(uid.len() <= 64 && uid.starts_with("2.25."), "{uid}");
        assert!(uid.chars().all(|c| c.is_ascii_digit() || c == '.'), "{uid}");
    }
}

#[test]
fn label_map_matches_the_grid_and_the_lesion_list() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = small_options();
    let case = generate(tmp.path(), 11, &opts).unwrap();

    let obj = ReaderOptions::new().read_file(&case.labelmap).unwrap();
    let h = obj.header().clone();
    assert_eq!(&h.dim[..4], &[3, 64, 64, 24]);
    assert_eq!(&h.pixdim[1..4], &[0.8, 0.8, 2.5]);
    // RAS: x and y of the LPS origin change sign.
    let o = case.grid.origin_mm;
    assert!((f64::from(h.srow_x[3]) + o[0]).abs() < COORD_TOLERANCE_MM);
    assert!((f64::from(h.srow_y[3]) + o[1]).abs() < COORD_TOLERANCE_MM);
    assert!((f64::from(h.srow_z[3]) - o[2]).abs() < COORD_TOLERANCE_MM);

    let ijk = obj.into_volume().into_ndarray::<u8>().unwrap();
    assert_eq!(ijk.shape(), &[64, 64, 24]);
    let found: BTreeSet<u8> = ijk.iter().copied().filter(|&v| v != 0).collect();
    let listed: BTreeSet<u8> = case.lesions.iter().map(|l| l.label).collect();
    assert_eq!(found, listed);
    assert_eq!(listed, (1..=3).collect());
    for lesion in &case.lesions {
        let n = ijk.iter().filter(|&&v| v == lesion.label).count();
        assert_eq!(n, lesion.voxel_count, "label {}", lesion.label);
        assert!(n >= 27, "label {} has only {n} voxels", lesion.label);
    }
}

#[test]
fn radscore_reads_the_label_map_onto_the_series_grid() {
    let tmp = tempfile::tempdir().unwrap();
    let case = generate(tmp.path(), 3, &small_options()).unwrap();
    let bytes = std::fs::read(&case.labelmap).unwrap();
    let seg =
        crate::image::labelmap::read_nifti_labelmap(&bytes, "lesions.nii.gz", &case.grid).unwrap();
    assert_eq!(seg.lesions.len(), case.lesions.len());
    for (mask, lesion) in seg.lesions.iter().zip(&case.lesions) {
        assert_eq!(mask.label, u32::from(lesion.label));
        assert_eq!(mask.voxel_count(), lesion.voxel_count);
        // The lesion's centre lies inside its bounding box on the series grid.
        let c = case.grid.world_to_index(lesion.centre_mm);
        let [lo, hi] = mask.bbox_zyx();
        for a in 0..3 {
            assert!(
                c[a] >= lo[a] as f64 - 1.0 && c[a] <= hi[a] as f64 + 1.0,
                "axis {a}"
            );
        }
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_case() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let opts = small_options();
    let ca = generate(a.path(), 5, &opts).unwrap();
    let cb = generate(b.path(), 5, &opts).unwrap();
    let cc = generate(c.path(), 6, &opts).unwrap();
    for name in [
        "lesions.nii.gz",
        "series.zip",
        "lesions.json",
        "series/CT_0010.dcm",
    ] {
        let bytes = |d: &tempfile::TempDir| std::fs::read(d.path().join(name)).unwrap();
        assert_eq!(bytes(&a), bytes(&b), "{name} differs for the same seed");
        assert_ne!(bytes(&a), bytes(&c), "{name} equal for different seeds");
    }
    assert_eq!(ca.lesions, cb.lesions);
    assert_ne!(ca.study_instance_uid, cc.study_instance_uid);
}

#[test]
fn lesion_intensity_follows_its_latent_mean() {
    let tmp = tempfile::tempdir().unwrap();
    let case = generate(tmp.path(), 21, &DemoOptions::default()).unwrap();
    let hu = read_series_hu(&case);
    let labels = ReaderOptions::new()
        .read_file(&case.labelmap)
        .unwrap()
        .into_volume()
        .into_ndarray::<u8>()
        .unwrap();
    for lesion in &case.lesions {
        let values: Vec<f64> = labels
            .indexed_iter()
            .filter(|(_, v)| **v == lesion.label)
            .map(|(ix, _)| hu[[ix[2], ix[1], ix[0]]])
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        // The texture field has unit variance over space, not zero mean within one small
        // lesion: allow its heterogeneity plus a margin.
        let slack = lesion.heterogeneity_hu + 10.0;
        assert!(
            (mean - lesion.mean_hu).abs() < slack,
            "label {}: mean {mean} vs {}",
            lesion.label,
            lesion.mean_hu
        );
    }
}

#[test]
fn locations_follow_the_pilot_mix() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let n = 20_000;
    let pleura = (0..n)
        .filter(|_| draw_location(&mut rng) == Location::Pleura)
        .count();
    let share = pleura as f64 / n as f64;
    // Binomial sd at n = 20 000 is 0.0035; 4 sd.
    assert!((share - 0.55).abs() < 0.014, "pleura share {share}");
}

#[test]
fn invalid_options_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = small_options();
    opts.min_lesions = 0;
    assert!(matches!(
        generate(tmp.path(), 1, &opts),
        Err(DemoError::InvalidOptions(_))
    ));
    let mut opts = small_options();
    opts.spacing_mm[1] = f64::NAN;
    assert!(matches!(
        generate(tmp.path(), 1, &opts),
        Err(DemoError::InvalidOptions(_))
    ));
}

/// HU volume `[z, y, x]` decoded from the written DICOM files (stored + intercept).
fn read_series_hu(case: &DemoCase) -> Array3<f64> {
    let [nz, ny, nx] = case.grid.shape_vox;
    let mut hu = Array3::<f64>::zeros((nz, ny, nx));
    for (k, path) in case.dicom_files.iter().enumerate() {
        let obj = dicom_object::open_file(path).unwrap();
        let bytes = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
        for (n, pair) in bytes.chunks_exact(2).enumerate() {
            let stored = i16::from_le_bytes([pair[0], pair[1]]);
            hu[[k, n / nx, n % nx]] = f64::from(stored) + RESCALE_INTERCEPT_HU;
        }
    }
    hu
}

#[test]
fn radscore_assembles_the_zipped_series_on_the_case_grid() {
    let tmp = tempfile::tempdir().unwrap();
    let case = generate(tmp.path(), 9, &small_options()).unwrap();
    let zip = bytes::Bytes::from(std::fs::read(&case.series_zip).unwrap());
    let files = crate::dicom::files_from_zip(zip, &Default::default()).unwrap();
    assert_eq!(files.len(), case.dicom_files.len());

    let series = crate::dicom::assemble_series(&files).unwrap();
    assert_eq!(series.series_uid, case.series_instance_uid);
    case.grid.check_same_as(&series.volume.grid).unwrap();
    let written = read_series_hu(&case);
    let max_diff = series
        .volume
        .hu
        .iter()
        .zip(written.iter())
        .map(|(a, b)| (f64::from(a) - b).abs())
        .fold(0.0, f64::max);
    assert_eq!(
        max_diff, 0.0,
        "HU differ between radscore's reader and the raw decode"
    );
}

#[test]
fn lesions_of_a_given_volume_are_painted_within_two_per_cent() {
    let opts = DemoOptions {
        shape_vox: [48, 96, 96],
        spacing_mm: [1.25, 0.8, 0.8],
        min_lesions: 1,
        max_lesions: 1,
    };
    let grid = demo_grid(&opts);
    let anatomy = Anatomy::new(&grid);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut hu = Array3::<f32>::zeros(grid.shape_vox);
    let mut labels = Array3::<u8>::zeros(grid.shape_vox);
    let voxel_mm3: f64 = grid.spacing_mm.iter().product();
    for (label, (location, volume_mm3)) in
        [(Location::SoftTissue, 2_000.0), (Location::Other, 5_000.0)]
            .into_iter()
            .enumerate()
    {
        let label = u8::try_from(label + 1).unwrap();
        let lesion = super::phantom::add_lesion_of_volume(
            label,
            location,
            volume_mm3,
            (&grid, &anatomy),
            &mut hu,
            &mut labels,
            &mut rng,
        )
        .unwrap();
        let painted = labels.iter().filter(|&&l| l == label).count();
        assert_eq!(painted, lesion.voxel_count);
        assert_eq!(lesion.location, location);
        let found_mm3 = painted as f64 * voxel_mm3;
        assert!(
            (found_mm3 / volume_mm3 - 1.0).abs() <= 0.02,
            "label {label}: {found_mm3} mm³ for {volume_mm3}"
        );
    }
}

#[test]
fn the_bench_ct_lesions_span_10_to_200_cm3() {
    let volumes: Vec<f64> = BENCH_CT_LESIONS.iter().map(|(_, v)| *v).collect();
    assert_eq!(volumes, [10.0, 25.0, 50.0, 100.0, 200.0]);
    assert_eq!(BENCH_CT_SHAPE_VOX, [300, 512, 512]);
}
