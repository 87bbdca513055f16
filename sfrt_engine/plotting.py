"""Figures a person would rather look at than read: dose slices with structure outlines."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["save_dose_slice"]


def save_dose_slice(path, dose_gy: np.ndarray, patient, z_index: int, structures=("PTV", "GTV", "FEMUR", "BODY"),
                    title: str = "", label: str = "Dose [Gy]") -> Path:
    """Write a PNG of an axial dose slice with structure outlines; written atomically.

    Parameters
    ----------
    path : str or Path
    dose_gy : ndarray [z, y, x]
    patient : Patient
    z_index : int
        Axial slice index.
    structures : sequence of str
        Outlines to draw, where present.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = patient.grid
    x = grid.axis_mm("x")
    y = grid.axis_mm("y")
    extent = (x[0] - 0.5 * grid.spacing_xyz_mm[0], x[-1] + 0.5 * grid.spacing_xyz_mm[0],
              y[-1] + 0.5 * grid.spacing_xyz_mm[1], y[0] - 0.5 * grid.spacing_xyz_mm[1])
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=110)
    ax.imshow(patient.hu[z_index], cmap="gray", vmin=-400, vmax=600, extent=extent)
    shown = np.ma.masked_less(dose_gy[z_index], 0.05 * float(dose_gy.max()))
    if "BODY" in patient.structures:  # dose in the surrounding air means nothing clinically
        shown = np.ma.masked_where(~patient.structures["BODY"][z_index], shown)
    im = ax.imshow(shown, cmap="jet", alpha=0.45, extent=extent, vmin=0.0, vmax=float(dose_gy.max()))
    colours = ["white", "magenta", "yellow", "cyan", "lime", "orange"]
    for colour, name in zip(colours, [s for s in structures if s in patient.structures]):
        mask = patient.structures[name][z_index]
        if mask.any():
            ax.contour(x, y, mask.astype(float), levels=[0.5], colors=colour, linewidths=1.0)
            ax.plot([], [], color=colour, label=name)
    ax.set_xlabel("x [mm] (patient left)")
    ax.set_ylabel("y [mm] (posterior)")
    ax.set_title(title or f"z = {grid.axis_mm('z')[z_index]:.1f} mm")
    ax.legend(loc="lower right", fontsize=7)
    fig.colorbar(im, ax=ax, label=label)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
