//! NIfTI-1 label maps mapped onto a series grid, and NIfTI image volumes.
//!
//! Inputs are `.nii` or `.nii.gz` bytes (gzip recognised by its magic number, RFC 1952
//! 2.3.1). The voxel-to-world affine comes from the sform when `sform_code > 0`, else from
//! the qform quaternion (NIfTI-1 header, methods 3 and 2). NIfTI world space is RAS, ours
//! is DICOM LPS (see [`crate::image`]), so the x and y rows of the affine change sign.
//!
//! A label map may store its axes in another order or direction than the series (e.g. a
//! flipped y axis); it is matched to the series through world coordinates: each label-map
//! axis must run along a series axis, and the reordered grid must then pass
//! [`Grid::check_same_as`]. Label value 0 is background; every other integer value becomes
//! one [`LesionMask`].

use std::collections::BTreeMap;

use ndarray::Array3;
use nifti::NiftiHeader;

use super::grid::dot;
use super::voxels::{GZIP_MAGIC, InflateError, StoredType, gunzip_bounded};
use super::{GEOMETRY_TOLERANCE_FRACTION, Grid, GridMismatch, LesionMask, Segmentation, Volume};

/// Largest decompressed NIfTI file accepted: 2 GiB (a 512×512×2000 float32 CT is 2 GB).
pub const MAX_NIFTI_BYTES: u64 = 2 << 30;

/// Most voxels in a NIfTI volume: 2^29, a 512×512×2048 CT, 2 GiB as `f32`. Without it a
/// 2 GiB `uint8` file would become an 8 GiB `f32` volume.
pub const MAX_VOLUME_VOXELS: usize = 1 << 29;

/// Bits in a byte, for NIfTI-1 `bitpix` (bits per voxel).
const BITS_PER_BYTE: usize = 8;

/// Size of a NIfTI-1 header; voxel data cannot start before it (NIfTI-1 `vox_offset`).
const NIFTI1_HEADER_BYTES: usize = 348;

/// Errors reading a NIfTI or NRRD file. All are client faults (HTTP 422).
///
/// No message quotes free text from the file: only field names, numbers and values from
/// a fixed list.
#[derive(Debug, thiserror::Error)]
pub enum LabelMapError {
    #[error("'{file}' is not a readable NIfTI-1 file: {reason}")]
    NotNifti { file: String, reason: &'static str },
    #[error("'{file}' is not a readable NRRD file: {reason}")]
    NotNrrd { file: String, reason: String },
    #[error("'{file}': {what} is not supported")]
    Unsupported { file: String, what: String },
    #[error("'{file}' is larger than {limit} bytes once decompressed")]
    TooLarge { file: String, limit: u64 },
    #[error(
        "'{file}': voxel data holds {found_bytes} bytes after the header, but 'sizes' and \
         'type' describe {expected_bytes}; {} bytes trail the voxels (wrong sizes, type or \
         encoding?)", .found_bytes - .expected_bytes
    )]
    TrailingData {
        file: String,
        expected_bytes: usize,
        found_bytes: usize,
    },
    #[error(
        "'{file}': NIfTI header fields dim, datatype and vox_offset place the end of the \
         voxels at byte {expected_bytes}, but the file holds {found_bytes} bytes \
         (decompressed); {} bytes trail the voxels (wrong dim or datatype?)",
        .found_bytes - .expected_bytes
    )]
    NiftiTrailingData {
        file: String,
        expected_bytes: u64,
        found_bytes: u64,
    },
    #[error(
        "'{file}': NIfTI header field bitpix is {bitpix}, but datatype {datatype} stores \
         {expected} bits per voxel; the two must agree"
    )]
    BitpixMismatch {
        file: String,
        bitpix: i16,
        datatype: i16,
        expected: usize,
    },
    #[error("'{file}': voxel data holds {found_bytes} bytes, {expected_bytes} needed")]
    Truncated {
        file: String,
        expected_bytes: usize,
        found_bytes: usize,
    },
    #[error("'{file}': {voxels} voxels exceed the limit of {limit}")]
    TooManyVoxels {
        file: String,
        voxels: usize,
        limit: usize,
    },
    #[error("'{file}': NIfTI datatype code {datatype} is not supported")]
    UnsupportedDataType { file: String, datatype: i16 },
    #[error("'{file}': expected a 3-D volume, found dimensions {dims:?}")]
    NotThreeD { file: String, dims: Vec<usize> },
    #[error(
        "'{file}': NRRD header field 'dimension' is {dimension} but its 'sizes' field lists \
         {} value(s) {sizes:?}; the two must agree", .sizes.len()
    )]
    DimensionMismatch {
        file: String,
        dimension: usize,
        sizes: Vec<usize>,
    },
    #[error(
        "'{file}': NIfTI header field dim[{index}] is {value}, expected a positive size \
         (voxels along axis {index})"
    )]
    BadDim {
        file: String,
        index: usize,
        value: i16,
    },
    #[error(
        "'{file}': NIfTI header field vox_offset is {vox_offset}, beyond the end of the file \
         ({file_bytes} bytes, decompressed); the voxel data would start after the file ends"
    )]
    VoxOffsetBeyondFile {
        file: String,
        vox_offset: f32,
        file_bytes: usize,
    },
    #[error(
        "label map '{file}' holds no nonzero label: every voxel is 0 (background), so it \
         outlines no lesion"
    )]
    NoLabels { file: String },
    #[error("'{file}': neither sform nor qform is set, so the voxels have no position")]
    NoOrientation { file: String },
    #[error("'{file}': the affine is degenerate (zero or non-finite voxel size)")]
    BadAffine { file: String },
    #[error("label map '{file}' does not match the series grid: {mismatch}")]
    GridMismatch {
        file: String,
        mismatch: GridMismatch,
    },
    #[error("'{file}': label value {value} is not a non-negative integer below 2^32")]
    BadLabel { file: String, value: f64 },
}

/// Read a NIfTI label map and map it onto `series` (the grid of the assembled CT).
///
/// # Errors
/// [`LabelMapError::GridMismatch`] names the first difference (dimensions, spacing,
/// orientation or origin offset); other variants describe an unreadable file.
pub fn read_nifti_labelmap(
    bytes: &[u8],
    file_name: &str,
    series: &Grid,
) -> Result<Segmentation, LabelMapError> {
    let nifti = NiftiData::parse(bytes, file_name)?;
    let own = nifti.grid()?;
    map_labels(&own, nifti.labelled()?, file_name, series)
}

/// Read a NIfTI image as a [`Volume`] (intensities scaled by `scl_slope`/`scl_inter` when
/// `scl_slope` is set), on its own grid in `[k, j, i]` = `[z, y, x]` array order.
///
/// # Errors
/// A [`LabelMapError`] describing why the file cannot be read.
pub fn read_nifti_volume(bytes: &[u8], file_name: &str) -> Result<Volume, LabelMapError> {
    let nifti = NiftiData::parse(bytes, file_name)?;
    let grid = nifti.grid()?;
    let voxels = grid.voxel_count();
    if voxels > MAX_VOLUME_VOXELS {
        return Err(LabelMapError::TooManyVoxels {
            file: file_name.into(),
            voxels,
            limit: MAX_VOLUME_VOXELS,
        });
    }
    // The flat NIfTI order (i fastest) is exactly the C order of a [k, j, i] array.
    let hu: Vec<f32> = nifti.values()?.map(|v| v as f32).collect();
    let hu = Array3::from_shape_vec(grid.shape_vox, hu).map_err(|_| LabelMapError::Truncated {
        file: file_name.into(),
        expected_bytes: voxels,
        found_bytes: bytes.len(),
    })?;
    Ok(Volume {
        grid,
        hu: hu.into(),
    })
}

/// Map a label map stored on grid `own` onto `series` (see the module docs): `labelled`
/// holds its non-zero voxels as (index in file order, value); the fastest axis of the file
/// order is `own`'s x, i.e. `[z, y, x]` C order.
/// Label value 0 is background; every other value must be a non-negative integer, and at
/// least one voxel must carry one (an all-background map is refused, as an RT Structure
/// Set without a closed contour is).
///
/// # Errors
/// [`LabelMapError::GridMismatch`] naming the first difference from the series grid,
/// [`LabelMapError::BadLabel`], or [`LabelMapError::NoLabels`].
pub(crate) fn map_labels(
    own: &Grid,
    labelled: impl Iterator<Item = (usize, f64)>,
    file_name: &str,
    series: &Grid,
) -> Result<Segmentation, LabelMapError> {
    let mapping = axis_mapping(own, series).map_err(|mismatch| LabelMapError::GridMismatch {
        file: file_name.into(),
        mismatch,
    })?;
    let reordered = mapping.reordered_grid(own);
    series
        .check_same_as(&reordered)
        .map_err(|mismatch| LabelMapError::GridMismatch {
            file: file_name.into(),
            mismatch,
        })?;

    let [nz, ny, nx] = own.shape_vox;
    let mut by_label: BTreeMap<u32, Vec<[usize; 3]>> = BTreeMap::new();
    for (n, v) in labelled {
        if v.fract() != 0.0 || v < 0.0 || v > f64::from(u32::MAX) {
            return Err(LabelMapError::BadLabel {
                file: file_name.into(),
                value: v,
            });
        }
        // File order is x fastest (NIfTI i, NRRD axis 0): C order of a [z, y, x] array.
        let own_index = [n / (nx * ny), (n / nx) % ny, n % nx];
        by_label
            .entry(v as u32)
            .or_default()
            .push(mapping.map_index(own_index, [nz, ny, nx]));
    }

    if by_label.is_empty() {
        return Err(LabelMapError::NoLabels {
            file: file_name.into(),
        });
    }
    let lesions = by_label
        .into_iter()
        .map(|(label, voxels)| lesion_from_voxels(label, None, &voxels));
    Ok(Segmentation {
        grid: series.clone(),
        lesions: lesions.flatten().collect(),
        warnings: Vec::new(),
    })
}

/// Build a lesion cropped to the bounding box of `voxels` (indices `[z, y, x]` on the
/// series grid). Returns `None` for an empty list.
pub(crate) fn lesion_from_voxels(
    label: u32,
    name: Option<String>,
    voxels: &[[usize; 3]],
) -> Option<LesionMask> {
    let first = voxels.first()?;
    let (mut lo, mut hi) = (*first, *first);
    for v in voxels {
        for a in 0..3 {
            lo[a] = lo[a].min(v[a]);
            hi[a] = hi[a].max(v[a]);
        }
    }
    let mut mask = Array3::from_elem(
        (hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1),
        false,
    );
    for v in voxels {
        mask[[v[0] - lo[0], v[1] - lo[1], v[2] - lo[2]]] = true;
    }
    Some(LesionMask {
        label,
        name,
        offset_zyx: lo,
        mask,
    })
}

/// How label-map axes map onto series axes: `source[b]` is the label-map axis that runs
/// along series axis `b`, `flipped[b]` whether it runs against it.
struct AxisMapping {
    source: [usize; 3],
    flipped: [bool; 3],
}

/// Pair every series axis with the label-map axis parallel to it (within the tolerance,
/// read as a fraction of a unit vector), or report the series axis that has none.
fn axis_mapping(own: &Grid, series: &Grid) -> Result<AxisMapping, GridMismatch> {
    let mut source = [0; 3];
    let mut flipped = [false; 3];
    let mut used = [false; 3];
    for b in 0..3 {
        let best = (0..3)
            .filter(|&a| !used[a])
            .max_by(|&a, &c| {
                dot(own.direction[a], series.direction[b])
                    .abs()
                    .total_cmp(&dot(own.direction[c], series.direction[b]).abs())
            })
            .unwrap_or(b);
        let cosine = dot(own.direction[best], series.direction[b]);
        let sign = cosine.signum();
        let aligned = own.direction[best].map(|c| c * sign);
        let deviation = (0..3)
            .map(|c| (aligned[c] - series.direction[b][c]).abs())
            .fold(0.0, f64::max);
        if deviation > GEOMETRY_TOLERANCE_FRACTION {
            return Err(GridMismatch::Direction {
                axis: super::grid::AXIS_NAMES[b],
                expected: series.direction[b],
                found: aligned,
            });
        }
        used[best] = true;
        source[b] = best;
        flipped[b] = sign < 0.0;
    }
    Ok(AxisMapping { source, flipped })
}

impl AxisMapping {
    /// The label-map grid re-expressed in series axis order and direction.
    fn reordered_grid(&self, own: &Grid) -> Grid {
        let mut first_voxel = [0.0; 3];
        let mut grid = own.clone();
        for b in 0..3 {
            let a = self.source[b];
            let sign = if self.flipped[b] { -1.0 } else { 1.0 };
            grid.shape_vox[b] = own.shape_vox[a];
            grid.spacing_mm[b] = own.spacing_mm[a];
            grid.direction[b] = own.direction[a].map(|c| c * sign);
            if self.flipped[b] {
                first_voxel[a] = own.shape_vox[a].saturating_sub(1) as f64;
            }
        }
        grid.origin_mm = own.index_to_world(first_voxel);
        grid
    }

    /// Series index `[z, y, x]` of the label-map voxel at `own_index`.
    fn map_index(&self, own_index: [usize; 3], own_shape: [usize; 3]) -> [usize; 3] {
        [0, 1, 2].map(|b| {
            let a = self.source[b];
            if self.flipped[b] {
                own_shape[a] - 1 - own_index[a]
            } else {
                own_index[a]
            }
        })
    }
}

/// Where a NIfTI-1 header (`head`, its first bytes) says the voxels end: `vox_offset` plus
/// the voxel count times the datatype's size, bytes. `None` when the header does not parse
/// or holds no such size; the checks after inflation then name the fault.
fn declared_end_bytes(head: &[u8]) -> Option<u64> {
    let h = NiftiHeader::from_reader(head).ok()?;
    let size = nifti_datatype(h.datatype)?.size() as u64;
    let dims = h.dim.map(|d| d as i16);
    let rank = usize::try_from(dims[0])
        .ok()
        .filter(|r| (1..=7).contains(r))?;
    // Sizes beyond the third may be 0 (read as 1, as the volume check does).
    let count = dims[1..=rank]
        .iter()
        .enumerate()
        .try_fold(1u64, |acc, (i, &d)| {
            let d = u64::try_from(d).ok()?;
            acc.checked_mul(if i >= 3 { d.max(1) } else { d })
        })?;
    if !(h.vox_offset.is_finite() && h.vox_offset >= 0.0) {
        return None;
    }
    count.checked_mul(size)?.checked_add(h.vox_offset as u64)
}

/// A decompressed NIfTI-1 file with its parsed header.
struct NiftiData<'a> {
    file: &'a str,
    header: NiftiHeader,
    bytes: std::borrow::Cow<'a, [u8]>,
    /// The whole decompressed size, bytes; `bytes` may stop at the declared voxels.
    total_bytes: u64,
    shape_xyz: [usize; 3],
}

impl<'a> NiftiData<'a> {
    fn parse(raw: &'a [u8], file: &'a str) -> Result<Self, LabelMapError> {
        let (bytes, total_bytes) = if raw.starts_with(&GZIP_MAGIC) {
            // Only the header and the voxels it declares are kept in memory; bytes past
            // them are inflated and counted, never held, then refused as trailing data.
            // LIMITATION: a header declaring a large volume still holds up to MAX_NIFTI_BYTES per upload.
            let head = NIFTI1_HEADER_BYTES as u64;
            let keep = |h: &[u8]| declared_end_bytes(h).unwrap_or(MAX_NIFTI_BYTES);
            let inflated =
                gunzip_bounded(raw, head, keep, MAX_NIFTI_BYTES).map_err(|e| match e {
                    InflateError::Damaged => LabelMapError::NotNifti {
                        file: file.into(),
                        reason: "gzip stream is damaged",
                    },
                    InflateError::TooLarge => LabelMapError::TooLarge {
                        file: file.into(),
                        limit: MAX_NIFTI_BYTES,
                    },
                })?;
            (std::borrow::Cow::Owned(inflated.0), inflated.1)
        } else {
            (std::borrow::Cow::Borrowed(raw), raw.len() as u64)
        };
        let header = NiftiHeader::from_reader(&bytes[..]).map_err(|_| LabelMapError::NotNifti {
            file: file.into(),
            reason: "header invalid",
        })?;

        // The nifti crate reads dim[] as u16; the NIfTI-1 field is a signed short, so a
        // negative size would otherwise read as e.g. 65531.
        let dims = header.dim.map(|d| d as i16);
        let rank = usize::try_from(dims[0]).unwrap_or(0);
        let not_three_d = || {
            let shown = dims.get(1..=rank.min(7)).unwrap_or(&[]);
            let shown = shown
                .iter()
                .map(|&d| usize::try_from(d).unwrap_or(0))
                .collect();
            LabelMapError::NotThreeD {
                file: file.into(),
                dims: shown,
            }
        };
        if !(3..=7).contains(&rank) {
            return Err(not_three_d());
        }
        // dim[1..=3] are sizes (at least 1); further dims within the rank may be 0 or 1.
        for (index, &value) in dims.iter().enumerate().take(rank + 1).skip(1) {
            if value < 0 || (index <= 3 && value == 0) {
                return Err(LabelMapError::BadDim {
                    file: file.into(),
                    index,
                    value,
                });
            }
        }
        if (4..=rank).any(|d| dims[d] > 1) {
            return Err(not_three_d());
        }
        let shape_xyz = [1, 2, 3].map(|i| usize::try_from(dims[i]).unwrap_or(0));
        Ok(Self {
            file,
            header,
            bytes,
            total_bytes,
            shape_xyz,
        })
    }

    /// The grid in `[k, j, i]` array order, directions converted RAS → LPS.
    fn grid(&self) -> Result<Grid, LabelMapError> {
        let h = &self.header;
        let affine = if h.sform_code > 0 {
            [h.srow_x, h.srow_y, h.srow_z].map(|r| r.map(f64::from))
        } else if h.qform_code > 0 {
            qform_affine(h)
        } else {
            return Err(LabelMapError::NoOrientation {
                file: self.file.into(),
            });
        };
        // RAS → LPS: negate the x and y rows (linear part and translation).
        let lps = [affine[0].map(|v| -v), affine[1].map(|v| -v), affine[2]];

        let column = |c: usize| [lps[0][c], lps[1][c], lps[2][c]];
        let mut spacing = [0.0; 3];
        let mut direction = [[0.0; 3]; 3];
        for (axis, c) in [(0, 2), (1, 1), (2, 0)] {
            let v = column(c);
            let len = dot(v, v).sqrt();
            if !(len.is_finite() && len > 0.0) {
                return Err(LabelMapError::BadAffine {
                    file: self.file.into(),
                });
            }
            spacing[axis] = len;
            direction[axis] = v.map(|x| x / len);
        }
        let origin = column(3);
        if origin.iter().any(|v| !v.is_finite()) {
            return Err(LabelMapError::BadAffine {
                file: self.file.into(),
            });
        }
        let [nx, ny, nz] = self.shape_xyz;
        Ok(Grid {
            shape_vox: [nz, ny, nx],
            spacing_mm: spacing,
            origin_mm: origin,
            direction,
        })
    }

    /// The non-zero voxels as (index in file order, value), for [`map_labels`]. A `uint8`
    /// map without scaling (the usual label map) is scanned as bytes; every other type goes
    /// through [`Self::values`].
    fn labelled(&self) -> Result<Box<dyn Iterator<Item = (usize, f64)> + '_>, LabelMapError> {
        let stored = self.stored()?;
        if stored.datatype == StoredType::U8 && stored.scale.is_none() {
            return Ok(Box::new(
                stored
                    .data
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b != 0)
                    .map(|(n, &b)| (n, f64::from(b))),
            ));
        }
        Ok(Box::new(
            self.values()?.enumerate().filter(|(_, v)| *v != 0.0),
        ))
    }

    /// All voxel values as `f64` in file order (i fastest), scaled when `scl_slope` is set.
    ///
    /// An iterator, not a `Vec<f64>`: widening every stored byte to 8 bytes up front would
    /// turn a 2 GiB `uint8` file into a 16 GiB allocation.
    fn values(&self) -> Result<impl Iterator<Item = f64> + '_, LabelMapError> {
        let StoredVoxels {
            datatype,
            data,
            little_endian,
            scale,
        } = self.stored()?;
        Ok(datatype
            .decode_all(data, little_endian)
            .map(move |v| match scale {
                Some((m, q)) => v * m + q,
                None => v,
            }))
    }

    /// The voxel bytes after checking the data type, `vox_offset` and the file length.
    fn stored(&self) -> Result<StoredVoxels<'_>, LabelMapError> {
        let h = &self.header;
        let datatype =
            nifti_datatype(h.datatype).ok_or_else(|| LabelMapError::UnsupportedDataType {
                file: self.file.into(),
                datatype: h.datatype,
            })?;
        let size = datatype.size();
        // nifti1.h: bitpix is the number of bits per voxel of `datatype`. A header whose two
        // fields disagree was written by a broken tool; which one is right cannot be told.
        if usize::try_from(h.bitpix).ok() != Some(size * BITS_PER_BYTE) {
            return Err(LabelMapError::BitpixMismatch {
                file: self.file.into(),
                bitpix: h.bitpix,
                datatype: h.datatype,
                expected: size * BITS_PER_BYTE,
            });
        }

        let count = self.shape_xyz.iter().product::<usize>();
        let offset = if h.vox_offset.is_finite() && h.vox_offset >= NIFTI1_HEADER_BYTES as f32 {
            h.vox_offset as usize
        } else {
            return Err(LabelMapError::NotNifti {
                file: self.file.into(),
                reason: "vox_offset invalid",
            });
        };
        if f64::from(h.vox_offset) > self.bytes.len() as f64 {
            return Err(LabelMapError::VoxOffsetBeyondFile {
                file: self.file.into(),
                vox_offset: h.vox_offset,
                file_bytes: self.bytes.len(),
            });
        }
        let expected_bytes = count.saturating_mul(size).saturating_add(offset);
        let data = self
            .bytes
            .get(offset..expected_bytes)
            .ok_or(LabelMapError::Truncated {
                file: self.file.into(),
                expected_bytes,
                found_bytes: self.bytes.len(),
            })?;
        // Bytes past the declared voxels mean the header does not describe the payload
        // (as for NRRD): reading the first `count` values would give a wrong label map.
        if self.total_bytes > expected_bytes as u64 {
            return Err(LabelMapError::NiftiTrailingData {
                file: self.file.into(),
                expected_bytes: expected_bytes as u64,
                found_bytes: self.total_bytes,
            });
        }

        // Slope 1 and intercept 0 (the nifti writers' default) change nothing.
        let identity = h.scl_slope == 1.0 && h.scl_inter == 0.0;
        let scale = (h.scl_slope != 0.0 && h.scl_slope.is_finite() && !identity)
            .then(|| (f64::from(h.scl_slope), f64::from(h.scl_inter)));
        Ok(StoredVoxels {
            datatype,
            data,
            little_endian: h.endianness == nifti::Endianness::Little,
            scale,
        })
    }
}

/// The checked voxel bytes of a NIfTI file and how to read them.
struct StoredVoxels<'a> {
    datatype: StoredType,
    data: &'a [u8],
    little_endian: bool,
    /// `(scl_slope, scl_inter)` when they change the values.
    scale: Option<(f64, f64)>,
}

/// The stored type of a NIfTI-1 `datatype` code (nifti1.h `DT_*`); complex and RGB are
/// refused.
fn nifti_datatype(code: i16) -> Option<StoredType> {
    Some(match code {
        2 => StoredType::U8,
        256 => StoredType::I8,
        4 => StoredType::I16,
        512 => StoredType::U16,
        8 => StoredType::I32,
        768 => StoredType::U32,
        16 => StoredType::F32,
        1024 => StoredType::I64,
        1280 => StoredType::U64,
        64 => StoredType::F64,
        _ => return None,
    })
}

/// Affine from the qform quaternion (NIfTI-1 header, method 2): R·diag(dx, dy, qfac·dz).
fn qform_affine(h: &NiftiHeader) -> [[f64; 4]; 3] {
    let (b, c, d) = (
        f64::from(h.quatern_b),
        f64::from(h.quatern_c),
        f64::from(h.quatern_d),
    );
    let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
    let r = [
        [
            a * a + b * b - c * c - d * d,
            2.0 * (b * c - a * d),
            2.0 * (b * d + a * c),
        ],
        [
            2.0 * (b * c + a * d),
            a * a + c * c - b * b - d * d,
            2.0 * (c * d - a * b),
        ],
        [
            2.0 * (b * d - a * c),
            2.0 * (c * d + a * b),
            a * a + d * d - c * c - b * b,
        ],
    ];
    let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
    let zoom = [
        f64::from(h.pixdim[1]),
        f64::from(h.pixdim[2]),
        qfac * f64::from(h.pixdim[3]),
    ];
    let offset = [h.quatern_x, h.quatern_y, h.quatern_z].map(f64::from);
    [0, 1, 2].map(|i| {
        [
            r[i][0] * zoom[0],
            r[i][1] * zoom[1],
            r[i][2] * zoom[2],
            offset[i],
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flipped_y_axis_maps_through_world_coordinates() {
        // Series: 1×2×2, identity LPS axes. Label map: y stored in the opposite direction.
        let series = Grid {
            shape_vox: [1, 2, 2],
            spacing_mm: [1.0, 1.0, 1.0],
            origin_mm: [0.0, 0.0, 0.0],
            direction: [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]],
        };
        // LPS y axis reversed and starting at y = 1: in RAS that is +y, origin -1.
        let own = Grid {
            origin_mm: [0.0, 1.0, 0.0],
            direction: [[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]],
            ..series.clone()
        };
        let m = axis_mapping(&own, &series).unwrap();
        assert_eq!(m.flipped, [false, true, false]);
        assert_eq!(series.check_same_as(&m.reordered_grid(&own)), Ok(()));
        assert_eq!(m.map_index([0, 0, 1], [1, 2, 2]), [0, 1, 1]);
    }

    #[test]
    fn lesion_is_cropped_to_its_bbox() {
        let l = lesion_from_voxels(3, None, &[[2, 5, 7], [3, 5, 9]]).unwrap();
        assert_eq!(l.offset_zyx, [2, 5, 7]);
        assert_eq!(l.mask.dim(), (2, 1, 3));
        assert_eq!(l.voxel_count(), 2);
        assert!(lesion_from_voxels(1, None, &[]).is_none());
    }

    #[test]
    fn qform_identity_quaternion_gives_zooms() {
        let h = NiftiHeader {
            pixdim: [-1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0],
            quatern_x: 5.0,
            ..Default::default()
        };
        let a = qform_affine(&h);
        assert_eq!(a[0], [2.0, 0.0, 0.0, 5.0]);
        assert_eq!(a[2], [0.0, 0.0, -4.0, 0.0]);
    }

    /// A little-endian NIfTI-1 `uint8` header with an identity sform and no voxel data.
    fn header_only(dims_xyz: [i16; 3]) -> Vec<u8> {
        let mut h = vec![0u8; 352];
        let mut put = |at: usize, b: &[u8]| h[at..at + b.len()].copy_from_slice(b);
        put(0, &348i32.to_le_bytes());
        for (k, d) in [3, dims_xyz[0], dims_xyz[1], dims_xyz[2], 1, 1, 1, 1]
            .iter()
            .enumerate()
        {
            put(40 + 2 * k, &d.to_le_bytes());
        }
        put(70, &2i16.to_le_bytes()); // datatype DT_UINT8
        put(72, &8i16.to_le_bytes()); // bitpix
        for k in 0..4 {
            put(76 + 4 * k, &1f32.to_le_bytes()); // pixdim
        }
        put(108, &352f32.to_le_bytes()); // vox_offset
        put(254, &1i16.to_le_bytes()); // sform_code
        for (row, at) in [280, 296, 312].iter().enumerate() {
            put(at + 4 * row, &1f32.to_le_bytes());
        }
        put(344, b"n+1\0");
        h
    }

    /// Fuzzing regression: the volume size is bounded before anything is allocated, and
    /// a header without its voxels is a truncation error.
    #[test]
    fn oversized_and_truncated_volumes_are_errors() {
        let err = read_nifti_volume(&header_only([i16::MAX, i16::MAX, 2]), "big.nii");
        assert!(matches!(err, Err(LabelMapError::TooManyVoxels { .. })));
        let err = read_nifti_volume(&header_only([4, 4, 4]), "short.nii");
        assert!(matches!(err, Err(LabelMapError::Truncated { .. })));
        let mut whole = header_only([2, 1, 1]);
        whole.extend([7, 9]);
        let volume = read_nifti_volume(&whole, "ok.nii").unwrap();
        assert_eq!(volume.hu.to_f32().as_slice(), Some(&[7.0f32, 9.0][..]));
    }

    /// A gzipped NIfTI keeps only its header and voxels in memory: megabytes of zeros
    /// after them (a decompression bomb) are counted, not held, and change nothing; the
    /// header's size is what bounds the inflation.
    #[test]
    fn gzip_inflation_stops_at_the_declared_voxels() {
        use std::io::Write;
        let mut whole = header_only([2, 1, 1]);
        whole.extend([7, 9]);
        assert_eq!(declared_end_bytes(&whole[..348]), Some(354));
        let mut bomb = whole.clone();
        bomb.resize(64 << 20, 0);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bomb).unwrap();
        let gz = gz.finish().unwrap();
        let data = NiftiData::parse(&gz, "bomb.nii.gz").unwrap();
        assert_eq!(data.bytes.len(), 354);
        assert_eq!(data.total_bytes, 64 << 20);
        // The bytes past the voxels are then refused, as uncompressed.
        match read_nifti_volume(&gz, "bomb.nii.gz") {
            Err(LabelMapError::NiftiTrailingData {
                expected_bytes: 354,
                found_bytes,
                ..
            }) => assert_eq!(found_bytes, 64 << 20),
            other => panic!("expected trailing data, got {other:?}"),
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&whole).unwrap();
        let volume = read_nifti_volume(&gz.finish().unwrap(), "ok.nii.gz").unwrap();
        assert_eq!(volume.hu.to_f32().as_slice(), Some(&[7.0f32, 9.0][..]));
        // A fourth size of 0 counts as 1, so the voxels are not cut short.
        let mut four = whole.clone();
        four[40..42].copy_from_slice(&4i16.to_le_bytes());
        four[48..50].copy_from_slice(&0i16.to_le_bytes());
        assert_eq!(declared_end_bytes(&four[..348]), Some(354));
    }

    /// Two header faults a broken writer leaves: bytes after the declared voxels (the
    /// header describes less than the file holds) and a bitpix that contradicts the
    /// datatype. Each is refused by name instead of read as some label map.
    #[test]
    fn trailing_bytes_and_bitpix_contradicting_datatype_are_refused() {
        let mut whole = header_only([2, 1, 1]);
        whole.extend([7, 9]);
        let mut trailing = whole.clone();
        trailing.extend([0, 0, 0]);
        let err = read_nifti_volume(&trailing, "tail.nii").unwrap_err();
        assert!(
            matches!(
                err,
                LabelMapError::NiftiTrailingData {
                    expected_bytes: 354,
                    found_bytes: 357,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("3 bytes trail the voxels"),
            "{err}"
        );
        let mut bitpix = whole.clone();
        bitpix[72..74].copy_from_slice(&16i16.to_le_bytes());
        let err = read_nifti_volume(&bitpix, "bitpix.nii").unwrap_err();
        assert!(
            err.to_string()
                .contains("bitpix is 16, but datatype 2 stores 8 bits per voxel"),
            "{err}"
        );
    }

    #[test]
    fn truncated_and_garbage_inputs_are_errors() {
        assert!(matches!(
            read_nifti_volume(b"garbage", "x.nii"),
            Err(LabelMapError::NotNifti { .. })
        ));
        assert!(matches!(
            read_nifti_volume(&[0x1f, 0x8b, 0, 0], "x.nii.gz"),
            Err(LabelMapError::NotNifti { .. })
        ));
    }
}
