"""SFRT versus CRT on imported plans: `sfrt compare --dicom CT --crt-plan RP --boost-plan RP` end to end."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

import sfrt_engine as se
from sfrt_engine.cases import prepare_dicom_case
from sfrt_engine.cli import main
from sfrt_engine.compare import ComparisonSettings, run_comparison
from sfrt_engine.io.rtionplan_write import write_rtionplan

VERTEX_CENTRES = np.array([[-15.0, 0.0, 0.0], [15.0, 0.0, 0.0]])
VERTEX_RADIUS_MM = 7.5


def _phantom() -> se.Patient:
    patient = se.phantoms.water_box((160.0,) * 3, 5.0)
    g = patient.grid
    zz, yy, xx = np.meshgrid(g.axis_mm("z"), g.axis_mm("y"), g.axis_mm("x"), indexing="ij")
    patient.structures["GTV"] = xx ** 2 + yy ** 2 + zz ** 2 < 32.0 ** 2
    vertices = np.zeros(g.shape_zyx, bool)
    for cx, cy, cz in VERTEX_CENTRES:
        vertices |= (xx - cx) ** 2 + (yy - cy) ** 2 + (zz - cz) ** 2 < VERTEX_RADIUS_MM ** 2
    patient.structures["VERTICES"] = vertices
    return patient


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A CT + RTSTRUCT (GTV, BODY, VERTEX_01/02) folder and IMPT plans made on it (CRT 15 fx, boost 3 fx)."""
    folder = tmp_path_factory.mktemp("ct")
    phantom = _phantom()
    se.io.write_ct(folder, phantom)
    se.io.write_rtstruct(folder / "RS.dcm", phantom, names=("GTV", "BODY", "VERTICES"),
                         vertices=(VERTEX_CENTRES, VERTEX_RADIUS_MM))
    patient = prepare_dicom_case(folder, "GTV")
    machine = se.load_machine("proton_generic")
    crt = se.plan.impt_beams(patient, "PTV", machine, gantry_deg=[90.0, 270.0], prescription_gy=3.2,
                             backend="cpp", iterations=40)
    boost = se.plan.impt_beams(patient, "VERTICES", machine, gantry_deg=[0.0], spot_spacing_mm=3.0, margin_mm=2.0,
                               prescription_gy=9.0, backend="cpp", iterations=40)
    plans = tmp_path_factory.mktemp("plans")
    rp_crt = write_rtionplan(plans / "RP_crt.dcm", crt, patient, plan_label="CRT", fractions=15)
    rp_boost = write_rtionplan(plans / "RP_boost.dcm", boost, patient, plan_label="BOOST", fractions=3)
    return folder, rp_crt, rp_boost, crt, boost


def test_arms_from_imported_plans_use_their_fractions_doses_and_vertices(case):
    folder, rp_crt, rp_boost, crt_beams, boost_beams = case
    patient = prepare_dicom_case(folder, "GTV")
    settings = ComparisonSettings(crt_fractions=None, vertex_sessions=None, vertex_dose_gy=None,
                                  boost_mode="separate", avoid=(), backend="cpp", crt_plan=str(rp_crt),
                                  boost_plan=str(rp_boost))
    result = run_comparison(patient, settings)
    used = result.prepared.settings
    assert (used.crt_fractions, used.vertex_sessions) == (15, 3)
    # vertices: the structure set's VERTEX_01 and VERTEX_02, not a placed lattice
    vertices = result.prepared.vertices
    assert vertices.count == 2 and vertices.lattice == "structure set"
    np.testing.assert_allclose(vertices.centers_xyz_mm, VERTEX_CENTRES, atol=1.0)
    # CRT: one fraction as planned; BOOST: the plan's dose normalised to a vertex mean of 1 Gy
    reference = prepare_dicom_case(folder, "GTV")
    # proton plans: RBE-weighted dose, 1.1 x the absorbed dose (ICRU Report 78), as a planning system reports it
    d_crt = 1.1 * se.compute_dose(crt_beams, reference, backend="cpp").gy
    d_boost = 1.1 * se.compute_dose(boost_beams, reference, backend="cpp").gy
    assert {c.rbe for c in result.prepared.components.values()} == {1.1}
    np.testing.assert_allclose(result.prepared.components["CRT"].dose_gy, d_crt, atol=1e-3 * d_crt.max())
    vmask = vertices.mask
    np.testing.assert_allclose(result.prepared.components["BOOST"].dose_gy, d_boost / d_boost[vmask].mean(),
                               atol=1e-3 * d_boost.max() / d_boost[vmask].mean())
    # the vertex dose per session is what the boost plan delivers (separate sessions)
    assert used.vertex_dose_gy == pytest.approx(d_boost[vmask].mean(), rel=1e-3)
    d95 = se.evaluation.dose_statistics(d_crt, reference.structures["PTV"], "PTV")["d95_gy"]
    schedule = result.report["arms"]["SFRT"]["schedule"]
    assert schedule["crt_dose_per_fraction_gy"] == pytest.approx(d95, rel=1e-3)
    assert schedule["n_sessions"] == 15 + 3
    # physical CRT arm = 15 fractions of the plan
    np.testing.assert_allclose(result.physical_gy["CRT"], 15 * result.prepared.components["CRT"].dose_gy)
    assert result.report["settings"]["technique_details"]["crt_plan"]["fractions_planned"] == 15


def test_options_override_the_plans_fraction_groups_and_one_component_may_be_generated(case):
    folder, rp_crt, _, _, _ = case
    patient = prepare_dicom_case(folder, "GTV")
    settings = ComparisonSettings(technique="impt", crt_fractions=18, vertex_sessions=4, vertex_dose_gy=12.0,
                                  avoid=(), backend="cpp", crt_plan=str(rp_crt), optimiser_iterations=3)
    result = run_comparison(patient, settings)
    assert result.prepared.settings.crt_fractions == 18
    assert result.report["arms"]["SFRT"]["schedule"]["vertex_sessions"] == 4
    assert "generated" in result.prepared.technique and "boost_plan" not in result.prepared.technique
    vertex = result.prepared.vertices.mask
    session = result.prepared.components["CRT"].dose_gy + \
        result.schedules["SFRT"].sessions[0].weight("BOOST") * result.prepared.components["BOOST"].dose_gy
    assert session[vertex].mean() == pytest.approx(12.0, rel=1e-6)


def test_one_vertices_roi_gives_one_vertex_per_connected_part():
    from sfrt_engine.imported_plans import structure_set_vertices

    patient = _phantom()
    lattice = structure_set_vertices(patient, "GTV")
    assert lattice.count == 2 and "connected parts" in lattice.constraints["source"]
    np.testing.assert_allclose(lattice.centers_xyz_mm, VERTEX_CENTRES, atol=1.0)
    assert 12.0 < lattice.diameter_mm < 18.0 and lattice.spacing_mm == pytest.approx(30.0, abs=1.0)
    assert not (patient.structures["VALLEY"] & patient.structures["VERTICES"]).any()
    del patient.structures["VERTICES"]
    assert structure_set_vertices(patient, "GTV") is None


def test_cli_compare_with_plans_and_a_plan_from_another_ct(case, tmp_path, capsys):
    folder, rp_crt, rp_boost, _, _ = case
    out = tmp_path / "out"
    code = main(["compare", "--dicom", str(folder), "--target", "GTV", "--crt-plan", str(rp_crt),
                 "--boost-plan", str(rp_boost), "--boost-mode", "separate", "--backend", "cpp", "--out", str(out),
                 "-q"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["crt_plan"] == str(rp_crt) and report["settings"]["crt_fractions"] == 15
    assert report["settings"]["vertex_sessions"] == 3
    assert "15 x" in capsys.readouterr().out
    # a plan whose frame of reference is not the CT's: exit 2, one line, nothing written
    bad = pydicom.dcmread(rp_crt)
    bad.FrameOfReferenceUID = "1.2.3.4.5"
    bad.save_as(tmp_path / "RP_other.dcm")
    out2 = tmp_path / "out2"
    code = main(["compare", "--dicom", str(folder), "--target", "GTV", "--crt-plan", str(tmp_path / "RP_other.dcm"),
                 "--backend", "cpp", "--out", str(out2), "-q"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "FrameOfReferenceUID" in err and "\n" not in err
    assert not out2.exists()
    assert main(["compare", "--crt-plan", str(rp_crt), "--out", str(out2), "-q"]) == 2
    assert "--dicom" in capsys.readouterr().err


def test_plans_outside_the_protocol_name_the_plan_and_the_option(case, tmp_path):
    folder, rp_crt, _, _, boost_beams = case
    patient = prepare_dicom_case(folder, "GTV")
    two = write_rtionplan(tmp_path / "RP_two.dcm", boost_beams, patient, plan_label="B2", fractions=2)
    settings = ComparisonSettings(vertex_sessions=None, vertex_dose_gy=None, avoid=(), backend="cpp",
                                  boost_plan=str(two))
    with pytest.raises(se.PlanError, match="NumberOfFractionsPlanned 2.*--vertex-sessions"):
        run_comparison(patient, settings)
    weak = write_rtionplan(tmp_path / "RP_weak.dcm", [b.scaled(0.5) for b in boost_beams], patient,
                           plan_label="B", fractions=3)
    settings = ComparisonSettings(crt_fractions=None, vertex_sessions=None, vertex_dose_gy=None, avoid=(),
                                  boost_mode="separate", backend="cpp", crt_plan=str(rp_crt), boost_plan=str(weak))
    with pytest.raises(se.PlanError, match="8 to 15 Gy.*RP_weak.dcm.*--vertex-dose"):
        run_comparison(prepare_dicom_case(folder, "GTV"), settings)


def test_imported_photon_plans_are_exported_as_read(case, tmp_path):
    """`sfrt compare --crt-plan --boost-plan --export-dicom` on photon plans writes the plans' own control points
    (no second sequencing), with the metersets of the arms' sessions."""
    from sfrt_engine.io.rtplan_read import read_rtplan
    from sfrt_engine.io.rtplan_write import write_rtplan

    patient = prepare_dicom_case(case[0], "GTV")
    machine = se.load_machine("photon_6mv")
    crt = se.plan.conformal_beams(patient, "PTV", machine, gantry_deg=(0.0, 120.0, 240.0), weight_mu=60.0)
    boost = se.plan.conformal_beams(patient, "VERTICES", machine, gantry_deg=(60.0, 180.0, 300.0), weight_mu=600.0,
                                    beamlet_mm=2.5, margin_mm=0.0)
    rp_crt = write_rtplan(tmp_path / "RP_crt.dcm", crt, patient, plan_label="CRT", fractions=15)
    rp_boost = write_rtplan(tmp_path / "RP_boost.dcm", boost, patient, plan_label="BOOST", fractions=3)
    settings = ComparisonSettings(crt_fractions=None, vertex_sessions=None, vertex_dose_gy=None,
                                  boost_mode="separate", avoid=(), backend="cpp", crt_plan=str(rp_crt),
                                  boost_plan=str(rp_boost))
    result = run_comparison(patient, settings)
    se.io.export_comparison(tmp_path / "out", result, export_ct=False)
    for source, written in ((rp_crt, "RTPLAN_CRT.dcm"), (rp_boost, "RTPLAN_BOOST.dcm")):
        a, b = read_rtplan(source, patient), read_rtplan(tmp_path / "out" / written, patient)
        assert len(a.deliveries) == len(b.deliveries) and b.fractions_planned == a.fractions_planned
        for x, y in zip(a.deliveries, b.deliveries):
            np.testing.assert_array_equal(x.leaf_positions_mm, y.leaf_positions_mm)
            np.testing.assert_array_equal(x.jaw_u_mm, y.jaw_u_mm)
            np.testing.assert_array_equal(x.cumulative_weight, y.cumulative_weight)
            assert y.meterset_mu == pytest.approx(x.meterset_mu, rel=1e-6)
