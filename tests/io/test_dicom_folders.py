"""DICOM folders as clinics export them (io/_dicom_scan.py, io/dicom_read.py, cases.py) and CT number checks."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

import sfrt_engine as se
from sfrt_engine import io
from sfrt_engine.cases import prepare_dicom_case
from sfrt_engine.errors import GridError, StructureError
from sfrt_engine.patient import HU_MAX_STANDARD, check_ct_numbers


def _edit_all(files, **attrs):
    for path in files:
        ds = pydicom.dcmread(path)
        for key, value in attrs.items():
            setattr(ds, key, value)
        ds.save_as(path)


def _reference_series(rs_path, series_uid: str, study_uid: str):
    """Add the RTReferencedStudy/SeriesSequence a planning system writes (PS3.3 C.8.8.5)."""
    ds = pydicom.dcmread(rs_path)
    series = Dataset()
    series.SeriesInstanceUID = series_uid
    study = Dataset()
    study.ReferencedSOPInstanceUID = study_uid
    study.RTReferencedSeriesSequence = Sequence([series])
    ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence = Sequence([study])
    ds.save_as(rs_path)


def test_subfolders_are_searched_and_non_dicom_files_listed(dicom_factory, shapes):
    series = dicom_factory.ct("export/CT")
    rs = dicom_factory.rtstruct(series, {"GTV_1": [shapes.circle(-20, -35, 6, series.z_mm(3))]})
    root = series.folder.parent
    (root / "RS").mkdir()
    shutil.move(rs, root / "RS" / "RS.dcm")
    (root / "plan.json").write_text("{}")
    (root / "RS" / "readme.txt").write_text("exported by the planning system")
    (root / ".DS_Store").write_bytes(b"\0")  # hidden files are not even listed
    patient = io.read_dicom(root)
    np.testing.assert_array_equal(patient.hu, series.expected_hu())
    assert list(patient.structures) == ["GTV_1"]
    assert patient.dicom["non_dicom_files"] == ["RS/readme.txt", "plan.json"]
    found = patient.dicom["inventory"]
    assert f"CT series {series.series_uid} (8 slices)" in found
    assert "RT Structure Set RS/RS.dcm (ROIs: GTV_1)" in found
    assert found.endswith("skipped 2 non-DICOM files: RS/readme.txt, plan.json")


def test_the_series_the_structure_set_references_is_chosen(dicom_factory, shapes):
    planning = dicom_factory.ct("case/planning")
    other = dicom_factory.ct("case/cbct", shape_zyx=(4, 32, 40), seed=1)
    rs = dicom_factory.rtstruct(planning, {"GTV": [shapes.circle(-20, -35, 6, planning.z_mm(3))]})
    with pytest.raises(io.DicomError, match=r"2 different series: .*\(4 slices.*\(8 slices.*RT Structure Set "
                                            "that references one"):
        io.read_dicom(planning.folder.parent)  # no reference: which series is meant is not guessed
    _reference_series(rs, planning.series_uid, planning.study_uid)
    patient = io.read_dicom(planning.folder.parent)
    assert patient.grid.shape_zyx == planning.shape_zyx
    assert f"CT series {other.series_uid} (4 slices, not the one the structure set was drawn on)" in \
        patient.dicom["skipped_files"]


def test_no_ct_series_lists_what_is_there(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    patient = se.phantoms.water_box((10, 10, 10), 5.0)
    io.write_rtdose(tmp_path / "RD.dcm", np.zeros(patient.grid.shape_zyx), patient)
    with pytest.raises(io.DicomError, match=r"no CT image series found \(found: 1 RTDOSE file; skipped 1 non-DICOM "
                                            r"file: notes\.txt\)"):
        io.read_dicom(tmp_path)


def test_case_without_structure_set_or_with_unknown_rois(dicom_factory, shapes):
    series = dicom_factory.ct()
    with pytest.raises(StructureError, match=rf"no RT Structure Set, .*found: CT series {series.series_uid} "
                                             r"\(8 slices\)"):
        prepare_dicom_case(series.folder, "GTV")
    dicom_factory.rtstruct(series, {"GTV_1": [shapes.circle(-20, -35, 6, series.z_mm(3))],
                                    "FEMUR": [shapes.circle(0, 0, 3, series.z_mm(3))]})
    with pytest.raises(StructureError, match="--target 'GTV' is not an ROI of .*; ROIs: GTV_1, FEMUR"):
        prepare_dicom_case(series.folder, "GTV")
    with pytest.raises(StructureError, match="--avoid SKIN: not an ROI of .*; ROIs: GTV_1, FEMUR"):
        prepare_dicom_case(series.folder, "GTV_1", avoid=("FEMUR", "SKIN"))
    patient = prepare_dicom_case(series.folder, "GTV_1", avoid=("FEMUR",))
    assert {"GTV", "PTV", "BODY"} <= set(patient.structures)


@pytest.mark.parametrize(("slope", "intercept", "found"), [
    (1.0, 28000.0, r"CT numbers span 28985 to 29786 HU \(100 % of the voxels above 3071 HU"),  # offset CT
    (100.0, -102400.0, r"CT numbers span -3900 to 76200 HU"),  # HU scaled by 100
])
def test_ct_numbers_outside_the_calibration_are_an_error(dicom_factory, slope, intercept, found):
    series = dicom_factory.ct()
    _edit_all(series.files, RescaleSlope=slope, RescaleIntercept=intercept)
    with pytest.raises(io.DicomError, match=found + r".*expected CT numbers within the calibration's range -1000 "
                                                   r"to 3000 HU"):
        io.read_dicom(series.folder)


def test_a_few_metal_voxels_are_a_warning_with_their_count(dicom_factory):
    series = dicom_factory.ct()
    ds = pydicom.dcmread(series.files[4])
    pixels = ds.pixel_array.copy()
    pixels[10, 10:13] = 4000 + 1024  # 4000 HU with the factory's intercept of -1024
    ds.PixelData = pixels.astype("<u2").tobytes()
    ds.save_as(series.files[4])
    with pytest.warns(UserWarning, match=r"3 voxels above 3071 HU \(up to 4000 HU\), taken for metal"):
        patient = io.read_dicom(series.folder)
    assert int((patient.hu > HU_MAX_STANDARD).sum()) == 3


def test_check_ct_numbers_limits():
    hu = np.zeros(1000)
    assert check_ct_numbers(hu) == 0
    hu[:3] = -3024.0  # padding outside the reconstruction circle is air, not an error
    assert check_ct_numbers(hu) == 0
    hu[:10] = 5000.0  # 1 % of the voxels: still metal
    with pytest.warns(UserWarning, match="10 voxels above 3071 HU"):
        assert check_ct_numbers(hu) == 10
    hu[:11] = 5000.0  # more than 1 %: not metal
    with pytest.raises(GridError, match="1 % of the voxels above 3071 HU"):
        check_ct_numbers(hu)
    with pytest.raises(GridError, match="CT numbers span -40000 to 0 HU"):
        check_ct_numbers(np.array([-40000.0, 0.0]))
