"""The regular voxel grid every 3-D array of the engine lives on.

Conventions (DESIGN 3): arrays are indexed ``[z, y, x]`` and C-contiguous;
points are ``(x, y, z)`` in DICOM patient coordinates [mm]; the origin is the
centre of voxel ``[0, 0, 0]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import GridError

__all__ = ["Grid"]


def _as_triple(value, name: str, *, positive: bool) -> tuple[float, float, float]:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.repeat(arr, 3)
    if arr.shape != (3,):
        raise GridError(f"{name}={value!r}: expected a scalar or 3 values (x, y, z)")
    if not np.all(np.isfinite(arr)):
        raise GridError(f"{name}={value!r}: every value must be finite")
    if positive and np.any(arr <= 0):
        raise GridError(f"{name}={value!r}: every value must be > 0 mm")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


@dataclass(frozen=True)
class Grid:
    """A regular, axis-aligned voxel grid in DICOM patient coordinates.

    Parameters
    ----------
    shape_zyx : tuple of int
        Number of voxels along z, y and x (array order).
    spacing_xyz_mm : float or tuple of float
        Voxel size along x, y and z [mm]; a scalar means isotropic voxels.
    origin_xyz_mm : tuple of float
        Centre of voxel ``[0, 0, 0]`` in patient coordinates [mm].
    """

    shape_zyx: tuple[int, int, int]
    spacing_xyz_mm: tuple[float, float, float]
    origin_xyz_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in np.atleast_1d(self.shape_zyx))
        if len(shape) != 3 or any(n < 1 for n in shape):
            raise GridError(
                f"shape_zyx={self.shape_zyx!r}: expected three positive voxel counts (nz, ny, nx)"
            )
        object.__setattr__(self, "shape_zyx", shape)
        object.__setattr__(
            self, "spacing_xyz_mm", _as_triple(self.spacing_xyz_mm, "spacing_xyz_mm", positive=True)
        )
        object.__setattr__(
            self, "origin_xyz_mm", _as_triple(self.origin_xyz_mm, "origin_xyz_mm", positive=False)
        )

    @classmethod
    def from_extent(cls, size_xyz_mm, spacing_xyz_mm, center_xyz_mm=(0.0, 0.0, 0.0)) -> Grid:
        """Grid covering a box of ``size_xyz_mm`` centred on ``center_xyz_mm``.

        The voxel count per axis is ``round(size / spacing)`` (at least 1); the
        grid is centred on the requested centre.
        """
        size = np.array(_as_triple(size_xyz_mm, "size_xyz_mm", positive=True))
        spacing = np.array(_as_triple(spacing_xyz_mm, "spacing_xyz_mm", positive=True))
        center = np.array(_as_triple(center_xyz_mm, "center_xyz_mm", positive=False))
        n_xyz = np.maximum(1, np.rint(size / spacing).astype(int))
        origin = center - 0.5 * (n_xyz - 1) * spacing
        return cls(
            shape_zyx=(int(n_xyz[2]), int(n_xyz[1]), int(n_xyz[0])),
            spacing_xyz_mm=tuple(spacing),
            origin_xyz_mm=tuple(origin),
        )

    # -- derived geometry -------------------------------------------------
    @property
    def shape_xyz(self) -> tuple[int, int, int]:
        return (self.shape_zyx[2], self.shape_zyx[1], self.shape_zyx[0])

    @property
    def size(self) -> int:
        """Number of voxels."""
        nz, ny, nx = self.shape_zyx
        return nz * ny * nx

    @property
    def voxel_volume_mm3(self) -> float:
        dx, dy, dz = self.spacing_xyz_mm
        return dx * dy * dz

    @property
    def center_xyz_mm(self) -> tuple[float, float, float]:
        """Centre of the grid's bounding box [mm]."""
        o = np.array(self.origin_xyz_mm)
        s = np.array(self.spacing_xyz_mm)
        n = np.array(self.shape_xyz)
        return tuple(float(c) for c in o + 0.5 * (n - 1) * s)

    @property
    def bounds_xyz_mm(self) -> np.ndarray:
        """Outer faces of the grid, shape (3, 2): [[x_lo, x_hi], [y_lo, y_hi], [z_lo, z_hi]] [mm]."""
        o = np.array(self.origin_xyz_mm)
        s = np.array(self.spacing_xyz_mm)
        n = np.array(self.shape_xyz)
        return np.stack([o - 0.5 * s, o + (n - 0.5) * s], axis=1)

    def axis_mm(self, axis: str) -> np.ndarray:
        """Voxel-centre coordinates along ``axis`` ('x', 'y' or 'z') [mm]."""
        i = "xyz".index(axis)
        return self.origin_xyz_mm[i] + self.spacing_xyz_mm[i] * np.arange(self.shape_xyz[i])

    def coordinates_mm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable voxel-centre coordinates (z[:,None,None], y[None,:,None], x[None,None,:]) [mm]."""
        return (
            self.axis_mm("z")[:, None, None],
            self.axis_mm("y")[None, :, None],
            self.axis_mm("x")[None, None, :],
        )

    def voxel_centres_mm(self, mask) -> np.ndarray:
        """Centres (n, 3) [x, y, z mm] of the voxels where ``mask`` [z, y, x] is true, in C order."""
        iz, iy, ix = np.nonzero(mask)
        return np.stack([self.axis_mm("x")[ix], self.axis_mm("y")[iy], self.axis_mm("z")[iz]], axis=1)

    def index_of(self, point_xyz_mm) -> tuple[int, int, int]:
        """Index ``(iz, iy, ix)`` of the voxel containing a point; raises if outside."""
        p = np.asarray(point_xyz_mm, dtype=float)
        f = (p - np.array(self.origin_xyz_mm)) / np.array(self.spacing_xyz_mm)
        idx = np.rint(f).astype(int)
        if np.any(idx < 0) or np.any(idx >= np.array(self.shape_xyz)):
            raise GridError(
                f"point {tuple(p.tolist())} mm lies outside the grid (bounds {self.bounds_xyz_mm.tolist()} mm)"
            )
        return (int(idx[2]), int(idx[1]), int(idx[0]))

    def check_array(self, array, name: str, dtype=None) -> np.ndarray:
        """Validate that ``array`` lives on this grid; return it as a C-contiguous ndarray."""
        arr = np.asarray(array)
        if arr.shape != self.shape_zyx:
            raise GridError(
                f"{name}: shape {arr.shape} does not match the grid's shape_zyx {self.shape_zyx}; "
                "arrays are indexed [z, y, x]"
            )
        if dtype is not None:
            arr = arr.astype(dtype, copy=False)
        return np.ascontiguousarray(arr)

    def to_dict(self) -> dict:
        return {
            "shape_zyx": list(self.shape_zyx),
            "spacing_xyz_mm": list(self.spacing_xyz_mm),
            "origin_xyz_mm": list(self.origin_xyz_mm),
        }
