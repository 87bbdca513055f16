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
engine) plus bytes per voxel for the command and per voxel and beam for the backend. The
coefficients were fitted to the peak resident set size (``/usr/bin/time -f %M``) of
``sfrt compare`` and ``sfrt dose`` on the sarcoma phantom at 5 to 1.5 mm with the cpp backend
(0.07 to 2.6 million voxels) and checked against a run at 1 mm (8.9 million voxels) that was not
used in the fit; see ``tests/test_memory.py`` for the figures. They are rounded up, so the
estimate errs on the safe side by 10-30 %.
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

#: Resident memory of the interpreter with the engine, NumPy, SciPy and matplotlib imported [bytes]
#: (measured 111-114 MiB; rounded up).
BASE_BYTES = 140e6
#: Peak bytes per voxel of each command (every per-voxel array alive at the peak: CT, masks,
#: densities, per-beam depth, the unit doses of each component, physical dose and EQD2 of each
#: arm, the alpha/beta map and temporaries). Measured slopes: compare 108-110 B, dose 68 B per
#: voxel between 2 and 1.5 mm.
BYTES_PER_VOXEL = {"compare": 125.0, "dose": 80.0}
#: Extra bytes per voxel and beam held during the dose computation (ray tables and footprints).
BYTES_PER_VOXEL_BEAM = {"numpy": 24.0, "cpp": 1.0, "cuda": 1.0, "cupy": 1.0}

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


def estimate_peak_bytes(n_voxels: int, n_beams: int, backend: str = "cpp", command: str = "compare") -> float:
    """Estimated peak resident memory of a run [bytes].

    Parameters
    ----------
    n_voxels : int
        Voxels of the dose grid (the CT grid).
    n_beams : int
        Beams (fields, or arc control points) the run computes, all components together.
    backend : str
        Backend name as resolved ("auto" counts as the compiled CPU backend). GPU backends hold
        their arrays in device memory as well; this is host memory only.
    command : {"compare", "dose"}
    """
    per_beam = BYTES_PER_VOXEL_BEAM.get(backend, BYTES_PER_VOXEL_BEAM["numpy"])
    return BASE_BYTES + n_voxels * (BYTES_PER_VOXEL[command] + per_beam * max(int(n_beams), 1))


def check_memory(estimate_bytes: float, budget_bytes: float, what: str, fix: str) -> None:
    """Raise :class:`MemoryBudgetError` when ``estimate_bytes`` exceeds ``budget_bytes``.

    ``what`` describes the run (grid, beams, backend); ``fix`` says how to bring it within budget.
    """
    if estimate_bytes > budget_bytes:
        raise MemoryBudgetError(
            f"{what} needs an estimated {format_size(estimate_bytes)} of memory, above the budget of "
            f"{format_size(budget_bytes)}; {fix}, or raise the budget with --max-memory SIZE or {ENV_VAR}")
