#!/usr/bin/env python3
"""Add lesions that cannot be computed to a NIfTI label map (radscore test helper).

    add_small_labels.py --mask MASK.nii.gz --out OUT.nii.gz

Adds label 2 = a single voxel and label 3 = a 6x6 patch on a single slice, both placed in
background voxels far from the existing labels. The original labels are kept.
"""
import argparse

import nibabel as nib
import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mask", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    img = nib.load(args.mask)
    data = np.asarray(img.dataobj).astype(np.uint8)
    assert data[2, 2, 2] == 0 and not data[2:10, 2:10, 1].any()
    data[2, 2, 2] = 2
    data[3:9, 3:9, 1] = 3
    out = nib.Nifti1Image(data, img.affine, img.header)
    nib.save(out, args.out)


if __name__ == "__main__":
    main()
