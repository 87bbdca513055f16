"""GPU benchmark and parity record: every case on every requested backend, side by side, one JSON file.

    python benchmarks/gpu_bench.py --backends cuda cupy cpp --out benchmarks/results/gpu-h100-2026-11-27.json

Cases (DESIGN 6, the GPU verification issue):
- sarcoma_5beam: the default sarcoma phantom (2.5 mm), 5-beam conformal IMRT;
- slab256_9beam: a 256^3 slab phantom at 2 mm, 9 conformal beams;
- vmat_180cp: one 180-control-point arc (2 degrees) on the sarcoma PTV;
- impt_3field: 3-field IMPT plan on the sarcoma PTV (spots built once, on cpp);
- compare: the full ``sfrt compare`` run (IMRT) on the backend.

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
        built["impt_3field"] = case_lib.impt_3field()
    return built


def _describe(case) -> dict:
    d = {"case": case.name, "grid_zyx": list(case.patient.grid.shape_zyx),
         "spacing_mm": list(case.patient.grid.spacing_xyz_mm), "beams": len(case.beams)}
    d["beamlets_or_spots"] = int(sum(getattr(b, "n_beamlets", 0) or getattr(b, "n_spots", 0) for b in case.beams))
    return d


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=["cuda", "cupy", "cpp"])
    parser.add_argument("--cases", nargs="+",
                        default=["sarcoma_5beam", "slab256_9beam", "vmat_180cp", "impt_3field", "compare"])
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
    record["parity"] = _parity(names)
    print("parity:", json.dumps(record["parity"]), flush=True)
    timings = []
    for case in _cases(args.cases).values():
        desc = _describe(case)
        times = {}
        for n in names:
            times[n] = _best_of(lambda n=n, case=case: se.compute_dose(case.beams, case.patient, backend=n),
                                args.repeat)
        for n, t in times.items():
            row = dict(desc, backend=n, seconds=t, cpp_over_this=times["cpp"] / t if "cpp" in times else None)
            timings.append(row)
            print("BENCH " + json.dumps(row), flush=True)
    if "compare" in args.cases:
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
    record["timings"] = timings
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")
    return 0 if all(p.get("pass", False) for p in record["parity"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
