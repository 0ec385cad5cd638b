//! Convex hull of the mesh vertices (IBSI 1 sections 3.1.11 and 3.1.16).
//!
//! Input: mesh vertices as exact integer lattice points (doubled voxel indices, see
//! [`super::mesh::surface_vertices`]). Output: the hull's triangles, oriented
//! counter-clockwise seen from outside, as indices into the input.
//!
//! Algorithm: incremental (beneath–beyond) insertion, as in O'Rourke, *Computational
//! Geometry in C*, 2nd ed., chapter 4, with exact `i128` orientation tests, driven by
//! quickhull's conflict lists so that a point found inside is never tested again. Mesh vertices lie on a half-voxel lattice, so many are coplanar; exact
//! arithmetic makes every visibility decision consistent, which floating-point quickhull
//! implementations handle with tolerances or joggling. A point on the plane of a face is
//! treated as not visible, so coplanar hull faces stay split into several triangles; that
//! changes neither the hull volume nor its area. Before insertion the points are reduced
//! to the extremes of every lattice row along x, y and z: a point between two others on a
//! line cannot be a hull vertex.
//!
//! Written here rather than taken from a crate: `chull` 0.2 describes itself as a
//! convex-hull approximation with floating-point tolerances, and `qhull` 0.4 binds the C
//! library through FFI and a C build; both are more than this exact lattice case needs.

use std::collections::{HashMap, HashSet};

/// Lattice point `[z, y, x]` in doubled voxel-index units.
pub type LatticePoint = [i64; 3];

/// Compact the face list once dead faces outnumber live ones by this factor.
const DEAD_FACE_COMPACTION_RATIO: usize = 2;

/// Triangles (indices into `points`, counter-clockwise seen from outside) of the convex
/// hull of `points`, or `None` if the points do not span three dimensions.
pub fn hull_triangles(points: &[LatticePoint]) -> Option<Vec<[usize; 3]>> {
    let candidates = row_extremes(points);
    let simplex = initial_simplex(points, &candidates)?;
    let mut faces: Vec<[usize; 3]> = Vec::new();
    for k in 0..4 {
        let others: Vec<usize> = (0..4).filter(|&j| j != k).map(|j| simplex[j]).collect();
        let mut f = [others[0], others[1], others[2]];
        // The fourth simplex vertex must lie inside, i.e. below every face.
        if orient(points, f, points[simplex[k]]) > 0 {
            f.swap(1, 2);
        }
        faces.push(f);
    }
    let mut alive = vec![true; faces.len()];
    // Conflict lists (Barber, Dobkin & Huhdanpaa 1996, "The quickhull algorithm for convex
    // hulls"): every point outside the hull so far is kept with one face it sees; a point
    // that sees no face is inside and is never tested again.
    let mut outside: Vec<Vec<usize>> = vec![Vec::new(); faces.len()];
    let rest = candidates.into_iter().filter(|i| !simplex.contains(i));
    assign(points, rest, &faces, 0..faces.len(), &mut outside);
    let mut pending: Vec<usize> = (0..faces.len()).collect();
    while let Some(f) = pending.pop() {
        if !alive[f] || outside[f].is_empty() {
            continue;
        }
        // The point farthest above the face is a vertex of the final hull.
        let conflicts = std::mem::take(&mut outside[f]);
        let &p = conflicts
            .iter()
            .max_by_key(|&&q| orient(points, faces[f], points[q]))
            .expect("non-empty");
        let first_new = faces.len();
        let visible = insert_point(points, p, &mut faces, &mut alive);
        outside.resize(faces.len(), Vec::new());
        // Points of the removed faces go to a new face they see, or are inside.
        let orphans: Vec<usize> = conflicts
            .into_iter()
            .chain(
                visible
                    .iter()
                    .flat_map(|&v| std::mem::take(&mut outside[v])),
            )
            .filter(|&q| q != p)
            .collect();
        assign(
            points,
            orphans,
            &faces,
            first_new..faces.len(),
            &mut outside,
        );
        pending.extend(first_new..faces.len());
        let dead = alive.iter().filter(|a| !**a).count();
        if dead > DEAD_FACE_COMPACTION_RATIO * (alive.len() - dead) {
            let keep: Vec<usize> = (0..faces.len()).filter(|&i| alive[i]).collect();
            faces = keep.iter().map(|&i| faces[i]).collect();
            outside = keep
                .iter()
                .map(|&i| std::mem::take(&mut outside[i]))
                .collect();
            alive = vec![true; faces.len()];
            pending = (0..faces.len())
                .filter(|&i| !outside[i].is_empty())
                .collect();
        }
    }
    Some(
        faces
            .into_iter()
            .zip(alive)
            .filter(|(_, a)| *a)
            .map(|(f, _)| f)
            .collect(),
    )
}

/// Put each of `candidates` on the conflict list of the first face of `among` it sees;
/// a point that sees none of them is dropped (inside the hull).
fn assign(
    points: &[LatticePoint],
    candidates: impl IntoIterator<Item = usize>,
    faces: &[[usize; 3]],
    among: std::ops::Range<usize>,
    outside: &mut [Vec<usize>],
) {
    for q in candidates {
        if let Some(f) = among
            .clone()
            .find(|&f| orient(points, faces[f], points[q]) > 0)
        {
            outside[f].push(q);
        }
    }
}

/// Add point `p` to the hull: remove the faces that see it and cone the horizon to it.
/// Returns the removed faces.
fn insert_point(
    points: &[LatticePoint],
    p: usize,
    faces: &mut Vec<[usize; 3]>,
    alive: &mut Vec<bool>,
) -> Vec<usize> {
    let visible: Vec<usize> = (0..faces.len())
        .filter(|&f| alive[f] && orient(points, faces[f], points[p]) > 0)
        .collect();
    if visible.is_empty() {
        return visible; // inside or on the hull
    }
    let edges: HashSet<(usize, usize)> =
        visible.iter().flat_map(|&f| face_edges(faces[f])).collect();
    // Horizon: an edge of a visible face whose twin belongs to a face that stays.
    let horizon: Vec<(usize, usize)> = visible
        .iter()
        .flat_map(|&f| face_edges(faces[f]))
        .filter(|&(a, b)| !edges.contains(&(b, a)))
        .collect();
    for &f in &visible {
        alive[f] = false;
    }
    for (a, b) in horizon {
        faces.push([a, b, p]);
        alive.push(true);
    }
    visible
}

fn face_edges(f: [usize; 3]) -> [(usize, usize); 3] {
    [(f[0], f[1]), (f[1], f[2]), (f[2], f[0])]
}

/// Six times the signed volume of tetrahedron (face, q): positive when `q` is on the
/// outer side of a counter-clockwise face.
fn orient(points: &[LatticePoint], f: [usize; 3], q: LatticePoint) -> i128 {
    let [a, b, c] = f.map(|i| points[i]);
    let n = cross(sub(b, a), sub(c, a));
    let d = sub(q, a);
    n[0] * d[0] + n[1] * d[1] + n[2] * d[2]
}

fn sub(a: LatticePoint, b: LatticePoint) -> [i128; 3] {
    [0, 1, 2].map(|k| i128::from(a[k]) - i128::from(b[k]))
}

fn cross(a: [i128; 3], b: [i128; 3]) -> [i128; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn squared_norm(v: [i128; 3]) -> i128 {
    v[0] * v[0] + v[1] * v[1] + v[2] * v[2]
}

/// Four candidate points spanning a tetrahedron of non-zero volume, if any.
fn initial_simplex(points: &[LatticePoint], candidates: &[usize]) -> Option<[usize; 4]> {
    let &i0 = candidates.first()?;
    let far = |key: &dyn Fn(usize) -> i128| -> Option<usize> {
        let best = candidates.iter().copied().max_by_key(|&i| key(i))?;
        (key(best) != 0).then_some(best)
    };
    let i1 = far(&|i| squared_norm(sub(points[i], points[i0])))?;
    let i2 = far(&|i| {
        squared_norm(cross(
            sub(points[i1], points[i0]),
            sub(points[i], points[i0]),
        ))
    })?;
    let i3 = far(&|i| orient(points, [i0, i1, i2], points[i]).abs())?;
    Some([i0, i1, i2, i3])
}

/// Indices of the points that are extreme along their lattice row in x (fixed z, y) and
/// then in y (fixed z, x) and in z (fixed y, x). Interior row points are convex
/// combinations of the extremes.
fn row_extremes(points: &[LatticePoint]) -> Vec<usize> {
    let along_x = extremes_along(points, (0..points.len()).collect(), 2);
    let along_y = extremes_along(points, along_x, 1);
    extremes_along(points, along_y, 0)
}

/// Of `indices`, those holding the minimum or maximum coordinate `axis` among the points
/// that share their other two coordinates.
fn extremes_along(points: &[LatticePoint], indices: Vec<usize>, axis: usize) -> Vec<usize> {
    let key = |p: LatticePoint| -> (i64, i64) {
        let rest: Vec<i64> = (0..3).filter(|&k| k != axis).map(|k| p[k]).collect();
        (rest[0], rest[1])
    };
    let mut range: HashMap<(i64, i64), (usize, usize)> = HashMap::new();
    for &i in &indices {
        let e = range.entry(key(points[i])).or_insert((i, i));
        if points[i][axis] < points[e.0][axis] {
            e.0 = i;
        }
        if points[i][axis] > points[e.1][axis] {
            e.1 = i;
        }
    }
    let mut out: Vec<usize> = range.values().flat_map(|&(lo, hi)| [lo, hi]).collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Six times the hull volume, exact.
    fn volume_x6(points: &[LatticePoint], faces: &[[usize; 3]]) -> i128 {
        faces
            .iter()
            .map(|f| {
                let [a, b, c] = f.map(|i| points[i]);
                let n = cross(sub(b, [0; 3]), sub(c, [0; 3]));
                let d = sub(a, [0; 3]);
                n[0] * d[0] + n[1] * d[1] + n[2] * d[2]
            })
            .sum()
    }

    #[test]
    fn lattice_cube_with_interior_and_face_points() {
        // Every lattice point of a 4×4×4 cube (side 3): many coplanar and interior points.
        let mut points = Vec::new();
        for z in 0..4 {
            for y in 0..4 {
                for x in 0..4 {
                    points.push([z, y, x]);
                }
            }
        }
        let faces = hull_triangles(&points).expect("a cube spans 3D");
        assert_eq!(volume_x6(&points, &faces), 6 * 27);
        // Closed: every directed edge has its twin.
        let edges: HashSet<(usize, usize)> = faces.iter().flat_map(|f| face_edges(*f)).collect();
        assert!(edges.iter().all(|&(a, b)| edges.contains(&(b, a))));
        // The eight corners are hull vertices (points inserted on a face plane may be
        // kept too: they split coplanar triangles without changing volume or area).
        let vertices: HashSet<usize> = faces.iter().flatten().copied().collect();
        let corners = vertices
            .iter()
            .filter(|&&i| points[i].iter().all(|&c| c == 0 || c == 3))
            .count();
        assert_eq!(corners, 8);
    }

    #[test]
    fn random_lattice_cloud_is_enclosed_by_a_closed_hull() {
        // Deterministic pseudo-random points (LCG) on a small lattice: many coplanar ties.
        let mut state = 12_345_u64;
        let mut next = |m: i64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            ((state >> 33) % m as u64) as i64
        };
        let points: Vec<LatticePoint> = (0..2_000).map(|_| [next(9), next(15), next(21)]).collect();
        let faces = hull_triangles(&points).expect("3D");
        for f in &faces {
            assert!(
                points.iter().all(|&p| orient(&points, *f, p) <= 0),
                "point outside"
            );
        }
        let edges: HashSet<(usize, usize)> = faces.iter().flat_map(|f| face_edges(*f)).collect();
        assert!(
            edges.iter().all(|&(a, b)| edges.contains(&(b, a))),
            "open hull"
        );
        assert!(volume_x6(&points, &faces) > 0);
    }

    #[test]
    fn octahedron_and_degenerate_input() {
        let points = [
            [1, 0, 0],
            [-1, 0, 0],
            [0, 1, 0],
            [0, -1, 0],
            [0, 0, 1],
            [0, 0, -1],
            [0, 0, 0],
        ];
        let faces = hull_triangles(&points).expect("3D");
        // Octahedron of radius 1: V = 4/3.
        assert_eq!(volume_x6(&points, &faces), 8);
        assert_eq!(faces.len(), 8);
        assert!(hull_triangles(&[[0, 0, 0], [1, 1, 0], [2, 0, 0], [5, 3, 0]]).is_none());
        assert!(hull_triangles(&[]).is_none());
    }
}
