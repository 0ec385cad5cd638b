//! One CT series: DICOM files → a [`Volume`] in HU.
//!
//! Parse every file (classic or enhanced CT, see `frames`) → one SeriesInstanceUID → one
//! patient and study (PatientID, PatientName, StudyInstanceUID; compared, never shown) →
//! exact duplicates dropped by SOPInstanceUID (a repeat at another position is refused) →
//! consistent Rows / Columns / PixelSpacing /
//! orientation → stack geometry (order, spacing, shear; resampled when configured, see
//! [`geometry`](super::geometry)) → decode pixel data with the Modality LUT
//! (RescaleSlope/RescaleIntercept, PS3.3 C.11.1.1.2) into the volume, kept as 16-bit
//! samples when they represent the HU exactly ([`Intensities`]).
//!
//! Files are read one at a time ([`InstanceSource`]): a first pass reads the headers, the
//! second decodes each plane straight into the preallocated volume, so assembly needs the
//! volume plus one instance in memory, not every file as well.
//!
//! [`scan_series`] runs the same checks for an upload with bounded memory: it reads one
//! file at a time from disk, decodes its pixel data to prove it decodable and releases it,
//! so a 1 GiB series needs about one instance in memory, not the volume.

use std::collections::{BTreeMap, HashMap};

use dicom_object::DefaultDicomObject;
use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder, Rescale};
use ndarray::{Array3, ArrayViewMut2};

use super::frames::{
    BITS_ALLOCATED, COLUMNS, IMAGE_ORIENTATION, Instance, PIXEL_DATA, PIXEL_SPACING, PatientStudy,
    ROWS, SAMPLES_PER_PIXEL, Slice, read_instance,
};
use super::geometry::{
    AcquiredStack, GeometryPolicy, GeometryStatus, StackGeometry, stack_geometry,
};
use super::{Attr, DicomError, InputFile, bad, req_u32, sanitize_uid};
use crate::image::{GEOMETRY_TOLERANCE_FRACTION as TOL, Grid, Intensities, Rescale16, Volume};

/// Two copies of one SOPInstanceUID are the same image when every plane's
/// ImagePositionPatient agrees within this distance, mm (DS text rounding); a copy
/// elsewhere is a conflict, not a duplicate.
const DUPLICATE_POSITION_TOLERANCE_MM: f64 = 1e-3;

/// A CT series assembled into a volume, with what was learnt on the way.
#[derive(Debug, Clone)]
pub struct AssembledSeries {
    /// The volume in HU on the series grid.
    pub volume: Volume,
    /// SeriesInstanceUID (0020,000E).
    pub series_uid: String,
    /// FrameOfReferenceUID (0020,0052) of the first slice, when present.
    pub frame_of_reference_uid: Option<String>,
    /// Mean distance between adjacent slice centres along the normal, mm.
    pub measured_slice_spacing_mm: f64,
    /// Number of distinct instances used (after removing duplicates).
    pub instance_count: usize,
    /// Lenient recoveries (duplicates dropped, …), for quality flags. Never PHI.
    pub warnings: Vec<String>,
    /// Whether the grid is the acquired stack or a resampling of it.
    pub geometry: GeometryStatus,
}

/// What an upload check learns about a series: everything but the voxels.
#[derive(Debug, Clone)]
pub struct SeriesSummary {
    /// The series grid (after resampling, when the policy resampled).
    pub grid: Grid,
    pub series_uid: String,
    pub frame_of_reference_uid: Option<String>,
    pub measured_slice_spacing_mm: f64,
    pub instance_count: usize,
    pub warnings: Vec<String>,
    pub geometry: GeometryStatus,
    /// The acquired slices when the grid is a resampling of them: DICOM SEG and RTSTRUCT
    /// are placed there and resampled like the image.
    pub acquired: Option<AcquiredStack>,
}

/// One instance file on disk (an upload spooled to a temporary directory).
#[derive(Debug, Clone)]
pub struct FileRef {
    /// Name for messages (client file name, archive entry or `part N`).
    pub name: String,
    pub path: std::path::PathBuf,
}

/// Instance files of one upload that assembly reads one at a time, so only one instance
/// (plus the volume being filled) is in memory: files held in memory, files on disk
/// ([`FileRef`]) or blobs fetched on demand.
pub trait InstanceSource: Sync {
    /// Number of files.
    fn count(&self) -> usize;

    /// File `index` (`0..count()`), with its name for messages.
    ///
    /// # Errors
    /// [`DicomError::Io`] when it cannot be read.
    fn fetch(&self, index: usize) -> Result<InputFile, DicomError>;

    /// A key naming file `index` for as long as the process runs, when its bytes never
    /// change under that key (a stored blob): its parsed header is then kept in a
    /// process-wide cache and not read again (see [`HEADER_CACHE_PLANES`]).
    fn immutable_key(&self, _index: usize) -> Option<&str> {
        None
    }
}

/// Planes whose parsed headers (no pixel data) the process-wide header cache holds, about
/// 200 bytes each. A series pushed over STOW-RS one instance per request is re-planned on
/// every request; with the cache each request parses only the instances it brought, not
/// the whole union again, and a job's header pass on stored blobs is free after that.
pub const HEADER_CACHE_PLANES: u64 = 200_000;

/// Weight of a cached instance: its planes (an Enhanced CT instance holds many).
#[derive(Clone)]
struct PlaneWeighter;

impl quick_cache::Weighter<String, Instance> for PlaneWeighter {
    fn weight(&self, _key: &String, instance: &Instance) -> u64 {
        instance.planes.len().max(1) as u64
    }
}

/// The process-wide cache of parsed headers of immutable files, by their key.
fn header_cache() -> &'static quick_cache::sync::Cache<String, Instance, PlaneWeighter> {
    /// Instances the cache is sized for (classic CT: one plane each).
    const ESTIMATED_INSTANCES: usize = 20_000;
    static CACHE: std::sync::OnceLock<quick_cache::sync::Cache<String, Instance, PlaneWeighter>> =
        std::sync::OnceLock::new();
    CACHE.get_or_init(|| {
        quick_cache::sync::Cache::with_weighter(
            ESTIMATED_INSTANCES,
            HEADER_CACHE_PLANES,
            PlaneWeighter,
        )
    })
}

impl InstanceSource for [InputFile] {
    fn count(&self) -> usize {
        self.len()
    }

    fn fetch(&self, index: usize) -> Result<InputFile, DicomError> {
        self.get(index).cloned().ok_or_else(|| missing_file(index))
    }
}

impl InstanceSource for [FileRef] {
    fn count(&self) -> usize {
        self.len()
    }

    fn fetch(&self, index: usize) -> Result<InputFile, DicomError> {
        let f = self.get(index).ok_or_else(|| missing_file(index))?;
        let bytes = std::fs::read(&f.path).map_err(|source| DicomError::Io {
            path: f.name.clone(),
            source,
        })?;
        Ok(InputFile {
            name: f.name.clone(),
            bytes: bytes.into(),
        })
    }
}

/// An index beyond a source's files (a caller's bug, reported rather than panicking).
fn missing_file(index: usize) -> DicomError {
    DicomError::Io {
        path: format!("file {index}"),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file in the upload"),
    }
}

/// Assemble the CT series contained in `files` (any order), refusing irregular stacks.
///
/// # Errors
/// As [`assemble_series_with`].
pub fn assemble_series(files: &[InputFile]) -> Result<AssembledSeries, DicomError> {
    assemble_series_from(files, GeometryPolicy::Refuse)
}

/// Assemble the CT series contained in `files` (any order); irregular stacks are refused
/// or resampled by `policy`.
///
/// # Errors
/// As [`assemble_series_from`].
pub fn assemble_series_with(
    files: &[InputFile],
    policy: GeometryPolicy,
) -> Result<AssembledSeries, DicomError> {
    assemble_series_from(files, policy)
}

/// Assemble the CT series of `files` (any order, read one at a time); irregular stacks
/// are refused or resampled by `policy`: [`plan_series`], then [`SeriesPlan::decode`].
///
/// # Errors
/// A [`DicomError`] naming the file and tag at fault: non-DICOM input, missing or
/// malformed attributes, several series, inconsistent geometry, a missing slice,
/// non-uniform spacing or a sheared stack (with [`GeometryPolicy::Refuse`]), undecodable
/// or short pixel data; [`DicomError::Io`] when a file cannot be read.
pub fn assemble_series_from<S: InstanceSource + ?Sized>(
    files: &S,
    policy: GeometryPolicy,
) -> Result<AssembledSeries, DicomError> {
    plan_series(files, policy)?.decode(files)
}

/// A series whose headers have been read and whose geometry is checked: everything but
/// the voxels, which [`SeriesPlan::decode`] reads. In between, the grid is known and the
/// volume not yet allocated (a job maps its segmentation there, so the label map and the
/// volume are never in memory together).
pub struct SeriesPlan {
    summary: SeriesSummary,
    geometry: StackGeometry,
}

/// Read the headers of every instance of `files` (one file in memory at a time) and
/// check the series and its stack geometry, without decoding pixel data.
///
/// # Errors
/// As [`assemble_series_from`], except undecodable pixel data (found by `decode`).
pub fn plan_series<S: InstanceSource + ?Sized>(
    files: &S,
    policy: GeometryPolicy,
) -> Result<SeriesPlan, DicomError> {
    let parsed = read_headers(files, false)?;
    let (summary, geometry) = summarise(parsed, policy)?;
    Ok(SeriesPlan { summary, geometry })
}

impl SeriesPlan {
    /// What the headers say about the series, including its grid.
    pub fn summary(&self) -> &SeriesSummary {
        &self.summary
    }

    /// Allocate the volume once at its final size and decode every plane straight into
    /// it, re-reading the planes' files from `files` (the same files the plan was made
    /// from) one at a time. The volume keeps the 16-bit samples
    /// ([`Intensities::Stored16`]) whenever they represent the HU exactly.
    ///
    /// # Errors
    /// Undecodable or short pixel data, a file that can no longer be read.
    pub fn decode<S: InstanceSource + ?Sized>(
        self,
        files: &S,
    ) -> Result<AssembledSeries, DicomError> {
        let SeriesPlan { summary, geometry } = self;
        let hu = match &geometry.resample {
            None => decode_volume(files, &geometry.slices)?,
            Some(plan) => {
                // LIMITATION: a resampled (irregular) stack holds its acquired planes and the result as f32 HU, about 4× the stored samples.
                let mut planes = Vec::with_capacity(geometry.slices.len());
                let mut cache = ObjectCache::default();
                for slice in &geometry.slices {
                    planes.push(decode_slice(slice, cache.object(files, slice)?)?);
                }
                Intensities::F32(super::geometry::resample_stack(
                    plan,
                    &planes,
                    &geometry.grid,
                ))
            }
        };
        Ok(AssembledSeries {
            volume: Volume {
                grid: summary.grid,
                hu,
            },
            series_uid: summary.series_uid,
            frame_of_reference_uid: summary.frame_of_reference_uid,
            measured_slice_spacing_mm: summary.measured_slice_spacing_mm,
            instance_count: summary.instance_count,
            warnings: summary.warnings,
            geometry: summary.geometry,
        })
    }
}

/// Check the series in `files` as [`assemble_series_with`] does, reading one file at a
/// time and releasing its pixel data once decoded, without building the volume.
///
/// # Errors
/// As [`assemble_series_with`]; [`DicomError::Io`] when a file cannot be read.
pub fn scan_series(files: &[FileRef], policy: GeometryPolicy) -> Result<SeriesSummary, DicomError> {
    let parsed = read_headers(files, true)?;
    Ok(summarise(parsed, policy)?.0)
}

/// The checks one instance passes on its own (as in [`scan_series`]): it parses, and its
/// native Pixel Data has the declared size and decodes.
///
/// # Errors
/// As [`scan_series`] for a single file, without the series-level checks.
pub fn check_instance(file: &FileRef) -> Result<(), DicomError> {
    read_headers(std::slice::from_ref(file), true).map(drop)
}

/// Parse every file of `files` (in parallel, one in memory per worker thread), check each
/// plane's native Pixel Data length (and, with `decode`, decode it to prove it decodable),
/// and keep only the headers: every plane records the file it came from.
fn read_headers<S: InstanceSource + ?Sized>(
    files: &S,
    decode: bool,
) -> Result<Vec<Instance>, DicomError> {
    if files.count() == 0 {
        return Err(DicomError::NoFiles);
    }
    use rayon::prelude::*;
    // In parallel on rayon's pool, one file in memory per thread; the first failing file
    // in upload order is reported, as a sequential read would.
    let read = |index: usize| -> Result<Instance, DicomError> {
        let key = files.immutable_key(index).filter(|_| !decode);
        if let Some(mut instance) = key.and_then(|k| header_cache().get(k)) {
            metrics::counter!("radscore_dicom_header_cache_total", "outcome" => "hit").increment(1);
            for plane in &mut instance.planes {
                plane.source = index;
            }
            return Ok(instance);
        }
        if key.is_some() {
            metrics::counter!("radscore_dicom_header_cache_total", "outcome" => "miss")
                .increment(1);
        }
        let mut instance = read_instance(&files.fetch(index)?)?;
        for plane in &mut instance.planes {
            let obj = plane.obj.take().ok_or_else(|| no_pixels(plane))?;
            check_native_pixel_length(plane, &obj)?;
            if decode {
                drop(decode_slice(plane, &obj)?);
            }
            plane.source = index;
        }
        if let Some(key) = key {
            header_cache().insert(key.to_owned(), instance.clone());
        }
        Ok(instance)
    };
    let outcomes: Vec<Result<Instance, DicomError>> =
        (0..files.count()).into_par_iter().map(read).collect();
    outcomes.into_iter().collect()
}

/// The series-level checks and the stack geometry of parsed instances.
fn summarise(
    parsed: Vec<Instance>,
    policy: GeometryPolicy,
) -> Result<(SeriesSummary, StackGeometry), DicomError> {
    let series_uid = single_series(&parsed)?;
    single_patient_and_study(&parsed)?;
    let mut warnings = Vec::new();
    let instances = drop_duplicates(parsed, &mut warnings)?;
    let frame_of_reference_uid = instances[0].frame_of_reference_uid.clone();
    if instances
        .iter()
        .any(|i| i.frame_of_reference_uid != frame_of_reference_uid)
    {
        warnings.push("slices carry different FrameOfReferenceUIDs; the first is used".into());
    }
    let instance_count = instances.len();
    let slices: Vec<Slice> = instances.into_iter().flat_map(|i| i.planes).collect();
    check_consistent(&slices)?;
    let geometry = stack_geometry(slices, policy)?;
    if let GeometryStatus::Resampled { reason } = &geometry.status {
        warnings.push(reason.clone());
    }
    for w in &warnings {
        tracing::warn!(series_uid = %series_uid, warning = %w, "lenient DICOM recovery");
    }
    let summary = SeriesSummary {
        grid: geometry.grid.clone(),
        series_uid,
        frame_of_reference_uid,
        measured_slice_spacing_mm: geometry.spacing_mm,
        instance_count,
        warnings,
        geometry: geometry.status.clone(),
        acquired: geometry.acquired.clone(),
    };
    Ok((summary, geometry))
}

/// The one SeriesInstanceUID, or `MixedSeries` with instance counts (most first).
fn single_series(instances: &[Instance]) -> Result<String, DicomError> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for i in instances {
        *counts.entry(&i.series_uid).or_default() += 1;
    }
    if counts.len() == 1 {
        return Ok(instances[0].series_uid.clone());
    }
    let mut series: Vec<(String, usize)> = counts
        .into_iter()
        .map(|(uid, n)| (uid.to_owned(), n))
        .collect();
    series.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Err(DicomError::MixedSeries { series })
}

/// Every instance must carry the first one's PatientID, PatientName and StudyInstanceUID
/// (an absent attribute differs from a present one): a series mixing patients would put
/// one patient's result on another's record. The error names the attribute and the two
/// files, never the values.
fn single_patient_and_study(instances: &[Instance]) -> Result<(), DicomError> {
    let Some(first) = instances.first() else {
        return Ok(());
    };
    for other in &instances[1..] {
        for (k, attr) in PatientStudy::ATTRIBUTES.iter().enumerate() {
            if other.patient_study.values[k] != first.patient_study.values[k] {
                return Err(DicomError::MixedPatientOrStudy {
                    tag: attr.1,
                    file: other.file.clone(),
                    reference_file: first.file.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Keep the first file of each SOPInstanceUID and report exact repeats (same planes at the
/// same positions) as warnings; a repeat holding other planes is a
/// [`DicomError::ConflictingDuplicate`] naming both files.
fn drop_duplicates(
    instances: Vec<Instance>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Instance>, DicomError> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut kept: Vec<Instance> = Vec::with_capacity(instances.len());
    for s in instances {
        if let Some(&index) = seen.get(&s.sop_uid) {
            let first = &kept[index];
            if !same_planes(first, &s) {
                return Err(DicomError::ConflictingDuplicate {
                    uid: s.sop_uid.clone(),
                    first_file: first.file.clone(),
                    file: s.file.clone(),
                });
            }
            warnings.push(format!(
                "file '{}' repeats the SOPInstanceUID of '{}' and was ignored",
                s.file, first.file
            ));
            continue;
        }
        seen.insert(s.sop_uid.clone(), kept.len());
        kept.push(s);
    }
    Ok(kept)
}

/// Whether two instances hold as many planes at the same positions.
fn same_planes(a: &Instance, b: &Instance) -> bool {
    a.planes.len() == b.planes.len()
        && a.planes.iter().zip(&b.planes).all(|(p, q)| {
            (0..3).all(|c| (p.ipp[c] - q.ipp[c]).abs() <= DUPLICATE_POSITION_TOLERANCE_MM)
        })
}

/// Rows, Columns, PixelSpacing and ImageOrientationPatient equal to the first slice's
/// (spacing within the tolerance times its value, cosines within the tolerance).
fn check_consistent(slices: &[Slice]) -> Result<(), DicomError> {
    let Some(first) = slices.first() else {
        return Err(DicomError::NoFiles);
    };
    for s in &slices[1..] {
        let differs = |attr: Attr| DicomError::Inconsistent {
            file: s.file.clone(),
            tag: attr.1,
            reference_file: first.file.clone(),
        };
        if s.rows != first.rows {
            return Err(differs(ROWS));
        }
        if s.columns != first.columns {
            return Err(differs(COLUMNS));
        }
        let spacing_ok = (0..2).all(|a| {
            let steps = f64::from(if a == 0 { first.rows } else { first.columns } - 1).max(1.0);
            (s.pixel_spacing[a] - first.pixel_spacing[a]).abs() * steps
                <= TOL * first.pixel_spacing[a]
        });
        if !spacing_ok {
            return Err(differs(PIXEL_SPACING));
        }
        if (0..6).any(|i| (s.iop[i] - first.iop[i]).abs() > TOL) {
            return Err(differs(IMAGE_ORIENTATION));
        }
    }
    Ok(())
}

/// The parsed instance of the plane being decoded: planes of one multi-frame instance
/// follow each other in the stack, so the last parsed file is kept for the next plane.
#[derive(Default)]
struct ObjectCache {
    loaded: Option<(usize, DefaultDicomObject)>,
}

impl ObjectCache {
    /// The parsed instance `slice` comes from, reading and parsing it when not loaded.
    fn object<S: InstanceSource + ?Sized>(
        &mut self,
        files: &S,
        slice: &Slice,
    ) -> Result<&DefaultDicomObject, DicomError> {
        if self.loaded.as_ref().map(|(i, _)| *i) != Some(slice.source) {
            self.loaded = None;
            let file = files.fetch(slice.source)?;
            let obj = super::parse_file(&file.name, &file.bytes)?;
            self.loaded = Some((slice.source, obj));
        }
        match &self.loaded {
            Some((_, obj)) => Ok(obj),
            None => Err(no_pixels(slice)),
        }
    }
}

/// The one Modality LUT that maps every plane's stored values to 16-bit samples exactly:
/// the identity when every plane has slope 1 and a whole intercept (the samples are then
/// HU), else the planes' common rescale; `None` when planes differ.
fn common_rescale(slices: &[Slice]) -> Option<Rescale16> {
    if slices
        .iter()
        .all(|s| s.rescale_slope == 1.0 && s.rescale_intercept.fract() == 0.0)
    {
        return Some(Rescale16::IDENTITY);
    }
    let first = slices.first()?;
    slices
        .iter()
        .all(|s| {
            s.rescale_slope == first.rescale_slope && s.rescale_intercept == first.rescale_intercept
        })
        .then_some(Rescale16 {
            slope: first.rescale_slope,
            intercept: first.rescale_intercept,
        })
}

/// Decode every slice into one `[z, y, x]` volume, as 16-bit samples when they represent
/// the HU exactly, else as `f32` HU.
///
/// The first slice is decoded before the volume is allocated, so a header that declares
/// a huge Rows × Columns without the pixel data to match fails before any allocation
/// (every native Pixel Data length was checked with the headers). The other planes are
/// decoded in parallel ([`decode_planes`]).
fn decode_volume<S: InstanceSource + ?Sized>(
    files: &S,
    slices: &[Slice],
) -> Result<Intensities, DicomError> {
    if let Some(rescale) = common_rescale(slices)
        && let Some(samples) = decode_volume_16(files, slices, rescale)?
    {
        return Ok(Intensities::Stored16 { samples, rescale });
    }
    // Planes with different rescales, or samples beyond 16 bits after the rescale.
    let fill = |slice: &Slice, obj: &DefaultDicomObject, mut plane: ArrayViewMut2<f32>| {
        plane.assign(&plane_view(slice, &decode_slice(slice, obj)?)?);
        Ok(true)
    };
    let mut hu = allocate_after_first_plane(files, slices)?;
    decode_planes(files, slices, hu.view_mut(), fill)?;
    Ok(Intensities::F32(hu))
}

/// [`decode_volume`] into 16-bit samples under `rescale`; `Ok(None)` when a stored value
/// has no exact 16-bit sample (the caller then decodes to `f32`).
fn decode_volume_16<S: InstanceSource + ?Sized>(
    files: &S,
    slices: &[Slice],
    rescale: Rescale16,
) -> Result<Option<Array3<i16>>, DicomError> {
    let fill = |slice: &Slice, obj: &DefaultDicomObject, mut plane: ArrayViewMut2<i16>| {
        let stored = decode_stored(slice, obj)?;
        // Under the identity the samples are HU: stored + the plane's whole intercept.
        let shift = if rescale == Rescale16::IDENTITY {
            slice.rescale_intercept as i64
        } else {
            0
        };
        let Some(target) = plane.as_slice_mut() else {
            return Ok(false);
        };
        for (out, &v) in target.iter_mut().zip(&stored) {
            match i16::try_from(i64::from(v) + shift) {
                Ok(sample) => *out = sample,
                Err(_) => return Ok(false),
            }
        }
        Ok(true)
    };
    let mut samples = allocate_after_first_plane(files, slices)?;
    let fit = decode_planes(files, slices, samples.view_mut(), fill)?;
    Ok(fit.then_some(samples))
}

/// The `[z, y, x]` volume of zeros (`T::default()`) for `slices`, allocated only after the first plane has
/// decoded: a header that declares a huge Rows × Columns without the pixel data to match
/// fails here, before any allocation of that size (native Pixel Data lengths were
/// checked with the headers; this also covers encapsulated data).
fn allocate_after_first_plane<S: InstanceSource + ?Sized, T: Clone + Default>(
    files: &S,
    slices: &[Slice],
) -> Result<Array3<T>, DicomError> {
    let first = slices.first().ok_or_else(|| missing_file(0))?;
    let file = files.fetch(first.source)?;
    drop(decode_stored(
        first,
        &super::parse_file(&file.name, &file.bytes)?,
    )?);
    let (rows, cols) = (first.rows as usize, first.columns as usize);
    Ok(Array3::default((slices.len(), rows, cols)))
}

/// Planes decoded by one task before it hands over: few enough that both cores stay busy
/// to the end, enough that a task's file reads are not dominated by scheduling.
const PLANES_PER_TASK: usize = 8;

/// Decode `slices[k]` into `volume[k]` with `fill`, which returns `false` when a plane
/// cannot be represented (the whole decode then answers `false`).
///
/// Classic series (one file per plane) are decoded in parallel on rayon's pool, in runs
/// of [`PLANES_PER_TASK`] consecutive planes, each run reading one file at a time, so at
/// most one file per worker thread is in memory. Planes of a multi-frame instance are
/// decoded in order by one thread, which parses the instance once for all of them.
/// Errors are reported for the first failing plane in stack order, as a sequential
/// decode would.
fn decode_planes<S, T, F>(
    files: &S,
    slices: &[Slice],
    mut volume: ndarray::ArrayViewMut3<'_, T>,
    fill: F,
) -> Result<bool, DicomError>
where
    S: InstanceSource + ?Sized,
    T: Send,
    F: Fn(&Slice, &DefaultDicomObject, ArrayViewMut2<'_, T>) -> Result<bool, DicomError> + Sync,
{
    use rayon::prelude::*;
    let run = |first: usize, mut block: ndarray::ArrayViewMut3<'_, T>| {
        let mut cache = ObjectCache::default();
        for (i, plane) in block.outer_iter_mut().enumerate() {
            let slice = &slices[first + i];
            if !fill(slice, cache.object(files, slice)?, plane)? {
                return Ok(false);
            }
        }
        Ok(true)
    };
    let one_file_per_plane = slices.windows(2).all(|w| w[0].source != w[1].source);
    if !one_file_per_plane {
        return run(0, volume.view_mut());
    }
    let blocks: Vec<(usize, ndarray::ArrayViewMut3<'_, T>)> = volume
        .axis_chunks_iter_mut(ndarray::Axis(0), PLANES_PER_TASK)
        .enumerate()
        .map(|(b, block)| (b * PLANES_PER_TASK, block))
        .collect();
    let outcomes: Vec<Result<bool, DicomError>> = blocks
        .into_par_iter()
        .map(|(first, block)| run(first, block))
        .collect();
    for outcome in outcomes {
        if !outcome? {
            return Ok(false);
        }
    }
    Ok(true)
}
/// A decoded plane as a `rows × columns` view, or `PixelDataTooShort`.
fn plane_view<'a, T>(
    slice: &Slice,
    values: &'a [T],
) -> Result<ndarray::ArrayView2<'a, T>, DicomError> {
    let (rows, cols) = (slice.rows as usize, slice.columns as usize);
    ndarray::ArrayView2::from_shape((rows, cols), values).map_err(|_| {
        DicomError::PixelDataTooShort {
            file: slice.file.clone(),
            expected_bytes: rows * cols,
            found_bytes: values.len(),
        }
    })
}

/// A plane whose parsed instance is not at hand (an internal sequencing fault).
fn no_pixels(slice: &Slice) -> DicomError {
    DicomError::MissingTag {
        file: slice.file.clone(),
        tag: PIXEL_DATA.1,
    }
}

/// Native (uncompressed) Pixel Data must hold Rows × Columns samples of BitsAllocated for
/// every frame up to this one.
// LIMITATION: encapsulated (compressed) pixel data is only checked when decoded.
fn check_native_pixel_length(slice: &Slice, obj: &DefaultDicomObject) -> Result<(), DicomError> {
    let file = slice.file.as_str();
    let Ok(element) = obj.element(PIXEL_DATA.0) else {
        return Err(DicomError::MissingTag {
            file: file.to_owned(),
            tag: PIXEL_DATA.1,
        });
    };
    let Some(found_bytes) = element.header().len.get().map(|l| l as usize) else {
        return Ok(()); // undefined length: encapsulated fragments
    };
    let bits = req_u32(obj, file, BITS_ALLOCATED, "8, 16 or 32")? as usize;
    let expected_bytes = (slice.rows as usize)
        .saturating_mul(slice.columns as usize)
        .saturating_mul(bits.div_ceil(8))
        .saturating_mul(slice.frame as usize + 1);
    if found_bytes < expected_bytes {
        return Err(DicomError::PixelDataTooShort {
            file: file.to_owned(),
            expected_bytes,
            found_bytes,
        });
    }
    Ok(())
}

/// One slice's HU values, row-major, exactly Rows × Columns of them: the plane's own
/// rescale applied in `f64` and rounded once to `f32`, as dicom-pixeldata's Modality LUT
/// computes them.
fn decode_slice(slice: &Slice, obj: &DefaultDicomObject) -> Result<Vec<f32>, DicomError> {
    let rescale = Rescale::new(slice.rescale_slope, slice.rescale_intercept);
    Ok(decode_stored(slice, obj)?
        .into_iter()
        .map(|v| rescale.apply(f64::from(v)) as f32)
        .collect())
}

/// One slice's stored values, row-major, exactly Rows × Columns of them, as
/// dicom-pixeldata's Modality LUT reads them (BitsStored and PixelRepresentation applied)
/// before it rescales.
fn decode_stored(slice: &Slice, obj: &DefaultDicomObject) -> Result<Vec<i32>, DicomError> {
    let file = slice.file.as_str();
    let decode_error = || DicomError::PixelDecode {
        file: file.to_owned(),
        transfer_syntax: sanitize_uid(obj.meta().transfer_syntax()),
    };
    let decoded = obj
        .decode_pixel_data_frame(slice.frame)
        .map_err(|_| decode_error())?;
    if decoded.samples_per_pixel() != 1 {
        return Err(bad(file, SAMPLES_PER_PIXEL, "1 (greyscale CT)"));
    }
    if decoded.rows() != slice.rows || decoded.columns() != slice.columns {
        return Err(decode_error());
    }

    let expected_bytes = (slice.rows as usize)
        .saturating_mul(slice.columns as usize)
        .saturating_mul(usize::from(decoded.bits_allocated().div_ceil(8)));
    let found_bytes = decoded.data().len();
    if found_bytes < expected_bytes {
        return Err(DicomError::PixelDataTooShort {
            file: file.to_owned(),
            expected_bytes,
            found_bytes,
        });
    }

    // The identity rescale through the LUT: sign extension and BitsStored masking as in
    // an HU decode, without the rounding of a non-integral rescale to an integer type.
    let identity = Rescale::new(1.0, 0.0);
    let options = ConvertOptions::new().with_modality_lut(ModalityLutOption::Override(identity));
    let values: Vec<i32> = decoded
        .to_vec_frame_with_options(0, &options)
        .map_err(|_| decode_error())?;
    if values.len() != slice.rows as usize * slice.columns as usize {
        return Err(DicomError::PixelDataTooShort {
            file: file.to_owned(),
            expected_bytes,
            found_bytes,
        });
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files with immutable keys, counting how often each is read.
    struct Keyed {
        files: Vec<FileRef>,
        keys: Vec<String>,
        fetches: std::sync::atomic::AtomicUsize,
    }

    impl InstanceSource for Keyed {
        fn count(&self) -> usize {
            self.files.len()
        }

        fn fetch(&self, index: usize) -> Result<InputFile, DicomError> {
            self.fetches
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.files.as_slice().fetch(index)
        }

        fn immutable_key(&self, index: usize) -> Option<&str> {
            self.keys.get(index).map(String::as_str)
        }
    }

    /// Planning a series again reads none of the files whose headers are cached, in any
    /// file order, and gives the same plan and volume as reading them (the decode pass
    /// still reads every file).
    #[test]
    fn cached_headers_are_not_read_again_and_plan_alike() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = crate::demo::DemoOptions {
            shape_vox: [8, 32, 32],
            spacing_mm: [2.0, 0.8, 0.8],
            min_lesions: 1,
            max_lesions: 1,
        };
        let case = crate::demo::generate(tmp.path(), 5, &opts).unwrap();
        let files = super::super::file_refs_from_dir(&case.series_dir).unwrap();
        let prefix = uuid::Uuid::now_v7();
        let keyed = |order: &[usize]| Keyed {
            files: order.iter().map(|&i| files[i].clone()).collect(),
            keys: order
                .iter()
                .map(|&i| format!("test/{prefix}/{i}"))
                .collect(),
            fetches: Default::default(),
        };
        let reads = |k: &Keyed| k.fetches.load(std::sync::atomic::Ordering::Relaxed);
        let first = keyed(&[0, 1, 2, 3, 4, 5]);
        assert!(plan_series(&first, GeometryPolicy::Refuse).is_ok());
        assert_eq!(reads(&first), 6);

        let all = keyed(&[5, 7, 3, 1, 0, 6, 4, 2]);
        let plan = plan_series(&all, GeometryPolicy::Refuse).unwrap();
        assert_eq!(reads(&all), 2, "only the two new files are read");
        let cached = plan.decode(&all).unwrap();
        let direct = assemble_series_from(files.as_slice(), GeometryPolicy::Refuse).unwrap();
        assert_eq!(cached.volume.grid, direct.volume.grid);
        assert_eq!(cached.volume.hu.to_f32(), direct.volume.hu.to_f32());
        assert_eq!(cached.instance_count, 8);
    }

    #[test]
    fn uid_sanitizing_drops_free_text() {
        assert_eq!(sanitize_uid("1.2.3\0"), "1.2.3");
        assert_eq!(sanitize_uid("Doe^Jane"), "");
    }
}
