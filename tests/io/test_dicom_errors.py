"""Every bad DICOM input gives a DicomError that names the file or ROI and the problem (issue 5, item 4)."""

from __future__ import annotations

import shutil

import pydicom
import pytest
from pydicom.uid import generate_uid

from sfrt_engine import io


def _edit(path, **changes):
    ds = pydicom.dcmread(path)
    for key, value in changes.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def series(dicom_factory):
    return dicom_factory.ct(shape_zyx=(6, 16, 12))


def test_missing_slice(series):
    series.files[3].unlink()
    with pytest.raises(io.DicomError, match=r"missing slice: gap of 5\.000 mm between z = -15\.000 mm .*"
                                            r"expected 2\.500 mm; 1 slice\(s\) missing"):
        io.read_dicom(series.folder)


def test_duplicated_slice(series):
    copy = series.folder / "copy.dcm"
    shutil.copy(series.files[2], copy)
    _edit(copy, SOPInstanceUID=generate_uid())
    with pytest.raises(io.DicomError, match=r"duplicated slice at z = -15\.000 mm: .*copy\.dcm"):
        io.read_dicom(series.folder)


def test_non_uniform_spacing(series):
    _edit(series.files[5], ImagePositionPatient=[-30.0, -48.0, -6.5])
    with pytest.raises(io.DicomError, match=r"non-uniform slice spacing: 3\.500 mm between z = -10\.000 mm and "
                                            r"z = -6\.500 mm, elsewhere 2\.500 mm"):
        io.read_dicom(series.folder)


def test_mixed_series(series):
    _edit(series.files[0], SeriesInstanceUID=generate_uid())
    with pytest.raises(io.DicomError, match=r"2 different series: .*\(5 slices, ''\); .*\(1 slice, ''\)\. Mixed series"):
        io.read_dicom(series.folder)


def test_mixed_frame_of_reference(series):
    _edit(series.files[0], FrameOfReferenceUID=generate_uid())
    with pytest.raises(io.DicomError, match="2 different FrameOfReferenceUIDs"):
        io.read_dicom(series.folder)


def test_gantry_tilt(series):
    _edit(series.files[1], GantryDetectorTilt=15.0)
    with pytest.raises(io.DicomError, match=rf"{series.files[1].name}: gantry tilt of 15 deg"):
        io.read_dicom(series.folder)


def test_sheared_series(series):
    _edit(series.files[4], ImagePositionPatient=[-30.0, -46.0, -10.0])
    with pytest.raises(io.DicomError, match=r"move in x/y by up to \[0\.0, 2\.0\] mm .*gantry tilt or sheared"):
        io.read_dicom(series.folder)


def test_oblique_orientation(series):
    _edit(series.files[0], ImageOrientationPatient=[1, 0, 0, 0, 0.8660254, -0.5])
    with pytest.raises(io.DicomError, match=rf"{series.files[0].name}: ImageOrientationPatient .* is oblique"):
        io.read_dicom(series.folder)


def test_axial_but_not_hfs_orientation(series):
    for path in series.files:
        _edit(path, ImageOrientationPatient=[-1, 0, 0, 0, -1, 0])
    with pytest.raises(io.DicomError, match="axial but rotated or mirrored"):
        io.read_dicom(series.folder)


def test_patient_position_other_than_hfs(series):
    _edit(series.files[0], PatientPosition="FFS")
    with pytest.raises(io.DicomError, match="PatientPosition FFS; only head-first supine"):
        io.read_dicom(series.folder)


def test_file_without_a_dicom_header_is_skipped_and_listed(series):
    # clinics' exports hold the odd text file; without a DICOM header it is listed, not fatal
    (series.folder / "notes.dcm").write_bytes(b"this is not DICOM at all" * 10)
    patient = io.read_dicom(series.folder)
    assert patient.dicom["non_dicom_files"] == ["notes.dcm"]
    assert "skipped 1 non-DICOM file: notes.dcm" in patient.dicom["inventory"]


def test_truncated_slice(series):
    data = series.files[2].read_bytes()
    series.files[2].write_bytes(data[: len(data) - 100])
    with pytest.raises(io.DicomError, match=series.files[2].name):
        io.read_dicom(series.folder)


def test_no_ct(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(io.DicomError, match="no CT image series found"):
        io.read_dicom(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.read_dicom(tmp_path / "absent")


def test_rtstruct_of_another_frame_of_reference(dicom_factory, series, shapes):
    dicom_factory.rtstruct(series, {"GTV": [shapes.circle(-20, -35, 3, series.z_mm(2))]}, frame_uid=generate_uid())
    with pytest.raises(io.DicomError, match=r"RS\.dcm: the structure set references FrameOfReferenceUID .* "
                                            "drawn on another image set"):
        io.read_dicom(series.folder)


def test_contour_outside_the_grid(dicom_factory, series, shapes):
    # the CT covers x from -30.75 to -12.75 mm: this circle reaches x = -10
    dicom_factory.rtstruct(series, {"GTV": [shapes.circle(-15, -35, 5, series.z_mm(2))]})
    with pytest.raises(io.DicomError, match=r"ROI 'GTV', contour 0 lies outside the CT grid \(contour: x -20\.0 to "
                                            r"-10\.0, .*CT: x -30\.8 to -12\.8"):
        io.read_dicom(series.folder)


def test_contour_above_the_last_slice(dicom_factory, series, shapes):
    dicom_factory.rtstruct(series, {"GTV": [shapes.circle(-20, -35, 3, series.z_mm(5) + 2.0)]})
    with pytest.raises(io.DicomError, match="ROI 'GTV', contour 0 lies outside the CT grid"):
        io.read_dicom(series.folder)


def test_non_axial_contour(dicom_factory, series, shapes):
    tilted = shapes.circle(-20, -35, 3, series.z_mm(2))
    tilted[:, 2] += 0.2 * (tilted[:, 0] + 20)
    dicom_factory.rtstruct(series, {"GTV": [tilted]})
    with pytest.raises(io.DicomError, match="ROI 'GTV', contour 0: .*only axial contours"):
        io.read_dicom(series.folder)


def test_missing_roi_and_swapped_name_map(dicom_factory, series, shapes):
    dicom_factory.rtstruct(series, {"GTV_1": [shapes.circle(-20, -35, 3, series.z_mm(2))]})
    with pytest.raises(io.DicomError, match="no ROI named 'PTV'; the structure set holds 'GTV_1'"):
        io.read_dicom(series.folder, structures=["PTV"])
    with pytest.raises(io.DicomError, match="did you swap keys and values"):
        io.read_dicom(series.folder, structures={"GTV_1": "GTV"})


def test_two_structure_sets(dicom_factory, series, shapes):
    rois = {"GTV": [shapes.circle(-20, -35, 3, series.z_mm(2))]}
    dicom_factory.rtstruct(series, rois, name="RS1.dcm")
    dicom_factory.rtstruct(series, rois, name="RS2.dcm")
    with pytest.raises(io.DicomError, match=r"2 RT Structure Sets \(RS1\.dcm \(ROIs: GTV\), RS2\.dcm \(ROIs: GTV\)\)"):
        io.read_dicom(series.folder)


def test_bad_contour_data(dicom_factory, series):
    dicom_factory.rtstruct(series, {"GTV": [[[-20.0, -35.0, series.z_mm(2)], [-19.0, -35.0, series.z_mm(2)]]]})
    with pytest.raises(io.DicomError, match="ROI 'GTV', contour 0: ContourData has 6 values"):
        io.read_dicom(series.folder)


def test_malformed_structure_set(dicom_factory, series, shapes):
    path = dicom_factory.rtstruct(series, {"GTV": [shapes.circle(-20, -35, 3, series.z_mm(2))]})
    ds = pydicom.dcmread(path)
    del ds.ROIContourSequence[0].ReferencedROINumber
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(io.DicomError, match=r"RS\.dcm: malformed DICOM \(AttributeError: .*ReferencedROINumber"):
        io.read_dicom(series.folder)


def test_malformed_pixel_spacing(series):
    for path in series.files:
        _edit(path, PixelSpacing=[0.0, 1.5])
    with pytest.raises(io.DicomError, match=r"case: malformed DICOM \(GridError: spacing_xyz_mm=.*must be > 0 mm"):
        io.read_dicom(series.folder)


def test_missing_frame_of_reference(series):
    ds = pydicom.dcmread(series.files[1])
    del ds.FrameOfReferenceUID
    ds.save_as(series.files[1], enforce_file_format=True)
    with pytest.raises(io.DicomError, match=rf"{series.files[1].name}: missing FrameOfReferenceUID"):
        io.read_dicom(series.folder)
