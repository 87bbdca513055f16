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

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cases as case_lib  # noqa: E402

import sfrt_engine as se  # noqa: E402

FAST_BACKENDS = ["cpp", "cuda", "cupy"]
PARITY_TOL = 1e-4  # of the maximum dose (DESIGN 6)


@pytest.fixture(scope="module")
def reference_small():
    case = case_lib.small_check()
    return case, se.compute_dose(case.beams, case.patient, backend="numpy").gy




@pytest.mark.parametrize("name", FAST_BACKENDS)
def test_sarcoma_5beam(benchmark, name, reference_small):
    case_lib.require_backend(name)
    assert case_lib.max_rel_difference(*reference_small, name) <= PARITY_TOL
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
    case_lib.require_backend(name)
    assert case_lib.max_rel_difference(*reference_small, name) <= PARITY_TOL
    case = case_lib.water_sphere_5beam()
    benchmark.extra_info.update(case.describe())
    dose = benchmark(se.compute_dose, case.beams, case.patient, backend=name)
    assert dose.max_gy > 0
