"""pytest-benchmark suite of photon dose per backend.

Run:   pytest benchmarks/bench_photon.py --benchmark-only
CI:    pytest benchmarks --benchmark-disable   (each benchmark runs once, still checked)

Each benchmark first checks its backend against the NumPy reference on a small
heterogeneous case (DESIGN 6: within 1e-4 of the maximum dose), then times the
full case. The reference itself is timed only on the default sarcoma case.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cases as case_lib  # noqa: E402

import sfrt_engine as se  # noqa: E402

FAST_BACKENDS = ["cpp", "cuda", "cupy"]


@pytest.fixture(scope="module")
def reference_small():
    case = case_lib.small_check()
    return case, se.compute_dose(case.beams, case.patient, backend="numpy").gy


def _require(name: str) -> None:
    ok, reason = se.available_backends()[name]
    if not ok:
        pytest.skip(f"{name}: {reason}")


def _check_parity(name, reference_small) -> None:
    case, ref = reference_small
    got = se.compute_dose(case.beams, case.patient, backend=name).gy
    assert np.abs(got - ref).max() <= 1e-4 * ref.max()


@pytest.mark.parametrize("name", FAST_BACKENDS)
def test_sarcoma_5beam(benchmark, name, reference_small):
    _require(name)
    _check_parity(name, reference_small)
    case = case_lib.sarcoma_5beam()
    benchmark.extra_info.update(case.describe())
    dose = benchmark(se.compute_dose, case.beams, case.patient, backend=name)
    assert dose.backend == name and dose.max_gy > 0


def test_sarcoma_5beam_numpy_reference(benchmark):
    case = case_lib.sarcoma_5beam(spacing_mm=5.0)
    benchmark.extra_info.update(case.describe())
    dose = benchmark.pedantic(se.compute_dose, args=(case.beams, case.patient), kwargs={"backend": "numpy"},
                              rounds=1, iterations=1)
    assert dose.max_gy > 0


@pytest.mark.parametrize("name", FAST_BACKENDS)
def test_water100_sphere_5beam(benchmark, name, reference_small):
    _require(name)
    _check_parity(name, reference_small)
    case = case_lib.water_sphere_5beam()
    benchmark.extra_info.update(case.describe())
    dose = benchmark(se.compute_dose, case.beams, case.patient, backend=name)
    assert dose.max_gy > 0
