#!/usr/bin/env python3
"""Write a NIfTI label map with one box (label 1) on the grid of a radscore series.

    labelmap_for_grid.py --series-json JSON --box Z0,Z1,Y0,Y1,X0,X1 --out MASK.nii.gz

JSON is the series document of `GET /v1/series/{id}` (dimensions, spacing_mm, origin_mm,
direction: LPS). The box is half-open in series index space [z, y, x]. The affine maps
NIfTI (i, j, k) = series (x, y, z) to RAS, so the label map lies exactly on the grid.
"""
import argparse
import json

import nibabel as nib
import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series-json", required=True)
    ap.add_argument("--box", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    s = json.loads(args.series_json)
    dims = [s["dimensions"][a] for a in "xyz"]
    columns = [np.asarray(s["direction"][a], float) * s["spacing_mm"][a] for a in "xyz"]
    affine = np.eye(4)
    flip = np.array([-1.0, -1.0, 1.0])
    affine[:3, :3] = np.column_stack(columns) * flip[:, None]
    affine[:3, 3] = np.asarray(s["origin_mm"], float) * flip
    z0, z1, y0, y1, x0, x1 = (int(v) for v in args.box.split(","))
    labels = np.zeros(dims, np.uint8)
    labels[x0:x1, y0:y1, z0:z1] = 1
    img = nib.Nifti1Image(labels, affine)
    img.set_sform(affine, 1)
    img.set_qform(affine, 1)
    nib.save(img, args.out)


if __name__ == "__main__":
    main()
