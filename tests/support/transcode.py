"""Re-encode a classic CT series into another transfer syntax, as an independent reference.

    transcode.py --series DIR --out DIR --syntax NAME [--limit N]

Writes the first N files (in file-name order) of the series into --out, re-encoded:

  implicit, explicit, deflated      uncompressed encodings (pydicom writer)
  rle                               RLE Lossless (pydicom encoder, pylibjpeg-rle)
  j2k-lossless, j2k-lossy           JPEG 2000 (pydicom encoder, pylibjpeg-openjpeg)
  jpeg-lossless-sv1, jpeg-lossless  JPEG Lossless processes 14 SV1 and 14 (imagecodecs)
  jpeg-ls                           JPEG-LS Lossless (pydicom encoder, pyjpegls)
  explicit-8bit, jpeg-baseline-8bit the series requantised to 8 bit (slope 16), then
                                    uncompressed or JPEG Baseline (imagecodecs)

and `reference.f32`: the HU that pydicom decodes from the written files (with the
modality LUT), as little-endian float32 in [slice, row, column] order, slices sorted by
ImagePositionPatient projected on the slice normal. The Rust tests compare their own
decode with it.
"""

import argparse
import pathlib

import imagecodecs
import numpy as np
import pydicom
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_modality_lut
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLossless,
    JPEGLSLossless,
    RLELossless,
)

# 8-bit requantisation: stored = (HU - intercept) / slope, so 255 covers −1000 … 3080 HU.
EIGHT_BIT_SLOPE = 16.0
EIGHT_BIT_INTERCEPT = -1000.0
# Quality of the lossy encodings: JPEG quality 90 and a JPEG 2000 compression ratio of 10.
JPEG_QUALITY = 90
J2K_COMPRESSION_RATIO = 10


def to_8bit(ds):
    hu = apply_modality_lut(ds.pixel_array, ds)
    stored = np.clip(np.rint((hu - EIGHT_BIT_INTERCEPT) / EIGHT_BIT_SLOPE), 0, 255)
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.RescaleSlope = EIGHT_BIT_SLOPE
    ds.RescaleIntercept = EIGHT_BIT_INTERCEPT
    ds.PixelData = stored.astype(np.uint8).tobytes()
    ds["PixelData"].VR = "OB"
    return stored.astype(np.uint8)


def encapsulated(ds, frame_bytes, uid):
    ds.PixelData = encapsulate([frame_bytes])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = uid


def transcode(ds, syntax):
    if syntax == "implicit":
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    elif syntax == "explicit":
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    elif syntax == "deflated":
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    elif syntax == "rle":
        ds.compress(RLELossless)
    elif syntax == "j2k-lossless":
        ds.compress(JPEG2000Lossless)
    elif syntax == "j2k-lossy":
        ds.compress(JPEG2000, j2k_cr=[J2K_COMPRESSION_RATIO])
    elif syntax == "jpeg-ls":
        ds.compress(JPEGLSLossless)
    elif syntax in ("jpeg-lossless-sv1", "jpeg-lossless"):
        # SV1 fixes predictor 1 (PS3.5 A.4.2); process 14 allows any, so use 6.
        predictor = 1 if syntax == "jpeg-lossless-sv1" else 6
        uid = JPEGLosslessSV1 if syntax == "jpeg-lossless-sv1" else JPEGLossless
        pixels = ds.pixel_array
        frame = imagecodecs.jpeg8_encode(
            pixels, lossless=True, predictor=predictor, bitspersample=int(ds.BitsStored)
        )
        encapsulated(ds, frame, uid)
    elif syntax == "explicit-8bit":
        to_8bit(ds)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    elif syntax == "jpeg-baseline-8bit":
        stored = to_8bit(ds)
        frame = imagecodecs.jpeg8_encode(stored, level=JPEG_QUALITY)
        encapsulated(ds, frame, JPEGBaseline8Bit)
    else:
        raise SystemExit(f"unknown syntax {syntax}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--syntax", required=True)
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()

    files = sorted(pathlib.Path(args.series).glob("*.dcm"))
    if args.limit:
        files = files[: args.limit]
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in files:
        ds = pydicom.dcmread(path)
        transcode(ds, args.syntax)
        target = out / path.name
        ds.save_as(target, enforce_file_format=True)
        written.append(target)

    slices = []
    for path in written:
        ds = pydicom.dcmread(path)
        row, col = np.array(ds.ImageOrientationPatient[:3]), np.array(ds.ImageOrientationPatient[3:])
        position = float(np.dot(np.array(ds.ImagePositionPatient, dtype=float), np.cross(row, col)))
        hu = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
        slices.append((position, hu))
    slices.sort(key=lambda s: s[0])
    np.stack([s[1] for s in slices]).astype("<f4").tofile(out / "reference.f32")


if __name__ == "__main__":
    main()
