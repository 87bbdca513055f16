"""Plan components: the CRT and vertex-boost field sets, each optimised and computed once as a unit dose.

Dose is linear in the beamlet weights, so a component's dose is computed once and
every schedule is a weighted sum of unit doses (DESIGN 4):

- CRT: scaled so that the PTV D95 of one fraction is ``crt_dose_per_fraction_gy``;
- BOOST: scaled so that the mean dose over the vertices is 1 Gy.

Proton components are RBE-weighted (constant RBE 1.1, :mod:`sfrt_engine.rbe`): their
``dose_gy`` is in Gy(RBE), the normalisation above applies to that dose, and everything
downstream (schedules, EQD2, reports) works on it. Photon components have RBE 1.

A technique builds the fields (geometry only, :mod:`sfrt_engine.plan.techniques`); when
its ``optimisation`` is ``"fluence"`` their free weights (photon beamlets inside the
conformal apertures, proton spots) are optimised here against the component's goals
(:mod:`sfrt_engine.optimise`) before the unit dose is computed; ``"vmat"`` optimises an
arc's fluence and sequences it into one opening per leaf pair per control point
(:mod:`sfrt_engine.optimise.vmat`); the control points' MU are re-optimised on the deliverable.

Photon components are then made deliverable (:func:`_deliverable`): the fields are sequenced
into MLC control points with the sequencer the RT Plan export uses
(:func:`sfrt_engine.plan.segments.beams_to_deliveries`), an optimised component's segment
(aperture) weights are re-optimised against the same goals with the apertures' leaf
transmission and rounded leaf ends in the dose (:mod:`sfrt_engine.optimise.segments`), and the
component's dose is the dose of the beams those control points read back as
(:func:`sfrt_engine.plan.delivery.delivery_to_beams`). ``Component.deliveries`` holds them; the
export writes them unchanged, so a written plan read back and recomputed gives ``dose_gy``.
This module sits above
:func:`sfrt_engine.compute_dose` (DESIGN 10): :mod:`sfrt_engine.plan` builds geometry only.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from .dose import compute_dose
from .errors import PlanError
from .evaluation import dose_statistics
from .patient import Patient
from .plan.arcs import Arc
from .plan.beam import Beam
from .plan.delivery import delivery_to_beams
from .plan.schedule import CRT_DOSE_PER_FRACTION_GY
from .plan.segment_weights import segment_fluences, with_segment_weights
from .plan.segments import beams_to_deliveries
from .plan.vertices import VertexLattice
from .rbe import beams_rbe, dose_unit

__all__ = ["Component", "boost_component", "crt_component", "optimise_beams"]


@dataclass(frozen=True, eq=False)
class Component:
    """A field set and its dose for one unit of the component.

    Attributes
    ----------
    name : str
        "CRT" or "BOOST".
    beams : list
        Beams with weights already scaled to one unit [MU or Gp].
    dose_gy : ndarray [z, y, x]
        Dose of one unit [Gy]: RBE x the physical dose of ``beams`` (Gy(RBE) for protons).
    unit : str
        What one unit is.
    backend : str
    seconds : float
        Dose computation time [s] (the final dose; the optimisation's time is in ``optimisation``).
    rbe : float
        RBE applied to the physical dose: 1.0 for photons, 1.1 for protons.
    optimisation : dict or None
        The optimisation record (:meth:`OptimisationResult.to_dict` plus the operator's description), or None
        for a technique that does not optimise.
    deliveries : tuple of BeamDelivery or None
        Photons: the control points the component delivers and exports (MLC segments, jaws, MU for one
        unit); ``beams`` are what they read back as and ``dose_gy`` is their dose. None for protons.
    """

    name: str
    beams: list
    dose_gy: np.ndarray
    unit: str
    backend: str
    seconds: float
    rbe: float = 1.0
    optimisation: dict | None = None
    deliveries: tuple | None = None

    @property
    def physical_dose_gy(self) -> np.ndarray:
        """Absorbed dose of one unit [Gy], [z, y, x] (``dose_gy / rbe``)."""
        return self.dose_gy if self.rbe == 1.0 else self.dose_gy / self.rbe

    @property
    def n_beamlets(self) -> int:
        """Weighted photon beamlets plus proton spots of the component."""
        return sum(b.n_spots if hasattr(b, "n_spots") else b.n_beamlets for b in self.beams)


def _scaled(beams, factor: float) -> list:
    """Beams with every weight (photon MU or proton Gp) multiplied by ``factor``."""
    return [b.scaled(factor) for b in beams]


def _scaled_deliveries(deliveries, factor: float) -> tuple | None:
    return None if deliveries is None else tuple(d.scaled(factor) for d in deliveries)


#: Largest number of voxels per structure the optimiser looks at (larger ones are sampled by a regular
#: stride, :func:`sfrt_engine.optimise.sampled_structures`); the final plan is evaluated on every voxel.
MAX_VOXELS_PER_STRUCTURE = 12000


def optimise_beams(beams, patient: Patient, objectives, structures=None, *, backend: str = "auto",
                   max_iterations: int = 60, mode: str = "matrix-free",
                   max_voxels_per_structure: int | None = MAX_VOXELS_PER_STRUCTURE):
    """Optimise the free weights of ``beams`` against ``objectives``; returns ``(beams, record)``.

    The dose operator is built on the voxels the objectives look at (each structure sampled down to
    ``max_voxels_per_structure``); ``structures`` (name -> mask) defaults to the patient's. ``record`` is
    the optimisation result's report entry plus ``operator`` (the operator's description) and
    ``setup_seconds``.

    ``mode`` goes to :func:`sfrt_engine.optimise.dose_operator`. The default is matrix-free: on the
    2.5 mm sarcoma CRT (40,000 voxels, 2,390 beamlets, cpp) building the influence matrix took longer
    than the 60 matrix-free iterations it would save, and 15 times the memory (1.9 GiB against 128 MiB).
    """
    from .optimise import dose_operator, optimise, sampled_structures, voxel_subset

    start = time.perf_counter()
    structures = sampled_structures(objectives, patient.structures if structures is None else structures,
                                    max_voxels_per_structure)  # missing/empty structures fail here, before any dose
    voxels = voxel_subset(objectives, structures)
    op = dose_operator(beams, patient, voxels=voxels, backend=backend, mode=mode)
    setup = time.perf_counter() - start
    result = optimise(op, objectives, structures, voxels, max_iterations=max_iterations, warn=False)
    record = result.to_dict()
    record["seconds"] = round(time.perf_counter() - start, 3)
    record["setup_seconds"] = round(setup, 3)
    record["operator"] = {k: v for k, v in op.describe().items() if isinstance(v, (int, float, str))}
    return op.beams_with(result.weights), record


def _sequenced_arc(arc, patient: Patient, objectives, technique, backend: str, max_iterations: int):
    """VMAT (:mod:`sfrt_engine.optimise.vmat`): fluence, then sequencing into one opening per leaf pair per control
    point; the control points' MU are re-optimised on the deliverable (:func:`_deliverable`)."""
    from .optimise.vmat import max_leaf_travel_mm_per_deg, sequence_arc

    start = time.perf_counter()
    fluence, record_fluence = optimise_beams(list(arc), patient, objectives, backend=backend,
                                             max_iterations=max_iterations)
    sequenced = sequence_arc(arc, fluence, technique.leaf_travel_mm_per_deg)
    record = dict(record_fluence, seconds=round(time.perf_counter() - start, 3),
                  method="fluence optimisation, sequencing into one opening per leaf pair per control point, "
                  "meterset-weight re-optimisation of the deliverable control points", fluence_stage=record_fluence,
                  control_points=len(sequenced.control_points),
                  max_leaf_travel_mm_per_deg=round(max_leaf_travel_mm_per_deg(sequenced), 4),
                  leaf_travel_limit_mm_per_deg=technique.leaf_travel_mm_per_deg)
    return sequenced, record


def _delivering(beams) -> list:
    """The beams that still deliver dose: an optimiser may set every weight of a beam (a control point) to 0."""
    if isinstance(beams, Arc):  # a sequenced arc: its control points without an opening have no beam already
        return beams
    out = [b for b in beams if np.any(b.weights_mu if hasattr(b, "weights_mu") else [np.any(x.weights_gp)
                                                                                      for x in b.layers])]
    if not out:
        raise PlanError("the optimised plan has no beam with a non-zero weight; check the goals")
    return out


def _objectives(patient, technique, goals, component: str, prescription_gy: float):
    """``(objectives, max_iterations)`` of the component's goals, or None when the technique does not optimise."""
    if getattr(technique, "optimisation", None) is None:
        return None
    if goals is None:  # the default goals, on the structures this case has
        from .optimise import default_goals

        goals = default_goals().restricted_to(set(patient.structures))[0]
    if component not in goals.goals:  # a goal set without this component: the fields as built
        return None
    return goals.objectives(component, prescription_gy), goals.max_iterations.get(component, 60)


def _optimised(beams, patient, technique, goals, component: str, prescription_gy: float, backend: str):
    """``(beams, record, objectives)``: the fields optimised as the technique says (as built when it does not)."""
    found = _objectives(patient, technique, goals, component, prescription_gy)
    if found is None:
        return beams, None, None
    objectives, iterations = found
    kind = technique.optimisation
    if kind == "fluence":
        beams, record = optimise_beams(beams, patient, objectives, backend=backend, max_iterations=iterations)
    elif kind == "vmat":
        beams, record = _sequenced_arc(beams, patient, objectives, technique, backend, iterations)
    else:
        raise PlanError(f"technique {technique.name!r}: optimisation={kind!r}; expected None, 'fluence' or 'vmat'")
    return _delivering(beams), record, found


#: Leaf-transmission corrections of the sequencer for static fields (:func:`beams_to_deliveries`); arcs get none,
#: which keeps one aperture per control point (their MU are re-optimised with the transmission in the dose).
TRANSMISSION_PASSES = 2


def _is_photon(beams) -> bool:
    return all(isinstance(b, Beam) for b in beams)


def _segment_weights(deliveries, patient: Patient, objectives, backend: str, max_iterations: int):
    """Deliveries with their segments' MU re-optimised against ``objectives`` (apertures fixed); ``(list, record)``."""
    from .optimise import dose_operator, optimise, sampled_structures, voxel_subset
    from .optimise.segments import SegmentOperator

    start = time.perf_counter()
    per = [segment_fluences(d) for d in deliveries]
    flat = [f for fs in per for f in fs]
    structures = sampled_structures(objectives, patient.structures, MAX_VOXELS_PER_STRUCTURE)
    voxels = voxel_subset(objectives, structures)
    op = SegmentOperator(dose_operator([f.beam for f in flat], patient, voxels=voxels, backend=backend), flat)
    result = optimise(op, objectives, structures, voxels, max_iterations=max_iterations, warn=False)
    parts = iter(op.split(result.weights))
    out = []
    for d, fs in zip(deliveries, per):
        new = with_segment_weights(d, np.concatenate([next(parts) for _ in fs]))
        if new is not None:
            out.append(dataclasses.replace(new, number=len(out) + 1))
    if not out:
        raise PlanError("the segment-weight optimisation left no segment with MU; check the goals")
    record = result.to_dict()
    record.update(seconds=round(time.perf_counter() - start, 3), segments=op.n_weights,
                  segments_kept=int(sum(np.count_nonzero(d.segment_mu()) for d in out)))
    return out, record


def _deliverable(beams, patient: Patient, found, backend: str, record):
    """What the engine delivers and exports: the fields sequenced (:func:`beams_to_deliveries`), their segments
    re-weighted against the goals when the component is optimised, and the engine beams the deliveries read back
    as (:func:`delivery_to_beams`). Returns ``(beams, deliveries, record)``."""
    start = time.perf_counter()
    passes = 0 if isinstance(beams, Arc) else TRANSMISSION_PASSES
    deliveries = beams_to_deliveries(beams, transmission_passes=passes, narrow_openings="close")
    if found is not None:
        objectives, iterations = found
        deliveries, seg_record = _segment_weights(deliveries, patient, objectives, backend, iterations)
        # the final objective and the goals met are those of the deliverable; the fluence plan's stay in fluence_stage
        record = dict(record, fluence_stage=record.get("fluence_stage", dict(record)), segment_stage=seg_record, final_objective=seg_record["final_objective"],
                      goals=seg_record["goals"])
    out = []
    for d in deliveries:
        made = delivery_to_beams(d)
        out.extend([made] if isinstance(made, Beam) else list(made))
    if record is not None:
        record = dict(record, deliverable_seconds=round(time.perf_counter() - start, 3),
                      transmission_passes=passes, control_points=int(sum(d.n_control_points for d in deliveries)))
    return out, deliveries, record


def _prepared(beams, patient, technique, goals, component: str, prescription_gy: float, backend: str):
    """``(beams, deliveries, record)`` of a component: optimised, and for photons made deliverable."""
    beams, record, found = _optimised(beams, patient, technique, goals, component, prescription_gy, backend)
    if not _is_photon(beams):
        return beams, None, record
    return _deliverable(beams, patient, found, backend, record)


def crt_component(patient: Patient, technique, target: str = "PTV",
                  dose_per_fraction_gy: float = CRT_DOSE_PER_FRACTION_GY, backend: str = "auto",
                  goals=None) -> Component:
    """CRT field set (optimised when the technique optimises) normalised to the target's D95 per fraction.

    ``goals``: a :class:`sfrt_engine.optimise.GoalSet` (default: the sarcoma goals), its ``crt`` table.
    """
    mask = patient.structures[target]
    beams = technique.crt_beams(patient, mask, name=target)
    beams, deliveries, record = _prepared(beams, patient, technique, goals, "crt", dose_per_fraction_gy, backend)
    dose = compute_dose(beams, patient, backend=backend)
    rbe = beams_rbe(beams)
    weighted = dose.gy * rbe if rbe != 1.0 else dose.gy
    d95 = dose_statistics(weighted, mask, target)["d95_gy"]
    if not d95 > 0:
        raise PlanError(f"CRT plan gives no dose to {target!r} (D95 = {d95}); check the beams")
    factor = dose_per_fraction_gy / d95
    unit = dose_unit(rbe)
    return Component("CRT", _scaled(beams, factor), weighted * factor,
                     f"one fraction, {target} D95 = {dose_per_fraction_gy:g} {unit}", dose.backend, dose.seconds, rbe,
                     record, _scaled_deliveries(deliveries, factor))


def boost_component(patient: Patient, technique, vertices: VertexLattice, backend: str = "auto", goals=None,
                    vertex_dose_gy: float = 12.0) -> Component:
    """Vertex-boost field set (optimised when the technique optimises) normalised to a vertex mean of 1 Gy.

    The goals' ``boost`` table is read with the prescription ``vertex_dose_gy`` (one session); the
    structures it names (VERTICES, VALLEY, ...) must be on the patient.
    """
    beams = technique.boost_beams(patient, vertices.mask, isocenter_xyz_mm=tuple(vertices.centers_xyz_mm.mean(axis=0)))
    beams, deliveries, record = _prepared(beams, patient, technique, goals, "boost", vertex_dose_gy, backend)
    dose = compute_dose(beams, patient, backend=backend)
    rbe = beams_rbe(beams)
    weighted = dose.gy * rbe if rbe != 1.0 else dose.gy
    mean = float(weighted[vertices.mask].mean())
    if not mean > 0:
        raise PlanError("vertex-boost plan gives no dose to the vertices; check the beams")
    factor = 1.0 / mean
    unit = dose_unit(rbe)
    return Component("BOOST", _scaled(beams, factor), weighted * factor, f"vertex mean dose 1 {unit}", dose.backend,
                     dose.seconds, rbe, record, _scaled_deliveries(deliveries, factor))
