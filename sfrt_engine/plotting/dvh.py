"""Cumulative dose-volume and EQD2-volume histograms of both arms, with the legend outside the axes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ._style import FigureLabels, pyplot

__all__ = ["HISTOGRAM_STRUCTURES", "figure_histograms"]

#: Structures shown, where present and not empty.
HISTOGRAM_STRUCTURES = ("GTV", "VERTICES", "VALLEY", "PTV", "FEMUR", "SKIN")
_ARM_LINES = ("-", "--", ":", "-.")


def figure_histograms(physical_by_arm: Mapping[str, np.ndarray], eqd2_by_arm: Mapping[str, np.ndarray], patient,
                      structures: Sequence[str] = HISTOGRAM_STRUCTURES, labels: FigureLabels | None = None):
    """Cumulative DVH (left) and EQD2-volume histogram (right): colour per structure, line style per arm.

    The legend (structures, then arms) sits outside the axes on the right, so it hides no curve.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.lines import Line2D

    from ..evaluation import cumulative_histogram

    plt = pyplot()
    labels = labels or FigureLabels()
    names = [s for s in structures if s in patient.structures and patient.structures[s].any()]
    colours = plt.get_cmap("tab10").colors
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.8), dpi=110, layout="constrained")
    for ax, by_arm, label in ((axes[0], physical_by_arm, labels.dose), (axes[1], eqd2_by_arm, labels.eqd2)):
        top = max(float(d.max()) for d in by_arm.values())
        bins = np.linspace(0.0, top * 1.02, 400)
        for (arm, dose), ls in zip(by_arm.items(), _ARM_LINES):
            for name, colour in zip(names, colours):
                ax.plot(bins, cumulative_histogram(dose, patient.structures[name], bins), ls=ls, color=colour, lw=1.3)
        ax.set_xlabel(f"cumulative {label}", fontsize=9)
        ax.set_ylabel("volume [%]", fontsize=9)
        ax.set_xlim(0, top * 1.02)
        ax.set_ylim(0, 101)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    axes[0].set_title("dose-volume histograms", fontsize=9)
    axes[1].set_title("EQD2-volume histograms", fontsize=9)
    handles = [Line2D([], [], color=c, lw=2, label=n) for n, c in zip(names, colours)]
    handles += [Line2D([], [], color="black", ls=ls, lw=1.3, label=arm) for arm, ls in zip(physical_by_arm, _ARM_LINES)]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, title="structure / arm", title_fontsize=8)
    labels.suptitle(fig, "SFRT vs CRT")
    return fig
