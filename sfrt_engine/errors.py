"""Exception hierarchy of sfrt-engine.

Every error raised on purpose by the engine derives from :class:`SfrtError`; each
leaf also derives from the builtin it resembles, so callers may catch either.
"""

from __future__ import annotations

__all__ = [
    "SfrtError",
    "GridError",
    "StructureError",
    "MachineDataError",
    "PlanError",
    "BackendUnavailableError",
    "DeviceMemoryError",
    "TrialDataError",
    "StudyFileError",
    "SchedulerUnreachableError",
    "OutputError",
    "ResultSetLockedError",
    "MemoryBudgetError",
]


class SfrtError(Exception):
    """Root of all sfrt-engine errors."""


class GridError(SfrtError, ValueError):
    """A grid, or an array that must live on a grid, is malformed."""


class StructureError(SfrtError, KeyError):
    """A named structure is missing or its mask is malformed."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class MachineDataError(SfrtError, ValueError):
    """A machine file is missing, malformed, or asked for outside its range."""


class PlanError(SfrtError, ValueError):
    """A beam or plan cannot be built from the given arguments."""


class BackendUnavailableError(SfrtError, RuntimeError):
    """A dose backend was asked for by name but cannot run here."""


class DeviceMemoryError(SfrtError, MemoryError):
    """The accelerator does not have the memory a computation needs."""


class TrialDataError(SfrtError, ValueError):
    """A trial table (lesion measurements, arms, toxicity, dosimetry) is malformed or inconsistent."""


class StudyFileError(SfrtError, ValueError):
    """A study file (or the cohort it names) is invalid; the message names the key and the line."""


class SchedulerUnreachableError(SfrtError, ConnectionError):
    """A Dask scheduler could not be reached within the connection timeout."""


class OutputError(SfrtError, OSError):
    """Results cannot be written where asked (an existing file, a read-only place, a foreign folder)."""


class ResultSetLockedError(OutputError):
    """Another run is writing the same result folder; the message names its process."""


class MemoryBudgetError(SfrtError, MemoryError):
    """A run's estimated peak memory exceeds the memory budget; the message gives the estimate and the fix."""
