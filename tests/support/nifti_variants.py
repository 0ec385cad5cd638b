#!/usr/bin/env python3
"""Write geometric variants of a NIfTI label map (radscore test helper).

    nifti_variants.py --mask MASK.nii.gz --out-dir DIR

Writes into DIR:
* cropped.nii.gz   - the first 5 slices (k) dropped: other dimensions, same voxel lattice
* flipped_y.nii.gz - j axis stored reversed, affine adjusted: same voxels in world space
* swapped_xy.nii.gz - i and j axes transposed, affine adjusted: same voxels in world space
* shifted.nii.gz   - affine translated by half a voxel along x: a real misregistration
* sform_wins.nii.gz - correct sform (code 1), qform 10 mm off (code 1): the sform rules
* qform_only.nii.gz - sform_code 0, correct qform: the qform is used
* rps_labels.nii.gz - x axis stored reversed (axis codes R, P, S), labels 1 -> 65000 (uint16)
* empty.nii.gz     - same grid, every voxel 0 (no label at all)
"""
import argparse
import pathlib

import nibabel as nib
import numpy as np


def save(data, affine, path):
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    nib.save(img, str(path))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mask", required=True)
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args()
    out = pathlib.Path(args.out_dir)
    img = nib.load(args.mask)
    data = np.asarray(img.dataobj)
    aff = img.affine.copy()

    crop = aff.copy()
    crop[:3, 3] = aff[:3, :3] @ np.array([0, 0, 5]) + aff[:3, 3]
    save(data[:, :, 5:], crop, out / "cropped.nii.gz")

    flip = aff.copy()
    flip[:3, 1] = -aff[:3, 1]
    flip[:3, 3] = aff[:3, :3] @ np.array([0, data.shape[1] - 1, 0]) + aff[:3, 3]
    save(np.ascontiguousarray(data[:, ::-1, :]), flip, out / "flipped_y.nii.gz")

    swap = aff.copy()
    swap[:3, 0], swap[:3, 1] = aff[:3, 1].copy(), aff[:3, 0].copy()
    save(np.ascontiguousarray(np.transpose(data, (1, 0, 2))), swap, out / "swapped_xy.nii.gz")

    shift = aff.copy()
    shift[:3, 3] = aff[:3, 3] + 0.5 * aff[:3, 0]
    save(data, shift, out / "shifted.nii.gz")

    wrong = aff.copy()
    wrong[:3, 3] += np.array([10.0, 0.0, 0.0])
    img = nib.Nifti1Image(data, aff)
    img.set_sform(aff, code=1)
    img.set_qform(wrong, code=1)
    nib.save(img, str(out / "sform_wins.nii.gz"))

    img = nib.Nifti1Image(data, aff)
    img.set_sform(None, code=0)
    img.set_qform(aff, code=1)
    nib.save(img, str(out / "qform_only.nii.gz"))

    las = aff.copy()
    las[:3, 0] = -aff[:3, 0]
    las[:3, 3] = aff[:3, :3] @ np.array([data.shape[0] - 1, 0, 0]) + aff[:3, 3]
    relabelled = np.where(data != 0, 65000, 0).astype(np.uint16)
    save(np.ascontiguousarray(relabelled[::-1, :, :]), las, out / "rps_labels.nii.gz")

    save(np.zeros_like(data), aff, out / "empty.nii.gz")


if __name__ == "__main__":
    main()
