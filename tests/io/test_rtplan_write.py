"""Writing photon RT Plans: read back and recompute within 1 % of the maximum, bit-identical control points on
import-export-import, pydicom validation and loading in a second toolkit (pymedphys)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom import config as dicom_config

import sfrt_engine as se
from sfrt_engine.errors import PlanError
from sfrt_engine.io.rtplan_read import read_rtplan
from sfrt_engine.io.rtplan_write import write_rtplan
from sfrt_engine.machines import load_machine, mlc_model
from sfrt_engine.phantoms import water_box
from sfrt_engine.plan import conformal_arc, conformal_beams
from sfrt_engine.plan.mlc import aperture_fluence, sequence_fluence
from sfrt_engine.plan.techniques import ImrtTechnique, VmatTechnique


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
def phantom():
    p = water_box((180.0, 150.0, 150.0), 5.0)
    x, y, z = np.meshgrid(p.grid.axis_mm("x"), p.grid.axis_mm("y"), p.grid.axis_mm("z"), indexing="ij")
    inside = ((x - 10.0) ** 2 / 40.0 ** 2 + y ** 2 / 30.0 ** 2 + z ** 2 / 35.0 ** 2) <= 1.0
    p.structures["PTV"] = np.ascontiguousarray(inside.transpose(2, 1, 0))
    return p


@pytest.fixture
def strict_dicom(monkeypatch):
    """pydicom's own validation: invalid values raise on writing and on reading."""
    monkeypatch.setattr(dicom_config.settings, "writing_validation_mode", dicom_config.RAISE)
    monkeypatch.setattr(dicom_config.settings, "reading_validation_mode", dicom_config.RAISE)


def _dose(beams, patient):
    return se.compute_dose(beams, patient, backend="cpp").gy


def _modulated(beams):
    """IMRT-like fluence maps: the conformal apertures times a smooth two-level-per-axis modulation."""
    out = []
    for b in beams:
        nv, nu = b.weights_mu.shape
        mod = 1.0 + 0.5 * (np.arange(nu)[None, :] % 4 >= 2) + 0.25 * (np.arange(nv)[:, None] % 3 == 0)
        out.append(b.with_weights(b.weights_mu * mod))
    return out


TECHNIQUES = {
    "3dcrt": lambda p: ImrtTechnique(crt_beams_count=5).crt_beams(p, "PTV"),
    "imrt": lambda p: _modulated(conformal_beams(p, "PTV", MACHINE, gantry_deg=(0.0, 120.0, 240.0), weight_mu=30.0)),
    "vmat": lambda p: VmatTechnique(spacing_deg=20.0, refine_iterations=1).crt_beams(p, "PTV"),
}


@pytest.mark.parametrize("technique", sorted(TECHNIQUES))
def test_written_plan_recomputes_the_engine_dose(phantom, technique, tmp_path, strict_dicom):
    beams = TECHNIQUES[technique](phantom)
    path = write_rtplan(tmp_path / "RP.dcm", beams, phantom, plan_label=technique, fractions=20)
    data = read_rtplan(path, phantom)
    assert data.fractions_planned == 20 and data.plan_label == technique
    d_engine = _dose(beams, phantom)
    d_plan = _dose(data.all_beams(), phantom)
    err = np.abs(d_plan - d_engine).max() / d_engine.max()
    assert err <= 0.01, f"{technique}: written plan differs from the engine's dose by {100 * err:.2f} % of max"
    ptv = phantom.structures["PTV"]
    assert abs(d_plan[ptv].mean() / d_engine[ptv].mean() - 1.0) < 0.005
    if technique == "vmat":
        assert len(data.beams) == 1 and len(data.beams[0]) == 18  # one arc, one static beam per station


def test_sequenced_open_fluence_equals_the_map():
    """Without transmission and leaf gap the segments' apertures sum to the fluence map exactly."""
    rng = np.random.default_rng(7)
    w = rng.uniform(0.0, 3.0, (8, 12)) * (rng.uniform(size=(8, 12)) > 0.2)
    w[2] = 0.0
    w[5, :4] = 0.0
    w[5, 4:9] = 2.0
    w[5, 3], w[5, 9] = 0.0, 0.7  # a row with a partial end column
    ue, ve = 5.0 * np.arange(-6, 7), 5.0 * np.arange(-4, 5)
    ideal = type(MLC)("ideal", MLC.leaf_boundaries_mm, 0.0, 0.0)
    segments = sequence_fluence(w, ue, ve, MLC.leaf_boundaries_mm)
    total = sum(s.mu * aperture_fluence(ideal, MLC.leaf_boundaries_mm, s.positions_mm, s.jaw_u_mm, s.jaw_v_mm, ue, ve)
                for s in segments)
    np.testing.assert_allclose(total, w, rtol=0, atol=1e-12)
    # unidirectional: within each leaf pair's openings, the leaves only move from left to right
    for j in range(MLC.n_pairs):
        opened = [s.positions_mm[j] for s in segments if s.positions_mm[j, 1] > s.positions_mm[j, 0]]
        if opened:
            a = np.array(opened)
            assert np.all(np.diff(a[:, 0]) >= 0) and np.all(np.diff(a[:, 1]) >= 0)
    # the MU are the unidirectional minimum: the largest sum of positive increments of a row
    rows = np.diff(np.concatenate([np.zeros((8, 1)), w, np.zeros((8, 1))], axis=1), axis=1)
    assert sum(s.mu for s in segments) == pytest.approx(np.maximum(rows, 0.0).sum(axis=1).max())


def _fields(d):
    return (d.name, d.number, d.meterset_mu, d.gantry_deg, d.direction, d.cumulative_weight, d.collimator_deg,
            d.couch_deg, d.jaw_u_mm, d.jaw_v_mm, d.leaf_boundaries_mm, d.leaf_positions_mm, d.isocenter_xyz_mm)


def _vmat_plan():
    rng = np.random.default_rng(5)
    inside = (np.asarray(f.MLC120[:-1]) >= -40.0) & (np.asarray(f.MLC120[1:]) <= 40.0)
    cps = []
    for k in range(60):
        pos = {"ASYMX": [-45.0, 45.0], "ASYMY": [-40.0, 40.0],
               "MLCX": f.leaves(np.where(inside, -np.round(rng.uniform(5, 40, 60), 2), 0.0),
                                np.where(inside, np.round(rng.uniform(5, 40, 60), 2), 0.0))}
        cps.append(f.first_cp(pos, gantry=181.0, direction="CW") if k == 0 else
                   f.control_point(k, round(k / 59.0, 8), gantry=(181.0 + 6.0 * k) % 360.0, positions=pos))
    step = {"ASYMX": [-30.0, 30.0], "ASYMY": [-30.0, 30.0], "MLCX": f.field_leaves(30.0, 30.0)}
    small = {"ASYMX": [-20.0, 20.0], "ASYMY": [-20.0, 20.0], "MLCX": f.field_leaves(20.0, 20.0)}
    sns = [f.first_cp(step, gantry=90.0), f.control_point(1, 0.625), f.control_point(2, 0.625, positions=small),
           f.control_point(3, 1.0)]
    return f.rt_plan([f.beam(1, cps, name="ARC"), f.beam(2, sns, name="SNS")], {1: 321.5, 2: 80.0})


def test_import_export_import_is_bit_identical(phantom, tmp_path, strict_dicom):
    first = tmp_path / "RP1.dcm"
    _vmat_plan().save_as(first, enforce_file_format=True)
    a = read_rtplan(first, phantom)
    path_b = write_rtplan(tmp_path / "RP2.dcm", a.deliveries, phantom, plan_label="copy", fractions=5)
    b = read_rtplan(path_b, phantom)
    c = read_rtplan(write_rtplan(tmp_path / "RP3.dcm", b.deliveries, phantom, plan_label="copy", fractions=5), phantom)
    assert len(a.deliveries) == len(b.deliveries) == 2
    for da, db, dc in zip(a.deliveries, b.deliveries, c.deliveries):
        for fa, fb, fc in zip(_fields(da), _fields(db), _fields(dc)):
            assert np.array_equal(np.asarray(fa), np.asarray(fb)) and np.array_equal(np.asarray(fb), np.asarray(fc))
    for ba, bb in zip(a.all_beams(), b.all_beams()):
        assert np.array_equal(ba.weights_mu, bb.weights_mu) and ba.gantry_deg == bb.gantry_deg


def test_written_plan_loads_in_pymedphys(phantom, tmp_path):
    """A second DICOM toolkit reads the same monitor units, gantry angles, leaves and jaws (its sign conventions:
    gantry in (-180, 180], bank A negated, the first jaw negated)."""
    pymedphys = pytest.importorskip("pymedphys")
    beams = list(conformal_arc(phantom, "PTV", MACHINE, spacing_deg=20.0, total_mu=200.0))
    path = write_rtplan(tmp_path / "RP.dcm", beams, phantom, plan_label="arc", fractions=3, x_jaws=False)
    ours = read_rtplan(path, phantom).deliveries[0]
    theirs = pymedphys.Delivery.from_dicom(path)
    np.testing.assert_allclose(theirs.monitor_units, ours.cumulative_weight * ours.meterset_mu, rtol=1e-9)
    np.testing.assert_allclose(np.mod(theirs.gantry, 360.0), ours.gantry_deg, atol=1e-9)
    mlc = np.asarray(theirs.mlc)
    np.testing.assert_allclose(mlc[:, :, 0], ours.leaf_positions_mm[:, :, 1], atol=1e-9)
    np.testing.assert_allclose(mlc[:, :, 1], -ours.leaf_positions_mm[:, :, 0], atol=1e-9)
    np.testing.assert_allclose(np.abs(np.asarray(theirs.jaw)), np.abs(ours.jaw_v_mm), atol=1e-9)


def test_written_plan_has_the_rt_plan_modules(phantom, tmp_path, strict_dicom):
    beams = ImrtTechnique(crt_beams_count=3).crt_beams(phantom, "PTV")
    path = write_rtplan(tmp_path / "RP.dcm", beams, phantom, plan_label="CRT", fractions=15, description="CRT arm")
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.5" and ds.Modality == "RTPLAN"
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    for keyword in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "RTPlanLabel",
                    "RTPlanGeometry", "FractionGroupSequence", "BeamSequence", "PatientSetupSequence"):
        assert keyword in ds
    group = ds.FractionGroupSequence[0]
    assert group.NumberOfFractionsPlanned == 15 and group.NumberOfBeams == 3
    assert ds.FrameOfReferenceUID == phantom.dicom["FrameOfReferenceUID"]
    for beam, ref in zip(ds.BeamSequence, group.ReferencedBeamSequence):
        assert beam.BeamNumber == ref.ReferencedBeamNumber and float(ref.BeamMeterset) > 0
        assert beam.NumberOfControlPoints == len(beam.ControlPointSequence)
        final = beam.ControlPointSequence[-1].CumulativeMetersetWeight
        assert float(beam.FinalCumulativeMetersetWeight) == float(final)
        assert [d.RTBeamLimitingDeviceType for d in beam.BeamLimitingDeviceSequence] == ["ASYMX", "ASYMY", "MLCX"]


def test_write_refuses_bad_input(phantom, tmp_path):
    beams = ImrtTechnique(crt_beams_count=1).crt_beams(phantom, "PTV")
    with pytest.raises(PlanError, match="fractions=0"):
        write_rtplan(tmp_path / "RP.dcm", beams, phantom, plan_label="x", fractions=0)
    with pytest.raises(PlanError, match="no beams"):
        write_rtplan(tmp_path / "RP.dcm", [], phantom, plan_label="x", fractions=1)
    with pytest.raises(PlanError, match="cannot write str"):
        write_rtplan(tmp_path / "RP.dcm", ["beam"], phantom, plan_label="x", fractions=1)
    assert not list(tmp_path.iterdir())
