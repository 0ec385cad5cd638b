//! Turning an upload into instance files: a zip archive unpacked in memory
//! ([`files_from_zip`]) or, for uploads, from a spooled file into numbered files of a
//! temporary directory ([`unzip_to_dir`]); or a directory (CLI only).
//!
//! Entry names (including `../` traversal names) are only labels for messages: nothing is
//! ever written under an entry's name. Limits are enforced on the bytes actually
//! inflated, not on the sizes the archive declares, so a zip bomb stops at the limit.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use bytes::Bytes;

use super::{DicomError, InputFile};

/// Default maximum number of entries in an uploaded archive (a CT series rarely exceeds
/// 2,000 slices).
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

/// Default maximum total inflated size of an archive: 4 GiB.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 4 << 30;

/// Limits applied while unpacking an archive.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveLimits {
    /// Maximum number of entries (files and directories) in the archive.
    pub max_entries: usize,
    /// Maximum total inflated bytes over all kept entries.
    pub max_total_bytes: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
        }
    }
}

/// APPNOTE.TXT 4.3.16: the end-of-central-directory record's signature, its minimum size,
/// and the offset of "total number of entries in the central directory" within it.
const EOCD_SIGNATURE: [u8; 4] = [0x50, 0x4b, 0x05, 0x06];
const EOCD_MIN_BYTES: usize = 22;
const EOCD_TOTAL_ENTRIES_OFFSET: usize = 10;
/// APPNOTE.TXT 4.4.26: the archive comment after the record is at most 65,535 bytes.
const EOCD_MAX_COMMENT_BYTES: usize = 0xFFFF;

/// The entry count the end-of-central-directory record declares (last record found).
fn declared_entry_count(bytes: &[u8]) -> Option<usize> {
    let last_start = bytes.len().checked_sub(EOCD_MIN_BYTES)?;
    let first_start = last_start.saturating_sub(EOCD_MAX_COMMENT_BYTES);
    let at = (first_start..=last_start)
        .rev()
        .find(|&i| bytes.get(i..i + 4) == Some(&EOCD_SIGNATURE))?;
    let field = bytes.get(at + EOCD_TOTAL_ENTRIES_OFFSET..at + EOCD_TOTAL_ENTRIES_OFFSET + 2)?;
    Some(usize::from(u16::from_le_bytes([field[0], field[1]])))
}

/// Unpack a zip archive held in memory.
///
/// Directories, macOS resource forks (`__MACOSX/`), dot-files and `DICOMDIR` index files
/// are skipped. The result is in archive order; [`assemble_series`](super::assemble_series)
/// does not depend on it.
///
/// # Errors
/// [`DicomError::Archive`] for a damaged or encrypted archive,
/// [`DicomError::ArchiveLimit`] when a limit is exceeded.
pub fn files_from_zip(bytes: Bytes, limits: &ArchiveLimits) -> Result<Vec<InputFile>, DicomError> {
    let mut files = Vec::new();
    unpack_zip(std::io::Cursor::new(bytes), limits, |name, entry| {
        let mut content = Vec::new();
        entry
            .read_to_end(&mut content)
            .map_err(|_| DicomError::Archive {
                reason: "an entry cannot be inflated",
            })?;
        let n = content.len() as u64;
        files.push(InputFile {
            name: name.to_owned(),
            bytes: Bytes::from(content),
        });
        Ok(n)
    })?;
    Ok(files)
}

/// Unpack the zip archive in file `zip` into numbered files (`entry-000000.dcm`, …) of
/// `dir`, one entry at a time, so memory stays bounded whatever the archive's size. Skips
/// and limits as [`files_from_zip`].
///
/// # Errors
/// As [`files_from_zip`]; [`DicomError::Io`] when `dir` cannot be written.
pub fn unzip_to_dir(
    zip: &Path,
    dir: &Path,
    limits: &ArchiveLimits,
) -> Result<Vec<super::series::FileRef>, DicomError> {
    let file = std::fs::File::open(zip).map_err(|source| io_error(zip, source))?;
    let mut files = Vec::new();
    unpack_zip(std::io::BufReader::new(file), limits, |name, entry| {
        let path = dir.join(format!("entry-{:06}.dcm", files.len()));
        let mut out = std::fs::File::create(&path).map_err(|source| io_error(&path, source))?;
        let n = std::io::copy(entry, &mut out).map_err(|e| {
            // An inflate failure surfaces as InvalidData; a disk failure as anything else.
            if e.kind() == std::io::ErrorKind::InvalidData {
                DicomError::Archive {
                    reason: "an entry cannot be inflated",
                }
            } else {
                io_error(&path, e)
            }
        })?;
        files.push(super::series::FileRef {
            name: name.to_owned(),
            path,
        });
        Ok(n)
    })?;
    Ok(files)
}

/// Walk the entries of a zip archive, handing each kept entry's inflated content (at most
/// one byte past the remaining budget) to `sink`, which returns the bytes it took.
fn unpack_zip<R: Read + Seek>(
    mut reader: R,
    limits: &ArchiveLimits,
    mut sink: impl FnMut(&str, &mut dyn Read) -> Result<u64, DicomError>,
) -> Result<(), DicomError> {
    let declared_entries = declared_entry_count_in(&mut reader);
    let mut zip = zip::ZipArchive::new(reader).map_err(|_| DicomError::Archive {
        reason: "not a readable zip archive",
    })?;
    // The zip crate indexes entries by name and keeps one per name: refuse repeated names
    // rather than silently losing the files behind them.
    if declared_entries.is_some_and(|n| n > zip.len()) {
        return Err(DicomError::Archive {
            reason: "several entries share one name; give every file its own name",
        });
    }
    if zip.len() > limits.max_entries {
        return Err(DicomError::ArchiveLimit {
            what: "entries",
            limit: limits.max_entries as u64,
        });
    }

    check_declared_entries(&mut zip, limits)?;

    let mut total: u64 = 0;
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index).map_err(|_| DicomError::Archive {
            reason: "an entry cannot be read",
        })?;
        let name = entry.name().to_owned();
        if entry.is_dir() || skipped_name(&name) {
            continue;
        }
        // Read at most one byte past the remaining budget, whatever the entry declares.
        let remaining = limits.max_total_bytes.saturating_sub(total);
        let taken = sink(&name, &mut (&mut entry).take(remaining.saturating_add(1)))?;
        total = total.saturating_add(taken);
        if total > limits.max_total_bytes {
            return Err(DicomError::ArchiveLimit {
                what: "inflated bytes",
                limit: limits.max_total_bytes,
            });
        }
    }
    Ok(())
}

/// Check what the central directory declares before inflating anything: every kept entry's
/// name stays inside the archive (no absolute path, no `..` leaving it: path traversal),
/// and the declared inflated sizes add up to at most the limit, so a zip bomb is refused
/// without writing it to disk. The walk in [`unpack_zip`] still counts the real bytes,
/// since a declaration can lie.
fn check_declared_entries<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    limits: &ArchiveLimits,
) -> Result<(), DicomError> {
    let mut declared: u64 = 0;
    for index in 0..zip.len() {
        let entry = zip.by_index_raw(index).map_err(|_| DicomError::Archive {
            reason: "an entry cannot be read",
        })?;
        if entry.is_dir() || skipped_name(entry.name()) {
            continue;
        }
        if entry.enclosed_name().is_none() {
            return Err(DicomError::ArchiveEntry {
                number: index + 1,
                reason: "its name is an absolute path or leaves the archive through '..' \
                         (path traversal); use relative names inside the archive",
            });
        }
        declared = declared.saturating_add(entry.size());
    }
    if declared > limits.max_total_bytes {
        return Err(DicomError::ArchiveLimit {
            what: "inflated bytes (the total its entries declare)",
            limit: limits.max_total_bytes,
        });
    }
    Ok(())
}

/// [`declared_entry_count`] of the archive's tail; the reader is rewound.
fn declared_entry_count_in<R: Read + Seek>(reader: &mut R) -> Option<usize> {
    let len = reader.seek(SeekFrom::End(0)).ok()?;
    let tail = (EOCD_MIN_BYTES + EOCD_MAX_COMMENT_BYTES) as u64;
    let start = len.saturating_sub(tail);
    reader.seek(SeekFrom::Start(start)).ok()?;
    let mut bytes = Vec::new();
    reader.by_ref().take(tail).read_to_end(&mut bytes).ok()?;
    reader.seek(SeekFrom::Start(0)).ok()?;
    declared_entry_count(&bytes)
}

/// Read every regular file below `dir` (recursively, sorted by path), skipping the same
/// names as [`files_from_zip`]. For the CLI; names are paths relative to `dir`.
///
/// # Errors
/// [`DicomError::Io`] when a directory or file cannot be read.
pub fn files_from_dir(dir: &Path) -> Result<Vec<InputFile>, DicomError> {
    file_refs_from_dir(dir)?
        .into_iter()
        .map(|f| {
            let content = std::fs::read(&f.path).map_err(|source| io_error(&f.path, source))?;
            Ok(InputFile {
                name: f.name,
                bytes: Bytes::from(content),
            })
        })
        .collect()
}

/// List every regular file below `dir` as [`files_from_dir`] does, without reading them,
/// for assembly one file at a time ([`assemble_series_from`](super::assemble_series_from)).
///
/// # Errors
/// [`DicomError::Io`] when a directory cannot be listed.
pub fn file_refs_from_dir(dir: &Path) -> Result<Vec<super::FileRef>, DicomError> {
    let mut paths = Vec::new();
    collect_paths(dir, &mut paths)?;
    paths.sort();
    Ok(paths
        .into_iter()
        .filter_map(|path| {
            let rel = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            (!skipped_name(&rel)).then_some(super::FileRef { name: rel, path })
        })
        .collect())
}

/// Recursively list regular files under `dir`.
fn collect_paths(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<(), DicomError> {
    let entries = std::fs::read_dir(dir).map_err(|source| io_error(dir, source))?;
    for entry in entries {
        let entry = entry.map_err(|source| io_error(dir, source))?;
        let kind = entry
            .file_type()
            .map_err(|source| io_error(&entry.path(), source))?;
        if kind.is_dir() {
            collect_paths(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

fn io_error(path: &Path, source: std::io::Error) -> DicomError {
    DicomError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Entries that are never DICOM instances of the series: resource forks, hidden files and
/// the media index `DICOMDIR` (PS3.10 8.6), which has no pixel data.
fn skipped_name(name: &str) -> bool {
    let normalized = name.replace('\\', "/");
    let mut components = normalized.split('/').filter(|c| !c.is_empty());
    let hidden_or_fork = components.any(|c| c == "__MACOSX" || c.starts_with('.') && c != "..");
    let base = normalized.rsplit('/').next().unwrap_or("");
    hidden_or_fork || base.eq_ignore_ascii_case("DICOMDIR")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(entries: &[(&str, &[u8])]) -> Bytes {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            for (name, data) in entries {
                if name.ends_with('/') {
                    w.add_directory(*name, opts).unwrap();
                } else {
                    w.start_file(*name, opts).unwrap();
                    w.write_all(data).unwrap();
                }
            }
            w.finish().unwrap();
        }
        Bytes::from(buf.into_inner())
    }

    #[test]
    fn skips_directories_forks_and_dot_files() {
        let z = zip_of(&[
            ("a/", b""),
            ("a/1.dcm", b"one"),
            ("__MACOSX/a/._1.dcm", b"fork"),
            ("a/.DS_Store", b"x"),
            ("b/../2.dcm", b"two"),
            ("DICOMDIR", b"idx"),
        ]);
        let files = files_from_zip(z, &ArchiveLimits::default()).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a/1.dcm", "b/../2.dcm"]);
        assert_eq!(&files[1].bytes[..], b"two");
    }

    #[test]
    fn traversal_and_absolute_names_are_refused_by_position() {
        for evil in ["../evil.dcm", "a/../../evil.dcm", "/tmp/evil.dcm"] {
            let z = zip_of(&[("ok.dcm", b"one"), (evil, b"two")]);
            let err = files_from_zip(z, &ArchiveLimits::default()).unwrap_err();
            assert!(
                matches!(err, DicomError::ArchiveEntry { number: 2, .. }),
                "{evil}: {err}"
            );
            assert!(err.to_string().contains("path traversal"), "{err}");
            assert!(
                !err.to_string().contains("evil"),
                "names are not echoed: {err}"
            );
        }
    }

    #[test]
    fn enforces_inflated_size_and_entry_limits() {
        let big = vec![0u8; 100_000];
        let z = zip_of(&[("a.dcm", &big), ("b.dcm", &big)]);
        let small = ArchiveLimits {
            max_entries: 10,
            max_total_bytes: 150_000,
        };
        let err = files_from_zip(z.clone(), &small).unwrap_err();
        assert!(
            matches!(err, DicomError::ArchiveLimit { what, .. } if what.starts_with("inflated bytes (the total")),
            "refused from the declared sizes: {err}"
        );
        let few = ArchiveLimits {
            max_entries: 1,
            max_total_bytes: 1 << 20,
        };
        let err = files_from_zip(z, &few).unwrap_err();
        assert!(matches!(
            err,
            DicomError::ArchiveLimit {
                what: "entries",
                ..
            }
        ));
    }

    #[test]
    fn rejects_non_zip() {
        let err = files_from_zip(Bytes::from_static(b"not a zip"), &ArchiveLimits::default());
        assert!(matches!(err, Err(DicomError::Archive { .. })));
    }

    #[test]
    fn repeated_entry_names_are_refused_not_collapsed() {
        let zip = zip_of(&[("a.dcm", b"one"), ("b.dcm", b"two")]);
        let mut raw = zip.to_vec();
        for i in 0..raw.len().saturating_sub(5) {
            if &raw[i..i + 5] == b"b.dcm" {
                raw[i..i + 5].copy_from_slice(b"a.dcm");
            }
        }
        let err = files_from_zip(Bytes::from(raw), &ArchiveLimits::default()).unwrap_err();
        assert!(err.to_string().contains("share one name"), "{err}");
    }
}
