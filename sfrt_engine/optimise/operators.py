"""Forward and adjoint dose operators of a beam set on a voxel subset (DESIGN 10, issue 12 item 1).

Dose is linear in the beamlet (MU) and spot (Gp) weights, ``d = A w``. :func:`dose_operator`
builds, once, everything about the beams that does not depend on the weights (ray tables, each
voxel's BEV coordinates and radiological depth, the scatter-table lattice and its profiles) and
returns a :class:`DoseOperator` whose ``forward(w) = A w`` and ``adjoint(r) = A^T r`` an optimiser
calls hundreds of times::

    op = dose_operator(beams, patient, voxels=mask)      # mask: bool [z, y, x] or int64 flat indices
    d = op.forward(op.weights0)                          # Gy on the subset, compute_dose's values
    g = op.adjoint(2 * (d - target))                     # d/dw of sum (d - target)^2, shape (n_weights,)
    plan = op.beams_with(w)                              # new beams carrying w

Weights: see :mod:`._layout` for which beamlets and spots are free and their order.

Backends (``backend=``): ``numpy`` (the reference, float64, :mod:`._reference`), ``cpp``
(C++/OpenMP adjoint kernels of ``csrc/``), ``cuda`` and ``cupy`` (GPU; the dose and gradient stay on
the device, only the weight vector moves); ``auto`` takes the first that runs (cuda, cupy, cpp,
numpy). The compiled forward is ``compute_dose``'s kernel evaluated on the subset from the stored
geometry; the adjoint is its exact transpose (same profiles, same cut-offs), accumulated in
float64: per thread (CPU) or per weight (GPU) in a fixed order, no atomics, so results are
deterministic.

Modes (``mode=``): ``"matrix-free"`` evaluates the kernels at every call; ``"csr"`` builds the
influence matrix ``A`` once (float32, ``scipy.sparse.csr_matrix``, :mod:`._influence`) and
multiplies by it. ``"auto"`` takes ``"csr"`` when its estimated size fits ``memory_budget_mib``
(default :data:`DEFAULT_CSR_BUDGET_MIB`) and, on a compiled backend, beams have few free weights
(:data:`CSR_MAX_ENTRIES_PER_POINT`), else ``"matrix-free"``; ``op.describe()`` says which and why.
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import GridError, PlanError
from ..kernels import get_backend
from ..patient import Patient
from ._layout import BeamSlot, beam_slots, beam_with, flatten_beams

__all__ = ["CSR_MAX_ENTRIES_PER_POINT", "DEFAULT_CSR_BUDGET_MIB", "MODES", "DoseOperator", "dose_operator"]

#: Memory the influence matrix may take in mode "auto" when no budget is given [MiB].
DEFAULT_CSR_BUDGET_MIB = 1024.0
MODES = ("auto", "matrix-free", "csr")
#: Mode "auto" on a compiled backend takes "csr" only when a beam's voxels have at most this many matrix
#: entries (free weights) on average: the kernels cost tens of operations per voxel and beam, a matrix row
#: one multiply-add per entry (and the scatter component makes rows nearly full).
CSR_MAX_ENTRIES_PER_POINT = 64
#: Bytes per stored influence-matrix entry: a float32 value and an int32 column index.
_CSR_ENTRY_BYTES = 8


def _voxel_indices(voxels, grid) -> np.ndarray:
    """Flat int64 indices [z, y, x] of the subset (module docstring), validated."""
    if voxels is None:
        return np.arange(grid.size, dtype=np.int64)
    arr = np.asarray(voxels)
    if arr.dtype == bool:
        if arr.shape != tuple(grid.shape_zyx):
            raise GridError(f"voxels: bool mask of shape {arr.shape}, expected the grid's {tuple(grid.shape_zyx)}")
        index = np.flatnonzero(arr)
    elif np.issubdtype(arr.dtype, np.integer) and arr.ndim == 1:
        index = arr.astype(np.int64)
        if index.size and (index.min() < 0 or index.max() >= grid.size):
            raise GridError(f"voxels: flat indices must be in 0..{grid.size - 1}, got {index.min()}..{index.max()}")
    else:
        raise GridError(f"voxels: expected None, a bool mask [z, y, x] or 1-D int64 flat indices, got {arr.dtype} "
                        f"{arr.shape}")
    if index.size == 0:
        raise GridError("voxels: the subset is empty; select at least one voxel")
    return index


class DoseOperator:
    """``A``: free weights -> dose [Gy] on a voxel subset, and its transpose (module docstring).

    Attributes
    ----------
    n_weights : int
        Number of free weights (photon MU per beamlet, proton Gp per spot), in :mod:`._layout`'s order.
    weights0 : ndarray, shape (n_weights,), float64
        The beams' weights as given.
    voxels : ndarray of int64, shape (n_voxels,)
        Flat indices [z, y, x] of the subset, in the order of ``forward``'s output.
    backend : str
        Backend that evaluates the operator.
    mode : str
        ``"matrix-free"`` or ``"csr"``.
    """

    def __init__(self, slots: list[BeamSlot], voxels: np.ndarray, engine, backend: str, mode: str,
                 info: dict) -> None:
        self._slots = slots
        self._engine = engine
        self.voxels = voxels
        self.backend = backend
        self.mode = mode
        self.n_weights = slots[-1].stop
        self.weights0 = np.concatenate([_free_weights(s) for s in slots])
        self.weights0.setflags(write=False)
        self._info = info

    @property
    def n_voxels(self) -> int:
        return int(self.voxels.size)

    def _check_weights(self, w) -> np.ndarray:
        if type(w).__module__.startswith("cupy"):
            w = w.get()
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (self.n_weights,):
            raise PlanError(f"weights: shape {w.shape}, expected ({self.n_weights},) free weights")
        if not np.all(np.isfinite(w)):
            raise PlanError("weights: NaN or Inf in the weight vector")
        return w

    def forward(self, w):
        """Dose [Gy] on the subset, shape (n_voxels,), float64: a numpy array, or a cupy array on the GPU backends
        (it stays on the device). The compiled kernels compute in float32 (DESIGN 3)."""
        return self._engine.forward(self._check_weights(w))

    def adjoint(self, r) -> np.ndarray:
        """``A^T r``: the gradient of ``sum_n r_n d_n`` with respect to the free weights, float64 (n_weights,).

        ``r`` has shape (n_voxels,): a numpy array, or a cupy array on the GPU backends (it stays there).
        """
        if getattr(r, "shape", None) != (self.n_voxels,):
            raise GridError(f"adjoint: r has shape {getattr(r, 'shape', None)}, expected ({self.n_voxels},)")
        return self._engine.adjoint(r)

    def beams_with(self, w) -> list:
        """New beams whose free weights are ``w`` and every other weight 0, as a flat list in the order given
        (an Arc contributes its control-point beams); the beams given are not modified."""
        w = self._check_weights(w)
        if np.any(w < 0):
            raise PlanError("weights: beamlet and spot weights must be >= 0")
        return [beam_with(s, w[s.start:s.stop]) for s in self._slots]

    def describe(self) -> dict:
        """Backend, mode (and why), sizes and set-up time."""
        return dict(self._info, backend=self.backend, mode=self.mode, n_weights=self.n_weights,
                    n_voxels=self.n_voxels, beams=len(self._slots))


def _free_weights(slot: BeamSlot) -> np.ndarray:
    if slot.kind == "photon":
        rows, cols = slot.map_index
        return slot.beam.weights_mu[rows, cols].astype(np.float64)
    layer_ids, rows, cols = slot.map_index
    maps = [layer.weights_gp for layer in slot.beam.layers]
    return np.array([maps[li][r, c] for li, r, c in zip(layer_ids, rows, cols)], dtype=np.float64)


def csr_bytes_estimate(hits_per_slot: list[int], slots: list[BeamSlot]) -> int:
    """Upper bound of the influence matrix's size [bytes]: every free weight of a beam reaching every voxel the
    beam reaches (the scatter component makes the blocks nearly dense)."""
    nnz = sum(h * s.n_free for h, s in zip(hits_per_slot, slots))
    return nnz * _CSR_ENTRY_BYTES


def dose_operator(beams, patient: Patient, *, voxels=None, backend: str = "auto", mode: str = "auto",
                  memory_budget_mib: float | None = None, apertures=None) -> DoseOperator:
    """The dose operator of ``beams`` on ``patient`` (module docstring).

    Parameters
    ----------
    beams : Beam, ProtonBeam, Arc or a list of them
        Photon beams (static or arc control points) and proton beams; their current weights are
        ``weights0`` and define the free weights (:mod:`._layout`).
    patient : Patient
    voxels : None, bool ndarray [z, y, x] or int64 ndarray (n,)
        The voxel subset (None: the whole grid); ``forward`` returns the dose there, in this order
        (a mask's voxels in C order).
    backend : str
        ``"auto"``, ``"numpy"``, ``"cpp"``, ``"cuda"`` or ``"cupy"``.
    mode : str
        ``"auto"``, ``"matrix-free"`` or ``"csr"``.
    memory_budget_mib : float, optional
        Largest influence matrix mode ``"auto"`` builds [MiB] (default ``DEFAULT_CSR_BUDGET_MIB``).
    apertures : list, optional
        One entry per beam: None, or the bool mask of free beamlets (photon) or a list of per-layer
        masks (proton); default: the non-zero weights.

    Raises
    ------
    PlanError, GridError
        For beams without free weights, a malformed subset or mode.
    BackendUnavailableError
        If the backend cannot run here.
    """
    start = time.perf_counter()
    if not isinstance(patient, Patient):
        raise TypeError(f"patient must be a sfrt_engine.Patient, got {type(patient).__name__}")
    if mode not in MODES:
        raise PlanError(f"mode={mode!r}: expected one of {', '.join(MODES)}")
    if memory_budget_mib is None:
        memory_budget_mib = DEFAULT_CSR_BUDGET_MIB
    if not (np.isfinite(memory_budget_mib) and memory_budget_mib >= 0):
        raise PlanError(f"memory_budget_mib={memory_budget_mib!r}: expected a size >= 0 MiB")
    flat = flatten_beams(beams)
    grid = patient.grid
    index = _voxel_indices(voxels, grid)
    slots = beam_slots(flat, grid, apertures)
    name = get_backend(backend).name
    engine_class = _engine_class(name)
    engine = engine_class(slots, patient, index)
    info = {"setup_seconds": 0.0}
    chosen = mode
    if mode != "matrix-free":
        need = csr_bytes_estimate(engine.hits_per_slot(), slots)
        budget = int(memory_budget_mib * (1 << 20))
        info["csr_bytes_estimate"] = need
        info["csr_budget_bytes"] = budget
        if mode == "auto":
            hits = sum(engine.hits_per_slot())
            per_point = need / _CSR_ENTRY_BYTES / max(hits, 1)
            fits = need <= budget
            chosen = "csr" if fits and (name == "numpy" or per_point <= CSR_MAX_ENTRIES_PER_POINT) else "matrix-free"
            info["mode_reason"] = (f"influence matrix of at most {need / 2**20:.1f} MiB "
                                   f"{'fits' if fits else 'exceeds'} the {memory_budget_mib:g} MiB budget")
            if fits and chosen == "matrix-free":
                info["mode_reason"] += (f", but with {per_point:.0f} entries per voxel a beam reaches the {name} "
                                        f"kernels are faster (csr above {CSR_MAX_ENTRIES_PER_POINT} only on numpy)")
        else:
            info["mode_reason"] = "forced"
        if chosen == "csr":
            from ._influence import CsrEngine

            engine = CsrEngine(slots, patient, index, engine)
            info["csr_nnz"] = engine.nnz
    else:
        info["mode_reason"] = "forced"
    if hasattr(engine, "describe"):
        info.update(engine.describe())
    info["setup_seconds"] = time.perf_counter() - start
    return DoseOperator(slots, index, engine, name, chosen, info)


def _engine_class(name: str):
    if name == "numpy":
        from ._engine_numpy import NumpyEngine

        return NumpyEngine
    if name == "cpp":
        from ._engine_cpp import CppEngine

        return CppEngine
    from ._engine_gpu import GpuEngine

    return GpuEngine.for_backend(name)
