#!/usr/bin/env python3
"""Rewrite a NIfTI label map as NRRD (radscore test helper), voxel for voxel.

    convert_labelmap.py --mask MASK.nii.gz --out OUT.nrrd
        [--space LPS|RAS] [--encoding gzip|bzip2|raw|ascii] [--dtype int16|uint8|...]
        [--flip-axis 0|1|2] [--segment-name LABEL=NAME ...] [--layered-box I0,I1,J0,J1,K0,K1]

The NRRD carries the NIfTI affine converted to the chosen space (NIfTI is RAS). With
--flip-axis the voxels of that file axis are stored in reverse with the direction and
origin adjusted, so the file differs on disk but describes the same voxels in space.
--segment-name writes 3D Slicer `SegmentN_Name` / `SegmentN_LabelValue` pairs.
--layered-box writes a layered 3D Slicer segmentation (4-D, first axis of kind `list`) as
Slicer does when segments overlap: segment 0 "GTV-1" is the mask's non-zero voxels on layer
0 (value 1), segment 1 "BOX" the half-open NIfTI index box on layer 1 (value 1).
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
    ap.add_argument("--layered-box")
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
    if args.layered_box:
        i0, i1, j0, j1, k0, k1 = (int(v) for v in args.layered_box.split(","))
        box = np.zeros_like(data)
        box[i0:i1, j0:j1, k0:k1] = 1
        data = np.stack([(data != 0).astype(data.dtype), box])
        header["kinds"] = ["list", "domain", "domain", "domain"]
        header["space directions"] = np.vstack([np.full(3, np.nan), header["space directions"]])
        for n, (layer, name) in enumerate([(0, "GTV-1"), (1, "BOX")]):
            for key, value in (("Layer", str(layer)), ("LabelValue", "1"), ("Name", name)):
                header[f"Segment{n}_{key}"] = value
                custom[f"Segment{n}_{key}"] = "string"
    nrrd.write(args.out, data, header, custom_field_map=custom)


if __name__ == "__main__":
    main()
