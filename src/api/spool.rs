//! Uploads spooled to a temporary directory as they arrive, so a request's memory stays
//! bounded whatever its size: a zip body is written to a file and unpacked entry by entry
//! into files; multipart bodies (`multipart/form-data`, STOW-RS `multipart/related`) are
//! split by multer and each part is written to its own file chunk by chunk. The directory
//! (under `TMPDIR`, mode 0700: uploads hold patient data) is removed when the [`Spool`] is
//! dropped, on success or failure; [`remove_stale_spools`] removes those a killed process
//! left behind.
//!
//! Every multipart body passes through [`BoundaryGuard`] first: multer searches the
//! buffered body for the first boundary and for the end of each part's headers again on
//! every chunk, which is quadratic when they never come (a 200 MB chunked body without its
//! boundary took 16 s of CPU). The guard scans each byte once and stops the request with a
//! 400 naming the boundary as soon as the preamble or a part's headers pass their bound.
//!
//! A part whose header block is empty (the delimiter line directly followed by the blank
//! line: legal in RFC 2046 5.1.1, where it means `Content-Type: text/plain`) is one multer
//! cannot split: it looks for the blank line *after* a header and would take the part's
//! first bytes for headers. The guard marks such a part by inserting one header line,
//! [`HEADERLESS_MARKER`], which the readers turn into [`SpooledPart::headerless`]: STOW-RS
//! takes the part as `application/dicom` when it is a DICOM Part 10 file, and refuses the
//! request with a 400 naming the part otherwise; `multipart/form-data` refuses it with a 400
//! naming the part (RFC 7578 4.2: every part names its field in Content-Disposition).

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::StatusCode;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use super::{Problem, UploadLimits};
use crate::dicom::FileRef;

/// Longest preamble accepted before the first boundary (RFC 2046 5.1.1 allows one; clients
/// send none or a line).
pub const MAX_PREAMBLE_BYTES: u64 = 16 * 1024;

/// Longest header block of one part (Content-Disposition, Content-Type, …).
pub const MAX_PART_HEADER_BYTES: u64 = 16 * 1024;

/// The header line [`BoundaryGuard`] inserts into an empty part header block (see the
/// module documentation). A part whose only header it is counts as having none.
pub const HEADERLESS_MARKER: &str = "x-radscore-headerless-part";

/// Whether a multer part's headers are only the [`HEADERLESS_MARKER`].
pub fn is_headerless(headers: &axum::http::HeaderMap) -> bool {
    headers.len() == 1 && headers.contains_key(HEADERLESS_MARKER)
}

/// 400 for a `multipart/form-data` part without header lines, naming it (1-based).
pub fn headerless_form_part(number: usize) -> Problem {
    Problem::bad_request(
        "malformed-multipart",
        format!(
            "part {number} of the multipart/form-data body has no header lines; every part \
             needs a Content-Disposition header naming its field (RFC 7578 4.2)"
        ),
    )
    .with("part", number)
}

/// Name prefix of the spool directories under `TMPDIR`.
pub const SPOOL_PREFIX: &str = "radscore-upload-";

/// Owner-only access (0700) for spool directories: other local users must not read uploads.
#[cfg(unix)]
fn owner_only() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o700)
}

/// Remove the spool directories under `TMPDIR` that nothing wrote to for `max_age` (left by
/// a process killed mid-upload; a live upload writes at least every body-idle timeout).
/// Returns how many were removed. Errors are logged, not returned: this is housekeeping.
pub fn remove_stale_spools(max_age: std::time::Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let path = entry.path();
        if !name.to_string_lossy().starts_with(SPOOL_PREFIX) || !path.is_dir() {
            continue;
        }
        if newest_write_age(&path).is_some_and(|age| age >= max_age) {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    error.message = %e,
                    "cannot remove a stale upload spool"
                ),
            }
        }
    }
    removed
}

/// Time since the newest write to `dir` or a file directly in it.
fn newest_write_age(dir: &Path) -> Option<std::time::Duration> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut newest = modified(dir)?;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        if let Some(t) = modified(&entry.path()) {
            newest = newest.max(t);
        }
    }
    newest.elapsed().ok()
}

/// A temporary directory holding the files of one upload.
pub struct Spool {
    dir: tempfile::TempDir,
    next: usize,
}

/// One spooled multipart part.
#[derive(Debug, Clone)]
pub struct SpooledPart {
    /// 1-based position in the body, for messages.
    pub number: usize,
    /// Form field name (`multipart/form-data`), empty otherwise.
    pub field: String,
    /// Client-supplied file name (messages only, never a path).
    pub file_name: Option<String>,
    /// The part's Content-Type, lower-cased without parameters.
    pub media_type: Option<String>,
    /// The part came with an empty header block (see the module documentation).
    pub headerless: bool,
    pub path: PathBuf,
    pub len: u64,
}

impl SpooledPart {
    /// The part as an instance file named for messages (`part <n>` when unnamed).
    pub fn file_ref(&self) -> FileRef {
        FileRef {
            name: self.file_name.clone().unwrap_or_else(|| {
                if self.field.is_empty() {
                    format!("part {}", self.number)
                } else {
                    format!("part {} ('{}')", self.number, self.field)
                }
            }),
            path: self.path.clone(),
        }
    }
}

impl Spool {
    /// A new, empty spool directory.
    ///
    /// # Errors
    /// A 500 problem when the temporary directory cannot be created.
    pub fn new() -> Result<Self, Problem> {
        let dir = tempfile::Builder::new()
            .prefix(SPOOL_PREFIX)
            .permissions(owner_only())
            .tempdir()
            .map_err(|e| Problem::internal(&e))?;
        Ok(Spool { dir, next: 0 })
    }

    /// The spool's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn next_path(&mut self, ext: &str) -> PathBuf {
        self.next += 1;
        self.dir.path().join(format!("part-{:06}.{ext}", self.next))
    }

    /// Write a whole request body to one file, stopping with 413 past the body limit.
    ///
    /// # Errors
    /// 413 over the limit, 400 for an unreadable body, 500 for a disk failure.
    pub async fn body_to_file(
        &mut self,
        body: axum::body::Body,
        limits: &UploadLimits,
    ) -> Result<(PathBuf, u64), Problem> {
        let path = self.next_path("body");
        let mut file = create(&path).await?;
        let mut stream = body.into_data_stream();
        let mut len = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                if super::limits::is_body_timeout(&e) {
                    super::limits::body_timeout_problem()
                } else {
                    Problem::bad_request(
                        "unreadable-body",
                        format!("the request body could not be read: {e}"),
                    )
                }
            })?;
            len = len.saturating_add(chunk.len() as u64);
            if len > limits.max_body_bytes {
                return Err(limits.too_large("the request body"));
            }
            write(&mut file, &chunk).await?;
        }
        file.flush().await.map_err(|e| Problem::internal(&e))?;
        Ok((path, len))
    }

    /// Split a multipart body by `boundary` and write every part to its own file.
    ///
    /// # Errors
    /// 400 for a body the boundary does not split (named), 413 over the body limit or
    /// `limits.max_files` parts, 500 for a disk failure.
    pub async fn multipart<S, E>(
        &mut self,
        body: S,
        boundary: String,
        limits: &UploadLimits,
    ) -> Result<Vec<SpooledPart>, Problem>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        let constraints = multer::Constraints::new()
            .size_limit(multer::SizeLimit::new().whole_stream(limits.max_body_bytes));
        let guarded = BoundaryGuard::new(body, &boundary);
        let mut multipart = multer::Multipart::with_constraints(guarded, boundary, constraints);
        let mut parts = Vec::new();
        loop {
            let mut field = match multipart.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => break,
                Err(e) => return Err(multipart_problem(e, limits)),
            };
            if parts.len() >= limits.max_files {
                return Err(Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too-many-files",
                    "Too many files",
                    format!("the upload has more than {} parts", limits.max_files),
                ));
            }
            let path = self.next_path("part");
            let mut file = create(&path).await?;
            let mut len = 0u64;
            let number = parts.len() + 1;
            let field_name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let headerless = is_headerless(field.headers());
            let media_type = field
                .content_type()
                .map(|m| m.essence_str().to_ascii_lowercase());
            loop {
                match field.chunk().await {
                    Ok(Some(chunk)) => {
                        len += chunk.len() as u64;
                        write(&mut file, &chunk).await?;
                    }
                    Ok(None) => break,
                    Err(e) => return Err(multipart_problem(e, limits)),
                }
            }
            file.flush().await.map_err(|e| Problem::internal(&e))?;
            parts.push(SpooledPart {
                number,
                field: field_name,
                file_name,
                media_type,
                headerless,
                path,
                len,
            });
        }
        Ok(parts)
    }
}

async fn create(path: &Path) -> Result<tokio::fs::File, Problem> {
    tokio::fs::File::create(path)
        .await
        .map_err(|e| Problem::internal(&e))
}

async fn write(file: &mut tokio::fs::File, chunk: &[u8]) -> Result<(), Problem> {
    file.write_all(chunk)
        .await
        .map_err(|e| Problem::internal(&e))
}

/// A multer error as a problem: 413 over the limit, the guard's own 400s, else 400.
pub fn multipart_problem(e: multer::Error, limits: &UploadLimits) -> Problem {
    match e {
        multer::Error::StreamSizeExceeded { .. } => limits.too_large("the multipart body"),
        multer::Error::StreamReadFailed(inner) => match inner.downcast::<GuardError>() {
            Ok(guard) => Problem::bad_request("malformed-multipart", guard.to_string()),
            Err(other) if super::limits::is_body_timeout(&*other) => {
                super::limits::body_timeout_problem()
            }
            Err(other) => Problem::bad_request(
                "unreadable-body",
                format!("the request body could not be read: {other}"),
            ),
        },
        // multer's messages name only structure (boundaries, headers), never content.
        other => Problem::bad_request(
            "malformed-multipart",
            format!("the multipart body is malformed: {other}"),
        ),
    }
}

/// Why [`BoundaryGuard`] stopped a body.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GuardError {
    #[error(
        "the body does not contain its multipart boundary '--{boundary}' (from the \
         Content-Type boundary parameter) within its first {limit} bytes"
    )]
    MissingBoundary { boundary: String, limit: u64 },
    #[error("the headers of part {part} do not end within {limit} bytes")]
    PartHeadersTooLong { part: usize, limit: u64 },
}

/// The CRLF that ends a delimiter line followed at once by the blank line that ends the
/// (empty) header block.
const EMPTY_HEADER_BLOCK: &[u8] = b"\r\n\r\n";

/// Where the guard is in the body.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scan {
    /// Before the first delimiter; `seen` bytes so far.
    Preamble { seen: u64 },
    /// Just after a delimiter: `--` (close) or a header block follows.
    AfterDelimiter,
    /// In a part's header block; `seen` bytes so far.
    Headers { seen: u64 },
    /// In a part's content, looking for `CRLF--boundary`.
    Content,
    /// After the close delimiter: anything goes.
    Epilogue,
}

/// A body stream checked, in one linear pass, to be split by its boundary: the first
/// delimiter within [`MAX_PREAMBLE_BYTES`] and every part's headers within
/// [`MAX_PART_HEADER_BYTES`]; an empty part header block gets the [`HEADERLESS_MARKER`]
/// line. Bytes are passed on once scanned (a few bytes of a chunk may wait for the next).
pub struct BoundaryGuard<S> {
    inner: S,
    /// `--boundary` (the first delimiter may open the body without a CRLF).
    first: Vec<u8>,
    /// `\r\n--boundary`.
    delimiter: Vec<u8>,
    scan: Scan,
    /// Unscanned bytes carried to the next chunk (shorter than a delimiter), not yet
    /// passed on.
    tail: Vec<u8>,
    parts: usize,
    failed: bool,
    done: bool,
}

/// The marker line inserted into an empty header block.
fn marker_line() -> Vec<u8> {
    format!("{HEADERLESS_MARKER}: 1\r\n").into_bytes()
}

impl<S> BoundaryGuard<S> {
    pub fn new(inner: S, boundary: &str) -> Self {
        let first = format!("--{boundary}").into_bytes();
        let mut delimiter = b"\r\n".to_vec();
        delimiter.extend_from_slice(&first);
        BoundaryGuard {
            inner,
            first,
            delimiter,
            scan: Scan::Preamble { seen: 0 },
            tail: Vec::new(),
            parts: 0,
            failed: false,
            done: false,
        }
    }

    fn boundary(&self) -> String {
        String::from_utf8_lossy(&self.first[2..])
            .chars()
            .take(super::series::MAX_ECHO_CHARS)
            .collect()
    }

    /// Scan one chunk (after what was carried over) and return the bytes to pass on: all
    /// but a short unscanned tail, with a marker line in every empty header block.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, GuardError> {
        let mut buf = std::mem::take(&mut self.tail);
        buf.extend_from_slice(chunk);
        // Positions in `buf` where a marker line goes (ascending).
        let mut marks = Vec::new();
        self.scan_buffer(&buf, &mut marks)?;
        let scanned = buf.len() - self.tail.len();
        buf.truncate(scanned);
        if marks.is_empty() {
            return Ok(Bytes::from(buf));
        }
        let line = marker_line();
        let mut out = Vec::with_capacity(buf.len() + marks.len() * line.len());
        let mut from = 0;
        for at in marks {
            out.extend_from_slice(&buf[from..at]);
            out.extend_from_slice(&line);
            from = at;
        }
        out.extend_from_slice(&buf[from..]);
        Ok(Bytes::from(out))
    }

    /// The bytes still held back, at the end of the body.
    pub fn finish(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.tail))
    }

    /// Scan `buf`, leaving the unscanned rest in `self.tail` and recording where marker
    /// lines go in `marks`.
    fn scan_buffer(&mut self, buf: &[u8], marks: &mut Vec<usize>) -> Result<(), GuardError> {
        let mut pos = 0usize;
        loop {
            let rest = &buf[pos..];
            match self.scan {
                Scan::Epilogue => return Ok(()),
                Scan::Preamble { seen } => match memchr::memmem::find(rest, &self.first) {
                    Some(i) => {
                        pos += i + self.first.len();
                        self.scan = Scan::AfterDelimiter;
                    }
                    None => {
                        let keep = rest.len().min(self.first.len() - 1);
                        let seen = seen + (rest.len() - keep) as u64;
                        if seen > MAX_PREAMBLE_BYTES {
                            return Err(GuardError::MissingBoundary {
                                boundary: self.boundary(),
                                limit: MAX_PREAMBLE_BYTES,
                            });
                        }
                        self.scan = Scan::Preamble { seen };
                        self.tail = rest[rest.len() - keep..].to_vec();
                        return Ok(());
                    }
                },
                Scan::AfterDelimiter => {
                    if rest.starts_with(b"--") {
                        self.scan = Scan::Epilogue;
                        continue;
                    }
                    // The line end of the delimiter, then a blank line: no headers.
                    if rest.len() < EMPTY_HEADER_BLOCK.len() {
                        self.tail = rest.to_vec();
                        return Ok(());
                    }
                    self.parts += 1;
                    if rest.starts_with(EMPTY_HEADER_BLOCK) {
                        marks.push(pos + 2);
                        pos += EMPTY_HEADER_BLOCK.len();
                        self.scan = Scan::Content;
                    } else {
                        self.scan = Scan::Headers { seen: 0 };
                    }
                }
                Scan::Headers { seen } => match memchr::memmem::find(rest, b"\r\n\r\n") {
                    Some(i) if seen + (i as u64) <= MAX_PART_HEADER_BYTES => {
                        pos += i + 4;
                        self.scan = Scan::Content;
                    }
                    Some(_) => {
                        return Err(GuardError::PartHeadersTooLong {
                            part: self.parts,
                            limit: MAX_PART_HEADER_BYTES,
                        });
                    }
                    None => {
                        let keep = rest.len().min(3);
                        let seen = seen + (rest.len() - keep) as u64;
                        if seen > MAX_PART_HEADER_BYTES {
                            return Err(GuardError::PartHeadersTooLong {
                                part: self.parts,
                                limit: MAX_PART_HEADER_BYTES,
                            });
                        }
                        self.scan = Scan::Headers { seen };
                        self.tail = rest[rest.len() - keep..].to_vec();
                        return Ok(());
                    }
                },
                Scan::Content => match memchr::memmem::find(rest, &self.delimiter) {
                    Some(i) => {
                        pos += i + self.delimiter.len();
                        self.scan = Scan::AfterDelimiter;
                    }
                    None => {
                        let keep = rest.len().min(self.delimiter.len() - 1);
                        self.tail = rest[rest.len() - keep..].to_vec();
                        return Ok(());
                    }
                },
            }
        }
    }
}

impl<S, E> Stream for BoundaryGuard<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.failed || self.done {
            return Poll::Ready(None);
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => match self.feed(&chunk) {
                Ok(out) => Poll::Ready(Some(Ok(out))),
                Err(e) => {
                    self.failed = true;
                    Poll::Ready(Some(Err(Box::new(e))))
                }
            },
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                self.done = true;
                let rest = self.finish();
                Poll::Ready((!rest.is_empty()).then_some(Ok(rest)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(body: &[u8], chunk: usize) -> Result<(), GuardError> {
        passed_on(body, chunk).map(drop)
    }

    /// What the guard passes on for `body` fed in chunks of `chunk` bytes.
    fn passed_on(body: &[u8], chunk: usize) -> Result<Vec<u8>, GuardError> {
        let mut guard = BoundaryGuard::new(
            futures::stream::empty::<Result<Bytes, std::io::Error>>(),
            "XyZ",
        );
        let mut out = Vec::new();
        for c in body.chunks(chunk.max(1)) {
            out.extend_from_slice(&guard.feed(c)?);
        }
        out.extend_from_slice(&guard.finish());
        Ok(out)
    }

    #[test]
    fn bodies_pass_unchanged_but_empty_header_blocks_get_the_marker() {
        let body = b"--XyZ\r\nContent-Type: a\r\n\r\none\r\n--XyZ\r\n\r\n\r\n\r\ntwo\r\n--XyZ\r\n\r\n--\r\n--XyZ--\r\n";
        let marked = b"--XyZ\r\nContent-Type: a\r\n\r\none\r\n--XyZ\r\nx-radscore-headerless-part: 1\r\n\r\n\r\n\r\ntwo\r\n--XyZ\r\nx-radscore-headerless-part: 1\r\n\r\n--\r\n--XyZ--\r\n";
        for chunk in [1, 2, 3, 5, 8, body.len()] {
            assert_eq!(
                passed_on(body, chunk).unwrap(),
                marked.to_vec(),
                "chunk {chunk}"
            );
        }
        let plain = b"pre\r\n--XyZ\r\nA: b\r\n\r\n\r\n\r\nx\r\n--XyZ--\r\nepilogue";
        for chunk in [1, 4, plain.len()] {
            assert_eq!(passed_on(plain, chunk).unwrap(), plain.to_vec());
        }
    }

    #[test]
    fn well_formed_bodies_pass_in_any_chunking() {
        let mut body = b"preamble\r\n--XyZ\r\nContent-Type: application/dicom\r\n\r\n".to_vec();
        body.extend(std::iter::repeat_n(b'a', 100_000));
        body.extend_from_slice(b"\r\n--XyZ\r\nContent-Type: x\r\n\r\nb\r\n--XyZ--\r\n");
        body.extend(std::iter::repeat_n(b'e', 100_000));
        for chunk in [1, 2, 3, 7, 4096, body.len()] {
            assert_eq!(scan(&body, chunk), Ok(()), "chunk {chunk}");
        }
    }

    #[test]
    fn a_body_without_its_boundary_stops_after_the_preamble_bound() {
        let body = vec![b'x'; 10 << 20];
        let err = scan(&body, 64 * 1024).unwrap_err();
        assert_eq!(
            err,
            GuardError::MissingBoundary {
                boundary: "XyZ".into(),
                limit: MAX_PREAMBLE_BYTES
            }
        );
        assert!(err.to_string().contains("'--XyZ'"), "{err}");
    }

    #[test]
    fn endless_part_headers_are_stopped() {
        let mut body = b"--XyZ\r\nContent-Type: x".to_vec();
        body.extend(std::iter::repeat_n(b'h', 1 << 20));
        let err = scan(&body, 1000).unwrap_err();
        assert_eq!(
            err,
            GuardError::PartHeadersTooLong {
                part: 1,
                limit: MAX_PART_HEADER_BYTES
            }
        );
    }

    #[test]
    fn spools_are_private_and_stale_ones_are_removed() {
        use std::os::unix::fs::PermissionsExt;
        use std::time::{Duration, SystemTime};

        let live = Spool::new().unwrap();
        let mode = std::fs::metadata(live.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");

        // A spool a killed process left: its directory and file were last written 2 h ago.
        let stale = tempfile::Builder::new()
            .prefix(SPOOL_PREFIX)
            .tempdir()
            .unwrap()
            .keep();
        let file = stale.join("part-000001.dcm");
        std::fs::write(&file, b"DICM").unwrap();
        let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
        for p in [&file, &stale] {
            std::fs::File::open(p)
                .unwrap()
                .set_modified(two_hours_ago)
                .unwrap();
        }
        let removed = remove_stale_spools(Duration::from_secs(3600));
        assert!(removed >= 1);
        assert!(!stale.exists(), "the stale spool is removed");
        assert!(live.dir().exists(), "a live spool stays");
    }
}
