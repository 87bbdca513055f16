"""The figures of an SFRT vs CRT comparison, by name, made only when asked for.

=============  ======================  ==================================================================
name           file                    content
=============  ======================  ==================================================================
``dose``       ``dose_views.png``      cumulative dose (RBE-weighted for protons), CRT and SFRT, axial,
                                       coronal and sagittal through the vertex plane
``eqd2``       ``eqd2_views.png``      the same for EQD2
``difference`` ``eqd2_difference.png`` SFRT minus CRT EQD2 in the three planes (diverging, centred on 0)
``profile``    ``profile.png``         dose and EQD2 along x through a row of vertices, both arms
``dvh``        ``histograms.png``      dose- and EQD2-volume histograms of both arms
=============  ======================  ==================================================================
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._planes import plane

__all__ = ["FIGURES", "comparison_figure", "parse_plots", "save_comparison_figures", "vertex_planes"]

#: Figure name -> file name, in the order they are written.
FIGURES = {"dose": "dose_views.png", "eqd2": "eqd2_views.png", "difference": "eqd2_difference.png",
           "profile": "profile.png", "dvh": "histograms.png"}


def parse_plots(text: str) -> tuple[str, ...]:
    """``"all"``, ``"none"`` or a comma-separated list of :data:`FIGURES` names -> the names, in FIGURES order.

    Raises
    ------
    ValueError
        Naming the unknown entries and the valid ones.
    """
    items = [t.strip().lower() for t in str(text).split(",") if t.strip()]
    if items == ["all"]:
        return tuple(FIGURES)
    if items == ["none"]:
        return ()
    unknown = [t for t in items if t not in FIGURES]
    if unknown or not items:
        raise ValueError(f"plots {text!r}: unknown {', '.join(map(repr, unknown)) or 'empty list'}; expected 'all', "
                         f"'none' or a comma-separated list of {', '.join(FIGURES)}")
    return tuple(name for name in FIGURES if name in items)


def vertex_planes(patient, vertices) -> dict:
    """Indices of the planes through the vertices: ``{"z", "y", "x"}`` voxel indices and ``"row_count"``.

    z: the vertex layer holding the most vertices; y: within it, the row (same y) holding the
    most; x: the middle vertex of that row. Without vertices, the grid's centre.
    """
    grid = patient.grid
    centres = np.asarray(getattr(vertices, "centers_xyz_mm", np.zeros((0, 3))), dtype=float)
    if centres.size == 0:
        nz, ny, nx = grid.shape_zyx
        return {"z": nz // 2, "y": ny // 2, "x": nx // 2, "row_count": 0}

    def most_common(values: np.ndarray) -> float:
        keys = np.round(values, 3)
        unique, counts = np.unique(keys, return_counts=True)
        return float(unique[int(np.argmax(counts))])

    z_mm = most_common(centres[:, 2])
    layer = centres[np.abs(centres[:, 2] - z_mm) < 1e-3]
    y_mm = most_common(layer[:, 1])
    row = np.sort(layer[np.abs(layer[:, 1] - y_mm) < 1e-3][:, 0])
    x_mm = float(row[(row.size - 1) // 2])

    def index(axis: str, value: float) -> int:
        return int(np.argmin(np.abs(grid.axis_mm(axis) - value)))

    return {"z": index("z", z_mm), "y": index("y", y_mm), "x": index("x", x_mm), "row_count": int(row.size)}


def comparison_figure(name: str, comparison):
    """Build figure ``name`` (a key of :data:`FIGURES`) of a :func:`sfrt_engine.run_comparison` result.

    Returns
    -------
    matplotlib.figure.Figure
        The caller saves or closes it.
    """
    from ._style import FigureLabels
    from .dvh import figure_histograms
    from .maps import figure_arm_views, figure_difference
    from .profile import figure_profile

    if name not in FIGURES:
        raise ValueError(f"figure {name!r}: expected one of {', '.join(FIGURES)}")
    prepared = comparison.prepared
    patient, vertices = prepared.patient, prepared.vertices
    settings = comparison.report.get("settings", {})
    labels = FigureLabels(settings)
    where = vertex_planes(patient, vertices)
    planes = [plane(patient.grid, "axial", where["z"]), plane(patient.grid, "coronal", where["y"]),
              plane(patient.grid, "sagittal", where["x"])]
    target = getattr(prepared.settings, "target", "GTV")
    if name == "dose":
        return figure_arm_views(comparison.physical_gy, patient, planes, labels.dose, labels, vertices,
                                what=f"cumulative {labels.dose}, planes through the vertices")
    if name == "eqd2":
        return figure_arm_views(comparison.eqd2_gy, patient, planes, labels.eqd2, labels, vertices,
                                what=f"cumulative {labels.eqd2}, planes through the vertices")
    if name == "difference":
        difference = comparison.eqd2_gy["SFRT"] - comparison.eqd2_gy["CRT"]
        return figure_difference(difference, patient, planes, f"SFRT - CRT {labels.eqd2}", labels, vertices)
    if name == "profile":
        return figure_profile(comparison.physical_gy, comparison.eqd2_gy, patient, where["y"], where["z"], vertices,
                              labels, target=target if target in patient.structures else "GTV")
    return figure_histograms(comparison.physical_gy, comparison.eqd2_gy, patient, labels=labels)


def save_comparison_figures(out_dir, comparison, names=tuple(FIGURES)) -> list[Path]:
    """Write the figures ``names`` (default all of :data:`FIGURES`) into ``out_dir``, each atomically.

    Only the figures named are built (matplotlib is imported only if one is).

    Returns
    -------
    list of Path
        The files written, in :data:`FIGURES` order.
    """
    from ._style import save_figure

    out = Path(out_dir)
    written = []
    for name, file_name in FIGURES.items():
        if name in names:
            written.append(save_figure(comparison_figure(name, comparison), out / file_name))
    return written
