//! Placeholder: store.
