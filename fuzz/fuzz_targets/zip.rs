//! Zip upload: `files_from_zip`, then series assembly of what it unpacked (as the API does).
#![no_main]

use libfuzzer_sys::fuzz_target;
use radscore::dicom::{assemble_series, files_from_zip};
use radscore_fuzz::LIMITS;

fuzz_target!(|data: &[u8]| {
    if let Ok(files) = files_from_zip(bytes::Bytes::copy_from_slice(data), &LIMITS) {
        let _ = assemble_series(&files);
    }
});
