"""Objectives: gradients against central finite differences, values against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from sfrt_engine.errors import PlanError
from sfrt_engine.optimise import objectives as ob

RNG = np.random.default_rng(12)
D = RNG.uniform(0.5, 4.0, 200)  # voxel doses [Gy], distinct values so DVH selections are stable
D2 = RNG.uniform(3.0, 9.0, 50)

CASES = [
    (ob.MinDose("T", 3.0, weight=2.0), (D,)),
    (ob.MaxDose("T", 2.5, weight=3.0), (D,)),
    (ob.SquaredUnderdose("T", 2.0), (D,)),
    (ob.SquaredOverdose("T", 2.0), (D,)),
    (ob.SquaredDeviation("T", 2.0), (D,)),
    (ob.SquaredDeviation("T", np.linspace(1.0, 3.0, D.size)), (D,)),
    (ob.MeanDose("T", 1.0, weight=5.0), (D,)),
    (ob.MeanDose("T"), (D,)),
    (ob.DvhMin("T", 3.5, 60.0), (D,)),
    (ob.DvhMax("T", 1.5, 30.0), (D,)),
    (ob.Geud("T", 1.0, a=8.0), (D,)),
    (ob.Geud("T", 3.9, a=-10.0, kind="min"), (D,)),
    (ob.Valley("V", "P", max_ratio=0.1, weight=4.0), (D, D2)),
    (ob.Valley(), (D, D2)),
]


@pytest.mark.parametrize("objective,doses", CASES, ids=[c[0].describe() for c in CASES])
def test_gradient_matches_finite_differences(objective, doses):
    value, grads = objective.value_and_grad(*doses)
    assert value > 0  # every case is active, so the test checks a non-trivial gradient
    h = 1e-6
    for k, d in enumerate(doses):
        idx = np.linspace(0, d.size - 1, 25).astype(int)
        for i in idx:
            up = [x.copy() for x in doses]
            dn = [x.copy() for x in doses]
            up[k][i] += h
            dn[k][i] -= h
            fd = (objective.value(*up) - objective.value(*dn)) / (2 * h)
            assert grads[k][i] == pytest.approx(fd, rel=1e-5, abs=1e-9 * max(1.0, value))


def test_closed_forms():
    d = np.array([1.0, 2.0, 3.0, 4.0])
    assert ob.SquaredUnderdose("T", 3.0).value(d) == pytest.approx((4 + 1) / 4)
    assert ob.SquaredOverdose("T", 3.0).value(d) == pytest.approx(1 / 4)
    assert ob.SquaredDeviation("T", 2.5).value(d) == pytest.approx((2.25 + 0.25 + 0.25 + 2.25) / 4)
    assert ob.MeanDose("T", 2.0, weight=3.0).value(d) == pytest.approx(3.0 * 0.25)
    # a = 1: gEUD is the mean dose; a -> large: the maximum
    assert ob.Geud("T", 0.0, a=1.0).geud(d)[0] == pytest.approx(2.5)
    assert ob.Geud("T", 0.0, a=200.0).geud(d)[0] == pytest.approx(4.0, rel=1e-2)
    # power mean of a single non-zero shortfall: (x^p / n)^(2/p)
    v = ob.MinDose("T", 2.0).value(np.array([1.0, 5.0, 5.0, 5.0]))
    assert v == pytest.approx((1.0 / 4) ** (2 / 8))
    assert ob.Valley("V", "P").value(np.array([1.0, 1.0]), np.array([4.0])) == pytest.approx(1 / 16)


def test_dvh_selects_the_voxels_between_dx_and_the_goal():
    d = np.arange(1.0, 11.0)  # 1..10 Gy
    # D50 >= 8 Gy: D50 is 5.5 Gy (between the voxels at 5 and 6 Gy); those at 5, 6 and 7 Gy must rise to 8 Gy
    o = ob.DvhMin("T", 8.0, 50.0)
    assert o.value(d) == pytest.approx((9 + 4 + 1) / 10)
    assert o.shortfall(d) == pytest.approx(2.5)
    # D20 <= 5 Gy (V5Gy <= 20 %): D20 is 8.2 Gy (between 8 and 9 Gy); voxels at 6, 7, 8, 9 Gy must fall to 5 Gy
    o = ob.DvhMax("T", 5.0, 20.0)
    assert o.value(d) == pytest.approx((1 + 4 + 9 + 16) / 10)
    assert o.shortfall(d) == pytest.approx(3.2)


def test_met_goals_have_no_penalty():
    d = np.full(10, 3.0)
    for o in (ob.MinDose("T", 2.9), ob.MaxDose("T", 3.1), ob.DvhMin("T", 2.9, 95.0), ob.DvhMax("T", 3.1, 2.0),
              ob.Geud("T", 3.1, a=4.0)):
        value, (g,) = o.value_and_grad(d)
        assert value == 0.0 and not g.any()
        assert o.shortfall(d) < 0


@pytest.mark.parametrize("build", [
    lambda: ob.MinDose("T", -1.0), lambda: ob.MaxDose("T", float("nan")), lambda: ob.DvhMin("T", 3.0, 0.0),
    lambda: ob.DvhMax("T", 3.0, 100.0), lambda: ob.Geud("T", 3.0, a=0.0), lambda: ob.Geud("T", 3.0, a=2, kind="x"),
    lambda: ob.Valley(max_ratio=1.5), lambda: ob.MeanDose("T", weight=-1.0),
])
def test_bad_parameters_are_errors(build):
    with pytest.raises(PlanError):
        build()


def test_reference_map_of_the_wrong_shape():
    with pytest.raises(PlanError, match="one dose per voxel"):
        ob.SquaredDeviation("T", np.ones(3)).value(np.ones(4))


def test_valley_without_peak_dose():
    with pytest.raises(PlanError, match="no dose"):
        ob.Valley().value(np.ones(3), np.zeros(2))
