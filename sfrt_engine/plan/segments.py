"""The engine's photon beams as deliverable control points (for writing RT Plans).

- A static :class:`Beam` (conformal 3D-CRT field or IMRT fluence map) is sequenced into
  step-and-shoot segments on the machine's MLC (:func:`sfrt_engine.plan.mlc.sequence_fluence`).
  Segment ``s`` becomes two control points with the same aperture, the second ``MU_s`` later
  in cumulative meterset; the next segment's first control point moves the leaves with the
  beam off.
- An arc (an :class:`Arc`, or consecutive beams named ``<arc>_cpNNN_g<angle>`` with one
  isocentre, couch and collimator, as :func:`~sfrt_engine.plan.conformal_arc` names them) becomes one
  rotating beam: at each gantry station ``g_k`` its fluence is sequenced, each segment is
  delivered with the gantry at ``g_k`` (two control points at ``g_k``), and the gantry turns to
  the next station with the beam off. Read back with any ``arc_spacing_deg``, each station
  is again one static beam at ``g_k``: the engine's own sampling of the arc.

The leaf tips written are the sequenced edges moved inwards by half the dosimetric leaf
gap of the machine's MLC, so that reading the plan (which widens every open pair by the
gap) gives the sequenced fluence back. Closed leaves let through the MLC's transmission,
which the engine's beamlet maps do not carry: the sequencer scales each beamlet row down by
the mean transmission its open beamlets received and sequences again (``transmission_passes``
times); beamlets the map leaves closed keep what the leaves let through.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from ..errors import PlanError
from ..machines.photon import MlcModel, mlc_model
from .arcs import Arc
from .beam import Beam
from .delivery import BeamDelivery
from .mlc import Segment, aperture_fluence, sequence_fluence

__all__ = ["beams_to_deliveries"]

_ARC_NAME = re.compile(r"^(?P<arc>.+)_cp\d+_g[-0-9.e+]+$")


def _leaves(seg: Segment, model: MlcModel, where: str, narrow_openings: str = "error") -> np.ndarray:
    p = np.array(seg.positions_mm, dtype=float)
    is_open = p[:, 1] > p[:, 0]
    half = 0.5 * model.dosimetric_leaf_gap_mm
    narrow = is_open & (p[:, 1] - p[:, 0] <= 2 * half)
    if np.any(narrow):
        if narrow_openings != "close":
            raise PlanError(f"{where}: a segment opens a leaf pair narrower than the dosimetric leaf gap "
                            f"({model.dosimetric_leaf_gap_mm:g} mm); use larger beamlets")
        p[narrow] = 0.5 * (p[narrow, :1] + p[narrow, 1:])  # closed at the opening's centre
        is_open &= ~narrow
    p[is_open, 0] += half
    p[is_open, 1] -= half
    limit = model.travel_limit_mm
    if np.any(np.abs(p) > limit):
        raise PlanError(f"{where}: a leaf would travel beyond +-{limit:g} mm; the field is too large for the MLC")
    return p


def _delivered(segments, model: MlcModel, ue, ve, transmission: bool) -> np.ndarray:
    m = model if transmission else replace(model, leaf_transmission=0.0)
    m = replace(m, dosimetric_leaf_gap_mm=0.0)  # the sequenced edges are the effective (widened) ones
    return sum(s.mu * aperture_fluence(m, model.leaf_boundaries_mm, s.positions_mm, s.jaw_u_mm, s.jaw_v_mm, ue, ve)
               for s in segments)


def _station_segments(beam: Beam, model: MlcModel, passes: int) -> list[Segment]:
    """Segments of a beam's fluence; each pass scales every beamlet row down by the mean leaf transmission its
    open beamlets received in the previous pass (a row keeps its shape, so its segments keep their structure)."""
    ue, ve = beam.beamlet_edges_mm()
    target = beam.weights_mu
    where = f"beam {beam.name!r}"
    segments = sequence_fluence(target, ue, ve, model.leaf_boundaries_mm, where=where)
    for _ in range(passes):
        leak = _delivered(segments, model, ue, ve, True) - _delivered(segments, model, ue, ve, False)
        is_open = target > 0
        row_target = np.where(is_open, target, 0.0).sum(axis=1)
        row_leak = np.where(is_open, leak, 0.0).sum(axis=1)
        scale = np.where(row_target > 0, 1.0 - row_leak / np.where(row_target > 0, row_target, 1.0), 1.0)
        segments = sequence_fluence(target * np.clip(scale, 0.0, 1.0)[:, None], ue, ve, model.leaf_boundaries_mm,
                                    where=where)
    return segments


def _delivery(name: str, number: int, stations: list[Beam], direction: str, model: MlcModel,
              transmission_passes: int, narrow_openings: str) -> BeamDelivery:
    gantry, cum, jaw_u, jaw_v, leaves = [], [], [], [], []
    total = 0.0
    for beam in stations:
        for seg in _station_segments(beam, model, transmission_passes):
            p = _leaves(seg, model, f"beam {beam.name!r}", narrow_openings)
            for c in (total, total + seg.mu):
                gantry.append(beam.gantry_deg)
                cum.append(c)
                jaw_u.append(seg.jaw_u_mm)
                jaw_v.append(seg.jaw_v_mm)
                leaves.append(p)
            total += seg.mu
    first = stations[0]
    return BeamDelivery(name, number, first.machine, first.isocenter_xyz_mm, total, np.array(gantry), direction,
                        np.array(cum) / total, first.collimator_deg, first.couch_deg, np.array(jaw_u),
                        np.array(jaw_v), np.array(model.leaf_boundaries_mm), np.array(leaves), "X")


def _same_pose(a: Beam, b: Beam) -> bool:
    return (a.machine is b.machine and a.isocenter_xyz_mm == b.isocenter_xyz_mm and a.couch_deg == b.couch_deg
            and a.collimator_deg == b.collimator_deg)


def _groups(beams) -> list[tuple[str, list, str]]:
    """(name, beams, direction) per delivered beam: arcs grouped, static beams alone."""
    out: list[tuple[str, list, str]] = []
    for item in beams:
        if isinstance(item, BeamDelivery):
            out.append((item.name, [item], "DELIVERY"))
            continue
        if isinstance(item, Arc):
            live = [cp.beam for cp in item.control_points if cp.beam is not None]
            out.append((item.name, live, "CW" if item.direction == "cw" else "CC"))
            continue
        if not isinstance(item, Beam):
            raise PlanError(f"cannot write {type(item).__name__} as a photon RT Plan beam; expected Beam, Arc or "
                            "BeamDelivery")
        match = _ARC_NAME.match(item.name)
        if match and out and out[-1][2] == "ARC?" and out[-1][0] == match["arc"] and _same_pose(out[-1][1][-1], item):
            out[-1][1].append(item)
        elif match:
            out.append((match["arc"], [item], "ARC?"))
        else:
            out.append((item.name, [item], "NONE"))
    resolved = []
    for name, items, kind in out:
        if kind == "ARC?":
            kind = _direction(items) if len(items) > 1 else "NONE"
        resolved.append((name, items, kind))
    return resolved


def _direction(stations: list[Beam]) -> str:
    g = np.array([b.gantry_deg for b in stations])
    cw = float(np.sum((g[1:] - g[:-1]) % 360.0))
    ccw = float(np.sum((g[:-1] - g[1:]) % 360.0))
    return "CW" if cw <= ccw else "CC"


def beams_to_deliveries(beams, *, transmission_passes: int = 2, narrow_openings: str = "error") -> list[BeamDelivery]:
    """Control-point records of the engine's photon beams (module docstring).

    Parameters
    ----------
    beams : sequence of Beam, Arc or BeamDelivery
        One fraction's beams [MU]; BeamDelivery records pass through unchanged.
    transmission_passes : int
        Times the leaf transmission of the segments is subtracted from the fluence and the
        map sequenced again (0: none; each pass leaves a residual of order ``t`` times the last).
    narrow_openings : {"error", "close"}
        What to do with a sequenced opening no wider than the MLC's dosimetric leaf gap, which
        leaf tips cannot give (the reader widens every open pair by the gap): "error" raises
        PlanError; "close" closes the pair at the opening's centre (its fluence is lost: less than
        the gap times the leaf width per segment), for callers that compute the dose of the
        returned control points, as :mod:`sfrt_engine.components` does.

    Returns
    -------
    list of BeamDelivery
        Numbered from 1 in order.
    """
    if narrow_openings not in ("error", "close"):
        raise PlanError(f"narrow_openings={narrow_openings!r}: expected 'error' or 'close'")
    out = []
    for number, (name, items, kind) in enumerate(_groups(beams), start=1):
        if kind == "DELIVERY":
            out.append(replace(items[0], number=number))
            continue
        model = mlc_model(items[0].machine)
        out.append(_delivery(name, number, items, kind, model, transmission_passes, narrow_openings))
    return out
