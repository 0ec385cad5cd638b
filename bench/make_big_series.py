#!/usr/bin/env python3
"""Write a large synthetic CT series for the upload-memory benchmark (scripts/upload_memory.sh).

    make_big_series.py --out-dir DIR --slices N [--size 512] [--zip Z.zip] [--stow S.multipart]

N classic CT Image Storage files of SIZE x SIZE int16 (SIZE*SIZE*2 bytes of pixel data
each, about 0.5 MiB at 512: 2048 slices are 1 GiB), regular 1 mm spacing, HU noise so
the data is not trivially compressible. --zip also writes a stored (uncompressed) zip of
them; --stow a multipart/related body (boundary BENCH) with one application/dicom part per
file, for STOW-RS. Nothing identifying: PatientName "Benchmark^Synthetic".
"""
import argparse
import pathlib
import zipfile

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

BOUNDARY = "BENCH"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--slices", type=int, required=True)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--zip")
    ap.add_argument("--stow")
    args = ap.parse_args()
    out = pathlib.Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    paths = []
    for k in range(args.slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.PatientName = "Benchmark^Synthetic"
        ds.PatientID = "BENCH"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-128.0, -128.0, float(k)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.5, 0.5]
        ds.SliceThickness = 1.0
        ds.Rows = ds.Columns = args.size
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = 0
        ds.RescaleSlope = 1
        pixels = rng.integers(-1000, 1000, size=(args.size, args.size), dtype=np.int16)
        ds.PixelData = pixels.tobytes()
        path = out / f"CT_{k:05}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    if args.zip:
        with zipfile.ZipFile(args.zip, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for p in paths:
                z.write(p, p.name)
    if args.stow:
        with open(args.stow, "wb") as f:
            for p in paths:
                f.write(f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode())
                f.write(p.read_bytes())
                f.write(b"\r\n")
            f.write(f"--{BOUNDARY}--\r\n".encode())


if __name__ == "__main__":
    main()
