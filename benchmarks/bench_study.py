"""Study throughput: jobs per hour for 1 and 2 local workers, and where a job's time goes.

Run (a synthetic cohort, every job a patient x technique, the default lattice and a full
schedule grid: vertex dose 8/10/12/15 Gy, 3-4 sessions, 15-20 fractions, both boost modes,
two alpha/beta sets):

    python benchmarks/bench_study.py --patients 6 --spacing 5 --workers 1 2
    python benchmarks/bench_study.py --patients 2 --spacing 2.5 --techniques imrt vmat impt --workers 1

Prints a table per worker count, the mean per-job breakdown (case build, vertex placement,
CRT dose, boost dose, schedule evaluation, storing) and one ``BENCH`` JSON line per run.
Each run starts from an empty output folder, so every job computes its dose.
CI runs ``test_study_benchmark_smoke`` once (one small job) to keep the script working.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import sfrt_engine as se
from sfrt_engine.study import LocalRunner, SerialRunner, load_study, run
from sfrt_engine.study.jobs import load_job

STAGES = ("case", "vertices", "crt_dose", "boost_dose", "evaluation", "store")
#: The protocol's full schedule grid (NCT06980259 ranges) as a study file section.
FULL_GRID = """
[schedules]
vertex_dose_gy = [8.0, 10.0, 12.0, 15.0]
vertex_sessions = [3, 4]
crt_fractions = [15, 16, 17, 18, 19, 20]
boost_mode = ["integrated", "separate"]

[alpha_beta]
defaults = {}
gtv10 = { GTV = 10.0 }
"""


def study_text(patients: int, spacing_mm: float, techniques, backend: str, seed: int = 1) -> str:
    names = ", ".join(f'"{t}"' for t in techniques)
    return (f'[study]\nname = "bench"\nbackend = "{backend}"\ntechniques = [{names}]\nunit_doses = true\n\n'
            f"[cohort.synthetic]\nn = {patients}\nseed = {seed}\nspacing_mm = {spacing_mm}\n" + FULL_GRID)


def measure(folder: Path, text: str, runner) -> dict:
    """Run the study in ``folder`` from scratch; wall time, jobs per hour and mean stage times."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    path = folder / "bench.toml"
    path.write_text(text)
    study = load_study(path)
    start = time.perf_counter()
    summary = run(study, runner, progress=False)
    wall = time.perf_counter() - start
    records = [load_job(study.output, job.key) for job in study.jobs()]
    done = [r for r in records if r["status"] == "done"]
    per_stage = {s: sum(r["timings_s"].get(s, 0.0) for r in done) / max(len(done), 1) for s in STAGES}
    per_technique: dict[str, list[dict]] = {}
    for job, r in zip(study.jobs(), records):
        if r["status"] == "done":
            per_technique.setdefault(job.technique, []).append(r["timings_s"])
    stages_by_technique = {t: {s: sum(x.get(s, 0.0) for x in v) / len(v) for s in STAGES}
                           for t, v in per_technique.items()}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"jobs": len(records), "done": summary.done, "failed": summary.failed, "wall_s": wall,
            "jobs_per_hour": 3600.0 * len(records) / wall, "rows": sum(len(r["rows"]) for r in done),
            "mean_job_s": {t: sum(s.values()) for t, s in stages_by_technique.items()}, "stages_s": per_stage,
            "stages_by_technique_s": stages_by_technique,
            "runner": summary.runner, "load_average_1min": load}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=6)
    parser.add_argument("--spacing", type=float, default=5.0, help="voxel size [mm]")
    parser.add_argument("--techniques", nargs="+", default=["imrt"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args(argv)
    text = study_text(args.patients, args.spacing, args.techniques, args.backend)
    with tempfile.TemporaryDirectory(prefix="bench_study_") as tmp:
        for workers in args.workers:
            result = measure(Path(tmp) / f"w{workers}", text, LocalRunner(workers))
            print(f"\n{workers} worker(s) [{result['runner']}]: {result['jobs']} jobs ({result['done']} done, "
                  f"{result['failed']} failed) in {result['wall_s']:.1f} s = {result['jobs_per_hour']:.0f} jobs/h; "
                  f"{result['rows']} rows; load average {result['load_average_1min']:.1f} on "
                  f"{os.cpu_count()} CPUs")
            print("  mean job [s]: " + ", ".join(f"{t} {s:.2f}" for t, s in result["mean_job_s"].items()))
            for technique, stages in result["stages_by_technique_s"].items():
                print(f"  {technique} stages [s]: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
            print("BENCH " + json.dumps({"bench": "study", "workers": workers, "patients": args.patients,
                                         "spacing_mm": args.spacing, "techniques": args.techniques,
                                         "machine": platform.node(), "engine": se.__version__, **result}))
    return 0


def test_study_benchmark_smoke(tmp_path):
    """One small job through the benchmark's own measurement (kept working in CI)."""
    result = measure(tmp_path / "smoke", study_text(1, 5.0, ["imrt"], "cpp").replace(
        "crt_fractions = [15, 16, 17, 18, 19, 20]", "crt_fractions = [20]"), SerialRunner())
    assert result["jobs"] == 1 and result["done"] == 1
    assert result["rows"] == 2 * 4 * 2 * 2 * 2  # ab sets x doses x sessions x modes x arms
    assert set(result["stages_s"]) == set(STAGES) and result["stages_s"]["crt_dose"] > 0


if __name__ == "__main__":
    raise SystemExit(main())
