//! Placeholder: api.
