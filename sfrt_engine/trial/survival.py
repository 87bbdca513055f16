"""Time-to-event endpoints per arm: 1-year local control and progression-free survival.

Kaplan-Meier estimates, Greenwood variance with the exponential-Greenwood (log(-log))
interval, medians with their intervals (Brookmeyer R, Crowley J. Biometrics
1982;38:29-41, as implemented by lifelines ``median_survival_times`` on the KM interval),
and the two-sided log-rank test, all from lifelines (Davidson-Pilon C. J Open Source Softw
2019;4:1317).

- Local control: an event is progression of the target lesion(s) by RECIST 1.1 (target
  response PD, section 4.3.1); patients are censored at their last assessment. The
  1-year value is the KM estimate at 365 days.
- PFS: an event is RECIST 1.1 progression (target, non-target or new lesion) or death
  (``death_day`` of the arms table), whichever comes first; otherwise censored at the
  last assessment.
"""

from __future__ import annotations

import math

from .assessment import Assessment

__all__ = ["LOCAL_CONTROL_DAYS", "fit_km", "survival_tables"]

#: 1-year local control [days].
LOCAL_CONTROL_DAYS = 365


def fit_km(durations, events, label: str, alpha: float = 0.05):
    """A fitted lifelines KaplanMeierFitter (durations in days)."""
    from lifelines import KaplanMeierFitter

    return KaplanMeierFitter(alpha=alpha).fit(durations, event_observed=events, label=label)


def _at(kmf, day: float) -> tuple[float, float, float]:
    """KM survival and its interval at ``day`` (right-continuous step function)."""
    sf = kmf.survival_function_
    ci = kmf.confidence_interval_survival_function_
    idx = sf.index[sf.index <= day]
    if len(idx) == 0:
        return (1.0, 1.0, 1.0)
    t = idx[-1]
    return (float(sf.loc[t].iloc[0]), float(ci.loc[t].iloc[0]), float(ci.loc[t].iloc[1]))


def _median(kmf) -> tuple[float, float, float]:
    from lifelines.utils import median_survival_times

    median = float(kmf.median_survival_time_)
    ci = median_survival_times(kmf.confidence_interval_)
    low, high = (float(v) for v in ci.iloc[0])
    return median, low, high


def survival_tables(assessment: Assessment, alpha: float = 0.05, lc_days: float = LOCAL_CONTROL_DAYS):
    """Local control and PFS per arm, with the log-rank comparison.

    Returns
    -------
    table : pandas.DataFrame
        One row per endpoint ("local_control", "pfs") and arm: n, events, the KM value at
        ``lc_days`` with its interval (``at_1y``, ``at_1y_ci_low/high``), the median [days]
        with its interval (inf where not reached), and the two-sided log-rank p-value and
        statistic (same on both rows of an endpoint).
    fits : dict
        (endpoint, arm) -> fitted KaplanMeierFitter, for plots.
    """
    import pandas as pd
    from lifelines.statistics import logrank_test

    pts = assessment.patients
    names = assessment.arms.names
    rows, fits = [], {}
    for endpoint, tcol, ecol in (("local_control", "local_time_days", "local_progression"),
                                 ("pfs", "pfs_time_days", "pfs_event")):
        groups = {arm: pts[pts["arm"] == arm] for arm in names}
        test = None
        if all(len(g) for g in groups.values()):
            a, b = groups[names[0]], groups[names[1]]
            test = logrank_test(a[tcol], b[tcol], event_observed_A=a[ecol], event_observed_B=b[ecol])
        for arm, g in groups.items():
            row = {"endpoint": endpoint, "arm": arm, "n": len(g), "events": int(g[ecol].sum())}
            if len(g):
                kmf = fit_km(g[tcol].astype(float), g[ecol].astype(bool), arm, alpha)
                fits[(endpoint, arm)] = kmf
                row["at_1y"], row["at_1y_ci_low"], row["at_1y_ci_high"] = _at(kmf, lc_days)
                row["median_days"], row["median_ci_low"], row["median_ci_high"] = _median(kmf)
            row["logrank_p"] = math.nan if test is None else float(test.p_value)
            row["logrank_chi2"] = math.nan if test is None else float(test.test_statistic)
            rows.append(row)
    return pd.DataFrame(rows), fits
