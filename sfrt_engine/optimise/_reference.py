"""The NumPy reference of the forward and adjoint dose operators (float64; the specification).

Built on the reference backend's own geometry (``kernels/backend_numpy.py``: ray table, BEV
coordinates, radiological depth), evaluated once per beam on the voxel subset and kept.

Photon beam, forward (dose on the voxels ``n`` the beam reaches, from the beamlet map ``W``)::

    D_n = c_n [ sum_{k < K_d} A_k(d_n) sum_j Pv_kj(n) sum_i W_ji Pu_ki(n)  +  sum_{k >= K_d} A_k(d_n) F_k(n) ]
    c_n = T(d_n) (SAD / z_n)^2
    F_k(n) = sum_c t_c(n; k) F[l_c, j_c, i_c],    F[l] = Pv_l W Pu_l^T            (the scatter table)

with ``Pu_ki(n)``, ``Pv_kj(n)`` the erf-difference profiles of ``backend_numpy`` at the voxel's
``(u, v)`` and sigma ``s_k = sigma_k(d) SAD / z``, ``t_c`` the 8 trilinear weights of corner ``c`` of
the table cell the voxel reads (indices clamped, as ``backend_numpy._trilinear``), and ``Pu_l``,
``Pv_l`` the profiles at the table's nodes and sigma level ``l`` (``kernels._task.scatter_table``).
Collecting ``S[n, (l, j, i)] = c_n sum_{k >= K_d} A_k t_c`` into a sparse matrix (built once),
the table part is ``S vec(F)``.

Adjoint (transpose), from a per-voxel gradient ``r``::

    dW_ji = sum_n r_n c_n sum_{k < K_d} A_k Pv_kj(n) Pu_ki(n)  +  sum_l (Pv_l^T G_l Pu_l)_ji,
    G = reshape(S^T r)                                                  (voxel -> table nodes)

Proton beam, per layer ``E`` with spot map ``W`` (``backend_numpy``)::

    D_n = sum_E q_En sum_j gv_Ej(n) sum_i W_ji gu_Ei(n),   q_En = IDD_E(d_n + rs_E) / (2 pi s^2)
    dW_ji = sum_n r_n q_En gv_Ej(n) gu_Ei(n)

No lateral cut-off (every beamlet and spot contributes), as in the reference backend.
"""

from __future__ import annotations

import numpy as np

from ..kernels import backend_numpy
from ..kernels._task import _erf_profiles

__all__ = ["PhotonReference", "ProtonReference", "split_indices", "trilinear_corners"]

_CHUNK = 1 << 14  # voxels per vectorised block


def split_indices(shape, fractions) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Per axis: base index i, weight t of the upper node and the step to it (0 on a one-node axis), for
    fractional indices clamped exactly as ``backend_numpy._trilinear``."""
    parts = []
    for f, n in zip(fractions, shape):
        f = np.clip(f, 0.0, n - 1.0)
        i = np.minimum(np.floor(f).astype(np.int64), max(n - 2, 0))
        parts.append((i, f - i, min(1, n - 1)))
    return parts


def trilinear_corners(shape, f0: np.ndarray, f1: np.ndarray, f2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (8, n) and weights (8, n) of trilinear interpolation in an array of ``shape`` at
    fractional indices, clamped exactly as ``backend_numpy._trilinear`` (so sum(w * a.ravel()[i]) is its value)."""
    (i0, t0, s0), (i1, t1, s1), (i2, t2, s2) = split_indices(shape, (f0, f1, f2))
    index, weight = [], []
    for a, wa in ((0, 1.0 - t0), (s0, t0)):
        for b, wb in ((0, 1.0 - t1), (s1, t1)):
            for c, wc in ((0, 1.0 - t2), (s2, t2)):
                index.append(((i0 + a) * shape[1] + (i1 + b)) * shape[2] + (i2 + c))
                weight.append(wa * wb * wc)
    return np.array(index), np.array(weight)


class PhotonReference:
    """One photon beam's operator on a voxel subset (module docstring), geometry built once.

    Parameters
    ----------
    task : PhotonBeamTask
        The beam's work order (its weights are ignored: each call brings its own map).
    density : ndarray [z, y, x]
        Relative electron density.
    grid : Grid
    points : ndarray, shape (n, 3)
        Voxel centres of the subset [mm].
    """

    def __init__(self, task, density: np.ndarray, grid, points: np.ndarray) -> None:
        self.task = task
        self.shape = task.weights_mu.shape
        table = backend_numpy.radiological_depth(density, grid, task)
        hit, u, v, z, d = backend_numpy._bev_depth(task, table, points)
        self.hit = np.flatnonzero(hit)
        sad = task.sad_mm
        nodes = task.depth_step_mm * np.arange(task.depth_dose_gy_per_mu.size)
        self.coef = np.interp(d, nodes, task.depth_dose_gy_per_mu) * (sad / z) ** 2
        nv, nu = self.shape
        self.u, self.v = u, v
        self.edges_u = task.edge_u0_mm + task.beamlet_du_mm * np.arange(nu + 1)
        self.edges_v = task.edge_v0_mm + task.beamlet_dv_mm * np.arange(nv + 1)
        self.direct = []  # (A_k, s_k at the isocentre plane) of the components summed over beamlets
        rows, cols, vals = [], [], []
        self.table_reads = []  # per tabulated component: c_n A_k and the split (level, v, u) indices of the read
        scatter = task.scatter
        for k, (a_k, s_k) in enumerate(zip(task.component_weight, task.component_sigma_mm)):
            a = np.interp(d, nodes, a_k)
            s_iso = np.interp(d, nodes, s_k) * sad / z
            if k < task.n_direct:
                self.direct.append((a, s_iso))
                continue
            fractions = (np.log(s_iso / scatter.s0_mm) / scatter.log_ratio, (v - scatter.v0_mm) / scatter.dv_mm,
                         (u - scatter.u0_mm) / scatter.du_mm)
            index, weight = trilinear_corners(scatter.values.shape, *fractions)
            factor = weight * (self.coef * a)
            self.table_reads.append((self.coef * a, split_indices(scatter.values.shape, fractions)))
            rows.append(np.broadcast_to(np.arange(u.size), index.shape).ravel())
            cols.append(index.ravel())
            vals.append(factor.ravel())
        self.table_matrix = None
        if scatter is not None:
            import scipy.sparse as sp  # on first use, not at import (STYLE 1)

            n_nodes = scatter.values.size
            self.table_shape = scatter.values.shape
            self.table_matrix = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                              shape=(u.size, n_nodes))
            nlev = scatter.n_levels
            sigmas = scatter.s0_mm * np.exp(scatter.log_ratio * np.arange(nlev))
            self.pu_table = _erf_profiles(scatter.u0_mm + scatter.du_mm * np.arange(scatter.nu), self.edges_u, sigmas)
            self.pv_table = _erf_profiles(scatter.v0_mm + scatter.dv_mm * np.arange(scatter.nv), self.edges_v, sigmas)

    def _profiles(self, sl: slice, s_iso: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy.special import erf  # on first use, not at import (STYLE 1)

        inv = 1.0 / (np.sqrt(2.0) * s_iso[sl])
        eu = erf((self.u[sl, None] - self.edges_u[None, :]) * inv[:, None])
        ev = erf((self.v[sl, None] - self.edges_v[None, :]) * inv[:, None])
        return 0.5 * (eu[:, :-1] - eu[:, 1:]), 0.5 * (ev[:, :-1] - ev[:, 1:])

    def forward(self, weights: np.ndarray) -> np.ndarray:
        """Dose [Gy] on the hit voxels (``self.hit`` positions of the subset) for the map ``weights`` (nv, nu)."""
        w = np.asarray(weights, dtype=np.float64).reshape(self.shape)
        lateral = np.zeros(self.hit.size)
        for start in range(0, self.hit.size, _CHUNK):
            sl = slice(start, min(start + _CHUNK, self.hit.size))
            for a, s_iso in self.direct:
                pu, pv = self._profiles(sl, s_iso)
                lateral[sl] += a[sl] * np.einsum("nj,ji,ni->n", pv, w, pu, optimize=True)
        dose = self.coef * lateral
        if self.table_matrix is not None:
            table = np.matmul(np.matmul(self.pv_table, w), self.pu_table.transpose(0, 2, 1))
            dose += self.table_matrix @ table.ravel()
        return dose

    def adjoint(self, r_hit: np.ndarray) -> np.ndarray:
        """Gradient (nv, nu) of ``sum_n r_n D_n`` with respect to the map, for ``r_hit`` on the hit voxels."""
        rc = np.asarray(r_hit, dtype=np.float64) * self.coef
        grad = np.zeros(self.shape)
        for start in range(0, self.hit.size, _CHUNK):
            sl = slice(start, min(start + _CHUNK, self.hit.size))
            for a, s_iso in self.direct:
                pu, pv = self._profiles(sl, s_iso)
                grad += (pv * (rc[sl] * a[sl])[:, None]).T @ pu
        if self.table_matrix is not None:
            g = (self.table_matrix.T @ np.asarray(r_hit, dtype=np.float64)).reshape(self.table_shape)
            grad += np.einsum("lja,lji,lib->ab", self.pv_table, g, self.pu_table, optimize=True)
        return grad


class ProtonReference:
    """One proton beam's operator on a voxel subset (module docstring), geometry built once.

    ``stopping_power`` is the relative stopping power grid; weights come as the task's flat spot
    array (every kept layer's map raveled, back to back).
    """

    def __init__(self, task, stopping_power: np.ndarray, grid, points: np.ndarray) -> None:
        self.task = task
        table = backend_numpy.radiological_depth(stopping_power, grid, task)
        hit, u, v, z, d = backend_numpy._bev_depth(task, table, points)
        self.hit = np.flatnonzero(hit)
        self.u, self.v = u, v
        sad = task.sad_mm
        nodes = task.depth_step_mm * np.arange(task.idd_gy_mm2_per_gp.shape[1])
        self.layers = []  # (offset, (nv, nu), q, s_iso, spot u, spot v)
        offset = 0
        for layer in task.layers:
            d_layer = d + layer.range_shifter_mm
            idd = np.interp(d_layer, nodes, task.idd_gy_mm2_per_gp[layer.energy_index])
            s = np.interp(d_layer, nodes, task.sigma_mm[layer.energy_index])
            nv, nu = layer.weights_gp.shape
            self.layers.append((offset, (nv, nu), idd / (2.0 * np.pi * s * s), s * sad / z,
                                layer.u0_mm + layer.du_mm * np.arange(nu), layer.v0_mm + layer.dv_mm * np.arange(nv)))
            offset += nu * nv
        self.size = offset

    def _gauss(self, sl: slice, s_iso, pu, pv) -> tuple[np.ndarray, np.ndarray]:
        s = s_iso[sl, None]
        gu = np.exp(-0.5 * ((self.u[sl, None] - pu[None, :]) / s) ** 2)
        gv = np.exp(-0.5 * ((self.v[sl, None] - pv[None, :]) / s) ** 2)
        return gu, gv

    def forward(self, weights: np.ndarray) -> np.ndarray:
        """Dose [Gy] on the hit voxels for the flat spot weights [Gp]."""
        w = np.asarray(weights, dtype=np.float64)
        dose = np.zeros(self.hit.size)
        for start in range(0, self.hit.size, _CHUNK):
            sl = slice(start, min(start + _CHUNK, self.hit.size))
            for offset, shape, q, s_iso, pu, pv in self.layers:
                gu, gv = self._gauss(sl, s_iso, pu, pv)
                wl = w[offset:offset + shape[0] * shape[1]].reshape(shape)
                dose[sl] += q[sl] * np.einsum("nj,ji,ni->n", gv, wl, gu, optimize=True)
        return dose

    def adjoint(self, r_hit: np.ndarray) -> np.ndarray:
        """Gradient of ``sum_n r_n D_n`` with respect to the flat spot weights."""
        r = np.asarray(r_hit, dtype=np.float64)
        grad = np.zeros(self.size)
        for start in range(0, self.hit.size, _CHUNK):
            sl = slice(start, min(start + _CHUNK, self.hit.size))
            for offset, shape, q, s_iso, pu, pv in self.layers:
                gu, gv = self._gauss(sl, s_iso, pu, pv)
                grad[offset:offset + shape[0] * shape[1]] += ((gv * (r[sl] * q[sl])[:, None]).T @ gu).ravel()
        return grad
