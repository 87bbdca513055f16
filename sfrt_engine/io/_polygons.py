"""Planar polygons <-> slice masks, in continuous voxel-index coordinates of one slice.

A point ``(c, r)`` is column ``c`` (x) and row ``r`` (y) of a slice; voxel centres sit at
integers. Both directions keep every voxel centre on its own side, so
``fill_even_odd(mask_polygons(m)) == m`` exactly.
"""

from __future__ import annotations

import contourpy
import numpy as np

__all__ = ["fill_even_odd", "mask_polygons", "circle_polygon"]


def fill_even_odd(polygons, shape_yx: tuple[int, int]) -> np.ndarray:
    """Voxel centres inside a set of closed polygons by the even-odd rule.

    A centre is inside when a ray from it towards +x crosses the polygons' edges an odd
    number of times, counting the edges of all polygons together, so a polygon lying inside
    another is a hole. An edge spans the rows ``min(y) <= r < max(y)`` (half-open, so a ray
    through a vertex is counted once); a centre on a left edge is inside, on a right edge outside.

    Parameters
    ----------
    polygons : iterable of ndarray, shape (n, 2)
        Closed polygons (the last point joins the first) as (column, row) [voxel index].
    shape_yx : (ny, nx)

    Returns
    -------
    ndarray of bool, shape (ny, nx)
    """
    ny, nx = shape_yx
    counts = np.zeros((ny, nx + 1), dtype=np.int64)
    for poly in polygons:
        p = np.asarray(poly, dtype=np.float64)
        x1, y1 = p[:, 0], p[:, 1]
        x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
        first = np.clip(np.ceil(np.minimum(y1, y2)), 0, ny).astype(np.int64)
        stop = np.clip(np.ceil(np.maximum(y1, y2)), 0, ny).astype(np.int64)
        n = np.maximum(stop - first, 0)  # rows crossed by each edge (0 for horizontal edges)
        if not n.any():
            continue
        edge = np.repeat(np.arange(p.shape[0]), n)
        rows = first[edge] + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        t = (rows - y1[edge]) / (y2[edge] - y1[edge])
        xc = x1[edge] + t * (x2[edge] - x1[edge])
        # a crossing at xc flips every centre with column >= ceil(xc)
        np.add.at(counts, (rows, np.clip(np.ceil(xc), 0, nx).astype(np.int64)), 1)
    return (np.cumsum(counts, axis=1)[:, :nx] & 1).astype(bool)


def mask_polygons(mask_yx: np.ndarray) -> list[np.ndarray]:
    """Closed outlines of a 2-D mask: the 0.5 iso-lines of the mask between voxel centres.

    Outer boundaries and holes are returned alike; read them back with the even-odd rule.

    Parameters
    ----------
    mask_yx : ndarray of bool, shape (ny, nx)

    Returns
    -------
    list of ndarray, shape (n, 2)
        (column, row) [voxel index], each polygon without a repeated closing point.
    """
    padded = np.pad(np.asarray(mask_yx, dtype=np.float64), 1)  # so every outline closes
    lines = contourpy.contour_generator(z=padded, line_type="Separate").lines(0.5)
    out = []
    for line in lines:
        pts = np.asarray(line, dtype=np.float64) - 1.0
        if len(pts) > 1 and np.array_equal(pts[0], pts[-1]):
            pts = pts[:-1]
        pts = _drop_collinear(pts)
        if len(pts) >= 3:
            out.append(pts)
    return out


def _drop_collinear(pts: np.ndarray) -> np.ndarray:
    """The polygon without points in the middle of straight runs (exact: the points are on a half-voxel lattice)."""
    prev, nxt = np.roll(pts, 1, axis=0), np.roll(pts, -1, axis=0)
    cross = (pts[:, 0] - prev[:, 0]) * (nxt[:, 1] - pts[:, 1]) - (pts[:, 1] - prev[:, 1]) * (nxt[:, 0] - pts[:, 0])
    return pts[cross != 0]


def circle_polygon(center_xy, radius: float, max_chord: float = 1.0, min_points: int = 24) -> np.ndarray:
    """Regular polygon with the same area as a circle.

    Its vertices lie on a radius ``R = r sqrt(2 pi / (n sin(2 pi / n)))``, slightly larger than
    ``r``, so the enclosed area equals ``pi r^2`` whatever ``n``.

    Parameters
    ----------
    center_xy : (x, y)
    radius : float
        In the same unit as ``center_xy``.
    max_chord : float
        Longest edge allowed (same unit); sets ``n`` together with ``min_points``.

    Returns
    -------
    ndarray, shape (n, 2)
    """
    n = max(int(min_points), int(np.ceil(2.0 * np.pi * radius / max_chord)))
    scale = np.sqrt(2.0 * np.pi / (n * np.sin(2.0 * np.pi / n)))
    t = 2.0 * np.pi * np.arange(n) / n
    return np.column_stack([center_xy[0] + radius * scale * np.cos(t), center_xy[1] + radius * scale * np.sin(t)])
