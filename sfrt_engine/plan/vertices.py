"""Vertex placement for lattice SFRT (DESIGN 5.5).

Vertices are spheres on a hexagonal close-packed (``"hcp"``) or simple cubic
(``"cubic"``) lattice of centre-to-centre spacing ``spacing_mm``. A centre is
allowed when

- its distance to every voxel centre *outside* the GTV is at least
  ``gtv_margin_mm + radius`` (it lies that deep inside the GTV surface), and
- its distance to every voxel centre of each avoided structure is at least
  ``oar_margin_mm + radius``.

The lattice offset (a regular search over one unit cell, ``offset_steps`` per
axis) and, optionally, its rotation about z (``rotation_steps`` angles over the
lattice's symmetry period) are searched for the most allowed centres; ties go to
the arrangement whose centres lie closest on average to the GTV centroid, then to
the first in search order, so the result is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PlanError
from ..patient import Patient

__all__ = ["VertexLattice", "place_vertices", "lattice_points", "VALLEY_MARGIN_MM"]

#: VALLEY = GTV minus the vertices expanded by this margin [mm] (DESIGN 5.5).
VALLEY_MARGIN_MM = 5.0
_LATTICES = ("hcp", "cubic")


@dataclass(frozen=True, eq=False)
class VertexLattice:
    """Placed vertices.

    Attributes
    ----------
    centers_xyz_mm : ndarray, shape (n, 3)
        Vertex centres [mm], sorted by z, then y, then x.
    diameter_mm, spacing_mm : float
    lattice : str
        "hcp" or "cubic".
    offset_xyz_mm : ndarray, shape (3,)
        Lattice offset chosen by the search [mm].
    rotation_deg : float
        Lattice rotation about z chosen by the search [deg].
    labels : ndarray of int16 [z, y, x]
        0 outside the vertices, ``i + 1`` inside vertex ``i``.
    target : str
        Structure the vertices were placed in.
    constraints : dict
        Margins and avoided structures used.
    """

    centers_xyz_mm: np.ndarray
    diameter_mm: float
    spacing_mm: float
    lattice: str
    offset_xyz_mm: np.ndarray
    rotation_deg: float
    labels: np.ndarray
    target: str
    constraints: dict

    @property
    def count(self) -> int:
        return int(self.centers_xyz_mm.shape[0])

    @property
    def radius_mm(self) -> float:
        return 0.5 * self.diameter_mm

    @property
    def mask(self) -> np.ndarray:
        """Union of the vertex spheres, bool [z, y, x]."""
        return self.labels > 0

    def vertex_mask(self, i: int) -> np.ndarray:
        """Mask of vertex ``i`` (0-based), bool [z, y, x]."""
        return self.labels == i + 1

    def to_dict(self) -> dict:
        return {
            "count": self.count, "diameter_mm": self.diameter_mm, "spacing_mm": self.spacing_mm,
            "lattice": self.lattice, "offset_xyz_mm": self.offset_xyz_mm.tolist(),
            "rotation_deg": self.rotation_deg, "target": self.target, "constraints": self.constraints,
            "centers_xyz_mm": self.centers_xyz_mm.round(3).tolist(),
        }


def lattice_points(lattice: str, spacing_mm: float, lo_xyz, hi_xyz, offset_xyz=(0.0, 0.0, 0.0),
                   rotation_deg: float = 0.0, center_xyz=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Lattice points inside the box [lo, hi] (shape (n, 3), mm).

    The lattice has nearest-neighbour distance ``spacing_mm``; it is shifted by
    ``offset_xyz`` and rotated by ``rotation_deg`` about the z axis through
    ``center_xyz``. HCP stacks triangular layers along z (ABAB, layer distance
    ``spacing * sqrt(2/3)``).
    """
    if lattice not in _LATTICES:
        raise PlanError(f"lattice={lattice!r}: expected one of {', '.join(_LATTICES)}")
    a = float(spacing_mm)
    lo = np.asarray(lo_xyz, float)
    hi = np.asarray(hi_xyz, float)
    c = np.asarray(center_xyz, float)
    reach = float(np.linalg.norm(hi - lo)) / 2 + 2 * a  # radius around the box centre to cover
    mid = 0.5 * (lo + hi)
    n = int(np.ceil(reach / a * 1.5)) + 2
    idx = np.arange(-n, n + 1)
    if lattice == "cubic":
        i, j, k = np.meshgrid(idx, idx, idx, indexing="ij")
        pts = a * np.stack([i, j, k], axis=-1).reshape(-1, 3)
    else:
        i, j, k = np.meshgrid(idx, idx, idx, indexing="ij")
        h = a * np.sqrt(2.0 / 3.0)
        shift = (k % 2)[..., None] * np.array([0.5 * a, a * np.sqrt(3.0) / 6.0, 0.0])
        pts = (i[..., None] * np.array([a, 0.0, 0.0]) + j[..., None] * np.array([0.5 * a, a * np.sqrt(3.0) / 2, 0.0])
               + k[..., None] * np.array([0.0, 0.0, h]) + shift).reshape(-1, 3)
    t = np.deg2rad(rotation_deg)
    rot = np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])
    pts = (pts + np.asarray(offset_xyz, float)) @ rot.T + c
    keep = np.all((pts >= lo) & (pts <= hi), axis=1) & (np.linalg.norm(pts - mid, axis=1) <= reach + 2 * a)
    return pts[keep]


def _shell(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` that touch its complement (6-connectivity); enough for nearest-distance queries."""
    from scipy import ndimage  # on first use, not at import (STYLE 1)

    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def place_vertices(patient: Patient, target: str = "GTV", diameter_mm: float = 15.0, spacing_mm: float = 30.0,
                   lattice: str = "hcp", gtv_margin_mm: float = 5.0, oar_margin_mm: float = 10.0,
                   avoid=("FEMUR", "SKIN"), search_rotation: bool = False, offset_steps: int = 6,
                   rotation_steps: int = 6, add_structures: bool = True) -> VertexLattice:
    """Place vertex spheres on a lattice inside ``target`` (see the module docstring).

    Parameters
    ----------
    patient : Patient
    target : str
        Structure to fill (normally the GTV).
    diameter_mm : float
        Vertex sphere diameter [mm].
    spacing_mm : float
        Centre-to-centre spacing of the lattice [mm]; must be >= diameter_mm.
    lattice : {"hcp", "cubic"}
    gtv_margin_mm, oar_margin_mm : float
        Clearances of the sphere surfaces [mm] from the target surface and from each avoided structure.
    avoid : sequence of str
        Structures to keep away from; names not in the patient are an error.
    search_rotation : bool
        Also search the lattice rotation about z.
    offset_steps, rotation_steps : int
        Search resolution (per axis of the unit cell, and over the rotation period).
    add_structures : bool
        Add VERTICES and VALLEY to ``patient.structures``.

    Raises
    ------
    PlanError
        If no vertex fits; the message gives the target size and the constraints.
    """
    for label, value in (("diameter_mm", diameter_mm), ("spacing_mm", spacing_mm)):
        if not (np.isfinite(value) and value > 0):
            raise PlanError(f"{label}={value!r}: expected a positive length in mm")
    for label, value in (("gtv_margin_mm", gtv_margin_mm), ("oar_margin_mm", oar_margin_mm)):
        if not (np.isfinite(value) and value >= 0):
            raise PlanError(f"{label}={value!r}: expected a margin >= 0 mm")
    if spacing_mm < diameter_mm:
        raise PlanError(f"spacing_mm={spacing_mm} < diameter_mm={diameter_mm}: vertices would overlap")
    if lattice not in _LATTICES:
        raise PlanError(f"lattice={lattice!r}: expected one of {', '.join(_LATTICES)}")
    if offset_steps < 1 or rotation_steps < 1:
        raise PlanError("offset_steps and rotation_steps must be >= 1")
    avoid = tuple(avoid or ())
    grid = patient.grid
    gtv = patient.structures[target]
    if not gtv.any():
        raise PlanError(f"structure {target!r} is empty; no vertex can be placed")
    r = 0.5 * diameter_mm
    from scipy.spatial import cKDTree  # on first use, not at import (STYLE 1)

    outside_tree = cKDTree(patient.grid.voxel_centres_mm(_shell(~gtv)))
    avoid_trees = []
    for name in avoid:
        m = patient.structures[name]
        if m.any():
            avoid_trees.append((m, cKDTree(patient.grid.voxel_centres_mm(_shell(m)))))
    pts_gtv = patient.grid.voxel_centres_mm(gtv)
    lo, hi = pts_gtv.min(axis=0), pts_gtv.max(axis=0)
    centroid = pts_gtv.mean(axis=0)

    def allowed(points: np.ndarray) -> np.ndarray:
        if points.size == 0:
            return np.zeros(0, dtype=bool)
        inside = gtv[grid_index(points)]
        ok = inside & (outside_tree.query(points)[0] >= gtv_margin_mm + r)
        index = grid_index(points)
        for mask, tree in avoid_trees:  # inside the structure, or too close to its boundary voxels
            ok &= ~mask[index] & (tree.query(points)[0] >= oar_margin_mm + r)
        return ok

    origin = np.array(grid.origin_xyz_mm)
    spacing = np.array(grid.spacing_xyz_mm)
    shape = np.array(grid.shape_xyz)

    def grid_index(points: np.ndarray):
        i = np.clip(np.rint((points - origin) / spacing).astype(int), 0, shape - 1)
        return (i[:, 2], i[:, 1], i[:, 0])

    a = float(spacing_mm)
    cell = np.array([a, a * np.sqrt(3.0) / 2, 2 * a * np.sqrt(2.0 / 3.0)]) if lattice == "hcp" else np.array([a, a, a])
    period = 60.0 if lattice == "hcp" else 90.0
    rotations = [period * k / rotation_steps for k in range(rotation_steps)] if search_rotation else [0.0]
    fractions = (np.arange(offset_steps) / offset_steps)
    best = None
    for rot in rotations:
        for fx in fractions:
            for fy in fractions:
                for fz in fractions:
                    offset = cell * np.array([fx, fy, fz])
                    pts = lattice_points(lattice, a, lo, hi, offset, rot, centroid)
                    good = pts[allowed(pts)]
                    if good.shape[0] == 0:
                        continue
                    spread = float(np.linalg.norm(good - centroid, axis=1).mean())
                    key = (good.shape[0], -spread)
                    if best is None or key > best[0]:
                        best = (key, good, offset, rot)
    if best is None:
        ext = hi - lo + spacing
        names = ", ".join(avoid) or "none"
        raise PlanError(
            f"no vertex fits in {target!r} (extent {ext[0]:.0f} x {ext[1]:.0f} x {ext[2]:.0f} mm, "
            f"{patient.structures.volume_cc(target):.1f} cc): a {diameter_mm:g} mm sphere needs its centre "
            f"{gtv_margin_mm + r:g} mm inside the surface and {oar_margin_mm + r:g} mm from {names}; "
            "reduce diameter_mm or the margins (sfrt compare: --vertex-diameter, --gtv-margin, --oar-margin, "
            "fewer --avoid names)"
        )
    _, centres, offset, rot = best
    order = np.lexsort((centres[:, 0], centres[:, 1], centres[:, 2]))
    centres = centres[order]

    # masks: voxel centres within the radius of a vertex
    z, y, x = grid.coordinates_mm()
    labels = np.zeros(grid.shape_zyx, dtype=np.int16)
    nearest = np.full(grid.shape_zyx, np.inf)
    for i, (cx, cy, cz) in enumerate(centres):
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2)
        labels[d <= r] = i + 1
        nearest = np.minimum(nearest, d)
    result = VertexLattice(
        centers_xyz_mm=centres, diameter_mm=float(diameter_mm), spacing_mm=float(spacing_mm), lattice=lattice,
        offset_xyz_mm=np.asarray(offset, float), rotation_deg=float(rot), labels=labels, target=target,
        constraints={"gtv_margin_mm": float(gtv_margin_mm), "oar_margin_mm": float(oar_margin_mm), "avoid": list(avoid),
                     "valley_margin_mm": VALLEY_MARGIN_MM},
    )
    if add_structures:
        patient.structures["VERTICES"] = labels > 0
        patient.structures["VALLEY"] = gtv & (nearest > r + VALLEY_MARGIN_MM)
    return result
