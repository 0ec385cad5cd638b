//! The acquisition attributes of a CT series that a model's training envelope is checked
//! against (see [`crate::model::AcquisitionEnvelope`]): SliceThickness (0018,0050),
//! ConvolutionKernel (0018,1210) and KVP (0018,0060), PS3.3 C.8.2.1 (CT Image module), read
//! from the first instance that parses; the in-plane pixel spacing comes from the assembled
//! grid.

use dicom_dictionary_std::tags;
use serde::{Deserialize, Serialize};

use super::{Attr, InputFile, opt_str, parse_file};

const SLICE_THICKNESS: Attr = (tags::SLICE_THICKNESS, "SliceThickness");
const CONVOLUTION_KERNEL: Attr = (tags::CONVOLUTION_KERNEL, "ConvolutionKernel");
const KVP: Attr = (tags::KVP, "KVP");

/// What a series says about how it was acquired; `None` where it says nothing readable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Acquisition {
    /// Nominal reconstructed slice thickness, mm.
    pub slice_thickness_mm: Option<f64>,
    /// In-plane pixel spacing (row, column), mm.
    pub pixel_spacing_mm: Option<[f64; 2]>,
    /// Reconstruction kernel name (all values joined with `\`).
    pub convolution_kernel: Option<String>,
    /// Peak kilovoltage of the X-ray generator.
    pub kvp: Option<f64>,
}

/// Read the attributes from the first instance in `files` that parses; `spacing_mm` is the
/// assembled grid's `[z, y, x]` spacing.
// LIMITATION: enhanced CT keeps these in functional groups (CT Acquisition Details,
// CT Reconstruction macros), which are not read: they come out `None` there.
pub fn read_acquisition(files: &[InputFile], spacing_mm: [f64; 3]) -> Acquisition {
    let mut acquisition = Acquisition {
        pixel_spacing_mm: Some([spacing_mm[1], spacing_mm[2]]),
        ..Acquisition::default()
    };
    let Some((name, obj)) = files.iter().find_map(|f| {
        parse_file(&f.name, &f.bytes)
            .ok()
            .map(|o| (f.name.as_str(), o))
    }) else {
        return acquisition;
    };
    let number = |attr: Attr| -> Option<f64> {
        let text = opt_str(&obj, name, attr).ok().flatten()?;
        text.parse::<f64>().ok().filter(|v| v.is_finite())
    };
    acquisition.slice_thickness_mm = number(SLICE_THICKNESS);
    acquisition.kvp = number(KVP);
    acquisition.convolution_kernel = opt_str(&obj, name, CONVOLUTION_KERNEL).ok().flatten();
    acquisition
}
