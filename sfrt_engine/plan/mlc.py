"""MLC and jaw apertures as beamlet fluence, and the leaf sequencer that makes fluence deliverable.

All lengths are at the isocentre plane in beam's-eye-view coordinates (:mod:`.geometry`):
for an MLCX the leaves travel along ``u`` (IEC beam-limiting-device X) and leaf pair ``j``
spans ``v`` in ``[b_j, b_{j+1})`` (the plan's or the machine's leaf boundaries).

Aperture -> fluence (:func:`aperture_fluence`). The relative fluence of an aperture is 1 in
the open gap of each leaf pair, the leaf transmission ``t`` under the leaves, 1 where the
jaws are open and no leaf pair reaches, and 0 outside the jaws (jaws are taken as opaque).
An open pair (``x_hi > x_lo``) is widened by the dosimetric leaf gap ``g`` of the rounded
leaf ends, ``g / 2`` on each side (the usual planning-system model of the rounded leaf end);
a closed pair (``x_hi == x_lo``) lets through only ``t``. The weight of beamlet cell ``C`` is
the integral of this fluence over ``C`` divided by its area, so partial coverage by a
leaf, a leaf pair boundary or a jaw is exact to the beamlet area::

    f(C) = [A(J ^ C) - (1 - t) sum_j |V_j ^ J_v ^ C_v| (|J_u ^ C_u| - |O_j ^ J_u ^ C_u|)] / |C|

with ``J`` the jaw rectangle, ``V_j`` the band of pair ``j``, ``O_j`` its (widened) gap. The
sum is one matrix product per aperture.

Fluence -> segments (:func:`sequence_fluence`). The unidirectional leaf sweep of
Bortfeld et al. (Int J Radiat Oncol Biol Phys 28:723, 1994; the step-and-shoot form
analysed by Xia and Verhey, Med Phys 25:1424, 1998): a fluence map is quantised to
integer levels ``I`` in units of ``q = max / L``; for each leaf-pair profile the rise
positions (column ``i`` repeated ``max(I_i - I_{i-1}, 0)`` times) and the fall positions
(column ``i`` repeated ``max(I_{i-1} - I_i, 0)`` times, plus the last column's right edge
``I_last`` times) are sorted; unit segment ``k`` opens the leaves from the ``k``-th rise to the
``k``-th fall. Each column is then open in exactly ``I_i`` unit segments, both leaves only
move from left to right, and the number of monitor units is the minimum for a
unidirectional sweep (the sum of the positive increments of the profile). Equal
consecutive segments are merged. ``L`` is the smallest number of levels up to ``max_levels``
that represents the map exactly (a binary map needs one), otherwise ``max_levels``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PlanError
from ..machines.photon import MlcModel

__all__ = ["Segment", "aperture_fluence", "check_leaf_positions", "lattice_edges", "sequence_fluence"]

_EPS = 1e-9


def lattice_edges(lo_mm: float, hi_mm: float, step_mm: float) -> np.ndarray:
    """Edges of beamlet cells of ``step_mm`` covering ``[lo_mm, hi_mm]``, with an edge on the central axis [mm]."""
    i0 = int(np.floor(lo_mm / step_mm + _EPS))
    i1 = int(np.ceil(hi_mm / step_mm - _EPS))
    i1 = max(i1, i0 + 1)
    return step_mm * np.arange(i0, i1 + 1, dtype=float)


def _overlap(a_lo, a_hi, edges) -> np.ndarray:
    """Length of ``[a_lo, a_hi]`` (arrays, shape (m,)) inside each cell of ``edges``; shape (m, n_cells)."""
    a_lo = np.asarray(a_lo, dtype=float)[:, None]
    a_hi = np.asarray(a_hi, dtype=float)[:, None]
    return np.clip(np.minimum(a_hi, edges[None, 1:]) - np.maximum(a_lo, edges[None, :-1]), 0.0, None)


def check_leaf_positions(positions_mm, model: MlcModel, where: str) -> np.ndarray:
    """Leaf positions ``(n_pairs, 2)`` checked for crossing leaves and the travel limit.

    Raises
    ------
    PlanError
        Naming ``where`` (beam and control point), the pair and the values.
    """
    p = np.asarray(positions_mm, dtype=float)
    if p.ndim != 2 or p.shape[1] != 2 or not np.all(np.isfinite(p)):
        raise PlanError(f"{where}: leaf positions must be finite, shape (n_pairs, 2), got shape {p.shape}")
    gap = p[:, 1] - p[:, 0]
    if np.any(gap < -1e-6):
        j = int(np.argmin(gap))
        raise PlanError(f"{where}: leaf pair {j + 1} crosses (bank A at {p[j, 0]:g} mm, bank B at {p[j, 1]:g} mm, "
                        "gap < 0); expected bank A <= bank B")
    limit = model.travel_limit_mm
    if np.any(np.abs(p) > limit + 1e-6):
        j = int(np.argmax(np.abs(p).max(axis=1)))
        raise PlanError(f"{where}: leaf pair {j + 1} at ({p[j, 0]:g}, {p[j, 1]:g}) mm is outside the travel limit "
                        f"+-{limit:g} mm of MLC '{model.name}'")
    return np.maximum(p, np.stack([p[:, 0], p[:, 0]], axis=1))  # round-off crossings -> closed


def aperture_fluence(model: MlcModel, boundaries_mm, positions_mm, jaw_u_mm, jaw_v_mm, u_edges_mm,
                     v_edges_mm) -> np.ndarray:
    """Relative fluence of one aperture averaged over each beamlet cell (see the module docstring).

    Parameters
    ----------
    model : MlcModel
        Transmission and dosimetric leaf gap.
    boundaries_mm : ndarray, shape (n_pairs + 1,) or None
        Leaf pair boundaries along v [mm]; None for a field without MLC.
    positions_mm : ndarray, shape (n_pairs, 2) or (n_samples, n_pairs, 2), or None
        ``(bank A, bank B)`` leaf tips along u [mm], checked beforehand
        (:func:`check_leaf_positions`). With several samples (moving leaves under fixed
        jaws), the result is their mean fluence (exact: fluence is linear in the open lengths).
    jaw_u_mm, jaw_v_mm : (lo, hi)
        Jaw openings [mm]; give the MLC's extent where a plan has no jaw.
    u_edges_mm, v_edges_mm : ndarray, shapes (nu + 1,), (nv + 1,)
        Beamlet cell edges [mm].

    Returns
    -------
    ndarray, shape (nv, nu)
        Relative fluence in [0, 1].
    """
    ue = np.asarray(u_edges_mm, dtype=float)
    ve = np.asarray(v_edges_mm, dtype=float)
    ju = _overlap([jaw_u_mm[0]], [jaw_u_mm[1]], ue)[0]  # (nu,)
    jv = _overlap([jaw_v_mm[0]], [jaw_v_mm[1]], ve)[0]  # (nv,)
    area = np.outer(jv, ju)
    if boundaries_mm is not None and positions_mm is not None:
        b = np.asarray(boundaries_mm, dtype=float)
        p = np.asarray(positions_mm, dtype=float).reshape(-1, b.size - 1, 2)
        band_lo = np.clip(b[:-1], jaw_v_mm[0], jaw_v_mm[1])
        band_hi = np.clip(b[1:], jaw_v_mm[0], jaw_v_mm[1])
        ov_v = _overlap(band_lo, band_hi, ve).T  # (nv, n_pairs)
        is_open = p[..., 1] > p[..., 0]
        half_gap = 0.5 * model.dosimetric_leaf_gap_mm
        lo = np.clip(np.where(is_open, p[..., 0] - half_gap, 0.0), jaw_u_mm[0], jaw_u_mm[1]).reshape(-1)
        hi = np.clip(np.where(is_open, p[..., 1] + half_gap, 0.0), jaw_u_mm[0], jaw_u_mm[1]).reshape(-1)
        ov_open = _overlap(lo, np.maximum(lo, hi), ue).reshape(p.shape[0], b.size - 1, ue.size - 1).mean(axis=0)
        blocked = ov_v @ (ju[None, :] - ov_open)
        area = area - (1.0 - model.leaf_transmission) * blocked
    cell = np.outer(np.diff(ve), np.diff(ue))
    return np.clip(area / cell, 0.0, 1.0)


@dataclass(frozen=True, eq=False)
class Segment:
    """One step-and-shoot segment: an aperture and its monitor units.

    Attributes
    ----------
    positions_mm : ndarray, shape (n_pairs, 2)
        Leaf tips (bank A, bank B) as the fluence needs them, before any leaf-gap correction [mm].
    jaw_u_mm, jaw_v_mm : (lo, hi)
        Jaws fitted to the open part of the segment [mm].
    mu : float
    """

    positions_mm: np.ndarray
    jaw_u_mm: tuple[float, float]
    jaw_v_mm: tuple[float, float]
    mu: float


def _levels(f: np.ndarray, max_levels: int) -> tuple[np.ndarray, float]:
    top = float(f.max())
    for n in range(1, max_levels + 1):
        scaled = f / top * n
        if np.allclose(scaled, np.round(scaled), rtol=0.0, atol=1e-6):
            return np.round(scaled).astype(np.int64), top / n
    return np.round(f / top * max_levels).astype(np.int64), top / max_levels


def _sweep(profile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rise and fall column edges (indices into the column edges) of a unidirectional sweep, each length N."""
    padded = np.concatenate([[0], profile, [0]])
    inc = np.diff(padded)  # inc[i] = I_i - I_{i-1}, i = 0..n (edge i)
    edges = np.arange(inc.size)
    rises = np.repeat(edges, np.maximum(inc, 0))
    falls = np.repeat(edges, np.maximum(-inc, 0))
    return rises, falls


def sequence_fluence(weights_mu, u_edges_mm, v_edges_mm, boundaries_mm, *, max_levels: int = 20,
                     where: str = "beam") -> list[Segment]:
    """Step-and-shoot segments that deliver a beamlet fluence map with an MLC (module docstring).

    Parameters
    ----------
    weights_mu : ndarray, shape (nv, nu)
        Beamlet weights [MU], >= 0.
    u_edges_mm, v_edges_mm : ndarray, shapes (nu + 1,), (nv + 1,)
        Beamlet edges [mm].
    boundaries_mm : ndarray, shape (n_pairs + 1,)
        The MLC's leaf boundaries [mm]; the beamlet rows under each pair are averaged
        (weighted by their overlap with the pair), so rows narrower than a leaf are
        delivered as their mean.
    max_levels : int
        Most intensity levels of the quantisation.
    where : str
        Beam name for error messages.

    Returns
    -------
    list of Segment
        In delivery order; the MU of a segment is ``levels * q``.
    """
    w = np.asarray(weights_mu, dtype=float)
    ue = np.asarray(u_edges_mm, dtype=float)
    ve = np.asarray(v_edges_mm, dtype=float)
    b = np.asarray(boundaries_mm, dtype=float)
    if w.ndim != 2 or w.shape != (ve.size - 1, ue.size - 1):
        raise PlanError(f"{where}: weights shape {w.shape} does not match {ve.size - 1} x {ue.size - 1} beamlets")
    if not np.any(w > 0):
        raise PlanError(f"{where}: every beamlet weight is zero; nothing to sequence")
    if ve[0] < b[0] - 1e-6 or ve[-1] > b[-1] + 1e-6:
        raise PlanError(f"{where}: the fluence spans v = {ve[0]:g} to {ve[-1]:g} mm, beyond the MLC's leaf boundaries "
                        f"({b[0]:g} to {b[-1]:g} mm)")
    ov = _overlap(b[:-1], b[1:], ve)  # (n_pairs, nv)
    covered = ov.sum(axis=1)
    pair_profile = np.zeros((b.size - 1, w.shape[1]))
    has = covered > 0
    pair_profile[has] = (ov[has] @ w) / covered[has][:, None]
    levels, unit = _levels(pair_profile, max_levels)
    sweeps = [_sweep(row) for row in levels]
    n_seg = max(r.size for r, _ in sweeps)
    segments: list[Segment] = []
    v_lo, v_hi = float(ve[0]), float(ve[-1])
    for k in range(n_seg):
        pos = np.zeros((b.size - 1, 2))
        open_pairs = []
        for j, (rises, falls) in enumerate(sweeps):
            if k < rises.size:
                pos[j] = ue[rises[k]], ue[falls[k]]
                open_pairs.append(j)
        if segments and np.array_equal(segments[-1].positions_mm[open_pairs], pos[open_pairs]) and \
                _open_set(segments[-1]) == open_pairs:
            last = segments[-1]
            segments[-1] = Segment(last.positions_mm, last.jaw_u_mm, last.jaw_v_mm, last.mu + unit)
            continue
        jaw_u = (float(pos[open_pairs, 0].min()), float(pos[open_pairs, 1].max()))
        jaw_v = (max(float(b[open_pairs[0]]), v_lo), min(float(b[open_pairs[-1] + 1]), v_hi))
        closed = np.setdiff1d(np.arange(b.size - 1), open_pairs)
        pos[closed] = 0.5 * (jaw_u[0] + jaw_u[1])  # closed pairs park mid-field with zero gap
        segments.append(Segment(pos, jaw_u, jaw_v, unit))
    return segments


def _open_set(segment: Segment) -> list[int]:
    p = segment.positions_mm
    return [int(j) for j in np.nonzero(p[:, 1] > p[:, 0])[0]]
