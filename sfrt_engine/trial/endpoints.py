"""Objective response rate per arm and time point, with exact intervals and the arm comparison.

The primary endpoint of NCT06980259 is the ORR of the target lesion at 3, 6, 9 and 12
months by RECIST 1.1 and by Choi. For each criterion and assessment time:

- ORR per arm = responders (CR or PR at that time point) / patients in the analysis set,
  with the exact Clopper-Pearson 95 % interval (Clopper CJ, Pearson ES. Biometrika
  1934;26:404-413; statsmodels ``proportion_confint(method="beta")``).
- The difference experimental - control with the Newcombe hybrid-score interval
  (Newcombe RG. Stat Med 1998;17:873-890, method 10; statsmodels
  ``confint_proportions_2indep(method="newcomb")``).
- One-sided tests of "experimental > control": Fisher's exact test (scipy), and the
  continuity-corrected (Yates) chi-square that the protocol's continuity-corrected sample
  size implies (Fleiss, Tytun & Ury 1980), one-sided through its signed square root.

Analysis sets: RECIST uses every randomised patient (intention to treat: a patient with
no assessment in the window, or assessed after an earlier PD, is a non-responder). Choi
and modified Choi use the patients with densities (``choi_assessed``).

A visit counts for the nominal time ``t`` months (``t x 365.25 / 12`` days) when it lies
within ``window_days`` of it; the closest visit wins. "best" is the best overall response.
"""

from __future__ import annotations

import math

from .assessment import CRITERIA, Assessment

__all__ = [
    "DAYS_PER_MONTH",
    "DEFAULT_TIMES_MONTHS",
    "DEFAULT_WINDOW_DAYS",
    "clopper_pearson",
    "compare_proportions",
    "orr_tables",
]

#: Protocol assessment times [months].
DEFAULT_TIMES_MONTHS = (3, 6, 9, 12)
#: Visit window either side of a nominal time [days].
DEFAULT_WINDOW_DAYS = 30
#: Mean Gregorian month [days].
DAYS_PER_MONTH = 365.25 / 12


def clopper_pearson(count: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact two-sided (1 - alpha) interval for a binomial proportion; (nan, nan) when n = 0."""
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return (math.nan, math.nan)
    low, high = proportion_confint(count, n, alpha=alpha, method="beta")
    return (float(low), float(high))


def compare_proportions(x_exp: int, n_exp: int, x_ctl: int, n_ctl: int, alpha: float = 0.05) -> dict:
    """Difference of proportions (experimental - control), its interval and one-sided tests.

    Returns
    -------
    dict
        ``difference``, ``diff_ci_low``, ``diff_ci_high`` (Newcombe hybrid score),
        ``fisher_p_one_sided`` (H1: experimental > control), ``chi2_yates`` and
        ``chi2_p_one_sided`` (Yates-corrected chi-square, signed square root against the
        upper normal tail). NaN where a quantity is undefined (an empty arm, or a table with
        a zero margin for the chi-square).
    """
    from scipy import stats
    from statsmodels.stats.proportion import confint_proportions_2indep

    nan = math.nan
    out = {"difference": nan, "diff_ci_low": nan, "diff_ci_high": nan, "fisher_p_one_sided": nan,
           "chi2_yates": nan, "chi2_p_one_sided": nan}
    if n_exp == 0 or n_ctl == 0:
        return out
    diff = x_exp / n_exp - x_ctl / n_ctl
    out["difference"] = diff
    low, high = confint_proportions_2indep(x_exp, n_exp, x_ctl, n_ctl, method="newcomb", compare="diff",
                                           alpha=alpha)
    out["diff_ci_low"], out["diff_ci_high"] = float(low), float(high)
    table = [[x_exp, n_exp - x_exp], [x_ctl, n_ctl - x_ctl]]
    out["fisher_p_one_sided"] = float(stats.fisher_exact(table, alternative="greater")[1])
    if min(x_exp + x_ctl, n_exp + n_ctl - x_exp - x_ctl) > 0:
        chi2 = float(stats.chi2_contingency(table, correction=True)[0])
        out["chi2_yates"] = chi2
        out["chi2_p_one_sided"] = float(stats.norm.sf(math.copysign(math.sqrt(chi2), diff)))
    return out


def _time_response(visits, criterion: str, day: float, window_days: float) -> dict[str, bool]:
    """Patient -> responder at the nominal day (closest visit within the window, not after PD)."""
    near = visits[(visits["visit_day"] - day).abs() <= window_days]
    out: dict[str, bool] = {}
    best: dict[str, float] = {}
    for row in near.itertuples(index=False):
        d = abs(row.visit_day - day)
        if row.patient_id in best and best[row.patient_id] <= d:
            continue
        best[row.patient_id] = d
        response = getattr(row, criterion)
        out[row.patient_id] = response in ("CR", "PR") and not getattr(row, f"{criterion}_after_pd")
    return out


def orr_tables(assessment: Assessment, times_months=DEFAULT_TIMES_MONTHS, window_days: float = DEFAULT_WINDOW_DAYS,
               criteria=CRITERIA, alpha: float = 0.05):
    """ORR per criterion, time point and arm, and the arm comparison.

    Parameters
    ----------
    assessment : Assessment
    times_months : sequence of float
        Nominal assessment times [months]; "best" (best overall response) is added.
    window_days : float
        Half-width of the visit window [days].
    criteria : sequence of str
        Any of "recist", "choi", "mchoi".
    alpha : float
        1 - confidence level of the intervals.

    Returns
    -------
    orr, comparison : pandas.DataFrame
        ``orr``: criterion, timepoint, arm, n, responders, orr, ci_low, ci_high.
        ``comparison``: criterion, timepoint, experimental, control and the columns of
        :func:`compare_proportions`.
    """
    import pandas as pd

    patients, visits = assessment.patients, assessment.visits
    names = assessment.arms.names
    rows, comps = [], []
    for crit in criteria:
        if crit not in CRITERIA:
            raise ValueError(f"criterion {crit!r}: expected one of {', '.join(CRITERIA)}")
        pset = patients if crit == "recist" else patients[patients["choi_assessed"]]
        members = {arm: list(pset.loc[pset["arm"] == arm, "patient_id"]) for arm in names}
        points = [(f"{t:g} mo", float(t) * DAYS_PER_MONTH) for t in times_months] + [("best", None)]
        for label, day in points:
            if day is None:
                bor = dict(zip(pset["patient_id"], pset[f"bor_{crit}"]))
                responded = {p: bor[p] in ("CR", "PR") for p in bor}
            else:
                responded = _time_response(visits, crit, day, window_days) if len(visits) else {}
            counts = {}
            for arm in names:
                n = len(members[arm])
                x = sum(responded.get(p, False) for p in members[arm])
                low, high = clopper_pearson(x, n, alpha)
                counts[arm] = (x, n)
                rows.append({"criterion": crit, "timepoint": label, "arm": arm, "n": n, "responders": x,
                             "orr": x / n if n else math.nan, "ci_low": low, "ci_high": high})
            (xe, ne), (xc, nc) = counts[names[0]], counts[names[1]]
            comps.append({"criterion": crit, "timepoint": label, "experimental": names[0], "control": names[1],
                          **compare_proportions(xe, ne, xc, nc, alpha)})
    return pd.DataFrame(rows), pd.DataFrame(comps)
