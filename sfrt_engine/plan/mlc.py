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

Fluence -> segments (:func:`sequence_fluence`). Each leaf pair's profile ``p_i`` [MU] over
the beamlet columns (rows under one pair averaged) is delivered exactly, as a function of
the cumulative monitor units ``tau`` of the beam:

- a single run of one level ``c`` whose end columns may be lower (an aperture whose leaf
  tips sit inside the end columns, as conformal apertures give) is one opening for
  ``tau`` in ``(0, c]``, the tips placed inside the end columns at the fraction ``p / c``;
- any other profile follows the unidirectional leaf sweep of Bortfeld et al. (Int J Radiat
  Oncol Biol Phys 28:723, 1994; the step-and-shoot form analysed by Xia and Verhey, Med Phys
  25:1424, 1998) with real-valued increments: with ``d_i = p_i - p_{i-1}`` at column edge
  ``i`` (``p_{-1} = p_n = 0``), ``R_i = sum_{k<=i} max(d_k, 0)`` and ``F_i = sum_{k<=i} max(-d_k, 0)``,
  the left leaf sits at the first edge with ``R_i >= tau`` and the right leaf at the first
  edge with ``F_i >= tau``. Column ``i`` is then open for a measure ``R_i - F_i = p_i`` of
  ``tau``, both leaves only move from left to right, and the beam's MU is the minimum for a
  unidirectional sweep, ``max_j sum_i max(d_i, 0)``.

The segments are the intervals between the union of every pair's breakpoints in ``tau``,
so the delivered open fluence equals the map to round-off; equal consecutive segments are
merged. The price of exactness is the segment count of a finely modulated map (up to the
number of distinct breakpoints); a planner that needs few segments smooths or quantises
the map first.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

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


def _row_pieces(profile: np.ndarray, ue: np.ndarray, rtol: float) -> list[tuple[float, float, float, float]]:
    """Openings ``(tau_start, tau_end, lo, hi)`` of one leaf pair that deliver ``profile`` [MU] exactly.

    A single run of equal values with smaller end values (a shape with partial leaf-end columns)
    is one opening of the run's level with the leaf tips inside the end columns; anything else
    is the unidirectional sweep with real-valued increments (module docstring).
    """
    nz = np.nonzero(profile > 0)[0]
    if nz.size == 0:
        return []
    i0, i1 = int(nz[0]), int(nz[-1])
    run = profile[i0:i1 + 1]
    top = float(run.max())
    inner = run[1:-1]
    if np.all(np.abs(inner - top) <= rtol * top) and run[0] <= top * (1 + rtol) and run[-1] <= top * (1 + rtol):
        du_lo = ue[i0 + 1] - ue[i0]
        du_hi = ue[i1 + 1] - ue[i1]
        if i0 == i1:
            lo = ue[i0 + 1] - du_lo * run[0] / top
            return [(0.0, top, float(lo), float(ue[i0 + 1]))]
        lo = ue[i0 + 1] - du_lo * min(run[0] / top, 1.0)
        hi = ue[i1] + du_hi * min(run[-1] / top, 1.0)
        return [(0.0, top, float(lo), float(hi))]
    inc = np.diff(np.concatenate([[0.0], profile, [0.0]]))  # at edges 0..n
    rises = np.cumsum(np.maximum(inc, 0.0))
    falls = np.cumsum(np.maximum(-inc, 0.0))
    taus = np.unique(np.concatenate([[0.0], rises, falls]))
    taus = taus[taus <= rises[-1] * (1 + 1e-12)]
    pieces = []
    for a, b in pairwise(taus):
        if b - a <= rtol * rises[-1]:
            continue
        mid = 0.5 * (a + b)
        left = int(np.searchsorted(rises, mid, side="left"))
        right = int(np.searchsorted(falls, mid, side="left"))
        pieces.append((float(a), float(b), float(ue[left]), float(ue[right])))
    return pieces


def sequence_fluence(weights_mu, u_edges_mm, v_edges_mm, boundaries_mm, *, rtol: float = 1e-9,
                     where: str = "beam") -> list[Segment]:
    """Step-and-shoot segments that deliver a beamlet fluence map exactly with an MLC (module docstring).

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
    rtol : float
        Relative tolerance under which two fluence levels count as equal.
    where : str
        Beam name for error messages.

    Returns
    -------
    list of Segment
        In delivery order (increasing cumulative MU).
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
    profiles = np.zeros((b.size - 1, w.shape[1]))
    has = covered > 0
    profiles[has] = (ov[has] @ w) / covered[has][:, None]
    profiles[profiles < rtol * w.max()] = 0.0
    pieces = [_row_pieces(row, ue, rtol) for row in profiles]
    taus = np.unique(np.concatenate([[0.0]] + [[p[0] for p in ps] + [p[1] for p in ps] for ps in pieces]))
    keep = np.concatenate([[True], np.diff(taus) > rtol * w.max()])
    taus = taus[keep]
    segments: list[Segment] = []
    v_lo, v_hi = float(ve[0]), float(ve[-1])
    n_pairs = b.size - 1
    for a, c in pairwise(taus):
        mid = 0.5 * (a + c)
        pos = np.zeros((n_pairs, 2))
        open_pairs = []
        for j, ps in enumerate(pieces):
            for t0, t1, lo, hi in ps:
                if t0 < mid < t1:
                    pos[j] = lo, hi
                    open_pairs.append(j)
                    break
        if not open_pairs:
            continue
        if segments and _open_set(segments[-1]) == open_pairs and \
                np.array_equal(segments[-1].positions_mm[open_pairs], pos[open_pairs]):
            last = segments[-1]
            segments[-1] = Segment(last.positions_mm, last.jaw_u_mm, last.jaw_v_mm, last.mu + float(c - a))
            continue
        jaw_u = (float(pos[open_pairs, 0].min()), float(pos[open_pairs, 1].max()))
        jaw_v = (max(float(b[open_pairs[0]]), v_lo), min(float(b[open_pairs[-1] + 1]), v_hi))
        closed = np.setdiff1d(np.arange(n_pairs), open_pairs)
        pos[closed] = 0.5 * (jaw_u[0] + jaw_u[1])  # closed pairs park mid-field with zero gap
        segments.append(Segment(pos, jaw_u, jaw_v, float(c - a)))
    return segments


def _open_set(segment: Segment) -> list[int]:
    p = segment.positions_mm
    return [int(j) for j in np.nonzero(p[:, 1] > p[:, 0])[0]]
