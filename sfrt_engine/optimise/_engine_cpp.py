"""The cpp engine of :class:`~.operators.DoseOperator`: C++/OpenMP kernels of ``_core``.

Set-up (once): per beam, the ray table (``_core.trace_rays``) and the BEV geometry of the subset voxels
it reaches (``_core.photon_geometry`` / ``proton_geometry``: positions and ``(u, v, zs, depth)``,
``bev_depth`` of ``csrc/physics/raytrace.h``), and for a photon beam with a scatter table the
erf-difference profiles ``Pu_l``, ``Pv_l`` at the table's nodes (float64, ``kernels._task``).

Stored factors (``csrc/physics/operator_cache.h``): per point, what does not depend on the weights (photons:
``T(d) (SAD/z)^2``, ``A_k(d)``, the scatter-table read, the cut-off window and the erf-difference profiles of
the directly summed components; protons: per layer reaching the point, ``IDD / (2 pi s^2)``, the spot window
and the Gaussian profiles) is evaluated once (``_core.photon_cache``, ``proton_cache``) and kept, while the total stays
within ``CACHE_BUDGET_MIB``, and replaces the beam's stored geometry; the forward and adjoint then only multiply
and add. Beams beyond the budget are evaluated from their geometry at every call (the same results).

Forward: per photon beam the scatter table ``F_l = Pv_l W Pu_l^T`` (float64 batched products, stored
float32 as ``compute_dose`` does), then ``_core.photon_forward`` (``photon_bev_dose`` at every stored
point; beams added in order) and ``_core.proton_forward``.

Adjoint: ``_core.photon_adjoint`` returns per beam ``dW`` of the directly summed components and ``G``,
the gradient at the table's nodes; the table's part of ``dW`` is ``sum_l Pv_l^T G_l Pu_l`` (float64).
``_core.proton_adjoint`` returns the spot gradients.
"""

from __future__ import annotations

import numpy as np

from ..kernels import backend_cpp
from ..kernels._task import _erf_profiles, pack_grid

__all__ = ["CACHE_BUDGET_MIB", "CppEngine", "table_profiles"]

#: Memory the stored per-point factors of all photon beams may take [MiB]; beyond it, beams are evaluated
#: from their geometry at every call.
CACHE_BUDGET_MIB = 1024.0


def table_profiles(task) -> tuple[np.ndarray, np.ndarray] | None:
    """(Pu (L, nu_t, nbu), Pv (L, nv_t, nbv)) of a photon task's scatter table, or None without one."""
    t = task.scatter
    if t is None:
        return None
    nv, nu = task.weights_mu.shape
    sigmas = t.s0_mm * np.exp(t.log_ratio * np.arange(t.n_levels))
    edges_u = task.edge_u0_mm + task.beamlet_du_mm * np.arange(nu + 1)
    edges_v = task.edge_v0_mm + task.beamlet_dv_mm * np.arange(nv + 1)
    return (_erf_profiles(t.u0_mm + t.du_mm * np.arange(t.nu), edges_u, sigmas),
            _erf_profiles(t.v0_mm + t.dv_mm * np.arange(t.nv), edges_v, sigmas))


def table_from_weights(profiles, weights: np.ndarray) -> np.ndarray:
    """Scatter table values ``Pv_l W Pu_l^T`` (L, nv_t, nu_t) of a beamlet map, as ``kernels._task.scatter_table``."""
    pu, pv = profiles
    return np.matmul(np.matmul(pv, weights), pu.transpose(0, 2, 1))


def table_adjoint(profiles, grad_table: np.ndarray) -> np.ndarray:
    """``sum_l Pv_l^T G_l Pu_l`` (nbv, nbu): the transpose of :func:`table_from_weights`."""
    pu, pv = profiles
    return np.matmul(np.matmul(pv.transpose(0, 2, 1), grad_table), pu).sum(axis=0)


class CppEngine:
    """Geometry once, then ``_core`` forward and adjoint calls (module docstring)."""

    def __init__(self, slots, patient, index: np.ndarray, *, store_factors: bool = True) -> None:
        core = backend_cpp._import()
        self._core = core
        self.slots = slots
        self.n_voxels = int(index.size)
        grid_pack = pack_grid(patient.grid)
        voxels = np.ascontiguousarray(index, dtype=np.int64)
        f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
        self.photons, self.protons = [], []
        self._hits = [0] * len(slots)
        density = stopping_power = None
        for k, slot in enumerate(slots):
            task = slot.task
            if task is None:
                continue
            pack = task.pack()
            if slot.kind == "photon":
                density = f32(patient.density()) if density is None else density
                table = core.trace_rays(density, grid_pack, pack)
                hit, geom = core.photon_geometry(grid_pack, pack, table, voxels)
                self.photons.append({
                    "slot": slot, "pack": pack, "shape": task.weights_mu.shape, "hit": hit, "geom": geom,
                    "tdd": f32(task.depth_dose_gy_per_mu), "comp_w": f32(task.component_weight),
                    "comp_s": f32(task.component_sigma_mm), "profiles": table_profiles(task),
                    "no_table": np.zeros((0, 1, 1), dtype=np.float32)})
            else:
                stopping_power = f32(patient.stopping_power()) if stopping_power is None else stopping_power
                table = core.trace_rays(stopping_power, grid_pack, pack)
                hit, geom = core.proton_geometry(grid_pack, pack, table, voxels)
                layers, _ = task.pack_layers()
                self.protons.append({"slot": slot, "pack": pack, "layers": layers, "hit": hit, "geom": geom,
                                     "idd": f32(task.idd_gy_mm2_per_gp), "sigma": f32(task.sigma_mm)})
            self._hits[k] = int(hit.size)
        self.caches = [None] * len(self.photons)
        self.proton_caches = [None] * len(self.protons)
        self.cache_bytes = 0
        if store_factors:
            self._build_caches()

    def _build_caches(self) -> None:
        """Stored factors of each beam, in beam order, while they fit CACHE_BUDGET_MIB (module docstring)."""
        left = int(CACHE_BUDGET_MIB * (1 << 20))
        for beams, caches, args, build in (
                (self.photons, self.caches, self._photon_args(None), self._core.photon_cache),
                (self.protons, self.proton_caches, self._proton_args(None), self._core.proton_cache)):
            for i, b in enumerate(beams):
                cache = build(*[a[i] for a in args], max_bytes=left)
                if isinstance(cache, int):  # its size: over the budget left
                    continue
                size = sum(a.nbytes for a in cache)
                left -= size
                self.cache_bytes += size
                caches[i] = cache
                b["geom"] = np.zeros((0, 4))  # the stored factors replace the geometry

    def describe(self) -> dict:
        """Memory of the stored geometry and factors, and how many photon beams have stored factors."""
        cached = sum(c is not None for c in self.caches + self.proton_caches)
        return {"geometry_bytes": self.geometry_bytes(), "cache_bytes": self.cache_bytes,
                "cached_beams": f"{cached} of {len(self.caches) + len(self.proton_caches)} beams"}

    def hits_per_slot(self) -> list[int]:
        return list(self._hits)

    def geometry_bytes(self) -> int:
        """Memory held by the stored geometry [bytes]."""
        return sum(b["hit"].nbytes + b["geom"].nbytes for b in self.photons + self.protons)

    def _photon_args(self, w: np.ndarray | None):
        weights, scatter = [], []
        for b in self.photons:
            s = b["slot"]
            wmap = (s.packed(w[s.start:s.stop]) if w is not None else np.zeros(s.packed_size)).reshape(b["shape"])
            weights.append(wmap.astype(np.float32))
            if b["profiles"] is None:
                scatter.append(b["no_table"])
            elif w is None:
                pu, pv = b["profiles"]
                scatter.append(np.zeros((pu.shape[0], pv.shape[1], pu.shape[1]), dtype=np.float32))
            else:
                scatter.append(table_from_weights(b["profiles"], wmap).astype(np.float32))
        return ([b["pack"] for b in self.photons], weights, [b["tdd"] for b in self.photons],
                [b["comp_w"] for b in self.photons], [b["comp_s"] for b in self.photons], scatter,
                [b["hit"] for b in self.photons], [b["geom"] for b in self.photons])

    def _proton_args(self, w: np.ndarray | None):
        weights = []
        for b in self.protons:
            s = b["slot"]
            weights.append((s.packed(w[s.start:s.stop]) if w is not None else np.zeros(s.packed_size))
                           .astype(np.float32))
        return ([b["pack"] for b in self.protons], [b["layers"] for b in self.protons], weights,
                [b["idd"] for b in self.protons], [b["sigma"] for b in self.protons],
                [b["hit"] for b in self.protons], [b["geom"] for b in self.protons])

    def forward(self, w: np.ndarray) -> np.ndarray:
        dose = np.zeros(self.n_voxels, dtype=np.float32)
        if self.photons:
            dose = self._core.photon_forward(*self._photon_args(w), self.n_voxels, self.caches)
        if self.protons:
            dose = dose + self._core.proton_forward(*self._proton_args(w), self.n_voxels, self.proton_caches)
        return dose.astype(np.float64)

    def adjoint(self, r) -> np.ndarray:
        r = np.ascontiguousarray(r, dtype=np.float64)
        grad = np.zeros(self.slots[-1].stop)
        if self.photons:
            for b, (gw, gt) in zip(self.photons, self._core.photon_adjoint(*self._photon_args(None), r, self.caches)):
                if b["profiles"] is not None:
                    gw = gw + table_adjoint(b["profiles"], gt)
                s = b["slot"]
                grad[s.start:s.stop] = gw.ravel()[s.packed_index]
        if self.protons:
            for b, gw in zip(self.protons, self._core.proton_adjoint(*self._proton_args(None), r, self.proton_caches)):
                s = b["slot"]
                grad[s.start:s.stop] = gw[s.packed_index]
        return grad
