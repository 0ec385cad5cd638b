#!/usr/bin/env python3
"""Write a NIfTI image as a classic single-frame CT DICOM series (radscore test helper).

    nifti_to_dicom.py --image phantom.nii.gz --out-dir DIR [--patient-name NAME] [--patient-id ID]

Used for the IBSI digital phantom, which upstream ships only as NIfTI (its DICOM copy has a
wrong 1 mm spacing). Geometry comes from the NIfTI affine (RAS) converted to DICOM LPS;
values are stored as int16 with RescaleSlope 1 / RescaleIntercept 0.
"""
import argparse
import pathlib

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--patient-name", default="PHANTOM^DIGITAL")
    ap.add_argument("--patient-id", default="PHANTOM")
    args = ap.parse_args()

    img = nib.load(args.image)
    data = np.asarray(img.dataobj)  # (x, y, z)
    ras = img.affine
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ras
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    row_cos = lps[:3, 0] / spacing[0]  # direction of increasing column index (i)
    col_cos = lps[:3, 1] / spacing[1]  # direction of increasing row index (j)
    out = pathlib.Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for k in range(data.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(out / f"slice{k:03d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.PatientName = args.patient_name
        ds.PatientID = args.patient_id
        ds.PatientBirthDate = "19700101"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.InstanceNumber = k + 1
        pos = lps[:3, :3] @ np.array([0.0, 0.0, k]) + lps[:3, 3]
        ds.ImagePositionPatient = [float(v) for v in pos]
        ds.ImageOrientationPatient = [float(v) for v in (*row_cos, *col_cos)]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]  # row spacing, column spacing
        ds.SliceThickness = float(spacing[2])
        ds.Rows, ds.Columns = data.shape[1], data.shape[0]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        plane = np.ascontiguousarray(data[:, :, k].T.astype(np.int16))  # rows = j, columns = i
        ds.PixelData = plane.tobytes()
        ds.save_as(ds.filename, enforce_file_format=True)


if __name__ == "__main__":
    main()
