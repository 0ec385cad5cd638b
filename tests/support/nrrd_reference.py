#!/usr/bin/env python3
"""Reference reads of NRRD files by SimpleITK and pynrrd (radscore test helper).

    nrrd_reference.py variants --out-dir DIR
        Write small NRRD files with pynrrd covering every scalar type, the raw, gzip and
        ascii encodings, both byte orders and the LPS, RAS and LAS spaces, with negative
        and permuted axis directions. Prints the file names, one per line.

    nrrd_reference.py read --out-dir DIR FILE...
        Read each FILE with SimpleITK and with pynrrd, check that the two agree on the
        voxel values, and write for FILE number N:
          DIR/N.json  {"file", "shape_zyx", "spacing_zyx", "origin_lps",
                       "direction_zyx" (LPS unit vector of each array axis, [z, y, x])}
          DIR/N.f64   every voxel as little-endian float64, [z, y, x] C order
        Geometry is SimpleITK's (ITK works in LPS).
"""
import argparse
import json
import pathlib
import sys

import nrrd
import numpy as np
import SimpleITK as sitk

SHAPE_XYZ = (5, 4, 3)

TYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
         "float32", "float64"]


def values(dtype):
    """Deterministic values that use the sign and range of the type."""
    n = int(np.prod(SHAPE_XYZ))
    base = np.arange(n, dtype=np.int64).reshape(SHAPE_XYZ, order="F")
    if np.dtype(dtype).kind == "f":
        return (base * 1.25 - 20.5).astype(dtype)
    info = np.iinfo(dtype)
    spread = (base * 37) % 120
    out = spread + (info.min if info.min < 0 else 0) // (2 ** 8 if info.bits > 8 else 1)
    return np.clip(out, info.min, info.max).astype(dtype)


def geometry(space):
    """Permuted, partly negative axis directions and an origin, in the file's own space."""
    directions = np.array([[0.0, -0.8, 0.0], [0.0, 0.0, 2.5], [-1.2, 0.0, 0.0]])
    return {"space": space, "space directions": directions,
            "space origin": np.array([12.5, -40.0, 7.25])}


def write_variants(out_dir):
    out = pathlib.Path(out_dir)
    names = []
    for dtype in TYPES:
        for encoding in ("raw", "gzip"):
            for endian in ("<", ">"):
                if np.dtype(dtype).itemsize == 1 and endian == ">":
                    continue
                data = values(np.dtype(dtype).newbyteorder(endian))
                header = {"encoding": encoding, **geometry("left-posterior-superior")}
                name = f"{dtype}_{encoding}_{'big' if endian == '>' else 'little'}.nrrd"
                nrrd.write(str(out / name), data, header)
                names.append(name)
    for space in ("right-anterior-superior", "left-anterior-superior"):
        name = f"int16_{space.split('-')[0]}.nrrd"
        nrrd.write(str(out / name), values("int16"), {"encoding": "gzip", **geometry(space)})
        names.append(name)
    name = "float32_ascii.nrrd"
    nrrd.write(str(out / name), values("float32"),
               {"encoding": "ascii", **geometry("left-posterior-superior")})
    names.append(name)
    print("\n".join(names))


def itk_geometry(image):
    size_xyz = image.GetSize()
    d = np.array(image.GetDirection()).reshape(3, 3)
    return {
        "shape_zyx": list(reversed(size_xyz)),
        "spacing_zyx": list(reversed(image.GetSpacing())),
        "origin_lps": list(image.GetOrigin()),
        # Column a of the ITK direction matrix is index axis a (x = 0) in LPS.
        "direction_zyx": [d[:, a].tolist() for a in (2, 1, 0)],
    }


def read(out_dir, files):
    out = pathlib.Path(out_dir)
    for n, path in enumerate(files):
        image = sitk.ReadImage(str(path))
        itk_values = sitk.GetArrayFromImage(image).astype(np.float64)
        data, _ = nrrd.read(str(path), index_order="C")
        if data.shape != itk_values.shape or not np.array_equal(data.astype(np.float64), itk_values):
            sys.exit(f"{path}: SimpleITK and pynrrd disagree on the voxel values")
        doc = {"file": str(path), **itk_geometry(image)}
        (out / f"{n}.json").write_text(json.dumps(doc))
        itk_values.astype("<f8").tofile(out / f"{n}.f64")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    v = sub.add_parser("variants")
    v.add_argument("--out-dir", required=True)
    r = sub.add_parser("read")
    r.add_argument("--out-dir", required=True)
    r.add_argument("files", nargs="+")
    args = ap.parse_args()
    if args.command == "variants":
        write_variants(args.out_dir)
    else:
        read(args.out_dir, args.files)


if __name__ == "__main__":
    main()
