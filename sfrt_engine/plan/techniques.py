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
        name = "_VERTEX_TARGET"
        patient.structures[name] = vertices.mask
        try:
            beams = conformal_beams(patient, name, self._machine, gantry_deg=gantries, beamlet_mm=self.boost_beamlet_mm,
                                    margin_mm=self.boost_margin_mm,
                                    isocenter_xyz_mm=tuple(vertices.centers_xyz_mm.mean(axis=0)))
        finally:
            del patient.structures[name]
        return beams

    def describe(self) -> dict:
        return {"technique": self.name, "machine": self.machine_name, "crt_beams": self.crt_beams_count,
                "crt_beamlet_mm": self.crt_beamlet_mm, "crt_margin_mm": self.crt_margin_mm,
                "boost_beams": self.boost_beams_count, "boost_beamlet_mm": self.boost_beamlet_mm,
                "boost_margin_mm": self.boost_margin_mm}


_REGISTRY: dict[str, Callable[..., Technique]] = {"imrt": ImrtTechnique}
_PENDING = {
    "vmat": "VMAT arcs are not part of this version of sfrt-engine (they arrive with the protons + VMAT work)",
    "impt": "IMPT proton spots are not part of this version of sfrt-engine (they arrive with the protons + VMAT work)",
}


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
