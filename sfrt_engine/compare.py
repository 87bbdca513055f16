"""SFRT versus CRT: place vertices, build and compute both components once, evaluate each arm.

``run_comparison`` is the engine behind ``sfrt compare``; :mod:`sfrt_engine.study`
reuses its prepared unit doses to evaluate many schedules without recomputing dose.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .biology import DEFAULT_GEUD_A, DEFAULT_PRECEDENCE, alpha_beta_map, eqd2, geud, physical_dose
from .components import Component, boost_component, crt_component
from .errors import PlanError, StructureError
from .evaluation import dose_statistics, sfrt_metrics
from .patient import Patient
from .plan.schedule import CRT_DOSE_PER_FRACTION_GY, Schedule, crt_schedule, sfrt_schedule
from .plan.techniques import get_technique
from .plan.vertices import VertexLattice, place_vertices
from .rbe import components_dose_quantity, dose_name
from .reporting import resolved_alpha_beta, structure_volumes, vertex_dose_meaning

__all__ = ["ComparisonSettings", "Prepared", "Comparison", "prepare", "arm_schedule", "evaluate_arm",
           "run_comparison"]


@dataclass
class ComparisonSettings:
    """Everything that defines a comparison run (all recorded in the report)."""

    technique: str = "imrt"
    crt_fractions: int = 20
    vertex_dose_gy: float = 12.0
    vertex_sessions: int = 4
    boost_mode: str = "integrated"
    alpha_beta_gy: dict = field(default_factory=dict)
    lattice: str = "hcp"
    vertex_diameter_mm: float = 15.0
    vertex_spacing_mm: float = 30.0
    gtv_margin_mm: float = 5.0
    oar_margin_mm: float = 10.0
    avoid: tuple = ("FEMUR", "SKIN")
    target: str = "GTV"
    ptv: str = "PTV"
    backend: str = "auto"
    goals: object = None  # optimisation goals: None (the default sarcoma goals), a TOML path or a GoalSet
    technique_options: dict = field(default_factory=dict)  # passed to the technique's constructor
    optimiser_iterations: int | None = None  # overrides the goal set's max_iterations of every component
    #: RT (Ion) Plans the components come from instead of the technique (:mod:`sfrt_engine.imported_plans`);
    #: with a plan, crt_fractions, vertex_sessions and vertex_dose_gy may be None (from the plan)
    crt_plan: str | None = None
    boost_plan: str | None = None
    #: Allow schedules outside the protocol's limits (dose-escalation research); recorded in the report.
    off_protocol: bool = False

    def to_dict(self) -> dict:
        goals = self.goals
        d = asdict(dataclasses.replace(self, goals=None))
        d["avoid"] = list(self.avoid)
        d["goals"] = getattr(goals, "source", None) if goals is not None and not isinstance(goals, (str, Path)) \
            else (str(goals) if goals is not None else "default")
        return d


@dataclass
class Prepared:
    """Vertices and unit doses of both components: all the dose a study needs."""

    patient: Patient
    settings: ComparisonSettings
    vertices: VertexLattice
    components: dict[str, Component]
    technique: dict
    crt_dose_per_fraction_gy: float = CRT_DOSE_PER_FRACTION_GY

    @property
    def unit_doses(self) -> dict[str, np.ndarray]:
        return {name: c.dose_gy for name, c in self.components.items()}

    def crt_vertex_mean_gy(self) -> float:
        return float(self.components["CRT"].dose_gy[self.vertices.mask].mean())


@dataclass
class Comparison:
    prepared: Prepared
    schedules: dict[str, Schedule]
    physical_gy: dict[str, np.ndarray]
    eqd2_gy: dict[str, np.ndarray]
    report: dict
    seconds: float


def prepare(patient: Patient, settings: ComparisonSettings, progress=None) -> Prepared:
    """Place the vertices and compute the CRT and BOOST unit doses (the only dose computations)."""
    if settings.crt_plan or settings.boost_plan:
        from .imported_plans import prepare_from_plans

        return prepare_from_plans(patient, settings, progress)
    step = progress or (lambda message: None)
    step("placing vertices")
    vertices = place_vertices(patient, settings.target, diameter_mm=settings.vertex_diameter_mm,
                              spacing_mm=settings.vertex_spacing_mm, lattice=settings.lattice,
                              gtv_margin_mm=settings.gtv_margin_mm, oar_margin_mm=settings.oar_margin_mm,
                              avoid=settings.avoid)
    technique = get_technique(settings.technique, **settings.technique_options)
    goals = resolve_goals(settings.goals, settings.optimiser_iterations)
    if settings.goals is None:
        goals = goals.restricted_to({*patient.structures, "VERTICES", "VALLEY"})[0]
    if technique.optimisation:
        goals.check_structures("boost", patient.structures)  # VERTICES and VALLEY exist now
    step(f"CRT dose ({settings.technique})")
    crt = crt_component(patient, technique, settings.ptv, CRT_DOSE_PER_FRACTION_GY, settings.backend, goals=goals)
    step(f"vertex boost dose ({vertices.count} vertices)")
    boost = boost_component(patient, technique, vertices, settings.backend, goals=goals,
                            vertex_dose_gy=settings.vertex_dose_gy)
    return Prepared(patient, settings, vertices, {"CRT": crt, "BOOST": boost}, technique.describe())


def resolve_goals(goals, iterations: int | None = None):
    """The goal set of a comparison: the default sarcoma goals, a TOML file's or a GoalSet as given;
    ``iterations`` (if given) replaces every component's iteration limit."""
    from .optimise import GoalSet, default_goals, load_goals

    if goals is None:
        out = default_goals()
    elif isinstance(goals, GoalSet):
        out = goals
    elif isinstance(goals, (str, Path)):
        out = load_goals(goals)
    else:
        raise PlanError(f"goals={goals!r}: expected None (the default goals), a TOML file path or a GoalSet")
    if iterations is not None:
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise PlanError(f"optimiser_iterations={iterations!r}; expected an integer >= 1")
        out = dataclasses.replace(out, max_iterations={c: iterations for c in out.goals})
    return out


def arm_schedule(prepared: Prepared, arm: str, crt_fractions: int, vertex_sessions: int, vertex_dose_gy: float,
              boost_mode: str, off_protocol: bool | None = None) -> Schedule:
    """The schedule of ``arm`` ("CRT" or "SFRT"); the SFRT integrated boost uses the CRT vertex mean.

    ``off_protocol`` defaults to the prepared run's setting."""
    if off_protocol is None:
        off_protocol = bool(getattr(prepared.settings, "off_protocol", False))
    if arm == "CRT":
        schedule = crt_schedule(crt_fractions, off_protocol=off_protocol)
    else:
        schedule = sfrt_schedule(crt_fractions, vertex_sessions, vertex_dose_gy, boost_mode,
                                 prepared.crt_vertex_mean_gy(), off_protocol=off_protocol)
    schedule.settings["crt_dose_per_fraction_gy"] = prepared.crt_dose_per_fraction_gy  # an imported plan's own
    return schedule


def evaluate_arm(prepared: Prepared, schedule: Schedule, ab_map: np.ndarray, geud_a: dict | None = None):
    """Cumulative physical dose, EQD2 and the arm's report entry.

    Returns
    -------
    physical, eqd2 : ndarray [z, y, x] [Gy]
    entry : dict
        ``schedule``, ``structures`` (per structure ``physical`` and ``eqd2`` statistics) and
        ``sfrt_metrics`` (physical dose, except ``geud_gy`` on EQD2; EQD2 versions under ``eqd2``).
    """
    patient = prepared.patient
    units = prepared.unit_doses
    phys = physical_dose(units, schedule)
    biol = eqd2(units, schedule, ab_map)
    structures = {}
    for name in patient.structures:
        if name.startswith("_"):
            continue
        structures[name] = {"physical": dose_statistics(phys, patient.structures[name], name),
                            "eqd2": dose_statistics(biol, patient.structures[name], name)}
    target = prepared.settings.target
    a = dict(DEFAULT_GEUD_A, **(geud_a or {})).get(target, 1.0)
    metrics = sfrt_metrics(phys, patient.structures, target)
    metrics["geud_gy"] = geud(biol, patient.structures[target], a)
    metrics["eqd2"] = sfrt_metrics(biol, patient.structures, target)
    metrics["definitions"] = {
        "basis": f"cumulative {dose_name(max(c.rbe for c in prepared.components.values()))}; geud_gy and the "
                 "'eqd2' entries on cumulative EQD2",
        "peak_gy": "mean over VERTICES", "valley_gy": "mean over VALLEY", "pvdr": "peak_gy / valley_gy",
        "d10_d90": f"{target} D10 / D90", "gtv_d50_gy": f"{target} D50", "geud_a": a,
    }
    entry = {"schedule": schedule.to_dict(), "structures": structures, "sfrt_metrics": metrics}
    return phys, biol, entry


def boost_session_metrics(prepared: Prepared, schedule: Schedule) -> dict:
    """Physical dose metrics of one vertex-boost session alone: the boost fields at the vertex dose.

    Top-level keys (the boost fields scaled to a vertex mean of ``vertex_dose_gy``, the figures lattice
    papers quote for one session): ``peak_gy`` (VERTICES mean), ``valley_gy`` (VALLEY mean), ``pvdr``,
    ``vertices_d95_gy``, ``d10_d90`` (target D10/D90) and, per avoided structure, ``<name>_max_gy``.
    ``as_delivered``: the same metrics for the first boosted session of the schedule as delivered
    (integrated mode: one CRT fraction plus the boost, whose vertex mean is then the vertex dose).
    """
    session = next(s for s in schedule.sessions if s.weight("BOOST") > 0)
    units = prepared.unit_doses
    structures = prepared.patient.structures
    target = prepared.settings.target

    def metrics(dose: np.ndarray) -> dict:
        m = sfrt_metrics(dose, structures, target)
        out = {"peak_gy": m["peak_gy"], "valley_gy": m["valley_gy"], "pvdr": m["pvdr"],
               "vertices_d95_gy": dose_statistics(dose, structures["VERTICES"], "VERTICES")["d95_gy"],
               "d10_d90": m["d10_d90"]}
        for name in ("FEMUR", "SKIN", *prepared.settings.avoid):
            if name in structures and structures[name].any():
                out[f"{name.lower()}_max_gy"] = float(dose[structures[name]].max())
        return out

    delivered = sum(w * units[c] for c, w in session.weights)
    alone = metrics(prepared.settings.vertex_dose_gy * units["BOOST"])
    return {**alone, "as_delivered": dict(metrics(delivered), day=session.day, weights=dict(session.weights)),
            "definitions": {"basis": "boost fields alone, vertex mean = vertex_dose_gy, physical dose of one "
                                     "session; as_delivered: the first boosted session of the schedule"}}


def _applied(prepared: Prepared) -> dict:
    """Report settings saying which dose quantity was used and what the vertex dose means."""
    quantity = components_dose_quantity({name: c.rbe for name, c in prepared.components.items()})
    s = prepared.settings
    return {"dose_quantity": quantity,
            "vertex_dose_meaning": vertex_dose_meaning(s.boost_mode, s.vertex_dose_gy, prepared.crt_vertex_mean_gy(),
                                                       quantity["unit"])}


def run_comparison(patient: Patient | None = None, settings: ComparisonSettings | None = None,
                   progress=None) -> Comparison:
    """Full SFRT vs CRT comparison.

    Parameters
    ----------
    patient : Patient, optional
        Defaults to the built-in sarcoma thigh phantom. Gains VERTICES and VALLEY.
    settings : ComparisonSettings, optional
    progress : callable(str), optional
        Called with a short message at each stage.
    """
    from .phantoms import sarcoma_thigh

    start = time.perf_counter()
    settings = settings or ComparisonSettings()
    if patient is None:
        patient = sarcoma_thigh()
    for name in (settings.target, settings.ptv, *settings.avoid):
        patient.structures[name]  # raises a clear StructureError if missing
    if settings.crt_plan or settings.boost_plan:
        from .imported_plans import resolve_plan_settings

        settings = resolve_plan_settings(patient, settings)  # reads the plans; fractions from their fraction groups
    # check the schedules and alpha/beta names before spending time on dose
    crt_schedule(settings.crt_fractions, off_protocol=settings.off_protocol)
    if settings.vertex_dose_gy is not None:  # None: the boost plan's, known once its dose is computed
        sfrt_schedule(settings.crt_fractions, settings.vertex_sessions, settings.vertex_dose_gy, settings.boost_mode,
                      crt_vertex_mean_gy=0.0, off_protocol=settings.off_protocol)
    unknown = [n for n in settings.alpha_beta_gy if n not in patient.structures and n not in ("VERTICES", "VALLEY")]
    if unknown:
        raise StructureError(f"alpha/beta given for {', '.join(map(repr, unknown))}: not a structure of the patient; "
                             f"structures: {', '.join(patient.structures)} (and VERTICES, VALLEY once placed)")
    skipped = []
    if get_technique(settings.technique, **settings.technique_options).optimisation:  # goals, before any dose
        goals = resolve_goals(settings.goals, settings.optimiser_iterations)
        if settings.goals is None:  # the default goals apply to the structures this case has
            goals, skipped = goals.restricted_to({*patient.structures, "VERTICES", "VALLEY"})
        goals.check_structures("crt", patient.structures)
        goals.check_structures("boost", patient.structures, extra=("VERTICES", "VALLEY"))
        settings = dataclasses.replace(settings, goals=goals)
    prepared = prepare(patient, settings, progress)
    settings = prepared.settings  # with what the plans gave
    if progress:
        progress("biology and evaluation")
    ab_map = alpha_beta_map(patient, settings.alpha_beta_gy)
    schedules, physical, biological, arms = {}, {}, {}, {}
    for arm in ("CRT", "SFRT"):
        schedules[arm] = arm_schedule(prepared, arm, settings.crt_fractions, settings.vertex_sessions,
                                   settings.vertex_dose_gy, settings.boost_mode)
        physical[arm], biological[arm], arms[arm] = evaluate_arm(prepared, schedules[arm], ab_map)
    report = {
        "settings": dict(settings.to_dict(), engine_version=__version__, boost_mode=settings.boost_mode,
                         technique_details=prepared.technique, alpha_beta_precedence=list(DEFAULT_PRECEDENCE),
                         alpha_beta_resolved_gy=resolved_alpha_beta(patient, ab_map), patient=patient.name,
                         grid=patient.grid.to_dict(), backend_used=prepared.components["CRT"].backend,
                         **_applied(prepared)),
        "structures": structure_volumes(patient),
        "vertices": prepared.vertices.to_dict(),
        "components": {name: {"unit": c.unit, "beams": len(c.beams), "beamlets": c.n_beamlets, "rbe": c.rbe,
                              "seconds": round(c.seconds, 3), "optimisation": c.optimisation}
                       for name, c in prepared.components.items()},
        "arms": arms,
    }
    for arm, names in (("CRT", ("CRT",)), ("SFRT", ("CRT", "BOOST"))):
        arms[arm]["optimisation"] = {n: prepared.components[n].optimisation for n in names}
    arms["SFRT"]["boost_session"] = boost_session_metrics(prepared, schedules["SFRT"])
    if skipped:
        report["settings"]["goals_skipped"] = skipped  # default goals on structures this case does not have
    return Comparison(prepared, schedules, physical, biological, report, time.perf_counter() - start)
