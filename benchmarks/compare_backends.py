"""Time every available backend side by side on the same cases, in one run.

Prints a table and one JSON line per (case, backend) run, prefixed ``BENCH ``:

    python benchmarks/compare_backends.py                      # default cases, all backends
    python benchmarks/compare_backends.py --cases water100 --backends cpp numpy --repeat 5
    python benchmarks/compare_backends.py --cases impt3 arc90 --backends cpp numpy   # protons, VMAT
    python benchmarks/compare_backends.py --cases op-sarcoma op-water100 --backends cpp numpy   # operators

Before timing, each backend is checked against the NumPy reference on a small
heterogeneous photon case, and on a proton case when a proton case is timed
(max |difference| <= 1e-4 of the maximum dose); a backend that
fails the check is reported and not timed. Times are wall-clock seconds of
``compute_dose`` after one warm-up call (compilation and first-touch excluded),
best of ``--repeat``; the result is copied back to the host, so GPU work is
finished when the clock stops. Ratios are numpy time / backend time.

With each dose case comes its roofline (benchmarks/roofline.py): the work the compiled kernels do,
counted by the model of sfrt_engine/kernels/work_model.py from the case's geometry (voxel-beam pairs in
and out of reach, erf and exp calls, beamlet terms, flops, bytes, arithmetic intensity); the achieved
GFLOP/s of each compiled backend against the machine's model peak and the attainable peak measured at
the start (benchmarks/machine_peak.py); and the cpp backend timed on 1 thread and on every core.
``--no-roofline`` leaves all of that out.

The ``op-*`` cases time the dose operators of inverse planning instead (sfrt_engine.optimise):
one iteration = ``forward(w)`` + ``adjoint(r)`` on the case's BODY voxels, after building the
operator once (its set-up time is printed apart); the parity check then compares the operators'
forward and adjoint with the NumPy reference on the small photon case.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cases as case_lib  # noqa: E402
import roofline  # noqa: E402

import sfrt_engine as se  # noqa: E402
from sfrt_engine.kernels import geometry_cache  # noqa: E402
from sfrt_engine.kernels.work_model import dose_work  # noqa: E402

CASES = {
    "sarcoma": case_lib.sarcoma_5beam,
    "water100": case_lib.water_sphere_5beam,
    "slab256": case_lib.slab_9beam,
    "impt3": case_lib.impt_3field,  # the sarcoma case with a 3-field IMPT plan
    "arc90": case_lib.arc_90cp,  # the sarcoma case with a 90-control-point arc
    # dose operators (forward + adjoint per iteration) of inverse planning
    "op-sarcoma": case_lib.sarcoma_5beam,
    "op-water100": case_lib.water_sphere_5beam,
    "check": case_lib.small_check,  # the small parity-check case (seconds, for smoke tests)
}
OPERATOR_CASES = {"op-sarcoma", "op-water100"}
PROTON_CASES = {"impt3"}
PARITY_TOL = 1e-4  # of the maximum dose (DESIGN 6)


def threads_of(backend) -> int:
    info = backend.describe() if hasattr(backend, "describe") else {}
    return int(info.get("threads", 1))


def device_of(name: str) -> str:
    if name in ("cuda", "cupy"):
        backend = se.get_backend(name)
        info = backend.describe()
        return str(info.get("device", "gpu"))
    return f"{platform.processor() or platform.machine()} x{os.cpu_count()}"


def check_parity(names, case=None) -> dict[str, float]:
    """Max |backend - numpy| / max dose of each compiled backend on ``case`` (default: the photon check)."""
    case = case or case_lib.small_check()
    ref = se.compute_dose(case.beams, case.patient, backend="numpy").gy
    errors = {}
    for name in names:
        if name == "numpy":
            continue
        got = se.compute_dose(case.beams, case.patient, backend=name).gy
        errors[name] = float(np.abs(got - ref).max() / ref.max())
    return errors


def requested_backends(requested) -> list[str] | None:
    """The backends to time: ``requested``, or every available one; None (after saying why on
    stderr) when a requested backend cannot run here."""
    status = se.available_backends()
    names = list(requested or [n for n, (ok, _) in status.items() if ok])
    for n in names:
        ok, reason = status.get(n, (False, "no such backend"))
        if not ok:
            print(f"backend {n!r} unavailable: {reason}", file=sys.stderr)
            return None
    return names


def time_operator(case, name: str, repeat: int) -> tuple[float, float]:
    """(best seconds of one forward + adjoint iteration, set-up seconds) of the dose operator on the BODY."""
    from sfrt_engine.optimise import dose_operator  # noqa: PLC0415

    start = time.perf_counter()
    op = dose_operator(case.beams, case.patient, voxels=case_lib.operator_voxels(case), backend=name,
                       mode="matrix-free")
    setup = time.perf_counter() - start
    rng = np.random.default_rng(1)
    w, r = op.weights0 * rng.uniform(0.5, 1.5, op.n_weights), rng.uniform(-0.5, 1.0, op.n_voxels)
    op.adjoint(r)  # warm-up
    np.asarray(op.forward(w).sum().item())
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        dose = op.forward(w)
        op.adjoint(r)  # returns the gradient on the host: GPU work is finished
        float(dose.sum())
        best = min(best, time.perf_counter() - start)
    return float(best), setup


def time_backend(case, name: str, repeat: int) -> float:
    se.compute_dose(case.beams, case.patient, backend=name)  # warm-up: compilation, first touch
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        se.compute_dose(case.beams, case.patient, backend=name)
        best = min(best, time.perf_counter() - start)
    return float(best)


def time_cpp_scaling(case, threads: int, repeat: int) -> tuple[float, float]:
    """Best seconds of ``compute_dose`` on the cpp backend on 1 thread and on ``threads``, the two
    timed alternately (so a change in the machine's load reaches both alike), after one warm-up each."""
    cpp = se.get_backend("cpp")
    counts = (1, threads)
    best = dict.fromkeys(counts, np.inf)
    for n in counts:
        with cpp.limit_threads(n):
            se.compute_dose(case.beams, case.patient, backend="cpp")
    for _ in range(repeat):
        for n in counts:
            with cpp.limit_threads(n):
                start = time.perf_counter()
                se.compute_dose(case.beams, case.patient, backend="cpp")
                best[n] = min(best[n], time.perf_counter() - start)
    return float(best[1]), float(best[threads])


def cpp_traces_rays(case) -> bool:
    """Whether a repeated ``compute_dose`` on the cpp backend still traces ray tables: False when the
    geometry cache serves every lookup of the call (ray tables, density, scatter profiles), True when
    it misses (cache off or too small for the case)."""
    se.compute_dose(case.beams, case.patient, backend="cpp")
    before = geometry_cache.stats()["misses"]
    se.compute_dose(case.beams, case.patient, backend="cpp")
    return geometry_cache.stats()["misses"] > before


def roofline_report(case, times: dict, machine: dict, repeat: int) -> dict[str, dict]:
    """Print the case's counted work, its roofline rows and the cpp thread scaling; return the JSON
    fields of each timed backend (numpy has none: the model counts the compiled kernels' work)."""
    compiled = [n for n in times if n != "numpy"]
    if not compiled:
        return {}
    targets = {n: "gpu" if n in roofline.GPU_BACKENDS else "cpu" for n in compiled}
    # the GPU backends trace every call; the cpp backend reuses the geometry cache's ray tables
    work = {t: dose_work(case.beams, case.patient, target=t, ray_trace=t == "gpu" or cpp_traces_rays(case))
            for t in sorted(set(targets.values()))}
    for line in roofline.work_lines(work["cpu" if "cpu" in work else "gpu"]):
        print(line)
    cores = machine["cpu"]["cores"]
    extra, rows = {}, {}
    for n in compiled:
        w = work[targets[n]]
        if targets[n] == "gpu":
            if "gpu" not in machine:
                continue
            rows[n] = [roofline.roofline_row(w, times[n], 1, machine["gpu"], 1)]
            extra[n] = {"work": w.as_dict(), "roofline": rows[n]}
            continue
        one, many = time_cpp_scaling(case, cores, repeat)
        rows[n] = [roofline.roofline_row(w, many, cores, machine["cpu"], cores),
                   roofline.roofline_row(w, one, 1, machine["cpu"], cores)]
        extra[n] = {"work": w.as_dict(), "roofline": rows[n],
                    "thread_scaling": roofline.scaling_record(one, many, cores)}
    for line in roofline.roofline_lines(rows):
        print(line)
    if "cpp" in extra:
        print(roofline.scaling_line(extra["cpp"]["thread_scaling"]))
    return extra


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=["sarcoma", "water100"], choices=sorted(CASES))
    parser.add_argument("--backends", nargs="+", default=None, help="default: every available backend")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reference-max-voxels", type=int, default=2_000_000,
                        help="skip the numpy reference above this many voxels (it is slow)")
    parser.add_argument("--json-out", default=None, help="also write all results to this JSON file")
    parser.add_argument("--no-roofline", action="store_true",
                        help="leave out the counted work, the peaks and the thread scaling")
    parser.add_argument("--blas-size", type=int, default=roofline.machine_peak.BLAS_SIZE,
                        help="matrix size of the attainable-peak BLAS products")
    args = parser.parse_args(argv)

    names = requested_backends(args.backends)
    if names is None:
        return 2
    checks = [case_lib.small_check()]
    if PROTON_CASES & set(args.cases):
        checks.append(case_lib.small_proton_check())
    parity = {}
    for check in checks:
        for n, err in check_parity(names, check).items():
            print(f"parity {n} vs numpy on {check.name}: max |diff| = {err:.2e} of max dose")
            parity[n] = max(parity.get(n, 0.0), err)
    if OPERATOR_CASES & set(args.cases):
        for n in names:
            if n != "numpy":
                err = case_lib.operator_parity(n)
                print(f"operator parity {n} vs numpy (forward and adjoint): max |diff| = {err:.2e} of max")
                parity[n] = max(parity.get(n, 0.0), err)
    bad = [n for n, err in parity.items() if not err <= PARITY_TOL]
    names = [n for n in names if n not in bad]
    if bad:
        print(f"NOT timed (parity above {PARITY_TOL:g}): {', '.join(bad)}", file=sys.stderr)

    machine = None
    if not args.no_roofline:
        machine = roofline.measure_machine(names, args.blas_size)
        print("\n".join(roofline.machine_lines(machine)))

    results = []
    for key in args.cases:
        case = CASES[key]()
        desc = case.describe()
        times, setups = {}, {}
        operator = key in OPERATOR_CASES
        if operator:
            desc = dict(desc, case=f"{key}:{desc['case']}", what="forward + adjoint per iteration",
                        voxels_evaluated=int(case_lib.operator_voxels(case).sum()))
        for n in names:
            if n == "numpy" and case.patient.grid.size > args.reference_max_voxels:
                continue
            if operator:
                times[n], setups[n] = time_operator(case, n, 1 if n == "numpy" else args.repeat)
            else:
                times[n] = time_backend(case, n, 1 if n == "numpy" else args.repeat)
        print(f"\n{desc['case']}: grid {desc['grid_zyx']} (z,y,x) at {desc['spacing_mm']} mm, "
              f"{desc['beams']} beams, {case.n_spots or case.n_beamlets} {case.units}"
              + (f", forward + adjoint on {desc['voxels_evaluated']} voxels" if operator else ""))
        print(f"  {'backend':8s} {'threads':>7s} {'time [s]':>10s} {'numpy/this':>11s}")
        rows = []
        for n, t in times.items():
            ratio = times["numpy"] / t if "numpy" in times else float("nan")
            backend = se.get_backend(n)
            row = dict(desc, backend=n, device=device_of(n), threads=threads_of(backend), seconds=t,
                       speedup_vs_numpy=ratio, parity_max_rel=parity.get(n, 0.0))
            if n in setups:
                row["setup_seconds"] = setups[n]
            rows.append(row)
            extra = f"   (set-up {setups[n]:.2f} s)" if n in setups else ""
            print(f"  {n:8s} {row['threads']:7d} {t:10.3f} {ratio:11.1f}{extra}")
        if machine is not None and operator:
            print("  roofline: not modelled for the dose operators (they evaluate cached per-point factors)")
        elif machine is not None:
            fields = roofline_report(case, times, machine, args.repeat)
            for row in rows:
                row.update(fields.get(row["backend"], {}), machine=machine)
        results.extend(rows)
        for n in names:
            if n in times:
                print("BENCH " + json.dumps([r for r in results if r["case"] == desc["case"] and r["backend"] == n][0]))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
