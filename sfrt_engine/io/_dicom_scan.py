"""What a DICOM folder holds: the CT slices, RT Structure Sets, other DICOM objects and other files.

Clinics export a case as a folder tree: one folder per series, a DICOMDIR, and now and then a
``.json`` or ``.txt`` beside the images. :func:`scan_folder` walks the whole tree (hidden files
and DICOMDIR excepted), reads every header without pixel data, and sorts what it finds. Files
without a DICOM header are skipped and listed, not fatal. :meth:`Inventory.describe` says what
was found in one paragraph (series with modality and slice count, structure sets with their
ROIs), which every "not found" message repeats so the user sees what is there.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from ._dicom_common import CT_IMAGE_STORAGE, RT_STRUCTURE_SET_STORAGE
from ._errors import DicomError

__all__ = ["Inventory", "scan_folder", "read_header", "roi_names", "referenced_series"]

#: Names listed in full in a message before the rest is counted.
_LIST_MAX = 8


def read_header(path: Path, **kwargs) -> pydicom.Dataset | None:
    """The dataset of ``path``, or None when the file is not DICOM (no 'DICM' file header)."""
    try:
        return pydicom.dcmread(path, **kwargs)
    except pydicom.errors.InvalidDicomError:
        return None
    except Exception as exc:  # noqa: BLE001 -- pydicom raises many types for a damaged file; all mean "unreadable"
        raise DicomError(f"{path}: unreadable DICOM file ({type(exc).__name__}: {exc})") from None


def roi_names(header) -> list[str]:
    """ROI names of an RT Structure Set, in file order."""
    return [str(item.get("ROIName", "")).strip() for item in header.get("StructureSetROISequence", [])]


def referenced_series(header) -> set[str]:
    """SeriesInstanceUIDs an RT Structure Set says it was drawn on."""
    uids = set()
    for frame in header.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                uids.add(str(series.get("SeriesInstanceUID", "")))
    return uids


def _short(names: list[str]) -> str:
    shown = ", ".join(names[:_LIST_MAX])
    return shown + (f" and {len(names) - _LIST_MAX} more" if len(names) > _LIST_MAX else "")


@dataclass
class Inventory:
    """The DICOM objects of a folder tree, sorted by kind.

    Attributes
    ----------
    folder : Path
    cts : list of (Path, Dataset)
        CT image headers (all series).
    structs : list of (Path, Dataset)
        RT Structure Set headers.
    others : list of str
        Other DICOM objects, as ``"path (MODALITY)"``.
    non_dicom : list of str
        Files without a DICOM header, relative to ``folder``.
    """

    folder: Path
    cts: list = field(default_factory=list)
    structs: list = field(default_factory=list)
    others: list = field(default_factory=list)
    non_dicom: list = field(default_factory=list)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.folder).as_posix()

    def ct_series(self) -> dict[str, tuple[int, str]]:
        """SeriesInstanceUID -> (slice count, SeriesDescription)."""
        counts = Counter(str(h.get("SeriesInstanceUID", "")) for _, h in self.cts)
        labels = {str(h.get("SeriesInstanceUID", "")): str(h.get("SeriesDescription", "") or "") for _, h in self.cts}
        return {uid: (n, labels[uid]) for uid, n in counts.items()}

    def describe(self) -> str:
        """What the folder holds, in one paragraph."""
        parts = []
        for uid, (n, label) in self.ct_series().items():
            parts.append(f"CT series {uid}{f' {label!r}' if label else ''} ({n} slice{'s' * (n != 1)})")
        for path, header in self.structs:
            names = roi_names(header)
            parts.append(f"RT Structure Set {self.rel(path)} (ROIs: {_short(names) or 'none'})")
        others = Counter(o.rsplit(" (", 1)[-1].rstrip(")") for o in self.others)
        parts += [f"{n} {modality} file{'s' * (n != 1)}" for modality, n in others.items()]
        text = "; ".join(parts) or "no DICOM files"
        if self.non_dicom:
            text += f"; skipped {len(self.non_dicom)} non-DICOM file{'s' * (len(self.non_dicom) != 1)}: " \
                    f"{_short(self.non_dicom)}"
        return text


def scan_folder(folder: Path) -> Inventory:
    """Read the headers of every file under ``folder`` (subfolders included) and sort them.

    Raises
    ------
    FileNotFoundError
        ``folder`` does not exist or is not a folder.
    DicomError
        A file with a DICOM header cannot be read.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"DICOM folder {str(folder)!r} does not exist or is not a folder")
    inventory = Inventory(folder)
    paths = sorted(p for p in folder.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    for path in paths:
        if path.name.upper() == "DICOMDIR":
            continue
        header = read_header(path, stop_before_pixels=True)
        if header is None:
            inventory.non_dicom.append(inventory.rel(path))
            continue
        sop_class = str(header.get("SOPClassUID", ""))
        modality = str(header.get("Modality", ""))
        if sop_class == CT_IMAGE_STORAGE or modality == "CT":
            inventory.cts.append((path, header))
        elif sop_class == RT_STRUCTURE_SET_STORAGE or modality == "RTSTRUCT":
            inventory.structs.append((path, header))
        else:
            inventory.others.append(f"{inventory.rel(path)} ({modality or sop_class or 'unknown'})")
    return inventory
