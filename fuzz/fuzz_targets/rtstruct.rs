//! DICOM RT Structure Sets rasterised onto each seed grid, directly and through the
//! format sniffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radscore::dicom::read_rtstruct;
use radscore::pipeline::read_segmentation;
use radscore_fuzz::grids;

fuzz_target!(|data: &[u8]| {
    for grid in grids() {
        let _ = read_rtstruct(data, "fuzz.dcm", &grid, None);
        let _ = read_segmentation(data, Some("fuzz.dcm"), &grid, None);
    }
});
