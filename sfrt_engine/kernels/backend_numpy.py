"""The NumPy reference backend: the specification every other backend reproduces.

Written for clarity, vectorised, in float64. Independent of ``csrc/``.

Radiological depth (ray table)
------------------------------
For the ray through lattice node ``(u, v)`` the point at axial distance ``z`` from
the source is ``p(z) = S + z * D`` with ``D = -e_s + (u / SAD) e_u + (v / SAD) e_v``;
``dl/dz = |D| = sqrt(1 + (u^2 + v^2) / SAD^2)``. The ray enters the grid's outer
faces at ``z_in`` and leaves at ``z_out`` (slab method). The depth at node
``z_k`` is the trapezoid-rule integral of the density along the path from
``z_in`` to ``clip(z_k, z_in, z_out)``, the nodes being the clipped ``z_j`` in
order, so the entry and exit are integrated exactly. Density at a point is the
trilinear interpolation of the voxel values with indices clamped to the grid.

Dose of a voxel
---------------
With ``q = p - iso``, ``z = SAD - q.e_s``, ``u = (q.e_u) SAD / z``,
``v = (q.e_v) SAD / z``; voxels with ``z <= MIN_SOURCE_DISTANCE_MM`` or
``(u, v)`` outside the footprint get nothing. Otherwise, with ``d`` the
trilinear interpolation of the ray table (indices clamped) and ``T``, ``A_k``,
``sigma_k`` linearly interpolated in depth (clamped to the table)::

    D = T(d) (SAD / z)^2 sum_k A_k(d) sum_j Pv_kj sum_i W_ji Pu_ki
    Pu_ki = 1/2 [erf((u - a_i) / (sqrt2 s_k)) - erf((u - a_{i+1}) / (sqrt2 s_k))]
    s_k = sigma_k(d) SAD / z

``a_i`` being the beamlet edges along u (likewise along v). No lateral cut-off:
every beamlet contributes.

Components ``k >= n_direct`` of a task with a scatter table (``_task.ScatterTable``)
replace the beamlet sum by the table's value, trilinear (indices clamped) in the
fractional indices ``(ln(s_k / s0) / ln r, (v - v0) / dv, (u - u0) / du)``. The
table holds that very sum at its nodes, so this is the same formula sampled and
interpolated; every compiled backend reads the same table.

Proton dose of a voxel
----------------------
Same frame, footprint and ray table (on relative stopping power). For each energy
layer E with spots at ``(u_i, v_j)`` and weights ``W_ji`` [Gp]::

    D = sum_E IDD_E(d) / (2 pi s^2) sum_j exp(-(v - v_j)^2 / (2 s_iso^2)) sum_i W_ji exp(-(u - u_i)^2 / (2 s_iso^2))
    s = sigma_E(d) [mm], s_iso = s SAD / z

with ``IDD_E`` and ``sigma_E`` linearly interpolated (clamped) at the depth plus the
layer's range-shifter thickness (water-equivalent mm). No cut-off.
"""

from __future__ import annotations

import numpy as np

from ..grid import Grid
from ._task import MIN_SOURCE_DISTANCE_MM, PhotonBeamTask

NAME = "numpy"
_CHUNK = 1 << 15  # voxels per vectorised block


def probe() -> str | None:
    """The reference runs wherever NumPy and SciPy import."""
    return None


def _trilinear(volume: np.ndarray, f0: np.ndarray, f1: np.ndarray, f2: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of ``volume[i0, i1, i2]`` at fractional indices, clamped to the array."""
    out_shape = f0.shape
    parts = []
    for f, n in zip((f0, f1, f2), volume.shape):
        f = np.clip(f, 0.0, n - 1.0)
        i = np.minimum(np.floor(f).astype(np.intp), max(n - 2, 0))
        parts.append((i, f - i, min(1, n - 1)))
    (i0, t0, s0), (i1, t1, s1), (i2, t2, s2) = parts
    result = np.zeros(out_shape)
    for a, wa in ((0, 1.0 - t0), (s0, t0)):
        for b, wb in ((0, 1.0 - t1), (s1, t1)):
            for c, wc in ((0, 1.0 - t2), (s2, t2)):
                result += wa * wb * wc * volume[i0 + a, i1 + b, i2 + c]
    return result


def density_at(density: np.ndarray, grid: Grid, points_xyz_mm: np.ndarray) -> np.ndarray:
    """Trilinearly interpolated density at points (..., 3) [mm], indices clamped to the grid."""
    f = (points_xyz_mm - np.array(grid.origin_xyz_mm)) / np.array(grid.spacing_xyz_mm)
    return _trilinear(density, f[..., 2], f[..., 1], f[..., 0])


def _ray_entry_exit(grid: Grid, source: np.ndarray, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slab-method entry and exit parameters z of rays ``source + z * direction`` (direction shape (..., 3))."""
    lo, hi = grid.bounds_xyz_mm[:, 0], grid.bounds_xyz_mm[:, 1]
    z_in = np.zeros(direction.shape[:-1])
    z_out = np.full(direction.shape[:-1], np.inf)
    for a in range(3):
        da = direction[..., a]
        parallel = da == 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (lo[a] - source[a]) / da
            t2 = (hi[a] - source[a]) / da
        t_near = np.where(parallel, -np.inf, np.minimum(t1, t2))
        t_far = np.where(parallel, np.inf, np.maximum(t1, t2))
        outside = parallel & ((source[a] < lo[a]) | (source[a] > hi[a]))
        t_far = np.where(outside, -np.inf, t_far)
        z_in = np.maximum(z_in, t_near)
        z_out = np.minimum(z_out, t_far)
    z_out = np.maximum(z_out, z_in)  # a ray that misses has an empty path
    return z_in, z_out


def radiological_depth(density: np.ndarray, grid: Grid, task: PhotonBeamTask) -> np.ndarray:
    """Ray table of water-equivalent depth [mm], shape ``task.ray_shape`` = (nv, nu, nz)."""
    density = np.asarray(density, dtype=np.float64)
    u = task.ray_u0_mm + task.ray_du_mm * np.arange(task.ray_nu)
    v = task.ray_v0_mm + task.ray_dv_mm * np.arange(task.ray_nv)
    vv, uu = np.meshgrid(v, u, indexing="ij")
    sad = task.sad_mm
    direction = (-task.axis_source + (uu[..., None] / sad) * task.axis_u + (vv[..., None] / sad) * task.axis_v)
    path_per_z = np.sqrt(1.0 + (uu * uu + vv * vv) / (sad * sad))
    source = task.source_xyz_mm
    z_in, z_out = _ray_entry_exit(grid, source, direction)

    table = np.empty(task.ray_shape)
    prev_z = z_in
    prev_rho = density_at(density, grid, source + prev_z[..., None] * direction)
    acc = np.zeros(z_in.shape)
    for k in range(task.ray_nz):
        zk = task.ray_z0_mm + task.ray_dz_mm * k
        zc = np.clip(zk, z_in, z_out)
        rho = density_at(density, grid, source + zc[..., None] * direction)
        acc = acc + 0.5 * (prev_rho + rho) * (zc - prev_z) * path_per_z
        prev_z, prev_rho = zc, rho
        table[..., k] = acc
    return table


def _bev_depth(task, table: np.ndarray, points: np.ndarray):
    """BEV coordinates and radiological depth of points inside the footprint.

    Returns ``hit`` (bool, per point) and, for the hit points, ``u, v`` [mm, isocentre
    plane], ``z`` [mm from the source] and the depth ``d`` [mm] from the ray table.
    """
    sad = task.sad_mm
    q = points - task.isocenter_xyz_mm
    z = sad - q @ task.axis_source
    u_lo, u_hi, v_lo, v_hi = task.footprint_uv_mm
    with np.errstate(divide="ignore", invalid="ignore"):
        u = (q @ task.axis_u) * sad / z
        v = (q @ task.axis_v) * sad / z
    hit = (z > MIN_SOURCE_DISTANCE_MM) & (u >= u_lo) & (u <= u_hi) & (v >= v_lo) & (v <= v_hi)
    u, v, z = u[hit], v[hit], z[hit]
    d = _trilinear(table, (v - task.ray_v0_mm) / task.ray_dv_mm, (u - task.ray_u0_mm) / task.ray_du_mm,
                   (z - task.ray_z0_mm) / task.ray_dz_mm)
    return hit, u, v, z, d


def _beam_dose_chunk(task: PhotonBeamTask, table: np.ndarray, points: np.ndarray) -> np.ndarray:
    from scipy.special import erf  # on first use, not at import (STYLE 1)

    sad = task.sad_mm
    dose = np.zeros(points.shape[0])
    hit, u, v, z, d = _bev_depth(task, table, points)
    if not hit.any():
        return dose
    nodes = task.depth_step_mm * np.arange(task.depth_dose_gy_per_mu.size)
    t = np.interp(d, nodes, task.depth_dose_gy_per_mu)
    nv, nu = task.weights_mu.shape
    edges_u = task.edge_u0_mm + task.beamlet_du_mm * np.arange(nu + 1)
    edges_v = task.edge_v0_mm + task.beamlet_dv_mm * np.arange(nv + 1)
    lateral = np.zeros(u.shape)
    scatter = task.scatter
    for k, (a_k, s_k) in enumerate(zip(task.component_weight, task.component_sigma_mm)):
        a = np.interp(d, nodes, a_k)
        s_iso = np.interp(d, nodes, s_k) * sad / z
        if k >= task.n_direct:
            level = np.log(s_iso / scatter.s0_mm) / scatter.log_ratio
            lateral += a * _trilinear(scatter.values, level, (v - scatter.v0_mm) / scatter.dv_mm,
                                      (u - scatter.u0_mm) / scatter.du_mm)
            continue
        inv = 1.0 / (np.sqrt(2.0) * s_iso)
        eu = erf((u[:, None] - edges_u[None, :]) * inv[:, None])
        ev = erf((v[:, None] - edges_v[None, :]) * inv[:, None])
        pu = 0.5 * (eu[:, :-1] - eu[:, 1:])
        pv = 0.5 * (ev[:, :-1] - ev[:, 1:])
        lateral += a * np.einsum("nj,ji,ni->n", pv, task.weights_mu, pu, optimize=True)
    dose[hit] = t * (sad / z) ** 2 * lateral
    return dose


def _proton_dose_chunk(task, table: np.ndarray, points: np.ndarray) -> np.ndarray:
    sad = task.sad_mm
    dose = np.zeros(points.shape[0])
    hit, u, v, z, d = _bev_depth(task, table, points)
    if not hit.any():
        return dose
    nodes = task.depth_step_mm * np.arange(task.idd_gy_mm2_per_gp.shape[1])
    total = np.zeros(u.shape)
    for layer in task.layers:
        d_layer = d + layer.range_shifter_mm
        idd = np.interp(d_layer, nodes, task.idd_gy_mm2_per_gp[layer.energy_index])
        s = np.interp(d_layer, nodes, task.sigma_mm[layer.energy_index])
        s_iso = s * sad / z
        nv, nu = layer.weights_gp.shape
        pu = layer.u0_mm + layer.du_mm * np.arange(nu)
        pv = layer.v0_mm + layer.dv_mm * np.arange(nv)
        gu = np.exp(-0.5 * ((u[:, None] - pu[None, :]) / s_iso[:, None]) ** 2)
        gv = np.exp(-0.5 * ((v[:, None] - pv[None, :]) / s_iso[:, None]) ** 2)
        lateral = np.einsum("nj,ji,ni->n", gv, layer.weights_gp, gu, optimize=True)
        total += idd / (2.0 * np.pi * s * s) * lateral
    dose[hit] = total
    return dose


def _over_grid(grid: Grid, chunk_fn) -> np.ndarray:
    """Evaluate ``chunk_fn(points (n, 3))`` over every voxel centre in blocks; float64 [z, y, x]."""
    z, y, x = grid.coordinates_mm()
    dose = np.empty(grid.size)
    zz = np.broadcast_to(z, grid.shape_zyx).ravel()
    yy = np.broadcast_to(y, grid.shape_zyx).ravel()
    xx = np.broadcast_to(x, grid.shape_zyx).ravel()
    for start in range(0, grid.size, _CHUNK):
        stop = min(start + _CHUNK, grid.size)
        dose[start:stop] = chunk_fn(np.stack([xx[start:stop], yy[start:stop], zz[start:stop]], axis=1))
    return dose.reshape(grid.shape_zyx)


def proton_beam_dose(density: np.ndarray, grid: Grid, task, table: np.ndarray | None = None) -> np.ndarray:
    """Dose [Gy] of one proton beam on the grid (density = relative stopping power), float64 [z, y, x]."""
    if table is None:
        table = radiological_depth(density, grid, task)
    return _over_grid(grid, lambda pts: _proton_dose_chunk(task, table, pts))


def beam_dose(density: np.ndarray, grid: Grid, task: PhotonBeamTask, table: np.ndarray | None = None) -> np.ndarray:
    """Dose [Gy] of one beam on the grid, float64 [z, y, x]."""
    if table is None:
        table = radiological_depth(density, grid, task)
    return _over_grid(grid, lambda pts: _beam_dose_chunk(task, table, pts))


def _sum_of_beams(one_beam, density, grid: Grid, tasks) -> np.ndarray:
    """``one_beam(density, grid, task)`` summed over the tasks in order, float64 [z, y, x]."""
    density = np.asarray(density, dtype=np.float64)
    total = np.zeros(grid.shape_zyx)
    for task in tasks:
        total += one_beam(density, grid, task)
    return total


class NumpyBackend:
    """Float64 NumPy implementation of the dose physics (the reference)."""

    name = NAME
    dtype = np.float64

    def radiological_depth(self, density, grid: Grid, task: PhotonBeamTask) -> np.ndarray:
        return radiological_depth(density, grid, task)

    def photon_dose(self, density, grid: Grid, tasks) -> np.ndarray:
        """Sum of the beams' doses [Gy], float64 [z, y, x], beams added in order."""
        return _sum_of_beams(beam_dose, density, grid, tasks)

    def proton_dose(self, density, grid: Grid, tasks) -> np.ndarray:
        """Sum of the proton beams' doses [Gy], float64 [z, y, x]; density is relative stopping power."""
        return _sum_of_beams(proton_beam_dose, density, grid, tasks)

    def describe(self) -> dict:
        return {"name": NAME, "precision": "float64", "threads": 1}


def get() -> NumpyBackend:
    return NumpyBackend()
