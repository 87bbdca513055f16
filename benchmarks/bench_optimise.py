"""pytest-benchmark suite of whole fluence optimisations (L-BFGS-B through the dose operators) per backend.

Run:   pytest benchmarks/bench_optimise.py --benchmark-only
CI:    pytest benchmarks --benchmark-disable   (each benchmark runs once, still checked)

Cases: the default sarcoma CRT component (2.5 mm, 5 conformal fields, 5 mm beamlets, the default
goal set, 10 iterations) and the 100^3 water box (3 mm) with a 40 mm radius sphere and 5 fields
(PTV D95 / D2 goals and a ring's mean dose, 10 iterations). Each run is checked: the objective
falls and the PTV D95 of the optimised plan is within 10 % of its goal. The NumPy reference is timed
on the same sarcoma case at 5 mm for 3 iterations (``benchmarks/compare_backends.py`` times the per-iteration
operators of every backend side by side).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cases as case_lib

from sfrt_engine.components import optimise_beams
from sfrt_engine.optimise import DvhMax, DvhMin, MeanDose, default_goals

BACKENDS = ["cpp", "cuda", "cupy"]
ITERATIONS = 10


def _sarcoma_goals():
    return default_goals().objectives("crt", 3.0)


def _sphere_goals(case):
    z, y, x = case.patient.grid.coordinates_mm()
    r = np.sqrt(x * x + y * y + z * z)
    case.patient.structures["RING"] = (r > 45.0) & (r <= 70.0)
    return [DvhMin("PTV", 2.0, 95.0, weight=100.0), DvhMax("PTV", 2.1, 2.0, weight=100.0),
            MeanDose("RING", weight=1.0)]


def _optimise(benchmark, case, objectives, backend, iterations=ITERATIONS):
    def run():
        return optimise_beams(case.beams, case.patient, objectives, backend=backend, max_iterations=iterations)

    beams, record = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(case.describe(), optimisation={k: record[k] for k in (
        "iterations", "evaluations", "seconds", "setup_seconds", "backend", "operator_mode", "initial_objective",
        "final_objective")})
    assert record["final_objective"] < record["initial_objective"]
    d95 = next(g for g in record["goals"] if g["goal"].startswith("PTV D95"))
    if iterations >= ITERATIONS:
        assert d95["shortfall"] <= 0.10 * float(d95["goal"].split(">=")[1].split()[0])
    return beams, record


@pytest.mark.parametrize("name", BACKENDS)
def test_optimise_sarcoma_crt(benchmark, name):
    case_lib.require_backend(name)
    case = case_lib.sarcoma_5beam()
    _optimise(benchmark, case, _sarcoma_goals(), name)


@pytest.mark.parametrize("name", BACKENDS)
def test_optimise_water100_sphere(benchmark, name):
    case_lib.require_backend(name)
    case = case_lib.water_sphere_5beam()
    _optimise(benchmark, case, _sphere_goals(case), name)


def test_optimise_sarcoma_crt_numpy_reference(benchmark):
    case = case_lib.sarcoma_5beam(spacing_mm=5.0)
    _optimise(benchmark, case, _sarcoma_goals(), "numpy", iterations=3)  # seconds per iteration: divide
