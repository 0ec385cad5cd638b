//! NRRD label maps onto each seed grid (directly and through the format sniffer), and
//! NRRD image volumes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radscore::image::nrrd::{read_nrrd_labelmap, read_nrrd_volume};
use radscore::pipeline::read_segmentation;
use radscore_fuzz::grids;

fuzz_target!(|data: &[u8]| {
    let _ = read_nrrd_volume(data, "fuzz.nrrd");
    for grid in grids() {
        let _ = read_nrrd_labelmap(data, "fuzz.nrrd", &grid);
        let _ = read_segmentation(data, Some("fuzz.nrrd"), &grid, None);
    }
});
