//! HTTP integration tests: a real server on an ephemeral loopback port, a fresh SQLite
//! database and blob directory per test, the bundled model through ONNX Runtime, and real
//! HTTP clients. Reference data comes from `../shared/data` (or `$RADSCORE_SHARED_DATA`).

#[path = "../common/pg.rs"]
mod pg;

mod audit;
mod auth;
mod bad_input;
mod batches;
mod crash;
mod deletion;
mod deployment_doc;
mod events;
mod helpers;
mod ingestion;
mod job_settings;
mod limits;
mod metrics;
mod models;
#[path = "../support/moto.rs"]
mod moto;
mod oidc;
mod openapi;
mod phi;
mod process;
mod push;
mod queue;
mod report;
mod robustness;
mod s3;
mod segmentation_formats;
mod stow;
mod tenancy;
mod walkthrough;
mod workitems;
