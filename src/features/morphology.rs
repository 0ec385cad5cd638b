//! Placeholder: being written (features helper).
use super::{Feature, FeatureError, FamilySettings, Roi};

/// Compute the family.
pub fn compute(_roi: &Roi, _s: &FamilySettings) -> Result<Vec<Feature>, FeatureError> {
    todo!()
}

/// Names produced by [`compute`].
pub fn names(_s: &FamilySettings) -> Vec<String> {
    Vec::new()
}
