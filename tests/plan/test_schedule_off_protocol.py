"""Schedules beyond protocol NCT06980259 (plan/schedule.py, off_protocol=True) for dose-escalation research."""

from __future__ import annotations

import numpy as np
import pytest

from sfrt_engine.compare import ComparisonSettings
from sfrt_engine.errors import PlanError
from sfrt_engine.plan.schedule import crt_schedule, sfrt_schedule


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"crt_fractions": 25}, r"crt_fractions=25: expected an integer from 15 to 20 .*off_protocol=True"),
    ({"vertex_sessions": 2}, r"vertex_sessions=2: expected an integer from 3 to 4 .*--off-protocol"),
    ({"vertex_dose_gy": 18.0}, r"vertex_dose_gy=18.0: expected 8 to 15 Gy .*off_protocol=True"),
])
def test_protocol_limits_stay_the_default(kwargs, message):
    with pytest.raises(PlanError, match=message):
        sfrt_schedule(**{"crt_vertex_mean_gy": 3.0, **kwargs})
    sfrt_schedule(**{"crt_vertex_mean_gy": 3.0, **kwargs}, off_protocol=True)


def test_off_protocol_schedule_is_built_the_same_way():
    # 25 fractions with 5 weekly boosts of 18 Gy, separate mode: a boost session on days 0, 5, ..., 20
    s = sfrt_schedule(25, 5, 18.0, "separate", off_protocol=True)
    assert s.n_sessions == 25 + 5
    assert [x.day for x in s.sessions if x.label == "vertex"] == [0, 5, 10, 15, 20]
    assert s.total_weights() == {"CRT": 25.0, "BOOST": 5 * 18.0}
    assert crt_schedule(30, off_protocol=True).n_sessions == 30


@pytest.mark.parametrize(("args", "message"), [
    ((0, 1, 10.0), "crt_fractions=0: expected an integer of 1 or more"),
    ((10, 0, 10.0), "vertex_sessions=0: expected an integer of 1 or more"),
    ((10, 2, 0.0), "vertex_dose_gy=0.0: expected a dose above 0 Gy"),
    ((10, 2, float("nan")), "vertex_dose_gy=nan: expected a dose above 0 Gy"),
    ((10, 2.5, 10.0), "vertex_sessions=2.5: expected an integer"),
    ((4, 2, 10.0), "vertex_sessions=2 needs at least 6 CRT fractions"),  # the week structure still holds
])
def test_off_protocol_still_refuses_impossible_values(args, message):
    with pytest.raises(PlanError, match=message):
        sfrt_schedule(*args, "separate", off_protocol=True)


def test_numpy_integers_are_integers():
    assert crt_schedule(np.int64(16)).n_sessions == 16


def test_settings_record_off_protocol():
    assert ComparisonSettings().to_dict()["off_protocol"] is False
    assert ComparisonSettings(off_protocol=True).to_dict()["off_protocol"] is True
