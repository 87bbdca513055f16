"""Delivery techniques: how the CRT and vertex-boost fields of an arm are built.

A technique turns a patient (with its target and, for the boost, the placed
vertices) into lists of beams that :func:`sfrt_engine.compute_dose` accepts. New
techniques plug in with :func:`register_technique`; the SFRT/CRT comparison only
calls the two methods of :class:`Technique`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..errors import PlanError
from ..machines import load_machine
from ..patient import Patient
from .builders import conformal_beams
from .vertices import VertexLattice

__all__ = ["Technique", "ImrtTechnique", "register_technique", "get_technique", "available_techniques"]


@runtime_checkable
class Technique(Protocol):
    """What a delivery technique provides (structural: any object with these members)."""

    name: str

    def crt_beams(self, patient: Patient, target: str) -> list:
        """Beams of the conventional (homogeneous) component covering ``target``."""
        ...

    def boost_beams(self, patient: Patient, vertices: VertexLattice) -> list:
        """Beams of the vertex-boost component aimed at the vertices."""
        ...

    def describe(self) -> dict:
        """Settings to record in reports."""
        ...


@dataclass
class ImrtTechnique:
    """Static-field photon plan: conformal beamlet apertures at equally spaced gantry angles.

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
    name: str = field(default="imrt", init=False)

    def __post_init__(self) -> None:
        if self.crt_beams_count < 1 or self.boost_beams_count < 1:
            raise PlanError("imrt: beam counts must be >= 1")
        self._machine = load_machine(self.machine_name)

    def _gantries(self, count: int) -> list[float]:
        return [(self.start_gantry_deg + i * 360.0 / count) % 360.0 for i in range(count)]

    def crt_beams(self, patient: Patient, target: str) -> list:
        return conformal_beams(patient, target, self._machine, gantry_deg=self._gantries(self.crt_beams_count),
                               beamlet_mm=self.crt_beamlet_mm, margin_mm=self.crt_margin_mm)

    def boost_beams(self, patient: Patient, vertices: VertexLattice) -> list:
        # offset the boost gantries by half a step from the CRT ones: entrance doses spread wider
        step = 360.0 / self.boost_beams_count
        gantries = [(self.start_gantry_deg + 0.5 * step + i * step) % 360.0 for i in range(self.boost_beams_count)]
        return _vertex_target(patient, vertices, lambda name: conformal_beams(
            patient, name, self._machine, gantry_deg=gantries, beamlet_mm=self.boost_beamlet_mm,
            margin_mm=self.boost_margin_mm, isocenter_xyz_mm=tuple(vertices.centers_xyz_mm.mean(axis=0))))

    def describe(self) -> dict:
        return {"technique": self.name, "machine": self.machine_name, "crt_beams": self.crt_beams_count,
                "crt_beamlet_mm": self.crt_beamlet_mm, "crt_margin_mm": self.crt_margin_mm,
                "boost_beams": self.boost_beams_count, "boost_beamlet_mm": self.boost_beamlet_mm,
                "boost_margin_mm": self.boost_margin_mm}


def _vertex_target(patient: Patient, vertices: VertexLattice, build):
    """Run ``build(name)`` with the vertex spheres as a temporary structure ``name``."""
    name = "_VERTEX_TARGET"
    patient.structures[name] = vertices.mask
    try:
        return build(name)
    finally:
        del patient.structures[name]


@dataclass
class VmatTechnique:
    """Photon arcs: one conformal arc on the target (CRT) and one on the vertex spheres (boost).

    Apertures are MLC leaf pairs fitted to the BEV projection (:func:`conformal_arc`); the
    CRT arc's leaf-pair fluence is refined for target homogeneity
    (:func:`refine_leaf_pair_fluence`); the boost arc uses narrower leaves and no margin.
    """

    machine_name: str = "photon_6mv"
    spacing_deg: float = 4.0
    crt_leaf_width_mm: float = 5.0
    crt_margin_mm: float = 5.0
    boost_leaf_width_mm: float = 2.5
    boost_margin_mm: float = 0.0
    refine_iterations: int = 3
    name: str = field(default="vmat", init=False)

    def __post_init__(self) -> None:
        self._machine = load_machine(self.machine_name)

    def crt_beams(self, patient: Patient, target: str) -> list:
        from .arcs import conformal_arc, refine_leaf_pair_fluence

        arc = conformal_arc(patient, target, self._machine, start_deg=181.0, stop_deg=179.0, direction="cw",
                            spacing_deg=self.spacing_deg, leaf_width_mm=self.crt_leaf_width_mm,
                            margin_mm=self.crt_margin_mm)
        if self.refine_iterations > 0:
            arc = refine_leaf_pair_fluence(arc, patient, target, iterations=self.refine_iterations)
        return list(arc)

    def boost_beams(self, patient: Patient, vertices: VertexLattice) -> list:
        from .arcs import conformal_arc

        return _vertex_target(patient, vertices, lambda name: list(conformal_arc(
            patient, name, self._machine, start_deg=181.0, stop_deg=179.0, direction="cw",
            spacing_deg=self.spacing_deg, leaf_width_mm=self.boost_leaf_width_mm, margin_mm=self.boost_margin_mm,
            isocenter_xyz_mm=tuple(vertices.centers_xyz_mm.mean(axis=0)))))

    def describe(self) -> dict:
        return {"technique": self.name, "machine": self.machine_name, "spacing_deg": self.spacing_deg,
                "crt_leaf_width_mm": self.crt_leaf_width_mm, "crt_margin_mm": self.crt_margin_mm,
                "boost_leaf_width_mm": self.boost_leaf_width_mm, "boost_margin_mm": self.boost_margin_mm,
                "refine_iterations": self.refine_iterations}


@dataclass
class ImptTechnique:
    """Scanned protons: SFUD fields on the target (CRT) and on the vertex spheres (boost)."""

    machine_name: str = "proton_generic"
    crt_gantry_deg: tuple = (0.0, 120.0, 240.0)
    boost_gantry_deg: tuple = (60.0, 180.0, 300.0)
    spot_spacing_mm: float = 5.0
    boost_spot_spacing_mm: float = 3.0
    margin_mm: float = 5.0
    boost_margin_mm: float = 2.0
    backend: str = "auto"
    name: str = field(default="impt", init=False)

    def __post_init__(self) -> None:
        self._machine = load_machine(self.machine_name)

    def crt_beams(self, patient: Patient, target: str) -> list:
        from .impt import impt_beams

        return impt_beams(patient, target, self._machine, gantry_deg=list(self.crt_gantry_deg),
                          spot_spacing_mm=self.spot_spacing_mm, margin_mm=self.margin_mm, backend=self.backend)

    def boost_beams(self, patient: Patient, vertices: VertexLattice) -> list:
        from .impt import impt_beams

        return _vertex_target(patient, vertices, lambda name: impt_beams(
            patient, name, self._machine, gantry_deg=list(self.boost_gantry_deg),
            spot_spacing_mm=self.boost_spot_spacing_mm, margin_mm=self.boost_margin_mm, backend=self.backend,
            isocenter_xyz_mm=tuple(vertices.centers_xyz_mm.mean(axis=0))))

    def describe(self) -> dict:
        return {"technique": self.name, "machine": self.machine_name, "crt_gantry_deg": list(self.crt_gantry_deg),
                "boost_gantry_deg": list(self.boost_gantry_deg), "spot_spacing_mm": self.spot_spacing_mm,
                "boost_spot_spacing_mm": self.boost_spot_spacing_mm, "margin_mm": self.margin_mm,
                "boost_margin_mm": self.boost_margin_mm}


_REGISTRY: dict[str, Callable[..., Technique]] = {"imrt": ImrtTechnique, "vmat": VmatTechnique,
                                                  "impt": ImptTechnique}
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
