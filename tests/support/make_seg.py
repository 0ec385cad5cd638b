#!/usr/bin/env python3
"""Build a DICOM Segmentation (highdicom) for a CT series from a NIfTI label map.

Test helper for radscore (dicom_ingest and the API integration tests).

    make_seg.py --series DIR --mask MASK.nii.gz --out SEG.dcm
        [--fractional] [--box Z0,Z1,Y0,Y1,X0,X1] [--shuffle-frames SEED]
        [--label N] [--extra-boxes N] [--frame-of-reference UID]
        [--referenced-series UID] [--extra-pixel-bytes N] [--transfer-syntax NAME]
        [--duplicate-position]

* Segment 1 ("GTV-1") is every non-zero voxel of the mask (with --label N: every voxel of
  value N), mapped onto the series through world coordinates (NIfTI RAS -> DICOM LPS), not
  through array order.
* --box adds segment 2 ("BOX"): the half-open index box [Z0,Z1) x [Y0,Y1) x [X0,X1) on the
  series grid (z = slices sorted by ImagePositionPatient along the normal, ascending). It
  may overlap segment 1.
* --fractional writes SegmentationType FRACTIONAL (8 bit, MaximumFractionalValue 255).
* --extra-boxes N adds N more segments ("BOX-1"...), 4 x 8 x 8 voxel boxes spread along
  the series (frames for only some slices; the first ones overlap segment 1).
* --frame-of-reference overrides the SEG's FrameOfReferenceUID (a fault case).
* --referenced-series overrides the SeriesInstanceUID in ReferencedSeriesSequence (a SEG
  that names another series than the one it is uploaded for: a fault case).
* --extra-pixel-bytes appends N zero bytes to Pixel Data, more than the frames need (a
  fault case; N even keeps the value length even).
* --transfer-syntax writes the SEG compressed: rle (RLE Lossless), j2k (JPEG 2000
  Lossless), jpegls (JPEG-LS Lossless), all encapsulated by highdicom (RLE and JPEG-LS
  only with --fractional: highdicom refuses them for BINARY), or deflate (Deflated
  Explicit VR Little Endian: the whole data set deflated by pydicom, pixel data native).
* --duplicate-position gives frame 2 the ImagePositionPatient of frame 1 (both segment 1):
  two frames of one segment on one plane (a fault case).
* --shuffle-frames permutes the frames (pixel data and per-frame functional groups
  together) with the given random seed, so readers cannot rely on frame order.

Exit status 0 on success; prints the number of frames and foreground voxels per segment.
"""
import argparse
import warnings
import pathlib
import sys

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
from pydicom.sr.coding import Code
from pydicom.uid import (DeflatedExplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless,
                         RLELossless)

# --transfer-syntax names of the compressed (encapsulated) transfer syntaxes.
ENCAPSULATED = {"rle": RLELossless, "j2k": JPEG2000Lossless, "jpegls": JPEGLSLossless}


def load_series(series_dir):
    datasets = [pydicom.dcmread(p, force=True) for p in sorted(pathlib.Path(series_dir).iterdir())
                if p.is_file() and not p.name.startswith(".")]
    iop = np.asarray(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    datasets.sort(key=lambda ds: float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal)))
    return datasets


def mask_on_series(datasets, mask_path):
    """Label array [z, y, x] on the series grid, by world-coordinate lookup into the mask."""
    img = nib.load(str(mask_path))
    labels = np.asarray(img.dataobj)
    inv = np.linalg.inv(img.affine)
    ds0 = datasets[0]
    rows, cols = int(ds0.Rows), int(ds0.Columns)
    row_spacing, col_spacing = (float(v) for v in ds0.PixelSpacing)
    iop = np.asarray(ds0.ImageOrientationPatient, float)
    r_idx, c_idx = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    out = np.zeros((len(datasets), rows, cols), dtype=labels.dtype)
    for k, ds in enumerate(datasets):
        ipp = np.asarray(ds.ImagePositionPatient, float)
        world = (ipp[None, None, :] + c_idx[..., None] * col_spacing * iop[None, None, :3]
                 + r_idx[..., None] * row_spacing * iop[None, None, 3:])
        ras = world * np.array([-1.0, -1.0, 1.0])
        ijk = np.einsum("ab,rcb->rca", inv[:3, :3], ras) + inv[:3, 3]
        nearest = np.rint(ijk)
        if np.abs(ijk - nearest).max() > 0.1:
            sys.exit(f"mask voxels do not coincide with series voxels on slice {k}")
        nearest = nearest.astype(int)
        inside = np.all((nearest >= 0) & (nearest < np.array(labels.shape[:3])), axis=-1)
        i, j, kk = (np.where(inside, nearest[..., a], 0) for a in range(3))
        out[k] = np.where(inside, labels[i, j, kk], 0)
    return out


def description(number, label):
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=label,
        segmented_property_category=Code("49755003", "SCT", "Morphologically Altered Structure"),
        segmented_property_type=Code("108369006", "SCT", "Neoplasm"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )


def shuffle_frames(seg, seed):
    """Permute frames and their per-frame functional groups together."""
    n = int(seg.NumberOfFrames)
    rows, cols = int(seg.Rows), int(seg.Columns)
    if int(seg.BitsAllocated) == 1:
        bits = np.unpackbits(np.frombuffer(seg.PixelData, np.uint8), bitorder="little")
        frames = bits[: n * rows * cols].reshape(n, rows * cols)
    else:
        frames = np.frombuffer(seg.PixelData, np.uint8)[: n * rows * cols].reshape(n, rows * cols)
    order = np.random.default_rng(seed).permutation(n)
    frames = frames[order]
    items = list(seg.PerFrameFunctionalGroupsSequence)
    seg.PerFrameFunctionalGroupsSequence = [items[i] for i in order]
    if int(seg.BitsAllocated) == 1:
        packed = np.packbits(frames.reshape(-1), bitorder="little").tobytes()
    else:
        packed = frames.astype(np.uint8).tobytes()
    if len(packed) % 2:
        packed += b"\0"
    seg.PixelData = packed
    return seg


def main():
    # The phantom's anonymised PatientName "PAT1" has one component; highdicom warns.
    warnings.filterwarnings("ignore", message=".*person name.*")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", required=True)
    ap.add_argument("--mask", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--fractional", action="store_true")
    ap.add_argument("--box")
    ap.add_argument("--shuffle-frames", type=int)
    ap.add_argument("--label", type=int)
    ap.add_argument("--extra-boxes", type=int, default=0)
    ap.add_argument("--frame-of-reference")
    ap.add_argument("--referenced-series")
    ap.add_argument("--extra-pixel-bytes", type=int, default=0)
    ap.add_argument("--transfer-syntax", choices=sorted(ENCAPSULATED) + ["deflate"])
    ap.add_argument("--duplicate-position", action="store_true")
    args = ap.parse_args()

    datasets = load_series(args.series)
    labels = mask_on_series(datasets, args.mask)
    seg1 = labels == args.label if args.label is not None else labels != 0
    planes = [seg1]
    descriptions = [description(1, "GTV-1")]
    for n in range(args.extra_boxes):
        box = np.zeros_like(seg1)
        z0 = 20 + 8 * n
        box[z0:z0 + 4, 60 + 4 * n:68 + 4 * n, 60:68] = True
        planes.append(box)
        descriptions.append(description(len(planes), f"BOX-{n + 1}"))
    if args.box:
        z0, z1, y0, y1, x0, x1 = (int(v) for v in args.box.split(","))
        box = np.zeros_like(seg1)
        box[z0:z1, y0:y1, x0:x1] = True
        planes.append(box)
        descriptions.append(description(2, "BOX"))
    pixel_array = np.stack(planes, axis=-1).astype(np.uint8)
    if args.fractional:
        pixel_array = pixel_array.astype(np.float32)
        seg_type = hd.seg.SegmentationTypeValues.FRACTIONAL
    else:
        seg_type = hd.seg.SegmentationTypeValues.BINARY

    compression = {}
    if args.transfer_syntax in ENCAPSULATED:
        compression["transfer_syntax_uid"] = ENCAPSULATED[args.transfer_syntax]
    seg = hd.seg.Segmentation(
        **compression,
        source_images=datasets,
        pixel_array=pixel_array,
        segmentation_type=seg_type,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="radscore tests",
        manufacturer_model_name="make_seg.py",
        software_versions="1",
        device_serial_number="1",
    )
    if args.shuffle_frames is not None:
        seg = shuffle_frames(seg, args.shuffle_frames)
    if args.frame_of_reference:
        seg.FrameOfReferenceUID = args.frame_of_reference
    if args.referenced_series:
        seg.ReferencedSeriesSequence[0].SeriesInstanceUID = args.referenced_series
    if args.duplicate_position:
        groups = seg.PerFrameFunctionalGroupsSequence
        shared = seg.SharedFunctionalGroupsSequence[0]
        segment = [(g if "SegmentIdentificationSequence" in g else shared)
                   .SegmentIdentificationSequence[0].ReferencedSegmentNumber for g in groups[:2]]
        if segment != [1, 1]:
            sys.exit(f"--duplicate-position: frames 1 and 2 belong to segments {segment}")
        position = groups[0].PlanePositionSequence[0].ImagePositionPatient
        groups[1].PlanePositionSequence[0].ImagePositionPatient = list(position)
    if args.extra_pixel_bytes:
        seg.PixelData = bytes(seg.PixelData) + b"\0" * args.extra_pixel_bytes
    if args.transfer_syntax == "deflate":
        seg.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        seg.save_as(args.out, enforce_file_format=True)
    else:
        seg.save_as(args.out)
    counts = ", ".join(f"segment {i + 1}: {int(p.sum())}" for i, p in enumerate(planes))
    print(f"frames: {int(seg.NumberOfFrames)}; {counts}")


if __name__ == "__main__":
    main()
