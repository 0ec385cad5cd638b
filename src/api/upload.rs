//! Reading uploads: size limits enforced before buffering, multipart bodies held in memory
//! (segmentation uploads; series uploads are spooled to disk, see [`spool`](super::spool)).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use bytes::Bytes;

use super::Problem;
use super::spool::{BoundaryGuard, multipart_problem};
use crate::dicom::GeometryPolicy;

/// Upload limits, from configuration.
/// Largest JSON request document (a job or a batch of jobs), bytes. A parsed JSON value
/// takes up to ~30× its text in memory, so this is far below the upload limit: 8 MiB holds
/// a batch of tens of thousands of jobs.
pub const MAX_JSON_BODY_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Largest request body accepted, bytes.
    pub max_body_bytes: u64,
    /// Largest segmentation accepted, bytes (`RADSCORE_MAX_SEGMENTATION_MB`): it is read
    /// into memory to be mapped, so its bound is the memory one upload may take.
    pub max_segmentation_bytes: u64,
    /// Most instance files in one series upload (zip entries or multipart parts).
    pub max_files: usize,
    /// Largest total uncompressed size of a zip upload, bytes (zip-bomb guard).
    pub max_uncompressed_bytes: u64,
    /// Most series/segmentation uploads processed at once (each is decoded in memory).
    pub max_concurrent_uploads: usize,
    /// Most queued jobs before job creation answers 429 (backpressure).
    pub max_queued_jobs: u64,
    /// What series uploads do with irregular stacks (`RADSCORE_GEOMETRY`).
    pub geometry: GeometryPolicy,
}

impl UploadLimits {
    /// The largest segmentation a request may carry: the smaller of the two limits.
    pub fn segmentation_limit_bytes(&self) -> u64 {
        self.max_segmentation_bytes.min(self.max_body_bytes)
    }

    /// 413 `segmentation-too-large`: `what` is over [`Self::segmentation_limit_bytes`].
    pub fn segmentation_too_large(&self, what: &str) -> Problem {
        let limit = self.segmentation_limit_bytes();
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "segmentation-too-large",
            "Segmentation too large",
            format!(
                "{what} exceeds the segmentation limit of {limit} bytes \
                 (RADSCORE_MAX_SEGMENTATION_MB; segmentations are read into memory to be mapped)"
            ),
        )
        .with("limit_bytes", limit)
    }

    /// A mapper for the errors of a body read under a narrowed limit ([`Self::for_json`],
    /// [`Self::for_segmentation`]): a 413 becomes `named()`, the narrower limit's own
    /// message; any other problem passes through.
    pub fn rename_too_large(named: impl Fn() -> Problem) -> impl Fn(Problem) -> Problem {
        move |p| {
            if p.status == StatusCode::PAYLOAD_TOO_LARGE {
                named()
            } else {
                p
            }
        }
    }

    /// The limits of a JSON request document (jobs, batches): the body limit lowered to
    /// [`MAX_JSON_BODY_BYTES`].
    pub fn for_json(&self) -> UploadLimits {
        UploadLimits {
            max_body_bytes: self.max_body_bytes.min(MAX_JSON_BODY_BYTES),
            ..*self
        }
    }

    /// 413 `json-too-large`: `what` is over the limit of a JSON request document.
    pub fn json_too_large(&self, what: &str) -> Problem {
        let limit = self.max_body_bytes.min(MAX_JSON_BODY_BYTES);
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "json-too-large",
            "JSON request too large",
            format!(
                "{what} exceeds {limit} bytes, the limit of a JSON request document \
                 (it is parsed in memory; split a large batch into several)"
            ),
        )
        .with("limit_bytes", limit)
    }

    /// The limits of a segmentation upload: the body limit lowered to
    /// [`Self::segmentation_limit_bytes`].
    pub fn for_segmentation(&self) -> UploadLimits {
        UploadLimits {
            max_body_bytes: self.segmentation_limit_bytes(),
            ..*self
        }
    }

    pub(super) fn too_large(&self, what: &str) -> Problem {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload-too-large",
            "Upload too large",
            format!(
                "{what} exceeds the configured limit of {} bytes",
                self.max_body_bytes
            ),
        )
        .with("limit_bytes", self.max_body_bytes)
    }

    /// Refuse a declared Content-Length over the limit before reading anything.
    pub fn check_declared_length(&self, req: &Request) -> Result<(), Problem> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(n) if n > self.max_body_bytes => {
                Err(self.too_large("the declared Content-Length"))
            }
            _ => Ok(()),
        }
    }

    /// Read a whole body, stopping with 413 as soon as it passes the limit.
    pub async fn read_body(&self, body: Body) -> Result<Bytes, Problem> {
        let limit = usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX);
        axum::body::to_bytes(body, limit).await.map_err(|e| {
            if is_length_limit(&e) {
                self.too_large("the request body")
            } else if super::limits::is_body_timeout(&e) {
                super::limits::body_timeout_problem()
            } else {
                Problem::bad_request(
                    "unreadable-body",
                    format!("the request body could not be read: {e}"),
                )
            }
        })
    }
}

fn is_length_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The media type of a request, lower-cased, without parameters.
pub fn media_type(req: &Request) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// One named part of a multipart upload.
pub struct Part {
    /// Form field name.
    pub field: String,
    /// Client-supplied file name, if any (used in messages only, never as a path).
    pub file_name: Option<String>,
    pub bytes: Bytes,
}

/// The boundary of a `multipart/form-data` request, or a 400 naming its absence.
pub fn form_boundary(req: &Request) -> Result<String, Problem> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    multer::parse_boundary(content_type).map_err(|_| {
        Problem::bad_request(
            "malformed-multipart",
            "the multipart/form-data Content-Type has no boundary parameter",
        )
    })
}

/// Read every part of a multipart body into memory, with the body limit applied.
pub async fn read_multipart(req: Request, limits: &UploadLimits) -> Result<Vec<Part>, Problem> {
    let boundary = form_boundary(&req)?;
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(limits.max_body_bytes));
    let body = BoundaryGuard::new(req.into_body().into_data_stream(), &boundary);
    let mut multipart = multer::Multipart::with_constraints(body, boundary, constraints);
    let mut parts = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
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
        if super::spool::is_headerless(field.headers()) {
            return Err(super::spool::headerless_form_part(parts.len() + 1));
        }
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().map(str::to_string);
        let bytes = field
            .bytes()
            .await
            .map_err(|e| multipart_problem(e, limits))?;
        parts.push(Part {
            field: name,
            file_name,
            bytes,
        });
    }
    Ok(parts)
}
