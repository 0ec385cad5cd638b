//! Placeholder: NIfTI label maps and volumes (dicom helper).
