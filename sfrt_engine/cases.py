"""Cases ready for the SFRT versus CRT comparison, from a DICOM folder.

The CLI (``sfrt compare --dicom``) and the study runner share this preparation, so a
case gives the same structures whichever way it is run.
"""

from __future__ import annotations

from pathlib import Path

from .errors import StructureError
from .patient import Patient

__all__ = ["BODY_THRESHOLD_HU", "DEFAULT_PTV_MARGIN_MM", "prepare_dicom_case"]

#: CT number above which a voxel counts as BODY when the structure set has no BODY [HU].
BODY_THRESHOLD_HU = -500.0
#: Margin from GTV to PTV when the structure set has no PTV [mm].
DEFAULT_PTV_MARGIN_MM = 5.0


def prepare_dicom_case(folder: str | Path, target: str = "GTV",
                       ptv_margin_mm: float = DEFAULT_PTV_MARGIN_MM, avoid=()) -> Patient:
    """Read a DICOM CT + RTSTRUCT case and make it ready for the comparison.

    ``target`` becomes GTV; PTV (GTV + ``ptv_margin_mm``, inside BODY) and BODY (CT numbers
    above ``BODY_THRESHOLD_HU``) are derived when the structure set lacks them. The folder is
    searched with its subfolders (:func:`sfrt_engine.io.read_dicom`).

    Parameters
    ----------
    folder : str or Path
    target : str
        ROI to fill with vertices.
    ptv_margin_mm : float
    avoid : sequence of str
        ROIs the vertices keep away from; checked here so a misspelt name fails before any dose.

    Raises
    ------
    StructureError
        The folder holds no RT Structure Set, or ``target`` or a name in ``avoid`` is not one of
        its ROIs (the message lists the ROIs there and what the folder holds).
    """
    from . import io
    from .phantoms import _expand

    patient = io.read_dicom(folder)
    structures = patient.structures
    found = patient.dicom.get("inventory", "")
    if "rtstruct" not in patient.dicom:
        raise StructureError(f"{folder}: no RT Structure Set, so no --target {target!r} to fill with vertices; "
                             f"found: {found}. Export the structure set with the CT")
    rois = ", ".join(structures) or "none"
    if target not in structures:
        raise StructureError(f"--target {target!r} is not an ROI of {folder}; ROIs: {rois}")
    missing = [name for name in avoid if name not in structures and name not in ("BODY", "PTV", "GTV")]
    if missing:
        raise StructureError(f"--avoid {' '.join(missing)}: not an ROI of {folder}; ROIs: {rois}")
    if target != "GTV":
        structures["GTV"] = structures[target]
    if "BODY" not in structures:
        structures["BODY"] = patient.hu > BODY_THRESHOLD_HU
    if "PTV" not in structures:
        structures["PTV"] = _expand(structures["GTV"], patient.grid, ptv_margin_mm) & structures["BODY"]
    return patient
