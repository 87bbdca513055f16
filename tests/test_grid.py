"""Grid: validation, from_extent, bounds, coordinates and index_of (DESIGN 3)."""

from __future__ import annotations

import numpy as np
import pytest

from sfrt_engine import Grid, GridError


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"shape_zyx": (2, 3), "spacing_xyz_mm": 1.0}, "(2, 3)"),
        ({"shape_zyx": (2, 0, 4), "spacing_xyz_mm": 1.0}, "(2, 0, 4)"),
        ({"shape_zyx": (2, 3, 4), "spacing_xyz_mm": (1.0, -2.0, 1.0)}, "-2.0"),
        ({"shape_zyx": (2, 3, 4), "spacing_xyz_mm": 0.0}, "0.0"),
        ({"shape_zyx": (2, 3, 4), "spacing_xyz_mm": (1.0, 2.0)}, "(1.0, 2.0)"),
        ({"shape_zyx": (2, 3, 4), "spacing_xyz_mm": 1.0, "origin_xyz_mm": (0.0, float("nan"), 0.0)}, "nan"),
    ],
)
def test_invalid_grid_names_the_value(kwargs, named):
    with pytest.raises(GridError) as info:
        Grid(**kwargs)
    assert named in str(info.value)


def test_grid_errors_are_value_errors():
    # STYLE 8: leaf errors also derive from the builtin they resemble
    with pytest.raises(ValueError):
        Grid((1, 1, 1), spacing_xyz_mm=-1.0)


def test_scalar_spacing_is_isotropic_and_fields_are_normalised():
    g = Grid(np.array([2, 3, 4]), spacing_xyz_mm=2.5, origin_xyz_mm=[1, 2, 3])
    assert g.shape_zyx == (2, 3, 4)
    assert g.shape_xyz == (4, 3, 2)
    assert g.spacing_xyz_mm == (2.5, 2.5, 2.5)
    assert g.origin_xyz_mm == (1.0, 2.0, 3.0)
    assert g.size == 24
    assert g.voxel_volume_mm3 == pytest.approx(2.5**3)


def test_from_extent_counts_and_centres():
    # 100 / 3 = 33.3 -> 33 voxels; 40 / 2 = 20; 9 / 3 = 3
    g = Grid.from_extent((100.0, 40.0, 9.0), (3.0, 2.0, 3.0), center_xyz_mm=(10.0, -5.0, 2.0))
    assert g.shape_zyx == (3, 20, 33)
    assert g.center_xyz_mm == pytest.approx((10.0, -5.0, 2.0), abs=1e-12)
    # odd count: a voxel centre sits on the requested centre
    assert g.axis_mm("x")[16] == pytest.approx(10.0, abs=1e-12)
    # even count: the centre is a voxel face
    assert g.axis_mm("y")[9] == pytest.approx(-6.0, abs=1e-12)
    assert g.axis_mm("y")[10] == pytest.approx(-4.0, abs=1e-12)


def test_from_extent_keeps_at_least_one_voxel():
    g = Grid.from_extent((1.0, 1.0, 1.0), 5.0)
    assert g.shape_zyx == (1, 1, 1)


def test_from_extent_rejects_bad_size():
    with pytest.raises(GridError, match="size_xyz_mm"):
        Grid.from_extent((10.0, -1.0, 10.0), 1.0)


def test_bounds_are_outer_voxel_faces():
    g = Grid((2, 3, 4), spacing_xyz_mm=(1.0, 2.0, 3.0), origin_xyz_mm=(0.0, 10.0, -5.0))
    expected = np.array([[-0.5, 3.5], [9.0, 15.0], [-6.5, -0.5]])
    np.testing.assert_allclose(g.bounds_xyz_mm, expected, atol=1e-12)
    # the box the faces enclose has the grid's physical size
    np.testing.assert_allclose(np.diff(g.bounds_xyz_mm, axis=1).ravel(), [4.0, 6.0, 6.0], atol=1e-12)


def test_axis_and_coordinates_follow_zyx_order():
    g = Grid((2, 3, 4), spacing_xyz_mm=(1.0, 2.0, 3.0), origin_xyz_mm=(0.0, 10.0, -5.0))
    np.testing.assert_allclose(g.axis_mm("x"), [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(g.axis_mm("y"), [10.0, 12.0, 14.0])
    np.testing.assert_allclose(g.axis_mm("z"), [-5.0, -2.0])
    z, y, x = g.coordinates_mm()
    assert z.shape == (2, 1, 1) and y.shape == (1, 3, 1) and x.shape == (1, 1, 4)


def test_voxel_centres_of_a_mask_are_xyz_in_c_order():
    g = Grid((2, 3, 4), spacing_xyz_mm=(1.0, 2.0, 3.0), origin_xyz_mm=(0.0, 10.0, -5.0))
    mask = np.zeros(g.shape_zyx, dtype=bool)
    mask[1, 2, 0] = mask[0, 1, 3] = True  # [z, y, x]
    np.testing.assert_array_equal(g.voxel_centres_mm(mask), [[3.0, 12.0, -5.0], [0.0, 14.0, -2.0]])
    assert g.voxel_centres_mm(np.zeros(g.shape_zyx, dtype=bool)).shape == (0, 3)


def test_index_of_returns_zyx_of_nearest_centre():
    g = Grid((2, 3, 4), spacing_xyz_mm=(1.0, 2.0, 3.0), origin_xyz_mm=(0.0, 10.0, -5.0))
    assert g.index_of((3.0, 14.0, -2.0)) == (1, 2, 3)
    # a point inside a voxel but off its centre maps to that voxel
    assert g.index_of((0.4, 10.9, -6.4)) == (0, 0, 0)


@pytest.mark.parametrize("point", [(-0.6, 10.0, -5.0), (0.0, 15.1, -5.0), (0.0, 10.0, 0.0)])
def test_index_of_outside_raises_naming_the_point(point):
    g = Grid((2, 3, 4), spacing_xyz_mm=(1.0, 2.0, 3.0), origin_xyz_mm=(0.0, 10.0, -5.0))
    with pytest.raises(GridError, match="outside the grid") as info:
        g.index_of(point)
    # the point as the user typed it, not as numpy scalar reprs ("np.float64(-0.6)")
    assert str(tuple(float(c) for c in point)) in str(info.value)


def test_check_array_shape_and_contiguity():
    g = Grid((2, 3, 4), 1.0)
    with pytest.raises(GridError, match=r"\(4, 3, 2\)"):
        g.check_array(np.zeros((4, 3, 2)), "dose")
    arr = g.check_array(np.zeros((4, 3, 2)).T, "dose")
    assert arr.flags.c_contiguous and arr.shape == (2, 3, 4)


def test_grid_is_frozen():
    g = Grid((1, 1, 1), 1.0)
    with pytest.raises(AttributeError):
        g.shape_zyx = (2, 2, 2)
