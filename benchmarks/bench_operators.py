"""pytest-benchmark suite of the dose operators: one forward + adjoint iteration per backend.

Run:   pytest benchmarks/bench_operators.py --benchmark-only
CI:    pytest benchmarks --benchmark-disable   (each benchmark runs once, still checked)

An optimiser calls ``forward(w)`` and ``adjoint(r)`` once per iteration on the voxels it
evaluates (here the BODY of the sarcoma phantom, the whole 100^3 water box). Each benchmark
first checks its backend's operators against the NumPy reference on a small heterogeneous case
(forward and adjoint within 1e-4 of the maximum), builds the operator once (not timed: ray
tables, per-voxel geometry), then times one iteration. The reference is timed on the sarcoma
case at 5 mm (at 2.5 mm it takes seconds; benchmarks/compare_backends.py --cases op-sarcoma
times both side by side).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cases as case_lib  # noqa: E402

from sfrt_engine.optimise import dose_operator  # noqa: E402

FAST_BACKENDS = ["cpp", "cuda", "cupy"]
PARITY_TOL = 1e-4  # of the maximum (DESIGN 6)


def _iteration(op, w, r):
    """One optimiser iteration's operator work: the dose for w and the gradient for r (on the host)."""
    dose = op.forward(w)
    grad = op.adjoint(r)
    return dose, grad


def _run(benchmark, case, backend: str, **kwargs):
    voxels = case_lib.operator_voxels(case)
    op = dose_operator(case.beams, case.patient, voxels=voxels, backend=backend, mode="matrix-free")
    rng = np.random.default_rng(1)
    w, r = op.weights0 * rng.uniform(0.5, 1.5, op.n_weights), rng.uniform(-0.5, 1.0, op.n_voxels)
    benchmark.extra_info.update(case.describe(), operator=op.describe())
    if kwargs:
        dose, grad = benchmark.pedantic(_iteration, args=(op, w, r), **kwargs)
    else:
        dose, grad = benchmark(_iteration, op, w, r)
    assert float(dose.max()) > 0.0 and np.all(np.isfinite(grad))


@pytest.mark.parametrize("name", FAST_BACKENDS)
def test_operator_sarcoma_5beam(benchmark, name):
    case_lib.require_backend(name)
    assert case_lib.operator_parity(name) <= PARITY_TOL
    _run(benchmark, case_lib.sarcoma_5beam(), name)


def test_operator_sarcoma_5beam_numpy_reference(benchmark):
    _run(benchmark, case_lib.sarcoma_5beam(spacing_mm=5.0), "numpy", rounds=1, iterations=1)


@pytest.mark.parametrize("name", FAST_BACKENDS)
def test_operator_water100_sphere_5beam(benchmark, name):
    case_lib.require_backend(name)
    assert case_lib.operator_parity(name) <= PARITY_TOL
    _run(benchmark, case_lib.water_sphere_5beam(), name)
