//! Placeholder: intensity discretisation (features helper).
