#!/usr/bin/env python3
"""Write a synthetic CT series of one spherical lesion at given slice positions, with a
DICOM SEG and an RT Structure Set of the lesion drawn on those slices (radscore test helper).

    make_irregular_ct.py --out-dir DIR --positions Z0,Z1,... [--seg SEG.dcm] [--rtstruct RS.dcm]
        [--tilt-mm-per-slice D]

* Image: ROWS x COLUMNS axial pixels of PIXEL_MM, slice k at z = Z_k (mm), so a uniformly
  and an irregularly spaced series (same first and last z) sample the same object. HU are
  an analytic function of the patient position of each voxel centre: a linear background
  ramp, plus LESION_HU and a linear texture inside the sphere (CENTRE_MM, RADIUS_MM).
* --tilt-mm-per-slice moves slice k's origin k * D mm along x (a gantry tilt); the object
  stays where it is in patient space.
* --seg (highdicom, BINARY): the voxel centres inside the sphere on every acquired slice.
* --rtstruct: on every acquired slice that cuts the sphere, its circle as a CONTOUR_POINTS-gon.
  All three share one Study, FrameOfReferenceUID and (SEG, RTSTRUCT) reference the series.

Prints the number of lesion voxel centres on the acquired slices.
"""
import argparse
import pathlib
import sys
import warnings

import highdicom as hd
import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.sr.coding import Code
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from make_rtstruct import contour, structure_set  # noqa: E402

ROWS, COLUMNS = 64, 64
PIXEL_MM = 0.8
CENTRE_MM = np.array([25.3, 24.9, 20.3])
RADIUS_MM = 10.0
LESION_HU = 120.0
CONTOUR_POINTS = 90


def hu(x, y, z):
    """The analytic image: background ramp, lesion step with a linear texture."""
    background = -80.0 + 0.5 * x + 0.4 * y + 1.0 * z
    inside = inside_sphere(x, y, z)
    return background + inside * (LESION_HU + 2.0 * (x - CENTRE_MM[0]))


def inside_sphere(x, y, z):
    d2 = (x - CENTRE_MM[0]) ** 2 + (y - CENTRE_MM[1]) ** 2 + (z - CENTRE_MM[2]) ** 2
    return d2 <= RADIUS_MM ** 2


def write_series(out_dir, positions, tilt_mm):
    out_dir.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    datasets = []
    rows, cols = np.meshgrid(np.arange(ROWS), np.arange(COLUMNS), indexing="ij")
    for k, z in enumerate(positions):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(out_dir / f"slice{k:03d}.dcm"), {}, file_meta=meta,
                         preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.PatientName = "SYNTHETIC^SPHERE"
        ds.PatientID = "SPHERE"
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "O"
        ds.StudyDate, ds.StudyTime = "20260101", "120000"
        ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = "1", "", "1"
        ds.Manufacturer = "radscore tests"
        ds.SeriesNumber = 1
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.InstanceNumber = k + 1
        origin = np.array([k * tilt_mm, 0.0, z])
        ds.ImagePositionPatient = [f"{v:.4f}" for v in origin]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [PIXEL_MM, PIXEL_MM]
        ds.SliceThickness = 2.0
        ds.Rows, ds.Columns = ROWS, COLUMNS
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        x = origin[0] + cols * PIXEL_MM
        y = origin[1] + rows * PIXEL_MM
        plane = np.rint(hu(x, y, np.full_like(x, z, dtype=float))).astype(np.int16)
        ds.PixelData = plane.tobytes()
        ds.save_as(ds.filename, enforce_file_format=True)
        datasets.append(ds)
    return datasets


def lesion_planes(datasets):
    planes = []
    rows, cols = np.meshgrid(np.arange(ROWS), np.arange(COLUMNS), indexing="ij")
    for ds in datasets:
        ox, oy, oz = (float(v) for v in ds.ImagePositionPatient)
        x, y = ox + cols * PIXEL_MM, oy + rows * PIXEL_MM
        planes.append(inside_sphere(x, y, np.full_like(x, oz, dtype=float)))
    return np.stack(planes)


def write_seg(datasets, mask, path):
    warnings.filterwarnings("ignore", message=".*person name.*")
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="SPHERE",
        segmented_property_category=Code("49755003", "SCT", "Morphologically Altered Structure"),
        segmented_property_type=Code("108369006", "SCT", "Neoplasm"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    seg = hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=mask.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=hd.UID(),
        series_number=900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="radscore tests",
        manufacturer_model_name="make_irregular_ct.py",
        software_versions="1",
        device_serial_number="1",
    )
    seg.save_as(path)


def write_rtstruct(datasets, path):
    items = []
    angles = np.linspace(0.0, 2.0 * np.pi, CONTOUR_POINTS, endpoint=False)
    for ds in datasets:
        z = float(ds.ImagePositionPatient[2])
        r2 = RADIUS_MM ** 2 - (z - CENTRE_MM[2]) ** 2
        if r2 <= 0:
            continue
        r = np.sqrt(r2)
        points = [(CENTRE_MM[0] + r * np.cos(a), CENTRE_MM[1] + r * np.sin(a), z) for a in angles]
        items.append(contour(points, image=ds))
    ds0 = datasets[0]
    rs = structure_set(ds0.FrameOfReferenceUID, ds0.StudyInstanceUID, {1: ("SPHERE", items)},
                       series=ds0.SeriesInstanceUID)
    rs.save_as(path, enforce_file_format=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--positions", required=True)
    ap.add_argument("--seg")
    ap.add_argument("--rtstruct")
    ap.add_argument("--tilt-mm-per-slice", type=float, default=0.0)
    args = ap.parse_args()
    positions = [float(v) for v in args.positions.split(",")]
    datasets = write_series(pathlib.Path(args.out_dir), positions, args.tilt_mm_per_slice)
    mask = lesion_planes(datasets)
    if args.seg:
        write_seg(datasets, mask, args.seg)
    if args.rtstruct:
        write_rtstruct(datasets, args.rtstruct)
    print(f"lesion voxel centres on the acquired slices: {int(mask.sum())}")


if __name__ == "__main__":
    main()
