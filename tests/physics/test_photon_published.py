"""The photon pencil beam against published 6 MV water data and closed forms (DESIGN 5.2).

Published reference: 6 MV, 10 x 10 cm, SSD 100 cm in water (British Journal of
Radiology Supplement 25, 1996): d_max about 15 mm; PDD 86 / 67 / 39 % at 5 / 10 /
20 cm; 80-20 % penumbra of a few mm at 10 cm depth. Closed forms: inverse-square
law, radiological depth through slabs, mirror and rotation symmetry, geometric
divergence of the field edge.

Most checks run on the float64 NumPy reference and on the C++ backend (the
workhorse); the grids are thin columns or single slices, so both are fast.
Depth in a phantom whose anterior face is at y_min is ``y - grid.bounds_xyz_mm[1, 0]``
(gantry 0 enters there and travels +y).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine.kernels import prepare_photon_tasks
from sfrt_engine.plan import Beam

SAD = 1000.0


@pytest.fixture(params=["numpy", "cpp"])
def engine(request) -> str:
    """The reference and the C++ backend (the other backends are held to the reference by test_parity)."""
    ok, reason = se.available_backends()[request.param]
    if not ok:
        pytest.skip(f"backend {request.param!r} unavailable: {reason}")
    return request.param


@functools.cache
def _machine() -> se.PhotonMachine:
    return se.load_machine("photon_6mv")


def _column(slabs=(), depth_mm: float = 402.0) -> se.Patient:
    """Water column 33 x ``depth_mm`` x 33 mm: 1 mm along the beam, 3 mm across, a voxel centre on the axis."""
    p = se.phantoms.slab(size_xyz_mm=(33.0, depth_mm, 33.0), spacing_xyz_mm=(3.0, 1.0, 3.0), slabs=slabs)
    nz, _, nx = p.grid.shape_zyx
    assert nx % 2 == 1 and nz % 2 == 1 and p.grid.axis_mm("x")[nx // 2] == 0.0 and p.grid.axis_mm("z")[nz // 2] == 0.0
    return p


def _depth_mm(grid: se.Grid) -> np.ndarray:
    return grid.axis_mm("y") - grid.bounds_xyz_mm[1, 0]


def _central_axis(dose: np.ndarray) -> np.ndarray:
    nz, _, nx = dose.shape
    return dose[nz // 2, :, nx // 2]


@functools.cache
def _cax(backend: str, field_mm: float = 100.0, ssd_mm: float = 1000.0, slabs=()) -> tuple[np.ndarray, np.ndarray]:
    """(depth, central-axis dose) of a square open field, gantry 0, unit beamlet weights."""
    patient = _column(slabs)
    beam = se.plan.open_field(_machine(), patient, field_mm=(field_mm, field_mm), gantry_deg=0.0, ssd_mm=ssd_mm)
    dose = se.compute_dose(beam, patient, backend=backend).gy
    return _depth_mm(patient.grid), _central_axis(dose)


# --- 10 x 10 cm, SSD 100 cm: depth dose and calibration -----------------------------------------

def test_depth_of_maximum(engine):
    depth, cax = _cax(engine)
    # 15 +- 2 mm (published 6 MV); read at 1 mm voxel centres
    assert depth[np.argmax(cax)] == pytest.approx(15.0, abs=2.0)


@pytest.mark.parametrize(("depth_mm", "published_percent"), [(50.0, 86.0), (100.0, 67.0), (200.0, 39.0)])
def test_percentage_depth_dose(engine, depth_mm, published_percent):
    depth, cax = _cax(engine)
    pdd = 100.0 * np.interp(depth_mm, depth, cax) / cax.max()
    # 2 percentage points: the spread of published generic 6 MV data between linacs
    assert pdd == pytest.approx(published_percent, abs=2.0)


def test_surface_dose_is_build_up_region(engine):
    depth, cax = _cax(engine)
    # the first 1 mm voxel sits in the build-up region: well below d_max (parallel-plate
    # measurements give 15-20 % at the surface and ~40 % at 1-2 mm for 10 x 10 cm, 6 MV)
    assert 100.0 * cax[0] / cax.max() < 60.0
    assert np.all(np.diff(cax[depth < 12.0]) > 0)  # dose rises through the build-up
    assert np.all(np.diff(cax[depth > 20.0]) < 0)  # and falls beyond d_max


def test_calibration_at_dmax(engine):
    # machine file calibration: 1 cGy per MU at d_max for 10 x 10 cm at SSD 100 cm; 1 % for
    # reading d_max on a 1 mm grid (the PDD is flat to 0.2 % within 1 mm of its peak)
    _, cax = _cax(engine)
    assert cax.max() == pytest.approx(0.0100, rel=0.01)


def test_depth_dose_increases_with_field_size():
    # more phantom scatter from a wider field raises the relative depth dose (measured for every
    # megavoltage beam); the 5 x 5 and 20 x 20 cm fields are not in the machine file
    pdd10 = []
    for field in (50.0, 100.0, 200.0):
        depth, cax = _cax("cpp" if se.available_backends()["cpp"][0] else "numpy", field_mm=field)
        pdd10.append(np.interp(100.0, depth, cax) / cax.max())
    assert pdd10[0] < pdd10[1] < pdd10[2]


# --- penumbra ------------------------------------------------------------------------------

@functools.cache
def _profile_at_10cm(backend: str) -> tuple[np.ndarray, np.ndarray]:
    """Lateral profile along x at 10 cm depth, normalised to the central axis."""
    patient = se.phantoms.water_box(size_xyz_mm=(201.0, 203.0, 3.0), spacing_xyz_mm=(1.0, 1.0, 3.0))
    g = patient.grid
    assert g.shape_zyx[0] == 1 and g.axis_mm("x")[100] == 0.0
    beam = se.plan.open_field(_machine(), patient, field_mm=(100.0, 100.0), gantry_deg=0.0, ssd_mm=1000.0)
    dose = se.compute_dose(beam, patient, backend=backend).gy[0]
    depth = _depth_mm(g)
    # 10 cm falls between the voxel centres at 99.5 and 100.5 mm: interpolate linearly
    i = int(np.searchsorted(depth, 100.0)) - 1
    f = (100.0 - depth[i]) / (depth[i + 1] - depth[i])
    profile = (1.0 - f) * dose[i] + f * dose[i + 1]
    return g.axis_mm("x"), profile / profile[100]


def _crossing(x: np.ndarray, p: np.ndarray, level: float) -> float:
    """Position where the falling edge of ``p`` (x > 0) crosses ``level``."""
    right = x > 0
    return float(np.interp(-level, -p[right], x[right]))  # p falls with x there


def test_penumbra_80_20_at_10cm(engine):
    x, p = _profile_at_10cm(engine)
    widths = []
    for xs, ps in ((x, p), (-x[::-1], p[::-1])):  # right edge, then the left edge mirrored
        widths.append(_crossing(xs, ps, 0.2) - _crossing(xs, ps, 0.8))
    for w in widths:
        # published 6 MV 80-20 % penumbra at 10 cm depth for 10 x 10 cm: about 5-8 mm
        assert 4.0 <= w <= 9.0
    assert widths[0] == pytest.approx(widths[1], abs=0.1)  # a symmetric field


def test_field_edge_follows_beam_divergence(engine):
    x, p = _profile_at_10cm(engine)
    # the 50 % point sits at the geometric edge projected from the source: 50 mm at the isocentre
    # (the surface, SSD = SAD) is 50 * 1100 / 1000 = 55 mm at 10 cm depth; 1 mm allows for the
    # central-axis normalisation (the far edge's scatter tail lifts the axis slightly)
    assert _crossing(x, p, 0.5) == pytest.approx(55.0, abs=1.0)
    assert _crossing(-x[::-1], p[::-1], 0.5) == pytest.approx(55.0, abs=1.0)
    # outside the field the dose falls monotonically; 4 cm beyond the edge only a few per cent
    # of phantom scatter remain (published 6 MV peripheral dose there is about 1-2 %)
    out = x > 56.0
    assert np.all(np.diff(p[out]) < 0)
    assert np.all(p[np.abs(x) >= 95.0] < 0.05)


# --- inverse-square law -----------------------------------------------------------------------

@pytest.mark.parametrize("depth_mm", [50.0, 100.0, 200.0])
def test_inverse_square_law(engine, depth_mm):
    # The same physical field at depth d from two SSDs: 100 mm at the isocentre at SSD 1000, and
    # the field that projects to the same size at depth d from SSD 1200. Lateral sigmas are physical
    # at depth, so only the source distance differs and the dose ratio is ((1200+d)/(1000+d))^2.
    field_far = 100.0 * (1000.0 + depth_mm) / (1200.0 + depth_mm)
    depth, near = _cax(engine, 100.0, 1000.0)
    _, far = _cax(engine, field_far, 1200.0)
    ratio = np.interp(depth_mm, depth, near) / np.interp(depth_mm, depth, far)
    # 0.5 %: the acceptance limit; the model is exact up to the 1 mm depth interpolation
    assert ratio == pytest.approx(((1200.0 + depth_mm) / (1000.0 + depth_mm)) ** 2, rel=0.005)


# --- heterogeneities --------------------------------------------------------------------------

LUNG_SLAB = (("LUNG", 40.0, 100.0, -700.0),)
BONE_SLAB = (("BONE", 40.0, 70.0, 1300.0),)
# relative electron densities of the default calibration's anchor points: -700 HU lies on the
# air-water line (0.3); 1300 HU is ICRU 46 adult cortical bone (1.78)
RHO_LUNG, RHO_BONE = 0.3, 1.78


def test_dose_behind_lung_is_higher_and_behind_bone_lower(engine):
    depth, water = _cax(engine)
    _, lung = _cax(engine, slabs=LUNG_SLAB)
    _, bone = _cax(engine, slabs=BONE_SLAB)
    behind_lung = (depth > 110.0) & (depth < 300.0)
    behind_bone = (depth > 80.0) & (depth < 300.0)
    assert np.all(lung[behind_lung] > water[behind_lung])
    assert np.all(bone[behind_bone] < water[behind_bone])
    # in front of the slabs nothing changes (no backscatter in a pencil-beam model)
    np.testing.assert_allclose(lung[depth < 39.0], water[depth < 39.0], rtol=1e-6)
    np.testing.assert_allclose(bone[depth < 39.0], water[depth < 39.0], rtol=1e-6)


@pytest.mark.parametrize(("slabs", "excess_mm"), [(LUNG_SLAB, -60.0 * (1.0 - RHO_LUNG)),
                                                  (BONE_SLAB, 30.0 * (RHO_BONE - 1.0))])
def test_radiological_depth_through_slab(engine, slabs, excess_mm):
    """The water-equivalent depth behind a slab differs from water by thickness * (rho - 1)."""
    water, slab = _column(), _column(slabs)
    beam = se.plan.open_field(_machine(), water, field_mm=(100.0, 100.0))
    task, = prepare_photon_tasks([beam], water.grid)
    backend = se.get_backend(engine)
    t_water = np.asarray(backend.radiological_depth(water.density(), water.grid, task))
    t_slab = np.asarray(backend.radiological_depth(slab.density(), slab.grid, task))
    # the ray through the lattice node nearest the axis (within 0.5 mm: obliquity 1 + 1e-7)
    iu = int(np.argmin(np.abs(task.ray_u0_mm + task.ray_du_mm * np.arange(task.ray_nu))))
    iv = int(np.argmin(np.abs(task.ray_v0_mm + task.ray_dv_mm * np.arange(task.ray_nv))))
    d_water, d_slab = t_water[iv, iu], t_slab[iv, iu]
    # along the whole ray beyond the slab the difference is the slab's excess path;
    # 1 %: trapezoid-rule integration of the interpolated density across the two interfaces
    beyond = d_water > 120.0
    assert beyond.sum() > 100
    np.testing.assert_allclose(d_slab[beyond] - d_water[beyond], excess_mm, rtol=0.01)
    # in front of the slab the depths agree
    before = d_water < 35.0
    np.testing.assert_allclose(d_slab[before], d_water[before], atol=1e-4)


@pytest.mark.parametrize(("slabs", "at_mm", "expected_mm"), [(LUNG_SLAB, 120.0, 120.0 - 60.0 * (1.0 - RHO_LUNG)),
                                                             (BONE_SLAB, 100.0, 100.0 + 30.0 * (RHO_BONE - 1.0))])
def test_dose_equivalent_depth(engine, slabs, at_mm, expected_mm):
    """The dose behind a slab is the water dose at the radiological depth, up to the inverse square law."""
    depth, water = _cax(engine)
    _, hetero = _cax(engine, slabs=slabs)
    target = np.interp(at_mm, depth, hetero)
    # water depth whose dose, moved to the same source distance, equals the dose behind the slab
    cand = np.linspace(40.0, 250.0, 21001)
    moved = np.interp(cand, depth, water) * ((SAD + cand) / (SAD + at_mm)) ** 2
    d_eq = cand[np.argmin(np.abs(moved - target))]
    # 3 mm: the model takes T and the scatter kernel at the radiological depth but the field's
    # physical width at the geometric depth, which shifts the lateral (scatter) factor by up to
    # ~1 %, i.e. about 2 mm of depth at 6 MV attenuation (0.5 %/mm)
    assert d_eq == pytest.approx(expected_mm, abs=3.0)


# --- symmetry ---------------------------------------------------------------------------------

def _asymmetric_phantom() -> se.Patient:
    """Centred 81 x 81 x 45 mm water box (3 mm voxels) with an off-centre bone block and a lung block."""
    p = se.phantoms.water_box(size_xyz_mm=(81.0, 81.0, 45.0), spacing_xyz_mm=3.0)
    z, y, x = p.grid.coordinates_mm()
    shape = p.grid.shape_zyx
    assert p.grid.center_xyz_mm == (0.0, 0.0, 0.0) and shape[1] == shape[2]
    p.hu[np.broadcast_to((np.abs(x - 15.0) < 8.0) & (np.abs(y + 5.0) < 10.0) & (np.abs(z - 5.0) < 12.0), shape)] = 1300.0
    p.hu[np.broadcast_to((np.abs(x + 12.0) < 10.0) & (np.abs(y - 12.0) < 12.0) & (np.abs(z + 3.0) < 15.0), shape)] = -700.0
    p.structures["BONE"] = p.hu == 1300.0
    return p


def _transformed(p: se.Patient, f) -> se.Patient:
    return se.Patient(p.grid, f(p.hu), {k: f(v) for k, v in p.structures.items()}, name=p.name + "_t")


# random but fixed beamlet weights: a non-uniform fluence exposes any flip of the u or v axis
_WEIGHTS = np.random.default_rng(20240917).uniform(0.5, 1.5, size=(6, 8))
_BEAMLET_MM = 5.0
_ORIGIN_UV = (-3.5 * _BEAMLET_MM, -2.5 * _BEAMLET_MM)  # the map is centred on the axis


def _beam(gantry, couch=0.0, collimator=0.0, weights=_WEIGHTS) -> Beam:
    return Beam(_machine(), (0.0, 0.0, 0.0), gantry % 360.0, weights, _BEAMLET_MM, _ORIGIN_UV,
                couch_deg=couch % 360.0, collimator_deg=collimator % 360.0)


# float64 reference: only rounding differs; float32 kernels: the parity tolerance (DESIGN 6)
SYMMETRY_TOL = {"numpy": 1e-6, "cpp": 1e-4}


@pytest.mark.parametrize(("gantry", "couch", "collimator"), [(30.0, 0.0, 0.0), (60.0, 20.0, 15.0)])
def test_mirrored_geometry_gives_mirrored_dose(engine, gantry, couch, collimator):
    """Mirror x -> -x: gantry, couch and collimator angles change sign and BEV u flips, v stays."""
    p = _asymmetric_phantom()
    mirrored = _transformed(p, lambda a: np.ascontiguousarray(a[:, :, ::-1]))
    dose = se.compute_dose(_beam(gantry, couch, collimator), p, backend=engine).gy
    dose_m = se.compute_dose(_beam(-gantry, -couch, -collimator, _WEIGHTS[:, ::-1]), mirrored, backend=engine).gy
    assert dose.max() > 0
    err = np.abs(dose_m - dose[:, :, ::-1]).max() / dose.max()
    assert err <= SYMMETRY_TOL[engine], f"mirror asymmetry {err:.2e} of the maximum dose"


def test_mirrored_conformal_plan_on_the_thigh():
    """End to end: mirror the sarcoma thigh, plan it with mirrored gantry angles, compare (C++ backend)."""
    ok, reason = se.available_backends()["cpp"]
    if not ok:
        pytest.skip(reason)
    p = se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)
    assert p.grid.center_xyz_mm[0] == pytest.approx(0.0, abs=1e-9)
    mirrored = _transformed(p, lambda a: np.ascontiguousarray(a[:, :, ::-1]))
    gantries = np.array([0.0, 50.0, 130.0, 250.0])
    dose = se.compute_dose(se.plan.conformal_beams(p, "PTV", _machine(), gantry_deg=gantries), p, backend="cpp").gy
    dose_m = se.compute_dose(se.plan.conformal_beams(mirrored, "PTV", _machine(), gantry_deg=(360.0 - gantries) % 360),
                             mirrored, backend="cpp").gy
    err = np.abs(dose_m - dose[:, :, ::-1]).max() / dose.max()
    assert err <= SYMMETRY_TOL["cpp"], f"mirror asymmetry {err:.2e} of the maximum dose"


@pytest.mark.parametrize(("gantry", "k"), [(90.0, 1), (180.0, 2), (270.0, 3)])
def test_rotated_beam_equals_rotated_phantom(engine, gantry, k):
    """Gantry g on the phantom = gantry 0 on the phantom turned by g about z.

    Turning the room so that the gantry-90 source (+x) comes to the gantry-0 position (-y) maps
    (x, y) -> (y, -x), and the BEV axes with it (u = +y at gantry 90 becomes u = +x at gantry 0).
    With a square, centred x-y grid, new[z, i, j] = old[z, j, n-1-i]: np.rot90(old, 1, axes=(1, 2)).
    """
    p = _asymmetric_phantom()
    rot = lambda a: np.ascontiguousarray(np.rot90(a, k, axes=(1, 2)))
    dose_g = se.compute_dose(_beam(gantry), p, backend=engine).gy
    dose_0 = se.compute_dose(_beam(0.0), _transformed(p, rot), backend=engine).gy
    err = np.abs(rot(dose_g) - dose_0).max() / dose_0.max()
    assert err <= SYMMETRY_TOL[engine], f"rotation mismatch {err:.2e} of the maximum dose"
