"""Shared drawing rules of the figures: colour maps, the low-dose threshold, outlines, labels, saving.

- Dose and EQD2 use viridis, a perceptually uniform map (equal steps in dose look like equal
  steps in colour; van der Walt and Smith, matplotlib 1.5, 2015), drawn opaque so that every
  coloured pixel reads exactly off the colour bar. Dose below :data:`LOW_DOSE_FRACTION` of
  the maximum, and dose outside BODY, is not coloured: the CT shows there, and the colour
  bar label says so.
- Differences use the diverging RdBu_r map, centred on 0.
- Outline colours avoid the map's own colours: red/magenta/orange/white on viridis,
  black/green/purple on RdBu_r.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._files import atomic_path
from ._planes import Plane

__all__ = [
    "CT_WINDOW_HU",
    "DIFFERENCE_CMAP",
    "DOSE_CMAP",
    "LOW_DOSE_FRACTION",
    "FigureLabels",
    "draw_ct",
    "draw_dose",
    "draw_orientation",
    "draw_outlines",
    "outline_legend",
    "pyplot",
    "save_figure",
]

#: Dose below this fraction of the figure's maximum is not coloured (the CT shows through).
LOW_DOSE_FRACTION = 0.05
DOSE_CMAP = "viridis"
DIFFERENCE_CMAP = "RdBu_r"
#: Soft-tissue CT window (level 40 HU, width 400 HU).
CT_WINDOW_HU = (-160.0, 240.0)

# (structure, colour, line style, width) per map kind
_OUTLINES = {
    "dose": (("BODY", "white", "-", 0.9), ("PTV", "#ff2020", "-", 1.3), ("GTV", "#ff40ff", "--", 1.1),
             ("FEMUR", "#ff9900", "-", 1.0)),
    "difference": (("BODY", "black", "-", 0.9), ("PTV", "#1b7837", "-", 1.3), ("GTV", "#762a83", "--", 1.1),
                   ("FEMUR", "#555555", "-", 1.0)),
}
_VERTEX_STYLE = {"dose": ("black", ":"), "difference": ("black", ":")}


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend (imported only when a figure is made)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class FigureLabels:
    """What the figures of one run say about the dose quantity, the mode and the protocol.

    Built from a report's ``settings`` (:func:`sfrt_engine.run_comparison`); all keys are
    optional, so older reports work too.
    """

    def __init__(self, settings: dict | None = None) -> None:
        s = settings or {}
        quantity = s.get("dose_quantity") or {}
        self.rbe = float(quantity.get("rbe", 1.0))  # the largest, where components differ
        self.unit = quantity.get("unit", "Gy")
        self.dose = f"{quantity.get('quantity', 'physical dose')} [{self.unit}]"
        self.eqd2 = "EQD2 [Gy]" if self.rbe == 1.0 else "EQD2 [Gy(RBE)]"
        self.off_protocol = bool(s.get("off_protocol", False))
        parts = []
        if s.get("technique"):
            parts.append(str(s["technique"]).upper())
        if s.get("boost_mode"):
            parts.append(f"boost {s['boost_mode']}")
        if self.rbe != 1.0:
            parts.append(f"protons: RBE-weighted dose, constant RBE {self.rbe:g} (ICRU 78)")
        self.context = ", ".join(parts)

    def title(self, what: str) -> str:
        """Figure title: ``what``, the run's context, and OFF PROTOCOL where it applies."""
        text = f"{what}\n{self.context}" if self.context else what
        return f"OFF PROTOCOL (research settings): {text}" if self.off_protocol else text

    def suptitle(self, fig, what: str) -> None:
        fig.suptitle(self.title(what), fontsize=10, color="#b00000" if self.off_protocol else "black")


def draw_ct(ax, patient, pl: Plane) -> None:
    ax.imshow(pl.cut(patient.hu), cmap="gray", vmin=CT_WINDOW_HU[0], vmax=CT_WINDOW_HU[1], extent=pl.extent,
              origin=pl.origin, interpolation="nearest")


def draw_dose(ax, patient, pl: Plane, dose: np.ndarray, vmax: float, *, threshold_gy: float):
    """Opaque viridis dose over the CT; below ``threshold_gy`` or outside BODY the CT shows."""
    section = pl.cut(dose)
    shown = np.ma.masked_less(section, threshold_gy)
    if "BODY" in patient.structures:
        shown = np.ma.masked_where(~pl.cut(patient.structures["BODY"]), shown)
    return ax.imshow(shown, cmap=DOSE_CMAP, vmin=threshold_gy, vmax=vmax, extent=pl.extent, origin=pl.origin,
                     interpolation="nearest")


def draw_outlines(ax, patient, pl: Plane, kind: str = "dose", vertices=None) -> list[str]:
    """Structure outlines (and vertex sphere sections) in ``pl``; returns the names drawn."""
    import matplotlib.patches as mpatches

    drawn = []
    for name, colour, ls, lw in _OUTLINES[kind]:
        if name not in patient.structures:
            continue
        mask = pl.cut(patient.structures[name])
        if mask.any() and not mask.all():
            ax.contour(pl.across, pl.up, mask.astype(float), levels=[0.5], colors=colour, linestyles=ls,
                       linewidths=lw)
            drawn.append(name)
    if vertices is not None:
        colour, ls = _VERTEX_STYLE[kind]
        for centre in vertices.centers_xyz_mm:
            c = pl.circle(centre, 0.5 * vertices.diameter_mm)
            if c is not None:
                ax.add_patch(mpatches.Circle(c[:2], c[2], fill=False, ec=colour, ls=ls, lw=1.0))
                if "vertices" not in drawn:
                    drawn.append("vertices")
    return drawn


def outline_legend(fig, names, kind: str = "dose", **kwargs):
    """Figure legend of the outlines drawn (outside the axes, so it hides nothing)."""
    from matplotlib.lines import Line2D

    style = {n: (c, ls, lw) for n, c, ls, lw in _OUTLINES[kind]}
    handles = []
    for name in names:
        if name == "vertices":
            colour, ls = _VERTEX_STYLE[kind]
            handles.append(Line2D([], [], color=colour, ls=ls, lw=1.0, label="vertex spheres"))
        else:
            colour, ls, lw = style[name]
            handles.append(Line2D([], [], color=colour, ls=ls, lw=lw, label=name))
    if not handles:
        return None
    if kind == "dose":  # white and light outlines need a grey key background to be seen
        kwargs.setdefault("facecolor", "#9a9a9a")
    return fig.legend(handles=handles, fontsize=8, **kwargs)


def draw_orientation(ax, pl: Plane) -> None:
    """Patient-orientation letters at the image edges (left, right, top, bottom)."""
    box = {"boxstyle": "square,pad=0.15", "fc": "black", "ec": "none", "alpha": 0.6}
    left, right, top, bottom = pl.orientation
    for text, x, y, ha, va in ((left, 0.01, 0.5, "left", "center"), (right, 0.99, 0.5, "right", "center"),
                               (top, 0.5, 0.99, "center", "top"), (bottom, 0.5, 0.01, "center", "bottom")):
        ax.text(x, y, text, transform=ax.transAxes, ha=ha, va=va, color="white", fontsize=8, fontweight="bold",
                bbox=box)


def threshold_label(label: str, threshold_gy: float, unit: str) -> str:
    """Colour-bar label stating what is not coloured."""
    return (f"{label}\nnot coloured: < {threshold_gy:.1f} {unit} ({100 * LOW_DOSE_FRACTION:g} % of max) "
            "or outside BODY")


def save_figure(fig, path) -> Path:
    """Write ``fig`` as PNG atomically and close it."""
    plt = pyplot()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return Path(path)
