"""Dose statistics per structure (DVH points)."""

from __future__ import annotations

import numpy as np

from .errors import StructureError

__all__ = ["dose_statistics", "STAT_KEYS", "cumulative_histogram", "sfrt_metrics"]

#: Keys of :func:`dose_statistics`, in report order.
STAT_KEYS = ("mean_gy", "min_gy", "max_gy", "d2_gy", "d5_gy", "d50_gy", "d95_gy", "d98_gy")


def dose_statistics(dose_gy: np.ndarray, mask: np.ndarray, name: str = "structure") -> dict[str, float]:
    """Mean, min, max and D2/D5/D50/D95/D98 of the dose inside a mask [Gy].

    ``Dx`` is the minimum dose received by the hottest ``x`` % of the structure's
    voxels (all voxels of equal volume): the ``(100 - x)``-th percentile of the
    voxel doses, linearly interpolated between voxels.

    Parameters
    ----------
    dose_gy : ndarray [z, y, x]
    mask : bool ndarray [z, y, x]
    name : str
        For error messages.
    """
    mask = np.asarray(mask)
    if mask.shape != dose_gy.shape:
        raise StructureError(f"structure {name!r}: mask shape {mask.shape} != dose shape {dose_gy.shape}")
    values = np.asarray(dose_gy)[mask]
    if values.size == 0:
        raise StructureError(f"structure {name!r} is empty; no dose statistics can be computed")
    d2, d5, d50, d95, d98 = np.percentile(values, [98.0, 95.0, 50.0, 5.0, 2.0])
    return {
        "mean_gy": float(values.mean()),
        "min_gy": float(values.min()),
        "max_gy": float(values.max()),
        "d2_gy": float(d2),
        "d5_gy": float(d5),
        "d50_gy": float(d50),
        "d95_gy": float(d95),
        "d98_gy": float(d98),
    }


def cumulative_histogram(dose_gy: np.ndarray, mask: np.ndarray, bins_gy: np.ndarray) -> np.ndarray:
    """Cumulative dose-volume histogram: percent of the structure receiving >= each bin dose."""
    values = np.asarray(dose_gy)[mask]
    if values.size == 0:
        return np.zeros(len(bins_gy))
    values = np.sort(values)
    return 100.0 * (values.size - np.searchsorted(values, bins_gy, side="left")) / values.size


def sfrt_metrics(dose_gy: np.ndarray, structures, target: str = "GTV") -> dict[str, float]:
    """Peak (VERTICES mean), valley (VALLEY mean), PVDR, target D10/D90 and D50 [Gy or ratio].

    Dx of the target as in :func:`dose_statistics` (``D10`` = 90th percentile).
    """
    peak = float(np.asarray(dose_gy)[structures["VERTICES"]].mean())
    valley = float(np.asarray(dose_gy)[structures["VALLEY"]].mean())
    t = np.asarray(dose_gy)[structures[target]]
    d10, d50, d90 = np.percentile(t, [90.0, 50.0, 10.0])
    return {
        "peak_gy": peak,
        "valley_gy": valley,
        "pvdr": peak / valley if valley > 0 else float("inf"),
        "d10_d90": float(d10 / d90) if d90 > 0 else float("inf"),
        "gtv_d50_gy": float(d50),
    }
