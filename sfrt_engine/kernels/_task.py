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

Scatter table (DESIGN 9 fast path): a lateral component wide enough that a table
meets ``SCATTER_TABLE_TOLERANCE`` (the phantom-scatter Gaussian, not the primary) is
not summed over the beamlets voxel by voxel. Its beamlet sum

    F(u, v, s) = sum_j Pv_j(v; s) sum_i W_ji Pu_i(u; s)

(the fluence convolved with a Gaussian of sigma ``s`` at the isocentre plane) is
computed once per beam on a lattice of nodes ``(u_i, v_j)`` and a geometric ladder
of sigmas ``s_l = s0 r^l`` (:class:`ScatterTable`); a voxel reads it by trilinear
interpolation in ``(ln s, v, u)``. Every backend, the NumPy reference included,
reads the same table, so the fast path is the specification; its departure from
direct summation is bounded in tests/kernels/test_scatter_table.py.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..errors import PlanError
from ..grid import Grid
from . import geometry_cache

__all__ = ["BeamLatticeTask", "PhotonBeamTask", "ScatterTable", "prepare_photon_tasks", "scatter_table", "pack_grid",
           "CUTOFF_SIGMA", "MIN_SOURCE_DISTANCE_MM", "MAX_BEAMLETS_1D", "GRID_PACK_SIZE", "BEAM_PACK_SIZE",
           "SCATTER_TABLE_TOLERANCE", "SCATTER_TABLE_LEVEL_RATIO", "SCATTER_TABLE_MIN_STEP_FRACTION",
           "compiled_arguments"]

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
BEAM_PACK_SIZE = 46
#: Scatter table: worst-case interpolation error allowed per tabulated component, as a
#: fraction of the beam's broad-field dose at its largest beamlet weight (ScatterTable).
SCATTER_TABLE_TOLERANCE = 2e-3
#: Ratio of successive sigma levels of the table.
SCATTER_TABLE_LEVEL_RATIO = 1.05
#: A component is tabulated only if the lattice step its tolerance allows is at least this
#: fraction of the ray-lattice step (so a table never has more than 4x the ray lattice's nodes).
SCATTER_TABLE_MIN_STEP_FRACTION = 0.5
# Curvature constants of the error bound (ScatterTable): the L1 norms of d^2/dx^2 of a unit
# 1D Gaussian (4 phi(1)) and of d^2/d(ln s)^2 of a unit 2D Gaussian.
# The second: with x = r^2 / (2 s^2) (exponentially distributed under the Gaussian),
# d^2G/d(ln s)^2 = G (4x^2 - 12x + 4), whose L1 norm is the integral of |4x^2 - 12x + 4| e^-x.
_L1_D2_LATERAL = 4.0 * math.exp(-0.5) / math.sqrt(2.0 * math.pi)
_L1_D2_LOG_SIGMA = 3.761004


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
class ScatterTable:
    """One beam's beamlet sum of its wide lateral components, tabulated (module docstring).

    ``values[l, j, i] = F(u0 + i du, v0 + j dv, s0 r^l)`` [MU]: the beam's weights convolved with
    the erf-difference profiles of a Gaussian of isocentre-plane sigma ``s0 r^l`` [mm]. Components
    ``n_direct .. K-1`` read it; components ``0 .. n_direct-1`` are summed over the beamlets.
    The lattice nodes sit on whole multiples of the step, like the ray lattice, so mirrored set-ups
    read mirrored values.

    Error bound. Trilinear interpolation errs by at most ``sum_a h_a^2 / 8 max|d^2F/da^2|`` over its
    axes. F is the fluence convolved with a Gaussian, so for any fluence map with largest weight
    ``w`` its second derivatives are at most ``w`` times the L1 norm of the Gaussian's:
    ``0.968 / s^2`` along u and along v, and 3.761 along ``ln s``. Component k (weight ``A_k``)
    therefore errs, relative to the broad-field dose of weight ``w``, by at most::

        E_k = max_d A_k(d) [2 h^2 / 8 * 0.968 / s_k(d)^2] + max_d A_k(d) (ln r)^2 / 8 * 3.761

    with ``s_k`` at the far end of the grid. :func:`scatter_table` picks the largest ``h`` with
    ``E_k <= SCATTER_TABLE_TOLERANCE`` for every tabulated component. Real fluence maps err far less
    than this worst case (measured in tests/kernels/test_scatter_table.py).
    """

    n_direct: int
    u0_mm: float
    du_mm: float
    nu: int
    v0_mm: float
    dv_mm: float
    nv: int
    s0_mm: float
    log_ratio: float
    values: np.ndarray  # (nlev, nv, nu) float64 [MU]

    @property
    def n_levels(self) -> int:
        return int(self.values.shape[0])

    def pack(self) -> list[float]:
        return [self.n_direct, self.u0_mm, self.du_mm, self.nu, self.v0_mm, self.dv_mm, self.nv, self.s0_mm,
                self.log_ratio, self.n_levels]


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
    #: Tabulated beamlet sum of the wide components (None: every component summed directly).
    scatter: ScatterTable | None = None

    @property
    def n_direct(self) -> int:
        """Components summed over the beamlets per voxel; the rest read ``scatter``."""
        return self.component_weight.shape[0] if self.scatter is None else self.scatter.n_direct

    def pack(self) -> np.ndarray:
        """Scalars as the float64 vector read by ``sfrt::unpack_photon_beam`` (csrc/params.h)."""
        nv, nu = self.weights_mu.shape
        k, n = self.component_weight.shape
        table = self.scatter.pack() if self.scatter is not None else [k, 0.0, 0.0, 0, 0.0, 0.0, 0, 0.0, 0.0, 0]
        out = np.array([
            *self.pack_frame(),
            self.edge_u0_mm, self.beamlet_du_mm, nu, self.edge_v0_mm, self.beamlet_dv_mm, nv,
            self.depth_step_mm, n, k, CUTOFF_SIGMA, MIN_SOURCE_DISTANCE_MM, *table,
        ], dtype=np.float64)
        if out.size != BEAM_PACK_SIZE:
            raise AssertionError(f"photon pack has {out.size} values, csrc/params.h expects {BEAM_PACK_SIZE}")
        return out

    def scatter_values(self) -> np.ndarray:
        """The scatter table as the compiled kernels take it: float32 (nlev, nv, nu), or (0, 1, 1) without one."""
        if self.scatter is None:
            return np.zeros((0, 1, 1), dtype=np.float32)
        return np.ascontiguousarray(self.scatter.values, dtype=np.float32)


def _erf_profiles(nodes: np.ndarray, edges: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """P[l, n, i] = [erf((x_n - a_i) / (sqrt2 s_l)) - erf((x_n - a_{i+1}) / (sqrt2 s_l))] / 2."""
    from scipy.special import erf  # on first use, not at import (STYLE 1)
    e = erf((nodes[None, :, None] - edges[None, None, :]) / (np.sqrt(2.0) * sigmas[:, None, None]))
    return 0.5 * (e[:, :, :-1] - e[:, :, 1:])


def _profiles(h: float, i0: int, i1: int, edge0_mm: float, edge_step_mm: float, n_beamlets: int, s0_mm: float,
              log_ratio: float, n_levels: int) -> np.ndarray:
    """Erf profiles of table nodes ``h * (i0 .. i1)`` against beamlet edges ``edge0 + step * (0 .. n_beamlets)``
    and sigmas ``s0 exp(log_ratio * (0 .. n_levels - 1))``: (n_levels, nodes, n_beamlets), from the geometry
    cache (built from the same scalars on a miss, so a hit is bit-identical)."""
    def make():
        nodes = h * np.arange(i0, i1 + 1)
        edges = edge0_mm + edge_step_mm * np.arange(n_beamlets + 1)
        return _erf_profiles(nodes, edges, s0_mm * np.exp(log_ratio * np.arange(n_levels)))

    key = (float(h), int(i0), int(i1), float(edge0_mm), float(edge_step_mm), int(n_beamlets), float(s0_mm),
           float(log_ratio), int(n_levels))
    return geometry_cache.profiles(key, make)


def scatter_table(task: PhotonBeamTask) -> ScatterTable | None:
    """The scatter table of a task (module docstring, :class:`ScatterTable`), or None.

    For each component, the largest lattice step ``h_k`` meeting ``SCATTER_TABLE_TOLERANCE``
    follows from the error bound of :class:`ScatterTable`. Components ``n_direct .. K-1`` are
    tabulated, ``n_direct`` being the smallest index from which every ``h_k`` is at least
    ``SCATTER_TABLE_MIN_STEP_FRACTION`` ray-lattice steps; the table's step is the smallest of
    their ``h_k``. The sigma ladder spans their sigmas from the far to the near end of the grid.
    None when no component qualifies (every component is then summed directly).
    """
    sad = task.sad_mm
    z_near = task.ray_z0_mm
    z_far = task.ray_z0_mm + (task.ray_nz - 1) * task.ray_dz_mm
    log_ratio = float(np.log(SCATTER_TABLE_LEVEL_RATIO))
    a, sigma = task.component_weight, task.component_sigma_mm
    ladder = a.max(axis=1) * log_ratio ** 2 / 8.0 * _L1_D2_LOG_SIGMA
    curvature = (a / (sigma * sad / z_far) ** 2).max(axis=1) * 2.0 / 8.0 * _L1_D2_LATERAL
    room = SCATTER_TABLE_TOLERANCE - ladder
    with np.errstate(divide="ignore", invalid="ignore"):
        h_k = np.where((room > 0) & (curvature > 0), np.sqrt(np.maximum(room, 0.0) / curvature), 0.0)
    h_k = np.where((room > 0) & (curvature == 0), np.inf, h_k)  # a component of zero weight
    wide = h_k >= SCATTER_TABLE_MIN_STEP_FRACTION * min(task.ray_du_mm, task.ray_dv_mm)
    k = wide.size
    n_direct = k
    while n_direct > 0 and wide[n_direct - 1]:
        n_direct -= 1
    if n_direct == k:
        return None
    u_lo, u_hi, v_lo, v_hi = task.footprint_uv_mm
    # a zero-weight component allows any step: one spanning the footprint is then enough
    h = float(min(h_k[n_direct:].min(), max(u_hi - u_lo, v_hi - v_lo, task.ray_du_mm)))
    s0 = float(sigma[n_direct:].min()) * sad / z_far
    s_high = float(sigma[n_direct:].max()) * sad / z_near
    n_levels = max(2, int(np.ceil(np.log(s_high / s0) / log_ratio - 1e-9)) + 1)
    iu0, iu1 = math.floor(u_lo / h), math.ceil(u_hi / h)
    iv0, iv1 = math.floor(v_lo / h), math.ceil(v_hi / h)
    u = h * np.arange(iu0, iu1 + 1)
    v = h * np.arange(iv0, iv1 + 1)
    nv_b, nu_b = task.weights_mu.shape
    pu = _profiles(h, iu0, iu1, task.edge_u0_mm, task.beamlet_du_mm, nu_b, s0, log_ratio, n_levels)  # (L, nu, nbu)
    pv = _profiles(h, iv0, iv1, task.edge_v0_mm, task.beamlet_dv_mm, nv_b, s0, log_ratio, n_levels)  # (L, nv, nbv)
    values = np.matmul(np.matmul(pv, np.asarray(task.weights_mu, dtype=np.float64)), pu.transpose(0, 2, 1))
    values.flags.writeable = False
    return ScatterTable(n_direct=n_direct, u0_mm=float(u[0]), du_mm=h, nu=u.size, v0_mm=float(v[0]), dv_mm=h,
                        nv=v.size, s0_mm=s0, log_ratio=log_ratio, values=values)


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


def prepare_photon_tasks(beams, grid: Grid, *, tabulate_scatter: bool = True) -> list[PhotonBeamTask]:
    """Work orders for ``beams`` on ``grid``; beams that miss the grid are left out.

    With ``tabulate_scatter`` (the default) each task carries its scatter table
    (:func:`scatter_table`); without, every lateral component is summed over the
    beamlets voxel by voxel (the direct form, slower for wide components).

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
        task = PhotonBeamTask(
            **lattice,
            edge_u0_mm=float(ue[cols.min()]), beamlet_du_mm=beam.beamlet_mm[0],
            edge_v0_mm=float(ve[rows.min()]), beamlet_dv_mm=beam.beamlet_mm[1],
            weights_mu=weights,
            depth_step_mm=machine.depth_step_mm,
            depth_dose_gy_per_mu=machine.depth_dose_gy_per_mu,
            component_weight=machine.component_weight,
            component_sigma_mm=machine.component_sigma_mm,
        )
        if tabulate_scatter:
            task = dataclasses.replace(task, scatter=scatter_table(task))
        tasks.append(task)
    return tasks


def compiled_arguments(density, grid: Grid, tasks) -> tuple:
    """Arguments of the compiled ``photon_dose(density, grid, params, weights, tdd, comp_w, comp_s, scatter)``.

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
        [t.scatter_values() for t in tasks],
    )
