"""Built-in phantoms: water box, slab phantom and the sarcoma thigh (geometry from their documented sizes)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import sfrt_engine as se
from sfrt_engine import GridError
from sfrt_engine.phantoms import TISSUE_HU


@pytest.fixture(scope="module")
def thigh() -> se.Patient:
    # default 2.5 mm spacing: fine enough to measure a 5 mm skin rind and a 5 mm cortex
    return se.phantoms.sarcoma_thigh()


def _extent_mm(mask: np.ndarray, grid: se.Grid, axis: str) -> float:
    """Distance between the outer faces of the first and last voxel of ``mask`` along an axis [mm]."""
    i = "xyz".index(axis)
    array_axis = 2 - i
    other = tuple(a for a in range(3) if a != array_axis)
    hit = np.nonzero(mask.any(axis=other))[0]
    return float((hit[-1] - hit[0] + 1) * grid.spacing_xyz_mm[i])


def _centroid_xyz_mm(mask: np.ndarray, grid: se.Grid) -> np.ndarray:
    iz, iy, ix = np.nonzero(mask)
    return np.array([grid.axis_mm("x")[ix].mean(), grid.axis_mm("y")[iy].mean(), grid.axis_mm("z")[iz].mean()])


def test_water_box_is_water_everywhere():
    p = se.phantoms.water_box(size_xyz_mm=(30.0, 60.0, 90.0), spacing_xyz_mm=3.0, center_xyz_mm=(1.0, 2.0, 3.0))
    assert p.grid.shape_zyx == (30, 20, 10)
    assert p.grid.center_xyz_mm == pytest.approx((1.0, 2.0, 3.0))
    assert np.all(p.hu == 0.0) and np.all(p.density() == 1.0)
    assert p.structures["BODY"].all()


def test_slab_places_materials_at_their_depths():
    p = se.phantoms.slab(size_xyz_mm=(20.0, 100.0, 20.0), spacing_xyz_mm=(10.0, 1.0, 10.0),
                         slabs=(("LUNG", 20.0, 50.0, -700.0), ("BONE", 60.0, 70.0, 1300.0)))
    depth = p.grid.axis_mm("y") - p.grid.bounds_xyz_mm[1, 0]  # anterior face at y_min
    column = p.hu[0, :, 0]
    np.testing.assert_array_equal(column[(depth >= 20) & (depth < 50)], -700.0)
    np.testing.assert_array_equal(column[(depth >= 60) & (depth < 70)], 1300.0)
    np.testing.assert_array_equal(column[(depth < 20) | ((depth >= 50) & (depth < 60)) | (depth >= 70)], 0.0)
    # 1 mm voxels, the slab spans exactly 30 and 10 of them
    assert p.structures["LUNG"][0, :, 0].sum() == 30
    assert p.structures["BONE"].sum() == 10 * p.hu[:, 0, :].size


@pytest.mark.parametrize(
    "slabs",
    [(("X", 50.0, 40.0, 0.0),), (("X", -1.0, 10.0, 0.0),), (("X", 10.0),), (("X", 500.0, 600.0, 0.0),)],
)
def test_slab_rejects_bad_slabs(slabs):
    with pytest.raises(GridError, match="slab"):
        se.phantoms.slab(size_xyz_mm=(20.0, 100.0, 20.0), spacing_xyz_mm=10.0, slabs=slabs)


def test_sarcoma_thigh_has_its_structures(thigh):
    assert set(thigh.structures) >= {"BODY", "GTV", "PTV", "FEMUR", "SKIN", "NORMAL_TISSUE"}
    for name in ("BODY", "GTV", "PTV", "FEMUR", "SKIN", "NORMAL_TISSUE"):
        assert thigh.structures[name].any(), name


def test_sarcoma_gtv_volume_is_the_documented_ellipsoid(thigh):
    # 9 x 8 x 12 cm ellipsoid: 4/3 pi 45 * 40 * 60 mm^3 = 452.4 cm^3. 10 % allows for the
    # 2.5 mm voxelisation of the surface and for cropping by skin and femur.
    expected_cc = 4.0 / 3.0 * np.pi * 45.0 * 40.0 * 60.0 / 1000.0
    assert thigh.structures.volume_cc("GTV") == pytest.approx(expected_cc, rel=0.10)


def test_sarcoma_ptv_contains_gtv_and_stays_in_body(thigh):
    s = thigh.structures
    assert not np.any(s["GTV"] & ~s["PTV"])
    assert not np.any(s["PTV"] & ~s["BODY"])
    assert not np.any(s["PTV"] & s["SKIN"])  # cropped inside the skin
    # a 5 mm margin on a ~450 cc target adds far more than a voxel layer
    assert s.volume_cc("PTV") > 1.15 * s.volume_cc("GTV")


def test_sarcoma_limb_size(thigh):
    g, body = thigh.grid, thigh.structures["BODY"]
    # the limb is an elliptic cylinder "about 17 x 16 cm across", 25 cm long
    assert 160.0 <= _extent_mm(body, g, "x") <= 175.0
    assert 150.0 <= _extent_mm(body, g, "y") <= 170.0
    assert _extent_mm(body, g, "z") == pytest.approx(250.0)
    # air around the limb in the transverse plane, so beams enter through skin
    assert not body[:, 0, :].any() and not body[:, -1, :].any()
    assert not body[:, :, 0].any() and not body[:, :, -1].any()
    assert np.all(thigh.hu[~body] == TISSUE_HU["air"])


def test_sarcoma_skin_is_a_5mm_rind(thigh):
    g, s = thigh.grid, thigh.structures
    # every skin voxel lies within 5 mm (+ half a voxel diagonal of discretisation) of the outside
    outside_dist = ndimage.distance_transform_edt(s["BODY"], sampling=g.spacing_xyz_mm[::-1])
    assert outside_dist[s["SKIN"]].max() <= 5.0 + 0.5 * np.linalg.norm(g.spacing_xyz_mm)
    # and every body voxel within 5 mm of the outside is skin
    assert np.all(s["SKIN"][s["BODY"] & (outside_dist <= 5.0)])
    # along the x axis through the limb centre: 5 mm = 2 voxels of 2.5 mm on each side
    iz, iy = g.shape_zyx[0] // 2, int(np.argmin(np.abs(g.axis_mm("y"))))
    row = s["SKIN"][iz, iy, :] & s["BODY"][iz, iy, :]
    assert row.sum() == 2 * 2
    assert np.all(thigh.hu[s["SKIN"] & ~s["GTV"] & ~s["FEMUR"]] == TISSUE_HU["skin"])


def test_sarcoma_tumour_is_off_centre_and_anterior(thigh):
    g, s = thigh.grid, thigh.structures
    offset = _centroid_xyz_mm(s["GTV"], g) - _centroid_xyz_mm(s["BODY"], g)
    assert np.hypot(offset[0], offset[1]) > 15.0  # documented centre (-12, -22) mm: 25 mm off axis
    assert offset[1] < -10.0  # anterior is -y
    assert np.all(thigh.hu[s["GTV"]] == TISSUE_HU["tumour"])


def test_sarcoma_femur_has_cortical_shell_around_marrow(thigh):
    g, s = thigh.grid, thigh.structures
    femur, hu = s["FEMUR"], thigh.hu
    cortex = femur & (hu == TISSUE_HU["cortical_bone"])
    marrow = femur & (hu == TISSUE_HU["marrow"])
    assert cortex.any() and marrow.any()
    assert np.all((cortex | marrow)[femur])  # nothing else inside the femur
    assert not np.any(femur & s["GTV"])
    # the marrow is enclosed: growing it by one voxel in the transverse plane stays in the femur
    ring = np.zeros((1, 3, 3), dtype=bool)
    ring[0, 1, :] = ring[0, :, 1] = True
    assert np.all(femur[ndimage.binary_dilation(marrow, structure=ring)])
    # cortex 5 mm thick, radius 14 mm: marrow radius 9 mm, area pi (14^2 - 9^2) of cortex per slice
    # (15 % for a 2.5 mm pixelisation of a 9 mm circle)
    slice_area = cortex[g.shape_zyx[0] // 2].sum() * g.spacing_xyz_mm[0] * g.spacing_xyz_mm[1]
    assert slice_area == pytest.approx(np.pi * (14.0**2 - 9.0**2), rel=0.15)
    # density: the shell is cortical bone (~1.78 relative electron density)
    assert thigh.density()[cortex] == pytest.approx(1.78, abs=0.01)


def test_sarcoma_normal_tissue_partitions_the_body(thigh):
    s = thigh.structures
    parts = [s["GTV"], s["FEMUR"], s["SKIN"], s["NORMAL_TISSUE"]]
    total = np.sum(parts, axis=0)
    assert np.all(total[s["BODY"]] >= 1)
    assert not np.any(s["NORMAL_TISSUE"] & (s["GTV"] | s["FEMUR"] | s["SKIN"]))
    assert not np.any(total[~s["BODY"]])


def test_sarcoma_thigh_is_deterministic():
    a = se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)
    b = se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)
    np.testing.assert_array_equal(a.hu, b.hu)
    for name in a.structures:
        np.testing.assert_array_equal(a.structures[name], b.structures[name])


def test_sarcoma_thigh_rejects_tumour_outside_the_limb():
    with pytest.raises(GridError, match="tumour"):
        se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0, tumour_center_xyz_mm=(120.0, 0.0, 0.0))
