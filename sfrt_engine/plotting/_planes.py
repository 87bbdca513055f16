"""Planes through a [z, y, x] volume as a viewer shows them: axial, coronal and sagittal.

Display conventions (radiological, as planning systems show a head-first supine patient,
DICOM patient axes x = patient left, y = posterior, z = superior):

- axial: x across (patient right R on the viewer's left), y down (anterior A at the top);
- coronal: x across (R left), z up (superior S at the top);
- sagittal: y across (A left, posterior P right), z up (S at the top).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["VIEWS", "Plane", "plane"]

VIEWS = ("axial", "coronal", "sagittal")


@dataclass(frozen=True)
class Plane:
    """Where a 2-D section lies and how to draw it.

    Attributes
    ----------
    view : str
        "axial", "coronal" or "sagittal".
    index : int
        Slice index along the fixed axis (z, y or x).
    position_mm : float
        Coordinate of the slice along the fixed axis [mm].
    axis : str
        Fixed axis: "z", "y" or "x".
    across, up : ndarray
        Voxel-centre coordinates [mm] along the horizontal and vertical display axes.
    across_label, up_label : str
        Axis labels with units.
    extent : tuple of float
        ``imshow`` extent (left, right, bottom, top) [mm].
    origin : str
        ``imshow`` origin ("upper" for axial, "lower" otherwise).
    orientation : tuple of str
        Letters at the (left, right, top, bottom) edges of the image.
    """

    view: str
    index: int
    position_mm: float
    axis: str
    across: np.ndarray
    up: np.ndarray
    across_label: str
    up_label: str
    extent: tuple
    origin: str
    orientation: tuple

    def cut(self, volume: np.ndarray) -> np.ndarray:
        """The section of ``volume`` [z, y, x]: rows along ``up`` (in array order), columns along ``across``."""
        if self.view == "axial":
            return volume[self.index]
        if self.view == "coronal":
            return volume[:, self.index, :]
        return volume[:, :, self.index]

    @property
    def title(self) -> str:
        return f"{self.view}, {self.axis} = {self.position_mm:.1f} mm"

    def circle(self, center_xyz_mm, radius_mm: float):
        """(across, up, radius) of a sphere's section in this plane [mm], or None if it misses the plane."""
        x, y, z = center_xyz_mm
        across, up, off = {"axial": (x, y, z), "coronal": (x, z, y), "sagittal": (y, z, x)}[self.view]
        d = abs(off - self.position_mm)
        if d >= radius_mm:
            return None
        return across, up, float(np.sqrt(radius_mm ** 2 - d ** 2))


def _edges(axis: np.ndarray, spacing: float) -> tuple[float, float]:
    return float(axis[0] - 0.5 * spacing), float(axis[-1] + 0.5 * spacing)


def plane(grid, view: str, index: int) -> Plane:
    """The :class:`Plane` of ``grid`` for ``view`` at slice ``index`` (clipped to the grid).

    Parameters
    ----------
    grid : Grid
    view : {"axial", "coronal", "sagittal"}
    index : int
        Slice index along z (axial), y (coronal) or x (sagittal).
    """
    if view not in VIEWS:
        raise ValueError(f"view={view!r}: expected one of {', '.join(VIEWS)}")
    x, y, z = grid.axis_mm("x"), grid.axis_mm("y"), grid.axis_mm("z")
    dx, dy, dz = grid.spacing_xyz_mm
    xl, xh = _edges(x, dx)
    yl, yh = _edges(y, dy)
    zl, zh = _edges(z, dz)
    if view == "axial":
        k = int(np.clip(index, 0, z.size - 1))
        return Plane(view, k, float(z[k]), "z", x, y, "x [mm]", "y [mm]", (xl, xh, yh, yl), "upper",
                     ("R", "L", "A", "P"))
    if view == "coronal":
        k = int(np.clip(index, 0, y.size - 1))
        return Plane(view, k, float(y[k]), "y", x, z, "x [mm]", "z [mm]", (xl, xh, zl, zh), "lower",
                     ("R", "L", "S", "I"))
    k = int(np.clip(index, 0, x.size - 1))
    return Plane(view, k, float(x[k]), "x", y, z, "y [mm]", "z [mm]", (yl, yh, zl, zh), "lower",
                 ("A", "P", "S", "I"))
