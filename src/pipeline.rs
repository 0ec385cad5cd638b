//! Placeholder: pipeline.
