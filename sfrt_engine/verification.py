"""Checking a recomputed plan against a reference dose: resampling, gamma, DVH differences, gamma map.

- :func:`resample_dose`: a dose on its own grid -> another grid, trilinear, 0 outside it.
- :func:`gamma_index`: global gamma (Low et al., Med Phys 25:656, 1998) by pymedphys' well-kept
  implementation (``pymedphys.gamma``), with the AAPM TG-218 (Miften et al., Med Phys 45:e53,
  2018) defaults: 3 % of the reference maximum, 2 mm, points below 10 % of that maximum left
  out, and sub-voxel interpolation of the evaluated dose (1/10 of the distance criterion).
- :func:`dvh_differences`: mean, D95 and D2 per structure, evaluated minus reference.
- :func:`save_gamma_map`: reference, recomputed and gamma on the axial slice of the
  reference maximum.

pymedphys is an optional dependency (extra ``gamma``); without it :func:`gamma_index` raises
an error that says how to install it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import SfrtError
from .evaluation import dose_statistics
from .grid import Grid

__all__ = ["GammaResult", "dvh_differences", "gamma_index", "resample_dose", "save_gamma_map"]


class MissingDependencyError(SfrtError, ImportError):
    """An optional package a feature needs is not installed."""


def _axes(grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return grid.axis_mm("z"), grid.axis_mm("y"), grid.axis_mm("x")


def resample_dose(dose_gy: np.ndarray, grid: Grid, target: Grid) -> np.ndarray:
    """Dose on ``grid`` -> ``target`` grid by trilinear interpolation; 0 outside ``grid``.

    Returns
    -------
    ndarray, shape ``target.shape_zyx``
    """
    d = np.asarray(dose_gy, dtype=float)
    if d.shape != tuple(grid.shape_zyx):
        raise ValueError(f"dose shape {d.shape} != grid shape {grid.shape_zyx}")
    axes = [a if a.size > 1 else np.array([a[0] - 0.5, a[0] + 0.5]) for a in _axes(grid)]
    values = d
    for axis, a in enumerate(_axes(grid)):
        if a.size == 1:  # a single plane: constant across its thickness
            values = np.repeat(values, 2, axis=axis)
    from scipy.interpolate import RegularGridInterpolator  # on first use, not at import (STYLE 1)

    interp = RegularGridInterpolator(axes, values, method="linear", bounds_error=False, fill_value=0.0)
    z, y, x = np.meshgrid(*_axes(target), indexing="ij")
    return interp(np.stack([z, y, x], axis=-1).reshape(-1, 3)).reshape(target.shape_zyx)


class GammaResult:
    """Gamma values and pass rate of one criterion.

    Attributes
    ----------
    gamma : ndarray [z, y, x]
        Gamma index; NaN where the reference is below the threshold.
    pass_rate_percent : float
        Percentage of evaluated points with gamma <= 1.
    dose_percent, distance_mm, threshold_percent : float
    n_points : int
        Points evaluated (reference >= threshold).
    """

    def __init__(self, gamma, dose_percent, distance_mm, threshold_percent):
        self.gamma = gamma
        valid = np.isfinite(gamma)
        self.n_points = int(valid.sum())
        self.pass_rate_percent = float(100.0 * np.mean(gamma[valid] <= 1.0)) if self.n_points else float("nan")
        self.dose_percent = float(dose_percent)
        self.distance_mm = float(distance_mm)
        self.threshold_percent = float(threshold_percent)

    @property
    def label(self) -> str:
        return f"{self.dose_percent:g}%/{self.distance_mm:g}mm"


def gamma_index(reference_gy: np.ndarray, evaluated_gy: np.ndarray, grid: Grid, dose_percent: float = 3.0,
                distance_mm: float = 2.0, threshold_percent: float = 10.0, interp_fraction: int = 10,
                max_gamma: float = 2.0) -> GammaResult:
    """Global gamma of ``evaluated_gy`` against ``reference_gy`` on one grid (module docstring).

    Parameters
    ----------
    reference_gy, evaluated_gy : ndarray [z, y, x]
    grid : Grid
    dose_percent : float
        Dose criterion, percent of the reference maximum.
    distance_mm : float
        Distance-to-agreement criterion [mm].
    threshold_percent : float
        Reference points below this percentage of the reference maximum are not evaluated.
    interp_fraction : int
        The evaluated dose is interpolated every ``distance_mm / interp_fraction``.
    max_gamma : float
        Search stops at this gamma (values above are reported as ``max_gamma``).

    Returns
    -------
    GammaResult
    """
    try:
        import pymedphys
    except ImportError:
        raise MissingDependencyError("the gamma index needs pymedphys: pip install 'sfrt-engine[gamma]' "
                                     "(or pip install pymedphys)") from None
    for label, value in (("dose_percent", dose_percent), ("distance_mm", distance_mm)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"gamma {label}={value!r}: expected a positive number")
    ref = np.asarray(reference_gy, dtype=float)
    ev = np.asarray(evaluated_gy, dtype=float)
    axes = _axes(grid)
    gamma = pymedphys.gamma(axes, ref, axes, ev, float(dose_percent), float(distance_mm),
                            lower_percent_dose_cutoff=float(threshold_percent), interp_fraction=int(interp_fraction),
                            max_gamma=float(max_gamma), local_gamma=False,
                            interp_algo="scipy")  # pymedphys' own interpolator needs numba (not a dependency)
    return GammaResult(np.asarray(gamma, dtype=float), dose_percent, distance_mm, threshold_percent)


def dvh_differences(evaluated_gy: np.ndarray, reference_gy: np.ndarray, structures) -> dict[str, dict[str, float]]:
    """Mean, D95 and D2 of each non-empty structure, evaluated, reference and their difference [Gy]."""
    out = {}
    for name in structures:
        mask = structures[name]
        if not np.any(mask):
            continue
        e = dose_statistics(evaluated_gy, mask, name)
        r = dose_statistics(reference_gy, mask, name)
        row = {}
        for key in ("mean_gy", "d95_gy", "d2_gy"):
            row[f"{key[:-3]}_recomputed_gy"] = e[key]
            row[f"{key[:-3]}_reference_gy"] = r[key]
            row[f"{key[:-3]}_difference_gy"] = e[key] - r[key]
        out[name] = row
    return out


def save_gamma_map(path, reference_gy: np.ndarray, evaluated_gy: np.ndarray, result: GammaResult, grid: Grid,
                   title: str = "") -> Path:
    """PNG of the reference dose, the recomputed dose and the gamma map on one axial slice; written atomically.

    The slice is the one holding the most evaluated points (reference above the threshold).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import save_figure

    counts = np.isfinite(result.gamma).sum(axis=(1, 2))
    iz = int(np.argmax(counts)) if counts.max() > 0 else int(np.argmax(reference_gy.max(axis=(1, 2))))
    x, y = grid.axis_mm("x"), grid.axis_mm("y")
    extent = (x[0] - 0.5 * grid.spacing_xyz_mm[0], x[-1] + 0.5 * grid.spacing_xyz_mm[0],
              y[-1] + 0.5 * grid.spacing_xyz_mm[1], y[0] - 0.5 * grid.spacing_xyz_mm[1])
    top = float(max(reference_gy.max(), evaluated_gy.max()))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), dpi=100)
    for ax, data, name in ((axes[0], reference_gy, "reference"), (axes[1], evaluated_gy, "recomputed")):
        im = ax.imshow(data[iz], cmap="jet", vmin=0.0, vmax=top, extent=extent)
        ax.set_title(f"{name} dose [Gy]")
        fig.colorbar(im, ax=ax, fraction=0.046)
    g = np.ma.masked_invalid(result.gamma[iz])
    im = axes[2].imshow(g, cmap="RdYlGn_r", vmin=0.0, vmax=2.0, extent=extent)
    axes[2].set_title(f"gamma {result.label} (>= {result.threshold_percent:g} %): "
                      f"{result.pass_rate_percent:.1f} % pass")
    fig.colorbar(im, ax=axes[2], fraction=0.046, label="gamma (> 1 fails)")
    for ax in axes:
        ax.set_xlabel("x [mm]")
        ax.set_ylabel("y [mm]")
    fig.suptitle(title or f"axial slice z = {grid.axis_mm('z')[iz]:.1f} mm")
    fig.tight_layout()
    return save_figure(fig, path)
