"""Memory guard (memory.py): sizes, budget, and the estimate against a measured peak.

Figures behind the coefficients (peak RSS from ``/usr/bin/time -f %M``, cpp backend, 2 shared cores;
sarcoma phantom, ``sfrt compare`` imrt unless noted):

======== ========== ========== ==========
spacing  voxels     measured   estimate
======== ========== ========== ==========
5 mm     70 200     140 MB     159 MB
2.5 mm   561 600    179 MB     220 MB
2 mm     1 102 500  239 MB     288 MB
1.5 mm   2 626 910  403 MB     478 MB
1 mm     8 823 750  1056 MB    1253 MB  (not used in the fit)
3 mm     323 700    296 MB     325 MB   (vmat, 180 control points)
3 mm     323 700    537 MB     609 MB   (impt, 6 fields)
======== ========== ========== ==========
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import sfrt_engine as se
from sfrt_engine.errors import MemoryBudgetError, PlanError
from sfrt_engine.memory import (
    ENV_VAR,
    check_memory,
    estimate_peak_bytes,
    format_size,
    memory_budget_bytes,
    parse_size,
)
from sfrt_engine.phantoms import sarcoma_thigh_grid


@pytest.mark.parametrize(("text", "n_bytes"), [
    ("2GB", 2_000_000_000), ("512MB", 512_000_000), ("1.5GiB", 3 * 2**29), ("64 mib", 64 * 2**20),
    ("2G", 2 * 2**30), ("1000", 1000), ("1e9", 1_000_000_000),
])
def test_parse_size(text, n_bytes):
    assert parse_size(text) == n_bytes


@pytest.mark.parametrize("text", ["", "lots", "2 GBytes", "-1GB", "0MB", "GB"])
def test_parse_size_rejects(text):
    with pytest.raises(PlanError, match="expected a size"):
        parse_size(text)


def test_budget_order(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "3GB")
    assert memory_budget_bytes("1GB") == 1e9  # the option wins
    assert memory_budget_bytes() == 3e9
    monkeypatch.delenv(ENV_VAR)
    assert 0 < memory_budget_bytes() < float("inf")


def test_check_memory_names_the_estimate_and_the_fix():
    check_memory(1e9, 2e9, "run", "use a coarser --spacing")
    with pytest.raises(MemoryBudgetError, match=r"run needs an estimated 3\.0 GB of memory, above the budget of "
                                                r"2\.0 GB; use a coarser --spacing, or raise the budget"):
        check_memory(3e9, 2e9, "run", "use a coarser --spacing")
    assert format_size(1.5e12) == "1.5 TB" and format_size(2e3) == "2 kB"


def test_estimate_grows_with_voxels_beams_protons_and_the_reference_backend():
    base = estimate_peak_bytes(10**6, 14, 0, "cpp")
    assert estimate_peak_bytes(2 * 10**6, 14, 0, "cpp") > base
    assert estimate_peak_bytes(10**6, 180, 0, "cpp") > base
    assert estimate_peak_bytes(10**6, 0, 6, "cpp") > base
    assert estimate_peak_bytes(10**6, 14, 0, "numpy") > base
    with pytest.raises(ValueError, match="command='plan'"):
        estimate_peak_bytes(10**6, 1, 0, "cpp", "plan")


def test_half_millimetre_phantom_is_estimated_honestly():
    # 70.6 million voxels: about 9 GB, which the 1 mm measurement (1.06 GB at 8.8 million) scales to 8.5 GB
    grid = sarcoma_thigh_grid(0.5)
    assert grid.size == 390 * 362 * 500
    assert 8.5e9 < estimate_peak_bytes(grid.size, 14, 0, "cpp", "compare") < 10e9


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmHWM from /proc/self/status")
def test_estimate_bounds_the_measured_peak(tmp_path):
    ok, reason = se.available_backends()["cpp"]
    if not ok:
        pytest.skip(f"cpp backend unavailable: {reason}")
    # VmHWM, the peak resident set of this process image (ru_maxrss would also count the forked parent)
    code = ("import re, tempfile; from sfrt_engine.cli import main; "
            "assert main(['dose', '--spacing', '4', '--backend', 'cpp', '--out', tempfile.mkdtemp() + '/o']) == 0; "
            "print(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1))")
    # outside the checkout, so the installed package (with its compiled modules) is the one measured
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    measured = int(run.stdout.strip().splitlines()[-1]) * 1024
    estimate = estimate_peak_bytes(sarcoma_thigh_grid(4).size, 5, 0, "cpp", "dose")
    assert measured <= estimate <= 1.5 * measured, (measured, estimate)
