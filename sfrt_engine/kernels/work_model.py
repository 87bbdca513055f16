"""Counted work of the compiled dose kernels (csrc/physics): pairs, erf and exp calls, flops, bytes.

A model, computed from a case's own geometry, of what ``compute_dose`` makes the compiled kernels
do: per beam the ray trace (``raytrace.h`` ``trace_ray``), then for every voxel-beam pair
``bev_depth`` and ``photon_bev_dose`` (``photon.h``) or ``proton_bev_dose`` (``proton.h``). It
mirrors their control flow pair by pair (vectorised over the voxels, float64 geometry, the float32
machine tables the kernels read) and adds fixed per-operation weights. No timing, no kernel counters;
the pair, erf and exp counts equal those of csrc/physics run with counting wrappers
(tests/kernels/work_counts.cpp).

Counts (:class:`KernelWork`)
----------------------------
* ``voxel_beam_pairs`` = voxels x beams: every pair the drivers visit. ``pairs_outside``: ``bev_depth``
  returns false (nearer the source than ``min_z``, or ``(u, v)`` outside the ray lattice);
  ``pairs_in_reach`` = the rest. ``pairs_zero_depth_dose``: in reach but given no lateral sum
  (photons: ``T(d) == 0``, the kernel returns; protons: every layer's ``IDD(d) == 0``).
* Photon component ``k`` of an in-reach pair with ``A_k(d) != 0``: ``k >= n_direct`` reads the
  scatter table (``scatter_reads``); otherwise its window is ``i0 = floor((u - r - a_0) / du)``,
  ``i1 = floor((u + r - a_0) / du)`` clamped to ``[0, nbu - 1]`` (likewise ``j`` along v) with
  ``r = CUTOFF_SIGMA * sigma_k(d) SAD / z``, so ``ni = i1 - i0 + 1``, ``nj = j1 - j0 + 1`` beamlets.
  A non-empty window is one ``lateral_sums``; it costs ``beamlet_terms`` += ``ni nj`` multiply-adds
  ``col_i += Pv_j W_ji`` and, in tiles of ``T`` beamlets per axis (``SFRT_LATERAL_TILE``: 512 on the
  CPU, i.e. one tile; 64 on the GPU), ``erf_evaluations`` += ``ni + n_i + n_i (nj + n_j)`` with
  ``n_i = ceil(ni / T)``, ``n_j = ceil(nj / T)`` (edges along u once per u-tile, along v per
  (u-tile, v-tile)).
* Proton layer of an in-reach pair with ``IDD(d + shifter) != 0``: window ``i0 = ceil((u - r - u_0) / du)``,
  ``i1 = floor((u + r - u_0) / du)`` (spot centres), ``exp_evaluations`` += ``ni + n_i nj``.
* ``rays`` = ray-lattice nodes (nv nu) per beam, ``ray_samples`` = rays x nz density samples; both 0
  (and the trace's flops and bytes left out) for a call that reads its ray tables from the geometry
  cache (``ray_trace=False``: a repeated cpp call on the same geometry).

Flop weights (:data:`FLOP_WEIGHTS`)
-----------------------------------
Counted by hand from the source: one flop per ``+ - * /`` and ``sqrt``, two per fused multiply-add
(``erf_fast``'s Horner steps are written as ``p * ax + c``), none for comparisons, ``floor``/``ceil``,
``fabs``, ``copysign``, clamps, integer index arithmetic and int<->float conversions. Every operator
written in the source counts once, repeated subexpressions such as ``(1 - t)`` included (no credit
for common-subexpression elimination), so the count is reproducible by reading the code. Library
calls count their main path: ``log`` (double) 22 flops and ``expf`` 12, counted from glibc's
implementations (``sysdeps/ieee754/dbl-64/e_log.c`` and ``flt-32/e_expf.c``, from Arm's
optimized-routines; ``expf`` evaluates in double but is booked with the float flops, its type).
Float (SP) and double (DP) flops are kept apart because their peaks differ:
``erf_fast`` = 18 SP (6 FMA = 12, p^2, p^4, p^8, p^16 = 4, 1 / p16, 1 - q) plus 3 for its argument
``(u_rel - i du) * inv``; trilinear interpolation = 37 DP (3 indices x 3, 4 edge lerps x 4, the last
12); ``bev_depth`` = 9 DP to ``z``, 26 to the footprint test, 63 with the depth lookup.

Bytes
-----
``bytes_operand``: every load and store of a kernel argument array as the source issues it (8 floats
per trilinear read, 2 per table lookup, the 72-byte record of each proton layer per pair, ``ni nj``
weights per window, the dose ``+=`` read and write per pair; scratch arrays, registers and the packed
grid and beam vectors are left out): the traffic to the first cache level. ``bytes_streamed``: each
array read or written once per beam pass (density and ray-table writes when traced, the ray table
read, the dose grid read and written, weights and machine and scatter tables), plus the zero fill of
the dose: the memory traffic with perfect cache reuse within a pass.
The two arithmetic intensities bracket where a case sits on a roofline.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..grid import Grid
from ._proton_task import prepare_proton_tasks
from ._registry import available_backends, get_backend
from ._task import CUTOFF_SIGMA, MIN_SOURCE_DISTANCE_MM, prepare_photon_tasks
from .backend_numpy import _trilinear

__all__ = ["FLOP_WEIGHTS", "LATERAL_TILE", "KernelWork", "dose_work", "photon_work", "proton_work"]

#: Beamlets (spots) per axis of one lateral tile (csrc/params.h SFRT_LATERAL_TILE).
LATERAL_TILE = {"cpu": 512, "gpu": 64}

_TRILINEAR_DP = 37  # three fractional indices 3 x 3, four edge lerps 4 x 4, the last 12
_LOG_DP = 22  # glibc log main path

#: Flops per operation, counted from the source (module docstring). Keys: what is counted.
FLOP_WEIGHTS = {
    "erf_fast_sp": 18,           # common.h erf_fast
    "erf_argument_sp": 3,        # (u_rel - (float)i * du) * inv
    "profile_difference_sp": 2,  # p[i] = 0.5f * (p[i] - p[i + 1])
    "multiply_add_sp": 2,        # col[i] += pv_j * w[i]; sum += col[i] * pu[i]; lateral += a_k * sum
    "expf": 12,                  # glibc expf main path
    "gauss_argument_sp": 4,      # t = u_rel - i du; t * t * inv2
    "log_dp": _LOG_DP,
    "table_lerp_dp": 4,          # table_at: (1 - t) * T[i] + t * T[i + 1]
    "trilinear_dp": _TRILINEAR_DP,  # sample_trilinear, bev_depth's depth and scatter_table_at's lookup
    # trace_ray: node 4, direction 18, path_per_z 7, ray_box 27, first sample (point 6, trilinear)
    "ray_setup_dp": 4 + 18 + 7 + 27 + 6 + _TRILINEAR_DP,
    "ray_sample_dp": 2 + 6 + _TRILINEAR_DP + 6,  # node, point, trilinear, trapezoid
    "bev_near_dp": 9,            # bev_depth to the min_z test: q 3, zs 6
    "bev_footprint_dp": 26,      # ... + scale 1, u 6, v 6, lattice ends 4
    "bev_depth_dp": 26 + _TRILINEAR_DP,  # ... + the ray-table lookup
    "photon_depth_dp": 7,        # scale 1, depth index 2, T(d) 4
    "photon_tail_dp": 4,         # u_rel, v_rel 2; t_depth * scale * scale 2
    "photon_sigma_dp": 5,        # sigma_k(d) 4, * scale 1
    "photon_window_dp": 13,      # reach 1, four window ends 3 each
    "scatter_read_dp": _TRILINEAR_DP + _LOG_DP,  # trilinear in (ln(s / s0) / ln r, v, u): a log more
    "proton_layer_depth_dp": 7,  # depth + shifter, / step, t; IDD 4
    "proton_window_dp": 18,      # sigma 4, s_iso 1, reach 1, window ends 12
    "proton_layer_setup_dp": 6,  # inv2 2, u_rel v_rel 2, 1 / (2 pi s^2) 2
    "proton_layer_tail_sp": 3,   # dd * c * sum, total +=
}
_W = FLOP_WEIGHTS
_VOXEL_DP = {"cpu": 2, "gpu": 6}  # voxel coordinates: x per voxel on the CPU (y, z per row), x, y, z on the GPU
_F32 = 4


@dataclass(frozen=True)
class KernelWork:
    """Counted work of a set of kernel calls (module docstring); add two with ``+``."""

    voxel_beam_pairs: int = 0
    pairs_in_reach: int = 0
    pairs_zero_depth_dose: int = 0
    lateral_sums: int = 0
    beamlet_terms: int = 0
    erf_evaluations: int = 0
    exp_evaluations: int = 0
    scatter_reads: int = 0
    rays: int = 0
    ray_samples: int = 0
    flops_sp: int = 0
    flops_dp: int = 0
    bytes_operand: int = 0
    bytes_streamed: int = 0

    def __add__(self, other: KernelWork) -> KernelWork:
        return KernelWork(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                             for f in dataclasses.fields(self)})

    @property
    def pairs_outside(self) -> int:
        """Pairs ``bev_depth`` rejects: nearer the source than ``min_z`` or outside the ray lattice."""
        return self.voxel_beam_pairs - self.pairs_in_reach

    @property
    def flops(self) -> int:
        return self.flops_sp + self.flops_dp

    @property
    def intensity_operand(self) -> float:
        """flops / ``bytes_operand`` [flop/B] (first-cache-level roofline)."""
        return self.flops / self.bytes_operand if self.bytes_operand else float("nan")

    @property
    def intensity_streamed(self) -> float:
        """flops / ``bytes_streamed`` [flop/B] (memory roofline with perfect reuse within a beam pass)."""
        return self.flops / self.bytes_streamed if self.bytes_streamed else float("nan")

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(pairs_outside=self.pairs_outside, flops=self.flops, intensity_operand=self.intensity_operand,
                 intensity_streamed=self.intensity_streamed)
        return d


def _voxel_blocks(grid: Grid, max_voxels: int = 1 << 20):
    """(points (n, 3) [mm, x y z], row count) over blocks of whole z-planes of the grid."""
    nz, ny, nx = grid.shape_zyx
    z, y, x = grid.coordinates_mm()
    planes = max(1, max_voxels // (ny * nx))
    for start in range(0, nz, planes):
        zz = z[start:start + planes]
        shape = (zz.shape[0], ny, nx)
        pts = np.stack([np.broadcast_to(x, shape).ravel(), np.broadcast_to(y, shape).ravel(),
                        np.broadcast_to(zz, shape).ravel()], axis=1)
        yield pts, shape[0] * ny


def _bev(task, table: np.ndarray, pts: np.ndarray):
    """bev_depth over points (``table`` float64).

    Returns (pairs rejected at min_z, pairs rejected by the footprint, then u, v [mm], SAD / z and
    depth [mm] of the pairs in reach).
    """
    q = pts - task.isocenter_xyz_mm
    zs = task.sad_mm - q @ task.axis_source
    near = zs > MIN_SOURCE_DISTANCE_MM
    scale = task.sad_mm / zs[near]
    u, v, zs = (q[near] @ task.axis_u) * scale, (q[near] @ task.axis_v) * scale, zs[near]
    u_lo, u_hi, v_lo, v_hi = task.footprint_uv_mm
    hit = (u >= u_lo) & (u <= u_hi) & (v >= v_lo) & (v <= v_hi)
    u, v, zs, scale = u[hit], v[hit], zs[hit], scale[hit]
    depth = _trilinear(table, (v - task.ray_v0_mm) / task.ray_dv_mm,
                       (u - task.ray_u0_mm) / task.ray_du_mm, (zs - task.ray_z0_mm) / task.ray_dz_mm)
    return int((~near).sum()), int(hit.size - hit.sum()), u, v, scale, depth


def _lerp32(table_f32: np.ndarray, depth: np.ndarray, step_mm: float) -> np.ndarray:
    """table_at: linear in depth, clamped, evaluated in double from the float32 table, returned as float32."""
    nodes = step_mm * np.arange(table_f32.size)
    return np.interp(depth, nodes, table_f32.astype(np.float64)).astype(np.float32)


def _window(lo_index: np.ndarray, hi_index: np.ndarray, n: int) -> np.ndarray:
    """Entries per window after clamping to [0, n - 1]; 0 for an empty window."""
    lo, hi = np.maximum(lo_index, 0), np.minimum(hi_index, n - 1)
    return np.where(lo <= hi, hi - lo + 1, 0).astype(np.int64)


def _lateral(ni: np.ndarray, nj: np.ndarray, tile: int) -> dict:
    """Sums over the non-empty windows (ni, nj > 0) of one component or layer: tiles, terms, profile entries."""
    live = (ni > 0) & (nj > 0)
    ni, nj = ni[live], nj[live]
    n_i, n_j = -(-ni // tile), -(-nj // tile)
    return {"sums": int(live.sum()), "terms": int((ni * nj).sum()), "cols": int(ni.sum()),
            "u_edges": int((ni + n_i).sum()), "v_edges": int((n_i * (nj + n_j)).sum()),
            "v_rows": int((n_i * nj).sum())}


def _trace_and_grid(task, grid: Grid, rows: int, target: str, ray_trace: bool) -> tuple[int, int, int, int, int]:
    """(flops_dp, bytes_operand, bytes_streamed, rays, samples) of one beam's ray trace (if traced) and grid
    sweep; without the trace the ray table is still read once per pass."""
    rays = task.ray_nv * task.ray_nu if ray_trace else 0
    samples = rays * task.ray_nz
    table_bytes = _F32 * task.ray_nv * task.ray_nu * task.ray_nz
    flops = rays * _W["ray_setup_dp"] + samples * _W["ray_sample_dp"] + grid.size * _VOXEL_DP[target]
    flops += 4 * rows if target == "cpu" else 0
    operand = rays * 8 * _F32 + samples * (8 * _F32 + _F32) + grid.size * 2 * _F32
    streamed = (grid.size * _F32 + table_bytes if ray_trace else 0) + table_bytes + grid.size * 2 * _F32
    return flops, operand, streamed, rays, samples


def photon_work(tasks, tables, grid: Grid, target: str = "cpu", lateral_tile: int | None = None,
                ray_trace: bool = True) -> KernelWork:
    """Counted work of ``photon_dose(density, grid, tasks)`` on a compiled backend.

    Parameters
    ----------
    tasks : list of PhotonBeamTask
    tables : list of ndarray, shape ``task.ray_shape`` (nv, nu, nz)
        Each task's ray table of water-equivalent depth [mm] (any backend's ``radiological_depth``).
    grid : Grid
    target : {"cpu", "gpu"}
        The driver (tile size and per-voxel coordinate flops).
    lateral_tile : int, optional
        Beamlets per lateral tile when the kernels were built with another SFRT_LATERAL_TILE.
    ray_trace : bool
        Whether the call traces the ray tables (False: it reads them from the geometry cache, as a
        repeated cpp call does; the trace's flops and bytes are then left out).

    Returns
    -------
    KernelWork
    """
    tile = lateral_tile or LATERAL_TILE[target]
    total = KernelWork()
    for task, table in zip(tasks, tables):
        table = np.asarray(table, dtype=np.float64)
        tdd = np.asarray(task.depth_dose_gy_per_mu, dtype=np.float32)
        comp_w = np.asarray(task.component_weight, dtype=np.float32)
        comp_s = np.asarray(task.component_sigma_mm, dtype=np.float32)
        nbv, nbu = task.weights_mu.shape
        c = dict.fromkeys(("near", "foot", "reach", "zero", "sums", "terms", "erf", "scatter", "sp", "dp", "op"), 0)
        rows_total = 0
        for pts, rows in _voxel_blocks(grid):
            rows_total += rows
            near, foot, u, v, scale, depth = _bev(task, table, pts)
            c["near"] += near
            c["foot"] += foot
            c["reach"] += u.size
            c["dp"] += near * _W["bev_near_dp"] + foot * _W["bev_footprint_dp"] + u.size * _W["bev_depth_dp"]
            c["dp"] += u.size * _W["photon_depth_dp"]
            c["op"] += u.size * (8 + 2) * _F32  # ray-table corners, T(d)
            t_depth = _lerp32(tdd, depth, task.depth_step_mm)
            live = t_depth != 0
            c["zero"] += int((~live).sum())
            u, v, scale, depth = u[live], v[live], scale[live], depth[live]
            c["dp"] += u.size * _W["photon_tail_dp"]
            c["sp"] += u.size  # (t_depth scale^2) * lateral
            for k in range(comp_w.shape[0]):
                a_k = _lerp32(comp_w[k], depth, task.depth_step_mm)
                on = a_k != 0
                n_on = int(on.sum())
                c["dp"] += u.size * _W["table_lerp_dp"] + n_on * _W["photon_sigma_dp"]
                c["op"] += (u.size + n_on) * 2 * _F32  # A_k, sigma_k
                if k >= task.n_direct:
                    c["scatter"] += n_on
                    c["dp"] += n_on * _W["scatter_read_dp"]
                    c["sp"] += n_on * _W["multiply_add_sp"]
                    c["op"] += n_on * 8 * _F32
                    continue
                s_iso = _lerp32(comp_s[k], depth[on], task.depth_step_mm).astype(np.float64) * scale[on]
                reach = CUTOFF_SIGMA * s_iso
                uu, vv = u[on], v[on]
                ni = _window(np.floor((uu - reach - task.edge_u0_mm) / task.beamlet_du_mm),
                             np.floor((uu + reach - task.edge_u0_mm) / task.beamlet_du_mm), nbu)
                nj = _window(np.floor((vv - reach - task.edge_v0_mm) / task.beamlet_dv_mm),
                             np.floor((vv + reach - task.edge_v0_mm) / task.beamlet_dv_mm), nbv)
                lat = _lateral(ni, nj, tile)
                erf = lat["u_edges"] + lat["v_edges"]
                c["sums"] += lat["sums"]
                c["terms"] += lat["terms"]
                c["erf"] += erf
                c["dp"] += n_on * _W["photon_window_dp"] + lat["sums"]  # inv = 1 / s_iso per non-empty window
                c["sp"] += (erf * (_W["erf_fast_sp"] + _W["erf_argument_sp"])
                            + (lat["cols"] + lat["v_rows"]) * _W["profile_difference_sp"]
                            + (lat["terms"] + lat["cols"] + lat["sums"]) * _W["multiply_add_sp"])
                c["op"] += lat["terms"] * _F32  # weights
        flops, operand, streamed, rays, samples = _trace_and_grid(task, grid, rows_total, target, ray_trace)
        tables_bytes = (tdd.size + comp_w.size + comp_s.size + task.weights_mu.size
                        + task.scatter_values().size) * _F32
        total += KernelWork(
            voxel_beam_pairs=grid.size, pairs_in_reach=c["reach"], pairs_zero_depth_dose=c["zero"],
            lateral_sums=c["sums"], beamlet_terms=c["terms"], erf_evaluations=c["erf"], scatter_reads=c["scatter"],
            rays=rays, ray_samples=samples, flops_sp=c["sp"] + grid.size,
            flops_dp=c["dp"] + flops, bytes_operand=c["op"] + operand, bytes_streamed=streamed + tables_bytes)
    if tasks:
        total += KernelWork(bytes_operand=grid.size * _F32, bytes_streamed=grid.size * _F32)  # zero fill
    return total


def proton_work(tasks, tables, grid: Grid, target: str = "cpu", lateral_tile: int | None = None,
                ray_trace: bool = True) -> KernelWork:
    """Counted work of ``proton_dose(stopping_power, grid, tasks)`` on a compiled backend.

    Parameters as :func:`photon_work`, with ProtonBeamTask work orders and ray tables on the
    relative stopping power.
    """
    tile = lateral_tile or LATERAL_TILE[target]
    total = KernelWork()
    for task, table in zip(tasks, tables):
        table = np.asarray(table, dtype=np.float64)
        idd = np.asarray(task.idd_gy_mm2_per_gp, dtype=np.float32)
        sigma = np.asarray(task.sigma_mm, dtype=np.float32)
        c = dict.fromkeys(("reach", "zero", "sums", "terms", "exp", "sp", "dp", "op"), 0)
        rows_total = 0
        for pts, rows in _voxel_blocks(grid):
            rows_total += rows
            near, foot, u, v, scale, depth = _bev(task, table, pts)
            c["reach"] += u.size
            c["dp"] += near * _W["bev_near_dp"] + foot * _W["bev_footprint_dp"] + u.size * (_W["bev_depth_dp"] + 1)
            c["op"] += u.size * 8 * _F32
            any_dose = np.zeros(u.size, dtype=bool)
            for layer in task.layers:
                d_layer = depth + layer.range_shifter_mm
                dd = _lerp32(idd[layer.energy_index], d_layer, task.depth_step_mm)
                on = dd != 0
                any_dose |= on
                n_on = int(on.sum())
                c["dp"] += u.size * _W["proton_layer_depth_dp"] + n_on * _W["proton_window_dp"]
                c["op"] += u.size * (9 * 8 + 2 * _F32) + n_on * 2 * _F32  # layer record, IDD, sigma
                sig = _lerp32(sigma[layer.energy_index], d_layer[on], task.depth_step_mm).astype(np.float64)
                reach = CUTOFF_SIGMA * sig * scale[on]
                nv, nu = layer.weights_gp.shape
                uu, vv = u[on], v[on]
                ni = _window(np.ceil((uu - reach - layer.u0_mm) / layer.du_mm),
                             np.floor((uu + reach - layer.u0_mm) / layer.du_mm), nu)
                nj = _window(np.ceil((vv - reach - layer.v0_mm) / layer.dv_mm),
                             np.floor((vv + reach - layer.v0_mm) / layer.dv_mm), nv)
                lat = _lateral(ni, nj, tile)
                n_exp = lat["cols"] + lat["v_rows"]
                c["sums"] += lat["sums"]
                c["terms"] += lat["terms"]
                c["exp"] += n_exp
                c["dp"] += lat["sums"] * _W["proton_layer_setup_dp"]
                c["sp"] += (n_exp * (_W["expf"] + _W["gauss_argument_sp"])
                            + (lat["terms"] + lat["cols"]) * _W["multiply_add_sp"]
                            + lat["sums"] * _W["proton_layer_tail_sp"])
                c["op"] += lat["terms"] * _F32
            c["zero"] += int((~any_dose).sum())
        flops, operand, streamed, rays, samples = _trace_and_grid(task, grid, rows_total, target, ray_trace)
        energies = {layer.energy_index for layer in task.layers}
        tables_bytes = (2 * len(energies) * idd.shape[1] + sum(ly.weights_gp.size for ly in task.layers)) * _F32
        tables_bytes += len(task.layers) * 9 * 8
        total += KernelWork(
            voxel_beam_pairs=grid.size, pairs_in_reach=c["reach"], pairs_zero_depth_dose=c["zero"],
            lateral_sums=c["sums"], beamlet_terms=c["terms"], exp_evaluations=c["exp"],
            rays=rays, ray_samples=samples, flops_sp=c["sp"] + grid.size,
            flops_dp=c["dp"] + flops, bytes_operand=c["op"] + operand, bytes_streamed=streamed + tables_bytes)
    if tasks:
        total += KernelWork(bytes_operand=grid.size * _F32, bytes_streamed=grid.size * _F32)
    return total


def dose_work(beams, patient, target: str = "cpu", depth_backend: str | None = None,
              ray_trace: bool = True) -> KernelWork:
    """Counted work of ``compute_dose(beams, patient)`` on a compiled backend (module docstring).

    Parameters
    ----------
    beams : list of Beam or ProtonBeam
    patient : Patient
    target : {"cpu", "gpu"}
        "cpu" for the cpp backend, "gpu" for cuda and cupy.
    depth_backend : str, optional
        Backend that computes the ray tables the model reads (they agree to float32 round-off);
        default cpp where it runs, else numpy.
    ray_trace : bool
        Whether the counted call traces the ray tables (see :func:`photon_work`).

    Returns
    -------
    KernelWork
    """
    from ..plan.beam import Beam
    from ..plan.protons import ProtonBeam

    if target not in LATERAL_TILE:
        raise ValueError(f"target = {target!r}; expected one of {', '.join(LATERAL_TILE)}")
    name = depth_backend or ("cpp" if available_backends()["cpp"][0] else "numpy")
    engine = get_backend(name)

    def host(a):
        return np.asarray(a.get() if hasattr(a, "get") else a)

    grid = patient.grid
    work = KernelWork()
    photons = prepare_photon_tasks([b for b in beams if isinstance(b, Beam)], grid)
    if photons:
        density = patient.density()
        work += photon_work(photons, [host(engine.radiological_depth(density, grid, t)) for t in photons], grid,
                            target, ray_trace=ray_trace)
    protons = prepare_proton_tasks([b for b in beams if isinstance(b, ProtonBeam)], grid)
    if protons:
        rsp = patient.stopping_power()
        work += proton_work(protons, [host(engine.radiological_depth(rsp, grid, t)) for t in protons], grid, target,
                            ray_trace=ray_trace)
    return work
