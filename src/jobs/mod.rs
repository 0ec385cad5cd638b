//! Placeholder: jobs.
