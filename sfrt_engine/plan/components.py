"""Plan components: the CRT and vertex-boost field sets, each computed once as a unit dose.

Dose is linear in the beamlet weights, so a component's dose is computed once and
every schedule is a weighted sum of unit doses (DESIGN 4):

- CRT: scaled so that the PTV D95 of one fraction is ``crt_dose_per_fraction_gy``;
- BOOST: scaled so that the mean dose over the vertices is 1 Gy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..dose import compute_dose
from ..errors import PlanError
from ..evaluation import dose_statistics
from ..patient import Patient
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
        Dose of one unit [Gy].
    unit : str
        What one unit is.
    backend : str
    seconds : float
        Dose computation time [s].
    """

    name: str
    beams: list
    dose_gy: np.ndarray
    unit: str
    backend: str
    seconds: float

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
    d95 = dose_statistics(dose.gy, patient.structures[target], target)["d95_gy"]
    if not d95 > 0:
        raise PlanError(f"CRT plan gives no dose to {target!r} (D95 = {d95}); check the beams")
    factor = dose_per_fraction_gy / d95
    return Component("CRT", _scaled(beams, factor), dose.gy * factor,
                     f"one fraction, {target} D95 = {dose_per_fraction_gy:g} Gy", dose.backend, dose.seconds)


def boost_component(patient: Patient, technique, vertices: VertexLattice, backend: str = "auto") -> Component:
    """Vertex-boost field set normalised to a vertex mean dose of 1 Gy."""
    beams = technique.boost_beams(patient, vertices)
    dose = compute_dose(beams, patient, backend=backend)
    mean = float(dose.gy[vertices.mask].mean())
    if not mean > 0:
        raise PlanError("vertex-boost plan gives no dose to the vertices; check the beams")
    factor = 1.0 / mean
    return Component("BOOST", _scaled(beams, factor), dose.gy * factor, "vertex mean dose 1 Gy", dose.backend,
                     dose.seconds)
