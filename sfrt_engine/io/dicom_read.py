"""DICOM import: an axial head-first-supine CT series plus its RT Structure Set -> Patient; RT Dose -> Dose.

Every problem with the input is a :class:`DicomError` that names the file (or ROI) and what is
wrong; nothing is guessed silently. Geometry follows DICOM PS3.3 C.7.6.2: ImagePositionPatient
is the centre of the first pixel, PixelSpacing is ``[row spacing (y), column spacing (x)]``, and
slices are ordered by their position along the slice normal, the cross product of the two
ImageOrientationPatient direction cosines.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pydicom

from ..dose import Dose
from ..grid import Grid
from ..patient import DEFAULT_HU_TO_DENSITY, Patient, check_ct_numbers
from ._dicom_common import (
    IDENTITY_KEYS,
    RT_DOSE_STORAGE,
)
from ._dicom_scan import Inventory, referenced_series, roi_names, scan_folder
from ._errors import DicomError, malformed_dicom
from ._rtstruct_read import read_structures

log = logging.getLogger(__name__)

__all__ = ["read_dicom", "read_rtdose"]

#: Positions and spacings that differ by less than this are equal [mm].
POSITION_TOL_MM = 0.01
#: Largest deviation of a direction cosine from the axial HFS orientation.
ORIENTATION_TOL = 1e-4
_AXIAL_HFS = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])


def _read_file(path: Path, **kwargs) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(path, **kwargs)
    except pydicom.errors.InvalidDicomError:
        raise DicomError(f"{path}: not a DICOM file (no 'DICM' file header); remove it from the folder") from None
    except Exception as exc:  # noqa: BLE001 -- pydicom raises many types for a damaged file; all mean "unreadable"
        raise DicomError(f"{path}: unreadable DICOM file ({type(exc).__name__}: {exc})") from None


def _scan(folder: Path) -> tuple[list, list, list, Inventory]:
    """The CT slices and RT Structure Set(s) of the case under ``folder`` (subfolders included).

    Where the tree holds several CT series, the one the structure set was drawn on is taken (the
    others are listed as skipped); without such a reference, several series are an error.
    """
    inventory = scan_folder(folder)
    if not inventory.cts:
        raise DicomError(f"{folder}: no CT image series found (found: {inventory.describe()})")
    skipped = list(inventory.others)
    cts, structs = inventory.cts, inventory.structs
    series = inventory.ct_series()
    if len(series) > 1:
        drawn_on = {uid for _, h in structs for uid in referenced_series(h) if uid in series}
        if len(drawn_on) == 1:
            chosen = drawn_on.pop()
            cts = [(p, h) for p, h in cts if str(h.get("SeriesInstanceUID", "")) == chosen]
            skipped += [f"CT series {uid} ({n} slices, not the one the structure set was drawn on)"
                        for uid, (n, _) in series.items() if uid != chosen]
            structs = [(p, h) for p, h in structs if chosen in referenced_series(h)]
    log.info("DICOM folder %s: %s", folder, inventory.describe())
    return cts, structs, skipped, inventory


def _require(path: Path, header, key: str):
    value = header.get(key)
    if value is None or value == "":
        raise DicomError(f"{path}: missing {key}, which every CT slice must have")
    return value


def _check_orientation(path: Path, header) -> None:
    iop = np.asarray([float(v) for v in _require(path, header, "ImageOrientationPatient")])
    position = str(header.get("PatientPosition", "") or "")
    if position and position != "HFS":
        raise DicomError(f"{path}: PatientPosition {position}; only head-first supine (HFS) CT is supported")
    tilt = float(header.get("GantryDetectorTilt", 0.0) or 0.0)
    if abs(tilt) > 1e-3:
        raise DicomError(f"{path}: gantry tilt of {tilt:g} deg; tilted acquisitions are not supported, "
                         "resample the series to axial slices first")
    if iop.shape != (6,) or np.max(np.abs(iop - _AXIAL_HFS)) > ORIENTATION_TOL:
        normal = np.cross(iop[:3], iop[3:6]) if iop.shape == (6,) else np.full(3, np.nan)
        kind = ("axial but rotated or mirrored (not head-first supine)" if abs(abs(normal[2]) - 1) < 1e-3
                else "oblique (not axial)")
        raise DicomError(f"{path}: ImageOrientationPatient {iop.round(4).tolist()} is {kind}; only axial "
                         "head-first-supine CT with orientation [1, 0, 0, 0, 1, 0] is supported")


def _one(values: dict, what: str, folder: Path, advice: str, labels: dict | None = None) -> str:
    if len(values) != 1:
        listing = "; ".join(f"{uid} ({n} slice{'s' * (n != 1)}{', ' + repr(labels[uid]) if labels else ''})"
                            for uid, n in values.items())
        raise DicomError(f"{folder}: CT slices belong to {len(values)} different {what}: {listing}. {advice}")
    return next(iter(values))


def _sort_slices(cts: list, folder: Path) -> tuple[list, float]:
    """Slices ordered along the normal, and the uniform slice spacing [mm]; rejects gaps and duplicates."""
    for path, h in cts:
        for key in ("SeriesInstanceUID", "FrameOfReferenceUID", "StudyInstanceUID"):
            _require(path, h, key)
    series = Counter(str(h.get("SeriesInstanceUID", "")) for _, h in cts)
    labels = {str(h.get("SeriesInstanceUID", "")): str(h.get("SeriesDescription", "") or "") for _, h in cts}
    _one(series, "series", folder, "Mixed series: keep one CT series in the folder and its subfolders, or add the "
         "RT Structure Set that references one.", labels)
    frames = Counter(str(h.get("FrameOfReferenceUID", "")) for _, h in cts)
    _one(frames, "FrameOfReferenceUIDs", folder, "All slices of a series must share one frame of reference.")
    for path, h in cts:
        _check_orientation(path, h)
        if int(h.get("NumberOfFrames", 1) or 1) != 1:
            raise DicomError(f"{path}: multi-frame (enhanced) CT is not supported; export single-frame slices")
    first = cts[0][1]
    iop = np.asarray([float(v) for v in first.ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:6])
    ipp = np.array([[float(v) for v in _require(p, h, "ImagePositionPatient")] for p, h in cts])
    order = np.argsort(ipp @ normal, kind="stable")
    cts = [cts[i] for i in order]
    ipp = ipp[order]
    pos = ipp @ normal
    for key in ("Rows", "Columns"):
        for p, h in cts:
            if int(_require(p, h, key)) != int(first[key].value):
                raise DicomError(f"{p}: {key} {h[key].value} differs from {first[key].value} of the other slices")
    spacing = np.asarray([float(v) for v in _require(cts[0][0], first, "PixelSpacing")])
    for p, h in cts:
        if np.max(np.abs(np.asarray([float(v) for v in _require(p, h, "PixelSpacing")]) - spacing)) > 1e-4:
            raise DicomError(f"{p}: PixelSpacing {list(h.PixelSpacing)} differs from {spacing.tolist()} "
                             "of the other slices")
    shift = np.max(np.abs(ipp[:, :2] - ipp[0, :2]), axis=0)
    if np.any(shift > POSITION_TOL_MM):
        raise DicomError(f"{folder}: slice positions move in x/y by up to {shift.round(3).tolist()} mm from slice "
                         "to slice (a gantry tilt or sheared series); only axial, unsheared series are supported")
    if len(cts) < 2:
        raise DicomError(f"{folder}: a single CT slice ({cts[0][0].name}); at least two are needed for the "
                         "slice spacing")
    gaps = np.diff(pos)
    duplicates = np.nonzero(gaps < POSITION_TOL_MM)[0]
    if duplicates.size:
        k = duplicates[0]
        raise DicomError(f"{folder}: duplicated slice at z = {pos[k]:.3f} mm: {cts[k][0].name} and "
                         f"{cts[k + 1][0].name} (remove one)")
    dz = float(np.median(gaps))
    uneven = np.nonzero(np.abs(gaps - dz) > POSITION_TOL_MM)[0]
    if uneven.size:
        k = uneven[0]
        n_missing = gaps[k] / dz - 1
        if abs(n_missing - round(n_missing)) < 0.05 and round(n_missing) >= 1:
            raise DicomError(f"{folder}: missing slice: gap of {gaps[k]:.3f} mm between z = {pos[k]:.3f} mm "
                             f"({cts[k][0].name}) and z = {pos[k + 1]:.3f} mm ({cts[k + 1][0].name}), expected "
                             f"{dz:.3f} mm; {round(n_missing)} slice(s) missing")
        raise DicomError(f"{folder}: non-uniform slice spacing: {gaps[k]:.3f} mm between z = {pos[k]:.3f} mm "
                         f"and z = {pos[k + 1]:.3f} mm, elsewhere {dz:.3f} mm (tolerance {POSITION_TOL_MM} mm)")
    return cts, dz


def _hu(path: Path, header_rows: int, header_cols: int) -> np.ndarray:
    with malformed_dicom(path):
        return _rescaled(_read_file(path), path, header_rows, header_cols)


def _rescaled(full, path: Path, header_rows: int, header_cols: int) -> np.ndarray:
    if int(full.get("SamplesPerPixel", 1)) != 1 or full.get("PhotometricInterpretation") != "MONOCHROME2":
        raise DicomError(f"{path}: expected a MONOCHROME2 greyscale CT image, got "
                         f"{full.get('PhotometricInterpretation')} with {full.get('SamplesPerPixel')} samples")
    try:
        pixels = full.pixel_array
    except Exception as exc:  # noqa: BLE001 -- each pixel decoder has its own error types
        ts = full.file_meta.get("TransferSyntaxUID", "unknown")
        raise DicomError(f"{path}: cannot decode the pixel data (transfer syntax {ts}: {exc})") from None
    if pixels.shape != (header_rows, header_cols):
        raise DicomError(f"{path}: pixel data of shape {pixels.shape}, expected ({header_rows}, {header_cols})")
    slope = float(full.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(full.get("RescaleIntercept", 0.0) or 0.0)
    return pixels.astype(np.float64) * slope + intercept


def _identity(first, folder: Path, cts: list) -> dict:
    ident = {key: str(first.get(key, "") or "") for key in IDENTITY_KEYS}
    ident["ct_series_instance_uid"] = str(first.SeriesInstanceUID)
    ident["ct_sop_instance_uids"] = [str(h.get("SOPInstanceUID", "")) for _, h in cts]
    ident["ct_series_description"] = str(first.get("SeriesDescription", "") or "")
    ident["origin"] = f"read from {folder}"
    return ident


def read_dicom(folder, structures: Mapping[str, str] | list[str] | None = None) -> Patient:
    """Read a CT series and the RT Structure Set beside it into a Patient.

    The folder and its subfolders must hold one axial, head-first-supine CT series (or several, of
    which the RT Structure Set references one) and at most one RT Structure Set for it; other DICOM
    objects (RT Plan, RT Dose, ...) and files that are not DICOM are skipped and listed in
    ``patient.dicom``. CT numbers outside the calibration's range are an error, a few voxels of
    metal above 3071 HU a warning (:func:`sfrt_engine.patient.check_ct_numbers`). HU are the
    stored pixels times RescaleSlope plus RescaleIntercept. Contours are rasterised onto the CT
    slices by the even-odd rule (holes work; see :mod:`sfrt_engine.io._rtstruct_read`).

    Parameters
    ----------
    folder : str or Path
    structures : None, list of str, or dict of str to str
        None: every ROI with closed planar contours, under its own name. A list: only those
        ROIs. A dict ``{name in the Patient: ROI name in the file}``, e.g. ``{"GTV": "GTV_1"}``:
        only those ROIs, renamed.

    Returns
    -------
    Patient
        ``patient.dicom`` holds PatientID, PatientName, StudyInstanceUID, FrameOfReferenceUID,
        the CT SeriesInstanceUID and SOPInstanceUIDs (by slice) and the RT Structure Set used,
        so exports share the CT's study and frame of reference; ``skipped_files`` (other DICOM
        objects), ``non_dicom_files`` and ``inventory`` (what the folder holds, in one paragraph).

    Raises
    ------
    DicomError
        Unreadable files, mixed series or frames of reference, missing or duplicated slices,
        non-uniform spacing, non-axial, non-HFS or tilted images, an RT Structure Set for another
        frame of reference, contours outside the CT, requested ROIs that are absent.
    """
    folder = Path(folder)
    cts, structs, skipped, inventory = _scan(folder)
    with malformed_dicom(folder):
        cts, dz = _sort_slices(cts, folder)
        first = cts[0][1]
        rows, cols = int(first.Rows), int(first.Columns)
        row_mm, col_mm = (float(v) for v in first.PixelSpacing)
        grid = Grid((len(cts), rows, cols), (col_mm, row_mm, dz),
                    tuple(float(v) for v in first.ImagePositionPatient))
    hu = np.stack([_hu(path, rows, cols) for path, _ in cts]).astype(np.float32)
    check_ct_numbers(hu, DEFAULT_HU_TO_DENSITY, f"{folder}: CT series {first.SeriesInstanceUID}", DicomError)
    ident = _identity(first, folder, cts)
    masks: dict = {}
    if len(structs) > 1:
        listing = ", ".join(f"{inventory.rel(p)} (ROIs: {', '.join(roi_names(h))})" for p, h in structs)
        raise DicomError(f"{folder}: {len(structs)} RT Structure Sets ({listing}); "
                         "keep the one that belongs to this CT")
    if structs:
        path = structs[0][0]
        masks, info = read_structures(_read_file(path), path, grid, ident["FrameOfReferenceUID"], structures)
        ident["rtstruct"] = dict(info, file=path.name)
    elif structures:
        raise DicomError(f"{folder}: structures {list(structures)} were asked for, but the folder holds no "
                         f"RT Structure Set (found: {inventory.describe()})")
    ident["skipped_files"] = skipped
    ident["non_dicom_files"] = list(inventory.non_dicom)
    ident["inventory"] = inventory.describe()
    name = str(first.get("PatientName", "") or "") or ident["PatientID"] or folder.name
    patient = Patient(grid, hu, masks, name=name)
    patient.dicom = ident
    return patient


def read_rtdose(path) -> Dose:
    """Read an axial head-first-supine RT Dose file as a :class:`Dose` (backend ``"dicom"``).

    Dose [Gy] = pixel * DoseGridScaling. GridFrameOffsetVector may be relative (first offset 0)
    or absolute (first offset = the z of ImagePositionPatient); its steps must be uniform.
    """
    path = Path(path)
    dataset = _read_file(path)
    with malformed_dicom(path):
        return _dose(dataset, path)


def _dose(dataset, path: Path) -> Dose:
    if str(dataset.get("SOPClassUID", "")) != RT_DOSE_STORAGE:
        raise DicomError(f"{path}: not an RT Dose file (SOP Class {dataset.get('SOPClassUID', 'missing')})")
    _check_orientation(path, dataset)
    units = str(dataset.get("DoseUnits", ""))
    if units != "GY":
        raise DicomError(f"{path}: DoseUnits {units!r}; only absolute dose in GY is supported")
    ipp = np.asarray([float(v) for v in _require(path, dataset, "ImagePositionPatient")])
    offsets = np.asarray([float(v) for v in _require(path, dataset, "GridFrameOffsetVector")])
    if offsets.size > 1 and abs(offsets[0]) > POSITION_TOL_MM:
        if abs(offsets[0] - ipp[2]) > POSITION_TOL_MM:
            raise DicomError(f"{path}: GridFrameOffsetVector starts at {offsets[0]} mm, neither 0 (relative) nor "
                             f"the image position z = {ipp[2]} mm (absolute)")
        offsets = offsets - offsets[0]
    steps = np.diff(offsets)
    dz = float(steps[0]) if steps.size else float(dataset.get("SliceThickness", 1.0) or 1.0)
    if steps.size and (dz <= 0 or np.max(np.abs(steps - dz)) > POSITION_TOL_MM):
        raise DicomError(f"{path}: GridFrameOffsetVector steps {steps.round(3).tolist()} mm are not uniform "
                         "and increasing")
    try:
        pixels = dataset.pixel_array
    except Exception as exc:  # noqa: BLE001 -- each pixel decoder has its own error types
        raise DicomError(f"{path}: cannot decode the pixel data ({exc})") from None
    pixels = pixels.reshape(offsets.size, int(dataset.Rows), int(dataset.Columns))
    row_mm, col_mm = (float(v) for v in dataset.PixelSpacing)
    grid = Grid(pixels.shape, (col_mm, row_mm, dz), tuple(ipp))
    gy = pixels.astype(np.float64) * float(dataset.get("DoseGridScaling", 1.0))
    return Dose(gy=gy, grid=grid, backend="dicom")
