"""Beam builders: open_field, conformal_beams and body_entry_point (plan/builders.py)."""

from __future__ import annotations

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine import PlanError, StructureError
from sfrt_engine.plan import body_entry_point, conformal_beams, open_field

# body_entry_point bisects to 1e-3 mm; 0.01 mm is ten times that
SSD_TOL_MM = 0.01


@pytest.fixture(scope="module")
def thigh() -> se.Patient:
    # 5 mm voxels: coarse, but the aperture tests hold for any spacing
    return se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)


def _box_entry(grid: se.Grid, direction: np.ndarray) -> np.ndarray:
    """Where the line through the grid centre along ``direction`` enters the box (closed form)."""
    c = np.array(grid.center_xyz_mm)
    half = 0.5 * np.diff(grid.bounds_xyz_mm, axis=1).ravel()
    with np.errstate(divide="ignore"):
        t = np.min(np.where(direction != 0.0, half / np.abs(direction), np.inf))
    return c - t * direction


# --- open_field -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("gantry", "couch", "ssd"),
    [(0.0, 0.0, 1000.0), (90.0, 0.0, 1000.0), (30.0, 0.0, 900.0), (200.0, 0.0, 1100.0), (315.0, 0.0, 950.0),
     (40.0, 20.0, 1000.0)],
)
def test_open_field_honours_ssd(machine, gantry, couch, ssd):
    patient = se.phantoms.water_box(size_xyz_mm=(60.0, 80.0, 40.0), spacing_xyz_mm=2.0, center_xyz_mm=(5.0, -3.0, 7.0))
    beam = open_field(machine, patient, field_mm=(40.0, 40.0), gantry_deg=gantry, ssd_mm=ssd, couch_deg=couch)
    f = beam.frame
    entry = _box_entry(patient.grid, f.direction)
    assert np.linalg.norm(entry - f.source_xyz_mm) == pytest.approx(ssd, abs=SSD_TOL_MM)
    # the central axis passes through the grid centre, the isocentre SAD - SSD beyond the surface
    centre = np.array(patient.grid.center_xyz_mm)
    np.testing.assert_allclose(np.cross(centre - f.source_xyz_mm, f.direction), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(beam.isocenter_xyz_mm) - entry, (machine.sad_mm - ssd) * f.direction,
                               atol=SSD_TOL_MM)
    assert beam.gantry_deg == gantry and beam.couch_deg == couch


@pytest.mark.parametrize(("field", "beamlet"), [((100.0, 60.0), 7.0), ((100.0, 100.0), 5.0), ((33.0, 12.0), 10.0)])
def test_open_field_tiles_the_field_exactly(machine, field, beamlet):
    patient = se.phantoms.water_box(size_xyz_mm=(40.0, 40.0, 40.0), spacing_xyz_mm=4.0)
    beam = open_field(machine, patient, field_mm=field, beamlet_mm=beamlet, weight_mu=2.5)
    u_lo, u_hi, v_lo, v_hi = beam.open_extent_uv_mm()
    fu, fv = field
    np.testing.assert_allclose([u_lo, u_hi, v_lo, v_hi], [-fu / 2, fu / 2, -fv / 2, fv / 2], atol=1e-9)
    nv, nu = beam.weights_mu.shape
    # a whole number of beamlets, each as close to the asked size as a whole number allows
    assert nu == max(1, round(fu / beamlet)) and nv == max(1, round(fv / beamlet))
    assert beam.beamlet_mm == pytest.approx((fu / nu, fv / nv))
    assert np.all(beam.weights_mu == 2.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"field_mm": (0.0, 100.0)}, "field_mm"),
        ({"field_mm": (np.nan, 100.0)}, "field_mm"),
        ({"ssd_mm": 0.0}, "ssd_mm"),
        ({"ssd_mm": 2500.0}, "ssd_mm"),
        ({"beamlet_mm": 0.0}, "beamlet_mm"),
        ({"weight_mu": -1.0}, "weight_mu"),
        ({"gantry_deg": np.nan}, "gantry_deg"),
    ],
)
def test_open_field_rejects_bad_arguments(machine, kwargs, match):
    patient = se.phantoms.water_box(size_xyz_mm=(40.0, 40.0, 40.0), spacing_xyz_mm=4.0)
    with pytest.raises(PlanError, match=match):
        open_field(machine, patient, **kwargs)


# --- body_entry_point -------------------------------------------------------------------------

def _in_body(patient: se.Patient, point) -> bool:
    g = patient.grid
    lo, hi = g.bounds_xyz_mm[:, 0], g.bounds_xyz_mm[:, 1]
    if np.any(point < lo) or np.any(point >= hi):
        return False
    return bool(patient.structures["BODY"][g.index_of(point)])


@pytest.mark.parametrize("direction", [(0, 1, 0), (-1, 0, 0), (1, 1, 0), (0.3, -1, 0.2)])
def test_body_entry_point_is_on_the_voxelised_surface(thigh, direction):
    d = np.asarray(direction, dtype=float)
    d /= np.linalg.norm(d)
    start = np.array([-12.0, -22.0, 10.0])  # inside the tumour
    entry = body_entry_point(thigh, start, d)
    # within the 1e-3 mm bisection tolerance of a BODY boundary crossed in the direction of travel
    assert _in_body(thigh, entry + 0.01 * d) and not _in_body(thigh, entry - 0.01 * d)
    # and it is the first crossing: nothing between the grid edge and the entry is body
    ts = np.arange(0.5, 400.0, 0.5)
    before = [entry - t * d for t in ts]
    assert not any(_in_body(thigh, p) for p in before)
    # the entry lies in front of the start point
    assert np.dot(start - entry, d) > 0


def test_body_entry_point_without_body_uses_hu():
    p = se.phantoms.water_box(size_xyz_mm=(40.0, 40.0, 40.0), spacing_xyz_mm=2.0)
    del p.structures["BODY"]
    p.hu[:, :10, :] = -1000.0  # 20 mm of air in front
    entry = body_entry_point(p, (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    np.testing.assert_allclose(entry, (0.0, 0.0, 0.0), atol=2e-3)


def test_body_entry_point_missing_body_raises():
    p = se.phantoms.water_box(size_xyz_mm=(40.0, 40.0, 40.0), spacing_xyz_mm=4.0)
    p.structures["BODY"] = np.zeros(p.grid.shape_zyx, dtype=bool)
    with pytest.raises(PlanError, match="never enters BODY") as info:
        body_entry_point(p, (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    # point and direction as plain numbers, not numpy scalar reprs
    assert "through (0.0, 0.0, 0.0) mm along (0.0, 1.0, 0.0)" in str(info.value)


# --- conformal_beams --------------------------------------------------------------------------

def _ptv_points(patient: se.Patient, name: str = "PTV") -> np.ndarray:
    g = patient.grid
    iz, iy, ix = np.nonzero(patient.structures[name])
    return np.stack([g.axis_mm("x")[ix], g.axis_mm("y")[iy], g.axis_mm("z")[iz]], axis=1)


@pytest.mark.parametrize(
    ("gantry", "couch", "collimator", "margin", "beamlet"),
    [
        ((0.0, 72.0, 144.0, 216.0, 288.0), 0.0, 0.0, 5.0, 5.0),
        ((35.0, 300.0), (20.0, 340.0), 15.0, 5.0, 5.0),
        # margin 0: coverage then rests on the half voxel diagonal alone (4.3 mm >= 5 mm / sqrt 2)
        ((90.0,), 0.0, 0.0, 0.0, 5.0),
        ((270.0,), 0.0, 0.0, 8.0, 10.0),
        ((180.0,), 90.0, 45.0, 12.0, 4.0),
    ],
)
def test_conformal_aperture_covers_the_projection(thigh, machine, gantry, couch, collimator, margin, beamlet):
    """A beamlet opens when its centre is within margin + half a projected voxel diagonal of the
    projection; that covers every projected voxel centre whenever that reach is at least half a
    beamlet diagonal (beamlet / sqrt 2), which all the cases below satisfy."""
    points = _ptv_points(thigh)
    beams = conformal_beams(thigh, "PTV", machine, gantry_deg=gantry, couch_deg=couch, collimator_deg=collimator,
                            margin_mm=margin, beamlet_mm=beamlet)
    assert len(beams) == len(gantry)
    half_diag = 0.5 * np.linalg.norm(thigh.grid.spacing_xyz_mm)
    for beam in beams:
        u, v, z = beam.frame.to_bev(points)
        ue, ve = beam.beamlet_edges_mm()
        w = beam.weights_mu
        # 1. every projected PTV voxel centre falls in an open beamlet
        iu = np.searchsorted(ue, u, side="right") - 1
        iv = np.searchsorted(ve, v, side="right") - 1
        assert np.all((iu >= 0) & (iu < w.shape[1]) & (iv >= 0) & (iv < w.shape[0])), beam.name
        assert np.all(w[iv, iu] > 0), beam.name
        # 2. no open beamlet centre is farther from the projection than the margin plus half a voxel
        #    diagonal projected from the voxel nearest the source (the widest projection); 1e-6 mm
        #    for rounding
        reach = margin + half_diag * machine.sad_mm / z.min() + 1e-6
        rows, cols = np.nonzero(w)
        cu = 0.5 * (ue[cols] + ue[cols + 1])
        cv = 0.5 * (ve[rows] + ve[rows + 1])
        dist = np.sqrt((cu[:, None] - u[None, :]) ** 2 + (cv[:, None] - v[None, :]) ** 2).min(axis=1)
        assert dist.max() <= reach, beam.name
        # 3. the aperture reaches at least margin - half a beamlet beyond the projection
        u_lo, u_hi, v_lo, v_hi = beam.open_extent_uv_mm()
        assert u_lo <= u.min() - margin + beamlet / 2 and u_hi >= u.max() + margin - beamlet / 2
        assert v_lo <= v.min() - margin + beamlet / 2 and v_hi >= v.max() + margin - beamlet / 2
        # open beamlets carry the requested weight; the map is cropped to the open beamlets
        assert np.all(w[w > 0] == 1.0)
        assert w[0].any() and w[-1].any() and w[:, 0].any() and w[:, -1].any()
        assert beam.beamlet_mm == (beamlet, beamlet)
        assert beam.collimator_deg == collimator


def test_conformal_isocentre_defaults_to_centroid(thigh, machine):
    beams = conformal_beams(thigh, "PTV", machine, gantry_deg=(0.0, 180.0))
    centroid = _ptv_points(thigh).mean(axis=0)
    for beam in beams:
        np.testing.assert_allclose(beam.isocenter_xyz_mm, centroid, atol=1e-9)
    beams = conformal_beams(thigh, "PTV", machine, gantry_deg=0.0, isocenter_xyz_mm=(1.0, 2.0, 3.0))
    assert beams[0].isocenter_xyz_mm == (1.0, 2.0, 3.0)


def test_conformal_per_beam_couch_angles(thigh, machine):
    beams = conformal_beams(thigh, "PTV", machine, gantry_deg=(0.0, 40.0, 320.0), couch_deg=(0.0, 10.0, 350.0))
    assert [b.gantry_deg for b in beams] == [0.0, 40.0, 320.0]
    assert [b.couch_deg for b in beams] == [0.0, 10.0, 350.0]
    assert len({b.name for b in beams}) == 3  # names tell the beams apart
    one = conformal_beams(thigh, "PTV", machine, gantry_deg=(0.0, 40.0), couch_deg=15.0)
    assert [b.couch_deg for b in one] == [15.0, 15.0]
    with pytest.raises(PlanError, match="couch_deg has 2 angles for 3"):
        conformal_beams(thigh, "PTV", machine, gantry_deg=(0.0, 40.0, 320.0), couch_deg=(0.0, 10.0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gantry_deg": ()}, "gantry_deg"),
        ({"gantry_deg": (0.0, np.nan)}, "gantry_deg"),
        ({"couch_deg": np.inf}, "couch_deg"),
        ({"beamlet_mm": 0.0}, "beamlet_mm"),
        ({"margin_mm": -1.0}, "margin_mm"),
    ],
)
def test_conformal_rejects_bad_arguments(thigh, machine, kwargs, match):
    with pytest.raises(PlanError, match=match):
        conformal_beams(thigh, "PTV", machine, **kwargs)


def test_conformal_empty_or_unknown_structure(thigh, machine):
    p = se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)
    p.structures["EMPTY"] = np.zeros(p.grid.shape_zyx, dtype=bool)
    with pytest.raises(PlanError, match="'EMPTY' is empty"):
        conformal_beams(p, "EMPTY", machine)
    with pytest.raises(StructureError, match="CTV"):
        conformal_beams(thigh, "CTV", machine)


def test_conformal_source_inside_target_rejected(thigh, machine):
    # isocentre 950 mm posterior: the gantry-0 source sits 50 mm anterior of the origin, in the PTV
    with pytest.raises(PlanError, match="source lies inside or behind"):
        conformal_beams(thigh, "PTV", machine, gantry_deg=0.0, isocenter_xyz_mm=(-12.0, 950.0, 10.0))
