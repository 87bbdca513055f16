"""Start-up: ``import sfrt_engine`` and the ``sfrt`` parser load no heavy library; ``sfrt compare`` loads
matplotlib only for the figures asked for and h5py only when it writes HDF5.

Each check runs in a fresh interpreter whose working directory is outside the checkout, so the
installed package is imported (as in CI) and nothing the test process imported counts. No timing is
asserted here; benchmarks/bench_startup.py measures the import time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import sfrt_engine as se

#: Libraries that ``import sfrt_engine`` must not load (each costs 0.05-1 s or more to import).
HEAVY = ("scipy", "matplotlib", "h5py", "pydicom", "pandas", "pyarrow", "statsmodels", "lifelines", "dask",
         "distributed", "cupy", "contourpy")

#: Modules imported one after the other in a child, after ``sfrt_engine``; each may add no heavy library.
LIGHT_MODULES = ("sfrt_engine", "sfrt_engine.cli", "sfrt_engine.plotting", "sfrt_engine.io", "sfrt_engine.trial",
                 "sfrt_engine.study", "sfrt_engine.verification", "sfrt_engine.cases", "sfrt_engine.imported_plans",
                 "sfrt_engine.kernels.backend_numpy", "sfrt_engine.optimise._influence")

FAST = ["--spacing", "5", "--backend", "cpp", "--optimiser-iterations", "3", "-q"]


def _child(code: str, cwd, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter in ``cwd`` (outside the checkout) with ``args`` as its argv."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], check=False, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _loaded(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_importing_the_engine_loads_no_heavy_library(tmp_path):
    code = f"""
        import importlib, json, sys
        heavy = {HEAVY!r}
        added = {{}}
        for name in {LIGHT_MODULES!r}:
            before = {{h for h in heavy if h in sys.modules}}
            importlib.import_module(name)
            added[name] = sorted(h for h in heavy if h in sys.modules and h not in before)
        from sfrt_engine.cli import build_parser
        build_parser()  # every subcommand registers its options, as `sfrt --help` does
        added["build_parser"] = sorted(h for h in heavy if h in sys.modules)
        print(json.dumps(added))
    """
    result = _child(code, tmp_path)
    assert result.returncode == 0, result.stderr
    added = _loaded(result.stdout)
    assert list(added) == [*LIGHT_MODULES, "build_parser"]
    assert {name: mods for name, mods in added.items() if mods} == {}


def test_the_lazy_imports_work_in_a_fresh_interpreter(tmp_path):
    """The functions that import scipy on first use give the closed forms they implement."""
    code = """
        import json, math
        import numpy as np
        import sfrt_engine as se
        from sfrt_engine.machines.photon import reference_field_lateral_integral
        from sfrt_engine.kernels._task import _erf_profiles
        out = {}
        # one component, field half-width h at depth 0 with SSD = SAD: L = erf(h / (sqrt2 s))^2
        out["lateral"] = float(reference_field_lateral_integral(np.ones((1, 1)), np.full((1, 1), 4.0), 20.0, 1000.0,
                                                                1000.0, np.zeros(1))[0])
        out["lateral_ref"] = math.erf(10.0 / (math.sqrt(2.0) * 4.0)) ** 2
        # one beamlet [-1, 1] mm, node at 0, sigma 1 mm: P = erf(1 / sqrt2)
        out["profile"] = float(_erf_profiles(np.zeros(1), np.array([-1.0, 1.0]), np.ones(1))[0, 0, 0])
        out["profile_ref"] = math.erf(1.0 / math.sqrt(2.0))
        # gEUD with a = 1 is the mean dose
        out["geud"] = se.biology.geud(np.array([1.0, 2.0, 6.0]), np.ones(3, dtype=bool), 1.0)
        print(json.dumps(out))
    """
    result = _child(code, tmp_path)
    assert result.returncode == 0, result.stderr
    out = _loaded(result.stdout)
    assert out["lateral"] == pytest.approx(out["lateral_ref"], rel=1e-12)
    assert out["profile"] == pytest.approx(out["profile_ref"], rel=1e-12)
    assert out["geud"] == pytest.approx(3.0, rel=1e-12)


_COMPARE = """
    import json, sys
    from sfrt_engine.cli import main
    code = main(sys.argv[1:])
    print(json.dumps({{"code": code, "loaded": sorted(h for h in {heavy!r} if h in sys.modules)}}))
"""


def test_compare_without_figures_writes_no_png_and_loads_no_plotting_or_hdf5(tmp_path):
    ok, reason = se.available_backends()["cpp"]
    if not ok:
        pytest.skip(f"cpp backend unavailable: {reason}")
    out = tmp_path / "run"
    result = _child(_COMPARE.format(heavy=HEAVY), tmp_path, "compare", *FAST, "--plots", "none", "--out", str(out))
    assert result.returncode == 0, result.stderr
    run = _loaded(result.stdout)
    assert run["code"] == 0
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "report.json"]
    # the run needs scipy (phantom, optimiser); it draws nothing and writes no HDF5 or DICOM
    assert "scipy" in run["loaded"]
    assert not {"matplotlib", "h5py", "pydicom", "contourpy"} & set(run["loaded"]), run["loaded"]


def test_an_unknown_figure_name_is_a_usage_error_naming_the_choices(tmp_path):
    out = tmp_path / "never"
    result = _child(_COMPARE.format(heavy=HEAVY), tmp_path, "compare", *FAST, "--plots", "dose,slices",
                    "--out", str(out))
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last == ("sfrt compare: error: argument --plots: plots 'dose,slices': unknown 'slices'; expected 'all', "
                    "'none' or a comma-separated list of dose, eqd2, difference, profile, dvh")
    assert "Traceback" not in result.stderr
    assert not out.exists()
