"""VMAT arcs: conformal MLC apertures at control points along a gantry arc (DESIGN 5.2).

An arc is a sequence of control points (gantry angle, MLC aperture, meterset
weight). Each control point is delivered here as a static :class:`Beam` whose
beamlet weights are the open fraction of each beamlet under the aperture times the
control point's MU, so ``compute_dose(arc, patient)`` is the sum of the static beams
(the gantry motion between control points is not modelled: dose is sampled at the
control points, DESIGN 5.2).

Geometry at one control point (BEV coordinates at the isocentre plane, see
:mod:`sfrt_engine.plan.geometry`):

- Leaf pair ``j`` covers ``v`` in ``[j w, (j + 1) w)``, ``w = leaf_width_mm``, so a leaf
  edge lies on the central axis. Its two leaves sit at ``u_lo[j] <= u_hi[j]``.
- Each voxel centre ``p`` of the structure projects to ``(u_p, v_p)``; the voxel itself
  covers ``u_p +- h_u``, ``v_p +- h_v`` with ``h_u = (|e_u.x| dx + |e_u.y| dy + |e_u.z| dz) / 2 * SAD / z_p``
  (and the same with ``e_v``): the half-extent of its projected box.
- The aperture is the projection dilated by a disc of radius ``m = margin_mm``: with
  ``g`` the gap along ``v`` between the voxel's ``v`` extent and band ``j``
  (0 where they overlap), voxel ``p`` opens pair ``j`` when ``g < m`` (or they overlap)
  to ``u_p +- (h_u + sqrt(m^2 - g^2))``. A pair opens from the smallest to the largest
  of these over all voxels; pairs that no voxel reaches stay closed. Every point of
  the dilated projection is therefore inside the aperture, and each pair's opening
  along ``u`` ends exactly on the dilated projection's extent in that pair's band.
- Beamlets: ``beamlet_mm = (du, dv)``, columns with an edge on the central axis along
  ``u`` and ``w / dv`` rows per leaf pair along ``v`` (``dv`` must divide ``w``), so every
  beamlet row lies under one leaf pair. A beamlet's weight is the length of
  ``[u_lo, u_hi]`` inside its column divided by ``du`` (the exact open area fraction,
  since its row is entirely under the pair), times the control point's MU. The
  default ``beamlet_mm = (w / 2, w)`` puts a leaf end to within a 2.5 mm column for 5 mm
  leaves; the fractional weight spreads the end over that column, well inside the
  6 MV penumbra (several mm, 80-20 %).

Meterset: control point ``k`` gets ``MU_k = total_mu * m_k / sum(m)`` with
``m_k = 1`` (uniform) or the given ``meterset_weights``; ``total_mu`` defaults to the
number of control points (1 MU each when uniform).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..dose import compute_dose
from ..errors import PlanError
from ..machines import PhotonMachine
from ..patient import Patient
from .beam import Beam
from .geometry import beam_frame

__all__ = ["Arc", "ControlPoint", "arc_gantry_angles", "conformal_arc", "refine_leaf_pair_fluence"]

#: Relative tolerance on angles and lengths when testing grid alignment (round-off only).
_EPS = 1e-9


@dataclass(frozen=True, eq=False)
class ControlPoint:
    """One control point of an arc, as built.

    Attributes
    ----------
    index : int
        Position along the arc, from 0.
    gantry_deg : float
        Gantry angle [deg], in [0, 360).
    meterset_weight : float
        Fraction of the arc's MU delivered here (the fractions sum to 1).
    mu : float
        MU of this control point.
    leaf_edges_v_mm : ndarray, shape (n_pairs + 1,)
        Edges of the leaf pairs along v at the isocentre plane [mm], from the first to
        the last open pair.
    leaf_positions_mm : ndarray, shape (n_pairs, 2)
        ``(u_lo, u_hi)`` of each leaf pair [mm]; a closed pair (no structure within the
        margin of its band) has ``u_lo == u_hi == 0``.
    beam : Beam or None
        The static beam delivering this control point; None when ``mu == 0``.
    pair_fluence : ndarray, shape (n_pairs,)
        Relative fluence under each leaf pair: 1 for a conformal arc, other values
        after :func:`refine_leaf_pair_fluence`.
    """

    index: int
    gantry_deg: float
    meterset_weight: float
    mu: float
    leaf_edges_v_mm: np.ndarray
    leaf_positions_mm: np.ndarray
    beam: Beam | None
    pair_fluence: np.ndarray

    @property
    def open_pairs(self) -> np.ndarray:
        """Boolean mask of the open leaf pairs, shape (n_pairs,)."""
        return self.leaf_positions_mm[:, 1] > self.leaf_positions_mm[:, 0]


class Arc(list):
    """A VMAT arc: a list of the static beams of its control points with MU > 0.

    Being a list of :class:`Beam`, it goes to ``compute_dose`` unchanged, and
    ``arc1 + arc2`` is the plain list of both arcs' beams. The metadata below records
    the arc as built; editing the list does not update it.

    Attributes
    ----------
    control_points : tuple of ControlPoint
        Every control point, in delivery order (including any with zero MU).
    name : str
    direction : str
        ``"cw"`` or ``"ccw"``.
    leaf_width_mm : float
        Leaf pair ``j`` covers ``v`` in ``[j w, (j + 1) w)`` at every control point.
    """

    def __init__(self, control_points, name: str, direction: str, leaf_width_mm: float) -> None:
        self.control_points = tuple(control_points)
        self.name = name
        self.direction = direction
        self.leaf_width_mm = float(leaf_width_mm)
        super().__init__(cp.beam for cp in self.control_points if cp.beam is not None)

    @property
    def gantry_deg(self) -> np.ndarray:
        """Gantry angle of every control point [deg], shape (n,)."""
        return np.array([cp.gantry_deg for cp in self.control_points])

    @property
    def total_mu(self) -> float:
        return float(sum(cp.mu for cp in self.control_points))

    def __repr__(self) -> str:
        g = self.gantry_deg
        return (f"Arc({self.name!r}, {len(self.control_points)} control points, {g[0]:g} -> {g[-1]:g} deg "
                f"{self.direction}, {self.total_mu:g} MU)")


def _check_angle(value, label: str) -> float:
    try:
        a = float(value)
    except (TypeError, ValueError):
        raise PlanError(f"{label}={value!r}: expected an angle in degrees") from None
    if not (np.isfinite(a) and 0.0 <= a <= 360.0):
        raise PlanError(f"{label}={value!r}: expected a gantry angle in [0, 360] degrees")
    return a % 360.0


def arc_gantry_angles(start_deg: float, stop_deg: float, direction: str = "cw", spacing_deg: float = 4.0) -> np.ndarray:
    """Control-point gantry angles of an arc [deg].

    Angles run from ``start_deg`` towards ``stop_deg`` every ``spacing_deg``: increasing
    (wrapping 359 -> 0) for ``"cw"``, decreasing for ``"ccw"`` (IEC 61217: the gantry
    angle increases clockwise for an observer at the foot of the couch facing the
    gantry). Both ends are included when the arc length is a whole number of
    spacings; otherwise the last angle is the last grid point before ``stop_deg``.
    ``start_deg == stop_deg`` is a full 360-degree arc: the angles ``start + k spacing``
    for ``k spacing < 360``, without repeating the start.

    Returns
    -------
    ndarray of float, shape (n,)
        Angles in [0, 360).
    """
    start = _check_angle(start_deg, "start_deg")
    stop = _check_angle(stop_deg, "stop_deg")
    if not isinstance(direction, str) or direction.lower() not in ("cw", "ccw"):
        raise PlanError(f"direction={direction!r}: expected 'cw' (increasing gantry angle) or 'ccw' (decreasing)")
    sign = 1.0 if direction.lower() == "cw" else -1.0
    try:
        spacing = float(spacing_deg)
    except (TypeError, ValueError):
        raise PlanError(f"spacing_deg={spacing_deg!r}: expected a positive angle in degrees") from None
    if not (np.isfinite(spacing) and 0.0 < spacing <= 360.0):
        raise PlanError(f"spacing_deg={spacing_deg!r}: expected an angle in (0, 360] degrees")
    span = (sign * (stop - start)) % 360.0
    if span < _EPS * 360.0 or span > 360.0 * (1 - _EPS):
        # full circle: no control point repeats the start
        n = int(np.ceil(360.0 / spacing - _EPS * 360.0 / spacing))
    else:
        n = int(np.floor(span / spacing + _EPS * 360.0 / spacing)) + 1
    angles = (start + sign * spacing * np.arange(n)) % 360.0
    angles = np.round(angles, 9) % 360.0  # drop round-off such as 359.9999999999
    return angles


def _leaf_openings(u, v, hu, hv, leaf_mm: float, margin_mm: float):
    """Leaf pair openings of the projection ``(u, v) +- (hu, hv)`` dilated by a disc of ``margin_mm``.

    Returns
    -------
    j0 : int
        Index of the first leaf pair (band ``[j0 w, (j0 + 1) w)``).
    lo, hi : ndarray, shape (n_pairs,)
        Leaf positions along u [mm]; ``lo = +inf, hi = -inf`` for closed pairs.
    """
    v_lo, v_hi = v - hv, v + hv
    first = np.floor((v_lo - margin_mm) / leaf_mm).astype(np.int64)
    last = np.ceil((v_hi + margin_mm) / leaf_mm).astype(np.int64) - 1  # bands overlapping with length > 0
    j0, j1 = int(first.min()), int(last.max())
    lo = np.full(j1 - j0 + 1, np.inf)
    hi = np.full(j1 - j0 + 1, -np.inf)
    for k in range(int((last - first).max()) + 1):
        j = first + k
        take = j <= last
        jj = j[take]
        gap = np.maximum(0.0, np.maximum(jj * leaf_mm - v_hi[take], v_lo[take] - (jj + 1) * leaf_mm))
        reach = hu[take] + np.sqrt(np.maximum(margin_mm * margin_mm - gap * gap, 0.0))
        np.minimum.at(lo, jj - j0, u[take] - reach)
        np.maximum.at(hi, jj - j0, u[take] + reach)
    return j0, lo, hi


def _beamlet_fractions(lo, hi, du: float) -> tuple[int, np.ndarray]:
    """Open fraction of beamlet columns ``[i du, (i + 1) du)`` under leaf gaps ``[lo, hi]``.

    Returns the first column index and the fractions, shape (n_pairs, n_columns).
    """
    is_open = hi > lo
    i0 = int(np.floor(lo[is_open].min() / du + _EPS))
    i1 = int(np.ceil(hi[is_open].max() / du - _EPS))
    edges = du * np.arange(i0, i1 + 1)
    a = np.where(is_open, lo, 0.0)[:, None]
    b = np.where(is_open, hi, 0.0)[:, None]
    overlap = np.clip(np.minimum(b, edges[None, 1:]) - np.maximum(a, edges[None, :-1]), 0.0, du)
    return i0, overlap / du


def _as_beamlet_size(beamlet_mm, leaf_mm: float) -> tuple[float, float]:
    if beamlet_mm is None:
        return 0.5 * leaf_mm, leaf_mm
    size = np.asarray(beamlet_mm, dtype=float)
    if size.ndim > 1 or size.size not in (1, 2):
        raise PlanError(f"beamlet_mm={beamlet_mm!r}: expected a size or (du, dv) in mm")
    du, dv = np.broadcast_to(size, (2,))
    if not (np.isfinite(du) and np.isfinite(dv) and du > 0 and dv > 0):
        raise PlanError(f"beamlet_mm={beamlet_mm!r}: expected positive sizes in mm")
    rows = leaf_mm / dv
    if abs(rows - round(rows)) > 1e-6 * rows or round(rows) < 1:
        raise PlanError(f"beamlet_mm={beamlet_mm!r}: the beamlet size along v ({dv:g} mm) must divide the leaf "
                        f"width ({leaf_mm:g} mm) so that beamlet rows align with the leaves")
    return float(du), float(dv)


def _meterset(weights, n: int, total_mu) -> np.ndarray:
    total = float(n) if total_mu is None else total_mu
    if not (np.isscalar(total) and np.isfinite(total) and total > 0):
        raise PlanError(f"total_mu={total_mu!r}: expected a positive number of MU")
    if weights is None:
        return np.full(n, total / n)
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise PlanError(f"meterset_weights has shape {w.shape}; the arc has {n} control points, expected ({n},)")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise PlanError("meterset_weights must be finite and >= 0 with a positive sum")
    return total * w / w.sum()


def conformal_arc(patient: Patient, structure, machine: PhotonMachine, start_deg: float = 181.0,
                  stop_deg: float = 179.0, direction: str = "cw", spacing_deg: float = 4.0, couch_deg: float = 0.0,
                  collimator_deg: float = 0.0, leaf_width_mm: float = 5.0, margin_mm: float = 5.0,
                  isocenter_xyz_mm=None, meterset_weights=None, beamlet_mm=None, total_mu: float | None = None,
                  name: str = "arc") -> Arc:
    """A conformal VMAT arc: MLC apertures fitted to the BEV projection of a structure.

    See the module docstring for the aperture, beamlet and meterset formulas.

    Parameters
    ----------
    patient : Patient
    structure : str or bool ndarray [z, y, x]
        Name of the target structure, or its mask.
    machine : PhotonMachine
    start_deg, stop_deg : float
        Gantry angles [deg] in [0, 360]; equal angles give a full 360-degree arc.
    direction : {"cw", "ccw"}
        Increasing (cw) or decreasing (ccw) gantry angle.
    spacing_deg : float
        Gantry angle between control points [deg] (see :func:`arc_gantry_angles`).
    couch_deg, collimator_deg : float
        Fixed for the whole arc [deg]; the collimator rotates the leaves with the BEV frame.
    leaf_width_mm : float
        MLC leaf width at the isocentre plane [mm].
    margin_mm : float
        Margin around the projection, at the isocentre plane [mm].
    isocenter_xyz_mm : tuple of float, optional
        Defaults to the centroid of the structure's voxel centres.
    meterset_weights : sequence of float, shape (n_control_points,), optional
        Relative MU per control point (>= 0); uniform when omitted.
    beamlet_mm : float or (du, dv), optional
        Beamlet size at the isocentre plane [mm]; default ``(leaf_width_mm / 2, leaf_width_mm)``.
        ``dv`` must divide ``leaf_width_mm``.
    total_mu : float, optional
        MU of the whole arc; default one per control point.
    name : str

    Returns
    -------
    Arc
        A list of Beam, one per control point with MU > 0, with ``control_points``.
    """
    if not isinstance(machine, PhotonMachine):
        raise TypeError(f"machine must be a PhotonMachine, got {type(machine).__name__}")
    from .builders import structure_mask

    mask, structure = structure_mask(patient, structure, name)
    if not mask.any():
        raise PlanError(f"structure {structure!r} is empty; a conformal arc needs at least one voxel")
    angles = arc_gantry_angles(start_deg, stop_deg, direction, spacing_deg)
    for label, value in (("leaf_width_mm", leaf_width_mm), ("margin_mm", margin_mm)):
        if not (np.isscalar(value) and np.isfinite(value)):
            raise PlanError(f"{label}={value!r}: expected a finite length in mm")
    if not leaf_width_mm > 0:
        raise PlanError(f"leaf_width_mm={leaf_width_mm!r}: expected a positive leaf width in mm")
    if not margin_mm >= 0:
        raise PlanError(f"margin_mm={margin_mm!r}: expected a margin >= 0 mm")
    du, dv = _as_beamlet_size(beamlet_mm, float(leaf_width_mm))
    rows_per_pair = int(round(leaf_width_mm / dv))
    mu = _meterset(meterset_weights, angles.size, total_mu)

    grid = patient.grid
    points = grid.voxel_centres_mm(mask)
    iso = points.mean(axis=0) if isocenter_xyz_mm is None else np.asarray(isocenter_xyz_mm, dtype=float)
    spacing = np.asarray(grid.spacing_xyz_mm)
    control_points = []
    for k, (gantry, cp_mu) in enumerate(zip(angles, mu)):
        frame = beam_frame(iso, machine.sad_mm, float(gantry), couch_deg, collimator_deg)
        u, v, z = frame.to_bev(points)
        if np.any(z <= 0):
            raise PlanError(f"arc {name!r}, gantry {gantry:g} deg: the source lies inside or behind structure "
                            f"{structure!r}")
        scale = machine.sad_mm / z
        hu = 0.5 * float(np.abs(frame.axis_u) @ spacing) * scale
        hv = 0.5 * float(np.abs(frame.axis_v) @ spacing) * scale
        j0, lo, hi = _leaf_openings(u, v, hu, hv, float(leaf_width_mm), float(margin_mm))
        is_open = hi > lo
        positions = np.where(is_open[:, None], np.stack([lo, hi], axis=1), 0.0)
        edges_v = leaf_width_mm * np.arange(j0, j0 + lo.size + 1, dtype=float)
        beam = None
        if cp_mu > 0:
            i0, fractions = _beamlet_fractions(lo, hi, du)
            weights = np.repeat(fractions, rows_per_pair, axis=0) * cp_mu
            origin = ((i0 + 0.5) * du, j0 * leaf_width_mm + 0.5 * dv)
            beam = Beam(machine, tuple(iso), float(gantry), weights, (du, dv), origin, couch_deg=float(couch_deg),
                        collimator_deg=float(collimator_deg), name=f"{name}_cp{k:03d}_g{gantry:g}")
        control_points.append(ControlPoint(k, float(gantry), float(cp_mu / mu.sum()), float(cp_mu), edges_v,
                                           positions, beam, np.ones(lo.size)))
    return Arc(control_points, name, direction.lower(), leaf_width_mm)


def refine_leaf_pair_fluence(arc: Arc, patient: Patient, structure="PTV", iterations: int = 3,
                             backend: str = "auto", max_step: float = 2.0) -> Arc:
    """Flatten the dose of an arc over a structure by scaling the fluence under each leaf pair.

    A coplanar arc's field edges along ``v`` (the leaf-pair direction) stay at the
    same place at every control point, so the ends of the target along ``v`` (superior
    and inferior for couch 0, collimator 0) sit in the penumbra of every beam and run
    cold, while edges along ``u`` are averaged over the rotation. This deterministic
    fixed-point iteration gives leaf pair ``j`` (the same physical pair at every control
    point) a relative fluence ``r_j``, starting from 1, using the linearity of dose:

    1. compute the arc's dose ``D`` on ``patient`` (any grid: a coarser copy of the
       patient makes this cheaper) and its mean ``D_bar`` over the structure's voxels ``P``;
    2. for each pair, ``D_bar_j`` = mean of ``D(p)`` over the pairs ``(k, p)`` of control
       point ``k`` and voxel ``p`` in ``P`` whose centre projects into band ``j`` at ``k``;
    3. ``r_j <- r_j * clip(D_bar / D_bar_j, 1 / max_step, max_step)``; pairs that no voxel
       centre projects into (opened by the margin only) keep ``r_j``;
    4. every beamlet row under pair ``j`` gets its conformal weight times ``r_j``.

    The result is a fluence-modulated arc (each control point's intensity varies from
    leaf pair to leaf pair), the arc analogue of a field-in-field boost; it is not a
    leaf sequence. ``iterations`` dose computations are made.

    Parameters
    ----------
    arc : Arc
        From :func:`conformal_arc`; any existing ``pair_fluence`` is the starting point.
    patient : Patient
        Where the dose is evaluated; must have ``structure``.
    structure : str
    iterations : int
        Number of updates (>= 1).
    backend : str
        Dose backend for the iterations.
    max_step : float
        Largest factor of one update (> 1), a guard against empty or tiny bands.

    Returns
    -------
    Arc
        Same control points and MU per control point, with scaled beamlet rows and
        ``pair_fluence`` recorded.
    """
    if not isinstance(arc, Arc):
        raise TypeError(f"arc must be an Arc from conformal_arc, got {type(arc).__name__}")
    if not (isinstance(iterations, (int, np.integer)) and iterations >= 1):
        raise PlanError(f"iterations={iterations!r}: expected a whole number >= 1")
    if not (np.isfinite(max_step) and max_step > 1):
        raise PlanError(f"max_step={max_step!r}: expected a factor > 1")
    from .builders import structure_mask

    mask, structure = structure_mask(patient, structure)
    if not mask.any():
        raise PlanError(f"structure {structure!r} is empty; nothing to flatten the dose over")
    grid = patient.grid
    points = grid.voxel_centres_mm(mask)
    w = arc.leaf_width_mm
    live = [cp for cp in arc.control_points if cp.beam is not None]
    # pair index of every voxel at every control point, fixed over the iterations
    pair_of = [np.floor(cp.beam.frame.to_bev(points)[1] / w).astype(np.int64) for cp in live]
    j_lo = min(int(round(cp.leaf_edges_v_mm[0] / w)) for cp in arc.control_points)
    j_hi = max(int(round(cp.leaf_edges_v_mm[-1] / w)) for cp in arc.control_points)
    lo_all = min(j_lo, min(int(j.min()) for j in pair_of))
    n_all = max(j_hi, max(int(j.max()) + 1 for j in pair_of)) - lo_all
    fluence = np.ones(n_all)
    for cp in arc.control_points:  # start from the arc's own fluence
        j0 = int(round(cp.leaf_edges_v_mm[0] / w))
        fluence[j0 - lo_all:j0 - lo_all + cp.pair_fluence.size] = cp.pair_fluence
    current = arc
    for _ in range(iterations):
        dose = compute_dose(current, patient, backend=backend).gy[mask]
        total = np.zeros(n_all)
        count = np.zeros(n_all)
        for j in pair_of:
            total += np.bincount(j - lo_all, weights=dose, minlength=n_all)
            count += np.bincount(j - lo_all, minlength=n_all)
        seen = count > 0
        step = np.ones(n_all)
        step[seen] = np.clip(dose.mean() / (total[seen] / count[seen]), 1.0 / max_step, max_step)
        fluence *= step
        current = _with_pair_fluence(arc, fluence, lo_all)
    return current


def _with_pair_fluence(arc: Arc, fluence: np.ndarray, lo_all: int) -> Arc:
    """Copy of a conformal ``arc`` with the rows under pair ``j`` scaled by ``fluence[j - lo_all]``."""
    w = arc.leaf_width_mm
    out = []
    for cp in arc.control_points:
        j0 = int(round(cp.leaf_edges_v_mm[0] / w))
        r = fluence[j0 - lo_all:j0 - lo_all + cp.pair_fluence.size]
        beam = cp.beam
        if beam is not None:
            rows = int(round(w / beam.beamlet_mm[1]))
            base = beam.weights_mu / np.repeat(cp.pair_fluence, rows)[:, None]
            beam = beam.with_weights(base * np.repeat(r, rows)[:, None])
        out.append(replace(cp, beam=beam, pair_fluence=r.copy()))
    return Arc(out, arc.name, arc.direction, w)
