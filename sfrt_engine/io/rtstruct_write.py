"""RT Structure Set export of the SFRT lattice: one ROI per vertex, their union and the valley.

Contours are CLOSED_PLANAR polygons on the patient's CT slices. A vertex given as a sphere
(centre and radius) becomes, on each slice it crosses, a polygon with the area of the exact
circle of intersection. A structure given as a mask becomes the outlines of the mask, traced
between voxel centres (holes included), so reading the file back with the even-odd rule
reproduces the mask voxel for voxel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from scipy import ndimage

from ..patient import Patient
from ._dicom_common import CT_IMAGE_STORAGE, RT_STRUCTURE_SET_STORAGE, identity, lo, new_dataset, write_dataset
from ._polygons import circle_polygon, mask_polygons

__all__ = ["write_rtstruct"]

_STUDY_COMPONENT_MANAGEMENT = "1.2.840.10008.3.1.2.3.1"  # the conventional ReferencedSOPClassUID for a study
_COLORS = {"VERTICES": [255, 0, 0], "VALLEY": [0, 128, 255]}
_VERTEX_COLOR = [255, 140, 0]
_OTHER_COLOR = [0, 200, 0]


def _vertex_spheres(vertices) -> tuple[np.ndarray, np.ndarray]:
    """(centres (n, 3) [mm], radii (n,) [mm]) from a VertexLattice-like object or a (centres, radius) pair."""
    if isinstance(vertices, tuple) and len(vertices) == 2:
        centers, radius = vertices
    else:
        centers = vertices.centers_xyz_mm
        radius = getattr(vertices, "radius_mm", None)
        radius = 0.5 * vertices.diameter_mm if radius is None else radius
    centers = np.asarray(centers, dtype=float).reshape(-1, 3)
    radii = np.broadcast_to(np.asarray(radius, dtype=float), (centers.shape[0],)).copy()
    if not (np.all(np.isfinite(centers)) and np.all(np.isfinite(radii)) and np.all(radii > 0)):
        raise ValueError(f"vertices: centres must be finite and radii > 0 mm, got radii {radii.tolist()}")
    return centers, radii


def _mask_contours(mask: np.ndarray, grid) -> dict[int, list[np.ndarray]]:
    """Slice index -> outlines of the mask in (x, y) [mm]."""
    origin, spacing = np.asarray(grid.origin_xyz_mm[:2]), np.asarray(grid.spacing_xyz_mm[:2])
    return {int(iz): [origin + poly * spacing for poly in mask_polygons(mask[iz])]
            for iz in np.nonzero(mask.any(axis=(1, 2)))[0]}


def _sphere_contours(centers: np.ndarray, radii: np.ndarray, grid) -> dict[int, list[np.ndarray]]:
    """Slice index -> circles of intersection of the spheres with each slice plane, (x, y) [mm]."""
    out: dict[int, list[np.ndarray]] = {}
    z = grid.axis_mm("z")
    for c, r in zip(centers, radii):
        for iz in np.nonzero(np.abs(z - c[2]) < r)[0]:
            rs = float(np.sqrt(r * r - (z[iz] - c[2]) ** 2))
            out.setdefault(int(iz), []).append(circle_polygon(c[:2], rs, max_chord=0.5 * min(grid.spacing_xyz_mm[:2])))
    return out


def _spheres_disjoint(centers: np.ndarray, radii: np.ndarray) -> bool:
    d = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return bool(np.all(d >= radii[:, None] + radii[None]))


def _sphere_union_mask(centers: np.ndarray, radii: np.ndarray, grid) -> np.ndarray:
    z, y, x = grid.coordinates_mm()
    mask = np.zeros(grid.shape_zyx, dtype=bool)
    for c, r in zip(centers, radii):
        mask |= (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 < r * r
    return mask


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """Connected parts (26-connected) of a mask, ordered by centroid z, then y, then x."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    parts = [labels == i for i in range(1, n + 1)]
    return sorted(parts, key=lambda m: tuple(np.mean(np.nonzero(m), axis=1)))


def _rois(patient: Patient, names, vertices, vertex_structure: str, vertex_prefix: str) -> list[tuple]:
    """[(name, interpreted type, colour, {slice: [polygons]})] in export order."""
    grid = patient.grid
    spheres = _vertex_spheres(vertices) if vertices is not None else None
    rois = []
    for name in names:
        if name == vertex_structure:
            if spheres is not None:
                for i, (c, r) in enumerate(zip(*spheres)):
                    rois.append((f"{vertex_prefix}{i + 1:02d}", "PTV", _VERTEX_COLOR,
                                 _sphere_contours(c[None], r[None], grid)))
            else:
                for i, part in enumerate(_components(patient.structures[name])):
                    rois.append((f"{vertex_prefix}{i + 1:02d}", "PTV", _VERTEX_COLOR, _mask_contours(part, grid)))
            if name in patient.structures:
                contours = _mask_contours(patient.structures[name], grid)
            elif _spheres_disjoint(*spheres):
                contours = _sphere_contours(*spheres, grid)
            else:  # overlapping spheres: contour their union, not each circle (even-odd would cut the overlap)
                contours = _mask_contours(_sphere_union_mask(*spheres, grid), grid)
            rois.append((name, "PTV", _COLORS.get(name, _VERTEX_COLOR), contours))
        else:
            rois.append((name, "CONTROL", _COLORS.get(name, _OTHER_COLOR),
                         _mask_contours(patient.structures[name], grid)))
    return rois


def _contour_item(polygon_xy: np.ndarray, z_mm: float, number: int, image_uid: str | None) -> Dataset:
    item = Dataset()
    if image_uid:
        ref = Dataset()
        ref.ReferencedSOPClassUID = CT_IMAGE_STORAGE
        ref.ReferencedSOPInstanceUID = image_uid
        item.ContourImageSequence = Sequence([ref])
    item.ContourGeometricType = "CLOSED_PLANAR"
    item.NumberOfContourPoints = len(polygon_xy)
    item.ContourNumber = number
    pts = np.column_stack([polygon_xy, np.full(len(polygon_xy), z_mm)]).round(3)
    item.ContourData = [float(v) for v in pts.ravel()]
    return item


def _referenced_frame(ident: dict, image_uids: list | None) -> Dataset:
    frame = Dataset()
    frame.FrameOfReferenceUID = ident["FrameOfReferenceUID"]
    if image_uids:
        images = []
        for uid in image_uids:
            ref = Dataset()
            ref.ReferencedSOPClassUID = CT_IMAGE_STORAGE
            ref.ReferencedSOPInstanceUID = uid
            images.append(ref)
        series = Dataset()
        series.SeriesInstanceUID = ident["ct_series_instance_uid"]
        series.ContourImageSequence = Sequence(images)
        study = Dataset()
        study.ReferencedSOPClassUID = _STUDY_COMPONENT_MANAGEMENT
        study.ReferencedSOPInstanceUID = ident["StudyInstanceUID"]
        study.RTReferencedSeriesSequence = Sequence([series])
        frame.RTReferencedStudySequence = Sequence([study])
    return frame


def write_rtstruct(path, patient: Patient, names=("VERTICES", "VALLEY"), *, vertices=None,
                   vertex_structure: str = "VERTICES", vertex_prefix: str = "VERTEX_",
                   label: str = "SFRT lattice") -> Path:
    """Write the lattice (or any structures) as a DICOM RT Structure Set on the patient's CT slices.

    For ``vertex_structure`` (if in ``names``) the file holds one ROI per vertex
    (``VERTEX_01``, ``VERTEX_02``, ... in the order of ``vertices.centers_xyz_mm``, or of the
    mask's connected parts by z, y, x) and the combined ROI; every other name is one ROI from its
    mask. The study and frame of reference are the patient's (see
    :func:`sfrt_engine.io.write_rtdose`); contours reference the CT images when their UIDs are
    known (a patient read from DICOM, or after :func:`sfrt_engine.io.write_ct`).

    Parameters
    ----------
    path : str or Path
        File to write (atomically).
    patient : Patient
    names : sequence of str
        Structures to export, in order.
    vertices : VertexLattice, or (centres (n, 3) [mm], radius [mm] or radii (n,)), optional
        Vertex spheres, written as exact circles per slice. Without it, the vertices are the
        connected parts of ``patient.structures[vertex_structure]``.
    vertex_structure, vertex_prefix : str
        Name of the combined vertex structure, and the prefix of the per-vertex ROIs.
    label : str
        StructureSetLabel (16 characters kept) and SeriesDescription.

    Returns
    -------
    Path
    """
    if not isinstance(patient, Patient):
        raise TypeError(f"patient must be a sfrt_engine.Patient, got {type(patient).__name__}")
    names = [names] if isinstance(names, str) else list(names)
    rois = _rois(patient, names, vertices, vertex_structure, vertex_prefix)
    ident = identity(patient)
    image_uids = ident.get("ct_sop_instance_uids") or None
    if image_uids is not None and len(image_uids) != patient.grid.shape_zyx[0]:
        image_uids = None  # not this grid's slices: reference the frame only

    out = new_dataset(RT_STRUCTURE_SET_STORAGE, "RTSTRUCT", ident, series_description=label)
    out.InstanceNumber = 1
    out.StructureSetLabel = lo(label, 16)
    out.StructureSetName = lo(label)
    out.StructureSetDate, out.StructureSetTime = out.InstanceCreationDate, out.InstanceCreationTime
    out.ReferencedFrameOfReferenceSequence = Sequence([_referenced_frame(ident, image_uids)])
    z_mm = patient.grid.axis_mm("z")
    roi_items, contour_items, observations = [], [], []
    for number, (name, kind, color, contours) in enumerate(rois, start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = ident["FrameOfReferenceUID"]
        roi.ROIName = lo(name)
        roi.ROIGenerationAlgorithm = "AUTOMATIC"
        roi_items.append(roi)
        item = Dataset()
        item.ROIDisplayColor = color
        item.ReferencedROINumber = number
        polygons = [(iz, poly) for iz in sorted(contours) for poly in contours[iz]]
        if polygons:
            item.ContourSequence = Sequence([
                _contour_item(poly, float(z_mm[iz]), k, image_uids[iz] if image_uids else None)
                for k, (iz, poly) in enumerate(polygons, start=1)])
        contour_items.append(item)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = kind
        obs.ROIInterpreter = ""
        observations.append(obs)
    out.StructureSetROISequence = Sequence(roi_items)
    out.ROIContourSequence = Sequence(contour_items)
    out.RTROIObservationsSequence = Sequence(observations)
    return write_dataset(out, Path(path))
