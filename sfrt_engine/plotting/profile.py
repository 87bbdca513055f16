"""Line profile through a row of vertices: CRT and SFRT, dose and EQD2, with the vertices and GTV marked."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._style import FigureLabels, pyplot

__all__ = ["figure_profile"]

_ARM_STYLE = {"CRT": ("#1f77b4", "-"), "SFRT": ("#d62728", "-")}


def _spans(flags: np.ndarray, x: np.ndarray, half: float) -> list[tuple[float, float]]:
    """(start, stop) [mm] of the runs of True in ``flags`` (voxel edges)."""
    out, start = [], None
    for i, f in enumerate(flags):
        if f and start is None:
            start = i
        if start is not None and (not f or i == flags.size - 1):
            stop = i if f else i - 1
            out.append((float(x[start] - half), float(x[stop] + half)))
            start = None
    return out


def figure_profile(physical_by_arm: Mapping[str, np.ndarray], eqd2_by_arm: Mapping[str, np.ndarray], patient,
                   y_index: int, z_index: int, vertices=None, labels: FigureLabels | None = None, target: str = "GTV"):
    """Dose and EQD2 along x through voxel row (``z_index``, ``y_index``), one curve per arm.

    Parameters
    ----------
    physical_by_arm, eqd2_by_arm : dict of str to ndarray [z, y, x]
        Cumulative dose (RBE-weighted for protons) and EQD2 per arm.
    patient : Patient
    y_index, z_index : int
        The row: normally through the centres of a row of vertices.
    vertices : VertexLattice, optional
        The chords of its spheres along the row are shaded.
    labels : FigureLabels, optional
    target : str
        Structure whose extent along the row is marked.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = pyplot()
    labels = labels or FigureLabels()
    grid = patient.grid
    x = grid.axis_mm("x")
    y_mm, z_mm = float(grid.axis_mm("y")[y_index]), float(grid.axis_mm("z")[z_index])
    half = 0.5 * grid.spacing_xyz_mm[0]
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.6), dpi=110, layout="constrained")
    chords = []
    if vertices is not None:
        r = 0.5 * vertices.diameter_mm
        for cx, cy, cz in vertices.centers_xyz_mm:
            d2 = r * r - (cy - y_mm) ** 2 - (cz - z_mm) ** 2
            if d2 > 0:
                chords.append((cx - np.sqrt(d2), cx + np.sqrt(d2)))
    gtv = _spans(patient.structures[target][z_index, y_index], x, half) if target in patient.structures else []
    # dose in the air around the patient means nothing clinically: the curves stop at BODY
    inside = patient.structures["BODY"][z_index, y_index] if "BODY" in patient.structures else np.ones(x.size, bool)
    if not inside.any():
        inside = np.ones(x.size, bool)
    lo_x, hi_x = float(x[inside].min() - half), float(x[inside].max() + half)
    for ax, by_arm, label in ((axes[0], physical_by_arm, labels.dose), (axes[1], eqd2_by_arm, labels.eqd2)):
        for lo, hi in chords:
            ax.axvspan(lo, hi, color="#bbbbbb", alpha=0.5, lw=0, label="vertex sphere (chord)")
        for lo, hi in gtv:
            for edge in (lo, hi):
                ax.axvline(edge, color="#762a83", ls="--", lw=1.0, label=f"{target} edge")
        for arm, dose in by_arm.items():
            colour, ls = _ARM_STYLE.get(arm, (None, "-"))
            ax.step(x, np.where(inside, dose[z_index, y_index], np.nan), where="mid", color=colour, ls=ls, lw=1.4,
                    label=arm)
        ax.set_xlabel("x [mm] across BODY (patient right R at left, left L at right)", fontsize=8)
        ax.set_ylabel(f"cumulative {label}", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.set_xlim(lo_x - 2 * half, hi_x + 2 * half)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    handles, names = axes[0].get_legend_handles_labels()
    unique = dict(zip(names, handles))
    fig.legend(unique.values(), unique.keys(), loc="outside lower center", ncol=len(unique), fontsize=8)
    count = len(chords)
    labels.suptitle(fig, f"profile along x at y = {y_mm:.1f} mm, z = {z_mm:.1f} mm"
                         + (f" through {count} vertices" if count else ""))
    return fig
