"""Plan components: the CRT and vertex-boost field sets, each computed once as a unit dose.

Dose is linear in the beamlet weights, so a component's dose is computed once and
every schedule is a weighted sum of unit doses (DESIGN 4):

- CRT: scaled so that the PTV D95 of one fraction is ``crt_dose_per_fraction_gy``;
- BOOST: scaled so that the mean dose over the vertices is 1 Gy.

Proton components are RBE-weighted (constant RBE 1.1, :mod:`sfrt_engine.rbe`): their
``dose_gy`` is in Gy(RBE), the normalisation above applies to that dose, and everything
downstream (schedules, EQD2, reports) works on it. Photon components have RBE 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..dose import compute_dose
from ..errors import PlanError
from ..evaluation import dose_statistics
from ..patient import Patient
from ..rbe import beams_rbe, dose_unit
from .schedule import CRT_DOSE_PER_FRACTION_GY
from .vertices import VertexLattice

__all__ = ["Component", "crt_component", "boost_component"]


@dataclass(frozen=True, eq=False)
class Component:
    """A field set and its dose for one unit of the component.

    Attributes
    ----------
    name : str
        "CRT" or "BOOST".
    beams : list
        Beams with weights already scaled to one unit [MU].
    dose_gy : ndarray [z, y, x]
        Dose of one unit [Gy]: RBE x the physical dose of ``beams`` (Gy(RBE) for protons).
    unit : str
        What one unit is.
    backend : str
    seconds : float
        Dose computation time [s].
    rbe : float
        RBE applied to the physical dose: 1.0 for photons, 1.1 for protons.
    """

    name: str
    beams: list
    dose_gy: np.ndarray
    unit: str
    backend: str
    seconds: float
    rbe: float = 1.0

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


def crt_component(patient: Patient, technique, target: str = "PTV",
                  dose_per_fraction_gy: float = CRT_DOSE_PER_FRACTION_GY, backend: str = "auto") -> Component:
    """CRT field set normalised so that the target's D95 is ``dose_per_fraction_gy`` per fraction."""
    beams = technique.crt_beams(patient, target)
    dose = compute_dose(beams, patient, backend=backend)
    rbe = beams_rbe(beams)
    weighted = dose.gy * rbe if rbe != 1.0 else dose.gy
    d95 = dose_statistics(weighted, patient.structures[target], target)["d95_gy"]
    if not d95 > 0:
        raise PlanError(f"CRT plan gives no dose to {target!r} (D95 = {d95}); check the beams")
    factor = dose_per_fraction_gy / d95
    unit = dose_unit(rbe)
    return Component("CRT", _scaled(beams, factor), weighted * factor,
                     f"one fraction, {target} D95 = {dose_per_fraction_gy:g} {unit}", dose.backend, dose.seconds, rbe)


def boost_component(patient: Patient, technique, vertices: VertexLattice, backend: str = "auto") -> Component:
    """Vertex-boost field set normalised to a vertex mean dose of 1 Gy."""
    beams = technique.boost_beams(patient, vertices)
    dose = compute_dose(beams, patient, backend=backend)
    rbe = beams_rbe(beams)
    weighted = dose.gy * rbe if rbe != 1.0 else dose.gy
    mean = float(weighted[vertices.mask].mean())
    if not mean > 0:
        raise PlanError("vertex-boost plan gives no dose to the vertices; check the beams")
    factor = 1.0 / mean
    unit = dose_unit(rbe)
    return Component("BOOST", _scaled(beams, factor), weighted * factor, f"vertex mean dose 1 {unit}", dose.backend,
                     dose.seconds, rbe)
