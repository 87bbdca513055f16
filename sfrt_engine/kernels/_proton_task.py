"""Per-beam work orders for proton beams (Python mirror of ProtonBeamParams in csrc/params.h).

The BEV frame and ray table are those of photon beams (:mod:`._task`), computed on
the water-equivalent (relative stopping power) density. Each energy layer keeps the
bounding box of its weighted spots; layers with no weight are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PlanError
from ..grid import Grid
from ._task import (
    BEAM_PACK_SIZE,
    CUTOFF_SIGMA,
    MAX_BEAMLETS_1D,
    MIN_SOURCE_DISTANCE_MM,
    BeamLatticeTask,
    pack_grid,
    ray_lattice,
)

__all__ = ["ProtonBeamTask", "prepare_proton_tasks", "compiled_proton_arguments", "LAYER_PACK_SIZE"]

LAYER_PACK_SIZE = 9  # csrc/params.h SFRT_LAYER_PACK_SIZE


@dataclass(frozen=True, eq=False)
class ProtonLayerTask:
    energy_index: int
    energy_mev: float
    u0_mm: float
    du_mm: float
    v0_mm: float
    dv_mm: float
    weights_gp: np.ndarray  # (nv, nu)
    range_shifter_mm: float = 0.0


@dataclass(frozen=True, eq=False)
class ProtonBeamTask(BeamLatticeTask):
    layers: tuple[ProtonLayerTask, ...]
    depth_step_mm: float
    idd_gy_mm2_per_gp: np.ndarray  # (nE, nd)
    sigma_mm: np.ndarray  # (nE, nd)

    def pack(self) -> np.ndarray:
        """Scalars as read by ``sfrt::unpack_proton_beam`` (same frame layout as photon packs)."""
        n_e, n_d = self.idd_gy_mm2_per_gp.shape
        out = np.zeros(BEAM_PACK_SIZE)
        head = [*self.pack_frame(), len(self.layers), n_e, n_d, self.depth_step_mm, CUTOFF_SIGMA,
                MIN_SOURCE_DISTANCE_MM]
        out[:len(head)] = head
        return out

    def pack_layers(self) -> tuple[np.ndarray, np.ndarray]:
        """(layers float64 [L, 9], weights float32 flat) as read by ``sfrt::unpack_layer``."""
        rows, weights, offset = [], [], 0
        for layer in self.layers:
            nv, nu = layer.weights_gp.shape
            rows.append([layer.energy_index, layer.u0_mm, layer.du_mm, nu, layer.v0_mm, layer.dv_mm, nv, offset,
                         layer.range_shifter_mm])
            weights.append(np.asarray(layer.weights_gp, dtype=np.float32).ravel())
            offset += nu * nv
        return np.array(rows, dtype=np.float64).reshape(-1, LAYER_PACK_SIZE), np.concatenate(weights)


def prepare_proton_tasks(beams, grid: Grid) -> list[ProtonBeamTask]:
    """Work orders for proton beams on ``grid``; beams that miss the grid are left out."""
    tasks = []
    for beam in beams:
        machine = beam.machine
        lattice = ray_lattice(beam, grid, float(machine.sigma_mm.max()))
        if lattice is None:
            continue
        layers = []
        for layer in beam.layers:
            rows, cols = np.nonzero(layer.weights_gp)
            if rows.size == 0:
                continue
            w = layer.weights_gp[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
            if max(w.shape) > MAX_BEAMLETS_1D:
                raise PlanError(f"beam {beam.name!r}, layer {layer.energy_mev:g} MeV: {w.shape[1]} x {w.shape[0]} "
                                f"spots; at most {MAX_BEAMLETS_1D} along each axis are supported")
            pu, pv = layer.positions_uv_mm()
            layers.append(ProtonLayerTask(machine.energy_index(layer.energy_mev), layer.energy_mev,
                                          float(pu[cols.min()]), layer.spacing_mm[0], float(pv[rows.min()]),
                                          layer.spacing_mm[1], w, layer.range_shifter_mm))
        tasks.append(ProtonBeamTask(**lattice, layers=tuple(layers), depth_step_mm=machine.depth_step_mm,
                                    idd_gy_mm2_per_gp=machine.idd_gy_mm2_per_gp, sigma_mm=machine.sigma_mm))
    return tasks


_F32_CACHE: dict[int, tuple] = {}


def _f32_tables(task: ProtonBeamTask):
    key = id(task.idd_gy_mm2_per_gp)
    hit = _F32_CACHE.get(key)
    if hit is None or hit[0] is not task.idd_gy_mm2_per_gp:
        hit = (task.idd_gy_mm2_per_gp, np.ascontiguousarray(task.idd_gy_mm2_per_gp, dtype=np.float32),
               np.ascontiguousarray(task.sigma_mm, dtype=np.float32))
        _F32_CACHE[key] = hit
    return hit[1], hit[2]


def compiled_proton_arguments(density, grid: Grid, tasks) -> tuple:
    """Arguments of the compiled ``proton_dose(density, grid, params, layers, weights, idd, sigma)``."""
    packed = [t.pack_layers() for t in tasks]
    tables = [_f32_tables(t) for t in tasks]
    return (
        np.ascontiguousarray(density, dtype=np.float32),
        pack_grid(grid),
        [t.pack() for t in tasks],
        [p[0] for p in packed],
        [p[1] for p in packed],
        [t[0] for t in tables],
        [t[1] for t in tables],
    )
