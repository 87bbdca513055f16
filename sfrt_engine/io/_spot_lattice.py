"""Spot lists (positions and weights, as in an RT Ion Plan) to and from the engine's regular spot lattices.

The engine's :class:`~sfrt_engine.plan.SpotLayer` holds weights on a regular (u, v) lattice.
A plan lists spots one by one. Planning systems place spots on square or hexagonal lattices,
which are regular lattices in u and v (a hexagonal one with half the spacing along the
staggered axis), so each axis is fitted by the coarsest spacing that puts every spot on a node:

- the spacing is the smallest gap between distinct coordinates divided by k = 1, 2, ..., 16,
  refined by least squares and rounded to ``SPACING_QUANTUM_MM`` (so that a lattice read from
  a file the engine wrote gives the same spacing again: round trips are bit-identical);
- the origin is the smallest coordinate (a spot position as stored);
- every spot must lie within ``TOLERANCE_MM`` of its node.

Spots that fit no lattice of at most ``max(16 n, 10000)`` nodes (and ``MAX_BEAMLETS_1D`` along
each axis, the kernels' limit) are split into rows of equal v, each fitted along u; a spot that
fits no row lattice becomes a layer of its own. The dose is the same, only the computation is
slower.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SPACING_QUANTUM_MM", "TOLERANCE_MM", "fit_lattices"]

#: Lattice spacings are multiples of this [mm] (0.1 um).
SPACING_QUANTUM_MM = 1e-4
#: Largest distance of a spot from its lattice node [mm].
TOLERANCE_MM = 0.01
_MAX_DIVISOR = 16


def _fit_axis(coords: np.ndarray) -> tuple[float, float, np.ndarray] | None:
    """(origin, spacing, node index per coordinate) of a 1-D lattice through ``coords``, or None."""
    origin = float(coords.min())
    offsets = coords - origin
    distinct = np.unique(np.round(offsets / TOLERANCE_MM).astype(np.int64)) * TOLERANCE_MM
    if distinct.size == 1:
        if np.max(offsets) > TOLERANCE_MM:
            return None
        return origin, 1.0, np.zeros(coords.size, dtype=np.int64)
    smallest = float(np.min(np.diff(distinct)))
    for k in range(1, _MAX_DIVISOR + 1):
        guess = smallest / k
        index = np.round(offsets / guess).astype(np.int64)
        if np.any(np.abs(offsets - index * guess) > 2 * TOLERANCE_MM):
            continue
        fitted = float(np.dot(index, offsets) / np.dot(index, index))
        spacing = float(np.round(fitted / SPACING_QUANTUM_MM) * SPACING_QUANTUM_MM)
        if spacing <= 0:
            continue
        index = np.round(offsets / spacing).astype(np.int64)
        if np.all(np.abs(offsets - index * spacing) <= TOLERANCE_MM):
            return origin, spacing, index
    return None


def fit_lattices(u_mm: np.ndarray, v_mm: np.ndarray, weights: np.ndarray) -> list[tuple]:
    """Regular lattices holding the given spots.

    Parameters
    ----------
    u_mm, v_mm : ndarray, shape (n,)
        Spot positions at the isocentre plane [mm].
    weights : ndarray, shape (n,)
        Spot weights (any unit); spots on the same node are summed.

    Returns
    -------
    list of (weights (nv, nu), (du, dv) [mm], (u0, v0) [mm])
        One lattice for all spots, or one 1 x 1 lattice per spot when they fit none.
    """
    u = np.asarray(u_mm, dtype=np.float64)
    v = np.asarray(v_mm, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    whole = _one_lattice(u, v, w)
    if whole is not None:
        return [whole]
    out = []
    row_of = np.round((v - v.min()) / TOLERANCE_MM).astype(np.int64)
    for row in np.unique(row_of):
        members = row_of == row
        fitted = _one_lattice(u[members], v[members], w[members])
        if fitted is not None:
            out.append(fitted)
        else:
            out += [(np.array([[wk]]), (1.0, 1.0), (float(uk), float(vk)))
                    for uk, vk, wk in zip(u[members], v[members], w[members])]
    return out


def _one_lattice(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> tuple | None:
    from ..kernels._task import MAX_BEAMLETS_1D

    fu, fv = _fit_axis(u), _fit_axis(v)
    if fu is None or fv is None:
        return None
    (u0, du, iu), (v0, dv, iv) = fu, fv
    nu, nv = int(iu.max()) + 1, int(iv.max()) + 1
    if nu * nv > max(16 * u.size, 10000) or max(nu, nv) > MAX_BEAMLETS_1D:
        return None
    grid = np.zeros((nv, nu))
    np.add.at(grid, (iv, iu), w)
    return grid, (du, dv), (u0, v0)
