"""Endpoint statistics against closed forms, definitions and published values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from sfrt_engine.trial import assess, parse_arms, parse_measurements
from sfrt_engine.trial.arms import Arms
from sfrt_engine.trial.assessment import Assessment
from sfrt_engine.trial.endpoints import clopper_pearson, compare_proportions, orr_tables
from sfrt_engine.trial.survival import survival_tables
from sfrt_engine.trial.toxicity import parse_toxicity, toxicity_per_patient, toxicity_table


def _binom_tail_ge(x, n, p):
    return sum(math.comb(n, k) * p ** k * (1 - p) ** (n - k) for k in range(x, n + 1))


@pytest.mark.parametrize(("x", "n"), [(0, 10), (10, 10), (9, 53), (21, 53), (1, 3)])
def test_clopper_pearson_by_its_definition(x, n):
    low, high = clopper_pearson(x, n)
    # closed forms at the edges
    if x == 0:
        assert low == 0 and high == pytest.approx(1 - 0.025 ** (1 / n), abs=1e-12)
    if x == n:
        assert high == 1 and low == pytest.approx(0.025 ** (1 / n), abs=1e-12)
    # definition: P(X >= x | low) = alpha/2 and P(X <= x | high) = alpha/2
    if 0 < x:
        assert _binom_tail_ge(x, n, low) == pytest.approx(0.025, abs=1e-9)
    if x < n:
        assert 1 - _binom_tail_ge(x + 1, n, high) == pytest.approx(0.025, abs=1e-9)


def test_fisher_and_yates_chi_square_by_hand():
    xe, ne, xc, nc = 21, 53, 8, 53
    out = compare_proportions(xe, ne, xc, nc)
    n, k = ne + nc, xe + xc
    tail = sum(math.comb(k, j) * math.comb(n - k, ne - j) for j in range(xe, min(k, ne) + 1)) / math.comb(n, ne)
    assert out["fisher_p_one_sided"] == pytest.approx(tail, rel=1e-10)
    a, b, c, d = xe, ne - xe, xc, nc - xc
    chi2 = n * (abs(a * d - b * c) - n / 2) ** 2 / ((a + b) * (c + d) * (a + c) * (b + d))
    assert out["chi2_yates"] == pytest.approx(chi2, rel=1e-12)
    assert out["chi2_p_one_sided"] == pytest.approx(0.5 * math.erfc(math.sqrt(chi2) / math.sqrt(2)), rel=1e-10)
    assert out["difference"] == pytest.approx(13 / 53)


@pytest.mark.parametrize(("counts", "published"), [
    # Newcombe RG. Stat Med 1998;17:873-890, Table II, method 10 (hybrid score)
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
])
def test_difference_interval_matches_newcombe(counts, published):
    out = compare_proportions(*counts)
    assert (round(out["diff_ci_low"], 4), round(out["diff_ci_high"], 4)) == published


def test_orr_counts_visits_in_the_window_and_not_after_progression(table, arms_frame):
    # P1: PR at day 95 (3 mo), PD at 180, PR-sized at 270 but after PD; P2: SD; P3: no visit near 3 mo
    table.series("P1", ["100", "60", "80", "60"], days=[0, 95, 180, 270])
    table.series("P2", ["100", "90"], days=[0, 91])
    table.series("P3", ["100", "50"], days=[0, 150])
    result = assess(parse_measurements(table.frame()), parse_arms(arms_frame({"P1": "SFRT", "P2": "CRT",
                                                                              "P3": "CRT"})))
    orr, _ = orr_tables(result, times_months=(3, 9), window_days=30, criteria=("recist",))
    got = {(r.timepoint, r.arm): (r.responders, r.n) for r in orr.itertuples()}
    assert got[("3 mo", "SFRT")] == (1, 1) and got[("3 mo", "CRT")] == (0, 2)
    assert got[("9 mo", "SFRT")] == (0, 1)        # 60 mm at day 270 follows the PD at day 180
    assert got[("best", "CRT")] == (1, 2)         # P3's PR at day 150 is its best response


def _assessment(times, events, arms_of):
    patients = pd.DataFrame({"patient_id": [f"P{i}" for i in range(len(times))], "arm": arms_of,
                             "local_time_days": times, "local_progression": events, "pfs_time_days": times,
                             "pfs_event": events})
    mapping = dict(zip(patients["patient_id"], arms_of))
    return Assessment(pd.DataFrame(), patients, Arms(mapping, dict.fromkeys(mapping), "SFRT", "CRT"), {})


def test_kaplan_meier_and_log_rank_by_hand():
    times = [100, 200, 200, 300, 400, 50, 150, 250, 350, 450]
    events = [True, True, False, True, False, True, True, True, False, True]
    arms = ["SFRT"] * 5 + ["CRT"] * 5
    table, _ = survival_tables(_assessment(times, events, arms))
    sfrt = table[(table.endpoint == "local_control") & (table.arm == "SFRT")].iloc[0]
    # product limit: 4/5 at 100, x 3/4 at 200 (one censored at 200 stays at risk), x 1/2 at 300
    assert sfrt["at_1y"] == pytest.approx(0.8 * 0.75 * 0.5)
    assert sfrt["median_days"] == 300
    crt = table[(table.endpoint == "local_control") & (table.arm == "CRT")].iloc[0]
    assert crt["at_1y"] == pytest.approx(0.8 * 0.75 * (2 / 3))
    # log-rank: sum over event times of observed - expected in SFRT and the hypergeometric variance
    all_t = sorted({t for t, e in zip(times, events) if e})
    o_minus_e = var = 0.0
    for t in all_t:
        at_risk = [(a, tt) for a, tt in zip(arms, times) if tt >= t]
        n_all = len(at_risk)
        n_s = sum(a == "SFRT" for a, _ in at_risk)
        d_all = sum(1 for tt, e in zip(times, events) if e and tt == t)
        d_s = sum(1 for a, tt, e in zip(arms, times, events) if e and tt == t and a == "SFRT")
        o_minus_e += d_s - d_all * n_s / n_all
        if n_all > 1:
            var += d_all * (n_s / n_all) * (1 - n_s / n_all) * (n_all - d_all) / (n_all - 1)
    assert sfrt["logrank_chi2"] == pytest.approx(o_minus_e ** 2 / var, rel=1e-9)


def test_toxicity_maximum_grade_and_rate(arms_frame):
    arms = parse_arms(arms_frame({"A": "SFRT", "B": "SFRT", "C": "CRT", "D": "CRT"}))
    events = pd.DataFrame({"patient_id": ["A", "A", "B", "C"], "category": ["skin", "skin", "fatigue", "skin"],
                           "grade": ["1", "3", "2", "4"]})
    table = toxicity_table(parse_toxicity(events, arms), arms).set_index(["category", "arm"])
    skin = table.loc[("skin", "SFRT")]
    assert (skin["grade_0"], skin["grade_3"], skin["grade3plus"], skin["n"]) == (1, 1, 1, 2)
    assert table.loc[("any", "SFRT"), "grade_2"] == 1 and table.loc[("any", "CRT"), "grade_4"] == 1
    assert table.loc[("fatigue", "CRT"), "grade_0"] == 2
    low, _high = clopper_pearson(1, 2)
    assert table.loc[("any", "CRT"), "ci_low"] == pytest.approx(low)
    per = toxicity_per_patient(parse_toxicity(events, arms), arms).set_index("patient_id")
    assert per.loc["A", "skin"] == 3 and per.loc["A", "fatigue"] == 0 and per.loc["D", "any"] == 0
    assert per.loc["C", "arm"] == "CRT"


@pytest.mark.parametrize(("patient", "grade", "words"), [("Z", "2", "not in the arms table"),
                                                         ("A", "6", "CTCAE v5.0 grade 0-5")])
def test_toxicity_errors(arms_frame, patient, grade, words):
    from sfrt_engine.errors import TrialDataError

    arms = parse_arms(arms_frame({"A": "SFRT", "C": "CRT"}))
    events = pd.DataFrame({"patient_id": [patient], "category": ["skin"], "grade": [grade]})
    with pytest.raises(TrialDataError, match=words):
        parse_toxicity(events, arms)
