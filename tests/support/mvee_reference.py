"""Independent minimum-volume enclosing ellipsoid: Khachiyan's algorithm in numpy.

Reads {"points_mm": [[x, y, z], ...]} from stdin and writes {"semi_axes_mm": [a, b, c]}
(descending). Vectorised matrix form; stops when max_i M_i <= (1 + TOLERANCE)(d + 1),
a tighter bound than radscore's.
"""

import json
import sys

import numpy as np

TOLERANCE = 1e-5
MAX_ITERATIONS = 1_000_000


def mvee(points):
    n, d = points.shape
    q = np.vstack([points.T, np.ones(n)])
    u = np.full(n, 1.0 / n)
    for _ in range(MAX_ITERATIONS):
        x = (q * u) @ q.T
        m = np.einsum("ij,ji->i", q.T, np.linalg.solve(x, q))
        j = int(np.argmax(m))
        if m[j] <= (1.0 + TOLERANCE) * (d + 1.0):
            break
        step = (m[j] - d - 1.0) / ((d + 1.0) * (m[j] - 1.0))
        u = (1.0 - step) * u
        u[j] += step
    centre = points.T @ u
    scatter = (points.T * u) @ points - np.outer(centre, centre)
    shape = np.linalg.inv(scatter) / d
    return sorted((1.0 / np.sqrt(np.linalg.eigvalsh(shape))).tolist(), reverse=True)


def main():
    points = np.asarray(json.load(sys.stdin)["points_mm"], dtype=np.float64)
    json.dump({"semi_axes_mm": mvee(points)}, sys.stdout)


if __name__ == "__main__":
    main()
