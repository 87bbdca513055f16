"""``export_comparison`` writes the CRT and boost components as RT Plans: read back and recomputed they give the
components' doses (per fraction and per vertex session) within 1 % of the maximum."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

import sfrt_engine as se
from sfrt_engine import io
from sfrt_engine.io.rtplan_read import read_rtplan
from sfrt_engine.io.rtplan_write import write_rtplan
from sfrt_engine.plan.techniques import ImrtTechnique, VmatTechnique


@pytest.mark.parametrize("technique", ["3dcrt", pytest.param("imrt", marks=pytest.mark.slow),
                                       pytest.param("vmat", marks=pytest.mark.slow)])
def test_exported_plans_recompute_the_components(technique, tmp_path):
    """The CRT and BOOST plans written by the export, read back and recomputed, are the components' doses (CRT: one
    fraction; BOOST: one vertex session, the unit dose times the session's boost weight) within 1 % of the maximum:
    the components are the dose of the control points the export writes, which are written as they are."""
    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)
    settings = se.ComparisonSettings(technique=technique, crt_fractions=15, vertex_sessions=3, backend="cpp",
                                     optimiser_iterations=3,
                                     technique_options={"spacing_deg": 30.0} if technique == "vmat" else {})
    result = se.run_comparison(patient, settings)
    written = io.export_comparison(tmp_path, result)
    assert sorted(p.name for p in written["rtplan"]) == ["RTPLAN_BOOST.dcm", "RTPLAN_CRT.dcm"]
    components = result.prepared.components
    expected = components["CRT"].dose_gy
    plan = read_rtplan(tmp_path / "RTPLAN_CRT.dcm", patient)
    assert plan.fractions_planned == 15
    assert len(plan.deliveries) == len(components["CRT"].deliveries)
    for a, b in zip(plan.deliveries, components["CRT"].deliveries):  # the component's control points, as written
        np.testing.assert_allclose(a.leaf_positions_mm, b.leaf_positions_mm, rtol=0, atol=1e-9)
        np.testing.assert_allclose(a.cumulative_weight, b.cumulative_weight / b.cumulative_weight[-1], atol=1e-12)
    dose = se.compute_dose(plan.all_beams(), patient, backend="cpp").gy
    assert np.abs(dose - expected).max() <= 0.01 * expected.max()
    boost = read_rtplan(tmp_path / "RTPLAN_BOOST.dcm", patient)
    assert boost.fractions_planned == 3
    weight = next(s.weight("BOOST") for s in result.schedules["SFRT"].sessions if s.weight("BOOST") > 0)
    expected = weight * components["BOOST"].dose_gy
    dose = se.compute_dose(boost.all_beams(), patient, backend="cpp").gy
    assert np.abs(dose - expected).max() <= 0.01 * expected.max()
    ref = pydicom.dcmread(tmp_path / "RTDOSE_SFRT_PHYSICAL.dcm").ReferencedRTPlanSequence
    assert [r.ReferencedSOPInstanceUID for r in ref] == [plan.sop_instance_uid, boost.sop_instance_uid]


def _machine_without_transmission(folder):
    """The built-in photon_6mv with an ideal MLC (no leaf transmission), as a user machine file."""
    from importlib import resources

    data = json.loads((resources.files("sfrt_engine.machines") / "data" / "photon_6mv.json").read_text())
    data["mlc"]["leaf_transmission"] = 0.0
    path = folder / "photon_6mv_ideal_mlc.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("kind", ["imrt", pytest.param("vmat", marks=pytest.mark.slow)])
def test_deliverable_boost_recomputes_the_engine_dose(kind, tmp_path):
    """A vertex boost at the MLC's 5 mm leaf resolution, written and read back. With an ideal MLC (no
    transmission) it is the engine's dose within 1 % of the maximum; with the machine's 1.5 % transmission the
    vertex mean stays within 1 % while the valleys, under closed leaves in every segment, get up to 3 % of the
    maximum more (a unidirectional sweep opens a row with several vertices once per vertex)."""
    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)
    vertices = se.plan.place_vertices(patient, "GTV", avoid=("FEMUR", "SKIN"))
    for machine, tol in ((_machine_without_transmission(tmp_path), 0.01), ("photon_6mv", 0.03)):
        technique = ImrtTechnique(machine_name=machine, boost_beamlet_mm=5.0) if kind == "imrt" else \
            VmatTechnique(machine_name=machine, boost_leaf_width_mm=5.0, spacing_deg=12.0)
        iso = tuple(vertices.centers_xyz_mm.mean(axis=0))
        beams = technique.boost_beams(patient, vertices.mask, isocenter_xyz_mm=iso)
        path = write_rtplan(tmp_path / "RP.dcm", beams, patient, plan_label="BOOST", fractions=3)
        d_engine = se.compute_dose(beams, patient, backend="cpp").gy
        d_plan = se.compute_dose(read_rtplan(path, patient, machine=machine).all_beams(), patient, backend="cpp").gy
        assert np.abs(d_plan - d_engine).max() <= tol * d_engine.max(), machine
        assert abs(d_plan[vertices.mask].mean() / d_engine[vertices.mask].mean() - 1.0) < 0.01
