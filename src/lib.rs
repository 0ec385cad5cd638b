//! radscore: imaging-based treatment-response prediction.
//!
//! A client uploads a CT series and a segmentation of its target lesions; a worker pool
//! computes IBSI 1 radiomics features per lesion with location-aware settings and scores
//! each lesion with an ONNX model.
//!
//! # Module map (dependencies point downwards only)
//!
//! | module | owns |
//! |---|---|
//! | [`api`] | axum router, request extractors, `application/problem+json` errors |
//! | [`jobs`] | the job queue on top of [`store`], the tokio worker pool, progress, upload deletion and retention |
//! | [`pipeline`] | one extraction run: volume + lesion masks + settings → features → score |
//! | [`filtered`] | features of filtered images (LoG, wavelet, …) for one lesion, on its window |
//! | [`robustness`] | test–retest perturbations, per-location ICC(3,1) of every feature, heat map |
//! | [`model`] | ONNX Runtime session, model manifest, compatibility checks, scoring |
//! | [`features`] | extraction settings, one IBSI 1 feature family per file |
//! | [`image`] | voxel grids, volumes, lesion masks, discretisation, NIfTI and NRRD label maps |
//! | [`dicom`] | DICOM series assembly, DICOM SEG decoding and RTSTRUCT rasterisation (dicom-rs) |
//! | [`demo`] | deterministic synthetic CT cases (DICOM series, NIfTI labels) for demos and training |
//! | [`store`] | sqlx database (SQLite by default, or PostgreSQL) and the blob store (object_store) |
//! | [`compliance`] | IBSI 1 self-check on the bundled digital phantom |
//! | [`sr`] | job results as DICOM SR measurement reports (TID 1500) |
//! | [`pyradiomics`] | PyRadiomics parameter files → settings, PyRadiomics feature names |
//! | [`batch`] | offline output layouts (IBSI / PyRadiomics columns) and resumable manifest runs |
//! | [`benchmark`] | the extraction benchmark: a job's path from stored series to features, timed, with peak memory |
//! | [`app`], [`config`], [`telemetry`] | wiring, process configuration, tracing and metrics |
//!
//! `api → jobs → pipeline → filtered → features/model → image → dicom`; `pyradiomics → features`;
//! `robustness → batch, pipeline`; `store` is used by `api`
//! and `jobs` only.

pub mod api;
pub mod app;
pub mod batch;
pub mod benchmark;
pub mod compliance;
pub mod config;
pub mod demo;
pub mod dicom;
pub mod features;
pub mod filtered;
pub mod image;
pub mod jobs;
pub mod model;
pub mod pipeline;
pub mod pyradiomics;
pub mod robustness;
pub mod sr;
pub mod store;
pub mod telemetry;
