"""Vertex RT Structure Set export, read back through read_dicom."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

import sfrt_engine as se
from sfrt_engine import io
from sfrt_engine.io._polygons import circle_polygon, fill_even_odd, mask_polygons
from sfrt_engine.io._rtstruct_read import read_structures

CENTERS = np.array([[-12.0, 0.0, -6.0], [12.0, 3.0, 6.0]])
RADIUS = 7.5


@pytest.fixture
def lattice_patient():
    """Two vertex spheres in a box GTV with a VALLEY = GTV minus the vertices."""
    patient = se.phantoms.water_box((60.0, 40.0, 36.0), 2.0)
    z, y, x = patient.grid.coordinates_mm()
    vertices = np.zeros(patient.grid.shape_zyx, dtype=bool)
    for c in CENTERS:
        vertices |= (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 < RADIUS**2
    gtv = (np.abs(x) < 25) & (np.abs(y) < 15) & (np.abs(z) < 15)
    patient.structures["GTV"] = gtv
    patient.structures["VERTICES"] = vertices
    patient.structures["VALLEY"] = gtv & ~vertices
    return patient


def _export_and_read(patient, folder, **kwargs):
    io.write_ct(folder, patient)
    io.write_rtstruct(folder / "RS.dcm", patient, **kwargs)
    return io.read_dicom(folder), pydicom.dcmread(folder / "RS.dcm")


def test_masks_come_back_voxel_for_voxel(lattice_patient, tmp_path):
    back, rs = _export_and_read(lattice_patient, tmp_path / "case")
    assert list(back.structures) == ["VERTEX_01", "VERTEX_02", "VERTICES", "VALLEY"]
    for name in ("VERTICES", "VALLEY"):
        assert np.array_equal(back.structures[name], lattice_patient.structures[name]), name
    # without sphere centres the vertices are the mask's connected parts, ordered by z
    assert np.array_equal(back.structures["VERTEX_01"] | back.structures["VERTEX_02"], back.structures["VERTICES"])
    assert back.grid.index_of(CENTERS[0]) in set(zip(*np.nonzero(back.structures["VERTEX_01"]), strict=True))
    assert rs.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.3" and rs.Modality == "RTSTRUCT"
    frame = rs.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == lattice_patient.dicom["FrameOfReferenceUID"]
    images = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].ContourImageSequence
    assert [i.ReferencedSOPInstanceUID for i in images] == lattice_patient.dicom["ct_sop_instance_uids"]
    kinds = {o.ReferencedROINumber: o.RTROIInterpretedType for o in rs.RTROIObservationsSequence}
    assert kinds == {1: "PTV", 2: "PTV", 3: "PTV", 4: "CONTROL"}


def test_spheres_as_circles(lattice_patient, tmp_path):
    del lattice_patient.structures["VERTICES"]
    back, rs = _export_and_read(lattice_patient, tmp_path / "case", vertices=(CENTERS, RADIUS))
    z, y, x = back.grid.coordinates_mm()
    for i, c in enumerate(CENTERS, start=1):
        # voxel centres inside the exact sphere; the area-preserving polygons may differ on a rim voxel or two
        exact = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 < RADIUS**2
        assert np.count_nonzero(back.structures[f"VERTEX_0{i}"] ^ exact) <= 4
    union = back.structures["VERTEX_01"] | back.structures["VERTEX_02"]
    assert np.array_equal(back.structures["VERTICES"], union)
    # each contour is a circle: its points are equidistant from the vertex centre
    contour = rs.ROIContourSequence[0].ContourSequence[3]
    pts = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
    r = np.hypot(pts[:, 0] - CENTERS[0, 0], pts[:, 1] - CENTERS[0, 1])
    assert np.ptp(r) < 2e-3 and np.ptp(pts[:, 2]) == 0
    assert contour.ContourImageSequence[0].ReferencedSOPInstanceUID in lattice_patient.dicom["ct_sop_instance_uids"]


def test_sphere_volume_on_a_fine_grid(tmp_path):
    """A 15 mm vertex on a 1 mm grid: circles per slice rasterise to the sphere's volume within 3 %."""
    patient = se.phantoms.water_box(24.0, 1.0)
    io.write_rtstruct(tmp_path / "RS.dcm", patient, names=("VERTICES",), vertices=([[0.3, -0.2, 0.1]], RADIUS))
    masks, _ = read_structures(pydicom.dcmread(tmp_path / "RS.dcm"), tmp_path / "RS.dcm", patient.grid,
                               patient.dicom["FrameOfReferenceUID"])
    error = masks["VERTEX_01"].sum() * patient.grid.voxel_volume_mm3 / (4.0 / 3.0 * np.pi * RADIUS**3) - 1
    print(f"vertex sphere volume error on a 1 mm grid: {error:+.4f}")
    assert abs(error) < 0.03


def test_overlapping_spheres_are_contoured_as_their_union(lattice_patient, tmp_path):
    del lattice_patient.structures["VERTICES"]
    centers = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0]])
    back, _ = _export_and_read(lattice_patient, tmp_path / "case", vertices=(centers, RADIUS))
    assert np.array_equal(back.structures["VERTICES"], back.structures["VERTEX_01"] | back.structures["VERTEX_02"])


def test_without_ct_the_frame_of_reference_is_still_shared(lattice_patient, tmp_path):
    io.write_rtstruct(tmp_path / "RS.dcm", lattice_patient)
    io.write_rtdose(tmp_path / "RD.dcm", np.ones(lattice_patient.grid.shape_zyx), lattice_patient)
    rs, rd = pydicom.dcmread(tmp_path / "RS.dcm"), pydicom.dcmread(tmp_path / "RD.dcm")
    assert rs.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID == rd.FrameOfReferenceUID
    assert "RTReferencedStudySequence" not in rs.ReferencedFrameOfReferenceSequence[0]
    assert rs.StudyInstanceUID == rd.StudyInstanceUID


def test_missing_structure(lattice_patient, tmp_path):
    with pytest.raises(se.StructureError, match="no structure named 'PEAK'"):
        io.write_rtstruct(tmp_path / "RS.dcm", lattice_patient, names=("PEAK",))
    with pytest.raises(ValueError, match="radii > 0 mm"):
        io.write_rtstruct(tmp_path / "RS.dcm", lattice_patient, vertices=(CENTERS, -1.0))


def test_even_odd_fill_with_hole_and_mask_round_trip():
    outer = np.array([[1.0, 1.0], [8.0, 1.0], [8.0, 8.0], [1.0, 8.0]])
    hole = np.array([[3.0, 3.0], [6.0, 3.0], [6.0, 6.0], [3.0, 6.0]])
    mask = fill_even_odd([outer, hole], (10, 10))
    expected = np.zeros((10, 10), dtype=bool)
    expected[1:8, 1:8] = True
    expected[3:6, 3:6] = False
    assert np.array_equal(mask, expected)
    rng = np.random.default_rng(3)
    for _ in range(50):
        m = rng.random((9, 11)) < 0.5
        assert np.array_equal(fill_even_odd(mask_polygons(m), m.shape), m)


def test_circle_polygon_has_the_circle_area():
    poly = circle_polygon((0.0, 0.0), 3.0, max_chord=1.0)
    x, y = poly[:, 0], poly[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    assert area == pytest.approx(np.pi * 9.0, rel=1e-12)
