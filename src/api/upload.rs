//! Reading uploads: size limits enforced before buffering, zip and multipart bodies.

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use bytes::Bytes;

use super::Problem;
use crate::dicom::InputFile;

/// Upload limits, from configuration.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Largest request body accepted, bytes.
    pub max_body_bytes: u64,
    /// Most instance files in one series upload (zip entries or multipart parts).
    pub max_files: usize,
    /// Largest total uncompressed size of a zip upload, bytes (zip-bomb guard).
    pub max_uncompressed_bytes: u64,
    /// Most series/segmentation uploads processed at once (each is decoded in memory).
    pub max_concurrent_uploads: usize,
    /// Most queued jobs before job creation answers 429 (backpressure).
    pub max_queued_jobs: u64,
}

impl UploadLimits {
    fn too_large(&self, what: &str) -> Problem {
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

/// Read every part of a multipart body, with the body limit applied.
pub async fn read_multipart<S: Send + Sync>(
    req: Request,
    state: &S,
    limits: &UploadLimits,
) -> Result<Vec<Part>, Problem> {
    let mut multipart = Multipart::from_request(req, state).await.map_err(|e| {
        Problem::bad_request(
            "malformed-multipart",
            format!("the multipart body is malformed: {e}"),
        )
    })?;
    let mut parts = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(limits.too_large("the multipart body"));
            }
            Err(e) if super::limits::is_body_timeout(&e) => {
                return Err(super::limits::body_timeout_problem());
            }
            Err(e) => return Err(Problem::bad_request("malformed-multipart", e.body_text())),
        };
        if parts.len() >= limits.max_files {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-many-files",
                "Too many files",
                format!("the upload has more than {} parts", limits.max_files),
            ));
        }
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().map(str::to_string);
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                limits.too_large("the multipart body")
            } else if super::limits::is_body_timeout(&e) {
                super::limits::body_timeout_problem()
            } else {
                Problem::bad_request("malformed-multipart", e.body_text())
            }
        })?;
        parts.push(Part {
            field: name,
            file_name,
            bytes,
        });
    }
    Ok(parts)
}

/// Turn multipart parts into instance files named for messages (`part <n>` when unnamed).
pub fn parts_to_files(parts: Vec<Part>) -> Vec<InputFile> {
    parts
        .into_iter()
        .enumerate()
        .map(|(n, p)| InputFile {
            name: p
                .file_name
                .unwrap_or_else(|| format!("part {} ('{}')", n + 1, p.field)),
            bytes: p.bytes,
        })
        .collect()
}
