"""GPU benchmark and parity record: every case on every requested backend, side by side, one JSON file.

    python benchmarks/gpu_bench.py --backends cuda cupy cpp --out benchmarks/results/gpu-h100-2026-11-27.json

Cases (DESIGN 6, the GPU verification issue):
- sarcoma_5beam: the default sarcoma phantom (2.5 mm), 5-beam conformal IMRT;
- slab256_9beam: a 256^3 slab phantom at 2 mm, 9 conformal beams;
- vmat_180cp: one 180-control-point arc (2 degrees) on the sarcoma PTV;
- impt_3field: 3-field IMPT plan on the sarcoma PTV (spots built once, on cpp);
- compare: the full ``sfrt compare`` run (optimised IMRT) on the backend;
- optimise_crt: a whole fluence optimisation of the default sarcoma CRT component (default goals,
  60 L-BFGS-B iterations at most) through the matrix-free dose operators of the backend;
- rtplan_recompute: the default 5-beam plan written as a DICOM RT Plan (MLC sequenced), read back and
  recomputed (needs pydicom).

``seconds`` is the best of ``--repeat`` calls with the geometry cache warm (the repeated dose of one
geometry: arc refinement, normalisation, read-back); ``seconds_geometry_cache_cold`` one call after
clearing it (the first dose of a geometry; kernels already compiled).

Before timing, each backend's dose is compared with the NumPy reference on a small
heterogeneous photon case and a small proton case (max |difference| / max dose). Each
timing is the best of ``--repeat`` after a warm-up call (kernel compilation and first
touch excluded); the dose is copied back to the host, so the device has finished when the
clock stops. Ratios are cpp time / backend time on the same host.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cases as case_lib  # noqa: E402

import sfrt_engine as se  # noqa: E402
from sfrt_engine.kernels import geometry_cache  # noqa: E402


def _best_of(fn, repeat: int) -> float:
    fn()  # warm-up
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return float(best)


def _parity(names) -> dict:
    out = {}
    photon = case_lib.small_check()
    ref = se.compute_dose(photon.beams, photon.patient, backend="numpy").gy
    proton = case_lib.small_proton_check()
    ref_p = se.compute_dose(proton.beams, proton.patient, backend="numpy").gy
    for name in names:
        if name == "numpy":
            continue
        entry = {}
        got = se.compute_dose(photon.beams, photon.patient, backend=name).gy
        entry["photon_max_rel"] = float(np.abs(got - ref).max() / ref.max())
        try:
            got_p = se.compute_dose(proton.beams, proton.patient, backend=name).gy
            entry["proton_max_rel"] = float(np.abs(got_p - ref_p).max() / ref_p.max())
        except se.PlanError as exc:
            entry["proton_error"] = str(exc)
        entry["pass"] = all(v <= 1e-4 for k, v in entry.items() if k.endswith("_rel"))
        out[name] = entry
    return out


def _cases(selected):
    built = {}
    if "sarcoma_5beam" in selected:
        built["sarcoma_5beam"] = case_lib.sarcoma_5beam()
    if "slab256_9beam" in selected:
        built["slab256_9beam"] = case_lib.slab_9beam()
    if "vmat_180cp" in selected:
        patient = se.phantoms.sarcoma_thigh()
        arc = se.plan.conformal_arc(patient, "PTV", se.load_machine("photon_6mv"), start_deg=181.0,
                                    stop_deg=179.0, spacing_deg=2.0)
        built["vmat_180cp"] = case_lib.Case("vmat_180cp", patient, list(arc))
    if "impt_3field" in selected:
        available = se.available_backends()
        builder = "cuda" if available["cuda"][0] else "cpp"
        built["impt_3field"] = case_lib.impt_3field(backend=builder)
    if "rtplan_recompute" in selected:
        built["rtplan_recompute"] = _rtplan_case()
    return built


def _rtplan_case():
    """The default 5-beam plan through a DICOM RT Plan (write, sequence, read back)."""
    import tempfile

    case = case_lib.sarcoma_5beam()
    with tempfile.TemporaryDirectory() as tmp:
        path = se.io.write_rtplan(Path(tmp) / "RP.dcm", case.beams, case.patient, plan_label="CRT", fractions=1)
        data = se.io.read_rtplan(path, case.patient)
    return case_lib.Case("rtplan_recompute", case.patient, list(data.beams))


def _optimisation(names, iterations: int) -> list[dict]:
    """A whole optimisation of the default CRT component per backend; objective checked against cpp's."""
    from sfrt_engine.components import optimise_beams
    from sfrt_engine.optimise import default_goals

    case = case_lib.sarcoma_5beam()
    objectives = default_goals().objectives("crt", 3.0)
    rows = []
    for n in names:
        optimise_beams(case.beams, case.patient, objectives, backend=n, max_iterations=2)  # warm-up (JIT, caches)
        _, rec = optimise_beams(case.beams, case.patient, objectives, backend=n, max_iterations=iterations)
        rows.append({"case": "optimise_crt_sarcoma_2.5mm", "backend": n, "seconds": rec["seconds"],
                     "setup_seconds": rec["setup_seconds"], "iterations": rec["iterations"],
                     "evaluations": rec["evaluations"], "initial_objective": rec["initial_objective"],
                     "final_objective": rec["final_objective"],
                     "seconds_per_evaluation": (rec["seconds"] - rec["setup_seconds"]) / max(rec["evaluations"], 1)})
        print("BENCH " + json.dumps(rows[-1]), flush=True)
    base = next((r for r in rows if r["backend"] == "cpp"), None)
    for r in rows:
        if base:
            r["cpp_over_this"] = base["seconds"] / r["seconds"]
            r["final_objective_rel_to_cpp"] = (r["final_objective"] - base["final_objective"]) / base["final_objective"]
    return rows


def _describe(case) -> dict:
    d = {"case": case.name, "grid_zyx": list(case.patient.grid.shape_zyx),
         "spacing_mm": list(case.patient.grid.spacing_xyz_mm), "beams": len(case.beams)}
    d["beamlets_or_spots"] = int(sum(getattr(b, "n_beamlets", 0) or getattr(b, "n_spots", 0) for b in case.beams))
    return d


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=["cuda", "cupy", "cpp"])
    parser.add_argument("--cases", nargs="+",
                        default=["sarcoma_5beam", "slab256_9beam", "vmat_180cp", "impt_3field", "rtplan_recompute",
                                 "optimise_crt", "compare"])
    parser.add_argument("--optimiser-iterations", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args(argv)

    available = se.available_backends()
    names = [n for n in args.backends if available[n][0]]
    skipped = {n: available[n][1] for n in args.backends if not available[n][0]}
    device = "cpu"
    for n in ("cuda", "cupy"):
        if n in names:
            device = str(se.get_backend(n).describe().get("device", n))
            break
    record = {
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "engine_version": se.__version__, "device": device, "host": platform.node(),
        "cpu_count": os.cpu_count(), "backends": names, "unavailable": skipped,
        "backend_info": {n: {k: str(v) for k, v in se.get_backend(n).describe().items()} for n in names},
    }
    print(f"device: {device}; backends: {', '.join(names)}; unavailable: {skipped or 'none'}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record["parity"] = _parity(names)
    print("parity:", json.dumps(record["parity"]), flush=True)
    timings = record["timings"] = []

    def save():  # after every case, so a run cut short still leaves what it measured
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(record, indent=2))
        tmp.replace(out)

    save()
    for case in _cases(args.cases).values():
        print(f"case {case.name}", flush=True)
        desc = _describe(case)
        times = {}
        cold = {}
        for n in names:
            times[n] = _best_of(lambda n=n, case=case: se.compute_dose(case.beams, case.patient, backend=n),
                                args.repeat)
            geometry_cache.clear()  # the first dose of a geometry (the best-of above reuses the cache)
            start = time.perf_counter()
            se.compute_dose(case.beams, case.patient, backend=n)
            cold[n] = time.perf_counter() - start
        for n, t in times.items():
            row = dict(desc, backend=n, seconds=t, cpp_over_this=times["cpp"] / t if "cpp" in times else None,
                       seconds_geometry_cache_cold=cold[n])
            timings.append(row)
            print("BENCH " + json.dumps(row), flush=True)
        save()
    if "optimise_crt" in args.cases:
        timings.extend(_optimisation(names, args.optimiser_iterations))
        save()
    if "compare" in args.cases:
        for n in names:  # warm-up on a coarse grid: module loads, NVRTC and cupy's own kernels
            se.run_comparison(se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0), se.ComparisonSettings(backend=n))
        for n in names:
            start = time.perf_counter()
            se.run_comparison(se.phantoms.sarcoma_thigh(), se.ComparisonSettings(backend=n))
            t = time.perf_counter() - start
            timings.append({"case": "sfrt_compare_default", "backend": n, "seconds": t})
            print("BENCH " + json.dumps(timings[-1]), flush=True)
        base = next((r["seconds"] for r in timings if r["case"] == "sfrt_compare_default" and r["backend"] == "cpp"),
                    None)
        for r in timings:
            if r["case"] == "sfrt_compare_default" and base:
                r["cpp_over_this"] = base / r["seconds"]
    save()
    print(f"wrote {out}")
    return 0 if all(p.get("pass", False) for p in record["parity"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
