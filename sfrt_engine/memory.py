"""Memory guard: estimate a run's peak memory before computing, and refuse runs over a budget.

A fine grid grows memory with the cube of 1 / spacing: the built-in phantom has 0.56 million
voxels at 2.5 mm and 70 million at 0.5 mm. Rather than let such a run swap or be killed after
minutes, the command line estimates the peak resident memory first (:func:`estimate_peak_bytes`)
and refuses the run with the estimate and the fix when it exceeds the budget
(:func:`check_memory`).

The budget (:func:`memory_budget_bytes`) is, in order: an explicit size (``--max-memory 2GB``),
the environment variable ``SFRT_MAX_MEMORY``, or :data:`DEFAULT_BUDGET_FRACTION` of the memory
available now (``MemAvailable`` in /proc/meminfo, bounded by a cgroup limit where one is set).

The estimate is empirical: a fixed base (the interpreter, NumPy, SciPy, matplotlib and the
engine) plus bytes per voxel for the command, and per voxel and beam for photon and proton
beams. The coefficients were fitted to the peak resident set size (``/usr/bin/time -f %M``) of
``sfrt compare`` (imrt, vmat, impt) and ``sfrt dose`` on the sarcoma phantom at 5 to 1.5 mm with
the cpp backend (0.07 to 2.6 million voxels), and rounded up. Checked against runs not used in
the fit: ``sfrt compare --spacing 1`` (8.8 million voxels, imrt) peaked at 1.06 GB, estimate
1.25 GB; ``sfrt dose --spacing 2.5 --backend numpy`` 0.18 GB, estimate 0.22 GB. The estimate
errs on the safe side by about 10-25 %.
"""

from __future__ import annotations

import math
import os
import re

from .errors import MemoryBudgetError, PlanError

__all__ = ["ENV_VAR", "DEFAULT_BUDGET_FRACTION", "parse_size", "format_size", "available_memory_bytes",
           "memory_budget_bytes", "estimate_peak_bytes", "check_memory"]

#: Environment variable that sets the budget when --max-memory is not given.
ENV_VAR = "SFRT_MAX_MEMORY"
#: Share of the available memory a run may use by default.
DEFAULT_BUDGET_FRACTION = 0.8

#: Resident memory of the interpreter with the engine, NumPy, SciPy and matplotlib imported, and the
#: figures of a run [bytes] (the interpreter alone measured 117 MB; a 5 mm run 140 MB; rounded up).
BASE_BYTES = 150e6
#: Peak bytes per voxel of each command, beams aside (CT, masks, densities, the unit doses of each
#: component, physical dose and EQD2 of each arm, the alpha/beta map and temporaries).
BYTES_PER_VOXEL = {"compare": 90.0, "dose": 55.0}
#: Extra bytes per voxel and photon beam (or arc control point) held during a run: measured 2.35 for
#: 180 VMAT control points at 3 mm, 1.2 for 1 to 9 static beams at 2 mm.
PHOTON_BYTES_PER_VOXEL_BEAM = 2.5
#: Extra bytes per voxel and proton field, and a fixed part of the proton runs (spot and layer tables):
#: fitted to IMPT (6 fields) at 4 and 3 mm, 161 B per voxel and field plus 94 MB.
PROTON_BYTES_PER_VOXEL_BEAM = 170.0
PROTON_FIXED_BYTES = 100e6
#: Extra bytes per voxel and beam of the NumPy reference (float64 temporaries): measured 10 with
#: 5 beams at 2.5 mm.
NUMPY_BYTES_PER_VOXEL_BEAM = 12.0

_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4,
          "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
          "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}


def parse_size(text: str, what: str = "--max-memory") -> int:
    """``"2GB"`` -> 2_000_000_000 bytes.

    KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB and the single letters K, M, G, T
    powers of 1024; a bare number is bytes. Case and a space before the unit do not matter.
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).upper() if match else None
    if not match or unit not in _UNITS:
        raise PlanError(f"{what} {text!r}: expected a size such as 2GB, 512MB or 1.5GiB")
    value = float(match.group(1)) * _UNITS[unit]
    if not (math.isfinite(value) and value > 0):
        raise PlanError(f"{what} {text!r}: expected a size above zero")
    return int(value)


def format_size(n_bytes: float) -> str:
    """Bytes as a short decimal size, e.g. ``'1.2 GB'``."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes / 1e3:.0f} kB"


def _cgroup_free_bytes() -> float:
    """Memory left under a cgroup v2 or v1 limit, or inf when there is none."""
    pairs = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
             ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"))
    for limit_file, usage_file in pairs:
        try:
            with open(limit_file) as f:
                limit = f.read().strip()
            with open(usage_file) as f:
                usage = float(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or float(limit) >= 2**60:
            return math.inf
        return max(float(limit) - usage, 0.0)
    return math.inf


def available_memory_bytes() -> float:
    """Memory available to new allocations now [bytes]: MemAvailable, bounded by a cgroup limit."""
    available = math.inf
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = float(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if not math.isfinite(available):
        try:
            available = float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            available = math.inf
    return min(available, _cgroup_free_bytes())


def memory_budget_bytes(max_memory: str | None = None) -> float:
    """The budget [bytes]: ``max_memory``, else $SFRT_MAX_MEMORY, else 80 % of the available memory."""
    if max_memory is not None:
        return parse_size(max_memory, "--max-memory")
    env = os.environ.get(ENV_VAR)
    if env is not None and env.strip():
        return parse_size(env, ENV_VAR)
    return DEFAULT_BUDGET_FRACTION * available_memory_bytes()


def estimate_peak_bytes(n_voxels: int, photon_beams: int = 0, proton_beams: int = 0, backend: str = "cpp",
                        command: str = "compare") -> float:
    """Estimated peak resident (host) memory of a run [bytes].

    Parameters
    ----------
    n_voxels : int
        Voxels of the dose grid (the CT grid).
    photon_beams, proton_beams : int
        Photon beams (static fields, or arc control points) and proton fields the run computes,
        all components together.
    backend : str
        Backend name as resolved. GPU backends also hold arrays in device memory; this estimate
        is of host memory only.
    command : {"compare", "dose"}

    Returns
    -------
    float
        :data:`BASE_BYTES` + ``n_voxels`` x (bytes per voxel of the command + per beam of each kind),
        plus :data:`PROTON_FIXED_BYTES` when there are proton fields.
    """
    if command not in BYTES_PER_VOXEL:
        raise ValueError(f"command={command!r}: expected one of {', '.join(BYTES_PER_VOXEL)}")
    extra = NUMPY_BYTES_PER_VOXEL_BEAM if backend == "numpy" else 0.0
    per_voxel = (BYTES_PER_VOXEL[command] + photon_beams * (PHOTON_BYTES_PER_VOXEL_BEAM + extra)
                 + proton_beams * (PROTON_BYTES_PER_VOXEL_BEAM + extra))
    return BASE_BYTES + (PROTON_FIXED_BYTES if proton_beams else 0.0) + float(n_voxels) * per_voxel


def check_memory(estimate_bytes: float, budget_bytes: float, what: str, fix: str) -> None:
    """Raise :class:`MemoryBudgetError` when ``estimate_bytes`` exceeds ``budget_bytes``.

    ``what`` describes the run (grid, beams, backend); ``fix`` says how to bring it within budget.
    """
    if estimate_bytes > budget_bytes:
        raise MemoryBudgetError(
            f"{what} needs an estimated {format_size(estimate_bytes)} of memory, above the budget of "
            f"{format_size(budget_bytes)}; {fix}, or raise the budget with --max-memory SIZE or {ENV_VAR}")
