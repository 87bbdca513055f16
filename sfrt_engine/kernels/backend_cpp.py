"""The C++ (OpenMP) backend: ``sfrt_engine.kernels._core``, built on every install."""

from __future__ import annotations

import contextlib
import numbers

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

    @contextlib.contextmanager
    def limit_threads(self, n: int):
        """Run the OpenMP regions of ``_core`` on ``n`` threads inside the ``with`` block, then restore.

        Applies to every ``_core`` call (dose, ray tables, dose operators) made from the calling
        Python thread inside the block (OpenMP's thread count is per calling thread:
        ``omp_set_num_threads``); other threads keep theirs. Without OpenMP the kernels run on
        one thread whatever ``n`` is. Results do not depend on the thread count (each voxel row is
        computed by one thread, in a fixed order).

        Parameters
        ----------
        n : int
            Threads, >= 1.

        Raises
        ------
        TypeError
            If ``n`` is not an integer.
        ValueError
            If ``n`` < 1.
        """
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"threads must be an integer, got {type(n).__name__} {n!r}")
        if n < 1:
            raise ValueError(f"threads = {n}; expected a thread count >= 1")
        previous = self._core.set_max_threads(int(n))
        try:
            yield self
        finally:
            self._core.set_max_threads(previous)

    def describe(self) -> dict:
        info = dict(self._core.build_info())
        info.update(name=NAME, precision="float32 (geometry and depth integrals in float64)",
                    threads=info.get("max_threads", 1))
        return info


def get() -> CppBackend:
    return CppBackend()
