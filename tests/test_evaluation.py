"""Dose statistics, SFRT metrics and cumulative histograms on analytic dose cubes (evaluation.py).

Definitions checked (issue 4, DESIGN 5.5): ``Dx`` is the minimum dose of the hottest x %
of a structure's (equal-volume) voxels; peak = VERTICES mean, valley = VALLEY mean,
PVDR = peak / valley, D10/D90 of the GTV, GTV D50; the cumulative histogram gives the
percent of the structure receiving at least each bin dose.
"""

from __future__ import annotations

import numpy as np
import pytest

from sfrt_engine import StructureError
from sfrt_engine.evaluation import STAT_KEYS, cumulative_histogram, dose_statistics, sfrt_metrics

# Inputs are exact small numbers and each result is one mean or one interpolated percentile
# of them: float64 round-off is ~1e-15 relative; 1e-12 allows for it and nothing else.
RTOL = 1e-12


# -- dose_statistics ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ramp():
    """A 4 x 5 x 200 cube whose dose rises linearly along x from 0 to 60 Gy (voxel centres).

    The voxel doses are uniformly distributed on [0, 60] Gy: the hottest x % receive at least
    (1 - x/100) * 60 Gy. A slab of 1000 Gy outside the mask must not count.
    """
    n = 200
    x = (np.arange(n) + 0.5) / n * 60.0
    dose = np.broadcast_to(x, (4, 5, n)).copy()
    mask = np.ones(dose.shape, bool)
    big = np.concatenate([dose, np.full((1, 5, n), 1000.0)], axis=0)
    big_mask = np.concatenate([mask, np.zeros((1, 5, n), bool)], axis=0)
    return big, big_mask


def test_dose_statistics_on_uniform_ramp(ramp):
    dose, mask = ramp
    s = dose_statistics(dose, mask, "RAMP")
    assert tuple(s) == STAT_KEYS
    assert all(isinstance(v, float) for v in s.values())
    # mean of a ramp symmetric about 30 Gy; min and max are the first and last voxel centres
    assert s["mean_gy"] == pytest.approx(30.0, rel=RTOL)
    assert s["min_gy"] == pytest.approx(0.15, rel=RTOL)
    assert s["max_gy"] == pytest.approx(59.85, rel=RTOL)
    # continuous answer (1 - x/100) * 60 Gy; with 200 equal dose levels a Dx is defined only to
    # within one level, 60/200 = 0.3 Gy
    step = 60.0 / 200
    for key, x in (("d2_gy", 2), ("d5_gy", 5), ("d50_gy", 50), ("d95_gy", 95), ("d98_gy", 98)):
        assert s[key] == pytest.approx((1 - x / 100) * 60.0, abs=step), key
    assert s["d2_gy"] > s["d5_gy"] > s["d50_gy"] > s["d95_gy"] > s["d98_gy"]


def test_dose_statistics_exact_levels():
    # 101 voxels at 0, 1, ..., 100 Gy in shuffled positions: the hottest x % begin at exactly
    # 100 - x Gy (an integer dose level sits on every percentile asked for)
    rng = np.random.default_rng(4)
    dose = rng.permutation(np.arange(101.0)).reshape(1, 1, 101)
    s = dose_statistics(dose, np.ones(dose.shape, bool))
    expected = {"mean_gy": 50.0, "min_gy": 0.0, "max_gy": 100.0, "d2_gy": 98.0, "d5_gy": 95.0, "d50_gy": 50.0,
                "d95_gy": 5.0, "d98_gy": 2.0}
    for key, value in expected.items():
        assert s[key] == pytest.approx(value, rel=RTOL, abs=1e-12), key


def test_dose_statistics_uniform_and_mask():
    dose = np.full((3, 3, 3), 2.5)
    dose[0] = 99.0
    mask = np.zeros(dose.shape, bool)
    mask[1:] = True
    s = dose_statistics(dose, mask, "X")
    for key in STAT_KEYS:
        assert s[key] == pytest.approx(2.5, rel=RTOL), key


def test_dose_statistics_errors():
    dose = np.ones((2, 3, 4))
    with pytest.raises(StructureError, match="'FEMUR'.*empty"):
        dose_statistics(dose, np.zeros(dose.shape, bool), "FEMUR")
    with pytest.raises(StructureError, match="'SKIN'.*shape"):
        dose_statistics(dose, np.ones((2, 3, 5), bool), "SKIN")


# -- sfrt_metrics ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sfrt_cube():
    """A 5 x 5 x 5 cube: 100 GTV voxels in shuffled positions, 25 outside at 100 Gy.

    GTV: 15 VERTICES voxels at 40/3 Gy and 5 at 8 Gy (vertex mean (200 + 40) / 20 = 12 Gy),
    20 voxels at 6 Gy between the vertices and the valley, 60 VALLEY voxels at 2 Gy.
    """
    levels = np.concatenate([np.full(15, 40.0 / 3.0), np.full(5, 8.0), np.full(20, 6.0), np.full(60, 2.0),
                             np.full(25, 100.0)])
    kind = np.array(["V"] * 20 + ["R"] * 20 + ["L"] * 60 + ["O"] * 25)
    order = np.random.default_rng(5).permutation(125)
    dose = levels[order].reshape(5, 5, 5)
    kind = kind[order].reshape(5, 5, 5)
    structures = {"VERTICES": kind == "V", "VALLEY": kind == "L", "GTV": np.isin(kind, ["V", "R", "L"]),
                  "TUMOUR": np.isin(kind, ["V", "R"])}
    return dose, structures


def test_sfrt_metrics_on_constructed_cube(sfrt_cube):
    dose, structures = sfrt_cube
    m = sfrt_metrics(dose, structures)
    assert m["peak_gy"] == pytest.approx(12.0, rel=RTOL)     # VERTICES mean
    assert m["valley_gy"] == pytest.approx(2.0, rel=RTOL)    # VALLEY mean
    assert m["pvdr"] == pytest.approx(6.0, rel=RTOL)         # 12 / 2
    # GTV sorted: 60 x 2, 20 x 6, 5 x 8, 15 x 40/3 Gy. The hottest 10 % (10 voxels) all get 40/3 Gy;
    # the hottest 90 % include 50 voxels of 2 Gy, so D90 = 2 Gy; D50 = 2 Gy as 60 % of voxels get 2 Gy.
    assert m["d10_d90"] == pytest.approx((40.0 / 3.0) / 2.0, rel=RTOL)
    assert m["gtv_d50_gy"] == pytest.approx(2.0, rel=RTOL)


def test_sfrt_metrics_target_argument(sfrt_cube):
    dose, structures = sfrt_cube
    # on TUMOUR (40 voxels sorted: 20 x 6, 5 x 8, 15 x 40/3 Gy): D10 = 40/3 Gy, D90 = 6 Gy. D50 falls
    # exactly between the 6 Gy and 8 Gy voxels (index 19.5 of 0..39); the documented convention is the
    # linearly interpolated percentile, so 6 + 0.5 * (8 - 6) = 7 Gy
    m = sfrt_metrics(dose, structures, target="TUMOUR")
    assert m["d10_d90"] == pytest.approx((40.0 / 3.0) / 6.0, rel=RTOL)
    assert m["gtv_d50_gy"] == pytest.approx(7.0, rel=RTOL)
    assert m["peak_gy"] == pytest.approx(12.0, rel=RTOL)


def test_sfrt_metrics_zero_valley_gives_infinite_pvdr(sfrt_cube):
    dose, structures = sfrt_cube
    cold = np.where(structures["VALLEY"], 0.0, dose)
    assert sfrt_metrics(cold, structures)["pvdr"] == float("inf")


# -- cumulative_histogram ----------------------------------------------------------------------

def test_cumulative_histogram_on_integer_levels():
    # 100 voxels at 0, 1, ..., 99 Gy plus 10 voxels outside the mask at 500 Gy
    dose = np.concatenate([np.arange(100.0), np.full(10, 500.0)]).reshape(1, 1, 110)
    mask = np.zeros(dose.shape, bool)
    mask[..., :100] = True
    bins = np.array([-1.0, 0.0, 0.5, 50.0, 99.0, 99.5, 100.0, 600.0])
    # percent of the 100 voxels with dose >= bin: all, all, 1..99, 50..99, only 99, none, none, none
    np.testing.assert_allclose(cumulative_histogram(dose, mask, bins), [100, 100, 99, 50, 1, 0, 0, 0],
                               rtol=RTOL)


def test_cumulative_histogram_monotone_and_consistent_with_dx(ramp):
    dose, mask = ramp
    bins = np.linspace(0.0, 70.0, 141)
    h = cumulative_histogram(dose, mask, bins)
    assert h[0] == 100.0 and h[-1] == 0.0
    assert np.all(np.diff(h) <= 0)
    # at the D50 dose about half the volume is covered (to one of the 200 dose levels, 0.5 %)
    d50 = dose_statistics(dose, mask)["d50_gy"]
    assert cumulative_histogram(dose, mask, np.array([d50]))[0] == pytest.approx(50.0, abs=0.5)


def test_cumulative_histogram_empty_mask():
    dose = np.ones((2, 2, 2))
    np.testing.assert_array_equal(cumulative_histogram(dose, np.zeros(dose.shape, bool), np.array([0.0, 1.0])),
                                  [0.0, 0.0])
