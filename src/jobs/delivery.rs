//! Pushing a succeeded job's DICOM SR report to a DICOMweb destination with STOW-RS
//! (PS3.18 10.5: `POST {base}/studies`, `multipart/related; type="application/dicom"`),
//! with retries and backoff, and its delivery status in the job document.
//!
//! The destination is the tenant's own (set by an admin: `radscore tenants set-push` or
//! `PUT /v1/tenant/push`), else the process default (`RADSCORE_DICOMWEB_PUSH_URL`).
//!
//! A delivery is recorded before the first attempt (`pending`), every attempt is counted
//! with its error, and it ends `delivered` or `failed`. The result itself stays in the
//! database whatever happens to the delivery (`GET /v1/jobs/{id}/result(.dcm)`).
//!
//! A process owns the deliveries it works on through a lease (renewed before each
//! attempt); a delivery cut off by a process exit is left `pending` with a lapsing lease,
//! and the worker's periodic sweep ([`Pusher::resume_orphans`], also at startup) takes it
//! up again once the lease has ended, with the attempts it has left (the count is kept).
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
use crate::store::{BlobStore, Db, StoreError, now_ms};

/// Delivery states as stored.
pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const FAILED: &str = "failed";

/// Time a delivery stays owned beyond its current attempt (request time limit plus the
/// backoff before it): a process that dies leaves its deliveries to others after this.
const DELIVERY_LEASE_MARGIN: Duration = Duration::from_secs(10);

/// Most orphaned deliveries resumed per sweep.
const RESUME_BATCH: i64 = 100;

/// How and where reports are pushed: the process default destination (environment), and
/// the retry policy every destination shares.
#[derive(Clone)]
pub struct PushConfig {
    /// Default DICOMweb base URL (the STOW-RS resource is `{url}/studies`), for tenants
    /// without their own; `None`: those tenants' reports are not pushed.
    pub url: Option<String>,
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
            .field("url", &self.url.as_ref().map(|u| shown_url(u)))
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

/// One DICOMweb destination: its STOW-RS URL and credentials.
#[derive(Clone)]
pub struct Destination {
    studies_url: String,
    authorization: Option<String>,
    /// The base URL without user-info (credentials), as shown in job documents.
    shown: String,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl Destination {
    /// A destination at DICOMweb base `url`, sending `authorization` with each request.
    ///
    /// # Errors
    /// A URL that is not http(s), or an authorization that is not a header value.
    pub fn new(url: &str, authorization: Option<&str>) -> Result<Self, String> {
        let base = url.trim_end_matches('/');
        let parsed =
            reqwest::Url::parse(base).map_err(|e| format!("the push URL is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("the push URL must be an http or https URL".into());
        }
        if let Some(a) = authorization {
            HeaderValue::from_str(a)
                .map_err(|_| "the push Authorization is not a valid header value".to_string())?;
        }
        Ok(Destination {
            studies_url: format!("{base}/studies"),
            authorization: authorization.map(str::to_string),
            shown: shown_url(base),
        })
    }

    /// The base URL without credentials, as recorded in deliveries.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// `url` without user-info (a URL that does not parse is shown as a placeholder).
fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            // Cannot fail for http(s) URLs, which have a host.
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.as_str().trim_end_matches('/').to_string()
        }
        Err(_) => "(not a URL)".to_string(),
    }
}

/// Where a tenant's reports go.
#[derive(Debug, Clone)]
pub enum Target {
    /// Nowhere: neither the tenant nor the process has a destination.
    None,
    Push(Destination),
    /// A stored destination that is no longer usable (shown URL, why).
    Unusable(String, String),
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
    /// The process default (`RADSCORE_DICOMWEB_PUSH_URL`), for tenants without their own.
    default: Option<Destination>,
}

impl Pusher {
    /// A client for `config`.
    ///
    /// # Errors
    /// An unusable default URL or authorization value, or an HTTP client that cannot be
    /// built.
    pub fn new(config: PushConfig) -> Result<Self, String> {
        let default = match &config.url {
            Some(url) => Some(
                Destination::new(url, config.authorization.as_deref())
                    .map_err(|e| format!("RADSCORE_DICOMWEB_PUSH_URL/_AUTHORIZATION: {e}"))?,
            ),
            None => None,
        };
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| format!("cannot build the DICOMweb client: {e}"))?;
        Ok(Pusher {
            client,
            config,
            default,
        })
    }

    /// Where `tenant`'s reports go: its own destination (set by an admin), else the
    /// process default.
    ///
    /// # Errors
    /// The tenant settings cannot be read.
    pub async fn target(&self, db: &Db, tenant: &str) -> Result<Target, StoreError> {
        let settings = db.tenant_settings(tenant).await?;
        let own = settings.and_then(|s| s.push_url.map(|u| (u, s.push_authorization)));
        Ok(match (own, &self.default) {
            (Some((url, auth)), _) => match Destination::new(&url, auth.as_deref()) {
                Ok(d) => Target::Push(d),
                Err(e) => Target::Unusable(shown_url(&url), e),
            },
            (None, Some(d)) => Target::Push(d.clone()),
            (None, None) => Target::None,
        })
    }

    /// Record a pending delivery of `job_id` when `tenant` has a destination (called
    /// before the job is marked succeeded, so whoever sees it succeeded sees the delivery).
    ///
    /// # Errors
    /// The store cannot be read or written.
    pub async fn prepare(&self, db: &Db, tenant: &str, job_id: &str) -> Result<(), StoreError> {
        match self.target(db, tenant).await? {
            Target::None => Ok(()),
            Target::Push(d) => db.insert_delivery(job_id, d.shown()).await,
            Target::Unusable(shown, _) => db.insert_delivery(job_id, &shown).await,
        }
    }

    /// Resume the pending deliveries nobody holds (cut off by a process exit); each runs
    /// in its own task. Returns how many were found.
    ///
    /// # Errors
    /// The store cannot be read.
    pub async fn resume_orphans(
        self: &Arc<Self>,
        db: &Db,
        blobs: &BlobStore,
    ) -> Result<usize, StoreError> {
        let orphans = db.orphaned_deliveries(now_ms(), RESUME_BATCH).await?;
        for (job_id, tenant) in &orphans {
            tracing::info!(job_id = %job_id, "resuming an interrupted report delivery");
            tokio::spawn(self.clone().deliver(
                db.clone(),
                blobs.clone(),
                tenant.clone(),
                job_id.clone(),
            ));
        }
        Ok(orphans.len())
    }

    /// Push the report of succeeded job `job_id`, retrying with backoff; the outcome of
    /// every attempt is stored. Does nothing when the job has no pending delivery or
    /// another process holds it. Never fails: problems end in a `failed` delivery.
    #[tracing::instrument(skip_all, fields(job_id = %job_id))]
    pub async fn deliver(
        self: Arc<Self>,
        db: Db,
        blobs: BlobStore,
        tenant: String,
        job_id: String,
    ) {
        match db
            .claim_delivery(&job_id, now_ms(), self.lease_until(Duration::ZERO))
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(error.message = %e, "cannot claim the delivery");
                return;
            }
        }
        let outcome = match self.target(&db, &tenant).await {
            Ok(Target::Push(destination)) => {
                self.build_and_send(&db, &blobs, &tenant, &job_id, &destination)
                    .await
            }
            Ok(Target::None) => Err("no push destination is configured any more".to_string()),
            Ok(Target::Unusable(_, e)) => Err(e),
            Err(e) => Err(format!("the push destination cannot be read: {e}")),
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

    /// The lease end for an attempt that starts after `wait`.
    fn lease_until(&self, wait: Duration) -> i64 {
        let span = wait + self.config.timeout + DELIVERY_LEASE_MARGIN;
        now_ms().saturating_add(i64::try_from(span.as_millis()).unwrap_or(i64::MAX))
    }

    /// Build the job's report and send it with retries.
    async fn build_and_send(
        &self,
        db: &Db,
        blobs: &BlobStore,
        tenant: &str,
        job_id: &str,
        destination: &Destination,
    ) -> Result<(), String> {
        let report = match db.job(tenant, job_id).await {
            Ok(Some(job)) => report_for_job(db, blobs, &job)
                .await
                .map_err(|e| format!("the report could not be built: {e}"))?,
            Ok(None) => return Err("the job no longer exists".to_string()),
            Err(e) => return Err(format!("the report could not be built: {e}")),
        };
        self.attempts(db, job_id, destination, &report).await
    }

    /// Attempt until one succeeds, a failure is permanent or attempts run out. Each failed
    /// attempt that is retried is recorded here; the last one by the caller.
    async fn attempts(
        &self,
        db: &Db,
        job_id: &str,
        destination: &Destination,
        report: &[u8],
    ) -> Result<(), String> {
        let max = self.config.max_attempts.max(1);
        // A resumed delivery goes on from the attempts made before it was cut off, so a
        // crash loop cannot retry a destination forever.
        let made = match db.delivery(job_id).await {
            Ok(Some(delivery)) => u32::try_from(delivery.attempts).unwrap_or(u32::MAX),
            Ok(None) => 0,
            Err(e) => return Err(format!("the delivery cannot be read: {e}")),
        };
        if made >= max {
            return Err(format!(
                "no attempt left: {made} of {max} were made before the delivery was interrupted"
            ));
        }
        let mut attempt = made + 1;
        loop {
            let error = match self.store_once(destination, report).await {
                Ok(()) => return Ok(()),
                Err(e) if e.transient && attempt < max => e,
                Err(e) => return Err(e.message),
            };
            tracing::warn!(attempt, error.message = %error.message, "delivery attempt failed; retrying");
            let delay = self.config.retry.delay(attempt);
            let renewed = db.renew_delivery(job_id, self.lease_until(delay)).await;
            let recorded = db
                .record_delivery_attempt(job_id, PENDING, Some(&error.message))
                .await;
            if let Err(e) = renewed.and(recorded.map(|_| ())) {
                tracing::warn!(error.message = %e, "cannot record a delivery attempt");
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One STOW-RS request with the report as the only part.
    async fn store_once(
        &self,
        destination: &Destination,
        report: &[u8],
    ) -> Result<(), AttemptError> {
        // A fresh random boundary: 122 random bits do not occur in a report by chance.
        let boundary = format!("radscore-{}", uuid::Uuid::new_v4().simple());
        let mut request = self
            .client
            .post(&destination.studies_url)
            .header(
                CONTENT_TYPE,
                format!("multipart/related; type=\"{DICOM_MEDIA_TYPE}\"; boundary={boundary}"),
            )
            .header(ACCEPT, "application/dicom+json")
            .body(related_body(report, &boundary));
        if let Some(a) = &destination.authorization {
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

    #[test]
    fn destination_never_shows_credentials() {
        let d =
            Destination::new("https://user:pw@pacs.example/dicom-web/", Some("Bearer x")).unwrap();
        assert_eq!(d.shown(), "https://pacs.example/dicom-web");
        assert_eq!(
            d.studies_url,
            "https://user:pw@pacs.example/dicom-web/studies"
        );
        assert!(!format!("{d:?}").contains("pw"));
        assert!(!format!("{d:?}").contains("Bearer"));
        let config = PushConfig {
            url: Some("https://user:pw@pacs.example/".into()),
            authorization: Some("Bearer secret".into()),
            max_attempts: 3,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(1),
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("secret") && !shown.contains("pw"),
            "{shown}"
        );
    }

    #[test]
    fn unusable_settings_are_refused() {
        assert!(Destination::new("not a url", None).is_err());
        assert!(Destination::new("ftp://pacs.example/", None).is_err());
        assert!(Destination::new("http://127.0.0.1:1/", Some("line\nbreak")).is_err());
    }

    #[test]
    fn related_body_frames_the_report() {
        let body = related_body(b"DICM", "b1");
        assert_eq!(
            body,
            b"--b1\r\nContent-Type: application/dicom\r\n\r\nDICM\r\n--b1--\r\n"
        );
    }

    /// A delivery cut off after two of its three attempts makes one more when resumed,
    /// not three: the count is kept across processes.
    #[tokio::test]
    async fn a_resumed_delivery_keeps_counting_its_attempts() {
        use crate::store::{NewJob, SegmentationRow, SeriesRow};
        use std::sync::atomic::{AtomicUsize, Ordering};

        let db = Db::connect("sqlite::memory:").await.unwrap();
        let series = SeriesRow {
            id: "s1".into(),
            tenant_id: "t".into(),
            series_uid: "1.2.3".into(),
            frame_of_reference_uid: None,
            instance_count: 1,
            geometry: "{}".into(),
            warnings: "[]".into(),
            blob_prefix: "series/s1".into(),
            created_at_ms: 1,
        };
        db.insert_series(&series).await.unwrap();
        let seg = SegmentationRow {
            id: "g1".into(),
            tenant_id: "t".into(),
            series_id: "s1".into(),
            format: "nifti".into(),
            file_name: None,
            blob_key: "segmentations/g1".into(),
            lesions: "[]".into(),
            created_at_ms: 2,
        };
        db.insert_segmentation(&seg).await.unwrap();
        let job = NewJob {
            id: "j1".into(),
            tenant_id: "t".into(),
            series_id: "s1".into(),
            segmentation_id: "g1".into(),
            request: "{}".into(),
            idempotency_key: None,
            kind: crate::store::JobKind::Extraction,
        };
        db.insert_job(&job).await.unwrap();
        db.insert_delivery("j1", "http://127.0.0.1").await.unwrap();
        for _ in 0..2 {
            db.record_delivery_attempt("j1", PENDING, Some("cut off"))
                .await
                .unwrap();
        }

        // A destination that answers every request 503 (transient), counting them.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let mut buf = vec![0_u8; 65536];
                let _ = socket.read(&mut buf).await;
                let answer = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\
                              connection: close\r\n\r\n";
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        let pusher = Pusher::new(PushConfig {
            url: None,
            authorization: None,
            max_attempts: 3,
            retry: RetryPolicy {
                base: Duration::from_millis(1),
                max: Duration::from_millis(1),
            },
            timeout: Duration::from_secs(5),
        })
        .unwrap();
        let destination = Destination::new(&format!("http://{address}"), None).unwrap();
        let outcome = pusher.attempts(&db, "j1", &destination, b"report").await;
        assert!(outcome.is_err());
        assert_eq!(hits.load(Ordering::SeqCst), 1, "one attempt was left");
        // `deliver` records the last attempt; resumed again, none is left.
        db.record_delivery_attempt("j1", PENDING, Some("503"))
            .await
            .unwrap();
        let outcome = pusher.attempts(&db, "j1", &destination, b"report").await;
        assert!(outcome.unwrap_err().contains("no attempt left"));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
}
