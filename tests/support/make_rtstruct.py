#!/usr/bin/env python3
"""Build DICOM RT Structure Sets (pydicom) for a CT series, with known voxel answers.

Test helper for radscore (dicom_ingest, the segmentation-format corpus).

    make_rtstruct.py --series DIR --out RS.dcm [--case CASE] [--labels-out L.nii.gz]

Shapes are given in series index space (k = slice sorted along the normal, j = row,
i = column) and converted to patient coordinates (LPS mm) through the series geometry,
so the expected voxels are known without rasterising:

* ROI 1 "RING": on slices RING_SLICES, a square with corners at half-voxel positions
  (OUTER) and a square hole (INNER): exactly the centres of OUTER minus INNER.
* ROI 2 "ISLANDS": on ISLAND_SLICES, two disjoint squares per slice.
* ROI 3 "MARKER": one POINT contour (no volume: not a lesion).

--labels-out writes the expected label map (1 = RING, 2 = ISLANDS) as NIfTI on the series
grid, filled by index boxes (not by a rasteriser).

Cases (default "shapes"): every case but "shapes" and "stale-references" is a fault.
  shapes            the ROIs above
  stale-references  the same, but every contour references the first slice's SOP
                    Instance: radscore matches slices by position, so the answer is equal
  other-frame       ROI 1 references another FrameOfReferenceUID
  other-series      the shapes, but the RT Referenced Series names another series of the
                    same frame of reference
  no-series-reference  (accepted) the shapes without an RT Referenced Study/Series: only
                    the contours' Contour Image Sequence says which images they lie on
  between-slices    one RING contour moved half a slice along the normal
  off-series        one more RING contour two slices beyond the last slice
  non-planar        one RING contour with a corner moved one slice along the normal
  tilted            one RING contour planar but tilted across slices
  empty-roi         ROI 4 "EMPTY" declared without any contour
  outside-image     ROI 2 moved entirely outside the image in-plane (encloses nothing)
  points-only       only ROI 3 "MARKER" (a POINT contour): no lesion volume at all
  partly-outside    (accepted with a warning) ROI 2's second island reaches 200 voxels
                    past the last row and column: it is cut at the image edge
  contour-data-un   (accepted) the shapes, with every ContourData written with VR UN
                    (explicit VR): its bytes are the DS text
  contour-data-un-garbage  ROI 1's first ContourData as UN whose first value is not a
                    number
"""
import argparse
import pathlib

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
RING_SLICES = range(20, 25)
OUTER = (40.5, 70.5)   # index box [40.5, 70.5] on rows and columns: centres 41..70
INNER = (50.5, 60.5)   # hole: centres 51..60
ISLAND_SLICES = range(30, 33)
ISLANDS = [(20.5, 30.5), (100.5, 108.5)]


def load_series(series_dir):
    datasets = [pydicom.dcmread(p, force=True) for p in sorted(pathlib.Path(series_dir).iterdir())
                if p.is_file() and not p.name.startswith(".")]
    iop = np.asarray(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    datasets.sort(key=lambda ds: float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal)))
    return datasets


class Geometry:
    def __init__(self, datasets):
        ds0 = datasets[0]
        self.iop = np.asarray(ds0.ImageOrientationPatient, float)
        self.row_mm, self.col_mm = (float(v) for v in ds0.PixelSpacing)
        self.ipp = [np.asarray(ds.ImagePositionPatient, float) for ds in datasets]
        self.normal = np.cross(self.iop[:3], self.iop[3:])
        self.dz = float(np.dot(self.ipp[1] - self.ipp[0], self.normal))

    def world(self, k, j, i):
        """LPS mm of continuous index (k, j, i); k may be fractional or beyond the series."""
        base = self.ipp[0] + k * self.dz * self.normal
        return base + i * self.col_mm * self.iop[:3] + j * self.row_mm * self.iop[3:]


def square(geo, k, lo, hi):
    corners = [(lo, lo), (lo, hi), (hi, hi), (hi, lo)]
    return [geo.world(k, j, i) for j, i in corners]


def contour(points, kind="CLOSED_PLANAR", image=None):
    c = Dataset()
    c.ContourGeometricType = kind
    c.NumberOfContourPoints = len(points)
    c.ContourData = [f"{v:.6f}" for p in points for v in p]
    if image is not None:
        ref = Dataset()
        ref.ReferencedSOPClassUID = image.SOPClassUID
        ref.ReferencedSOPInstanceUID = image.SOPInstanceUID
        c.ContourImageSequence = [ref]
    return c


def rois(geo, datasets, case):
    """ROI number -> (name, contours)."""
    image = (lambda k: datasets[0]) if case == "stale-references" else (lambda k: datasets[min(k, len(datasets) - 1)])
    ring = []
    for k in RING_SLICES:
        ring.append(contour(square(geo, k, *OUTER), image=image(k)))
        ring.append(contour(square(geo, k, *INNER), image=image(k)))
    k0 = RING_SLICES[0]
    if case == "between-slices":
        ring[0] = contour(square(geo, k0 + 0.5, *OUTER))
    elif case == "off-series":
        ring.append(contour(square(geo, len(datasets) + 1, *OUTER)))
    elif case == "non-planar":
        pts = square(geo, k0, *OUTER)
        pts[2] = pts[2] + geo.dz * geo.normal
        ring[0] = contour(pts)
    elif case == "tilted":
        lo, hi = OUTER
        pts = [geo.world(k0, lo, lo), geo.world(k0, lo, hi), geo.world(k0 + 1, hi, hi), geo.world(k0 + 1, hi, lo)]
        ring[0] = contour(pts)
    islands = []
    shift = 1000.0 if case == "outside-image" else 0.0
    for k in ISLAND_SLICES:
        for n, (lo, hi) in enumerate(ISLANDS):
            if case == "partly-outside" and n == 1:
                hi += 300.0
            islands.append(contour(square(geo, k, lo + shift, hi + shift), image=image(k)))
    out = {1: ("RING", ring), 2: ("ISLANDS", islands),
           3: ("MARKER", [contour([geo.world(22, 55, 55)], kind="POINT")])}
    if case == "empty-roi":
        out[4] = ("EMPTY", [])
    if case == "points-only":
        out = {3: out[3]}
    return out


def contour_data_as_un(rs, garbage=False):
    """Rewrite ContourData with VR UN holding the bytes of its DS text, as an explicit-VR
    writer that did not know the attribute stores it; with garbage, only ROI 1's first
    contour, and its first value is made not a number."""
    from pydicom import config
    from pydicom.dataelem import DataElement
    # Keep UN as written (pydicom would otherwise turn it back into the dictionary's DS).
    config.replace_un_with_known_vr = False
    for rc in rs.ROIContourSequence:
        for n, c in enumerate(rc.ContourSequence):
            if garbage and (rc.ReferencedROINumber != 1 or n != 0):
                continue
            values = [str(v) for v in c.ContourData]
            if garbage:
                values[0] = "12.5mm"
            raw = "\\".join(values).encode()
            if len(raw) % 2:
                raw += b" "
            del c.ContourData
            c.add(DataElement(0x30060050, "UN", raw))


def expected_labels(shape_zyx):
    labels = np.zeros(shape_zyx, np.uint8)
    box = lambda lo, hi: slice(int(np.ceil(lo)), int(np.floor(hi)) + 1)
    for k in RING_SLICES:
        labels[k, box(*OUTER), box(*OUTER)] = 1
        labels[k, box(*INNER), box(*INNER)] = 0
    for k in ISLAND_SLICES:
        for lo, hi in ISLANDS:
            labels[k, box(lo, hi), box(lo, hi)] = 2
    return labels


def write_labels(geo, datasets, path):
    """Expected labels as NIfTI: (i, j, k) axes along the series' row, column and normal."""
    shape = (len(datasets), int(datasets[0].Rows), int(datasets[0].Columns))
    labels = expected_labels(shape)
    lps = np.column_stack([geo.iop[:3] * geo.col_mm, geo.iop[3:] * geo.row_mm, geo.normal * geo.dz])
    affine = np.eye(4)
    flip = np.array([-1.0, -1.0, 1.0])
    affine[:3, :3] = lps * flip[:, None]
    affine[:3, 3] = geo.ipp[0] * flip
    img = nib.Nifti1Image(np.ascontiguousarray(np.transpose(labels, (2, 1, 0))), affine)
    img.set_sform(affine, 1)
    img.set_qform(affine, 1)
    nib.save(img, str(path))


# The series an "other-series" RTSTRUCT names instead of the one it is uploaded for.
OTHER_SERIES = "1.2.826.0.1.3680043.8.498.56"


def structure_set(frame, study, roi_items, other_frame_roi=None, series=None):
    """An RT Structure Set data set: ROI number -> (name, contours), all in `frame`
    except ROI `other_frame_roi`."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RT_STRUCTURE_SET_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    rs = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    rs.SOPClassUID = RT_STRUCTURE_SET_STORAGE
    rs.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    rs.Modality = "RTSTRUCT"
    rs.PatientName = "Test^Structure"
    rs.PatientID = "RT-TEST"
    rs.StudyInstanceUID = study
    rs.SeriesInstanceUID = generate_uid()
    rs.StructureSetLabel = "radscore test"
    ref_frame = Dataset()
    ref_frame.FrameOfReferenceUID = frame
    if series is not None:
        # PS3.3 C.8.8.5: the image series the ROIs lie on (how STOW-RS routes an RTSTRUCT).
        ref_series = Dataset()
        ref_series.SeriesInstanceUID = series
        ref_study = Dataset()
        ref_study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
        ref_study.ReferencedSOPInstanceUID = study
        ref_study.RTReferencedSeriesSequence = [ref_series]
        ref_frame.RTReferencedStudySequence = [ref_study]
    rs.ReferencedFrameOfReferenceSequence = [ref_frame]
    declared, contours = [], []
    for number, (name, items) in roi_items.items():
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = (
            "1.2.826.0.1.3680043.8.498.99" if number == other_frame_roi else frame)
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = "MANUAL"
        declared.append(roi)
        if items:
            rc = Dataset()
            rc.ReferencedROINumber = number
            rc.ROIDisplayColor = [255, 0, 0]
            rc.ContourSequence = items
            contours.append(rc)
    rs.StructureSetROISequence = declared
    rs.ROIContourSequence = contours
    return rs


def build(datasets, case):
    geo = Geometry(datasets)
    ds0 = datasets[0]
    rs = structure_set(ds0.FrameOfReferenceUID, ds0.StudyInstanceUID, rois(geo, datasets, case),
                       other_frame_roi=1 if case == "other-frame" else None,
                       series={"other-series": OTHER_SERIES, "no-series-reference": None}
                       .get(case, ds0.SeriesInstanceUID))
    return rs, geo


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--case", default="shapes")
    ap.add_argument("--labels-out")
    args = ap.parse_args()
    datasets = load_series(args.series)
    rs, geo = build(datasets, args.case)
    if args.case.startswith("contour-data-un"):
        contour_data_as_un(rs, garbage=args.case.endswith("garbage"))
    rs.save_as(args.out, enforce_file_format=True)
    if args.labels_out:
        write_labels(geo, datasets, args.labels_out)


if __name__ == "__main__":
    main()
