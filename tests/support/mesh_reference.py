"""Independent mesh volume and area: scikit-image's classic marching cubes.

Reads a JSON list of masks from stdin, each {"shape": [z, y, x], "spacing_mm": [z, y, x],
"voxels": "0110..."} (C order), and writes a JSON list of {"volume_mm3", "area_mm2"}.

Each mask is padded by one empty voxel and meshed at level 0.5 with
skimage.measure.marching_cubes(method="lorensen"), the classic Lorensen & Cline case
table. scikit-image returns float32 vertices; on a binary mask they are exact
half-integers in voxel units, so they are recovered exactly and scaled to millimetres in
float64 before the divergence-theorem volume and the triangle areas are summed.
"""

import json
import sys

import numpy as np
from skimage.measure import marching_cubes

ISO_LEVEL = 0.5


def volume_area(shape, spacing_mm, voxels):
    mask = np.frombuffer(voxels.encode("ascii"), dtype=np.uint8) - ord("0")
    padded = np.pad(mask.reshape(shape).astype(np.float64), 1)
    verts, faces, _, _ = marching_cubes(padded, ISO_LEVEL, method="lorensen")
    doubled = np.rint(verts.astype(np.float64) * 2.0)
    assert np.all(np.abs(doubled - verts * 2.0) < 1e-3), "vertex off the half-voxel lattice"
    mm = doubled / 2.0 * np.asarray(spacing_mm, dtype=np.float64)
    a, b, c = mm[faces[:, 0]], mm[faces[:, 1]], mm[faces[:, 2]]
    volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0
    area = np.linalg.norm(np.cross(b - a, c - a), axis=1).sum() / 2.0
    # scikit-image orients faces by the gradient direction; only the magnitude is compared.
    return {"volume_mm3": abs(float(volume)), "area_mm2": float(area)}


def main():
    cases = json.load(sys.stdin)
    out = [volume_area(c["shape"], c["spacing_mm"], c["voxels"]) for c in cases]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
