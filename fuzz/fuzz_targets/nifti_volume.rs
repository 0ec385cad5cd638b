//! NIfTI image volumes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radscore::image::labelmap::read_nifti_volume;

fuzz_target!(|data: &[u8]| {
    let _ = read_nifti_volume(data, "fuzz.nii");
});
