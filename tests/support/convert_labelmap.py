#!/usr/bin/env python3
"""Rewrite a NIfTI label map as NRRD (radscore test helper), voxel for voxel.

    convert_labelmap.py --mask MASK.nii.gz --out OUT.nrrd
        [--space LPS|RAS] [--encoding gzip|bzip2|raw|ascii] [--dtype int16|uint8|...]
        [--flip-axis 0|1|2] [--segment-name LABEL=NAME ...]

The NRRD carries the NIfTI affine converted to the chosen space (NIfTI is RAS). With
--flip-axis the voxels of that file axis are stored in reverse with the direction and
origin adjusted, so the file differs on disk but describes the same voxels in space.
--segment-name writes 3D Slicer `SegmentN_Name` / `SegmentN_LabelValue` pairs.
"""
import argparse

import nibabel as nib
import nrrd
import numpy as np

SPACES = {"LPS": ("left-posterior-superior", np.array([-1.0, -1.0, 1.0])),
          "RAS": ("right-anterior-superior", np.ones(3))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mask", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--space", choices=sorted(SPACES), default="LPS")
    ap.add_argument("--encoding", choices=["gzip", "bzip2", "raw", "ascii"], default="gzip")
    ap.add_argument("--dtype", default="int16")
    ap.add_argument("--flip-axis", type=int)
    ap.add_argument("--segment-name", action="append", default=[])
    args = ap.parse_args()

    img = nib.load(args.mask)
    data = np.asarray(img.dataobj).astype(args.dtype)
    affine = img.affine.copy()
    if args.flip_axis is not None:
        a = args.flip_axis
        affine[:3, 3] = affine[:3, :3] @ np.eye(3)[a] * (data.shape[a] - 1) + affine[:3, 3]
        affine[:3, a] = -affine[:3, a]
        data = np.ascontiguousarray(np.flip(data, axis=a))
    name, flip = SPACES[args.space]
    header = {"encoding": args.encoding, "space": name,
              "space directions": (affine[:3, :3] * flip[:, None]).T,
              "space origin": affine[:3, 3] * flip}
    custom = {}
    for n, spec in enumerate(args.segment_name):
        label, segment = spec.split("=", 1)
        header[f"Segment{n}_Name"] = segment
        header[f"Segment{n}_LabelValue"] = label
        custom.update({f"Segment{n}_Name": "string", f"Segment{n}_LabelValue": "string"})
    nrrd.write(args.out, data, header, custom_field_map=custom)


if __name__ == "__main__":
    main()
