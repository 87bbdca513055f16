"""Dose-response: each patient's dosimetry joined to that patient's response, by logistic regression.

Dosimetry comes from either source, joined by patient ID:

- the study results table (Parquet or CSV, one row per patient x arm x schedule x variant):
  a ``patient_id`` (or ``patient``) column, an ``arm`` column, and the metric columns.
  Only the row of the patient's randomised arm is used; if several schedules or variants
  remain, ``filters`` (column -> value) must pick one;
- ``report.json`` files of ``sfrt compare`` (one patient each): the patient is
  ``settings.patient_id`` or ``settings.patient``, or given as ``ID=path/report.json``.

Metrics (columns of the study table; report keys in brackets):

- ``geud_gy``: gEUD of the target on cumulative EQD2 [``sfrt_metrics.geud_gy``];
- ``eqd2_peak_gy``, ``eqd2_valley_gy``: mean EQD2 over the vertices and the valley
  [``sfrt_metrics.eqd2.peak_gy``, ``.valley_gy``];
- ``pvdr``: physical peak-to-valley dose ratio [``sfrt_metrics.pvdr``].

The fit is P(response) = 1 / (1 + exp(-(b0 + b1 x))) by maximum likelihood (statsmodels
``Logit``), with Wald 95 % intervals for b0, b1 and the odds ratio per unit, a pointwise
95 % band for the curve from the delta method on the linear predictor, and the dose of
50 % response D50 = -b0/b1 (delta-method interval).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..errors import TrialDataError
from .measurements import _text, read_table

__all__ = ["METRICS", "LogisticFit", "dose_response_table", "fit_logistic", "load_dosimetry"]

#: Metric column -> (label for plots, path in a report.json arm entry).
METRICS = {
    "geud_gy": ("gEUD (EQD2) [Gy]", ("sfrt_metrics", "geud_gy")),
    "eqd2_peak_gy": ("peak EQD2 [Gy]", ("sfrt_metrics", "eqd2", "peak_gy")),
    "eqd2_valley_gy": ("valley EQD2 [Gy]", ("sfrt_metrics", "eqd2", "valley_gy")),
    "pvdr": ("PVDR (physical)", ("sfrt_metrics", "pvdr")),
}


def _from_report(spec: str, arms) -> list[dict]:
    pid, _, path = spec.partition("=") if "=" in spec and not Path(spec).exists() else ("", "", spec)
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise TrialDataError(f"dosimetry {path!r}: cannot be read as report.json ({exc}); fix: give the report.json "
                             f"that sfrt compare wrote") from None
    settings = report.get("settings", {}) if isinstance(report, dict) else {}
    pid = pid or _text(settings.get("patient_id") or settings.get("patient"))
    if not pid:
        raise TrialDataError(f"dosimetry {path!r}: no patient ID in the report; fix: pass it as ID={path}")
    if pid not in arms.arm:
        raise TrialDataError(f"dosimetry {path!r}: patient {pid!r} is not in the arms table; fix: pass the report "
                             f"as ID={path} with the trial's patient ID")
    entry = report.get("arms", {}).get(arms.arm[pid])
    if entry is None:
        raise TrialDataError(f"dosimetry {path!r}: patient {pid!r}: no arm {arms.arm[pid]!r} in the report; arms: "
                             f"{', '.join(report.get('arms', {}))}")
    row = {"patient_id": pid, "arm": arms.arm[pid]}
    for metric, (_, keys) in METRICS.items():
        value = entry
        for k in keys:
            value = value.get(k) if isinstance(value, dict) else None
        row[metric] = float(value) if isinstance(value, (int, float)) else math.nan
    return [row]


def load_dosimetry(sources, arms, filters: dict | None = None):
    """One row of dose metrics per patient, in the patient's randomised arm.

    Parameters
    ----------
    sources : sequence of str or Path
        Study tables (``.parquet``, ``.csv``) and/or ``report.json`` files (``ID=path``
        to name the patient).
    arms : Arms
    filters : dict, optional
        Column -> value that selects one schedule/variant in a study table (compared as
        text, so ``{"vertex_dose_gy": "12"}`` matches 12.0).

    Returns
    -------
    pandas.DataFrame
        patient_id, arm and the :data:`METRICS` columns (NaN where a source lacks one).
    """
    import pandas as pd

    rows: list[dict] = []
    for src in sources:
        src = str(src)
        if src.lower().endswith(".json"):
            rows.extend(_from_report(src, arms))
            continue
        table = read_table(src, "dosimetry table")
        idcol = "patient_id" if "patient_id" in table.columns else "patient" if "patient" in table.columns else None
        if idcol is None:
            raise TrialDataError(f"dosimetry table {src!r}: no patient_id (or patient) column; fix: add the trial's "
                                 f"patient IDs")
        for col, want in (filters or {}).items():
            if col not in table.columns:
                raise TrialDataError(f"dosimetry table {src!r}: filter column {col!r} not found; columns: "
                                     f"{', '.join(map(str, table.columns))}")
            table = table[[_text(v) == _text(want) or _same_number(v, want) for v in table[col]]]
        table = table.assign(patient_id=[_text(v) for v in table[idcol]])
        for pid, group in table.groupby("patient_id", sort=False):
            if pid not in arms.arm:
                continue  # a planning study may hold patients outside the trial
            if "arm" in group.columns:
                group = group[[_text(a) == arms.arm[pid] for a in group["arm"]]]
            if len(group) == 0:
                continue
            if len(group) > 1:
                varying = [c for c in group.columns if group[c].astype(str).nunique() > 1]
                raise TrialDataError(f"dosimetry table {src!r}: patient {pid!r} has {len(group)} rows in arm "
                                     f"{arms.arm[pid]!r} (they differ in {', '.join(varying[:6])}); fix: choose one "
                                     f"schedule, e.g. --dosimetry-filter {varying[0]}=VALUE")
            rec = group.iloc[0]
            row = {"patient_id": pid, "arm": arms.arm[pid]}
            for metric in METRICS:
                row[metric] = float(rec[metric]) if metric in group.columns and _text(rec[metric]) else math.nan
            rows.append(row)
    out = pd.DataFrame(rows, columns=["patient_id", "arm", *METRICS])
    dup = out["patient_id"][out["patient_id"].duplicated()]
    if len(dup):
        raise TrialDataError(f"dosimetry: patient {dup.iloc[0]!r} appears in more than one source; fix: give each "
                             f"patient's dosimetry once")
    return out


def _same_number(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class LogisticFit:
    """Logistic fit of response on one metric; intervals are Wald 95 % (or 1 - alpha)."""

    metric: str
    n: int
    responders: int
    b0: float
    b1: float
    b0_ci: tuple[float, float]
    b1_ci: tuple[float, float]
    b1_p: float
    odds_ratio_per_unit: float
    odds_ratio_ci: tuple[float, float]
    d50: float
    d50_ci: tuple[float, float]
    cov: tuple[tuple[float, float], tuple[float, float]]
    alpha: float

    def predict(self, x):
        """Fitted probability and its pointwise band at doses ``x`` (arrays like ``x``)."""
        import numpy as np
        from scipy.stats import norm

        x = np.asarray(x, dtype=float)
        eta = self.b0 + self.b1 * x
        (v00, v01), (_, v11) = self.cov
        se = np.sqrt(v00 + 2 * x * v01 + x * x * v11)
        z = norm.ppf(1 - self.alpha / 2)

        def expit(v):
            return 1 / (1 + np.exp(-v))

        return expit(eta), expit(eta - z * se), expit(eta + z * se)


def fit_logistic(x, y, metric: str = "dose", alpha: float = 0.05) -> LogisticFit:
    """Fit P(y = 1) = expit(b0 + b1 x) by maximum likelihood (statsmodels Logit).

    Raises
    ------
    TrialDataError
        Fewer than 3 patients, no responder or no non-responder, or responses perfectly
        separated by the dose (no finite maximum-likelihood estimate).
    """
    import numpy as np
    import statsmodels.api as sm
    from scipy.stats import norm

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x)
    x, y = x[keep], y[keep]
    n, k = len(x), int(y.sum())
    if n < 3 or k == 0 or k == n:
        raise TrialDataError(f"dose-response on {metric}: {n} patients with dosimetry, {k} responders; a logistic fit "
                             f"needs responders and non-responders; fix: join more patients' dosimetry")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            res = sm.Logit(y, sm.add_constant(x, has_constant="add")).fit(disp=0, maxiter=200)
        except (Warning, ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:
            # statsmodels warns (here: raises) on separation and non-convergence; a singular Hessian raises
            raise TrialDataError(f"dose-response on {metric}: the logistic fit failed ({type(exc).__name__}: {exc}); "
                                 f"responses may be perfectly separated by the dose, so no finite estimate exists; "
                                 f"fix: report the data descriptively, or pool more patients") from None
    b0, b1 = (float(v) for v in res.params)
    ci = np.asarray(res.conf_int(alpha=alpha), dtype=float)
    cov = np.asarray(res.cov_params(), dtype=float)
    z = float(norm.ppf(1 - alpha / 2))
    if b1 != 0:
        d50 = -b0 / b1
        grad = np.array([-1 / b1, b0 / b1 ** 2])
        se = float(np.sqrt(grad @ cov @ grad))
        d50_ci = (d50 - z * se, d50 + z * se)
    else:
        d50, d50_ci = math.nan, (math.nan, math.nan)
    return LogisticFit(metric, n, k, b0, b1, (float(ci[0, 0]), float(ci[0, 1])), (float(ci[1, 0]), float(ci[1, 1])),
                       float(res.pvalues[1]), math.exp(b1), (math.exp(ci[1, 0]), math.exp(ci[1, 1])), d50, d50_ci,
                       ((float(cov[0, 0]), float(cov[0, 1])), (float(cov[1, 0]), float(cov[1, 1]))), alpha)


def dose_response_table(patients, dosimetry, criterion: str = "recist", metrics=tuple(METRICS), alpha: float = 0.05):
    """Join response (best overall response CR/PR = 1) and dosimetry by patient ID; fit each metric.

    Returns
    -------
    joined : pandas.DataFrame
        patient_id, arm, responder and the metrics.
    fits : dict of str -> LogisticFit or str
        Per metric, the fit, or the reason it could not be fitted.
    table : pandas.DataFrame
        One row per metric: n, responders, b0, b1 and intervals, OR per unit, D50, p.
    """
    import pandas as pd

    col = f"bor_{criterion}"
    pts = patients if criterion == "recist" else patients[patients["choi_assessed"]]
    resp = pd.DataFrame({"patient_id": pts["patient_id"], "responder": pts[col].isin(["CR", "PR"]).astype(int)})
    joined = resp.merge(dosimetry, on="patient_id", how="inner")
    fits, rows = {}, []
    for metric in metrics:
        try:
            fit = fit_logistic(joined[metric], joined["responder"], metric, alpha)
        except TrialDataError as exc:
            fits[metric] = str(exc)
            rows.append({"metric": metric, "criterion": criterion, "n": int(joined[metric].notna().sum()),
                         "note": str(exc)})
            continue
        fits[metric] = fit
        rows.append({"metric": metric, "criterion": criterion, "n": fit.n, "responders": fit.responders,
                     "b0": fit.b0, "b0_ci_low": fit.b0_ci[0], "b0_ci_high": fit.b0_ci[1], "b1": fit.b1,
                     "b1_ci_low": fit.b1_ci[0], "b1_ci_high": fit.b1_ci[1], "b1_p": fit.b1_p,
                     "odds_ratio_per_unit": fit.odds_ratio_per_unit, "or_ci_low": fit.odds_ratio_ci[0],
                     "or_ci_high": fit.odds_ratio_ci[1], "d50": fit.d50, "d50_ci_low": fit.d50_ci[0],
                     "d50_ci_high": fit.d50_ci[1], "note": ""})
    return joined, fits, pd.DataFrame(rows)
