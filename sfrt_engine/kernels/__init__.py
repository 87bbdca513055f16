"""Dose backends (numpy reference, cpp, cuda, cupy) and their registry."""

from ._registry import AUTO_ORDER, BACKENDS, available_backends, get_backend
from ._task import CUTOFF_SIGMA, PhotonBeamTask, prepare_photon_tasks

__all__ = ["AUTO_ORDER", "BACKENDS", "available_backends", "get_backend", "CUTOFF_SIGMA",
           "PhotonBeamTask", "prepare_photon_tasks"]
