//! Voxel grid geometry and the one geometry tolerance used across radscore.
//!
//! See the conventions in [`crate::image`]: axes `[z, y, x]`, world coordinates LPS mm.

use serde::Serialize;

/// Geometry tolerance, as a fraction of the voxel spacing along the axis concerned.
///
/// Every geometry check (mask grid vs series grid, slice-spacing uniformity, in-plane
/// orientation) accepts a deviation up to `GEOMETRY_TOLERANCE_FRACTION × spacing`. A tenth
/// of a voxel passes converter rounding (DICOM DS values carry at most 16 characters, NIfTI
/// stores `f32` affines) and refuses any real misregistration, which is at least a
/// sizeable fraction of a voxel. Direction cosines are compared with the same number,
/// read as a fraction of a unit vector.
pub const GEOMETRY_TOLERANCE_FRACTION: f64 = 0.1;

/// Geometry of a regular voxel grid in patient space.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Grid {
    /// Number of voxels along `[z, y, x]`.
    pub shape_vox: [usize; 3],
    /// Centre-to-centre voxel spacing along `[z, y, x]`, millimetres.
    pub spacing_mm: [f64; 3],
    /// LPS position `(x, y, z)` of the centre of voxel `[0, 0, 0]`, millimetres.
    pub origin_mm: [f64; 3],
    /// `direction[a]`: LPS unit vector of array axis `a` (`[z, y, x]` order).
    pub direction: [[f64; 3]; 3],
}

/// How a grid differs from a reference grid, for a precise 422 message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GridMismatch {
    #[error("dimensions differ: expected {expected:?} voxels [z, y, x], found {found:?}")]
    Shape {
        expected: [usize; 3],
        found: [usize; 3],
    },
    #[error(
        "voxel spacing differs on axis {axis}: expected {expected_mm:.4} mm, found {found_mm:.4} mm"
    )]
    Spacing {
        axis: &'static str,
        expected_mm: f64,
        found_mm: f64,
    },
    #[error("orientation differs on axis {axis}: expected direction {expected:?}, found {found:?}")]
    Direction {
        axis: &'static str,
        expected: [f64; 3],
        found: [f64; 3],
    },
    #[error(
        "origin differs by {offset_mm:.3} mm along axis {axis} (tolerance {tolerance_mm:.3} mm)"
    )]
    Origin {
        axis: &'static str,
        offset_mm: f64,
        tolerance_mm: f64,
    },
}

/// Names of the array axes in `[z, y, x]` order, for messages.
pub const AXIS_NAMES: [&str; 3] = ["z (slice)", "y (row)", "x (column)"];

impl Grid {
    /// World position (LPS mm) of a continuous index `[z, y, x]`.
    pub fn index_to_world(&self, index_zyx: [f64; 3]) -> [f64; 3] {
        let mut p = self.origin_mm;
        for (a, &index) in index_zyx.iter().enumerate() {
            for (c, pc) in p.iter_mut().enumerate() {
                *pc += index * self.spacing_mm[a] * self.direction[a][c];
            }
        }
        p
    }

    /// Continuous index `[z, y, x]` of a world position (LPS mm).
    ///
    /// Assumes orthonormal directions (checked at assembly), so the inverse is a projection.
    pub fn world_to_index(&self, world_mm: [f64; 3]) -> [f64; 3] {
        let d = [
            world_mm[0] - self.origin_mm[0],
            world_mm[1] - self.origin_mm[1],
            world_mm[2] - self.origin_mm[2],
        ];
        std::array::from_fn(|a| dot(d, self.direction[a]) / self.spacing_mm[a])
    }

    /// Total number of voxels.
    pub fn voxel_count(&self) -> usize {
        self.shape_vox.iter().product()
    }

    /// Check that `other` describes the same voxels as `self` within
    /// [`GEOMETRY_TOLERANCE_FRACTION`] of the spacing; the first difference found is returned.
    pub fn check_same_as(&self, other: &Grid) -> Result<(), GridMismatch> {
        if self.shape_vox != other.shape_vox {
            return Err(GridMismatch::Shape {
                expected: self.shape_vox,
                found: other.shape_vox,
            });
        }
        for (a, &axis) in AXIS_NAMES.iter().enumerate() {
            // Spacing error accumulates across the grid: compare the drift at the far edge.
            let tol = GEOMETRY_TOLERANCE_FRACTION * self.spacing_mm[a];
            let steps = self.shape_vox[a].saturating_sub(1).max(1) as f64;
            if (self.spacing_mm[a] - other.spacing_mm[a]).abs() * steps > tol {
                return Err(GridMismatch::Spacing {
                    axis,
                    expected_mm: self.spacing_mm[a],
                    found_mm: other.spacing_mm[a],
                });
            }
            let dev = (0..3)
                .map(|c| (self.direction[a][c] - other.direction[a][c]).abs())
                .fold(0.0, f64::max);
            if dev > GEOMETRY_TOLERANCE_FRACTION {
                return Err(GridMismatch::Direction {
                    axis,
                    expected: self.direction[a],
                    found: other.direction[a],
                });
            }
        }
        let offset = self.world_to_index(other.origin_mm);
        for (a, &axis) in AXIS_NAMES.iter().enumerate() {
            if offset[a].abs() > GEOMETRY_TOLERANCE_FRACTION {
                return Err(GridMismatch::Origin {
                    axis,
                    offset_mm: offset[a] * self.spacing_mm[a],
                    tolerance_mm: GEOMETRY_TOLERANCE_FRACTION * self.spacing_mm[a],
                });
            }
        }
        Ok(())
    }
}

/// Dot product of two 3-vectors.
pub fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Cross product of two 3-vectors.
pub fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axial(shape: [usize; 3]) -> Grid {
        Grid {
            shape_vox: shape,
            spacing_mm: [3.0, 0.977, 0.977],
            origin_mm: [-100.0, -50.0, 20.0],
            direction: [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]],
        }
    }

    #[test]
    fn world_index_round_trip() {
        let g = axial([10, 20, 30]);
        let w = g.index_to_world([2.0, 3.5, 7.0]);
        let i = g.world_to_index(w);
        for a in 0..3 {
            assert!((i[a] - [2.0, 3.5, 7.0][a]).abs() < 1e-12);
        }
    }

    #[test]
    fn rounding_noise_passes_and_half_voxel_shift_fails() {
        let g = axial([10, 20, 30]);
        let mut noisy = g.clone();
        noisy.origin_mm[0] += 0.01;
        assert_eq!(g.check_same_as(&noisy), Ok(()));
        let mut shifted = g.clone();
        shifted.origin_mm[2] += 1.5;
        assert!(matches!(
            g.check_same_as(&shifted),
            Err(GridMismatch::Origin { .. })
        ));
    }
}
