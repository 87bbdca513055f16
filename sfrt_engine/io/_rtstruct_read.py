"""RT Structure Set -> boolean masks on a CT grid.

Each CLOSED_PLANAR contour is assigned to the CT slice nearest its plane (contours more than
half a slice spacing outside the CT are an error). Within a slice, an ROI's contours are drawn
from the one contour plane closest to the slice centre, and a voxel centre is inside when a
ray from it along +x crosses the edges of those contours an odd number of times (even-odd
rule), so a contour inside another is a hole. POINT and OPEN contours are not volumes and are
skipped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..grid import Grid
from ._errors import DicomError, malformed_dicom
from ._polygons import fill_even_odd

__all__ = ["read_structures"]

#: Contour points may lie this far beyond the outer faces of the CT grid [mm].
EDGE_TOL_MM = 0.01
#: Largest z spread of the points of one contour [mm]; more means it is not axial.
PLANE_TOL_MM = 0.05


def _requested(structures, available: dict, path: Path) -> dict[str, str]:
    """{name in the Patient: ROI name in the file}."""
    if structures is None:
        return {name: name for name in available}
    if isinstance(structures, str):
        structures = [structures]
    wanted = dict(structures) if isinstance(structures, Mapping) else {str(n): str(n) for n in structures}
    missing = [roi for roi in wanted.values() if roi not in available]
    if missing:
        hint = ""
        if isinstance(structures, Mapping):
            swapped = [new for new, roi in wanted.items() if roi in missing and new in available]
            if swapped:
                hint = (f" (the map is {{new name: ROI name in the file}}; {swapped} are ROI names, "
                        "did you swap keys and values?)")
        raise DicomError(f"{path}: no ROI named {', '.join(map(repr, missing))}; the structure set holds "
                         f"{', '.join(map(repr, available)) or 'no ROIs'}{hint}")
    return wanted


def _rois(dataset, path: Path, frame_uid: str) -> dict[str, int]:
    """ROI name -> ROI number; checks the frame of reference of the set and of each ROI."""
    refs = [str(item.get("FrameOfReferenceUID", "")) for item in dataset.get("ReferencedFrameOfReferenceSequence", [])]
    if refs and frame_uid not in refs:
        raise DicomError(f"{path}: the structure set references FrameOfReferenceUID {', '.join(refs)}, but the CT "
                         f"has {frame_uid}; it was drawn on another image set")
    names: dict[str, int] = {}
    for item in dataset.get("StructureSetROISequence", []):
        name = str(item.get("ROIName", "")).strip()
        number = int(item.ROINumber)
        roi_frame = str(item.get("ReferencedFrameOfReferenceUID", "") or frame_uid)
        if roi_frame != frame_uid:
            raise DicomError(f"{path}: ROI {name!r} references FrameOfReferenceUID {roi_frame}, but the CT has "
                             f"{frame_uid}; it was drawn on another image set")
        if name in names:
            raise DicomError(f"{path}: two ROIs are named {name!r} (ROI numbers {names[name]} and {number}); "
                             "rename one in the planning system")
        names[name] = number
    return names


def _contours(dataset, path: Path, names: dict[int, str]) -> dict[int, list[np.ndarray]]:
    """ROI number -> closed planar contours, each an (n, 3) array of points [mm]."""
    out: dict[int, list[np.ndarray]] = defaultdict(list)
    for item in dataset.get("ROIContourSequence", []):
        number = int(item.ReferencedROINumber)
        name = names.get(number, f"number {number}")
        for k, contour in enumerate(item.get("ContourSequence", [])):
            if str(contour.get("ContourGeometricType", "")) != "CLOSED_PLANAR":
                continue
            data = np.asarray([float(v) for v in contour.get("ContourData", [])], dtype=float)
            if data.size % 3 or data.size < 9 or not np.all(np.isfinite(data)):
                raise DicomError(f"{path}: ROI {name!r}, contour {k}: ContourData has {data.size} values; "
                                 "a closed planar contour needs at least 3 finite (x, y, z) points")
            out[number].append(data.reshape(-1, 3))
    return out


def _rasterise(name: str, contours: list[np.ndarray], grid: Grid, path: Path) -> np.ndarray:
    lo, hi = grid.bounds_xyz_mm[:, 0] - EDGE_TOL_MM, grid.bounds_xyz_mm[:, 1] + EDGE_TOL_MM
    origin, spacing = np.asarray(grid.origin_xyz_mm), np.asarray(grid.spacing_xyz_mm)
    planes: dict[int, dict[float, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    for k, pts in enumerate(contours):
        if np.ptp(pts[:, 2]) > PLANE_TOL_MM:
            raise DicomError(f"{path}: ROI {name!r}, contour {k}: its points span z {pts[:, 2].min():.2f} to "
                             f"{pts[:, 2].max():.2f} mm; only axial contours are supported")
        if np.any(pts.min(axis=0) < lo) or np.any(pts.max(axis=0) > hi):
            box = ", ".join(f"{a} {pts[:, i].min():.1f} to {pts[:, i].max():.1f}" for i, a in enumerate("xyz"))
            ct = ", ".join(f"{a} {grid.bounds_xyz_mm[i, 0]:.1f} to {grid.bounds_xyz_mm[i, 1]:.1f}"
                           for i, a in enumerate("xyz"))
            raise DicomError(f"{path}: ROI {name!r}, contour {k} lies outside the CT grid (contour: {box} mm; "
                             f"CT: {ct} mm)")
        z = float(np.mean(pts[:, 2]))
        iz = int(np.clip(np.rint((z - origin[2]) / spacing[2]), 0, grid.shape_zyx[0] - 1))
        planes[iz][round(z, 3)].append((pts[:, :2] - origin[:2]) / spacing[:2])
    mask = np.zeros(grid.shape_zyx, dtype=bool)
    for iz, by_plane in planes.items():
        z_slice = origin[2] + iz * spacing[2]
        nearest = min(by_plane, key=lambda z: abs(z - z_slice))
        mask[iz] = fill_even_odd(by_plane[nearest], grid.shape_zyx[1:])
    return mask


def read_structures(dataset, path: Path, grid: Grid, frame_uid: str, structures=None) -> tuple[dict, dict]:
    """Masks of the requested ROIs of an RT Structure Set on ``grid``.

    Returns
    -------
    masks : dict of str to ndarray of bool [z, y, x]
    info : dict
        SOPInstanceUID, StructureSetLabel, the ROI name of each mask and the ROIs skipped for having no
        closed planar contours.
    """
    with malformed_dicom(path):
        available = _rois(dataset, path, frame_uid)
        wanted = _requested(structures, available, path)
        contours = _contours(dataset, path, {number: name for name, number in available.items()})
    masks, skipped = {}, []
    for new_name, roi in wanted.items():
        found = contours.get(available[roi], [])
        if not found:
            if structures is not None:
                raise DicomError(f"{path}: ROI {roi!r} has no closed planar contours")
            skipped.append(roi)
            continue
        masks[new_name] = _rasterise(roi, found, grid, path)
    info = {"SOPInstanceUID": str(dataset.get("SOPInstanceUID", "")),
            "StructureSetLabel": str(dataset.get("StructureSetLabel", "")),
            "roi_names": {new: roi for new, roi in wanted.items() if new in masks}, "skipped_rois": skipped}
    return masks, info
