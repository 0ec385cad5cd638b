//! PyRadiomics compatibility: parameter files mapped onto radscore settings
//! ([`params`], image types in [`image_types`]) and PyRadiomics-style feature names beside the IBSI tags ([`names`]).
//!
//! radscore computes IBSI features; this module only translates settings in and names
//! out. Where PyRadiomics' definitions differ from IBSI, the translation picks the
//! PyRadiomics variant radscore can compute (e.g. bin edges at multiples of `binWidth`,
//! `voxelArrayShift` energies) and `docs/pyradiomics-parity.md` lists what still differs.

pub mod image_types;
pub mod names;
pub mod params;

pub use names::{Selection, to_pyradiomics};
pub use params::{ParamsError, PyRadiomicsParams, Unsupported};
