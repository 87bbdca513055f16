"""The CUDA backend: ``sfrt_engine.kernels._cuda``, built by nvcc where it is found.

The kernels (``csrc/cuda/dose_kernels.cuh``) call the same physics headers as
the C++ backend; the driver (``csrc/cuda/dose_cuda.cu``) keeps the dose on the
device across beams, plans device memory before allocating (one pass, or all ray
tables first and the dose in z-chunks, bit-identical) and raises
``_cuda.DeviceMemoryError``, turned here into
:class:`~sfrt_engine.errors.DeviceMemoryError`. Importing ``_cuda`` makes no CUDA
call; :func:`probe` asks the driver whether a device can run the kernels.
"""

from __future__ import annotations

import contextlib
import importlib

import numpy as np

from ..errors import DeviceMemoryError
from ..grid import Grid
from ._proton_task import compiled_proton_arguments
from ._task import compiled_arguments, pack_grid
from .backend_cupy import _check_budget, _task_kind

__all__ = ["NAME", "CudaBackend", "build_info", "devices", "get", "probe"]

NAME = "cuda"
_MODULE = "sfrt_engine.kernels._cuda"


def _import():
    return importlib.import_module(_MODULE)


def probe() -> str | None:
    """None when ``_cuda`` is built and the current device can run it; else the reason."""
    try:
        module = _import()
    except ModuleNotFoundError as exc:
        if exc.name != _MODULE:
            raise
        return ("built without CUDA: sfrt_engine.kernels._cuda is not in this install (nvcc was not found at "
                "build time, or SFRT_CUDA=OFF); install the CUDA toolkit and reinstall with SFRT_CUDA=ON")
    except ImportError as exc:
        return f"the CUDA module {_MODULE} cannot load ({exc}); reinstall sfrt-engine"
    return module.probe()


def build_info() -> dict:
    """Version, CUDA architectures and runtime ``_cuda`` was built with (no device needed)."""
    info = dict(_import().build_info())
    info["driver_version"] = _import().driver_version()
    return info


def devices() -> list[dict]:
    """Visible CUDA devices; RuntimeError ``no CUDA device: ...`` when there is none."""
    return list(_import().devices())


class CudaBackend:
    """float32 kernels from csrc/physics compiled by nvcc; one thread per voxel.

    Parameters
    ----------
    memory_budget_bytes : int, optional
        Cap on the device memory planned with [bytes]; 0 means free memory only.
        Default: ``SFRT_GPU_MEMORY_BUDGET_MIB`` from the environment.
    """

    name = NAME
    dtype = np.float32

    def __init__(self, memory_budget_bytes: int | None = None) -> None:
        self._cuda = _import()
        self.memory_budget_bytes = _check_budget(memory_budget_bytes)

    @contextlib.contextmanager
    def _device_errors(self):
        try:
            yield
        except self._cuda.DeviceMemoryError as exc:
            raise DeviceMemoryError(f"cuda backend: {exc}") from exc

    def memory_info(self) -> dict:
        """Device memory [bytes]: free, total, reserved (kernel local memory for every resident thread,
        plus headroom) and available to the plan (capped by the budget)."""
        return dict(self._cuda.memory_info(memory_budget_bytes=self.memory_budget_bytes))

    def memory_plan(self, grid: Grid, tasks) -> dict:
        """How :meth:`photon_dose` or :meth:`proton_dose` would use the device now (raises
        DeviceMemoryError if it cannot)."""
        tasks = list(tasks)
        available = self.memory_info()["available_bytes"]
        with self._device_errors():
            if _task_kind(tasks) == "proton":
                layers, weights = zip(*(t.pack_layers() for t in tasks))
                return dict(self._cuda.plan_proton_memory(pack_grid(grid), [t.pack() for t in tasks], list(layers),
                                                          list(weights), available))
            return dict(self._cuda.plan_memory(pack_grid(grid), [t.pack() for t in tasks], available))

    def radiological_depth(self, density, grid: Grid, task) -> np.ndarray:
        """Ray table of water-equivalent depth [mm], float32 ``task.ray_shape`` = (nv, nu, nz), of a photon or
        proton task (the trace kernel reads only the frame and ray lattice, laid out alike in both packs)."""
        with self._device_errors():
            return self._cuda.trace_rays(np.ascontiguousarray(density, dtype=np.float32), pack_grid(grid),
                                         task.pack(), memory_budget_bytes=self.memory_budget_bytes)

    def photon_dose(self, density, grid: Grid, tasks) -> np.ndarray:
        """Sum of the beams' doses [Gy], float32 [z, y, x], beams added voxel by voxel in order."""
        with self._device_errors():
            return self._cuda.photon_dose(*compiled_arguments(density, grid, list(tasks)),
                                          memory_budget_bytes=self.memory_budget_bytes)

    def proton_dose(self, density, grid: Grid, tasks) -> np.ndarray:
        """Sum of the proton beams' doses [Gy], float32 [z, y, x]; density is relative stopping power."""
        with self._device_errors():
            return self._cuda.proton_dose(*compiled_proton_arguments(density, grid, list(tasks)),
                                          memory_budget_bytes=self.memory_budget_bytes)

    def describe(self) -> dict:
        info = build_info()
        device = devices()[0] if self._cuda.probe() is None else {}
        info.update(name=NAME, precision="float32 (geometry and depth integrals in float64)", threads=1,
                    device=device.get("name", "none"), compute_capability=device.get("compute_capability"),
                    memory_budget_bytes=self.memory_budget_bytes)
        return info


def get() -> CudaBackend:
    return CudaBackend()
