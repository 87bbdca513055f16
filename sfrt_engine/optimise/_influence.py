"""The sparse influence matrix ``A`` (float32 CSR) of a beam set on a voxel subset.

``A[n, f]`` is the dose [Gy] voxel ``n`` of the subset receives from a unit weight of free weight
``f``: the columns of the reference operator (:mod:`._reference`), evaluated in float64 from its
stored geometry and stored in float32 (relative round-off 6e-8 per entry). Photon entries::

    A[n, (j, i)] = c_n [ sum_{k < K_d} A_k Pv_kj(n) Pu_ki(n) + sum_{k >= K_d} sum_c f_c(n; k) Pv_l[j_c, j] Pu_l[i_c, i] ]

(``f_c = c_n A_k t_c`` the voxel's trilinear factors of table corner ``c`` = ``(l, j_c, i_c)``; as ``t_c`` is a
product of one weight per axis, the 8 corners are evaluated as 2 levels of a (v sum) x (u sum) product);
proton entries ``q_En gv_Ej(n) gu_Ei(n)``. Exact zeros are not stored. The matrix is built row block
by row block per beam, so the work space stays near one block of ``CHUNK_ROWS`` voxels times the
beam's free weights.

On the GPU backends the matrix is copied to the device once (``cupyx.scipy.sparse``) and the
products run there in float32 (cuSPARSE multiplies in the matrix's type); otherwise ``scipy.sparse``
multiplies the float32 entries in float64 (so the adjoint is the forward's transpose to float64
round-off, and the sums over thousands of entries keep their precision).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._engine_numpy import NumpyEngine

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["CHUNK_ROWS", "CsrEngine", "influence_matrix"]

#: Voxels per dense row block while building [count].
CHUNK_ROWS = 2048


def _photon_block(ref, sl: slice, j: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Dense (rows of sl, free beamlets) block of one photon beam's influence [Gy/MU]."""
    block = np.zeros((sl.stop - sl.start, j.size))
    for a, s_iso in ref.direct:
        pu, pv = ref._profiles(sl, s_iso)
        block += (ref.coef[sl] * a[sl])[:, None] * pv[:, j] * pu[:, i]
    for factor, ((il, tl, sl_), (iv, tv, sv), (iu, tu, su)) in ref.table_reads:
        # trilinear weights are products per axis, so the 8 corners are 2 levels of separable (v) x (u) sums
        il, tl, iv, tv, iu, tu = il[sl], tl[sl], iv[sl], tv[sl], iu[sl], tu[sl]
        for lev, wl in ((il, 1.0 - tl), (il + sl_, tl)):
            pv = (1.0 - tv)[:, None] * ref.pv_table[lev, iv] + tv[:, None] * ref.pv_table[lev, iv + sv]
            pu = (1.0 - tu)[:, None] * ref.pu_table[lev, iu] + tu[:, None] * ref.pu_table[lev, iu + su]
            block += (factor[sl] * wl)[:, None] * pv[:, j] * pu[:, i]
    return block


def _proton_block(ref, sl: slice, packed: np.ndarray) -> np.ndarray:
    """Dense (rows of sl, free spots) block of one proton beam's influence [Gy/Gp]."""
    block = np.zeros((sl.stop - sl.start, packed.size))
    for offset, shape, q, s_iso, pu, pv in ref.layers:
        sel = np.flatnonzero((packed >= offset) & (packed < offset + shape[0] * shape[1]))
        if sel.size == 0:
            continue
        j, i = np.divmod(packed[sel] - offset, shape[1])
        gu, gv = ref._gauss(sl, s_iso, pu, pv)
        block[:, sel] = q[sl, None] * gv[:, j] * gu[:, i]
    return block


def influence_matrix(reference: NumpyEngine) -> sp.csr_matrix:
    """``A`` (n_voxels, n_weights), float32 CSR, from the reference engine's stored geometry."""
    import scipy.sparse as sp  # on first use, not at import (STYLE 1)

    slots = reference.slots
    n_weights = slots[-1].stop
    total = sp.csr_matrix((reference.n_voxels, n_weights), dtype=np.float32)
    for slot, ref in zip(slots, reference.beams):
        if ref is None or ref.hit.size == 0:
            continue
        if slot.kind == "photon":
            j, i = np.divmod(slot.packed_index, ref.shape[1])
        pieces = []
        for start in range(0, ref.hit.size, CHUNK_ROWS):
            sl = slice(start, min(start + CHUNK_ROWS, ref.hit.size))
            block = _photon_block(ref, sl, j, i) if slot.kind == "photon" else _proton_block(ref, sl, slot.packed_index)
            pieces.append(sp.csr_matrix(block.astype(np.float32)))
        beam = sp.vstack(pieces, format="csr")  # rows: the beam's hit voxels; columns: its free weights
        # place the rows at the hit voxels of the subset and the columns at the beam's slice of w
        counts = np.zeros(reference.n_voxels + 1, dtype=np.int64)
        counts[ref.hit + 1] = np.diff(beam.indptr)
        placed = sp.csr_matrix((beam.data, beam.indices + slot.start, np.cumsum(counts)),
                               shape=(reference.n_voxels, n_weights))
        total = total + placed
    total.sum_duplicates()
    return total


class CsrEngine:
    """The operator as products with the influence matrix (module docstring)."""

    def __init__(self, slots, patient, index: np.ndarray, engine) -> None:
        reference = engine if isinstance(engine, NumpyEngine) else NumpyEngine(slots, patient, index)
        self.matrix = influence_matrix(reference)
        self.nnz = int(self.matrix.nnz)
        self._cp = getattr(engine, "cp", None)  # the GPU engines carry cupy
        if self._cp is not None:
            from cupyx.scipy import sparse as cusparse

            self.device_matrix = cusparse.csr_matrix(self.matrix)
            self.device_transpose = self.device_matrix.T.tocsr()

    def hits_per_slot(self) -> list[int]:
        return []

    def forward(self, w: np.ndarray):
        if self._cp is not None:
            return self.device_matrix @ self._cp.asarray(w, dtype=self._cp.float32)
        return self.matrix @ np.asarray(w, dtype=np.float64)

    def adjoint(self, r) -> np.ndarray:
        if self._cp is not None:
            g = self.device_transpose @ self._cp.asarray(r, dtype=self._cp.float32)
            return g.get().astype(np.float64)
        return self.matrix.T @ np.asarray(r, dtype=np.float64)
