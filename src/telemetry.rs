//! Placeholder: telemetry.
