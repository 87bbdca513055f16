"""SFRT versus CRT on the built-in sarcoma phantom (compare.py): report layout and arm physics.

The comparison runs once per boost mode on the 5 mm phantom with the cpp backend and the
default (optimised) technique, with few optimiser iterations. Expected values come from the protocol and the schedule arithmetic:
CRT PTV D95 = 3.0 Gy per fraction, vertex mean of a boost session = the prescribed dose.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine import PlanError, StructureError
from sfrt_engine.compare import ComparisonSettings, run_comparison
from sfrt_engine.optimise import default_goals
from sfrt_engine.plan.techniques import available_techniques, get_technique

#: The default goals with few iterations: the same optimisation path, fast enough for tests.
FAST_GOALS = dataclasses.replace(default_goals(), max_iterations={"crt": 8, "boost": 8})

# Unit doses are float64 and every arm quantity is a weighted sum of them with <= 24 terms,
# or a percentile/mean of such a sum: round-off is ~1e-13 relative. 1e-9 is a wide margin
# for round-off while any real error (a missing session, a wrong weight) is >= 1e-2.
RTOL = 1e-9

STAT_KEYS = {"mean_gy", "min_gy", "max_gy", "d2_gy", "d5_gy", "d50_gy", "d95_gy", "d98_gy"}  # issue 4, item 6
METRIC_KEYS = {"pvdr", "d10_d90", "peak_gy", "valley_gy", "gtv_d50_gy", "geud_gy"}
STRUCTURES = {"BODY", "GTV", "PTV", "FEMUR", "SKIN", "NORMAL_TISSUE", "VERTICES", "VALLEY"}


def _require_cpp() -> None:
    ok, reason = se.available_backends()["cpp"]
    if not ok:
        pytest.skip(f"cpp backend unavailable: {reason}")


def _run(**overrides):
    _require_cpp()
    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)
    messages: list[str] = []
    overrides.setdefault("goals", FAST_GOALS)
    result = run_comparison(patient, ComparisonSettings(backend="cpp", **overrides), progress=messages.append)
    return result, messages


@pytest.fixture(scope="module")
def integrated():
    return _run()


@pytest.fixture(scope="module")
def separate():
    return _run(boost_mode="separate")[0]


def test_report_layout(integrated):
    report = integrated[0].report
    assert {"settings", "arms"} <= set(report)
    assert set(report["arms"]) == {"CRT", "SFRT"}
    for arm, entry in report["arms"].items():
        assert {"schedule", "structures", "sfrt_metrics"} <= set(entry), arm
        assert entry["schedule"]["arm"] == arm
        assert set(entry["structures"]) == STRUCTURES  # no helper structures such as _VERTEX_TARGET
        for name, kinds in entry["structures"].items():
            assert set(kinds) == {"physical", "eqd2"}, (arm, name)
            for kind, stats in kinds.items():
                assert set(stats) == STAT_KEYS, (arm, name, kind)
                assert all(isinstance(v, float) and np.isfinite(v) for v in stats.values())
                assert stats["min_gy"] <= stats["d98_gy"] <= stats["d95_gy"] <= stats["d50_gy"] <= stats["d5_gy"] \
                    <= stats["d2_gy"] <= stats["max_gy"]
        metrics = entry["sfrt_metrics"]
        assert METRIC_KEYS <= set(metrics), arm
        assert all(isinstance(metrics[k], float) and np.isfinite(metrics[k]) for k in METRIC_KEYS)
    # plain JSON: no NaN/inf, no numpy scalars, survives a round trip
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text)["arms"]["SFRT"]["sfrt_metrics"]["pvdr"] == report["arms"]["SFRT"]["sfrt_metrics"]["pvdr"]


def test_report_states_boost_mode(integrated, separate):
    for result, mode in ((integrated[0], "integrated"), (separate, "separate")):
        assert result.report["settings"]["boost_mode"] == mode
        assert result.report["arms"]["SFRT"]["schedule"]["boost_mode"] == mode


def test_crt_ptv_d95_is_3gy_per_fraction(integrated):
    result = integrated[0]
    ptv = result.prepared.patient.structures["PTV"]
    one = result.prepared.components["CRT"].dose_gy
    assert np.percentile(one[ptv], 5.0) == pytest.approx(3.0, rel=RTOL)
    # cumulative over the 20 fractions of the default arm: 60 Gy
    assert result.report["arms"]["CRT"]["structures"]["PTV"]["physical"]["d95_gy"] == pytest.approx(60.0, rel=RTOL)
    assert result.report["arms"]["CRT"]["schedule"]["n_sessions"] == 20


def test_sfrt_pvdr_exceeds_crt(integrated, separate):
    for result in (integrated[0], separate):
        m = {arm: result.report["arms"][arm]["sfrt_metrics"] for arm in ("CRT", "SFRT")}
        assert m["SFRT"]["pvdr"] > m["CRT"]["pvdr"]
        assert m["SFRT"]["peak_gy"] > m["SFRT"]["valley_gy"]
        assert m["SFRT"]["d10_d90"] > m["CRT"]["d10_d90"]


def test_vertex_mean_reaches_the_prescription(integrated, separate):
    # with c the CRT vertex mean per fraction: integrated SFRT peak = 16 c + 4 x 12 Gy (the four
    # boosted sessions have a vertex mean of exactly 12 Gy); separate = 20 c + 4 x 12 Gy
    crt_peak = integrated[0].report["arms"]["CRT"]["sfrt_metrics"]["peak_gy"]
    c = crt_peak / 20
    assert c == pytest.approx(integrated[0].prepared.crt_vertex_mean_gy(), rel=RTOL)
    assert integrated[0].report["arms"]["SFRT"]["sfrt_metrics"]["peak_gy"] == pytest.approx(16 * c + 48.0, rel=RTOL)
    assert separate.report["arms"]["SFRT"]["sfrt_metrics"]["peak_gy"] == pytest.approx(20 * c + 48.0, rel=RTOL)
    assert separate.report["arms"]["SFRT"]["schedule"]["n_sessions"] == 24
    # the CRT arm is the same in both runs (deterministic backend, same inputs)
    assert separate.report["arms"]["CRT"]["sfrt_metrics"]["peak_gy"] == pytest.approx(crt_peak, rel=RTOL)


def test_crt_arm_eqd2_in_the_tumour(integrated):
    # every tumour voxel has a/b 4 Gy by default: EQD2 = 20 d (1 + d/4) / (1 + 2/4) with d its
    # dose per fraction
    result = integrated[0]
    gtv = result.prepared.patient.structures["GTV"]
    d = result.prepared.components["CRT"].dose_gy[gtv]
    np.testing.assert_allclose(result.eqd2_gy["CRT"][gtv], 20 * d * (1 + d / 4.0) / 1.5, rtol=RTOL)
    np.testing.assert_allclose(result.physical_gy["CRT"][gtv], 20 * d, rtol=RTOL)
    assert result.report["settings"]["alpha_beta_resolved_gy"]["GTV"] == 4.0
    assert result.report["settings"]["alpha_beta_resolved_gy"]["SKIN"] == 2.0


def test_geud_is_on_tumour_eqd2(integrated):
    # default a = -10 for the GTV: a power mean below 1 lies between the minimum and the mean
    result = integrated[0]
    gtv = result.prepared.patient.structures["GTV"]
    for arm in ("CRT", "SFRT"):
        e = result.eqd2_gy[arm][gtv]
        g = result.report["arms"][arm]["sfrt_metrics"]["geud_gy"]
        assert e.min() <= g <= e.mean()
        assert g == pytest.approx(np.mean(e ** -10.0) ** (-1 / 10.0), rel=RTOL)


def test_progress_and_vertices(integrated):
    result, messages = integrated
    assert messages and messages[0] == "placing vertices"
    assert result.prepared.vertices.count >= 2
    assert result.report["vertices"]["count"] == result.prepared.vertices.count
    assert result.prepared.patient.structures["VERTICES"].any()
    assert result.seconds > 0


def test_techniques():
    status = available_techniques()
    assert status["imrt"] == "ok"
    assert {"vmat", "impt"} <= set(status)
    for name in ("vmat", "impt"):
        if status[name] != "ok":
            with pytest.raises(PlanError, match="unavailable"):
                get_technique(name)
    with pytest.raises(PlanError, match="unknown technique 'tomo'"):
        get_technique("tomo")


def test_missing_structure_fails_before_any_dose():
    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)
    del patient.structures["FEMUR"]
    with pytest.raises(StructureError, match="FEMUR"):
        run_comparison(patient, ComparisonSettings(backend="cpp"))
    assert "VERTICES" not in patient.structures


def test_optimisation_is_recorded_per_arm_and_component(integrated):
    report = integrated[0].report
    keys = {"initial_objective", "final_objective", "iterations", "stop_reason", "seconds", "backend",
            "operator_mode"}
    for arm, names in (("CRT", {"CRT"}), ("SFRT", {"CRT", "BOOST"})):
        records = report["arms"][arm]["optimisation"]
        assert set(records) == names
        for rec in records.values():
            assert keys <= set(rec)
            assert rec["final_objective"] < rec["initial_objective"]
            assert 1 <= rec["iterations"] <= 8 and rec["backend"] == "cpp"
    assert report["components"]["BOOST"]["optimisation"] == report["arms"]["SFRT"]["optimisation"]["BOOST"]
    assert report["settings"]["technique"] == "imrt"


def test_boost_session_metrics(integrated, separate):
    for result in (integrated[0], separate):
        prepared = result.prepared
        b = result.report["arms"]["SFRT"]["boost_session"]
        s = prepared.patient.structures
        alone = 12.0 * prepared.unit_doses["BOOST"]  # the boost fields at the vertex dose
        assert b["peak_gy"] == pytest.approx(12.0, rel=RTOL)
        assert b["valley_gy"] == pytest.approx(alone[s["VALLEY"]].mean(), rel=RTOL)
        assert b["pvdr"] == pytest.approx(b["peak_gy"] / b["valley_gy"], rel=RTOL)
        assert b["vertices_d95_gy"] == pytest.approx(np.percentile(alone[s["VERTICES"]], 5.0), rel=RTOL)
        assert b["femur_max_gy"] == pytest.approx(alone[s["FEMUR"]].max(), rel=RTOL)
        assert b["skin_max_gy"] == pytest.approx(alone[s["SKIN"]].max(), rel=RTOL)
        delivered = b["as_delivered"]
        session = sum(w * prepared.unit_doses[c] for c, w in delivered["weights"].items())
        assert delivered["peak_gy"] == pytest.approx(12.0, rel=RTOL)  # the session reaches the vertex dose
        assert delivered["valley_gy"] == pytest.approx(session[s["VALLEY"]].mean(), rel=RTOL)
    # a separate session is the boost alone; an integrated one adds a CRT fraction to the valley
    sep = separate.report["arms"]["SFRT"]["boost_session"]
    assert sep["as_delivered"]["pvdr"] == pytest.approx(sep["pvdr"], rel=RTOL)
    integ = integrated[0].report["arms"]["SFRT"]["boost_session"]
    assert integ["as_delivered"]["pvdr"] < integ["pvdr"]


def test_3dcrt_is_the_same_fields_unoptimised():
    _require_cpp()
    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)
    plain = run_comparison(patient, ComparisonSettings(backend="cpp", technique="3dcrt"))
    assert plain.report["arms"]["CRT"]["optimisation"] == {"CRT": None}
    # the conformal fields with uniform weights, sequenced as built (no weight changed): the same control points
    fields = se.plan.get_technique("3dcrt").crt_beams(patient, patient.structures["PTV"], name="PTV")
    assert all(np.unique(b.weights_mu[b.weights_mu > 0]).size == 1 for b in fields)  # uniform weights
    sequenced = se.plan.beams_to_deliveries(fields)
    component = plain.prepared.components["CRT"].deliveries
    assert len(component) == len(sequenced)
    for a, b in zip(component, sequenced):
        np.testing.assert_array_equal(a.leaf_positions_mm, b.leaf_positions_mm)
        np.testing.assert_allclose(a.cumulative_weight, b.cumulative_weight, rtol=0, atol=1e-12)


def test_goal_file_errors_come_before_any_dose(tmp_path):
    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)
    bad = tmp_path / "goals.toml"
    bad.write_text('[crt]\n[[crt.goal]]\ntype = "mean_dose"\nstructure = "LUNG"\n')
    with pytest.raises(StructureError, match="'LUNG' does not exist"):
        run_comparison(patient, ComparisonSettings(backend="cpp", goals=bad))
    bad.write_text('[crt]\n[[crt.goal]]\ntype = "mean_dose"\nstructure = "FEMUR"\ndose_cgy = 100\n')
    with pytest.raises(PlanError, match="dose_cgy"):
        run_comparison(patient, ComparisonSettings(backend="cpp", goals=str(bad)))
    assert "VERTICES" not in patient.structures  # stopped before the vertices were placed
