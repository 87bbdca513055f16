"""Dose maps: one arm's axial slice, both arms in three planes, and the SFRT - CRT difference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ._planes import Plane, plane
from ._style import (
    DIFFERENCE_CMAP,
    LOW_DOSE_FRACTION,
    FigureLabels,
    draw_ct,
    draw_dose,
    draw_orientation,
    draw_outlines,
    outline_legend,
    pyplot,
    save_figure,
    threshold_label,
)

__all__ = ["figure_arm_views", "figure_difference", "save_dose_slice"]


def _body_max(dose: np.ndarray, patient) -> float:
    body = patient.structures["BODY"] if "BODY" in patient.structures else None  # noqa: SIM401 (no .get)
    values = dose[body] if body is not None and body.any() else dose
    return float(values.max())


def _width(pl: Plane) -> float:
    return abs(pl.extent[1] - pl.extent[0])


def _height(pl: Plane) -> float:
    return abs(pl.extent[3] - pl.extent[2])


def _panel(ax, patient, pl: Plane, show_y_label: bool = True) -> None:
    draw_orientation(ax, pl)
    ax.set_xlabel(pl.across_label, fontsize=8)
    if show_y_label:
        ax.set_ylabel(pl.up_label, fontsize=8)
    ax.tick_params(labelsize=7)


def figure_arm_views(doses_by_arm: Mapping[str, np.ndarray], patient, planes: Sequence[Plane], label: str,
                     labels: FigureLabels | None = None, vertices=None, what: str = ""):
    """Rows of arms, columns of planes, on one colour scale with the low-dose threshold.

    Parameters
    ----------
    doses_by_arm : dict of str to ndarray [z, y, x]
        Dose or EQD2 per arm [Gy or Gy(RBE)].
    patient : Patient
    planes : sequence of Plane
        E.g. the axial, coronal and sagittal planes through the vertex plane.
    label : str
        Quantity and unit, e.g. "EQD2 [Gy]".
    labels : FigureLabels, optional
    vertices : VertexLattice, optional
        Its spheres are outlined where they cut each plane.
    what : str
        Figure title (the context and OFF PROTOCOL are added).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = pyplot()
    labels = labels or FigureLabels()
    vmax = max(_body_max(d, patient) for d in doses_by_arm.values())
    threshold = LOW_DOSE_FRACTION * vmax
    widths = [_width(p) for p in planes]
    height = max(_height(p) for p in planes)
    n_rows = len(doses_by_arm)
    scale = 3.6 / height
    fig = plt.figure(figsize=(sum(widths) * scale + 2.2, n_rows * 3.6 + 1.4), dpi=110, layout="constrained")
    grid = fig.add_gridspec(n_rows, len(planes), width_ratios=widths)
    image, drawn = None, []
    for r, (arm, dose) in enumerate(doses_by_arm.items()):
        for c, pl in enumerate(planes):
            ax = fig.add_subplot(grid[r, c])
            draw_ct(ax, patient, pl)
            image = draw_dose(ax, patient, pl, dose, vmax, threshold_gy=threshold)
            for name in draw_outlines(ax, patient, pl, "dose", vertices):
                if name not in drawn:
                    drawn.append(name)
            _panel(ax, patient, pl, show_y_label=True)
            ax.set_title(f"{arm}: {pl.title}", fontsize=9)
    unit = label[label.rfind("[") + 1:label.rfind("]")] if "[" in label else "Gy"
    fig.colorbar(image, ax=fig.axes, label=threshold_label(label, threshold, unit), shrink=0.85)
    outline_legend(fig, drawn, "dose", loc="outside lower center", ncol=len(drawn) or 1)
    labels.suptitle(fig, what or f"cumulative {label}")
    return fig


def figure_difference(difference: np.ndarray, patient, planes: Sequence[Plane], label: str,
                      labels: FigureLabels | None = None, vertices=None, what: str = ""):
    """SFRT - CRT in each plane, diverging map centred on 0 (symmetric limits); outside BODY the CT shows."""
    plt = pyplot()
    labels = labels or FigureLabels()
    limit = max(abs(_body_max(difference, patient)), abs(_body_max(-difference, patient)), 1e-9)
    widths = [_width(p) for p in planes]
    height = max(_height(p) for p in planes)
    scale = 3.6 / height
    fig = plt.figure(figsize=(sum(widths) * scale + 2.2, 3.6 + 1.6), dpi=110, layout="constrained")
    grid = fig.add_gridspec(1, len(planes), width_ratios=widths)
    image, drawn = None, []
    for c, pl in enumerate(planes):
        ax = fig.add_subplot(grid[0, c])
        draw_ct(ax, patient, pl)
        section = np.ma.asarray(pl.cut(difference))
        if "BODY" in patient.structures:
            section = np.ma.masked_where(~pl.cut(patient.structures["BODY"]), section)
        image = ax.imshow(section, cmap=DIFFERENCE_CMAP, vmin=-limit, vmax=limit, extent=pl.extent, origin=pl.origin,
                          interpolation="nearest")
        for name in draw_outlines(ax, patient, pl, "difference", vertices):
            if name not in drawn:
                drawn.append(name)
        _panel(ax, patient, pl)
        ax.set_title(pl.title, fontsize=9)
    fig.colorbar(image, ax=fig.axes, label=f"{label}\n(0 = white; outside BODY not coloured)", shrink=0.85)
    outline_legend(fig, drawn, "difference", loc="outside lower center", ncol=len(drawn) or 1)
    labels.suptitle(fig, what or label)
    return fig


def save_dose_slice(path, dose_gy: np.ndarray, patient, z_index: int, title: str = "",
                    label: str = "dose [Gy]", labels: FigureLabels | None = None):
    """Write a PNG of one axial dose slice (viridis, low-dose threshold, outlines, orientation); atomic.

    Parameters
    ----------
    path : str or Path
    dose_gy : ndarray [z, y, x]
    patient : Patient
    z_index : int
        Axial slice index.
    title : str
    label : str
        Quantity and unit for the colour bar.
    """
    fig = figure_arm_views({"dose": dose_gy}, patient, [plane(patient.grid, "axial", z_index)], label, labels,
                           what=title or label)
    return save_figure(fig, path)
