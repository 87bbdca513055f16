"""Figures a physicist can read: dose and EQD2 maps in three planes, difference map, profile, histograms.

Importing this package does not import matplotlib; each figure function imports it when
called, so ``import sfrt_engine`` stays light and a run makes only the figures asked for.

- :mod:`.comparison`: the figures of an SFRT vs CRT run by name (:data:`FIGURES`),
  :func:`save_comparison_figures`;
- :mod:`.maps`: dose maps (:func:`figure_arm_views`, :func:`figure_difference`,
  :func:`save_dose_slice`);
- :mod:`.profile`, :mod:`.dvh`: line profile and histograms;
- ``_planes``, ``_style``: display geometry and the shared drawing rules (colour maps,
  low-dose threshold, outlines).
"""

from ._planes import VIEWS, Plane, plane
from ._style import LOW_DOSE_FRACTION, FigureLabels, save_figure
from .comparison import FIGURES, comparison_figure, parse_plots, save_comparison_figures, vertex_planes
from .dvh import figure_histograms
from .maps import figure_arm_views, figure_difference, save_dose_slice
from .profile import figure_profile

__all__ = ["FIGURES", "LOW_DOSE_FRACTION", "VIEWS", "FigureLabels", "Plane", "comparison_figure", "figure_arm_views",
           "figure_difference", "figure_histograms", "figure_profile", "parse_plots", "plane",
           "save_comparison_figures", "save_dose_slice", "save_figure", "vertex_planes"]
