//! The STOW-RS body parser (multipart/related with boundary `radscore-fuzz`), then the
//! instance identification every part goes through.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use radscore::api::related::{RelatedLimits, read_parts_from_bytes};
use radscore_fuzz::STOW_CONTENT_TYPE;

fuzz_target!(|data: &[u8]| {
    let limits = RelatedLimits {
        max_body_bytes: 16 << 20,
        max_parts: 64,
    };
    if let Ok(parts) =
        read_parts_from_bytes(STOW_CONTENT_TYPE, Bytes::copy_from_slice(data), limits)
    {
        for part in parts {
            let _ = radscore::dicom::identify("part", &part.bytes);
        }
    }
});
