"""The GPU engines of :class:`~.operators.DoseOperator`: the kernels of ``csrc/cuda/operator_kernels.cuh``
compiled by nvcc (backend ``cuda``, launched through ``_cuda.*_device``) or by NVRTC (backend ``cupy``).

Set-up (once): the geometry of the cpp engine (ray tables and the subset points each beam reaches, with
their ``(u, v, zs, depth)``), each beam's points sorted by ``v``, and per weight the range of points that
can reach it (``v`` within the cut-off reach of its row: ``begin``/``end``); all of it, the machine tables
and the scatter-table profiles are copied to the device. Device arrays are cupy arrays.

Per call only the weight vector moves: ``forward(w)`` uploads ``w``, builds the scatter tables on the
device (``Pv_l W Pu_l^T``) and returns the dose as a cupy float64 array; ``adjoint(r)`` takes a cupy (or
numpy) array, gathers per weight (thread = weight x segment of its points, segments summed in order:
deterministic, no atomics) and returns the float64 gradient on the host.
"""

from __future__ import annotations

import os

import numpy as np

from ..kernels import backend_cupy
from ..kernels._task import CUTOFF_SIGMA
from ._engine_cpp import CppEngine

__all__ = ["KERNEL_HEADER", "KERNEL_NAMES", "GpuEngine", "kernel_source"]

KERNEL_HEADER = "cuda/operator_kernels.cuh"
KERNEL_NAMES = ("sfrt_photon_forward", "sfrt_proton_forward", "sfrt_photon_adjoint_weights",
                "sfrt_photon_adjoint_table", "sfrt_proton_adjoint_spots", "sfrt_sum_segments")
_BLOCK = 256
_THREADS_TARGET = 1 << 16  # threads per adjoint launch the segments aim at (default)
#: Environment variable overriding the adjoint's thread target (read when an operator is built): more
#: segments shorten each thread's loop and add partial sums. Results are deterministic for a given value.
ADJOINT_THREADS_ENV = "SFRT_OPERATOR_ADJOINT_THREADS"
_MAX_SEGMENTS = 512


def kernel_source(include_dir) -> str:
    """The NVRTC translation unit of the operator kernels (a digest of the headers keys CuPy's cache)."""
    return (f"// sfrt-engine operator kernels; headers in {include_dir.as_posix()}, sha256 "
            f"{backend_cupy._header_digest(include_dir)}\n#include \"{KERNEL_HEADER}\"\n")


def adjoint_threads_target() -> int:
    """Threads per adjoint launch the segments aim at: ``SFRT_OPERATOR_ADJOINT_THREADS`` or 65,536."""
    text = os.environ.get(ADJOINT_THREADS_ENV, "")
    if not text:
        return _THREADS_TARGET
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1024 <= value <= 1 << 26:
        raise ValueError(f"{ADJOINT_THREADS_ENV}={text}: expected a whole number of threads from 1024 to {1 << 26}; "
                         f"unset it for the default {_THREADS_TARGET}")
    return value


def _segments(n_items: int, n_points: int) -> int:
    target = adjoint_threads_target()
    return int(max(1, min(_MAX_SEGMENTS, -(-target // max(n_items, 1)), max(n_points // 32, 1))))


class _Nvrtc:
    """Launches through cupy.RawModule (backend cupy)."""

    def __init__(self, cp) -> None:
        include_dir = backend_cupy.kernel_include_dir()
        module = cp.RawModule(code=kernel_source(include_dir), options=backend_cupy.nvrtc_options(include_dir))
        self.k = {name: module.get_function(name) for name in KERNEL_NAMES}
        self.cp = cp

    def _run(self, name: str, n_threads: int, args, grid_stride: bool = False) -> None:
        blocks = max(1, -(-n_threads // _BLOCK))
        if grid_stride:
            blocks = min(blocks, 1 << 16)
        self.k[name]((blocks,), (_BLOCK,), args)

    def photon_forward(self, b, weights, scatter, out):
        self._run("sfrt_photon_forward", b["n_hit"], (b["pack"], weights, b["tdd"], b["comp_w"], b["comp_s"], scatter,
                                                       b["hit"], b["geom"], np.int64(b["n_hit"]), out), True)

    def proton_forward(self, b, weights, out):
        self._run("sfrt_proton_forward", b["n_hit"], (b["pack"], b["layers"], weights, b["idd"], b["sigma"], b["hit"],
                                                       b["geom"], np.int64(b["n_hit"]), out), True)

    def photon_adjoint_weights(self, b, r, partial):
        self._run("sfrt_photon_adjoint_weights", b["n_w"] * b["seg"],
                  (b["pack"], b["tdd"], b["comp_w"], b["comp_s"], b["hit"], b["geom"], r, b["begin"], b["end"],
                   np.int32(b["seg"]), np.float64(b["reach"]), partial))

    def photon_adjoint_table(self, b, r, partial):
        self._run("sfrt_photon_adjoint_table", b["n_col"] * b["seg_t"],
                  (b["pack"], b["tdd"], b["comp_w"], b["comp_s"], b["hit"], b["geom"], r, b["begin_t"], b["end_t"],
                   np.int32(b["seg_t"]), partial))

    def proton_adjoint_spots(self, b, r, partial):
        self._run("sfrt_proton_adjoint_spots", b["n_w"] * b["seg"],
                  (b["pack"], b["layers"], b["idd"], b["sigma"], b["hit"], b["geom"], r, b["begin"], b["end"],
                   np.int64(b["n_w"]), np.int32(b["seg"]), np.float64(b["reach"]), partial))

    def sum_segments(self, partial, n: int, n_seg: int, out):
        self._run("sfrt_sum_segments", n, (partial, np.int64(n), np.int32(n_seg), out), True)


class _Nvcc:
    """Launches through the nvcc-built ``_cuda`` module (backend cuda), on cupy's device arrays."""

    def __init__(self, cp) -> None:
        from ..kernels import backend_cuda

        self.m = backend_cuda._import()
        self.cp = cp

    @staticmethod
    def _p(a) -> int:
        return int(a.data.ptr)

    def photon_forward(self, b, weights, scatter, out):
        p = self._p
        self.m.photon_forward_device(p(b["pack"]), p(weights), p(b["tdd"]), p(b["comp_w"]), p(b["comp_s"]),
                                     p(scatter), p(b["hit"]), p(b["geom"]), b["n_hit"], p(out))

    def proton_forward(self, b, weights, out):
        p = self._p
        self.m.proton_forward_device(p(b["pack"]), p(b["layers"]), p(weights), p(b["idd"]), p(b["sigma"]),
                                     p(b["hit"]), p(b["geom"]), b["n_hit"], p(out))

    def photon_adjoint_weights(self, b, r, partial):
        p = self._p
        self.m.photon_adjoint_weights_device(p(b["pack"]), p(b["tdd"]), p(b["comp_w"]), p(b["comp_s"]), p(b["hit"]),
                                             p(b["geom"]), p(r), p(b["begin"]), p(b["end"]), b["n_w"], b["seg"],
                                             b["reach"], p(partial))

    def photon_adjoint_table(self, b, r, partial):
        p = self._p
        self.m.photon_adjoint_table_device(p(b["pack"]), p(b["tdd"]), p(b["comp_w"]), p(b["comp_s"]), p(b["hit"]),
                                           p(b["geom"]), p(r), p(b["begin_t"]), p(b["end_t"]), b["n_col"], b["seg_t"],
                                           p(partial))

    def proton_adjoint_spots(self, b, r, partial):
        p = self._p
        self.m.proton_adjoint_spots_device(p(b["pack"]), p(b["layers"]), p(b["idd"]), p(b["sigma"]), p(b["hit"]),
                                           p(b["geom"]), p(r), p(b["begin"]), p(b["end"]), b["n_w"], b["seg"],
                                           b["reach"], p(partial))

    def sum_segments(self, partial, n: int, n_seg: int, out):
        self.m.sum_segments_device(self._p(partial), n, n_seg, self._p(out))


def _ranges(v_sorted: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[begin, end) of the sorted v values within [lo, hi] for each pair."""
    return (np.searchsorted(v_sorted, lo, side="left").astype(np.int64),
            np.searchsorted(v_sorted, hi, side="right").astype(np.int64))


class GpuEngine:
    """Device copies of the geometry and the kernels' launches (module docstring)."""

    backend = "cupy"

    @classmethod
    def for_backend(cls, name: str):
        return type(f"{name.capitalize()}Engine", (cls,), {"backend": name})

    def __init__(self, slots, patient, index: np.ndarray) -> None:
        import cupy as cp

        self.cp = cp
        self.slots = slots
        self.n_voxels = int(index.size)
        self.launch = _Nvcc(cp) if self.backend == "cuda" else _Nvrtc(cp)
        host = CppEngine(slots, patient, index, store_factors=False)  # the geometry only
        self._hits = host.hits_per_slot()
        d = cp.asarray
        self.photons, self.protons = [], []
        for b in host.photons:
            slot, task = b["slot"], b["slot"].task
            order = np.argsort(b["geom"][:, 1], kind="stable")
            geom, v = b["geom"][order], b["geom"][order, 1]
            scale = task.sad_mm / geom[:, 2] if geom.size else np.ones(1)
            nd = task.n_direct
            sigma = float(task.component_sigma_mm[:nd].max()) if nd else 0.0
            reach = CUTOFF_SIGMA * sigma * float(scale.max()) * (1 + 1e-6) + 1e-6
            nbv, nbu = b["shape"]
            ev = task.edge_v0_mm + task.beamlet_dv_mm * np.arange(nbv + 1)
            begin, end = _ranges(v, np.repeat(ev[:-1] - reach, nbu), np.repeat(ev[1:] + reach, nbu))
            entry = {"slot": slot, "shape": b["shape"], "n_w": nbu * nbv, "n_hit": int(order.size), "reach": reach,
                     "pack": d(b["pack"]), "tdd": d(b["tdd"]), "comp_w": d(b["comp_w"]), "comp_s": d(b["comp_s"]),
                     "hit": d(b["hit"][order]), "geom": d(np.ascontiguousarray(geom)), "begin": d(begin),
                     "end": d(end), "seg": _segments(nbu * nbv, order.size), "index": d(slot.packed_index),
                     "no_table": cp.zeros(1, dtype=cp.float32), "profiles": None}
            if b["profiles"] is not None:
                t = task.scatter
                vt = t.v0_mm + t.dv_mm * np.arange(t.nv)
                lo, hi = vt - t.dv_mm, vt + t.dv_mm
                lo[0], hi[-1] = -np.inf, np.inf  # clamped reads land on the edge rows
                begin_t, end_t = _ranges(v, np.repeat(lo, t.nu), np.repeat(hi, t.nu))
                entry.update(profiles=tuple(d(p) for p in b["profiles"]), n_col=t.nu * t.nv,
                             table_shape=t.values.shape, begin_t=d(begin_t), end_t=d(end_t),
                             seg_t=_segments(t.nu * t.nv, order.size))
            self.photons.append(entry)
        for b in host.protons:
            slot, task = b["slot"], b["slot"].task
            order = np.argsort(b["geom"][:, 1], kind="stable")
            geom, v = b["geom"][order], b["geom"][order, 1]
            scale = task.sad_mm / geom[:, 2] if geom.size else np.ones(1)
            energies = [layer.energy_index for layer in task.layers]
            reach = CUTOFF_SIGMA * float(task.sigma_mm[energies].max()) * float(scale.max()) * (1 + 1e-6) + 1e-6
            spot_v = np.concatenate([np.repeat(layer.v0_mm + layer.dv_mm * np.arange(layer.weights_gp.shape[0]),
                                               layer.weights_gp.shape[1]) for layer in task.layers])
            begin, end = _ranges(v, spot_v - reach, spot_v + reach)
            self.protons.append({"slot": slot, "n_w": slot.packed_size, "n_hit": int(order.size), "reach": reach,
                                 "pack": d(b["pack"]), "layers": d(b["layers"]), "idd": d(b["idd"]),
                                 "sigma": d(b["sigma"]), "hit": d(b["hit"][order]),
                                 "geom": d(np.ascontiguousarray(geom)), "begin": d(begin), "end": d(end),
                                 "seg": _segments(slot.packed_size, order.size), "index": d(slot.packed_index)})

    def hits_per_slot(self) -> list[int]:
        return list(self._hits)

    def forward(self, w: np.ndarray):
        cp = self.cp
        w_d = cp.asarray(w, dtype=cp.float64)  # the only transfer
        out = cp.zeros(self.n_voxels, dtype=cp.float32)
        for b in self.photons:
            s = b["slot"]
            wmap = cp.zeros(s.packed_size, dtype=cp.float64)
            wmap[b["index"]] = w_d[s.start:s.stop]
            wmap = wmap.reshape(b["shape"])
            scatter = b["no_table"]
            if b["profiles"] is not None:
                pu, pv = b["profiles"]
                scatter = cp.ascontiguousarray(cp.matmul(cp.matmul(pv, wmap), pu.transpose(0, 2, 1)),
                                               dtype=cp.float32)
            self.launch.photon_forward(b, cp.ascontiguousarray(wmap, dtype=cp.float32), scatter, out)
        for b in self.protons:
            s = b["slot"]
            wflat = cp.zeros(s.packed_size, dtype=cp.float32)
            wflat[b["index"]] = w_d[s.start:s.stop].astype(cp.float32)
            self.launch.proton_forward(b, wflat, out)
        return out.astype(cp.float64)

    def _gather(self, n: int, n_seg: int, run):
        cp = self.cp
        partial = cp.empty(n * n_seg, dtype=cp.float64)
        run(partial)
        out = cp.empty(n, dtype=cp.float64)
        self.launch.sum_segments(partial, n, n_seg, out)
        return out

    def adjoint(self, r) -> np.ndarray:
        cp = self.cp
        r_d = cp.ascontiguousarray(cp.asarray(r), dtype=cp.float64)
        grad = cp.zeros(self.slots[-1].stop, dtype=cp.float64)
        for b in self.photons:
            s = b["slot"]
            gw = self._gather(b["n_w"], b["seg"], lambda part, b=b: self.launch.photon_adjoint_weights(b, r_d, part))
            gw = gw.reshape(b["shape"])
            if b["profiles"] is not None:
                n_table = b["n_col"] * b["table_shape"][0]
                gt = self._gather(n_table, b["seg_t"],
                                  lambda part, b=b: self.launch.photon_adjoint_table(b, r_d, part))
                pu, pv = b["profiles"]
                gw = gw + cp.matmul(cp.matmul(pv.transpose(0, 2, 1), gt.reshape(b["table_shape"])), pu).sum(axis=0)
            grad[s.start:s.stop] = gw.ravel()[b["index"]]
        for b in self.protons:
            s = b["slot"]
            gw = self._gather(b["n_w"], b["seg"], lambda part, b=b: self.launch.proton_adjoint_spots(b, r_d, part))
            grad[s.start:s.stop] = gw[b["index"]]
        return grad.get()
