"""Write the fuzz seed corpus (called by fuzz/make_seeds.sh; see there).

    make_seeds.py DEMO_DIR PHANTOM_DIR CORPUS_DIR WORK_DIR

Crops the demo series to SMALL_SLICES x SMALL_ROWS x SMALL_COLS around lesion 1, writes
the cropped series and a label map on its grid to WORK_DIR (for make_seg.py) and the seeds
to CORPUS_DIR/<target>/. Series seeds with several files join them with FILE_SEPARATOR,
the same separator fuzz/fuzz_targets/series.rs and tests/fuzz_smoke.rs split on.
"""
import gzip
import io
import pathlib
import shutil
import sys
import zipfile

import nibabel as nib
import nrrd
import numpy as np
import pydicom

FILE_SEPARATOR = b"RADSCORE-FUZZ-NEXT-FILE"
# Crop of the demo-data seed 1 grid (32 x 96 x 96, 2.5 x 0.8 x 0.8 mm) around lesion 1.
SMALL_SLICES = (17, 21)
SMALL_ROWS = (58, 74)
SMALL_COLS = (19, 35)


def sorted_series(directory):
    files = [p for p in sorted(directory.iterdir()) if p.suffix == ".dcm"]
    datasets = [pydicom.dcmread(p) for p in files]
    datasets.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    return datasets


def crop_slice(ds):
    (r0, r1), (c0, c1) = SMALL_ROWS, SMALL_COLS
    row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
    iop = [float(v) for v in ds.ImageOrientationPatient]
    ipp = [float(v) for v in ds.ImagePositionPatient]
    ds.ImagePositionPatient = [
        round(ipp[i] + c0 * col_mm * iop[i] + r0 * row_mm * iop[3 + i], 4) for i in range(3)
    ]
    ds.PixelData = np.ascontiguousarray(ds.pixel_array[r0:r1, c0:c1]).tobytes()
    ds.Rows, ds.Columns = r1 - r0, c1 - c0
    return ds


def to_bytes(ds):
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def small_labels(demo_labels, first):
    """The demo label map resampled (nearest, via world coordinates) onto the cropped grid."""
    inv = np.linalg.inv(demo_labels.affine)
    data = np.asarray(demo_labels.dataobj)
    nz, ny, nx = SMALL_SLICES[1] - SMALL_SLICES[0], SMALL_ROWS[1] - SMALL_ROWS[0], SMALL_COLS[1] - SMALL_COLS[0]
    origin_lps = np.array([float(v) for v in first.ImagePositionPatient])
    row_mm, col_mm = (float(v) for v in first.PixelSpacing)
    thickness = float(first.SliceThickness)
    # NIfTI i, j, k run along LPS x, y, z; in RAS that is -x, -y, +z.
    affine = np.diag([-col_mm, -row_mm, thickness, 1.0])
    affine[:3, 3] = origin_lps * np.array([-1.0, -1.0, 1.0])
    out = np.zeros((nx, ny, nz), dtype=np.int16)
    ijk = np.stack(np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij"), -1)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    src = np.rint(world @ inv[:3, :3].T + inv[:3, 3]).astype(int)
    out[...] = data[src[..., 0], src[..., 1], src[..., 2]]
    img = nib.Nifti1Image(out, affine)
    img.set_sform(affine, 1)
    img.set_qform(affine, 1)
    return img


def write_nifti(img, path):
    nib.save(img, str(path))


def nrrd_geometry(img, space):
    """NRRD space fields for a NIfTI image's affine (RAS), in `space` (LPS or RAS)."""
    flip = np.array([-1.0, -1.0, 1.0]) if space == "left-posterior-superior" else np.ones(3)
    return {"space": space,
            "space directions": (img.affine[:3, :3] * flip[:, None]).T,
            "space origin": img.affine[:3, 3] * flip}


def write_nrrd_seeds(labels, phantom_mask, corpus):
    """NRRD label maps: gzip LPS int16, raw big-endian uint16, RAS ascii, a Slicer
    segmentation with segment names, and the IBSI digital phantom mask."""
    data = np.asarray(labels.dataobj)
    lps = nrrd_geometry(labels, "left-posterior-superior")
    out = corpus / "nrrd"
    out.mkdir(exist_ok=True)
    nrrd.write(str(out / "small_labels_gzip.nrrd"), data.astype(np.int16), {"encoding": "gzip", **lps})
    nrrd.write(str(out / "small_labels_raw_big.nrrd"), data.astype(">u2"), {"encoding": "raw", **lps})
    nrrd.write(str(out / "small_labels_ras_ascii.nrrd"), data.astype(np.uint8),
               {"encoding": "ascii", **nrrd_geometry(labels, "right-anterior-superior")})
    slicer = {"encoding": "raw", **lps, "Segment0_Name": "lesion one", "Segment0_LabelValue": "1",
              "Segment1_Name": "lesion two", "Segment1_LabelValue": "2"}
    nrrd.write(str(out / "small_labels_slicer.seg.nrrd"), data.astype(np.uint8), slicer,
               custom_field_map={k: "string" for k in slicer if k.startswith("Segment")})
    mask = nib.load(str(phantom_mask))
    nrrd.write(str(out / "ibsi_digital_phantom_mask.nrrd"), np.asarray(mask.dataobj).astype(np.uint8),
               {"encoding": "gzip", **nrrd_geometry(mask, "left-posterior-superior")})


def write_rtstruct_seeds(small, corpus):
    """RT Structure Sets on the cropped grid (tests/support/make_rtstruct.py builders): a
    ring with a hole and two islands over two slices, plus a POINT marker; and the same
    with a contour between slices."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests/support"))
    import make_rtstruct as rt

    geo = rt.Geometry(small)
    frame, study = small[0].FrameOfReferenceUID, small[0].StudyInstanceUID
    out = corpus / "rtstruct"
    out.mkdir(exist_ok=True)
    ring = [rt.contour(rt.square(geo, k, 2.5, 12.5)) for k in (1, 2)]
    ring += [rt.contour(rt.square(geo, k, 5.5, 8.5)) for k in (1, 2)]
    islands = [rt.contour(rt.square(geo, 2, lo, hi)) for lo, hi in [(0.5, 2.5), (13.5, 15.5)]]
    marker = [rt.contour([geo.world(1, 7, 7)], kind="POINT")]
    rois = {1: ("RING", ring), 2: ("ISLANDS", islands), 3: ("MARKER", marker)}
    rt.structure_set(frame, study, rois).save_as(out / "ring_islands_marker.dcm", enforce_file_format=True)
    between = {1: ("RING", [rt.contour(rt.square(geo, 1.5, 2.5, 12.5))])}
    rt.structure_set(frame, study, between).save_as(out / "between_slices.dcm", enforce_file_format=True)


def main():
    demo, phantom, corpus, work = (pathlib.Path(a) for a in sys.argv[1:5])
    full = sorted_series(demo / "series")
    small = [crop_slice(ds) for ds in sorted_series(demo / "series")[slice(*SMALL_SLICES)]]
    (work / "small").mkdir()
    small_bytes = [to_bytes(ds) for ds in small]
    for k, b in enumerate(small_bytes):
        (work / "small" / f"CT_{k:04d}.dcm").write_bytes(b)

    # series: one slice, the cropped stack, one uncropped slice, the deprecated phantom.
    (corpus / "series/one_small_slice.dcm").write_bytes(small_bytes[0])
    (corpus / "series/small_stack_4").write_bytes(FILE_SEPARATOR.join(small_bytes))
    (corpus / "series/small_stack_2_reversed").write_bytes(
        FILE_SEPARATOR.join([small_bytes[1], small_bytes[0]]))
    (corpus / "series/demo_full_slice.dcm").write_bytes(to_bytes(full[18]))
    shutil.copyfile(phantom / "dicom_deprecated/image/phantom.deprecated",
                corpus / "series/ibsi_digital_phantom.dcm")

    # zip: deflated flat archive, stored archive with folders and entries to skip.
    with zipfile.ZipFile(corpus / "zip/small_stack_deflated.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for k, b in enumerate(small_bytes):
            z.writestr(f"CT_{k:04d}.dcm", b)
    with zipfile.ZipFile(corpus / "zip/small_stack_stored_dirs.zip", "w", zipfile.ZIP_STORED) as z:
        z.writestr("case/", b"")
        for k, b in enumerate(small_bytes[:2]):
            z.writestr(f"case/series/{k}", b)
        z.writestr("__MACOSX/case/._0", b"fork")
        z.writestr("DICOMDIR", b"index")

    # label maps on the cropped grid (also written to WORK for make_seg.py).
    labels = small_labels(nib.load(str(demo / "lesions.nii.gz")), small[0])
    write_nifti(labels, work / "small_labels.nii.gz")
    shutil.copyfile(work / "small_labels.nii.gz", corpus / "nifti_labelmap/small_labels.nii.gz")
    write_nifti(labels, corpus / "nifti_labelmap/small_labels.nii")
    be = nib.Nifti1Image(np.asarray(labels.dataobj).astype(">u2"), labels.affine, labels.header)
    be.header.set_data_dtype(">u2")
    be.header.set_qform(None, 0)
    write_nifti(be, corpus / "nifti_labelmap/small_labels_u16_big_endian_sform.nii")
    qonly = nib.Nifti1Image(np.asarray(labels.dataobj).astype(np.uint8), labels.affine)
    qonly.set_sform(None, 0)
    qonly.set_qform(labels.affine, 1)
    write_nifti(qonly, corpus / "nifti_labelmap/small_labels_u8_qform.nii")
    shutil.copyfile(phantom / "nifti/mask/mask.nii.gz", corpus / "nifti_labelmap/ibsi_digital_phantom_mask.nii.gz")
    write_nrrd_seeds(labels, phantom / "nifti/mask/mask.nii.gz", corpus)
    write_rtstruct_seeds(small, corpus)

    # volumes: the cropped CT in float32 with scaling, the digital phantom image.
    hu = np.stack([ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope)
                   + float(ds.RescaleIntercept) for ds in small], -1).transpose(1, 0, 2)
    vol = nib.Nifti1Image(hu, labels.affine)
    vol.set_sform(labels.affine, 1)
    write_nifti(vol, corpus / "nifti_volume/small_ct_f32.nii.gz")
    scaled = nib.Nifti1Image((hu + 1024).astype(np.int16), labels.affine)
    scaled.header.set_slope_inter(1.0, -1024.0)
    write_nifti(scaled, corpus / "nifti_volume/small_ct_i16_scaled.nii")
    shutil.copyfile(phantom / "nifti/image/phantom.nii.gz", corpus / "nifti_volume/ibsi_digital_phantom.nii.gz")
    with gzip.open(phantom / "nifti/image/phantom.nii.gz") as f:
        (corpus / "nifti_volume/ibsi_digital_phantom.nii").write_bytes(f.read())

    shutil.copyfile(phantom / "dicom_deprecated/mask/mask.deprecated", corpus / "seg/ibsi_digital_phantom_mask_seg.dcm")
    print("small grid origin (LPS mm):", [float(v) for v in small[0].ImagePositionPatient])


if __name__ == "__main__":
    main()
