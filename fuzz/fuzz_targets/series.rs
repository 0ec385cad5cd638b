//! Series assembly from one or several DICOM files (joined by `FILE_SEPARATOR`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use radscore::dicom::assemble_series;
use radscore_fuzz::split_files;

fuzz_target!(|data: &[u8]| {
    let _ = assemble_series(&split_files(data));
});
