//! Placeholder: DICOM series assembly and SEG (dicom helper).
