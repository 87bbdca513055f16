"""``compute_dose``: the public entry point of the dose engine."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .errors import PlanError
from .grid import Grid
from .kernels import geometry_cache, get_backend, prepare_photon_tasks
from .kernels._proton_task import prepare_proton_tasks
from .patient import Patient
from .plan.beam import Beam
from .plan.protons import ProtonBeam

__all__ = ["Dose", "compute_dose"]


@dataclass(frozen=True, eq=False)
class Dose:
    """A dose distribution on a grid.

    Attributes
    ----------
    gy : ndarray, shape ``grid.shape_zyx``, float64
        Dose [Gy], indexed [z, y, x].
    grid : Grid
    backend : str
        Backend that computed it.
    seconds : float
        Wall time of the computation [s].
    beams : tuple of str
        Names of the beams summed.
    """

    gy: np.ndarray
    grid: Grid
    backend: str
    seconds: float = 0.0
    beams: tuple[str, ...] = field(default_factory=tuple)

    @property
    def max_gy(self) -> float:
        return float(self.gy.max())

    def at(self, point_xyz_mm) -> float:
        """Dose [Gy] of the voxel containing a point."""
        return float(self.gy[self.grid.index_of(point_xyz_mm)])


def compute_dose(beams: Beam | ProtonBeam | Iterable, patient: Patient, backend: str = "auto") -> Dose:
    """Dose of a set of beams on a patient.

    Parameters
    ----------
    beams : Beam, ProtonBeam or an iterable of them
        Photon beamlet weights in MU, proton spot weights in Gp; an arc is a list of its
        control-point beams. Photon and proton beams may be mixed; their doses add.
    patient : Patient
    backend : str
        ``"auto"`` (cuda, cupy, cpp, numpy: the first that runs) or a backend name.

    Returns
    -------
    Dose
        Gy for the weights given, float64 on ``patient.grid``.
    """
    if isinstance(beams, (Beam, ProtonBeam)):
        beams = [beams]
    beams = list(beams)
    if not beams:
        raise PlanError("compute_dose needs at least one beam")
    for i, b in enumerate(beams):
        if not isinstance(b, (Beam, ProtonBeam)):
            raise TypeError(f"beams[{i}] is a {type(b).__name__}, expected sfrt_engine.plan.Beam or ProtonBeam")
    if not isinstance(patient, Patient):
        raise TypeError(f"patient must be a sfrt_engine.Patient, got {type(patient).__name__}")
    engine = get_backend(backend)
    start = time.perf_counter()
    gy = None
    photon_tasks = prepare_photon_tasks([b for b in beams if isinstance(b, Beam)], patient.grid)
    if photon_tasks:
        density = geometry_cache.density_for(patient, patient.calibration, patient.density,
                                             getattr(engine, "dtype", np.float64))
        gy = np.array(engine.photon_dose(density, patient.grid, photon_tasks), dtype=np.float64)
    proton_tasks = prepare_proton_tasks([b for b in beams if isinstance(b, ProtonBeam)], patient.grid)
    if proton_tasks:
        stopping_power = geometry_cache.density_for(patient, patient.stopping_power_calibration,
                                                    patient.stopping_power, getattr(engine, "dtype", np.float64))
        proton_gy = np.asarray(engine.proton_dose(stopping_power, patient.grid, proton_tasks), dtype=np.float64)
        if gy is None:
            gy = np.array(proton_gy)
        else:
            gy += proton_gy
    if gy is None:
        gy = np.zeros(patient.grid.shape_zyx)
    return Dose(gy=gy, grid=patient.grid, backend=engine.name, seconds=time.perf_counter() - start,
                beams=tuple(b.name for b in beams))
