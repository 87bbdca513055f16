"""Start-up time: a fresh interpreter importing ``sfrt_engine``, and building the ``sfrt`` parser.

Run:   pytest benchmarks/bench_startup.py --benchmark-only
CI:    pytest benchmarks --benchmark-disable   (each benchmark runs once, still checked)
Side by side, with ``-X importtime`` and the slowest modules (one ``BENCH`` JSON line per run):

    python benchmarks/bench_startup.py --repeat 5

Every measurement starts a new interpreter in a temporary folder outside the checkout, so the
installed package is imported and nothing already imported counts. The wall time includes the
interpreter's own start (``python -c pass``, reported alongside); ``-X importtime`` gives the
cumulative import time of ``sfrt_engine`` alone. Times are measured, never asserted: they depend
on the machine and its load (the 1-minute load average is reported).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

#: name -> code run by a fresh interpreter
SNIPPETS = {
    "python": "pass",
    "import": "import sfrt_engine",
    "parser": "from sfrt_engine.cli import build_parser; build_parser()",
}


def run_fresh(code: str, cwd: str, *flags: str) -> subprocess.CompletedProcess:
    """``python [flags] -c code`` in ``cwd``; raises if it fails."""
    return subprocess.run([sys.executable, *flags, "-c", code], cwd=cwd, check=True, capture_output=True, text=True)


def wall_s(code: str, cwd: str, repeat: int) -> list[float]:
    """Wall-clock seconds of ``repeat`` fresh interpreters running ``code``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run_fresh(code, cwd)
        times.append(time.perf_counter() - start)
    return times


def import_profile(cwd: str) -> tuple[float, list[tuple[float, float, str]]]:
    """``-X importtime`` of ``import sfrt_engine``: its cumulative seconds and every module as
    (self s, cumulative s, name), slowest cumulative first."""
    stderr = run_fresh("import sfrt_engine", cwd, "-X", "importtime").stderr
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:"):].split("|")
        rows.append((int(self_us) / 1e6, int(cumulative_us) / 1e6, name.strip()))
    total = next(c for _, c, name in reversed(rows) if name == "sfrt_engine")
    return total, sorted(rows, key=lambda r: -r[1])


def heavy_loaded(cwd: str) -> list[str]:
    """Top-level packages that ``import sfrt_engine`` loads beyond the standard library and numpy (private
    aliases such as ``__mp_main__`` left out)."""
    code = ("import sys; before = set(sys.modules); import sfrt_engine\n"
            "top = {m.split('.')[0] for m in set(sys.modules) - before}\n"
            "print(' '.join(sorted(m for m in top - set(sys.stdlib_module_names) - {'numpy', 'sfrt_engine'}\n"
            "                      if not m.startswith('_'))))")
    return run_fresh(code, cwd).stdout.split()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh interpreters per measurement (best is kept)")
    parser.add_argument("--top", type=int, default=15, help="slowest sfrt_engine imports to list")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as cwd:
        best = {name: min(wall_s(code, cwd, args.repeat)) for name, code in SNIPPETS.items()}
        profiles = [import_profile(cwd) for _ in range(args.repeat)]
        extra = heavy_loaded(cwd)
    cumulative = min(total for total, _ in profiles)
    rows = min(profiles, key=lambda p: p[0])[1]
    print(f"best of {args.repeat} fresh interpreters (load average {load:.1f} on {os.cpu_count()} CPUs):")
    print(f"  python -c pass               {best['python']:.3f} s")
    print(f"  import sfrt_engine           {best['import']:.3f} s wall, {cumulative:.3f} s by -X importtime")
    print(f"  sfrt parser (all commands)   {best['parser']:.3f} s")
    print(f"  other packages loaded by the import: {', '.join(extra) or 'none'}")
    print("slowest imports under sfrt_engine (cumulative / self [s]):")
    for self_s, cum_s, name in [r for r in rows if r[2].startswith("sfrt_engine")][:args.top]:
        print(f"  {cum_s:7.3f} {self_s:7.3f}  {name}")
    print("BENCH " + json.dumps({"bench": "startup", "repeat": args.repeat, "python_s": best["python"],
                                 "import_wall_s": best["import"], "import_importtime_s": cumulative,
                                 "parser_wall_s": best["parser"], "other_packages": extra,
                                 "load_average_1min": load, "machine": platform.node()}))
    return 0


def test_import_sfrt_engine(benchmark, tmp_path):
    """Fresh interpreter: ``import sfrt_engine``."""
    benchmark.pedantic(run_fresh, args=(SNIPPETS["import"], str(tmp_path)), rounds=5, iterations=1)


def test_build_sfrt_parser(benchmark, tmp_path):
    """Fresh interpreter: the ``sfrt`` parser with every subcommand's options (what ``sfrt --help`` costs)."""
    benchmark.pedantic(run_fresh, args=(SNIPPETS["parser"], str(tmp_path)), rounds=5, iterations=1)


def test_import_profile_reads_the_engine(tmp_path):
    """The ``-X importtime`` parser finds the engine and its subpackages (kept working in CI)."""
    total, rows = import_profile(str(tmp_path))
    names = {name for _, _, name in rows}
    assert {"sfrt_engine", "sfrt_engine.plan", "sfrt_engine.kernels", "numpy"} <= names
    assert total == max(c for _, c, name in rows if name.startswith("sfrt_engine"))


if __name__ == "__main__":
    raise SystemExit(main())
