//! NIfTI label maps onto each seed grid, directly and through the format sniffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radscore::image::labelmap::read_nifti_labelmap;
use radscore::pipeline::read_segmentation;
use radscore_fuzz::grids;

fuzz_target!(|data: &[u8]| {
    for grid in grids() {
        let _ = read_nifti_labelmap(data, "fuzz.nii", &grid);
        let _ = read_segmentation(data, None, &grid, None);
    }
});
