"""Built-in phantoms: a water box, a slab phantom, the sarcoma thigh case and a synthetic cohort of them.

Every phantom is generated in code (no downloads) and is deterministic.
CT numbers of the tissues are typical kV-CT values (water 0 HU by definition).
"""

from __future__ import annotations

import numpy as np

from .errors import GridError
from .grid import Grid
from .patient import Patient
from .synthetic_cohort import sarcoma_cohort

__all__ = ["water_box", "slab", "sarcoma_thigh", "sarcoma_thigh_grid", "sarcoma_cohort", "TISSUE_HU"]

#: Typical kV-CT numbers [HU] of the tissues used by the phantoms.
TISSUE_HU = {
    "air": -1000.0,
    "lung": -700.0,  # inflated lung, typically -650 to -800 HU
    "fat": -100.0,
    "water": 0.0,
    "soft_tissue": 40.0,  # skeletal muscle
    "tumour": 45.0,  # soft-tissue sarcoma, close to muscle before contrast
    "skin": 20.0,
    "marrow": -50.0,  # fatty (yellow) marrow of an adult femoral shaft
    "cortical_bone": 1300.0,
}


def water_box(size_xyz_mm=(300.0, 300.0, 300.0), spacing_xyz_mm=3.0, center_xyz_mm=(0.0, 0.0, 0.0)) -> Patient:
    """A homogeneous water box filling the whole grid.

    Parameters
    ----------
    size_xyz_mm : float or tuple of float
        Box size along x, y, z [mm].
    spacing_xyz_mm : float or tuple of float
        Voxel size [mm]; scalar or (dx, dy, dz).
    center_xyz_mm : tuple of float
        Centre of the box [mm].

    Returns
    -------
    Patient
        HU 0 everywhere; structure BODY covers the grid.
    """
    grid = Grid.from_extent(size_xyz_mm, spacing_xyz_mm, center_xyz_mm)
    hu = np.zeros(grid.shape_zyx, dtype=np.float32)
    return Patient(grid, hu, {"BODY": np.ones(grid.shape_zyx, dtype=bool)}, name="water_box")


def slab(
    size_xyz_mm=(200.0, 300.0, 200.0),
    spacing_xyz_mm=2.0,
    slabs=(("LUNG", 50.0, 120.0, TISSUE_HU["lung"]),),
) -> Patient:
    """A water box with slabs of other materials perpendicular to y.

    The box is centred on the origin; y runs anterior (-y) to posterior (+y), so
    a gantry-0 beam enters at the anterior face ``y = -size_y/2``.

    Parameters
    ----------
    size_xyz_mm, spacing_xyz_mm : see :func:`water_box`
    slabs : sequence of (name, depth_from_mm, depth_to_mm, hu)
        Each slab spans depths ``[depth_from_mm, depth_to_mm)`` from the anterior
        face, in mm, and is filled with ``hu``. Each becomes a structure.

    Returns
    -------
    Patient
        With structures BODY and one per slab.
    """
    patient = water_box(size_xyz_mm, spacing_xyz_mm)
    grid = patient.grid
    y_front = grid.bounds_xyz_mm[1, 0]
    depth = grid.axis_mm("y") - y_front
    for entry in slabs:
        try:
            name, d0, d1, hu = entry
        except (TypeError, ValueError):
            raise GridError(f"slab {entry!r}: expected (name, depth_from_mm, depth_to_mm, hu)") from None
        if not 0.0 <= d0 < d1:
            raise GridError(f"slab {name!r}: depths ({d0}, {d1}) mm must satisfy 0 <= from < to")
        rows = (depth >= d0) & (depth < d1)
        if not rows.any():
            raise GridError(f"slab {name!r}: depths [{d0}, {d1}) mm contain no voxel centre of the {grid.shape_zyx} grid")
        mask = np.zeros(grid.shape_zyx, dtype=bool)
        mask[:, rows, :] = True
        patient.hu[mask] = hu
        patient.structures[name] = mask
    patient.name = "slab"
    return patient


def _ellipsoid(grid: Grid, center_xyz_mm, semi_axes_xyz_mm) -> np.ndarray:
    z, y, x = grid.coordinates_mm()
    cx, cy, cz = center_xyz_mm
    ax, ay, az = semi_axes_xyz_mm
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2 <= 1.0


def _expand(mask: np.ndarray, grid: Grid, margin_mm: float) -> np.ndarray:
    """Voxels within ``margin_mm`` of ``mask`` (Euclidean, anisotropic spacing aware)."""
    from scipy import ndimage  # on first use, not at import (STYLE 1)

    dx, dy, dz = grid.spacing_xyz_mm
    dist = ndimage.distance_transform_edt(~mask, sampling=(dz, dy, dx))
    return dist <= margin_mm


def _erode(mask: np.ndarray, grid: Grid, margin_mm: float) -> np.ndarray:
    """Voxels of ``mask`` farther than ``margin_mm`` from its outside."""
    from scipy import ndimage  # on first use, not at import (STYLE 1)

    dx, dy, dz = grid.spacing_xyz_mm
    dist = ndimage.distance_transform_edt(mask, sampling=(dz, dy, dx))
    return dist > margin_mm


def sarcoma_thigh_grid(spacing_xyz_mm=2.5, limb_semi_axes_mm=(85.0, 78.0), limb_length_mm=250.0,
                       air_margin_mm=12.5) -> Grid:
    """The grid :func:`sarcoma_thigh` builds, without building the phantom (e.g. to size a run first)."""
    a, b = limb_semi_axes_mm
    return Grid.from_extent((2 * (a + air_margin_mm), 2 * (b + air_margin_mm), limb_length_mm), spacing_xyz_mm)


def sarcoma_thigh(
    spacing_xyz_mm=2.5,
    limb_semi_axes_mm=(85.0, 78.0),
    limb_length_mm=250.0,
    tumour_center_xyz_mm=(-12.0, -22.0, 10.0),
    tumour_semi_axes_xyz_mm=(45.0, 40.0, 60.0),
    femur_center_xy_mm=(18.0, 38.0),
    femur_radius_mm=14.0,
    cortex_mm=5.0,
    skin_mm=5.0,
    ptv_margin_mm=5.0,
    air_margin_mm=12.5,
) -> Patient:
    """The default case: a thigh with a large, off-centre soft-tissue sarcoma.

    Geometry (DICOM patient coordinates, head-first supine, z along the limb):

    - limb: elliptic cylinder, about 17 x 16 cm across, ``limb_length_mm`` long,
      filling the grid in z (the CT covers a section of the limb);
    - skin: a ``skin_mm`` rind of the limb;
    - femur: cylinder of radius ``femur_radius_mm`` with a ``cortex_mm`` cortical
      shell around fatty marrow, posterior-medial to the tumour;
    - tumour (GTV): ellipsoid, default 9 x 8 x 12 cm, anterior and off-centre;
    - PTV: GTV expanded by ``ptv_margin_mm``, cropped to the body inside the skin.

    Structures: BODY, GTV, PTV, FEMUR, SKIN, NORMAL_TISSUE (body minus GTV,
    femur and skin).
    """
    a, b = limb_semi_axes_mm
    grid = sarcoma_thigh_grid(spacing_xyz_mm, limb_semi_axes_mm, limb_length_mm, air_margin_mm)
    z, y, x = grid.coordinates_mm()
    shape = grid.shape_zyx

    body = np.broadcast_to((x / a) ** 2 + (y / b) ** 2 <= 1.0, shape).copy()
    skin = body & ~_erode(body, grid, skin_mm)
    fx, fy = femur_center_xy_mm
    r = np.sqrt((x - fx) ** 2 + (y - fy) ** 2)
    femur = np.broadcast_to(r <= femur_radius_mm, shape).copy()
    marrow = np.broadcast_to(r <= femur_radius_mm - cortex_mm, shape).copy()
    gtv = _ellipsoid(grid, tumour_center_xyz_mm, tumour_semi_axes_xyz_mm) & body & ~skin & ~femur
    if gtv.sum() * grid.voxel_volume_mm3 < 0.5 * (4 / 3) * np.pi * np.prod(tumour_semi_axes_xyz_mm):
        raise GridError(
            "sarcoma_thigh: less than half of the tumour ellipsoid fits inside the limb; "
            "move tumour_center_xyz_mm inward or shrink tumour_semi_axes_xyz_mm"
        )
    ptv = _expand(gtv, grid, ptv_margin_mm) & body & ~skin

    hu = np.full(shape, TISSUE_HU["air"], dtype=np.float32)
    hu[body] = TISSUE_HU["soft_tissue"]
    hu[skin] = TISSUE_HU["skin"]
    hu[femur] = TISSUE_HU["cortical_bone"]
    hu[marrow] = TISSUE_HU["marrow"]
    hu[gtv] = TISSUE_HU["tumour"]

    structures = {
        "BODY": body,
        "GTV": gtv,
        "PTV": ptv,
        "FEMUR": femur,
        "SKIN": skin,
        "NORMAL_TISSUE": body & ~gtv & ~femur & ~skin,
    }
    return Patient(grid, hu, structures, name="sarcoma_thigh")
