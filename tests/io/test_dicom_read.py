"""read_dicom on synthetic CT + RTSTRUCT series: geometry, HU, structures and their volumes."""

from __future__ import annotations

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine import io

#: Rasterised volumes must be within this fraction of the analytic volume (issue 5).
VOLUME_RTOL = 0.03


def test_geometry_and_hu_from_shuffled_files(dicom_factory):
    series = dicom_factory.ct()
    patient = io.read_dicom(series.folder)
    assert patient.grid == se.Grid(series.shape_zyx, series.spacing_xyz_mm, series.origin_xyz_mm)
    # HU = 100 iz + 2 iy - ix: slice order, row/column order and rescale are all right
    np.testing.assert_array_equal(patient.hu, series.expected_hu())
    assert patient.name == "Test^Sarcoma"
    assert patient.dicom["StudyInstanceUID"] == series.study_uid
    assert patient.dicom["FrameOfReferenceUID"] == series.frame_uid
    assert patient.dicom["PatientID"] == "SFRT-0001"
    assert patient.dicom["ct_sop_instance_uids"] == series.sop_uids
    assert len(patient.structures) == 0


def test_rescale_slope_and_intercept(dicom_factory):
    series = dicom_factory.ct(slope=0.5, intercept=-1000.0)
    np.testing.assert_array_equal(io.read_dicom(series.folder).hu, series.expected_hu())


def test_other_dicom_objects_are_skipped(dicom_factory, tmp_path):
    series = dicom_factory.ct()
    patient = se.phantoms.water_box((10, 10, 10), 5.0)
    io.write_rtdose(series.folder / "RD.dcm", np.zeros(patient.grid.shape_zyx), patient)
    assert io.read_dicom(series.folder).dicom["skipped_files"] == ["RD.dcm (RTDOSE)"]


def _relative_error(patient, name, analytic_mm3):
    measured = patient.structures[name].sum() * patient.grid.voxel_volume_mm3
    return measured / analytic_mm3 - 1.0


def test_structure_volumes_sphere_box_and_hole(dicom_factory, shapes):
    series = dicom_factory.ct(shape_zyx=(20, 48, 56), spacing_xyz_mm=(1.5, 2.0, 2.5),
                              origin_xyz_mm=(-41.25, -47.0, -23.75))
    z = [series.z_mm(k) for k in range(20)]
    r = 15.0
    # box: slices whose centres lie in [-12.5, 12.5] mm, i.e. faces at z = -13.75 and 13.75 ... exactly 11 slices
    box_slices = [zk for zk in z if -13.0 < zk < 13.0]
    box_height = len(box_slices) * series.spacing_xyz_mm[2]
    box = [shapes.rectangle(-12.3, 17.9, -20.2, 15.1, zk) for zk in box_slices]
    ring = [c for zk in box_slices for c in (shapes.circle(5.0, -5.0, 20.0, zk), shapes.circle(5.0, -5.0, 8.0, zk))]
    dicom_factory.rtstruct(series, {"SPHERE": shapes.sphere_contours(series, (3.0, -4.0, 0.0), r), "BOX": box,
                                    "RING": ring})
    patient = io.read_dicom(series.folder)
    errors = {
        "SPHERE": _relative_error(patient, "SPHERE", 4.0 / 3.0 * np.pi * r**3),
        "BOX": _relative_error(patient, "BOX", 30.2 * 35.3 * box_height),
        "RING": _relative_error(patient, "RING", np.pi * (20.0**2 - 8.0**2) * box_height),
    }
    print("relative volume errors:", {k: f"{v:+.4f}" for k, v in errors.items()})
    for name, err in errors.items():
        assert abs(err) < VOLUME_RTOL, (name, err)
    # the hole really is empty: the voxel at the ring's centre is outside
    iz, iy, ix = patient.grid.index_of((5.0, -5.0, box_slices[3]))
    assert not patient.structures["RING"][iz, iy, ix]
    assert patient.structures["BOX"][iz, iy, ix]


def test_name_map_renames_and_selects(dicom_factory, shapes):
    series = dicom_factory.ct()
    z = series.z_mm(5)
    dicom_factory.rtstruct(series, {"GTV_1": [shapes.circle(0, -10, 10, z)], "Femur": [shapes.circle(-10, 0, 5, z)]})
    patient = io.read_dicom(series.folder, structures={"GTV": "GTV_1"})
    assert list(patient.structures) == ["GTV"]
    assert patient.structures["GTV"][5].sum() > 0 and patient.structures["GTV"][[4, 6]].sum() == 0
    assert list(io.read_dicom(series.folder, structures=["Femur"]).structures) == ["Femur"]
    assert list(io.read_dicom(series.folder).structures) == ["GTV_1", "Femur"]
    assert patient.dicom["rtstruct"]["roi_names"] == {"GTV": "GTV_1"}


def test_roi_without_closed_contours_is_skipped_unless_asked(dicom_factory, shapes):
    series = dicom_factory.ct()
    dicom_factory.rtstruct(series, {"MARKER": [], "GTV": [shapes.circle(0, -10, 10, series.z_mm(3))]})
    patient = io.read_dicom(series.folder)
    assert list(patient.structures) == ["GTV"]
    assert patient.dicom["rtstruct"]["skipped_rois"] == ["MARKER"]
    with pytest.raises(io.DicomError, match="ROI 'MARKER' has no closed planar contours"):
        io.read_dicom(series.folder, structures=["MARKER"])


def test_contours_between_slices_go_to_the_nearest_slice(dicom_factory, shapes):
    series = dicom_factory.ct()
    z = series.z_mm(6) + 0.4 * series.spacing_xyz_mm[2]
    dicom_factory.rtstruct(series, {"GTV": [shapes.circle(0, -10, 10, z)]})
    mask = io.read_dicom(series.folder).structures["GTV"]
    assert mask[6].any() and mask.sum() == mask[6].sum()
