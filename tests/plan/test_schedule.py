"""Arm schedules (plan/schedule.py): protocol NCT06980259 as issue 4 states it.

CRT arm: 3.0 Gy x n, n = 15..20. SFRT arm: the same CRT plus weekly vertex sessions of
8-15 Gy x m, m = 3..4, 5 sessions a week, the vertex session the first of weeks 1..m
(days 0, 5, 10, 15). "integrated": CRT + b BOOST on vertex days, b = D_v - CRT vertex mean;
"separate": m extra sessions of D_v BOOST alone.
"""

from __future__ import annotations

import json

import pytest

from sfrt_engine import ComparisonSettings, PlanError
from sfrt_engine.plan import Session, crt_schedule, sfrt_schedule
from sfrt_engine.plan.schedule import BOOST_MODES

# weights are sums of a few exact binary fractions or differences of two such numbers;
# 1e-12 relative covers float64 round-off only
RTOL = 1e-12


def _boosted(schedule):
    return [s for s in schedule.sessions if s.weight("BOOST") > 0]


@pytest.mark.parametrize("n", range(15, 21))
def test_crt_schedule(n):
    s = crt_schedule(n)
    assert s.arm == "CRT"
    assert s.n_sessions == n
    assert [x.day for x in s.sessions] == list(range(n))
    assert all(dict(x.weights) == {"CRT": 1.0} for x in s.sessions)
    assert s.total_weights() == {"CRT": float(n)}
    assert s.settings["crt_fractions"] == n
    assert s.settings["crt_dose_per_fraction_gy"] == 3.0


def test_defaults():
    assert crt_schedule().n_sessions == 20
    s = sfrt_schedule(crt_vertex_mean_gy=3.0)  # default: 20 fractions, 4 sessions of 12 Gy, integrated
    assert s.settings["boost_mode"] == "integrated"
    assert s.n_sessions == 20
    assert [x.day for x in _boosted(s)] == [0, 5, 10, 15]
    assert all(x.weight("BOOST") == pytest.approx(9.0, rel=RTOL) for x in _boosted(s))
    c = ComparisonSettings()
    assert (c.crt_fractions, c.vertex_sessions, c.vertex_dose_gy, c.boost_mode, c.technique) == (
        20, 4, 12.0, "integrated", "imrt")
    assert BOOST_MODES == ("integrated", "separate")


# (15, 4) is left to test_every_accepted_schedule_delivers_m_vertex_sessions: week 4 lies beyond 15 fractions
FEASIBLE_N_M = [(15, 3), (16, 4), (17, 3), (20, 3), (20, 4)]


@pytest.mark.parametrize("n, m", FEASIBLE_N_M)
@pytest.mark.parametrize("dv, cvm", [(8.0, 3.1), (12.0, 3.0), (15.0, 2.75)])
def test_integrated_schedule(n, m, dv, cvm):
    s = sfrt_schedule(n, m, dv, "integrated", crt_vertex_mean_gy=cvm)
    assert s.arm == "SFRT"
    assert s.n_sessions == n  # the boost rides on CRT sessions: no extra sessions
    assert [x.day for x in s.sessions] == list(range(n))
    boosted = _boosted(s)
    assert [x.day for x in boosted] == [5 * w for w in range(m)]  # first session of weeks 1..m
    b = dv - cvm
    for x in s.sessions:
        assert x.weight("CRT") == 1.0
        assert x.weight("BOOST") == (pytest.approx(b, rel=RTOL) if x in boosted else 0.0)
        # vertex mean of the session: CRT vertex mean + b * 1 Gy = prescribed vertex dose
        if x in boosted:
            assert cvm * x.weight("CRT") + 1.0 * x.weight("BOOST") == pytest.approx(dv, rel=RTOL)
    assert s.total_weights() == pytest.approx({"CRT": float(n), "BOOST": m * b}, rel=RTOL)
    assert s.settings["boost_mode"] == "integrated"
    assert s.settings["vertex_sessions"] == m and s.settings["vertex_dose_gy"] == dv


@pytest.mark.parametrize("n, m", FEASIBLE_N_M)
def test_separate_schedule(n, m):
    dv = 10.0
    s = sfrt_schedule(n, m, dv, "separate")
    assert s.n_sessions == n + m
    crt = [x for x in s.sessions if x.weight("CRT") > 0]
    extra = _boosted(s)
    assert [x.day for x in crt] == list(range(n))
    assert all(dict(x.weights) == {"CRT": 1.0} for x in crt)
    # the extra sessions are the boost alone, scaled to the prescribed vertex dose
    assert [x.day for x in extra] == [5 * w for w in range(m)]
    assert all(dict(x.weights) == {"BOOST": dv} for x in extra)
    assert s.total_weights() == {"CRT": float(n), "BOOST": m * dv}
    assert s.settings["boost_mode"] == "separate"
    # sessions are in day order (an extra session follows that day's CRT fraction)
    assert [x.day for x in s.sessions] == sorted(x.day for x in s.sessions)


@pytest.mark.parametrize("mode", BOOST_MODES)
@pytest.mark.parametrize("m", [3, 4])
@pytest.mark.parametrize("n", range(15, 21))
def test_every_accepted_schedule_delivers_m_vertex_sessions(n, m, mode):
    # m weekly vertex sessions need week m to exist: 15 fractions (3 weeks) cannot carry a 4th
    # weekly vertex session on day 15. Refusing is fine; silently dropping it while the settings
    # still say vertex_sessions=4 and boost_days [0, 5, 10, 15] is not.
    try:
        s = sfrt_schedule(n, m, 12.0, mode, crt_vertex_mean_gy=3.0)
    except PlanError as exc:
        assert "vertex_sessions" in str(exc) or "crt_fractions" in str(exc)
        return
    days = [x.day for x in _boosted(s)]
    assert len(days) == m
    assert days == s.settings["boost_days"]


def test_grouped_and_to_dict():
    s = sfrt_schedule(20, 4, 12.0, "integrated", crt_vertex_mean_gy=3.0)
    groups = {tuple(sorted(w.items())): count for w, count in s.grouped()}
    assert groups == {(("CRT", 1.0),): 16, (("BOOST", 9.0), ("CRT", 1.0)): 4}
    d = json.loads(json.dumps(s.to_dict()))
    assert d["arm"] == "SFRT" and d["n_sessions"] == 20 and d["boost_mode"] == "integrated"
    assert len(d["sessions"]) == 20
    assert d["sessions"][5] == {"day": 5, "label": d["sessions"][5]["label"], "weights": {"BOOST": 9.0, "CRT": 1.0}}
    assert Session(0, (("CRT", 1.0),)).weight("BOOST") == 0.0


@pytest.mark.parametrize("n", [14, 21, 0, -20, 17.5, "20", True])
def test_crt_fraction_range_errors(n):
    with pytest.raises(PlanError, match="crt_fractions"):
        crt_schedule(n)
    with pytest.raises(PlanError, match="crt_fractions"):
        sfrt_schedule(n, 4, 12.0, "separate")


@pytest.mark.parametrize("m", [2, 5, 0, 3.5])
def test_vertex_session_range_errors(m):
    with pytest.raises(PlanError, match="vertex_sessions"):
        sfrt_schedule(20, m, 12.0, "separate")


@pytest.mark.parametrize("dv", [7.99, 15.01, 0.0, -12.0, float("nan"), "12"])
def test_vertex_dose_range_errors(dv):
    with pytest.raises(PlanError, match="vertex_dose_gy"):
        sfrt_schedule(20, 4, dv, "separate")


@pytest.mark.parametrize("mode", ["Integrated", "simultaneous", "", None])
def test_boost_mode_errors(mode):
    with pytest.raises(PlanError, match="boost_mode"):
        sfrt_schedule(20, 4, 12.0, mode, crt_vertex_mean_gy=3.0)


def test_integrated_needs_a_crt_vertex_mean_below_the_vertex_dose():
    with pytest.raises(PlanError, match="crt_vertex_mean_gy"):
        sfrt_schedule(20, 4, 12.0, "integrated")
    with pytest.raises(PlanError, match="crt_vertex_mean_gy"):
        sfrt_schedule(20, 4, 12.0, "integrated", crt_vertex_mean_gy=-1.0)
    with pytest.raises(PlanError, match="12 Gy"):
        sfrt_schedule(20, 4, 12.0, "integrated", crt_vertex_mean_gy=12.0)
    # range ends are accepted
    assert sfrt_schedule(15, 3, 8.0, "separate").n_sessions == 18
    assert sfrt_schedule(20, 4, 15.0, "separate").n_sessions == 24
