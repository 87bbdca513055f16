"""sfrt-engine: pencil-beam dose for spatially fractionated (SFRT) versus conventional radiotherapy.

The call site reads like the workflow::

    import sfrt_engine as se
    patient = se.phantoms.sarcoma_thigh()
    machine = se.load_machine("photon_6mv")
    beams = se.plan.conformal_beams(patient, "PTV", machine, gantry_deg=[0, 72, 144, 216, 288])
    dose = se.compute_dose(beams, patient, backend="auto")
"""

__version__ = "0.1.0"

from . import biology, evaluation, io, phantoms, plan, study
from .compare import ComparisonSettings, run_comparison
from .dose import Dose, compute_dose
from .errors import (BackendUnavailableError, DeviceMemoryError, GridError, MachineDataError, PlanError, SfrtError,
                     StructureError)
from .grid import Grid
from .kernels import available_backends, get_backend
from .machines import PhotonMachine, fit_photon_machine, load_machine
from .patient import DEFAULT_HU_TO_DENSITY, HUCalibration, Patient

__all__ = [
    "BackendUnavailableError", "DeviceMemoryError", "GridError", "MachineDataError", "PlanError", "SfrtError",
    "StructureError", "Dose", "compute_dose", "Grid", "available_backends", "get_backend", "PhotonMachine",
    "fit_photon_machine", "load_machine", "DEFAULT_HU_TO_DENSITY", "HUCalibration", "Patient", "phantoms", "plan",
    "biology", "evaluation", "io", "study", "ComparisonSettings", "run_comparison", "__version__",
]

from . import components, optimise  # plan components and inverse planning

__all__ += ["components", "optimise"]
