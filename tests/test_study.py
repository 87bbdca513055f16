"""Study API (study.py): a schedule grid from one set of unit doses equals fresh comparisons.

Dose is linear in the component weights, so every schedule re-weights the CRT and BOOST unit
doses computed once. The rows must equal what ``run_comparison`` reports when it computes the
dose afresh with the same settings (the cpp backend is deterministic), and the physical peak
must follow the schedule arithmetic.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine import PlanError
from sfrt_engine.compare import ComparisonSettings, prepare, run_comparison
from sfrt_engine.study import evaluate_schedules, save_csv

# Same inputs on a deterministic backend give bit-identical unit doses; the only differences are
# the order of float64 sums in the biology, ~1e-15 relative. 1e-9 relative is the bound.
RTOL = 1e-9

GRID = {"vertex_dose_gy": [10.0, 12.0], "vertex_sessions": [3, 4], "crt_fractions": [16, 20],
        "boost_mode": ["integrated", "separate"], "alpha_beta_gy": [{}, {"GTV": 10.0}]}
PARAMS = ("vertex_dose_gy", "vertex_sessions", "crt_fractions", "boost_mode", "alpha_beta")
METRICS = ("peak_gy", "valley_gy", "pvdr", "d10_d90", "gtv_d50_gy", "geud_gy")
EQD2_METRICS = ("peak_gy", "valley_gy", "pvdr", "d10_d90", "gtv_d50_gy")


def _patient() -> se.Patient:
    return se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)


def _settings(**overrides) -> ComparisonSettings:
    ok, reason = se.available_backends()["cpp"]
    if not ok:
        pytest.skip(f"cpp backend unavailable: {reason}")
    # the study re-weights unit doses; the unoptimised technique keeps the many fresh comparisons fast
    return ComparisonSettings(backend="cpp", technique="3dcrt", **overrides)


@pytest.fixture(scope="module")
def prepared():
    return prepare(_patient(), _settings())


@pytest.fixture(scope="module")
def rows(prepared):
    return evaluate_schedules(prepared, **GRID)


def _expected_from_report(row: dict, report: dict) -> dict:
    """What each numeric column of a study row must equal in a comparison report."""
    entry = report["arms"][row["arm"]]
    expected = {"n_sessions": entry["schedule"]["n_sessions"]}
    for key in METRICS:
        expected[key] = entry["sfrt_metrics"][key]
    for key in EQD2_METRICS:
        expected[f"eqd2_{key}"] = entry["sfrt_metrics"]["eqd2"][key]
    for name, kinds in entry["structures"].items():
        for kind, short in (("physical", "phys"), ("eqd2", "eqd2")):
            for stat, value in kinds[kind].items():
                expected[f"{name.lower()}_{short}_{stat}"] = value
    return expected


def _assert_row_matches(row: dict, report: dict) -> None:
    expected = _expected_from_report(row, report)
    checked = 0
    for key, value in row.items():
        if key in PARAMS or key == "arm":
            continue
        assert key in expected, f"study column {key!r} has no counterpart in the report"
        assert value == pytest.approx(expected[key], rel=RTOL), (row["arm"], key)
        checked += 1
    assert checked >= 20  # the metrics and the per-structure statistics were all compared


def test_grid_shape_and_order(rows):
    n_points = 2 * 2 * 2 * 2 * 2
    assert len(rows) == 2 * n_points
    assert [r["arm"] for r in rows] == ["CRT", "SFRT"] * n_points
    assert all(r["boost_mode"] == "none" for r in rows if r["arm"] == "CRT")
    assert {r["boost_mode"] for r in rows if r["arm"] == "SFRT"} == {"integrated", "separate"}
    assert {r["alpha_beta"] for r in rows} == {"defaults", "GTV=10"}
    for r in rows:
        if r["arm"] == "CRT":
            assert r["n_sessions"] == r["crt_fractions"]
        elif r["boost_mode"] == "separate":
            assert r["n_sessions"] == r["crt_fractions"] + r["vertex_sessions"]
        else:
            assert r["n_sessions"] == r["crt_fractions"]


def test_peak_follows_the_schedule_arithmetic(prepared, rows):
    # c = CRT vertex mean per fraction; physical vertex mean of an arm of n fractions:
    # CRT n c; integrated (n - m) c + m D_v; separate n c + m D_v
    c = prepared.crt_vertex_mean_gy()
    for r in rows:
        n, m, dv = r["crt_fractions"], r["vertex_sessions"], r["vertex_dose_gy"]
        if r["arm"] == "CRT":
            expected = n * c
        elif r["boost_mode"] == "integrated":
            expected = (n - m) * c + m * dv
        else:
            expected = n * c + m * dv
        assert r["peak_gy"] == pytest.approx(expected, rel=RTOL), r


def test_alpha_beta_changes_eqd2_not_physical(rows):
    by_point: dict[tuple, dict] = {}
    for r in rows:
        key = (r["arm"], r["vertex_dose_gy"], r["vertex_sessions"], r["crt_fractions"], r["boost_mode"])
        by_point.setdefault(key, {})[r["alpha_beta"]] = r
    for key, pair in by_point.items():
        default, high = pair["defaults"], pair["GTV=10"]
        assert high["gtv_phys_mean_gy"] == default["gtv_phys_mean_gy"]
        # GTV voxels outside VERTICES and VALLEY take a/b 10 instead of 4: a lower EQD2 above 2 Gy/fraction
        assert high["gtv_eqd2_mean_gy"] < default["gtv_eqd2_mean_gy"], key


@pytest.mark.parametrize("point", [
    {"vertex_dose_gy": 10.0, "vertex_sessions": 3, "crt_fractions": 16, "boost_mode": "separate",
     "alpha_beta_gy": {"GTV": 10.0}},
    {"vertex_dose_gy": 12.0, "vertex_sessions": 4, "crt_fractions": 20, "boost_mode": "integrated",
     "alpha_beta_gy": {}},
], ids=["separate-16x3-GTV10", "integrated-defaults"])
def test_study_equals_fresh_comparison(rows, point):
    fresh = run_comparison(_patient(), _settings(**point))  # computes both unit doses again
    label = ",".join(f"{k}={v:g}" for k, v in sorted(point["alpha_beta_gy"].items())) or "defaults"
    matched = [r for r in rows if r["vertex_dose_gy"] == point["vertex_dose_gy"]
               and r["vertex_sessions"] == point["vertex_sessions"] and r["crt_fractions"] == point["crt_fractions"]
               and r["alpha_beta"] == label and (r["arm"] == "CRT" or r["boost_mode"] == point["boost_mode"])]
    # the CRT row appears once per grid point with these fractions and alpha/beta (2 boost modes)
    assert sorted(r["arm"] for r in matched) == ["CRT", "CRT", "SFRT"]
    for r in matched:
        _assert_row_matches(r, fresh.report)


def test_no_dose_is_recomputed(prepared, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("evaluate_schedules computed dose; it must re-weight the unit doses")

    monkeypatch.setattr(se.components, "compute_dose", forbidden)
    monkeypatch.setattr(se, "compute_dose", forbidden)
    out = evaluate_schedules(prepared, vertex_dose_gy=15.0, vertex_sessions=3, crt_fractions=15,
                             boost_mode="separate", alpha_beta_gy={"SKIN": 3.0})
    assert [r["arm"] for r in out] == ["CRT", "SFRT"]
    assert out[1]["n_sessions"] == 18


def test_vertex_weeks_beyond_the_course_are_left_out(prepared):
    # 15 fractions are 3 weeks: a 4th weekly vertex session never happens, so (n=15, m=4) is no schedule
    out = evaluate_schedules(prepared, vertex_dose_gy=12.0, vertex_sessions=[3, 4], crt_fractions=[15, 16],
                             boost_mode="separate")
    points = [(r["crt_fractions"], r["vertex_sessions"]) for r in out if r["arm"] == "SFRT"]
    assert points == [(15, 3), (16, 3), (16, 4)]
    assert all(r["n_sessions"] == r["crt_fractions"] + r["vertex_sessions"] for r in out if r["arm"] == "SFRT")


def test_empty_axis_is_an_error(prepared):
    with pytest.raises(PlanError, match="at least one value"):
        evaluate_schedules(prepared, vertex_dose_gy=[])


def test_save_csv_round_trip(rows, tmp_path):
    path = save_csv(rows, tmp_path / "study.csv")
    assert path == tmp_path / "study.csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.csv"]  # no temporary file left behind
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames
        parsed = list(reader)
    assert header == list(rows[0])
    assert len(parsed) == len(rows)  # one row per schedule and arm
    for row, back in zip(rows, parsed):
        for key, value in row.items():
            if isinstance(value, float):
                assert float(back[key]) == value  # repr of a float round-trips exactly
            elif isinstance(value, int):
                assert int(back[key]) == value
            else:
                assert back[key] == value
    assert np.isfinite([float(r["pvdr"]) for r in parsed]).all()


def test_save_csv_empty_is_an_error(tmp_path):
    with pytest.raises(PlanError, match="no rows"):
        save_csv([], tmp_path / "empty.csv")
    assert not (tmp_path / "empty.csv").exists()


def test_a_grid_with_no_fitting_schedule_is_the_cli_error(prepared):
    # the same combination through the comparison (what `sfrt compare` runs) gives the message to match
    with pytest.raises(PlanError) as cli:
        run_comparison(_patient(), _settings(vertex_sessions=4, crt_fractions=15))
    assert "needs at least 16 CRT fractions" in str(cli.value)
    with pytest.raises(PlanError) as study:
        evaluate_schedules(prepared, vertex_dose_gy=12.0, vertex_sessions=4, crt_fractions=15, boost_mode="separate")
    assert str(study.value) == str(cli.value)
    with pytest.raises(PlanError, match="needs at least 16 CRT fractions"):  # no patient needed to know it
        evaluate_schedules(vertex_sessions=[4], crt_fractions=[15])
