//! Placeholder: config.
