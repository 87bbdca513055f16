"""Reading photon RT Plans: device conventions, beam types, dose targets and every bad case.

Plans are built with pydicom in ``rtplan_factory`` (independent of the engine's writer); dose
targets are checked against beams built directly with the engine (open fields) or against
closed forms (sliding-window fluence = gap / leaf travel).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine.io import DicomError
from sfrt_engine.io.rtplan_read import read_rtplan
from sfrt_engine.machines import load_machine, mlc_model
from sfrt_engine.phantoms import water_box
from sfrt_engine.plan import Arc, Beam


def _load_factory():
    import importlib.util
    import sys
    from pathlib import Path

    if "rtplan_factory" not in sys.modules:  # a helper beside the tests, not a package (import-mode=importlib)
        spec = importlib.util.spec_from_file_location("rtplan_factory", Path(__file__).with_name("rtplan_factory.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["rtplan_factory"] = module
    return sys.modules["rtplan_factory"]


f = _load_factory()

MACHINE = load_machine("photon_6mv")
MLC = mlc_model(MACHINE)


@pytest.fixture(scope="module")
def box():
    return water_box((160.0, 160.0, 160.0), 5.0)


def _dose(beams, patient):
    return se.compute_dose(beams, patient, backend="cpp").gy


def _flat(beam_or_list):
    return list(beam_or_list) if isinstance(beam_or_list, list) else [beam_or_list]


def _open_beam(half_u, half_v, mu, gantry=0.0, iso=(0.0, 0.0, 0.0), name="ref"):
    """Open rectangular field of ``mu`` MU built directly as an engine beam (2.5 mm beamlets)."""
    nu, nv = round(2 * half_u / 2.5), round(2 * half_v / 2.5)
    return Beam(MACHINE, iso, gantry, np.full((nv, nu), float(mu)), (2.5, 2.5), (-half_u + 1.25, -half_v + 1.25),
                name=name)


@pytest.mark.parametrize("jaws", ["ASYM", "SYM"])
def test_static_mlc_field_matches_open_field(box, jaws):
    """A 10 x 10 cm MLC field with jaws on it = open_field 10 x 10 (same SSD, same MU)."""
    plan = f.static_mlc_field(50.0, 50.0, mu=100.0, jaws=jaws)
    data = read_rtplan(plan, box)
    assert data.modality == "photon" and data.beam_meterset_mu == (100.0,) and data.fractions_planned == 5
    ref = se.plan.open_field(MACHINE, box, (100.0, 100.0), ssd_mm=920.0, weight_mu=100.0, beamlet_mm=2.5)
    moved = _open_beam(50.0, 50.0, 100.0, iso=ref.isocenter_xyz_mm)
    d_ref = _dose(ref, box)
    d_plan = _dose(read_rtplan(f.static_mlc_field(50.0, 50.0, mu=100.0, jaws=jaws, iso=ref.isocenter_xyz_mm),
                               box).all_beams(), box)
    assert np.abs(d_plan - d_ref).max() <= 1e-6 * d_ref.max()
    assert np.abs(_dose(moved, box) - d_ref).max() <= 1e-6 * d_ref.max()


def test_mlc_defined_field_outside_leaf_end_region(box):
    """X jaws open wide: the leaves shape the 10 cm; same dose as open_field outside the leaf-end region."""
    pos = {"ASYMX": [-70.0, 70.0], "ASYMY": [-50.0, 50.0], "MLCX": f.field_leaves(50.0, 50.0, park=-70.0)}
    plan = f.rt_plan([f.beam(1, [f.first_cp(pos), f.control_point(1, 1.0)])], {1: 100.0})
    d_plan = _dose(read_rtplan(plan, box).all_beams(), box)
    d_ref = _dose(_open_beam(50.0, 50.0, 100.0), box)
    x, y = box.grid.axis_mm("x"), box.grid.axis_mm("y")
    # leaf-end region: |u| within 15 mm of the leaf tips and the transmission band up to the X jaws
    u = np.abs(x[None, :]) * 1000.0 / (1000.0 + y[:, None])  # BEV u at the isocentre plane, gantry 0
    keep = np.broadcast_to((u < 35.0) | (u > 85.0), d_ref.shape[1:])[None].repeat(d_ref.shape[0], axis=0)
    err = np.abs(d_plan - d_ref)[keep].max() / d_ref.max()
    assert err <= 0.01
    # in the band under the closed leaf ends, transmission: about t of the open dose at the field centre
    iz, iy = d_ref.shape[0] // 2, d_ref.shape[1] // 2
    ix = int(np.argmin(np.abs(x - 75.0)))
    assert d_plan[iz, iy, ix] > d_ref[iz, iy, ix]
    assert d_plan[iz, iy, ix] - d_ref[iz, iy, ix] < 2 * MLC.leaf_transmission * d_ref[iz, iy].max()


def test_mlcy_equals_mlcx_rotated(box):
    """MLCY (leaves along Y, boundaries along X) opening 10 x 6 cm = MLCX opening the same rectangle."""
    pos_x = {"X": [-50.0, 50.0], "Y": [-30.0, 30.0], "MLCX": f.field_leaves(50.0, 30.0)}
    pos_y = {"X": [-50.0, 50.0], "Y": [-30.0, 30.0], "MLCY": f.field_leaves(30.0, 50.0)}
    px = f.rt_plan([f.beam(1, [f.first_cp(pos_x), f.control_point(1, 1.0)], devices=("X", "Y", "MLCX"))], {1: 50.0})
    py = f.rt_plan([f.beam(1, [f.first_cp(pos_y), f.control_point(1, 1.0)], devices=("X", "Y", "MLCY"))], {1: 50.0})
    bx, by = read_rtplan(px, box).beams[0], read_rtplan(py, box).beams[0]
    np.testing.assert_allclose(bx.weights_mu, by.weights_mu, rtol=0, atol=1e-12)


def test_collimator_90_mlcx_equals_collimator_0_mlcy(box):
    """IEC 61217: at collimator 90 deg the MLCX leaves travel along IEC Y. A half-field u in [0, 40], v in [-20, 20]
    at collimator 90 is the field u in [-20, 20], v in [0, 40] at collimator 0 (MLCY leaves along v)."""
    boundaries = np.arange(-40.0, 45.0, 5.0)  # 16 pairs of 5 mm
    inside = (boundaries[:-1] >= -20.0 - 1e-9) & (boundaries[1:] <= 20.0 + 1e-9)
    tips = f.leaves(np.where(inside, 0.0, 10.0), np.where(inside, 40.0, 10.0), 16)
    c90 = f.first_cp({"X": [-40.0, 40.0], "Y": [-20.0, 20.0], "MLCX": tips}, coll=90.0)
    c0 = f.first_cp({"X": [-20.0, 20.0], "Y": [-40.0, 40.0], "MLCY": tips})
    d = []
    for cp0, kind in ((c90, "MLCX"), (c0, "MLCY")):
        plan = f.rt_plan([f.beam(1, [cp0, f.control_point(1, 1.0)], devices=("X", "Y", kind), boundaries=boundaries)],
                         {1: 50.0})
        d.append(_dose(read_rtplan(plan, box).all_beams(), box))
    assert np.abs(d[0] - d[1]).max() <= 1e-6 * d[1].max()
    z = box.grid.axis_mm("z")
    assert d[1][z > 0].sum() > 20 * d[1][z < -30].sum()  # the open half is superior (IEC Y = +z)


def test_partial_leaf_coverage_is_exact_to_the_beamlet_area(box):
    """A leaf tip at 1 mm inside a 2.5 mm beamlet opens 40 % of it; a closed pair gives the transmission."""
    pos = {"ASYMX": [-20.0, 20.0], "ASYMY": [-10.0, 10.0],
           "MLCX": f.leaves([-11.0 - 0.75] * 60, [11.0 + 0.75] * 60)}
    pos["MLCX"][30] = pos["MLCX"][90] = 0.0  # pair 31 (v in [0, 5)) closed
    plan = f.rt_plan([f.beam(1, [f.first_cp(pos), f.control_point(1, 1.0)])], {1: 10.0})
    b = read_rtplan(plan, box).beams[0]
    ue, ve = b.beamlet_edges_mm()
    row = int(np.searchsorted(ve, -5.0 + 1e-9))  # v in [-5, -2.5)
    col = int(np.searchsorted(ue, 10.0 + 1e-9)) - 1  # u in [10, 12.5): the tip at 11 + 0.75 - 0.75 = ... opens 1 mm
    # tip at 11.75 - DLG/2 + DLG/2 (reader widens by 0.75) = 12.5: full column; the next column is transmission
    assert b.weights_mu[row, col] == pytest.approx(10.0)
    assert b.weights_mu[row, col + 1] == pytest.approx(10.0 * MLC.leaf_transmission)
    closed_row = int(np.searchsorted(ve, 0.0 + 1e-9))
    np.testing.assert_allclose(b.weights_mu[closed_row], 10.0 * MLC.leaf_transmission)
    pos["MLCX"] = f.leaves([-11.0] * 60, [10.25] * 60)  # B tip + 0.75 = 11.0: 1 mm of [10, 12.5)
    plan = f.rt_plan([f.beam(1, [f.first_cp(pos), f.control_point(1, 1.0)])], {1: 10.0})
    b = read_rtplan(plan, box).beams[0]
    expected = 10.0 * (0.4 + 0.6 * MLC.leaf_transmission)
    assert b.weights_mu[row, col] == pytest.approx(expected, rel=1e-12)


def test_no_x_jaw_opens_to_the_mlc_extent(box):
    pos = {"Y": [-20.0, 20.0], "MLCX": f.field_leaves(30.0, 20.0, park=-30.0)}
    plan = f.rt_plan([f.beam(1, [f.first_cp(pos), f.control_point(1, 1.0)], devices=("Y", "MLCX"))], {1: 10.0})
    b = read_rtplan(plan, box).beams[0]
    ue, _ = b.beamlet_edges_mm()
    assert ue[0] == pytest.approx(-MLC.travel_limit_mm) and ue[-1] == pytest.approx(MLC.travel_limit_mm)
    assert b.weights_mu.max() == pytest.approx(10.0)


def test_dose_is_linear_in_the_meterset(box):
    d1 = _dose(read_rtplan(f.static_mlc_field(30.0, 30.0, mu=40.0), box).all_beams(), box)
    d2 = _dose(read_rtplan(f.static_mlc_field(30.0, 30.0, mu=100.0), box).all_beams(), box)
    np.testing.assert_allclose(d2, 2.5 * d1, rtol=1e-6, atol=1e-9 * d2.max())


def test_step_and_shoot_sums_segments(box):
    """Two segments (10 x 10 for 60 % of the MU, 6 x 6 for 40 %) = 0.6 open 10x10 + 0.4 open 6x6."""
    s1 = {"ASYMX": [-50.0, 50.0], "ASYMY": [-50.0, 50.0], "MLCX": f.field_leaves(50.0, 50.0)}
    s2 = {"ASYMX": [-30.0, 30.0], "ASYMY": [-30.0, 30.0], "MLCX": f.field_leaves(30.0, 30.0)}
    cps = [f.first_cp(s1), f.control_point(1, 0.6), f.control_point(2, 0.6, positions=s2), f.control_point(3, 1.0)]
    plan = f.rt_plan([f.beam(1, cps)], {1: 100.0})
    b = read_rtplan(plan, box).beams[0]
    d_plan = _dose(b, box)
    d_ref = _dose([_open_beam(50.0, 50.0, 60.0), _open_beam(30.0, 30.0, 40.0)], box)
    assert np.abs(d_plan - d_ref).max() <= 1e-6 * d_ref.max()


def _sweep_leaves(position):
    """Leaves with a 20 mm gap from ``position`` over |v| < 40 mm; the other pairs parked closed at -60 mm."""
    a = f.leaves(position, position + 20.0)
    inside = (np.asarray(f.MLC120[:-1]) >= -40.0) & (np.asarray(f.MLC120[1:]) <= 40.0)
    for j in np.nonzero(~inside)[0]:
        a[j] = a[60 + j] = -60.0
    return a


def _sliding_window(gantry=(0.0, 0.0), direction="NONE", mu=100.0):
    """Leaves sweep with a 20 mm gap from -50 to 30 mm at constant speed, back and forth between control points."""
    jaws = {"ASYMX": [-60.0, 60.0], "ASYMY": [-40.0, 40.0]}
    cps = []
    for k, g in enumerate(gantry):
        leaves_k = {"MLCX": _sweep_leaves(-50.0 if k % 2 == 0 else 30.0)}
        if k == 0:
            cps.append(f.first_cp({**jaws, **leaves_k}, gantry=g, direction=direction))
        else:
            cps.append(f.control_point(k, k / (len(gantry) - 1), gantry=g, positions=leaves_k))
    return f.rt_plan([f.beam(1, cps)], {1: mu})


def _sweep_reference(mu, gantry=0.0, name="ref"):
    """Closed form of one sweep: per MU, a point at u is in the gap (widened by the leaf gap g) for
    t in ((u + 30 - g/2) / 80, (u + 50 + g/2) / 80) and under a leaf (transmission t_l) otherwise; jaws at
    |u| <= 60, |v| <= 40. Averaged over 2.5 mm beamlets by a 0.01 mm midpoint sum."""
    half = 0.5 * MLC.dosimetric_leaf_gap_mm
    u = np.arange(-60.0, 60.0, 0.01) + 0.005
    open_ = np.clip((u + 50.0 + half) / 80.0, 0.0, 1.0) - np.clip((u + 30.0 - half) / 80.0, 0.0, 1.0)
    fluence = np.clip(open_, 0.0, None) + MLC.leaf_transmission * (1.0 - np.clip(open_, 0.0, None))
    per_beamlet = fluence.reshape(48, 250).mean(axis=1)
    return Beam(MACHINE, (0.0, 0.0, 0.0), gantry, np.tile(mu * per_beamlet, (32, 1)), (2.5, 2.5), (-58.75, -38.75),
                name=name)


def test_sliding_window_uniform_fluence_gives_uniform_dose(box):
    b = read_rtplan(_sliding_window(), box).beams[0]
    ref = _sweep_reference(100.0)
    assert b.weights_mu.shape == ref.weights_mu.shape and b.origin_uv_mm == ref.origin_uv_mm
    np.testing.assert_allclose(b.weights_mu, ref.weights_mu, rtol=0, atol=0.005 * ref.weights_mu.max())  # 1 mm steps
    core = np.abs(0.5 * (b.beamlet_edges_mm()[0][1:] + b.beamlet_edges_mm()[0][:-1])) < 25.0
    assert np.ptp(b.weights_mu[:, core]) < 1e-3 * b.weights_mu.max()  # the fluence is uniform in the core
    d_plan, d_ref = _dose(b, box), _dose(ref, box)
    x, z = box.grid.axis_mm("x"), box.grid.axis_mm("z")
    keep = (np.abs(z)[:, None, None] < 25.0) & (np.abs(x)[None, None, :] < 15.0) & (d_ref > 0.5 * d_ref.max())
    assert np.abs(d_plan[keep] / d_ref[keep] - 1.0).max() < 0.02
    # and the core dose is uniform across the field at each depth (within 2 %)
    profile = d_plan[:, :, np.abs(x) < 15.0][np.abs(z) < 25.0]
    assert np.all(np.ptp(profile, axis=-1) / profile.mean(axis=-1) < 0.02)


def test_vmat_uniform_fluence_gives_uniform_dose(box):
    """A VMAT arc 356 -> 4 deg CW, the leaves sweeping across the field between successive control points."""
    gantry = [(356.0 + k) % 360.0 for k in range(9)]
    arc = read_rtplan(_sliding_window(gantry=gantry, direction="CW"), box).beams[0]
    assert isinstance(arc, Arc) and len(arc) == 8
    np.testing.assert_allclose(arc.gantry_deg, [(356.5 + k) % 360.0 for k in range(8)])
    assert arc.total_mu == pytest.approx(100.0)
    d_plan = _dose(list(arc), box)
    d_ref = _dose([_sweep_reference(12.5, g) for g in arc.gantry_deg], box)
    x, y, z = box.grid.axis_mm("x"), box.grid.axis_mm("y"), box.grid.axis_mm("z")
    keep = (np.abs(z)[:, None, None] < 25.0) & (np.abs(x)[None, None, :] < 15.0) & (np.abs(y)[None, :, None] < 60.0)
    assert np.abs(d_plan[keep] / d_ref[keep] - 1.0).max() < 0.02
    profile = d_plan[:, :, np.abs(x) < 15.0][np.abs(z) < 25.0]
    assert np.all(np.ptp(profile, axis=-1) / profile.mean(axis=-1) < 0.02)


def test_vmat_interpolation_to_the_gantry_spacing(box):
    """A static aperture over a 20 deg CC arc: samples every <= 2 deg at sub-arc midpoints, MU shared."""
    pos = {"ASYMX": [-20.0, 20.0], "ASYMY": [-20.0, 20.0], "MLCX": f.field_leaves(20.0, 20.0)}
    cps = [f.first_cp(pos, gantry=10.0, direction="CC"), f.control_point(1, 0.5, gantry=0.0),
           f.control_point(2, 1.0, gantry=350.0)]
    plan = f.rt_plan([f.beam(1, cps)], {1: 200.0})
    for spacing, n in ((2.0, 10), (5.0, 4), (3.0, 8)):
        arc = read_rtplan(plan, box, arc_spacing_deg=spacing).beams[0]
        assert len(arc) == n
        assert arc.total_mu == pytest.approx(200.0)
        assert arc.direction == "ccw"
        assert np.all(np.diff(np.unwrap(np.deg2rad(arc.gantry_deg))) < 0)
    arc = read_rtplan(plan, box, arc_spacing_deg=2.0).beams[0]
    np.testing.assert_allclose(arc.gantry_deg, [9, 7, 5, 3, 1, 359, 357, 355, 353, 351])
    d_plan = _dose(list(arc), box)
    d_ref = _dose([_open_beam(20.0, 20.0, 20.0, gantry=g) for g in arc.gantry_deg], box)
    assert np.abs(d_plan - d_ref).max() <= 1e-6 * d_ref.max()


def test_180_control_point_vmat_reads_fast(box):
    rng = np.random.default_rng(3)
    cps = []
    inside = (np.asarray(f.MLC120[:-1]) >= -50.0) & (np.asarray(f.MLC120[1:]) <= 50.0)
    for k in range(180):
        lo_ = np.where(inside, -rng.uniform(10, 50, 60), 0.0)
        hi_ = np.where(inside, rng.uniform(10, 50, 60), 0.0)
        pos = {"ASYMX": [-50.0, 50.0], "ASYMY": [-50.0, 50.0], "MLCX": f.leaves(lo_, hi_)}
        if k == 0:
            cps.append(f.first_cp(pos, gantry=181.0, direction="CW"))
        else:
            cps.append(f.control_point(k, k / 179.0, gantry=(181.0 + 2.0 * k) % 360.0, positions=pos))
    plan = f.rt_plan([f.beam(1, cps)], {1: 500.0})
    t0 = time.perf_counter()
    arc = read_rtplan(plan, box).beams[0]
    seconds = time.perf_counter() - t0
    assert len(arc.control_points) == 179
    assert arc.total_mu == pytest.approx(500.0)
    assert seconds <= 2.0, f"reading a 180-control-point VMAT took {seconds:.2f} s"


def _static(extra_beam=None, extra_cp=None, devices=("ASYMX", "ASYMY", "MLCX"), energy=6.0, iso=(0.0, 0.0, 0.0),
            mu=10.0, **kw):
    pos = {"ASYMX": [-20.0, 20.0], "ASYMY": [-20.0, 20.0], "MLCX": f.field_leaves(20.0, 20.0)}
    pos = {k: v for k, v in pos.items() if k in devices}
    cp0 = f.control_point(0, 0.0, gantry=0.0, positions=pos, iso=iso, energy=energy, coll=0.0, couch=0.0,
                          direction="NONE", extra=extra_cp)
    return f.rt_plan([f.beam(1, [cp0, f.control_point(1, 1.0)], devices=devices, extra=extra_beam)], {1: mu}, **kw)


def _with_leaves(a, b):
    pos = {"ASYMX": [-20.0, 20.0], "ASYMY": [-20.0, 20.0], "MLCX": f.leaves(a, b)}
    return f.rt_plan([f.beam(1, [f.first_cp(pos), f.control_point(1, 1.0)])], {1: 10.0})


def _bad_cumulative():
    pos = {"ASYMX": [-20.0, 20.0], "ASYMY": [-20.0, 20.0], "MLCX": f.field_leaves(20.0, 20.0)}
    cps = [f.first_cp(pos), f.control_point(1, 0.7), f.control_point(2, 0.5), f.control_point(3, 1.0)]
    return f.rt_plan([f.beam(1, cps)], {1: 10.0})


@pytest.mark.parametrize("plan, match", [
    (lambda: _with_leaves([5.0] * 60, [-5.0] * 60), r"beam 1 \(B1\), control point 0, MLCX: leaf pair 1 crosses"),
    (lambda: _with_leaves([-250.0] * 60, [10.0] * 60), r"control point 0, MLCX: leaf pair 1 .* outside the travel"),
    (_bad_cumulative, r"beam 1 \(B1\), control point 2: CumulativeMetersetWeight 0.5 is below the previous 0.7"),
    (lambda: _static(mu=None), r"beam 1 \(B1\): BeamMeterset missing"),
    (lambda: _static(iso=(0.0, 500.0, 0.0)), r"beam 1 \(B1\): IsocenterPosition .* outside the CT"),
    (lambda: _static(devices=("ASYMX", "ASYMY", "MLCX"), extra_beam={"NumberOfWedges": 1}),
     r"beam 1 \(B1\): NumberOfWedges = 1; wedges are not modelled"),
    (lambda: _static(extra_beam={"NumberOfBlocks": 2}), r"NumberOfBlocks = 2; blocks"),
    (lambda: _static(extra_beam={"RadiationType": "ELECTRON"}), r"beam 1 \(B1\): RadiationType ELECTRON"),
    (lambda: _static(energy=10.0), r"beam 1 \(B1\): NominalBeamEnergy 10 MV has no machine data"),
    (lambda: _static(extra_beam={"PrimaryFluenceModeSequence": _fff()}),
     r"NominalBeamEnergy 6 MV flattening-filter-free has no machine data"),
    (lambda: _static(extra_beam={"SourceAxisDistance": 800.0}), r"SourceAxisDistance 800 mm"),
    (lambda: _static(extra_cp={"TableTopEccentricAngle": 10.0}),
     r"beam 1 \(B1\), control point 0: TableTopEccentricAngle 10 deg"),
])
def test_bad_plans_name_beam_control_point_and_attribute(box, plan, match):
    with pytest.raises(DicomError, match=match):
        read_rtplan(plan(), box)


def _fff():
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    mode = Dataset()
    mode.FluenceMode = "NON_STANDARD"
    mode.FluenceModeID = "FFF"
    return Sequence([mode])


def test_unknown_beam_limiting_device(box):
    plan = _static()
    plan.BeamSequence[0].BeamLimitingDeviceSequence[0].RTBeamLimitingDeviceType = "MLCX1"
    with pytest.raises(DicomError, match=r"beam 1 \(B1\): RTBeamLimitingDeviceType 'MLCX1' is not supported"):
        read_rtplan(plan, box)


def _dicom_patient(box, frame="1.2.3.4", structure_set=None):
    import copy

    p = copy.copy(box)
    p.dicom = {"FrameOfReferenceUID": frame, "StudyInstanceUID": "1.2.3", "ct_sop_instance_uids": ["1.2.3.5"]}
    if structure_set:
        p.dicom["rtstruct"] = {"SOPInstanceUID": structure_set}
    return p


def test_frame_of_reference_must_be_the_cts(box):
    with pytest.raises(DicomError, match=r"FrameOfReferenceUID 9.9.9 differs from the CT's 1.2.3.4"):
        read_rtplan(_static(frame_uid="9.9.9"), _dicom_patient(box))
    assert read_rtplan(_static(frame_uid="1.2.3.4"), _dicom_patient(box)).frame_of_reference_uid == "1.2.3.4"


def test_plan_referencing_an_absent_structure_set(box):
    with pytest.raises(DicomError, match=r"names RT Structure Set 7.7.7, but the CT folder has none"):
        read_rtplan(_static(frame_uid="1.2.3.4", structure_set_uid="7.7.7"), _dicom_patient(box))
    with pytest.raises(DicomError, match=r"names RT Structure Set 7.7.7, but the folder's is 8.8.8"):
        read_rtplan(_static(frame_uid="1.2.3.4", structure_set_uid="7.7.7"), _dicom_patient(box, structure_set="8.8.8"))
    data = read_rtplan(_static(frame_uid="1.2.3.4", structure_set_uid="8.8.8"), _dicom_patient(box, "1.2.3.4", "8.8.8"))
    assert data.referenced_structure_set_uid == "8.8.8"


def test_not_a_plan(box, tmp_path):
    path = tmp_path / "x.dcm"
    path.write_bytes(b"not dicom")
    with pytest.raises(DicomError, match="not a readable DICOM file"):
        read_rtplan(path, box)
    with pytest.raises(DicomError, match="no such RT Plan file"):
        read_rtplan(tmp_path / "missing.dcm", box)
