"""pytest-benchmark suite of a VMAT arc: the default sarcoma case with a 90-control-point arc.

Run:   pytest benchmarks/bench_arc.py --benchmark-only
CI:    pytest benchmarks --benchmark-disable   (each benchmark runs once, still checked)
Side by side, one run (cpp time, numpy/cpp ratio, one ``BENCH`` JSON line per run):

    python benchmarks/bench_arc.py --repeat 3

Each compiled backend is first checked against the NumPy reference on a small arc
(DESIGN 6: within 1e-4 of the maximum dose). The arc is 181 -> 179 deg cw every 4 deg
(90 control points), 5 mm leaves, 2.5 x 5 mm beamlets, on the 2.5 mm sarcoma phantom.
The NumPy reference takes minutes on that grid, so the numpy/cpp ratio is measured
on the same arc over the phantom at ``REFERENCE_SPACING_MM``, both backends timed in
the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cases as case_lib  # noqa: E402
import compare_backends  # noqa: E402

import sfrt_engine as se  # noqa: E402

FAST_BACKENDS = ["cpp", "cuda", "cupy"]
#: Voxel size [mm] of the grid on which numpy and the compiled backends are timed side by side.
REFERENCE_SPACING_MM = 5.0
PARITY_TOL = 1e-4  # of the maximum dose (DESIGN 6)


def small_arc() -> case_lib.Case:
    """A small non-coplanar arc with a rotated collimator, to check a backend before timing."""
    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=8.0)
    arc = se.plan.conformal_arc(patient, "PTV", se.load_machine("photon_6mv"), start_deg=200.0, stop_deg=160.0,
                                spacing_deg=36.0, couch_deg=10.0, collimator_deg=15.0)
    return case_lib.Case("sarcoma_arc10_8mm", patient, arc)


@pytest.fixture(scope="module")
def reference_small():
    case = small_arc()
    return case, se.compute_dose(case.beams, case.patient, backend="numpy").gy




@pytest.mark.parametrize("name", FAST_BACKENDS)
def test_sarcoma_arc90(benchmark, name, reference_small):
    case_lib.require_backend(name)
    assert case_lib.max_rel_difference(*reference_small, name) <= PARITY_TOL
    case = case_lib.arc_90cp()
    assert len(case.beams) == 90
    benchmark.extra_info.update(case.describe())
    dose = benchmark(se.compute_dose, case.beams, case.patient, backend=name)
    assert dose.backend == name and dose.max_gy > 0


@pytest.mark.parametrize("name", ["numpy", *FAST_BACKENDS])
def test_sarcoma_arc90_reference_grid(benchmark, name):
    """The same arc on the coarser grid, where the numpy reference runs in seconds: the ratio's pair."""
    case_lib.require_backend(name)
    case = case_lib.arc_90cp(spacing_mm=REFERENCE_SPACING_MM)
    benchmark.extra_info.update(case.describe())
    dose = benchmark.pedantic(se.compute_dose, args=(case.beams, case.patient), kwargs={"backend": name},
                              rounds=1, iterations=1)
    assert dose.max_gy > 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=None, help="default: every available backend")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per backend (best is reported)")
    parser.add_argument("--reference-spacing", type=float, default=REFERENCE_SPACING_MM,
                        help="voxel size [mm] of the grid where numpy is timed beside the others")
    parser.add_argument("--json-out", default=None, help="also write all results to this JSON file")
    args = parser.parse_args(argv)

    names = compare_backends.requested_backends(args.backends)
    if names is None:
        return 2
    check = small_arc()
    for n, err in compare_backends.check_parity(names, check).items():
        print(f"parity {n} vs numpy on {check.name}: max |diff| = {err:.2e} of max dose")
        if not err <= PARITY_TOL:
            print(f"NOT timed (parity above {PARITY_TOL:g}): {n}", file=sys.stderr)
            names.remove(n)

    results = []
    full, coarse = case_lib.arc_90cp(), case_lib.arc_90cp(spacing_mm=args.reference_spacing)
    for case in (coarse, full):
        desc = case.describe()
        start = time.perf_counter()
        se.plan.conformal_arc(case.patient, "PTV", se.load_machine("photon_6mv"))
        build_s = time.perf_counter() - start
        times = {}
        for n in names:
            if n == "numpy" and case is full:
                continue  # minutes; the ratio comes from the coarse grid
            times[n] = compare_backends.time_backend(case, n, 1 if n == "numpy" else args.repeat)
        print(f"\n{desc['case']}: grid {desc['grid_zyx']} (z,y,x) at {desc['spacing_mm']} mm, "
              f"{desc['beams']} control points, {desc['beamlets']} beamlets, arc built in {build_s:.2f} s")
        print(f"  {'backend':8s} {'threads':>7s} {'time [s]':>10s} {'numpy/this':>11s}")
        for n, t in times.items():
            ratio = times["numpy"] / t if "numpy" in times else None  # null in JSON: not measured here
            row = dict(desc, backend=n, device=compare_backends.device_of(n),
                       threads=compare_backends.threads_of(se.get_backend(n)), seconds=t, speedup_vs_numpy=ratio,
                       arc_build_seconds=build_s, repeat=1 if n == "numpy" else args.repeat)
            results.append(row)
            print(f"  {n:8s} {row['threads']:7d} {t:10.3f} " + (f"{ratio:11.1f}" if ratio else f"{'-':>11s}"))
        for row in results:
            if row["case"] == desc["case"]:
                print("BENCH " + json.dumps(row))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
