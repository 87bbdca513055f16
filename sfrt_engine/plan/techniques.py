"""Delivery techniques: how the CRT and vertex-boost fields of an arm are built.

A technique turns a patient and a target mask (the PTV for CRT, the vertex spheres for
the boost) into lists of beams that :func:`sfrt_engine.compute_dose` accepts; it never
changes the patient. Techniques build geometry only: whether and how the fields are
optimised is their ``optimisation`` attribute, acted on by :mod:`sfrt_engine.components`. New
techniques plug in with :func:`register_technique`; the SFRT/CRT comparison only
calls the two methods of :class:`Technique`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import PlanError
from ..machines import load_machine
from ..patient import Patient
from .builders import conformal_beams

__all__ = ["ConformalTechnique", "ImptTechnique", "ImrtTechnique", "Technique", "VmatTechnique", "available_techniques",
           "get_technique", "register_technique"]


@runtime_checkable
class Technique(Protocol):
    """What a delivery technique provides (structural: any object with these members).

    ``optimisation`` says what the comparison does with the fields before computing their dose:
    ``None`` (use them as built) or ``"fluence"`` (optimise their free weights against the goals,
    :mod:`sfrt_engine.components`).
    """

    name: str
    optimisation: str | None

    def crt_beams(self, patient: Patient, target_mask: np.ndarray, name: str = "PTV") -> list:
        """Beams of the conventional (homogeneous) component covering the target mask [z, y, x]."""
        ...

    def boost_beams(self, patient: Patient, target_mask: np.ndarray, isocenter_xyz_mm=None,
                    name: str = "VERTICES") -> list:
        """Beams of the vertex-boost component aimed at the vertex spheres (their mask [z, y, x])."""
        ...

    def describe(self) -> dict:
        """Settings to record in reports."""
        ...


@dataclass
class ConformalTechnique:
    """Static-field photon plan with uniform beamlet weights (3D conformal): conformal apertures at
    equally spaced gantry angles.

    CRT: ``crt_beams`` fields on the target plus ``crt_margin_mm`` with ``crt_beamlet_mm``
    beamlets. Boost: ``boost_beams`` fields whose apertures open only over the BEV
    projections of the vertex spheres (plus ``boost_margin_mm``), with finer beamlets.
    """

    machine_name: str = "photon_6mv"
    crt_beams_count: int = 5
    crt_beamlet_mm: float = 5.0
    crt_margin_mm: float = 5.0
    boost_beams_count: int = 9
    boost_beamlet_mm: float = 2.5
    boost_margin_mm: float = 0.0
    start_gantry_deg: float = 0.0
    name: str = field(default="3dcrt", init=False)
    optimisation: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.crt_beams_count < 1 or self.boost_beams_count < 1:
            raise PlanError(f"{self.name}: beam counts must be >= 1")
        self._machine = load_machine(self.machine_name)

    def _gantries(self, count: int) -> list[float]:
        return [(self.start_gantry_deg + i * 360.0 / count) % 360.0 for i in range(count)]

    def crt_beams(self, patient: Patient, target_mask, name: str = "PTV") -> list:
        return conformal_beams(patient, target_mask, self._machine, gantry_deg=self._gantries(self.crt_beams_count),
                               beamlet_mm=self.crt_beamlet_mm, margin_mm=self.crt_margin_mm, name=name)

    def boost_beams(self, patient: Patient, target_mask, isocenter_xyz_mm=None, name: str = "VERTICES") -> list:
        # offset the boost gantries by half a step from the CRT ones: entrance doses spread wider
        step = 360.0 / self.boost_beams_count
        gantries = [(self.start_gantry_deg + 0.5 * step + i * step) % 360.0 for i in range(self.boost_beams_count)]
        return conformal_beams(patient, target_mask, self._machine, gantry_deg=gantries,
                               beamlet_mm=self.boost_beamlet_mm, margin_mm=self.boost_margin_mm,
                               isocenter_xyz_mm=isocenter_xyz_mm, name=name)

    def describe(self) -> dict:
        return {"technique": self.name, "machine": self.machine_name, "optimisation": self.optimisation,
                "crt_beams": self.crt_beams_count, "crt_beamlet_mm": self.crt_beamlet_mm,
                "crt_margin_mm": self.crt_margin_mm, "boost_beams": self.boost_beams_count,
                "boost_beamlet_mm": self.boost_beamlet_mm, "boost_margin_mm": self.boost_margin_mm}


@dataclass
class ImrtTechnique(ConformalTechnique):
    """Static-field IMRT: the fields of :class:`ConformalTechnique` (``3dcrt``, same beams), each beamlet's
    fluence inside the conformal aperture optimised against the component's goals."""

    name: str = field(default="imrt", init=False)
    optimisation: str | None = field(default="fluence", init=False)


#: Leaf travel limit when the machine file gives none [mm per degree of gantry rotation].
DEFAULT_LEAF_TRAVEL_MM_PER_DEG = 5.0


@dataclass
class VmatTechnique:
    """Photon arcs: one arc on the target (CRT) and one on the vertex spheres (boost).

    Both start as conformal arcs (MLC leaf pairs fitted to the BEV projection,
    :func:`conformal_arc`). With ``optimise=True`` (default) the comparison optimises each arc's
    fluence, sequences it into one opening per leaf pair per control point with leaf travel
    within the machine's limit (``mlc.max_leaf_travel_mm_per_deg`` in the machine file) and
    re-optimises the control points' meterset weights (:mod:`sfrt_engine.optimise.vmat`).
    With ``optimise=False`` the CRT arc's leaf-pair fluence is refined for target homogeneity
    (:func:`refine_leaf_pair_fluence`, ``refine_iterations``) and the boost arc stays conformal.
    """

    machine_name: str = "photon_6mv"
    spacing_deg: float = 4.0
    crt_leaf_width_mm: float = 5.0
    crt_margin_mm: float = 5.0
    boost_leaf_width_mm: float = 2.5
    boost_margin_mm: float = 0.0
    refine_iterations: int = 3
    optimise: bool = True
    name: str = field(default="vmat", init=False)

    def __post_init__(self) -> None:
        self._machine = load_machine(self.machine_name)
        mlc = self._machine.metadata.get("mlc", {}) if hasattr(self._machine, "metadata") else {}
        self.leaf_travel_mm_per_deg = float(mlc.get("max_leaf_travel_mm_per_deg", DEFAULT_LEAF_TRAVEL_MM_PER_DEG))
        if not (self.leaf_travel_mm_per_deg > 0):
            raise PlanError(f"machine {self.machine_name!r}: mlc.max_leaf_travel_mm_per_deg="
                            f"{self.leaf_travel_mm_per_deg!r}; expected a positive limit in mm/deg")

    @property
    def optimisation(self) -> str | None:
        return "vmat" if self.optimise else None

    def crt_beams(self, patient: Patient, target_mask, name: str = "PTV") -> list:
        from .arcs import conformal_arc, refine_leaf_pair_fluence

        arc = conformal_arc(patient, target_mask, self._machine, start_deg=181.0, stop_deg=179.0, direction="cw",
                            spacing_deg=self.spacing_deg, leaf_width_mm=self.crt_leaf_width_mm,
                            margin_mm=self.crt_margin_mm, name=name)
        if self.refine_iterations > 0 and not self.optimise:
            arc = refine_leaf_pair_fluence(arc, patient, target_mask, iterations=self.refine_iterations)
        return arc

    def boost_beams(self, patient: Patient, target_mask, isocenter_xyz_mm=None, name: str = "VERTICES") -> list:
        from .arcs import conformal_arc

        return conformal_arc(patient, target_mask, self._machine, start_deg=181.0, stop_deg=179.0, direction="cw",
                             spacing_deg=self.spacing_deg, leaf_width_mm=self.boost_leaf_width_mm,
                             margin_mm=self.boost_margin_mm, isocenter_xyz_mm=isocenter_xyz_mm, name=name)

    def describe(self) -> dict:
        return {"technique": self.name, "machine": self.machine_name, "optimisation": self.optimisation,
                "spacing_deg": self.spacing_deg, "crt_leaf_width_mm": self.crt_leaf_width_mm,
                "crt_margin_mm": self.crt_margin_mm, "boost_leaf_width_mm": self.boost_leaf_width_mm,
                "boost_margin_mm": self.boost_margin_mm, "leaf_travel_mm_per_deg": self.leaf_travel_mm_per_deg,
                "refine_iterations": 0 if self.optimise else self.refine_iterations}


@dataclass
class ImptTechnique:
    """Scanned protons on the target (CRT) and on the vertex spheres (boost).

    ``mfo=True`` (default): multi-field optimisation, every spot of every field optimised together against
    the component's goals. ``mfo=False``: single-field uniform dose (SFUD) weights, field by field.
    """

    machine_name: str = "proton_generic"
    crt_gantry_deg: tuple = (0.0, 120.0, 240.0)
    boost_gantry_deg: tuple = (60.0, 180.0, 300.0)
    spot_spacing_mm: float = 5.0
    boost_spot_spacing_mm: float = 3.0
    margin_mm: float = 5.0
    boost_margin_mm: float = 2.0
    backend: str = "auto"
    mfo: bool = True
    name: str = field(default="impt", init=False)

    def __post_init__(self) -> None:
        self._machine = load_machine(self.machine_name)

    @property
    def optimisation(self) -> str | None:
        return "fluence" if self.mfo else None

    def crt_beams(self, patient: Patient, target_mask, name: str = "PTV") -> list:
        from .impt import impt_beams

        return impt_beams(patient, target_mask, self._machine, gantry_deg=list(self.crt_gantry_deg),
                          spot_spacing_mm=self.spot_spacing_mm, margin_mm=self.margin_mm, backend=self.backend,
                          weights="start" if self.mfo else "sfud", name=name)

    def boost_beams(self, patient: Patient, target_mask, isocenter_xyz_mm=None, name: str = "VERTICES") -> list:
        from .impt import impt_beams

        return impt_beams(patient, target_mask, self._machine, gantry_deg=list(self.boost_gantry_deg),
                          spot_spacing_mm=self.boost_spot_spacing_mm, margin_mm=self.boost_margin_mm,
                          backend=self.backend, isocenter_xyz_mm=isocenter_xyz_mm,
                          weights="start" if self.mfo else "sfud", name=name)

    def describe(self) -> dict:
        return {"technique": self.name, "machine": self.machine_name, "optimisation": self.optimisation,
                "mfo": self.mfo, "crt_gantry_deg": list(self.crt_gantry_deg),
                "boost_gantry_deg": list(self.boost_gantry_deg), "spot_spacing_mm": self.spot_spacing_mm,
                "boost_spot_spacing_mm": self.boost_spot_spacing_mm, "margin_mm": self.margin_mm,
                "boost_margin_mm": self.boost_margin_mm}


_REGISTRY: dict[str, Callable[..., Technique]] = {"3dcrt": ConformalTechnique, "imrt": ImrtTechnique,
                                                  "vmat": VmatTechnique, "impt": ImptTechnique}
_PENDING: dict[str, str] = {}


def register_technique(name: str, factory: Callable[..., Technique]) -> None:
    """Make a technique available by name to the comparison, the study API and the CLI."""
    _REGISTRY[name] = factory
    _PENDING.pop(name, None)


def available_techniques() -> dict[str, str]:
    """``name -> "ok"`` for usable techniques and ``name -> reason`` for announced but missing ones."""
    out = {name: "ok" for name in _REGISTRY}
    out.update(_PENDING)
    return out


def get_technique(name: str, **options) -> Technique:
    """Technique by name; options go to its constructor."""
    if name in _REGISTRY:
        return _REGISTRY[name](**options)
    if name in _PENDING:
        raise PlanError(f"technique {name!r} is unavailable: {_PENDING[name]}; available: {', '.join(_REGISTRY)}")
    raise PlanError(f"unknown technique {name!r}; expected one of: {', '.join(available_techniques())}")
