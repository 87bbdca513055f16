"""Synthetic DICOM built with pydicom inside the suite (nothing is downloaded).

``dicom_factory`` writes a small axial HFS CT series, in shuffled file order, and an RT
Structure Set for it. Its CT numbers encode the voxel index, ``HU = 100 iz + 2 iy - ix``, so any
mistake in slice order, row/column order or rescaling shows up as a wrong value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"


def _file_dataset(sop_class: str) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    return ds


@dataclass
class CTSeries:
    """What the factory wrote: the files and the geometry they encode."""

    folder: Path
    files: list[Path]  # by slice index (inferior to superior)
    shape_zyx: tuple[int, int, int]
    spacing_xyz_mm: tuple[float, float, float]
    origin_xyz_mm: tuple[float, float, float]
    study_uid: str
    series_uid: str
    frame_uid: str
    sop_uids: list[str] = field(default_factory=list)

    def expected_hu(self) -> np.ndarray:
        iz, iy, ix = np.indices(self.shape_zyx)
        return (100 * iz + 2 * iy - ix).astype(np.float32)

    def z_mm(self, k: int) -> float:
        return self.origin_xyz_mm[2] + k * self.spacing_xyz_mm[2]


class DicomFactory:
    """Writes CT slices and RT Structure Sets with pydicom."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def ct_slice(self, series: CTSeries, k: int, *, slope: float = 1.0, intercept: float = -1024.0) -> FileDataset:
        _, ny, nx = series.shape_zyx
        dx, dy, dz = series.spacing_xyz_mm
        x0, y0, z0 = series.origin_xyz_mm
        ds = _file_dataset(CT_STORAGE)
        ds.PatientName = "Test^Sarcoma"
        ds.PatientID = "SFRT-0001"
        ds.StudyInstanceUID = series.study_uid
        ds.SeriesInstanceUID = series.series_uid
        ds.FrameOfReferenceUID = series.frame_uid
        ds.Modality = "CT"
        ds.PatientPosition = "HFS"
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [x0, y0, z0 + k * dz]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [dy, dx]
        ds.SliceThickness = dz
        ds.Rows, ds.Columns = ny, nx
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        stored = (series.expected_hu()[k] - intercept) / slope
        ds.PixelData = np.rint(stored).astype("<u2").tobytes()
        ds["PixelData"].VR = "OW"
        return ds

    def ct(self, name: str = "case", shape_zyx=(8, 32, 40), spacing_xyz_mm=(1.5, 2.0, 2.5),
           origin_xyz_mm=(-30.0, -48.0, -20.0), *, slope: float = 1.0, intercept: float = -1024.0,
           seed: int = 0) -> CTSeries:
        """Write a CT series to ``root/name`` in shuffled file order."""
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        series = CTSeries(folder, [], tuple(shape_zyx), tuple(spacing_xyz_mm), tuple(origin_xyz_mm),
                          generate_uid(), generate_uid(), generate_uid())
        names = np.random.default_rng(seed).permutation(shape_zyx[0])
        for k in range(shape_zyx[0]):
            ds = self.ct_slice(series, k, slope=slope, intercept=intercept)
            path = folder / f"IM{names[k]:04d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            series.files.append(path)
            series.sop_uids.append(ds.SOPInstanceUID)
        return series

    def rtstruct(self, series: CTSeries, rois: dict, *, frame_uid: str | None = None,
                 name: str = "RS.dcm", geometric_type: str = "CLOSED_PLANAR") -> Path:
        """Write an RT Structure Set; ``rois`` maps ROI name -> list of (n, 3) contours [mm]."""
        frame_uid = frame_uid or series.frame_uid
        ds = _file_dataset(RTSTRUCT_STORAGE)
        ds.PatientName = "Test^Sarcoma"
        ds.PatientID = "SFRT-0001"
        ds.StudyInstanceUID = series.study_uid
        ds.SeriesInstanceUID = generate_uid()
        ds.Modality = "RTSTRUCT"
        ds.StructureSetLabel = "TEST"
        ref = Dataset()
        ref.FrameOfReferenceUID = frame_uid
        ds.ReferencedFrameOfReferenceSequence = Sequence([ref])
        roi_items, contour_items = [], []
        for number, (roi_name, contours) in enumerate(rois.items(), start=1):
            roi = Dataset()
            roi.ROINumber = number
            roi.ReferencedFrameOfReferenceUID = frame_uid
            roi.ROIName = roi_name
            roi_items.append(roi)
            item = Dataset()
            item.ReferencedROINumber = number
            item.ROIDisplayColor = [255, 0, 0]
            seq = []
            for pts in contours:
                c = Dataset()
                c.ContourGeometricType = geometric_type
                c.NumberOfContourPoints = len(pts)
                c.ContourData = [round(float(v), 4) for v in np.asarray(pts).ravel()]
                seq.append(c)
            if seq:
                item.ContourSequence = Sequence(seq)
            contour_items.append(item)
        ds.StructureSetROISequence = Sequence(roi_items)
        ds.ROIContourSequence = Sequence(contour_items)
        path = series.folder / name
        ds.save_as(path, enforce_file_format=True)
        return path


def circle(cx: float, cy: float, r: float, z: float, n: int = 90) -> np.ndarray:
    """Contour of a circle with n points (inscribed polygon, as a planning system draws it)."""
    t = 2 * np.pi * np.arange(n) / n
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t), np.full(n, z)])


def rectangle(x0: float, x1: float, y0: float, y1: float, z: float) -> np.ndarray:
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=float)


def sphere_contours(series: CTSeries, center, r: float, n: int = 90) -> list[np.ndarray]:
    """One circle per CT slice whose plane cuts the sphere."""
    out = []
    for k in range(series.shape_zyx[0]):
        z = series.z_mm(k)
        if abs(z - center[2]) < r:
            out.append(circle(center[0], center[1], np.sqrt(r * r - (z - center[2]) ** 2), z, n))
    return out


@pytest.fixture
def dicom_factory(tmp_path) -> DicomFactory:
    return DicomFactory(tmp_path)


@pytest.fixture
def shapes():
    """Contour helpers: circle, rectangle, sphere_contours."""

    class _Shapes:
        pass

    s = _Shapes()
    s.circle, s.rectangle, s.sphere_contours = circle, rectangle, sphere_contours
    return s
