"""pytest-benchmark suite of proton dose: the default sarcoma case with a 3-field IMPT plan.

Run:   pytest benchmarks/bench_impt.py --benchmark-only
CI:    pytest benchmarks --benchmark-disable   (each benchmark runs once, still checked)
Side by side, one run (cpp time, numpy/cpp ratio, spot count):

    python benchmarks/compare_backends.py --cases impt3 --backends cpp numpy

Each compiled backend is first checked against the NumPy reference on a small
heterogeneous proton case (DESIGN 6: within 1e-4 of the maximum dose). The plan
(gantry 0, 120, 240 deg, 5 mm spots, weights by least squares) is built once per
grid; only ``compute_dose`` is timed. The reference is timed on the 5 mm grid, where
it takes seconds, beside the compiled backends on the same plan.
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
REFERENCE_SPACING_MM = 5.0


@pytest.fixture(scope="module")
def reference_small():
    case = case_lib.small_proton_check()
    return case, se.compute_dose(case.beams, case.patient, backend="numpy").gy


@pytest.fixture(scope="module")
def impt_full():
    return case_lib.impt_3field()


@pytest.fixture(scope="module")
def impt_coarse():
    return case_lib.impt_3field(spacing_mm=REFERENCE_SPACING_MM)


@pytest.mark.parametrize("name", FAST_BACKENDS)
def test_sarcoma_impt3(benchmark, name, reference_small, impt_full):
    case_lib.require_backend(name)
    assert case_lib.max_rel_difference(*reference_small, name) <= PARITY_TOL
    assert len(impt_full.beams) == 3 and impt_full.n_spots > 1000
    benchmark.extra_info.update(impt_full.describe())
    dose = benchmark(se.compute_dose, impt_full.beams, impt_full.patient, backend=name)
    assert dose.backend == name and dose.max_gy > 0


@pytest.mark.parametrize("name", ["numpy", *FAST_BACKENDS])
def test_sarcoma_impt3_reference_grid(benchmark, name, impt_coarse):
    """The same kind of plan on the coarser grid, where the numpy reference runs in seconds: the ratio's pair."""
    case_lib.require_backend(name)
    benchmark.extra_info.update(impt_coarse.describe())
    dose = benchmark.pedantic(se.compute_dose, args=(impt_coarse.beams, impt_coarse.patient),
                              kwargs={"backend": name}, rounds=1, iterations=1)
    assert dose.max_gy > 0
