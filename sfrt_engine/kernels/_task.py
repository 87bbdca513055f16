"""Per-beam work orders handed to every dose backend.

The host prepares, once per beam, everything the kernels need: the BEV frame, the
radiological-depth ray table layout, the beamlet lattice and weights, and the
machine's depth tables. Backends only index and accumulate; this module is the
Python mirror of ``csrc/params.h``.

Ray table (DESIGN 5.1): rays leave the source through the nodes ``(u_i, v_j)`` of
a regular lattice at the isocentre plane covering the beam's footprint; along each
ray the water-equivalent depth is tabulated at axial distances
``z_k = z0 + k dz`` from the source. A voxel reads its depth by trilinear
interpolation in ``(v, u, z)``.

Footprint: the lattice covers the open beamlets plus ``CUTOFF_SIGMA`` times the
widest lateral component (projected to the isocentre plane at the grid's nearest
point to the source), clipped to the grid's projection. Voxels outside get no dose
from the beam; what is dropped is below ``erfc(CUTOFF_SIGMA / sqrt(2)) / 2``
(1e-9 for 6) of the beam's broad-field dose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import PlanError
from ..grid import Grid

__all__ = ["BeamLatticeTask", "PhotonBeamTask", "prepare_photon_tasks", "pack_grid", "CUTOFF_SIGMA", "MIN_SOURCE_DISTANCE_MM",
           "MAX_BEAMLETS_1D", "GRID_PACK_SIZE", "BEAM_PACK_SIZE", "compiled_arguments"]

#: Lateral cut-off in units of each component's sigma (footprint and, in the
#: compiled kernels, the beamlet range visited per voxel). Error bound: 1e-9 of the
#: broad-field dose per component.
CUTOFF_SIGMA = 6.0
#: Voxels closer to the source than this along the axis get no dose [mm].
MIN_SOURCE_DISTANCE_MM = 1.0
#: Largest beamlet count along u or v of one beam (csrc/params.h SFRT_MAX_BEAMLETS_1D).
MAX_BEAMLETS_1D = 512
#: Lengths of the packed parameter vectors (csrc/params.h SFRT_GRID_PACK_SIZE, SFRT_BEAM_PACK_SIZE).
GRID_PACK_SIZE = 9
BEAM_PACK_SIZE = 36


def pack_grid(grid: Grid) -> np.ndarray:
    """Grid as the float64 vector read by ``sfrt::unpack_grid`` (csrc/params.h)."""
    nz, ny, nx = grid.shape_zyx
    return np.array([nx, ny, nz, *grid.origin_xyz_mm, *grid.spacing_xyz_mm], dtype=np.float64)


@dataclass(frozen=True, eq=False)
class BeamLatticeTask:
    """BEV frame and ray-table lattice: the part every beam's work order shares."""

    name: str
    sad_mm: float
    isocenter_xyz_mm: np.ndarray  # (3,)
    axis_u: np.ndarray  # (3,) unit
    axis_v: np.ndarray  # (3,) unit
    axis_source: np.ndarray  # (3,) unit, isocentre -> source
    # ray table lattice
    ray_u0_mm: float
    ray_du_mm: float
    ray_nu: int
    ray_v0_mm: float
    ray_dv_mm: float
    ray_nv: int
    ray_z0_mm: float
    ray_dz_mm: float
    ray_nz: int

    @property
    def source_xyz_mm(self) -> np.ndarray:
        return self.isocenter_xyz_mm + self.sad_mm * self.axis_source

    @property
    def ray_shape(self) -> tuple[int, int, int]:
        """Shape of the ray table, (nv, nu, nz)."""
        return (self.ray_nv, self.ray_nu, self.ray_nz)

    @property
    def footprint_uv_mm(self) -> tuple[float, float, float, float]:
        """(u_lo, u_hi, v_lo, v_hi) at the isocentre plane [mm]."""
        return (self.ray_u0_mm, self.ray_u0_mm + (self.ray_nu - 1) * self.ray_du_mm,
                self.ray_v0_mm, self.ray_v0_mm + (self.ray_nv - 1) * self.ray_dv_mm)

    def pack_frame(self) -> list[float]:
        """Elements 0..24 of every packed beam vector (csrc/params.h): frame and ray lattice."""
        return [self.sad_mm, *self.isocenter_xyz_mm, *self.axis_u, *self.axis_v, *self.axis_source,
                *self.source_xyz_mm, self.ray_u0_mm, self.ray_du_mm, self.ray_nu, self.ray_v0_mm, self.ray_dv_mm,
                self.ray_nv, self.ray_z0_mm, self.ray_dz_mm, self.ray_nz]


@dataclass(frozen=True, eq=False)
class PhotonBeamTask(BeamLatticeTask):
    """Everything a backend needs to add one photon beam's dose to a grid."""

    # beamlets: edges at edge0 + i * size, weights[nv, nu] in MU
    edge_u0_mm: float
    beamlet_du_mm: float
    edge_v0_mm: float
    beamlet_dv_mm: float
    weights_mu: np.ndarray  # (nv, nu) float64
    # machine depth tables on nodes i * depth_step_mm
    depth_step_mm: float
    depth_dose_gy_per_mu: np.ndarray  # (n,)
    component_weight: np.ndarray  # (K, n)
    component_sigma_mm: np.ndarray  # (K, n)

    def pack(self) -> np.ndarray:
        """Scalars as the float64 vector read by ``sfrt::unpack_photon_beam`` (csrc/params.h)."""
        nv, nu = self.weights_mu.shape
        k, n = self.component_weight.shape
        out = np.array([
            *self.pack_frame(),
            self.edge_u0_mm, self.beamlet_du_mm, nu, self.edge_v0_mm, self.beamlet_dv_mm, nv,
            self.depth_step_mm, n, k, CUTOFF_SIGMA, MIN_SOURCE_DISTANCE_MM,
        ], dtype=np.float64)
        if out.size != BEAM_PACK_SIZE:
            raise AssertionError(f"photon pack has {out.size} values, csrc/params.h expects {BEAM_PACK_SIZE}")
        return out


def _grid_corners(grid: Grid) -> np.ndarray:
    b = grid.bounds_xyz_mm
    return np.array([[b[0, i], b[1, j], b[2, k]] for i in (0, 1) for j in (0, 1) for k in (0, 1)])


def ray_lattice(beam, grid: Grid, max_sigma_mm: float) -> dict | None:
    """Frame and ray-table lattice fields of a beam's task, or None if its footprint misses the grid.

    The lattice covers the beam's open extent plus ``CUTOFF_SIGMA * max_sigma_mm``
    (projected to the isocentre plane from the grid's nearest point), clipped to the
    grid's projection; spacing = the smallest voxel size, along u, v and z.
    """
    frame = beam.frame
    u, v, z = frame.to_bev(_grid_corners(grid))
    z_min, z_max = float(z.min()), float(z.max())
    if z_min <= MIN_SOURCE_DISTANCE_MM:
        raise PlanError(
            f"beam {beam.name!r}: its source at {tuple(np.round(frame.source_xyz_mm, 1).tolist())} mm lies inside or "
            f"within {MIN_SOURCE_DISTANCE_MM} mm of the patient grid along the beam axis; move the isocentre "
            "or use a larger SAD"
        )
    step = float(min(grid.spacing_xyz_mm))
    reach = CUTOFF_SIGMA * max_sigma_mm * frame.sad_mm / z_min
    ou0, ou1, ov0, ov1 = beam.open_extent_uv_mm()
    u_lo, u_hi = max(ou0 - reach, float(u.min())), min(ou1 + reach, float(u.max()))
    v_lo, v_hi = max(ov0 - reach, float(v.min())), min(ov1 + reach, float(v.max()))
    if u_lo >= u_hi or v_lo >= v_hi:
        return None
    # nodes on whole multiples of the step: the lattice is symmetric about the central axis, so
    # mirrored set-ups sample depth at mirrored points
    iu0, iu1 = math.floor(u_lo / step), math.ceil(u_hi / step)
    iv0, iv1 = math.floor(v_lo / step), math.ceil(v_hi / step)
    return dict(
        name=beam.name, sad_mm=frame.sad_mm, isocenter_xyz_mm=np.asarray(frame.isocenter_xyz_mm, dtype=float),
        axis_u=frame.axis_u, axis_v=frame.axis_v, axis_source=frame.axis_source,
        ray_u0_mm=iu0 * step, ray_du_mm=step, ray_nu=iu1 - iu0 + 1,
        ray_v0_mm=iv0 * step, ray_dv_mm=step, ray_nv=iv1 - iv0 + 1,
        ray_z0_mm=z_min, ray_dz_mm=step, ray_nz=int(math.ceil((z_max - z_min) / step)) + 1,
    )


def prepare_photon_tasks(beams, grid: Grid) -> list[PhotonBeamTask]:
    """Work orders for ``beams`` on ``grid``; beams that miss the grid are left out.

    Raises
    ------
    PlanError
        If a source lies inside the grid or closer than ``MIN_SOURCE_DISTANCE_MM``
        to it along its axis.
    """
    tasks = []
    for beam in beams:
        machine = beam.machine
        lattice = ray_lattice(beam, grid, machine.max_sigma_mm())
        if lattice is None:
            continue  # the beam's footprint misses the grid
        # only the beamlets with weight reach the kernels
        rows, cols = np.nonzero(beam.weights_mu)
        weights = beam.weights_mu[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        if max(weights.shape) > MAX_BEAMLETS_1D:
            raise PlanError(
                f"beam {beam.name!r}: {weights.shape[1]} x {weights.shape[0]} beamlets (u x v) with weight; at most "
                f"{MAX_BEAMLETS_1D} along each axis are supported: use larger beamlets or split the field"
            )
        ue, ve = beam.beamlet_edges_mm()
        tasks.append(PhotonBeamTask(
            **lattice,
            edge_u0_mm=float(ue[cols.min()]), beamlet_du_mm=beam.beamlet_mm[0],
            edge_v0_mm=float(ve[rows.min()]), beamlet_dv_mm=beam.beamlet_mm[1],
            weights_mu=weights,
            depth_step_mm=machine.depth_step_mm,
            depth_dose_gy_per_mu=machine.depth_dose_gy_per_mu,
            component_weight=machine.component_weight,
            component_sigma_mm=machine.component_sigma_mm,
        ))
    return tasks


def compiled_arguments(density, grid: Grid, tasks) -> tuple:
    """Arguments of the compiled ``photon_dose(density, grid, params, weights, tdd, comp_w, comp_s)``.

    Density becomes C-contiguous float32; tables float32; packed vectors float64.
    """
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    return (
        f32(density),
        pack_grid(grid),
        [t.pack() for t in tasks],
        [f32(t.weights_mu) for t in tasks],
        [f32(t.depth_dose_gy_per_mu) for t in tasks],
        [f32(t.component_weight) for t in tasks],
        [f32(t.component_sigma_mm) for t in tasks],
    )
