"""IEC 61217 beam geometry in DICOM patient coordinates (plan/geometry.py, DESIGN 3).

Expected directions are written down from the conventions, not from the code:
HFS patient, x to the patient's left, y posterior, z superior. Gantry 0 puts the
source anterior (-y), 90 at the patient's left (+x), 180 posterior, 270 right.
"""

from __future__ import annotations

import numpy as np
import pytest

from sfrt_engine import PlanError
from sfrt_engine.plan import beam_frame

SAD = 1000.0
ISO = np.array([10.0, -20.0, 30.0])
ANGLES = [0.0, 17.0, 35.0, 90.0, 134.5, 180.0, 270.0, 333.0]


@pytest.mark.parametrize(
    ("gantry", "towards_source"),
    [(0.0, (0, -1, 0)), (90.0, (1, 0, 0)), (180.0, (0, 1, 0)), (270.0, (-1, 0, 0)), (-90.0, (-1, 0, 0))],
)
def test_gantry_puts_the_source_where_iec_says(gantry, towards_source):
    f = beam_frame(ISO, SAD, gantry)
    np.testing.assert_allclose(f.axis_source, towards_source, atol=1e-12)
    np.testing.assert_allclose(f.source_xyz_mm, ISO + SAD * np.array(towards_source), atol=1e-9)
    np.testing.assert_allclose(f.direction, -np.array(towards_source), atol=1e-12)


def test_gantry_0_bev_axes():
    # at gantry 0, collimator 0 the BEV x axis points to the patient's left and y to the gantry (superior)
    f = beam_frame(ISO, SAD, 0.0)
    np.testing.assert_allclose(f.axis_u, (1, 0, 0), atol=1e-12)
    np.testing.assert_allclose(f.axis_v, (0, 0, 1), atol=1e-12)


def test_gantry_45_source_between_anterior_and_left():
    f = beam_frame(ISO, SAD, 45.0)
    np.testing.assert_allclose(f.axis_source, (np.sqrt(0.5), -np.sqrt(0.5), 0.0), atol=1e-12)


@pytest.mark.parametrize("gantry", ANGLES)
@pytest.mark.parametrize("couch", [0.0, 30.0, 270.0])
@pytest.mark.parametrize("collimator", [0.0, 15.0, 90.0])
def test_axes_orthonormal_right_handed(gantry, couch, collimator):
    f = beam_frame(ISO, SAD, gantry, couch, collimator)
    m = np.stack([f.axis_u, f.axis_v, f.axis_source])
    np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
    # u x v points from the isocentre to the source (gantry 0: x cross z = -y, anterior)
    np.testing.assert_allclose(np.cross(f.axis_u, f.axis_v), f.axis_source, atol=1e-12)


@pytest.mark.parametrize("gantry", ANGLES)
def test_collimator_rotates_bev_axes_about_the_beam_axis(gantry):
    f0 = beam_frame(ISO, SAD, gantry, collimator_deg=0.0)
    f = beam_frame(ISO, SAD, gantry, collimator_deg=30.0)
    np.testing.assert_allclose(f.axis_source, f0.axis_source, atol=1e-12)
    c = np.cos(np.deg2rad(30.0))
    assert np.dot(f.axis_u, f0.axis_u) == pytest.approx(c, abs=1e-12)
    assert np.dot(f.axis_v, f0.axis_v) == pytest.approx(c, abs=1e-12)


def test_collimator_90_turns_bev_x_towards_the_gantry():
    # IEC positive rotations are counter-clockwise seen from the positive end of the axis; the
    # collimator axis points at the source, so seen from above at gantry 0 the BEV x axis
    # (patient's left) turns towards the gantry (superior, +z)
    f = beam_frame(ISO, SAD, 0.0, collimator_deg=90.0)
    np.testing.assert_allclose(f.axis_u, (0, 0, 1), atol=1e-12)
    np.testing.assert_allclose(f.axis_v, (-1, 0, 0), atol=1e-12)


@pytest.mark.parametrize("gantry", ANGLES)
@pytest.mark.parametrize("couch", [0.0, 45.0])
def test_to_bev_and_point_at_are_inverse(gantry, couch):
    f = beam_frame(ISO, SAD, gantry, couch, 20.0)
    rng = np.random.default_rng(7)
    points = ISO + rng.uniform(-200.0, 200.0, size=(50, 3))
    u, v, z = f.to_bev(points)
    np.testing.assert_allclose(f.point_at(u, v, z), points, atol=1e-9)
    uu, vv = rng.uniform(-100, 100, size=(2, 20))
    zz = rng.uniform(800, 1200, size=20)
    u2, v2, z2 = f.to_bev(f.point_at(uu, vv, zz))
    np.testing.assert_allclose(np.stack([u2, v2, z2]), np.stack([uu, vv, zz]), atol=1e-9)


def test_to_bev_projects_to_the_isocentre_plane():
    f = beam_frame((0.0, 0.0, 0.0), SAD, 0.0)
    # a point 10 mm left of the axis at 100 mm beyond the isocentre (z = 1100 from the source)
    # projects to 10 * 1000 / 1100 at the isocentre plane
    u, v, z = f.to_bev(np.array([10.0, 100.0, -5.0]))
    assert z == pytest.approx(1100.0)
    assert u == pytest.approx(10.0 * SAD / 1100.0)
    assert v == pytest.approx(-5.0 * SAD / 1100.0)
    # the isocentre itself is on the axis at SAD
    np.testing.assert_allclose(f.to_bev(np.zeros(3)), (0.0, 0.0, SAD), atol=1e-12)


def test_couch_does_not_move_a_vertical_beam():
    # the couch turns about the vertical axis through the isocentre: gantry 0 stays anterior
    for couch in (30.0, 90.0, 270.0):
        np.testing.assert_allclose(beam_frame(ISO, SAD, 0.0, couch).axis_source, (0, -1, 0), atol=1e-12)


def test_couch_90_moves_lateral_source_to_the_feet():
    # Couch +90 turns the patient counter-clockwise seen from above: the head (IEC +Y, towards
    # the gantry) swings to room -X, so the feet point at room +X, where the gantry-90 source is.
    f = beam_frame(ISO, SAD, 90.0, couch_deg=90.0)
    np.testing.assert_allclose(f.axis_source, (0, 0, -1), atol=1e-12)  # inferior
    f = beam_frame(ISO, SAD, 270.0, couch_deg=90.0)
    np.testing.assert_allclose(f.axis_source, (0, 0, 1), atol=1e-12)  # superior
    f = beam_frame(ISO, SAD, 90.0, couch_deg=270.0)
    np.testing.assert_allclose(f.axis_source, (0, 0, 1), atol=1e-12)


def test_couch_rotation_keeps_the_angle_to_vertical():
    # for any couch angle the source stays at the same height above the isocentre
    for couch in (10.0, 45.0, 200.0):
        f = beam_frame(ISO, SAD, 60.0, couch)
        assert -f.axis_source[1] == pytest.approx(np.cos(np.deg2rad(60.0)), abs=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gantry_deg": np.nan}, "gantry_deg"),
        ({"gantry_deg": 0.0, "couch_deg": np.inf}, "couch_deg"),
        ({"gantry_deg": 0.0, "collimator_deg": np.nan}, "collimator_deg"),
    ],
)
def test_bad_angles_rejected(kwargs, match):
    with pytest.raises(PlanError, match=match):
        beam_frame(ISO, SAD, **kwargs)


def test_bad_isocentre_and_sad_rejected():
    with pytest.raises(PlanError, match="isocenter_xyz_mm"):
        beam_frame((0.0, 0.0), SAD, 0.0)
    with pytest.raises(PlanError, match="isocenter_xyz_mm"):
        beam_frame((0.0, np.nan, 0.0), SAD, 0.0)
    with pytest.raises(PlanError, match="sad_mm"):
        beam_frame(ISO, 0.0, 0.0)
