"""A photon beam as delivered (control points, jaws, MLC) and its conversion to the engine's beams.

A :class:`BeamDelivery` holds what a DICOM RT Plan says about one beam. Control point ``k``
has a gantry angle, jaws, leaf positions and a cumulative meterset weight ``c_k``;
segment ``k`` (from control point ``k`` to ``k + 1``) delivers
``MU_k = M (c_{k+1} - c_k) / c_last`` of the beam meterset ``M``, while the gantry, the jaws
and the leaves move linearly from control point ``k`` to ``k + 1`` (DICOM PS3.3 C.8.8.14).

:func:`delivery_to_beams` turns it into engine beams:

- gantry fixed (static, step-and-shoot, sliding window): one :class:`Beam` whose weights
  are ``sum_k MU_k * mean over the segment of the aperture fluence``. The mean is taken at
  the midpoints of ``n_k`` equal sub-steps, ``n_k`` large enough that no leaf or jaw moves more
  than ``leaf_step_mm`` per sub-step (one sub-step when nothing moves, which is exact for
  step-and-shoot);
- gantry rotating (VMAT): an :class:`Arc`. Segment ``k`` is split into
  ``ceil(|gantry travel| / arc_spacing_deg)`` sub-arcs; each becomes a static beam at its
  midpoint angle with ``MU_k / n`` and the aperture averaged over its part of the segment
  (the same leaf sub-steps as above). Consecutive segments with the gantry standing still at
  one angle (a leaf-sequenced arc) are summed into one beam at that angle. Each control point of the Arc records
  the leaf tips at its sub-arc's midpoint (MLCX) and ``leaf_width_mm`` is the beamlet size.

Aperture fluence is :func:`sfrt_engine.plan.mlc.aperture_fluence` on a beamlet lattice of
``beamlet_mm`` with an edge on the central axis, cropped to the jaw opening.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import PlanError
from ..machines import PhotonMachine
from ..machines.photon import MlcModel, mlc_model
from .arcs import Arc, ControlPoint
from .beam import Beam
from .mlc import aperture_fluence, lattice_edges

__all__ = ["BeamDelivery", "delivery_to_beams"]


def _frozen(a, dtype=float):
    if a is None:
        return None
    arr = np.array(a, dtype=dtype, copy=True)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class BeamDelivery:
    """One photon beam as a sequence of control points (all lengths at the isocentre plane).

    Attributes
    ----------
    name : str
    number : int
        DICOM Beam Number.
    machine : PhotonMachine
    isocenter_xyz_mm : tuple of float
    meterset_mu : float
        Beam meterset for one fraction [MU].
    gantry_deg : ndarray, shape (n_cp,)
    direction : {"NONE", "CW", "CC"}
        Gantry rotation direction (DICOM GantryRotationDirection).
    cumulative_weight : ndarray, shape (n_cp,)
        Cumulative meterset weights, non-decreasing, from 0.
    collimator_deg, couch_deg : float
    jaw_u_mm, jaw_v_mm : ndarray, shape (n_cp, 2)
        X and Y jaws (``lo, hi``) per control point; the MLC's extent where the plan has none.
    leaf_boundaries_mm : ndarray, shape (n_pairs + 1,) or None
        Leaf boundaries along the axis across the leaf travel [mm]; None without MLC.
    leaf_positions_mm : ndarray, shape (n_cp, n_pairs, 2) or None
        Leaf tips (bank A, bank B) per control point [mm].
    mlc_axis : {"X", "Y"}
        Direction of leaf travel: "X" (MLCX, along u) or "Y" (MLCY, along v).
    ssd_mm : float or None
        Source-surface distance from the plan [mm], for information.
    energy_mev : float
    """

    name: str
    number: int
    machine: PhotonMachine
    isocenter_xyz_mm: tuple
    meterset_mu: float
    gantry_deg: np.ndarray
    direction: str
    cumulative_weight: np.ndarray
    collimator_deg: float
    couch_deg: float
    jaw_u_mm: np.ndarray
    jaw_v_mm: np.ndarray
    leaf_boundaries_mm: np.ndarray | None = None
    leaf_positions_mm: np.ndarray | None = None
    mlc_axis: str = "X"
    ssd_mm: float | None = None
    energy_mev: float = 6.0

    def __post_init__(self) -> None:
        for name in ("gantry_deg", "cumulative_weight", "jaw_u_mm", "jaw_v_mm", "leaf_boundaries_mm",
                     "leaf_positions_mm"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "isocenter_xyz_mm", tuple(float(c) for c in self.isocenter_xyz_mm))
        n = self.gantry_deg.size
        where = f"beam {self.name!r}"
        if self.cumulative_weight.shape != (n,) or self.jaw_u_mm.shape != (n, 2) or self.jaw_v_mm.shape != (n, 2):
            raise PlanError(f"{where}: control point arrays disagree in length ({n} gantry angles)")
        if self.direction not in ("NONE", "CW", "CC"):
            raise PlanError(f"{where}: GantryRotationDirection {self.direction!r}, expected NONE, CW or CC")
        if (self.leaf_positions_mm is None) != (self.leaf_boundaries_mm is None):
            raise PlanError(f"{where}: leaf positions and leaf boundaries go together")
        if self.leaf_positions_mm is not None and \
                self.leaf_positions_mm.shape != (n, self.leaf_boundaries_mm.size - 1, 2):
            raise PlanError(f"{where}: leaf positions have shape {self.leaf_positions_mm.shape}, expected "
                            f"({n}, {self.leaf_boundaries_mm.size - 1}, 2)")
        if self.mlc_axis not in ("X", "Y"):
            raise PlanError(f"{where}: mlc_axis={self.mlc_axis!r}, expected 'X' or 'Y'")

    @property
    def n_control_points(self) -> int:
        return int(self.gantry_deg.size)

    def scaled(self, factor: float) -> BeamDelivery:
        """Copy with the beam meterset multiplied by ``factor`` (every segment's MU scales with it)."""
        if not (np.isfinite(factor) and factor >= 0):
            raise PlanError(f"beam {self.name!r}: meterset factor {factor!r}, expected a finite number >= 0")
        return replace(self, meterset_mu=self.meterset_mu * float(factor))

    def segment_mu(self) -> np.ndarray:
        """MU of each segment (control point k to k + 1), shape (n_cp - 1,)."""
        c = self.cumulative_weight
        if c[-1] <= 0:
            raise PlanError(f"beam {self.name!r}: final cumulative meterset weight is {c[-1]:g}, expected > 0")
        return self.meterset_mu * np.diff(c) / c[-1]

    def gantry_travel_deg(self) -> np.ndarray:
        """Signed gantry travel of each segment [deg] (positive clockwise), shape (n_cp - 1,)."""
        g = self.gantry_deg
        if self.direction == "NONE":
            return np.zeros(g.size - 1)
        step = (g[1:] - g[:-1]) % 360.0
        return step if self.direction == "CW" else -((g[:-1] - g[1:]) % 360.0)


def _aperture(d: BeamDelivery, model: MlcModel, jaw_u, jaw_v, positions, ue, ve) -> np.ndarray:
    if d.mlc_axis == "X":
        return aperture_fluence(model, d.leaf_boundaries_mm, positions, jaw_u, jaw_v, ue, ve)
    # MLCY: leaves travel along v; swap the axes, compute, transpose back
    return aperture_fluence(model, d.leaf_boundaries_mm, positions, jaw_v, jaw_u, ve, ue).T


def _lerp(a, b, t):
    return None if a is None else a + (b - a) * t


def _sub_steps(d: BeamDelivery, k: int, leaf_step_mm: float) -> int:
    travel = max(float(np.abs(d.jaw_u_mm[k + 1] - d.jaw_u_mm[k]).max()),
                 float(np.abs(d.jaw_v_mm[k + 1] - d.jaw_v_mm[k]).max()))
    if d.leaf_positions_mm is not None:
        travel = max(travel, float(np.abs(d.leaf_positions_mm[k + 1] - d.leaf_positions_mm[k]).max()))
    return max(1, int(np.ceil(travel / leaf_step_mm - _EPS)))


_EPS = 1e-9


def _mean_fluence(d, model, k, t0, t1, n_leaf, ue, ve):
    """Aperture fluence averaged over fraction ``[t0, t1]`` of segment ``k`` (midpoint rule, ``n_leaf`` steps)."""
    total = np.zeros((ve.size - 1, ue.size - 1))
    lp = d.leaf_positions_mm
    t = t0 + (t1 - t0) * (np.arange(n_leaf) + 0.5) / n_leaf
    if lp is not None and np.array_equal(d.jaw_u_mm[k], d.jaw_u_mm[k + 1]) and \
            np.array_equal(d.jaw_v_mm[k], d.jaw_v_mm[k + 1]):  # jaws still: all leaf samples in one call
        samples = lp[k][None] + (lp[k + 1] - lp[k])[None] * t[:, None, None]
        return _aperture(d, model, d.jaw_u_mm[k], d.jaw_v_mm[k], samples, ue, ve)
    for s in range(n_leaf):
        t = t0 + (t1 - t0) * (s + 0.5) / n_leaf
        total += _aperture(d, model, _lerp(d.jaw_u_mm[k], d.jaw_u_mm[k + 1], t),
                           _lerp(d.jaw_v_mm[k], d.jaw_v_mm[k + 1], t),
                           None if lp is None else _lerp(lp[k], lp[k + 1], t), ue, ve)
    return total / n_leaf


def _lattice(d: BeamDelivery, segments, beamlet_mm: float):
    """Beamlet edges covering the jaw openings of the given segments (both ends of each)."""
    ks = np.concatenate([segments, np.asarray(segments) + 1])
    u_lo, u_hi = float(d.jaw_u_mm[ks, 0].min()), float(d.jaw_u_mm[ks, 1].max())
    v_lo, v_hi = float(d.jaw_v_mm[ks, 0].min()), float(d.jaw_v_mm[ks, 1].max())
    return lattice_edges(u_lo, u_hi, beamlet_mm), lattice_edges(v_lo, v_hi, beamlet_mm)


def _beam(d: BeamDelivery, gantry: float, weights, ue, ve, beamlet_mm, name):
    rows = np.nonzero(weights.any(axis=1))[0]
    cols = np.nonzero(weights.any(axis=0))[0]
    w = weights[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    origin = (0.5 * (ue[cols[0]] + ue[cols[0] + 1]), 0.5 * (ve[rows[0]] + ve[rows[0] + 1]))
    return Beam(d.machine, d.isocenter_xyz_mm, float(gantry) % 360.0, w, (beamlet_mm, beamlet_mm), origin,
                couch_deg=d.couch_deg, collimator_deg=d.collimator_deg, name=name)


def _leaves_at(d: BeamDelivery, k: int, t: float, ve):
    """Leaf pair edges along v and leaf tips along u at fraction ``t`` of segment ``k``, as an Arc records them.

    MLCX: the plan's boundaries and interpolated tips. Otherwise (MLCY or no MLC) the
    beamlet rows, each open over the interpolated X jaws.
    """
    if d.leaf_positions_mm is not None and d.mlc_axis == "X":
        return (np.array(d.leaf_boundaries_mm), _lerp(d.leaf_positions_mm[k], d.leaf_positions_mm[k + 1], t))
    jaw = _lerp(d.jaw_u_mm[k], d.jaw_u_mm[k + 1], t)
    return np.array(ve, dtype=float), np.tile(jaw, (ve.size - 1, 1))


def delivery_to_beams(d: BeamDelivery, *, arc_spacing_deg: float = 2.0, beamlet_mm: float = 2.5,
                      leaf_step_mm: float = 1.0, model: MlcModel | None = None):
    """The engine beam(s) of a delivered beam (module docstring).

    Parameters
    ----------
    d : BeamDelivery
    arc_spacing_deg : float
        Largest gantry travel of one sub-arc of a VMAT beam [deg].
    beamlet_mm : float
        Beamlet size of the fluence lattice at the isocentre plane [mm].
    leaf_step_mm : float
        Largest leaf or jaw travel between two fluence samples of a moving aperture [mm].
    model : MlcModel, optional
        Defaults to the MLC of ``d.machine``'s machine file.

    Returns
    -------
    Beam or Arc
        Weights in MU for one fraction.
    """
    if not (np.isfinite(arc_spacing_deg) and 0 < arc_spacing_deg <= 360):
        raise PlanError(f"arc_spacing_deg={arc_spacing_deg!r}: expected a gantry spacing in (0, 360] degrees")
    if not (np.isfinite(beamlet_mm) and beamlet_mm > 0):
        raise PlanError(f"beamlet_mm={beamlet_mm!r}: expected a positive size in mm")
    model = mlc_model(d.machine) if model is None else model
    mu = d.segment_mu()
    travel = d.gantry_travel_deg()
    live = np.nonzero(mu > 0)[0]
    if live.size == 0:
        raise PlanError(f"beam {d.name!r}: no segment delivers monitor units (all cumulative weights equal)")
    if not np.any(np.abs(travel) > 1e-9):
        ue, ve = _lattice(d, live, beamlet_mm)
        total = np.zeros((ve.size - 1, ue.size - 1))
        for k in live:
            total += mu[k] * _mean_fluence(d, model, k, 0.0, 1.0, _sub_steps(d, k, leaf_step_mm), ue, ve)
        return _beam(d, float(d.gantry_deg[0]), total, ue, ve, beamlet_mm, d.name)
    stations: list[list] = []  # [gantry, weights, ue, ve, mu, leaf edges, leaf tips]
    k_all = list(live)
    i = 0
    while i < len(k_all):
        k = k_all[i]
        if abs(travel[k]) <= 1e-9:  # gantry standing: this and the next standing segments at this angle
            group = [k]
            while i + 1 < len(k_all) and abs(travel[k_all[i + 1]]) <= 1e-9 and \
                    abs(d.gantry_deg[k_all[i + 1]] - d.gantry_deg[k]) <= 1e-9:
                i += 1
                group.append(k_all[i])
            ue, ve = _lattice(d, group, beamlet_mm)
            f = sum(mu[g] * _mean_fluence(d, model, g, 0.0, 1.0, _sub_steps(d, g, leaf_step_mm), ue, ve)
                    for g in group)
            edges, leaves = _leaves_at(d, group[-1], 0.5, ve)
            stations.append([float(d.gantry_deg[k]) % 360.0, f, ue, ve, float(mu[group].sum()), edges, leaves])
            i += 1
            continue
        n_arc = max(1, int(np.ceil(abs(travel[k]) / arc_spacing_deg - _EPS)))
        n_leaf = max(1, int(np.ceil(_sub_steps(d, k, leaf_step_mm) / n_arc)))
        ue, ve = _lattice(d, [k], beamlet_mm)
        for s in range(n_arc):
            gantry = (d.gantry_deg[k] + travel[k] * (s + 0.5) / n_arc) % 360.0
            f = mu[k] / n_arc * _mean_fluence(d, model, k, s / n_arc, (s + 1) / n_arc, n_leaf, ue, ve)
            edges, leaves = _leaves_at(d, k, (s + 0.5) / n_arc, ve)
            stations.append([gantry, f, ue, ve, mu[k] / n_arc, edges, leaves])
        i += 1
    total_mu = float(sum(s[4] for s in stations))
    points = []
    for i, (gantry, f, ue, ve, s_mu, edges, leaves) in enumerate(stations):
        beam = _beam(d, gantry, f, ue, ve, beamlet_mm, f"{d.name}_cp{i:03d}_g{gantry:g}")
        points.append(ControlPoint(i, float(gantry), s_mu / total_mu, float(s_mu), edges, leaves, beam,
                                   np.ones(edges.size - 1)))
    direction = "cw" if d.direction == "CW" else "ccw"
    return Arc(points, d.name, direction, beamlet_mm)
