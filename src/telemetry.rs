//! Structured logging (tracing) and the Prometheus metrics recorder.
//!
//! Logs carry job ids and series UIDs only; patient attributes are never logged.

use std::sync::OnceLock;

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// The log filter when `RUST_LOG` is unset: `info`, except the `ort` crate at `warn`. At
/// `info` ONNX Runtime narrates every session it builds (some 70 lines of graph-optimiser
/// and thread-pool settings at each start) and notes that the ort crate was written for an
/// older runtime; radscore logs the library it loaded itself (`ONNX Runtime loaded`).
pub const DEFAULT_LOG_FILTER: &str = "info,ort=warn";

/// Install the tracing subscriber: JSON lines when `RADSCORE_LOG_FORMAT=json`, else compact
/// text; level from `RUST_LOG` (default [`DEFAULT_LOG_FILTER`]). Safe to call more than once.
pub fn init_tracing() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let json = std::env::var("RADSCORE_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}

/// Histogram buckets of every `*_seconds` metric: from a fast model inference (ms) to a
/// large multi-lesion job (minutes), roughly ×2–2.5 apart.
const DURATION_BUCKETS_S: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
];

/// The process-wide Prometheus recorder (installed on first use). Durations are exported
/// as Prometheus histograms (`_bucket`, `_sum`, `_count`), so replicas can be aggregated.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS_S)
                .expect("the duration bucket list is a non-empty constant");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed; the handle still renders.
            let _ = metrics::set_global_recorder(recorder);
            describe_metrics();
            handle
        })
        .clone()
}

/// `# HELP` text and units of every radscore metric.
fn describe_metrics() {
    metrics::describe_gauge!(
        "radscore_jobs",
        "Jobs in the database by status (read at scrape time; the same on every replica)"
    );
    metrics::describe_gauge!(
        "radscore_queue_depth",
        "Jobs waiting to be claimed (read at scrape time; the same on every replica)"
    );
    metrics::describe_counter!(
        "radscore_uploads_deleted_total",
        "Series and segmentations deleted by this process, by kind and reason (deleted: a \
         DELETE request or its series' deletion; retention: purged after the retention period)"
    );
    metrics::describe_counter!(
        "radscore_jobs_finished_total",
        "Jobs finished by this process, by final status"
    );
    metrics::describe_histogram!(
        "radscore_job_duration_seconds",
        Unit::Seconds,
        "Wall time of one job attempt on a worker, from claim to stored outcome"
    );
    metrics::describe_histogram!(
        "radscore_feature_extraction_seconds",
        Unit::Seconds,
        "Feature extraction time of one job (every lesion)"
    );
    metrics::describe_histogram!(
        "radscore_model_inference_seconds",
        Unit::Seconds,
        "ONNX model scoring time of one job (every lesion)"
    );
    metrics::describe_counter!(
        "radscore_dicom_header_cache_total",
        "Stored DICOM instances planned by this process, by whether their parsed header came \
         from the header cache (hit) or was read from the blob store (miss)"
    );
    metrics::describe_counter!(
        "radscore_upload_bytes_total",
        Unit::Bytes,
        "Bytes received in upload bodies, by kind (series, segmentation)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default filter keeps radscore's `info` lines and drops ONNX Runtime's `info`
    /// narration, but not its warnings.
    #[test]
    fn default_filter_quiets_onnx_runtime_info_only() {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(DEFAULT_LOG_FILTER))
            .with_ansi(false)
            .with_writer(move || SharedWriter(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "radscore::model::runtime", "radscore-info");
            tracing::info!(target: "ort::logging", "ort-info");
            tracing::warn!(target: "ort::logging", "ort-warn");
            tracing::debug!(target: "radscore", "radscore-debug");
        });
        let text = String::from_utf8(lines.lock().unwrap().clone()).unwrap();
        assert!(text.contains("radscore-info"), "{text}");
        assert!(text.contains("ort-warn"), "{text}");
        assert!(!text.contains("ort-info"), "{text}");
        assert!(!text.contains("radscore-debug"), "{text}");
    }

    struct SharedWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for SharedWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
