"""The dose-relevant parts of a sequenced photon delivery, one segment at a time, and its segments re-weighted.

:func:`delivery_to_beams` turns a :class:`BeamDelivery` into engine beams whose beamlet weights are
``sum_k MU_k f_k``, ``f_k`` the aperture fluence of segment ``k`` (leaf transmission and rounded
leaf ends included). For a delivery whose segments all deliver with the gantry standing (static
and step-and-shoot beams, and the leaf-sequenced arcs of :func:`beams_to_deliveries`, which turn
with the beam off), :func:`segment_fluences` gives every ``MU_k f_k`` on the beamlets of the beam
``delivery_to_beams`` makes of it, so that the beams' weights are linear in one weight per segment
(``s_k``, 1 for the delivery as it is) and :func:`with_segment_weights` writes ``s`` back as
control points. This is what optimising segment (aperture) weights needs
(:class:`sfrt_engine.optimise.segments.SegmentOperator`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import PlanError
from ..machines.photon import mlc_model
from .beam import Beam
from .delivery import BeamDelivery, _lattice, _mean_fluence, _sub_steps, delivery_to_beams

__all__ = ["SegmentFluence", "segment_fluences", "with_segment_weights"]

_EPS = 1e-9


@dataclass(frozen=True, eq=False)
class SegmentFluence:
    """One engine beam of a delivery and what each of its segments puts on its free beamlets.

    Attributes
    ----------
    beam : Beam
        The beam as :func:`delivery_to_beams` makes it (weights in MU for one fraction).
    segments : ndarray of int, shape (n_seg,)
        Indices ``k`` of the delivery's segments (control point ``k`` to ``k + 1``) this beam sums.
    columns : ndarray, shape (n_free, n_seg)
        ``MU_k`` times segment ``k``'s fluence on the beam's non-zero beamlets (row-major order of
        ``beam.weights_mu``) [MU]; the columns sum to those beamlet weights.
    """

    beam: Beam
    segments: np.ndarray
    columns: np.ndarray


def _groups(d: BeamDelivery, live: np.ndarray) -> list[list[int]]:
    """The live segments summed into one beam each, as :func:`delivery_to_beams` groups them."""
    travel = d.gantry_travel_deg()
    if np.any(np.abs(travel[live]) > 1e-9):
        raise PlanError(f"beam {d.name!r}: a segment delivers while the gantry turns; segment weights are "
                        "defined for deliveries whose segments deliver with the gantry standing")
    if not np.any(np.abs(travel) > 1e-9):
        return [list(live)]
    groups: list[list[int]] = []
    for k in live:
        if groups and abs(d.gantry_deg[k] - d.gantry_deg[groups[-1][0]]) <= 1e-9:
            groups[-1].append(int(k))
        else:
            groups.append([int(k)])
    return groups


def segment_fluences(d: BeamDelivery, *, beamlet_mm: float = 2.5, leaf_step_mm: float = 1.0) -> list[SegmentFluence]:
    """Per engine beam of ``d``, each segment's beamlet weights (module docstring).

    Parameters
    ----------
    d : BeamDelivery
        Every segment with MU delivers with the gantry standing.
    beamlet_mm, leaf_step_mm : float
        As for :func:`delivery_to_beams` (the reader's defaults).

    Returns
    -------
    list of SegmentFluence
        In the order of ``delivery_to_beams(d)`` (one for a static beam, one per gantry station of an arc).

    Raises
    ------
    PlanError
        For a segment that delivers while the gantry turns.
    """
    model = mlc_model(d.machine)
    mu = d.segment_mu()
    live = np.nonzero(mu > 0)[0]
    groups = _groups(d, live)
    made = delivery_to_beams(d, beamlet_mm=beamlet_mm, leaf_step_mm=leaf_step_mm, model=model)
    beams = [made] if isinstance(made, Beam) else list(made)
    if len(beams) != len(groups):
        raise PlanError(f"beam {d.name!r}: {len(beams)} engine beams for {len(groups)} groups of segments")
    out = []
    for beam, group in zip(beams, groups):
        ue, ve = _lattice(d, group, beamlet_mm)
        maps = np.stack([mu[k] * _mean_fluence(d, model, k, 0.0, 1.0, _sub_steps(d, k, leaf_step_mm), ue, ve)
                         for k in group])
        total = maps.sum(axis=0)
        rows = np.nonzero(total.any(axis=1))[0]
        cols = np.nonzero(total.any(axis=0))[0]
        maps = maps[:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        free = beam.weights_mu != 0
        if maps.shape[1:] != free.shape or not np.allclose(maps.sum(axis=0), beam.weights_mu, rtol=1e-12, atol=0):
            raise PlanError(f"beam {d.name!r}: the segments' fluence does not sum to the beam's weights")
        out.append(SegmentFluence(beam, np.array(group, dtype=int), np.ascontiguousarray(maps[:, free].T)))
    return out


def with_segment_weights(d: BeamDelivery, weights) -> BeamDelivery | None:
    """``d`` with the MU of each segment that has MU multiplied by its weight; None when no MU is left.

    Parameters
    ----------
    d : BeamDelivery
    weights : array_like, shape (n_live,)
        One factor >= 0 per segment with MU, in control-point order.

    Segments whose MU become 0 are left out with their two control points when they stand alone between
    beam-off moves (the step-and-shoot layout of :func:`beams_to_deliveries`); the leaves then move from
    the previous segment to the next with the beam off.
    """
    mu = d.segment_mu()
    live = np.nonzero(mu > 0)[0]
    s = np.asarray(weights, dtype=float)
    if s.shape != live.shape or not np.all(np.isfinite(s)) or np.any(s < 0):
        raise PlanError(f"beam {d.name!r}: {s.size} segment weights for {live.size} segments with MU; expected "
                        "one finite weight >= 0 each")
    new = np.zeros_like(mu)
    new[live] = mu[live] * s
    total = float(new.sum())
    if not total > 0:
        return None
    keep = np.ones(d.n_control_points, dtype=bool)
    for k in live[s == 0]:
        if (k == 0 or new[k - 1] == 0) and (k + 1 == mu.size or new[k + 1] == 0) and keep[k]:
            keep[k] = keep[k + 1] = False
    cum = np.concatenate([[0.0], np.cumsum(new)]) / total
    lp = None if d.leaf_positions_mm is None else d.leaf_positions_mm[keep]
    return replace(d, meterset_mu=total, gantry_deg=d.gantry_deg[keep], cumulative_weight=cum[keep],
                   jaw_u_mm=d.jaw_u_mm[keep], jaw_v_mm=d.jaw_v_mm[keep], leaf_positions_mm=lp)
