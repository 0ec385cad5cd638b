//! Stored voxel types and gzip inflation shared by the label-map and image readers
//! ([`super::labelmap`] for NIfTI-1, [`super::nrrd`] for NRRD).
//!
//! Values are decoded one at a time to `f64` (every stored integer type up to 32 bits and
//! both float types are exact in `f64`; 64-bit integers beyond 2^53 round), so a reader
//! never widens a whole file up front.

use std::io::Read;

/// gzip magic bytes (RFC 1952 2.3.1).
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A scalar voxel type as stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredType {
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    F32,
    I64,
    U64,
    F64,
}

impl StoredType {
    /// Bytes per stored value.
    pub fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::I64 | Self::U64 | Self::F64 => 8,
        }
    }

    /// The value stored little-endian in the first `size()` bytes of `b`.
    pub fn decode_le(self, b: [u8; 8]) -> f64 {
        let [b0, b1, b2, b3, ..] = b;
        match self {
            Self::U8 => f64::from(b0),
            Self::I8 => f64::from(i8::from_le_bytes([b0])),
            Self::I16 => f64::from(i16::from_le_bytes([b0, b1])),
            Self::U16 => f64::from(u16::from_le_bytes([b0, b1])),
            Self::I32 => f64::from(i32::from_le_bytes([b0, b1, b2, b3])),
            Self::U32 => f64::from(u32::from_le_bytes([b0, b1, b2, b3])),
            Self::F32 => f64::from(f32::from_le_bytes([b0, b1, b2, b3])),
            Self::I64 => i64::from_le_bytes(b) as f64,
            Self::U64 => u64::from_le_bytes(b) as f64,
            Self::F64 => f64::from_le_bytes(b),
        }
    }

    /// Every value of `data` (whole values only) in storage order.
    pub fn decode_all(self, data: &[u8], little_endian: bool) -> impl Iterator<Item = f64> + '_ {
        let size = self.size();
        data.chunks_exact(size).map(move |chunk| {
            // Bring the value to little-endian order, then decode it.
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(chunk);
            if !little_endian {
                b[..size].reverse();
            }
            self.decode_le(b)
        })
    }
}

/// Why [`gunzip_limited`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// The stream is not valid gzip or ends early.
    Damaged,
    /// More than the limit would come out.
    TooLarge,
}

/// Inflate a gzip stream (all its members) into memory, refusing more than `limit` bytes
/// before they are allocated.
pub fn gunzip_limited(compressed: &[u8], limit: u64) -> Result<Vec<u8>, InflateError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(compressed)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|_| InflateError::Damaged)?;
    if out.len() as u64 > limit {
        return Err(InflateError::TooLarge);
    }
    Ok(out)
}

/// Inflate a gzip stream (all its members) keeping at most `keep` bytes in memory: the
/// first `head` bytes are read, `keep(head bytes)` says how much of the stream the caller
/// needs (a header gives where its voxels end), and the rest is inflated into nothing, only
/// counted, so the whole stream is still checked (length, CRC) without being held. A few
/// kilobytes of zeros therefore cost time, not memory. Returns the kept bytes and the
/// stream's whole inflated size.
///
/// # Errors
/// [`InflateError::Damaged`] for a stream that is not valid gzip or ends early;
/// [`InflateError::TooLarge`] when more than `limit` bytes in all would come out.
pub fn gunzip_bounded(
    compressed: &[u8],
    head: u64,
    keep: impl FnOnce(&[u8]) -> u64,
    limit: u64,
) -> Result<(Vec<u8>, u64), InflateError> {
    inflate_bounded(
        flate2::read::MultiGzDecoder::new(compressed),
        head,
        keep,
        limit,
    )
}

/// [`gunzip_bounded`] for a bzip2 stream (all its members; NRRD `encoding: bzip2`).
///
/// # Errors
/// As [`gunzip_bounded`], for bzip2.
pub fn bunzip2_bounded(
    compressed: &[u8],
    head: u64,
    keep: impl FnOnce(&[u8]) -> u64,
    limit: u64,
) -> Result<(Vec<u8>, u64), InflateError> {
    inflate_bounded(
        bzip2::read::MultiBzDecoder::new(compressed),
        head,
        keep,
        limit,
    )
}

/// The bounded inflation of [`gunzip_bounded`] over any decoder.
fn inflate_bounded(
    mut decoder: impl Read,
    head: u64,
    keep: impl FnOnce(&[u8]) -> u64,
    limit: u64,
) -> Result<(Vec<u8>, u64), InflateError> {
    let mut kept = Vec::new();
    (&mut decoder)
        .take(head.min(limit))
        .read_to_end(&mut kept)
        .map_err(|_| InflateError::Damaged)?;
    let keep = keep(&kept).min(limit);
    let more = keep.saturating_sub(kept.len() as u64);
    (&mut decoder)
        .take(more)
        .read_to_end(&mut kept)
        .map_err(|_| InflateError::Damaged)?;
    let rest_limit = limit.saturating_sub(kept.len() as u64);
    let rest = std::io::copy(&mut decoder.take(rest_limit + 1), &mut std::io::sink())
        .map_err(|_| InflateError::Damaged)?;
    if rest > rest_limit {
        return Err(InflateError::TooLarge);
    }
    let total = kept.len() as u64 + rest;
    Ok((kept, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_byte_orders() {
        let le: Vec<f64> = StoredType::I16
            .decode_all(&[0xfe, 0xff, 2, 0], true)
            .collect();
        assert_eq!(le, [-2.0, 2.0]);
        let be: Vec<f64> = StoredType::U16.decode_all(&[1, 2, 0, 7], false).collect();
        assert_eq!(be, [258.0, 7.0]);
        let f: Vec<f64> = StoredType::F32
            .decode_all(&1.5f32.to_be_bytes(), false)
            .collect();
        assert_eq!(f, [1.5]);
    }

    #[test]
    fn inflation_is_bounded() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[0u8; 1000]).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(gunzip_limited(&gz, 1000).map(|v| v.len()), Ok(1000));
        assert_eq!(gunzip_limited(&gz, 999), Err(InflateError::TooLarge));
        assert_eq!(gunzip_limited(&gz[..10], 1000), Err(InflateError::Damaged));
    }

    #[test]
    fn bounded_inflation_keeps_only_what_is_asked_and_checks_the_rest() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut data = vec![7u8, 3, 0, 0];
        data.resize(100_000, 0);
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        // The head says "keep 6 bytes": 6 kept, the whole 100 000 counted.
        let (kept, total) = gunzip_bounded(&gz, 2, |h| u64::from(h[0]) - 1, 1 << 20).unwrap();
        assert_eq!((kept.as_slice(), total), (&data[..6], 100_000));
        assert_eq!(
            gunzip_bounded(&gz, 2, |_| 6, 99_999),
            Err(InflateError::TooLarge)
        );
        // A stream cut off after the kept bytes is still found damaged.
        let cut = &gz[..gz.len() - 8];
        assert_eq!(
            gunzip_bounded(cut, 2, |_| 6, 1 << 20),
            Err(InflateError::Damaged)
        );
    }
}
