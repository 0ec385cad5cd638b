//! Oriented minimum bounding box (OMBB) of the ROI mesh (IBSI 1 sections 3.1.19 – 3.1.20,
//! tags `morph_vol_dens_ombb`, `morph_area_dens_ombb`).
//!
//! Input: the convex hull of the mesh vertices (vertices in millimetres and triangles as
//! indices, see [`super::hull`]). Output: the volume (mm³) and surface area (mm²) of the
//! smallest box found.
//!
//! Algorithm: for every distinct hull face plane, the box with one face on that plane is
//! the plane's height range times the minimum-area rectangle of the hull projected on the
//! plane, found by rotating calipers over the projected 2D hull's edges (Freeman &
//! Shapira 1975: a minimum-area enclosing rectangle has a side on a hull edge). The
//! smallest of these boxes is returned.
//!
//! LIMITATION: O'Rourke (1985) shows the true minimum-volume box may touch the hull with
//! edges only (no face flush); this face-flush search can then return a box a few per
//! cent larger.
//!
//! IBSI gives these features no reference value ("not standardised"); tests check
//! analytic boxes.

/// Two unit normals whose components all agree within this are the same plane direction
/// (hull faces on one lattice plane give bit-identical normals up to rounding).
const NORMAL_MERGE_EPSILON: f64 = 1e-9;

/// A box: volume (mm³) and surface area (mm²).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxMeasures {
    pub volume_mm3: f64,
    pub area_mm2: f64,
}

/// The smallest face-flush box around `vertices_mm` given the hull `faces`, or `None`
/// if there is no face.
pub fn oriented_minimum_box(vertices_mm: &[[f64; 3]], faces: &[[usize; 3]]) -> Option<BoxMeasures> {
    let mut normals: Vec<[f64; 3]> = Vec::new();
    for f in faces {
        let [a, b, c] = f.map(|i| vertices_mm[i]);
        let n = cross(sub(b, a), sub(c, a));
        let len = dot(n, n).sqrt();
        if len == 0.0 {
            continue;
        }
        let n = n.map(|v| v / len);
        let known = normals
            .iter()
            .any(|m| (0..3).all(|k| (m[k] - n[k]).abs() < NORMAL_MERGE_EPSILON));
        if !known {
            normals.push(n);
        }
    }
    normals
        .iter()
        .map(|&n| box_on_plane(vertices_mm, n))
        .min_by(|x, y| x.volume_mm3.total_cmp(&y.volume_mm3))
}

/// The box with one face perpendicular to the unit normal `n`.
fn box_on_plane(points: &[[f64; 3]], n: [f64; 3]) -> BoxMeasures {
    let (u, v) = plane_basis(n);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut flat: Vec<[f64; 2]> = Vec::with_capacity(points.len());
    for p in points {
        let h = dot(*p, n);
        lo = lo.min(h);
        hi = hi.max(h);
        flat.push([dot(*p, u), dot(*p, v)]);
    }
    let height = hi - lo;
    let (w, l) = minimum_rectangle(&convex_hull_2d(flat));
    BoxMeasures {
        volume_mm3: height * w * l,
        area_mm2: 2.0 * (height * w + height * l + w * l),
    }
}

/// Two unit vectors completing `n` to an orthonormal basis.
fn plane_basis(n: [f64; 3]) -> ([f64; 3], [f64; 3]) {
    // Start from the axis least aligned with n, so the cross product is well conditioned.
    let k = (0..3)
        .min_by(|&a, &b| n[a].abs().total_cmp(&n[b].abs()))
        .unwrap_or(0);
    let mut e = [0.0; 3];
    e[k] = 1.0;
    let u = cross(n, e);
    let len = dot(u, u).sqrt();
    let u = u.map(|x| x / len);
    (u, cross(n, u))
}

/// Convex hull of 2D points, counter-clockwise, by Andrew's monotone chain.
fn convex_hull_2d(mut pts: Vec<[f64; 2]>) -> Vec<[f64; 2]> {
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let turn = |o: [f64; 2], a: [f64; 2], b: [f64; 2]| {
        (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
    };
    let mut hull: Vec<[f64; 2]> = Vec::with_capacity(2 * pts.len());
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &[f64; 2]>> = if pass == 0 {
            Box::new(pts.iter())
        } else {
            Box::new(pts.iter().rev())
        };
        for &p in iter {
            while hull.len() >= start + 2
                && turn(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0
            {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    hull
}

/// Side lengths of the minimum-area rectangle around a convex polygon: for each edge
/// direction, the extents along it and across it.
fn minimum_rectangle(hull: &[[f64; 2]]) -> (f64, f64) {
    let m = hull.len();
    let mut best = (f64::INFINITY, 0.0, 0.0);
    for i in 0..m {
        let (a, b) = (hull[i], hull[(i + 1) % m]);
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len = (dx * dx + dy * dy).sqrt();
        if len == 0.0 {
            continue;
        }
        let (ex, ey) = (dx / len, dy / len);
        let (mut s_lo, mut s_hi, mut t_lo, mut t_hi) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for p in hull {
            let s = p[0] * ex + p[1] * ey;
            let t = -p[0] * ey + p[1] * ex;
            s_lo = s_lo.min(s);
            s_hi = s_hi.max(s);
            t_lo = t_lo.min(t);
            t_hi = t_hi.max(t);
        }
        let (w, l) = (s_hi - s_lo, t_hi - t_lo);
        if w * l < best.0 {
            best = (w * l, w, l);
        }
    }
    if best.0.is_finite() {
        (best.1, best.2)
    } else {
        (0.0, 0.0)
    }
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hull vertices and faces of a rotated box `l × w × h` (two triangles per face).
    fn rotated_box(l: f64, w: f64, h: f64, angle: f64) -> (Vec<[f64; 3]>, Vec<[usize; 3]>) {
        let (c, s) = (angle.cos(), angle.sin());
        let mut v = Vec::new();
        for k in 0..8 {
            let p = [
                if k & 1 == 0 { 0.0 } else { l },
                if k & 2 == 0 { 0.0 } else { w },
                if k & 4 == 0 { 0.0 } else { h },
            ];
            v.push([
                c * p[0] - s * p[1] + 3.0,
                s * p[0] + c * p[1] - 1.0,
                p[2] + 7.0,
            ]);
        }
        let quads = [
            [0, 2, 3, 1],
            [4, 5, 7, 6],
            [0, 1, 5, 4],
            [2, 6, 7, 3],
            [0, 4, 6, 2],
            [1, 3, 7, 5],
        ];
        let faces = quads
            .iter()
            .flat_map(|q| [[q[0], q[1], q[2]], [q[0], q[2], q[3]]])
            .collect();
        (v, faces)
    }

    #[test]
    fn a_rotated_box_is_its_own_minimum_box() {
        let (l, w, h) = (10.0, 4.0, 2.0);
        let (v, f) = rotated_box(l, w, h, 0.6);
        let b = oriented_minimum_box(&v, &f).expect("faces");
        assert!((b.volume_mm3 - l * w * h).abs() < 1e-9, "{b:?}");
        assert!(
            (b.area_mm2 - 2.0 * (l * w + l * h + w * h)).abs() < 1e-9,
            "{b:?}"
        );
    }

    #[test]
    fn rectangle_of_a_rotated_square_hull() {
        // A square of side 2 rotated by 45°: the minimum rectangle is the square itself.
        let r = 2.0_f64.sqrt();
        let hull = convex_hull_2d(vec![[r, 0.0], [0.0, r], [-r, 0.0], [0.0, -r], [0.1, 0.2]]);
        assert_eq!(hull.len(), 4);
        let (w, l) = minimum_rectangle(&hull);
        assert!(
            (w - 2.0).abs() < 1e-12 && (l - 2.0).abs() < 1e-12,
            "{w} {l}"
        );
    }
}
