"""The C++ (OpenMP) backend: ``sfrt_engine.kernels._core``, built on every install."""

from __future__ import annotations

import numpy as np

from ..grid import Grid
from ._proton_task import compiled_proton_arguments
from . import geometry_cache
from ._task import PhotonBeamTask, compiled_arguments, pack_grid

NAME = "cpp"


def _import():
    from . import _core  # noqa: PLC0415 - imported lazily on purpose

    return _core


def probe() -> str | None:
    try:
        _import()
    except ImportError as exc:
        return (f"the C++ module sfrt_engine.kernels._core is not built or cannot load ({exc}); "
                "reinstall with 'pip install .'")
    return None


def build_info() -> dict:
    """Compiled features of ``_core`` (version, OpenMP, threads, compiler)."""
    return dict(_import().build_info())


class CppBackend:
    """float32 kernels from csrc/physics, OpenMP over voxel rows."""

    name = NAME
    dtype = np.float32

    def __init__(self) -> None:
        self._core = _import()

    def radiological_depth(self, density, grid: Grid, task: PhotonBeamTask) -> np.ndarray:
        return self._core.trace_rays(np.ascontiguousarray(density, dtype=np.float32), pack_grid(grid), task.pack())

    def photon_dose(self, density, grid: Grid, tasks) -> np.ndarray:
        args = compiled_arguments(density, grid, tasks)
        return self._core.photon_dose(*args, tables=self._tables(density, args[0], args[1], args[2]))

    def proton_dose(self, density, grid: Grid, tasks) -> np.ndarray:
        args = compiled_proton_arguments(density, grid, tasks)
        return self._core.proton_dose(*args, tables=self._tables(density, args[0], args[1], args[2]))

    def _tables(self, density, density_f32, grid_pack, packs) -> list:
        """Ray tables from the geometry cache (traced by ``trace_rays`` on a miss, as the driver would), or none
        when ``density`` is not the cache's (the driver then traces every beam)."""
        if density_f32 is not density:
            return []
        tables = [geometry_cache.ray_table(density, grid_pack, pack,
                                           lambda pack=pack: self._core.trace_rays(density, grid_pack, pack))
                  for pack in packs]
        return [] if all(t is None for t in tables) else tables

    def describe(self) -> dict:
        info = dict(self._core.build_info())
        info.update(name=NAME, precision="float32 (geometry and depth integrals in float64)",
                    threads=info.get("max_threads", 1))
        return info


def get() -> CppBackend:
    return CppBackend()
