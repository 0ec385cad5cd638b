//! Pushing a succeeded job's DICOM SR report to a DICOMweb destination with STOW-RS
//! (PS3.18 10.5: `POST {base}/studies`, `multipart/related; type="application/dicom"`),
//! with retries and backoff, and its delivery status in the job document.
//!
//! A delivery is recorded before the first attempt (`pending`), every attempt is counted
//! with its error, and it ends `delivered` or `failed`. The result itself stays in the
//! database whatever happens to the delivery (`GET /v1/jobs/{id}/result(.dcm)`).
//!
//! Retried: connection errors, timeouts, 408, 429 and 5xx answers. Not retried: other
//! 4xx answers (the destination refuses the object; retrying would not change that).

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use super::RetryPolicy;
use super::report::report_for_job;
use crate::sr::DICOM_MEDIA_TYPE;
use crate::store::{BlobStore, Db};

/// Delivery states as stored.
pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const FAILED: &str = "failed";

/// Where and how reports are pushed.
#[derive(Clone)]
pub struct PushConfig {
    /// DICOMweb base URL (the STOW-RS resource is `{url}/studies`).
    pub url: String,
    /// Value of the `Authorization` header, e.g. `Bearer …` or `Basic …`; never logged.
    pub authorization: Option<String>,
    /// Attempts before a delivery fails.
    pub max_attempts: u32,
    /// Backoff between attempts.
    pub retry: RetryPolicy,
    /// Time limit of one request.
    pub timeout: Duration,
}

impl std::fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConfig")
            .field("url", &self.url)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("max_attempts", &self.max_attempts)
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why one attempt failed.
#[derive(Debug, Clone)]
struct AttemptError {
    message: String,
    transient: bool,
}

/// The STOW-RS client.
#[derive(Debug, Clone)]
pub struct Pusher {
    client: reqwest::Client,
    config: PushConfig,
    studies_url: String,
    /// The base URL without user-info (credentials), as shown in job documents.
    destination: String,
}

impl Pusher {
    /// A client for `config`.
    ///
    /// # Errors
    /// An unusable URL or authorization value, or an HTTP client that cannot be built.
    pub fn new(config: PushConfig) -> Result<Self, String> {
        let base = config.url.trim_end_matches('/');
        let studies_url = format!("{base}/studies");
        let mut shown = reqwest::Url::parse(base)
            .map_err(|e| format!("RADSCORE_DICOMWEB_PUSH_URL is not a URL: {e}"))?;
        if !matches!(shown.scheme(), "http" | "https") {
            return Err("RADSCORE_DICOMWEB_PUSH_URL must be an http or https URL".into());
        }
        // Cannot fail for http(s) URLs, which have a host.
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        if let Some(a) = &config.authorization {
            HeaderValue::from_str(a).map_err(|_| {
                "RADSCORE_DICOMWEB_PUSH_AUTHORIZATION is not a valid header value".to_string()
            })?;
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| format!("cannot build the DICOMweb client: {e}"))?;
        Ok(Pusher {
            client,
            config,
            studies_url,
            destination: shown.as_str().trim_end_matches('/').to_string(),
        })
    }

    /// The configured DICOMweb base URL without credentials, as recorded in deliveries.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// Push the report of succeeded job `job_id`, retrying with backoff; the outcome of
    /// every attempt is stored. Never fails: problems end in a `failed` delivery.
    #[tracing::instrument(skip_all, fields(job_id = %job_id))]
    pub async fn deliver(
        self: Arc<Self>,
        db: Db,
        blobs: BlobStore,
        tenant: String,
        job_id: String,
    ) {
        if let Err(e) = db.insert_delivery(&job_id, &self.destination).await {
            tracing::error!(error.message = %e, "cannot record the delivery");
            return;
        }
        let report = match db.job(&tenant, &job_id).await {
            Ok(Some(job)) => report_for_job(&db, &blobs, &job)
                .await
                .map_err(|e| e.to_string()),
            Ok(None) => Err("the job no longer exists".to_string()),
            Err(e) => Err(e.to_string()),
        };
        let outcome = match report {
            Ok(bytes) => self.attempts(&db, &job_id, &bytes).await,
            Err(e) => Err(format!("the report could not be built: {e}")),
        };
        let stored = match &outcome {
            Ok(()) => db.record_delivery_attempt(&job_id, DELIVERED, None).await,
            Err(e) => db.record_delivery_attempt(&job_id, FAILED, Some(e)).await,
        };
        metrics::counter!("radscore_deliveries_total",
            "outcome" => if outcome.is_ok() { DELIVERED } else { FAILED })
        .increment(1);
        match (outcome, stored) {
            (_, Err(e)) => tracing::error!(error.message = %e, "cannot record the delivery"),
            (Ok(()), _) => tracing::info!("report delivered"),
            (Err(e), _) => tracing::warn!(error.message = %e, "report delivery failed"),
        }
    }

    /// Attempt until one succeeds, a failure is permanent or attempts run out. Each failed
    /// attempt that is retried is recorded here; the last one by the caller.
    async fn attempts(&self, db: &Db, job_id: &str, report: &[u8]) -> Result<(), String> {
        let max = self.config.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let error = match self.store_once(report).await {
                Ok(()) => return Ok(()),
                Err(e) if e.transient && attempt < max => e,
                Err(e) => return Err(e.message),
            };
            tracing::warn!(attempt, error.message = %error.message, "delivery attempt failed; retrying");
            if let Err(e) = db
                .record_delivery_attempt(job_id, PENDING, Some(&error.message))
                .await
            {
                tracing::warn!(error.message = %e, "cannot record a delivery attempt");
            }
            tokio::time::sleep(self.config.retry.delay(attempt)).await;
            attempt += 1;
        }
    }

    /// One STOW-RS request with the report as the only part.
    async fn store_once(&self, report: &[u8]) -> Result<(), AttemptError> {
        // A fresh random boundary: 122 random bits do not occur in a report by chance.
        let boundary = format!("radscore-{}", uuid::Uuid::new_v4().simple());
        let mut request = self
            .client
            .post(&self.studies_url)
            .header(
                CONTENT_TYPE,
                format!("multipart/related; type=\"{DICOM_MEDIA_TYPE}\"; boundary={boundary}"),
            )
            .header(ACCEPT, "application/dicom+json")
            .body(related_body(report, &boundary));
        if let Some(a) = &self.config.authorization {
            request = request.header(AUTHORIZATION, a);
        }
        let response = request.send().await.map_err(|e| AttemptError {
            // Without the URL: it may carry credentials in its user-info part.
            message: format!("the destination could not be reached: {}", e.without_url()),
            transient: true,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // Only the status: a destination's error body may echo attributes of the report.
        Err(AttemptError {
            message: format!("the destination answered {status}"),
            transient: status.is_server_error()
                || status == StatusCode::REQUEST_TIMEOUT
                || status == StatusCode::TOO_MANY_REQUESTS,
        })
    }
}

/// A multipart/related body with one `application/dicom` part (RFC 2387, PS3.18 8.6.1.2).
fn related_body(report: &[u8], boundary: &str) -> Vec<u8> {
    let head = format!("--{boundary}\r\nContent-Type: {DICOM_MEDIA_TYPE}\r\n\r\n");
    let tail = format!("\r\n--{boundary}--\r\n");
    let mut body = Vec::with_capacity(head.len() + report.len() + tail.len());
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(report);
    body.extend_from_slice(tail.as_bytes());
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> PushConfig {
        PushConfig {
            url: url.into(),
            authorization: Some("Bearer secret".into()),
            max_attempts: 3,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn destination_never_shows_credentials() {
        let p = Pusher::new(config("https://user:pw@pacs.example/dicom-web/")).unwrap();
        assert_eq!(p.destination(), "https://pacs.example/dicom-web");
        assert_eq!(
            p.studies_url,
            "https://user:pw@pacs.example/dicom-web/studies"
        );
        assert!(!format!("{:?}", p.config).contains("secret"));
    }

    #[test]
    fn unusable_settings_are_refused() {
        assert!(Pusher::new(config("not a url")).is_err());
        assert!(Pusher::new(config("ftp://pacs.example/")).is_err());
        let mut bad = config("http://127.0.0.1:1/");
        bad.authorization = Some("line\nbreak".into());
        assert!(Pusher::new(bad).is_err());
    }

    #[test]
    fn related_body_frames_the_report() {
        let body = related_body(b"DICM", "b1");
        assert_eq!(
            body,
            b"--b1\r\nContent-Type: application/dicom\r\n\r\nDICM\r\n--b1--\r\n"
        );
    }
}
