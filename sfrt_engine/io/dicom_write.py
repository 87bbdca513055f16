"""DICOM export of grids: RT Dose (physical or EQD2) and, for patients not read from DICOM, the CT.

Geometry (DICOM PS3.3 C.7.6.2, C.8.8.3): the engine's grid is axial, head-first supine, so
ImageOrientationPatient is ``[1, 0, 0, 0, 1, 0]``, ImagePositionPatient is the centre of voxel
``[0, 0, 0]`` (the grid origin), PixelSpacing is ``[row spacing (y), column spacing (x)]`` and
frame ``k`` of a dose lies ``k * dz`` above the first (GridFrameOffsetVector).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from ..dose import Dose
from ..patient import Patient
from ._dicom_common import CT_IMAGE_STORAGE, RT_DOSE_STORAGE, ds, identity, lo, new_dataset, write_dataset

__all__ = ["write_rtdose", "write_ct"]

_UINT32_MAX = 2**32 - 1
_DOSE_TYPES = ("PHYSICAL", "EFFECTIVE", "ERROR")


def _image_plane(out: Dataset, grid, z_index: int = 0) -> None:
    x0, y0, z0 = grid.origin_xyz_mm
    dx, dy, dz = grid.spacing_xyz_mm
    out.ImagePositionPatient = [ds(x0), ds(y0), ds(z0 + z_index * dz)]
    out.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    out.PixelSpacing = [ds(dy), ds(dx)]
    out.SliceThickness = ds(dz)
    out.Rows, out.Columns = grid.shape_zyx[1], grid.shape_zyx[2]
    out.SamplesPerPixel = 1
    out.PhotometricInterpretation = "MONOCHROME2"


def _dose_array(dose, patient: Patient) -> np.ndarray:
    if isinstance(dose, Dose):
        if dose.grid != patient.grid:
            raise ValueError(f"dose grid {dose.grid} differs from the patient grid {patient.grid}; "
                             "RT Dose is written on the patient's CT frame of reference")
        dose = dose.gy
    gy = np.asarray(patient.grid.check_array(dose, "dose"), dtype=np.float64)
    if not np.all(np.isfinite(gy)):
        raise ValueError(f"dose: {int(np.count_nonzero(~np.isfinite(gy)))} voxels are NaN or infinite")
    floor = -1e-6 * max(float(gy.max()), 1e-300)
    if gy.min() < floor:
        raise ValueError(f"dose: minimum {gy.min():.6g} Gy is negative; RT Dose stores doses >= 0 Gy")
    return np.maximum(gy, 0.0)


def dose_grid_scaling(max_gy: float) -> float:
    """DoseGridScaling [Gy per pixel unit] as stored (a 16-character DS), with ``max_gy`` <= (2^32 - 1) * scaling."""
    if max_gy <= 0:
        return 1.0
    scaling = float(ds(max_gy / _UINT32_MAX * (1.0 + 1e-9)))  # margin for the DS rounding (11 digits)
    while max_gy / scaling > _UINT32_MAX:  # never in practice; keeps the bound exact
        scaling = float(ds(scaling * (1.0 + 1e-9)))
    return scaling


def write_rtdose(path, dose, patient: Patient, *, dose_type: str = "PHYSICAL", description: str = "",
                 series_description: str | None = None, summation_type: str = "PLAN",
                 referenced_rtplan_uid=None, series_number: int = 100) -> Path:
    """Write a dose on the patient's grid as a DICOM RT Dose file.

    Pixels are 32-bit unsigned integers; dose [Gy] = pixel * DoseGridScaling, with
    DoseGridScaling = max / (2^32 - 1) (rounded up to its 16-character DS), so the values read
    back differ from ``dose`` by at most half a DoseGridScaling. Study, frame of reference and
    patient come from ``patient.dicom`` (see :func:`sfrt_engine.io.read_dicom`); a patient without
    them gets fresh UIDs, remembered on ``patient.dicom`` for the files exported after it.

    Parameters
    ----------
    path : str or Path
        File to write (written atomically).
    dose : Dose or ndarray, shape ``patient.grid.shape_zyx``
        Dose [Gy] >= 0.
    patient : Patient
    dose_type : {"PHYSICAL", "EFFECTIVE", "ERROR"}
        "EFFECTIVE" for biologically weighted dose such as EQD2.
    description : str
        What the dose is. Required for "EFFECTIVE": state the alpha/beta and the boost mode, e.g.
        ``"EQD2, a/b GTV 4 Gy, SKIN 2 Gy; vertex boost integrated"``. Written to DoseComment (first
        64 characters) and in full to ImageComments.
    series_description : str, optional
        Short label shown in the planning system (defaults to ``description``).
    summation_type : str
        DoseSummationType; "PLAN" for the dose of a whole course.
    referenced_rtplan_uid : str or sequence, optional
        SOP Instance UID of the RT Plan the dose is of, or several (each a UID of an RT Plan, or a
        ``(SOP Class UID, SOP Instance UID)`` pair, e.g. for an RT Ion Plan), written to
        ReferencedRTPlanSequence; left out when not given.

    Returns
    -------
    Path
    """
    if not isinstance(patient, Patient):
        raise TypeError(f"patient must be a sfrt_engine.Patient, got {type(patient).__name__}")
    dose_type = str(dose_type).upper()
    if dose_type not in _DOSE_TYPES:
        raise ValueError(f"dose_type={dose_type!r}: expected one of {', '.join(_DOSE_TYPES)}")
    if dose_type == "EFFECTIVE" and not str(description).strip():
        raise ValueError("dose_type='EFFECTIVE' needs a description stating the alpha/beta and the boost mode")
    gy = _dose_array(dose, patient)
    grid = patient.grid
    scaling = dose_grid_scaling(float(gy.max()))
    pixels = np.minimum(np.rint(gy / scaling), _UINT32_MAX).astype("<u4")

    out = new_dataset(RT_DOSE_STORAGE, "RTDOSE", identity(patient), series_number=series_number,
                      series_description=series_description if series_description is not None else description)
    out.InstanceNumber = 1
    out.ContentDate, out.ContentTime = out.InstanceCreationDate, out.InstanceCreationTime
    if description:
        out.ImageComments = str(description)
    _image_plane(out, grid)
    nz = grid.shape_zyx[0]
    out.NumberOfFrames = nz
    out.FrameIncrementPointer = Tag(0x3004, 0x000C)  # GridFrameOffsetVector
    out.GridFrameOffsetVector = [ds(k * grid.spacing_xyz_mm[2]) for k in range(nz)]
    out.BitsAllocated = 32
    out.BitsStored = 32
    out.HighBit = 31
    out.PixelRepresentation = 0
    out.DoseUnits = "GY"
    out.DoseType = dose_type
    out.DoseSummationType = str(summation_type).upper()
    out.DoseGridScaling = ds(scaling)
    if description:
        out.DoseComment = lo(description)
    if referenced_rtplan_uid:
        refs = [referenced_rtplan_uid] if isinstance(referenced_rtplan_uid, str) else list(referenced_rtplan_uid)
        items = []
        for entry in refs:
            class_uid, uid = entry if isinstance(entry, tuple) else ("1.2.840.10008.5.1.4.1.1.481.5", entry)
            ref = Dataset()
            ref.ReferencedSOPClassUID = class_uid  # RT Plan Storage unless given (e.g. RT Ion Plan Storage)
            ref.ReferencedSOPInstanceUID = uid
            items.append(ref)
        out.ReferencedRTPlanSequence = Sequence(items)
    out.PixelData = pixels.tobytes()
    out["PixelData"].VR = "OW"
    return write_dataset(out, path)


def write_ct(folder, patient: Patient, *, series_description: str = "sfrt-engine CT",
             series_number: int = 1) -> list[Path]:
    """Write the patient's HU volume as an axial CT series, one file per slice (``CT.<n>.dcm``).

    HU are rounded to integers and stored as signed 16-bit pixels (RescaleSlope 1, RescaleIntercept
    0). The series' UIDs are recorded on ``patient.dicom`` (``ct_series_instance_uid`` and
    ``ct_sop_instance_uids``, by slice) so that an RT Structure Set written afterwards references
    these images. For a patient that came from DICOM the clinic already has the CT; this is meant
    for phantoms.

    Returns
    -------
    list of Path
        The files written, by slice (inferior to superior).
    """
    if not isinstance(patient, Patient):
        raise TypeError(f"patient must be a sfrt_engine.Patient, got {type(patient).__name__}")
    hu = np.rint(patient.hu)
    if hu.min() < -32768 or hu.max() > 32767:
        raise ValueError(f"hu: values from {hu.min():g} to {hu.max():g} HU do not fit 16-bit CT pixels")
    pixels = hu.astype("<i2")
    ident = identity(patient)
    series_uid = None
    sop_uids, paths = [], []
    folder = Path(folder)
    for k in range(patient.grid.shape_zyx[0]):
        out = new_dataset(CT_IMAGE_STORAGE, "CT", ident, series_uid=series_uid, series_number=series_number,
                          series_description=series_description)
        series_uid = out.SeriesInstanceUID
        out.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        out.PatientPosition = "HFS"
        out.InstanceNumber = k + 1
        out.ContentDate, out.ContentTime = out.InstanceCreationDate, out.InstanceCreationTime
        _image_plane(out, patient.grid, k)
        out.SliceLocation = out.ImagePositionPatient[2]
        out.KVP = ""
        out.BitsAllocated = 16
        out.BitsStored = 16
        out.HighBit = 15
        out.PixelRepresentation = 1
        out.RescaleIntercept = 0
        out.RescaleSlope = 1
        out.RescaleType = "HU"
        out.PixelData = pixels[k].tobytes()
        out["PixelData"].VR = "OW"
        paths.append(write_dataset(out, folder / f"CT.{k + 1:04d}.dcm"))
        sop_uids.append(out.SOPInstanceUID)
    ident["ct_series_instance_uid"] = series_uid
    ident["ct_sop_instance_uids"] = sop_uids
    return paths
