//! Reading a `multipart/related; type="application/dicom"` body (RFC 2387; DICOMweb
//! PS3.18 8.6.1.2 and 10.5.1.2), the request body of STOW-RS.
//!
//! The body is split by multer (the parser axum's form-data extractor uses), with the
//! boundary and root type taken from the Content-Type header here, because multer's own
//! header parser accepts only `multipart/form-data`. The server spools STOW-RS parts to
//! disk ([`spool`](super::spool)); [`read_parts`] holds them in memory (fuzzing, tests).
//! Both pass the body through [`BoundaryGuard`](super::spool::BoundaryGuard).

use bytes::Bytes;
use futures::Stream;

/// PS3.18 10.5.1.2: the media type of each part, and the `type` parameter of the request.
pub const APPLICATION_DICOM: &str = "application/dicom";

/// Limits on one request body.
#[derive(Debug, Clone, Copy)]
pub struct RelatedLimits {
    /// Largest whole body, bytes.
    pub max_body_bytes: u64,
    /// Most parts.
    pub max_parts: usize,
}

/// One body part.
#[derive(Debug, Clone)]
pub struct RelatedPart {
    /// 1-based position in the body, for messages.
    pub number: usize,
    /// The part's Content-Type, lower-cased without parameters (`None` when absent; PS3.18
    /// then implies the request's `type`).
    pub media_type: Option<String>,
    /// The part came with an empty header block (see [`super::spool`]).
    pub headerless: bool,
    pub bytes: Bytes,
}

/// Why a body was refused as a whole.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RelatedError {
    #[error("Content-Type must be multipart/related; type=\"application/dicom\" (found '{found}')")]
    MediaType { found: String },
    #[error("the multipart/related Content-Type has no boundary parameter")]
    NoBoundary,
    #[error("the body exceeds the configured limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the body has more than {limit} parts")]
    TooManyParts { limit: usize },
    #[error("the multipart body is malformed: {reason}")]
    Malformed { reason: String },
}

/// Check the request's Content-Type and return its boundary.
///
/// # Errors
/// [`RelatedError::MediaType`] unless it is `multipart/related` whose `type` is
/// `application/dicom`; [`RelatedError::NoBoundary`] without a boundary.
pub fn boundary(content_type: &str) -> Result<String, RelatedError> {
    let wrong = || RelatedError::MediaType {
        found: content_type
            .chars()
            .take(crate::api::series::MAX_ECHO_CHARS)
            .collect(),
    };
    let mime: mime::Mime = content_type.parse().map_err(|_| wrong())?;
    if mime.type_() != mime::MULTIPART || mime.subtype().as_str() != "related" {
        return Err(wrong());
    }
    let root_type = mime
        .get_param("type")
        .map(|v| v.as_str().to_ascii_lowercase());
    if root_type.as_deref() != Some(APPLICATION_DICOM) {
        return Err(wrong());
    }
    mime.get_param(mime::BOUNDARY)
        .map(|b| b.as_str().to_owned())
        .filter(|b| !b.is_empty())
        .ok_or(RelatedError::NoBoundary)
}

/// Read every part of a body with `boundary`, within `limits`.
///
/// # Errors
/// [`RelatedError`] for a body over the limits or not split by the boundary.
pub async fn read_parts<S, E>(
    body: S,
    boundary: String,
    limits: RelatedLimits,
) -> Result<Vec<RelatedPart>, RelatedError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(limits.max_body_bytes));
    // multer needs a header line per part: the guard marks empty header blocks.
    let body = super::spool::BoundaryGuard::new(Box::pin(body), &boundary);
    let mut multipart = multer::Multipart::with_constraints(body, boundary, constraints);
    let mut parts = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(classify(e, limits)),
        };
        if parts.len() >= limits.max_parts {
            return Err(RelatedError::TooManyParts {
                limit: limits.max_parts,
            });
        }
        let headerless = super::spool::is_headerless(field.headers());
        let media_type = field
            .content_type()
            .map(|m| m.essence_str().to_ascii_lowercase());
        let bytes = field.bytes().await.map_err(|e| classify(e, limits))?;
        parts.push(RelatedPart {
            number: parts.len() + 1,
            media_type,
            headerless,
            bytes,
        });
    }
    Ok(parts)
}

fn classify(e: multer::Error, limits: RelatedLimits) -> RelatedError {
    match e {
        multer::Error::StreamSizeExceeded { .. } => RelatedError::TooLarge {
            limit: limits.max_body_bytes,
        },
        multer::Error::StreamReadFailed(inner) => RelatedError::Malformed {
            reason: inner.to_string(),
        },
        // multer's messages name only structure (boundaries, headers), never content.
        other => RelatedError::Malformed {
            reason: other.to_string(),
        },
    }
}

/// [`read_parts`] over a body held in memory (fuzzing and tests).
///
/// # Errors
/// As [`read_parts`].
pub fn read_parts_from_bytes(
    content_type: &str,
    body: Bytes,
    limits: RelatedLimits,
) -> Result<Vec<RelatedPart>, RelatedError> {
    let boundary = boundary(content_type)?;
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(body) });
    futures::executor::block_on(read_parts(stream, boundary, limits))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: RelatedLimits = RelatedLimits {
        max_body_bytes: 1 << 20,
        max_parts: 3,
    };

    fn body(parts: &[(&str, &[u8])]) -> Bytes {
        let mut out = Vec::new();
        for (media, data) in parts {
            out.extend_from_slice(b"--XyZ\r\n");
            match *media {
                "" => out.extend_from_slice(b"Content-ID: <part>\r\n"),
                // An empty header block.
                "-" => {}
                _ => out.extend_from_slice(format!("Content-Type: {media}\r\n").as_bytes()),
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--XyZ--\r\n");
        Bytes::from(out)
    }

    const CT: &str = "multipart/related; type=\"application/dicom\"; boundary=XyZ";

    #[test]
    fn splits_parts_with_and_without_content_type() {
        let parts = read_parts_from_bytes(
            CT,
            body(&[("application/dicom", b"one"), ("", b"two")]),
            LIMITS,
        )
        .unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].media_type.as_deref(), Some(APPLICATION_DICOM));
        assert_eq!(&parts[0].bytes[..], b"one");
        assert_eq!((parts[1].number, parts[1].media_type.as_deref()), (2, None));
        assert!(!parts[0].headerless && !parts[1].headerless);
    }

    /// A part with an empty header block (RFC 2046 allows it) keeps all its bytes, even
    /// ones that look like a header block, and is flagged.
    #[test]
    fn a_part_without_header_lines_is_read_whole_and_flagged() {
        let tricky: &[u8] = b"Content-Type: text/plain\r\n\r\nstill the content";
        let parts = read_parts_from_bytes(
            CT,
            body(&[("-", tricky), ("application/dicom", b"two"), ("-", b"")]),
            LIMITS,
        )
        .unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(&parts[0].bytes[..], tricky);
        assert!(parts[0].headerless && parts[0].media_type.is_none());
        assert_eq!(&parts[1].bytes[..], b"two");
        assert!(!parts[1].headerless);
        assert!(parts[2].headerless && parts[2].bytes.is_empty());
    }

    #[test]
    fn refuses_other_media_types_and_missing_boundaries() {
        for ct in [
            "multipart/form-data; boundary=XyZ",
            "multipart/related; type=\"application/dicom+json\"; boundary=XyZ",
            "multipart/related; boundary=XyZ",
            "application/dicom",
        ] {
            assert!(
                matches!(boundary(ct), Err(RelatedError::MediaType { .. })),
                "{ct}"
            );
        }
        let no_boundary = "multipart/related; type=\"application/dicom\"";
        assert_eq!(boundary(no_boundary), Err(RelatedError::NoBoundary));
    }

    #[test]
    fn enforces_part_and_size_limits() {
        let four = body(&[("", b"1"), ("", b"2"), ("", b"3"), ("", b"4")]);
        let err = read_parts_from_bytes(CT, four, LIMITS).unwrap_err();
        assert_eq!(err, RelatedError::TooManyParts { limit: 3 });
        let big = vec![0u8; 2 << 20];
        let err = read_parts_from_bytes(CT, body(&[("", &big)]), LIMITS).unwrap_err();
        assert_eq!(err, RelatedError::TooLarge { limit: 1 << 20 });
        let err = read_parts_from_bytes(CT, Bytes::from_static(b"garbage"), LIMITS);
        assert!(
            matches!(err, Err(RelatedError::Malformed { .. })),
            "{err:?}"
        );
    }
}
