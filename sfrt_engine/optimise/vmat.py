"""Deliverable VMAT: optimised arc fluence sequenced into one MLC opening per leaf pair per control point.

Three steps (the "fluence map optimisation, arc sequencing, aperture-weight optimisation"
scheme of Craft et al., Med Phys 39:686, 2012 and of matRad's VMAT, Christiansen et al.,
Med Phys 45:2873, 2018):

1. the beamlet fluence of every control point of a conformal arc is optimised
   (:func:`sfrt_engine.components.optimise_beams`);
2. :func:`sequence_arc` turns each control point's fluence into one opening per leaf pair:
   along each pair's mean fluence profile ``p`` (beamlet columns), the opening is the run
   of columns maximising ``sum(p - t)`` with ``t = max(0.5 max(p), 0.1 max(P))`` (``P``
   the control point's fluence; the maximum-sum run, Kadane's algorithm); a pair whose
   run has no positive sum closes. Control points are then visited in delivery order
   and each leaf is moved towards its wish by at most ``L = v * |gantry step|``
   (``v`` the machine's leaf travel limit in mm per degree of gantry rotation); where the
   two leaves of a pair would cross they meet at their midpoint (a closed pair), which
   both can reach; a pair with no wish closes towards its centre. Before the first
   control point each pair stands closed at the centre of its first opening (or open
   there, if that is the first control point), so every control point lists the same
   leaf pairs and every leaf's path obeys the limit;
3. :class:`MetersetOperator` re-optimises one non-negative meterset (MU) weight per control
   point with the apertures fixed.

The result is deliverable by construction: one opening per leaf pair per control point,
leaf travel between neighbouring control points within the limit (checked by
:func:`max_leaf_travel_mm_per_deg`), MU >= 0.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..errors import PlanError
from ..plan.arcs import Arc, ControlPoint, _beamlet_fractions
from ..plan.beam import Beam

__all__ = ["MetersetOperator", "max_leaf_travel_mm_per_deg", "sequence_arc"]


class MetersetOperator:
    """Dose of an arc as a function of its control points' MU: ``d = A (s[k(i)] * w0_i)``.

    ``op`` is the beamlet dose operator of the arc's beams (free weights: every non-zero beamlet,
    beam by beam in order, :mod:`._layout`); ``s`` has one entry per beam (control point) and
    scales its whole aperture. ``weights0`` is all ones (the MU the beams carry).
    """

    def __init__(self, op, beams) -> None:
        counts = [int(np.count_nonzero(b.weights_mu)) for b in beams]
        if sum(counts) != op.n_weights:
            raise PlanError(f"meterset operator: the beams have {sum(counts)} non-zero beamlets but the operator "
                            f"{op.n_weights} free weights; build the operator on these beams' apertures")
        self._op = op
        self._group = np.repeat(np.arange(len(beams)), counts)
        self._w0 = np.asarray(op.weights0, dtype=np.float64)
        self.n_weights = len(beams)
        self.weights0 = np.ones(len(beams))
        self.backend, self.mode = op.backend, f"{op.mode}, meterset"

    def beamlet_weights(self, s) -> np.ndarray:
        return self._w0 * np.asarray(s, dtype=np.float64)[self._group]

    def forward(self, s):
        return self._op.forward(self.beamlet_weights(s))

    def adjoint(self, r) -> np.ndarray:
        g = np.asarray(self._op.adjoint(r), dtype=np.float64)
        return np.bincount(self._group, weights=self._w0 * g, minlength=self.n_weights)

    def beams_with(self, s) -> list:
        return self._op.beams_with(self.beamlet_weights(s))


def _best_run(p: np.ndarray, t: float) -> tuple[int, int] | None:
    """Columns ``[a, b)`` maximising ``sum(p[a:b] - t)``; None when no run has a positive sum."""
    best, best_ab, run, start = 0.0, None, 0.0, 0
    for i, x in enumerate(p - t):
        if run <= 0.0:
            run, start = 0.0, i
        run += x
        if run > best:
            best, best_ab = run, (start, i + 1)
    return best_ab


def _pair_profiles(beam: Beam, leaf_width_mm: float):
    """Per leaf pair (absolute index j, the pair covering v in [j w, (j + 1) w)): mean fluence row and column edges."""
    dv = beam.beamlet_mm[1]
    rows = round(leaf_width_mm / dv)
    ue, ve = beam.beamlet_edges_mm()
    nv = beam.weights_mu.shape[0]
    if rows < 1 or nv % rows or abs(rows * dv - leaf_width_mm) > 1e-6 * leaf_width_mm:
        raise PlanError(f"beam {beam.name!r}: beamlet rows of {dv:g} mm do not tile {leaf_width_mm:g} mm leaves")
    j0 = round(ve[0] / leaf_width_mm)
    prof = beam.weights_mu.reshape(nv // rows, rows, -1).mean(axis=1)
    return j0, prof, ue


def sequence_arc(arc: Arc, fluence_beams: list[Beam], leaf_travel_mm_per_deg: float) -> Arc:
    """One opening per leaf pair per control point from an optimised arc fluence (module docstring, step 2).

    Parameters
    ----------
    arc : Arc
        The arc the fluence was optimised on (its control points give gantry angles, leaf width, beamlets).
    fluence_beams : list of Beam
        Its control-point beams (same order) with optimised beamlet weights.
    leaf_travel_mm_per_deg : float
        Largest leaf movement per degree of gantry rotation [mm/deg].

    Returns
    -------
    Arc
        Apertures as fractions of open beamlet area times the control point's MU, where the MU is the
        mean optimised fluence inside its opening (a starting point for the meterset optimisation).
    """
    if not (np.isfinite(leaf_travel_mm_per_deg) and leaf_travel_mm_per_deg > 0):
        raise PlanError(f"leaf_travel_mm_per_deg={leaf_travel_mm_per_deg!r}: expected a positive limit in mm/deg")
    cps = [cp for cp in arc.control_points if cp.beam is not None]
    if len(cps) != len(fluence_beams):
        raise PlanError(f"sequence_arc: {len(fluence_beams)} beams for {len(cps)} control points with MU")
    w = arc.leaf_width_mm
    wishes = []
    for beam in fluence_beams:
        j0, prof, ue = _pair_profiles(beam, w)
        top = float(prof.max())
        wish = {}
        for r, p in enumerate(prof):
            run = _best_run(p, max(0.5 * float(p.max()), 0.1 * top)) if top > 0 and p.max() > 0 else None
            wish[j0 + r] = (float(ue[run[0]]), float(ue[run[1]])) if run else None
        wishes.append(wish)
    every = [j for wish in wishes for j in wish]
    pairs = range(min(every), max(every) + 1)
    # before the first control point every leaf pair stands where it first opens (its first wish if that is
    # at the first control point, else closed at the centre of that first opening; never: closed at 0)
    prev: dict[int, tuple[float, float]] = {}
    for j in pairs:
        first = next((k for k, wish in enumerate(wishes) if wish.get(j) is not None), None)
        if first is None:
            prev[j] = (0.0, 0.0)
        elif first == 0:
            prev[j] = wishes[0][j]
        else:
            c = 0.5 * sum(wishes[first][j])
            prev[j] = (c, c)
    out, gantry_prev = [], None
    for cp, beam, wish in zip(cps, fluence_beams, wishes):
        step = 0.0 if gantry_prev is None else abs((cp.gantry_deg - gantry_prev + 180.0) % 360.0 - 180.0)
        reach = leaf_travel_mm_per_deg * step
        gantry_prev = cp.gantry_deg
        pos = {}
        for j in pairs:
            lo_p, hi_p = prev[j]
            want = wish.get(j)
            a, b = want if want is not None else (0.5 * (lo_p + hi_p),) * 2
            lo = min(max(a, lo_p - reach), lo_p + reach)
            hi = min(max(b, hi_p - reach), hi_p + reach)
            if lo > hi:
                lo = hi = 0.5 * (lo + hi)
            pos[j] = (lo, hi)
        prev = pos
        out.append(_control_point(cp, beam, pos, w))
    return Arc(out, arc.name, arc.direction, w)


def _control_point(cp: ControlPoint, beam: Beam, pos: dict, w: float) -> ControlPoint:
    js = sorted(pos)
    lo = np.array([pos[j][0] for j in js])
    hi = np.array([pos[j][1] for j in js])
    du, dv = beam.beamlet_mm
    open_ = hi > lo
    new_beam, mu = None, 0.0
    if open_.any():
        i0, fractions = _beamlet_fractions(lo, hi, du)
        rows = round(w / dv)
        # MU: the mean optimised fluence under the opening
        j0, prof, ue = _pair_profiles(beam, w)
        cu = 0.5 * (ue[:-1] + ue[1:])
        inside = [prof[j - j0][(cu > pos[j][0]) & (cu < pos[j][1])] for j in js if 0 <= j - j0 < len(prof)]
        vals = np.concatenate(inside) if inside else np.zeros(0)
        mu = float(vals.mean()) if vals.size and vals.mean() > 0 else float(prof.max())
        if mu > 0:
            weights = np.repeat(fractions, rows, axis=0) * mu
            origin = ((i0 + 0.5) * du, js[0] * w + 0.5 * dv)
            new_beam = Beam(beam.machine, beam.isocenter_xyz_mm, beam.gantry_deg, weights, (du, dv), origin,
                            couch_deg=beam.couch_deg, collimator_deg=beam.collimator_deg, name=beam.name)
    positions = np.stack([lo, hi], axis=1)
    edges = w * np.arange(js[0], js[-1] + 2, dtype=float)
    return ControlPoint(cp.index, cp.gantry_deg, cp.meterset_weight, mu if new_beam is not None else 0.0, edges,
                        positions, new_beam, np.ones(positions.shape[0]))


def max_leaf_travel_mm_per_deg(arc: Arc) -> float:
    """Largest leaf movement between neighbouring control points per degree of gantry rotation [mm/deg].

    Leaf pairs are matched by their absolute band (``leaf_edges_v_mm``); pairs present at only one of two
    neighbouring control points are not compared (:func:`sequence_arc` lists the same pairs at every
    control point).
    """
    worst = 0.0
    cps = list(arc.control_points)
    for a, b in itertools.pairwise(cps):
        step = abs((b.gantry_deg - a.gantry_deg + 180.0) % 360.0 - 180.0)
        if step == 0 or a.leaf_positions_mm.size == 0 or b.leaf_positions_mm.size == 0:
            continue
        ja = round(a.leaf_edges_v_mm[0] / arc.leaf_width_mm) + np.arange(a.leaf_positions_mm.shape[0])
        jb = round(b.leaf_edges_v_mm[0] / arc.leaf_width_mm) + np.arange(b.leaf_positions_mm.shape[0])
        common, ia, ib = np.intersect1d(ja, jb, return_indices=True)
        if common.size:
            move = np.abs(a.leaf_positions_mm[ia] - b.leaf_positions_mm[ib]).max()
            worst = max(worst, float(move) / step)
    return worst
