"""Figures a person would rather look at than read: dose slices with structure outlines."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._files import atomic_path

__all__ = ["save_dose_slice", "save_arm_slices", "save_histograms"]


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
    return _atomic_savefig(fig, path)


def _atomic_savefig(fig, path) -> Path:
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def save_arm_slices(path, doses_by_arm: dict, patient, z_index: int, vertex_centers_xyz_mm=None,
                    vertex_radius_mm: float = 0.0, label: str = "EQD2 [Gy]", title: str = "") -> Path:
    """Side-by-side axial slices, one per arm, on a common colour scale, with vertex and target outlines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = patient.grid
    x, y = grid.axis_mm("x"), grid.axis_mm("y")
    hx, hy = 0.5 * grid.spacing_xyz_mm[0], 0.5 * grid.spacing_xyz_mm[1]
    extent = (x[0] - hx, x[-1] + hx, y[-1] + hy, y[0] - hy)
    vmax = max(float(np.percentile(d[patient.structures["BODY"]] if "BODY" in patient.structures else d, 99.9))
               for d in doses_by_arm.values())
    fig, axes = plt.subplots(1, len(doses_by_arm), figsize=(5.2 * len(doses_by_arm) + 1.0, 5.0), dpi=110,
                             squeeze=False)
    z_mm = grid.axis_mm("z")[z_index]
    for ax, (arm, dose) in zip(axes[0], doses_by_arm.items()):
        ax.imshow(patient.hu[z_index], cmap="gray", vmin=-400, vmax=600, extent=extent)
        shown = np.ma.masked_less(dose[z_index], 0.02 * vmax)
        if "BODY" in patient.structures:
            shown = np.ma.masked_where(~patient.structures["BODY"][z_index], shown)
        im = ax.imshow(shown, cmap="jet", alpha=0.5, extent=extent, vmin=0.0, vmax=vmax)
        for name, colour in (("GTV", "magenta"), ("FEMUR", "yellow"), ("VERTICES", "white")):
            if name in patient.structures and patient.structures[name][z_index].any():
                ax.contour(x, y, patient.structures[name][z_index].astype(float), levels=[0.5], colors=colour,
                           linewidths=1.0)
                ax.plot([], [], color=colour, label=name)
        if vertex_centers_xyz_mm is not None:
            for cx, cy, cz in vertex_centers_xyz_mm:
                dz = abs(cz - z_mm)
                if dz < vertex_radius_mm:
                    rr = np.sqrt(vertex_radius_mm ** 2 - dz ** 2)
                    ax.add_patch(matplotlib.patches.Circle((cx, cy), rr, fill=False, ls="--", ec="white", lw=0.8))
        ax.set_title(f"{arm}: {label}")
        ax.set_xlabel("x [mm]")
        ax.set_ylabel("y [mm]")
        ax.legend(loc="lower right", fontsize=7)
    fig.colorbar(im, ax=list(axes[0]), label=label, shrink=0.9)
    fig.suptitle(title or f"axial slice z = {z_mm:.1f} mm")
    return _atomic_savefig(fig, path)


def save_histograms(path, physical_by_arm: dict, eqd2_by_arm: dict, patient,
                    structures=("GTV", "VERTICES", "VALLEY", "FEMUR", "SKIN"), title: str = "") -> Path:
    """Cumulative DVH (physical) and EQD2-volume histograms, one line style per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .evaluation import cumulative_histogram

    names = [s for s in structures if s in patient.structures and patient.structures[s].any()]
    styles = ["-", "--", ":", "-."]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110)
    for ax, by_arm, label in ((axes[0], physical_by_arm, "physical dose [Gy]"), (axes[1], eqd2_by_arm, "EQD2 [Gy]")):
        top = max(float(d.max()) for d in by_arm.values())
        bins = np.linspace(0.0, top * 1.02, 400)
        for (arm, dose), ls in zip(by_arm.items(), styles):
            for name, colour in zip(names, colours):
                ax.plot(bins, cumulative_histogram(dose, patient.structures[name], bins), ls=ls, color=colour,
                        label=f"{name} ({arm})")
        ax.set_xlabel(f"cumulative {label}")
        ax.set_ylabel("volume [%]")
        ax.set_ylim(0, 101)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    axes[0].set_title("dose-volume histograms")
    axes[1].set_title("EQD2-volume histograms")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _atomic_savefig(fig, path)
