"""The whole response analysis written as one result folder (what ``sfrt trial response`` runs).

Folder contents (written into a temporary sibling folder, then renamed into place with a
manifest of SHA-256 hashes, DESIGN 8):

- ``per_visit.csv``: response by RECIST 1.1, Choi and modified Choi at every visit;
- ``per_patient.csv``: best overall responses, best change in size, event times;
- ``orr.csv``, ``orr_comparison.csv``: ORR per criterion, time point and arm, and the arm
  comparison; ``survival.csv``: local control and PFS; ``toxicity.csv`` and
  ``toxicity_per_patient.csv`` (with a toxicity table); ``dose_response.csv`` and
  ``dose_response_data.csv`` (with dosimetry);
- ``endpoints.json``: all the tables above and the settings;
- ``waterfall.png``, ``spider.png``, ``km.png``, ``dose_response.png`` (with dosimetry).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from .arms import DEFAULT_EXPERIMENTAL_ARM, load_arms
from .assessment import assess
from .best_response import DEFAULT_CONFIRM_DAYS, DEFAULT_MIN_SD_DAYS
from .endpoints import DEFAULT_TIMES_MONTHS, DEFAULT_WINDOW_DAYS, orr_tables
from .measurements import load_measurements

__all__ = ["ResponseReport", "format_endpoint_table", "write_response_report"]


@dataclass
class ResponseReport:
    """Tables of one analysis (pandas DataFrames; None where an input was not given)."""

    out: Path
    assessment: object
    orr: object
    comparison: object
    survival: object
    toxicity: object
    dose_response: object
    files: list


def _records(df):
    if df is None:
        return None
    out = []
    for rec in df.to_dict("records"):
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else
                        ("inf" if isinstance(v, float) and math.isinf(v) else v)) for k, v in rec.items()})
    return out


def write_response_report(measurements, arms, out, experimental_arm: str = DEFAULT_EXPERIMENTAL_ARM,
                          select_targets: str | None = None, confirm: bool = False,
                          confirm_days: int = DEFAULT_CONFIRM_DAYS, min_sd_days: int = DEFAULT_MIN_SD_DAYS,
                          times_months=DEFAULT_TIMES_MONTHS, window_days: float = DEFAULT_WINDOW_DAYS,
                          toxicity=None, dosimetry=(), dosimetry_filters: dict | None = None,
                          dose_criterion: str = "recist", plots: bool = True) -> ResponseReport:
    """Read, assess, compute every endpoint, and write the result folder ``out``.

    Parameters
    ----------
    measurements, arms : str or Path
        Measurement and arms tables (CSV or Parquet).
    out : str or Path
        Result folder (replaced as a whole).
    experimental_arm : str
        Name of the experimental arm in the arms table (the other is the control).
    select_targets : {None, "largest"}
        Target-lesion selection (:func:`sfrt_engine.trial.targets.select_targets`).
    confirm, confirm_days, min_sd_days
        Best-overall-response rules.
    times_months, window_days
        Assessment times for the ORR and the visit window.
    toxicity : str or Path, optional
        CTCAE table (patient_id, category, grade).
    dosimetry : sequence of str or Path
        Study tables and/or report.json files for the dose-response fits.
    dosimetry_filters : dict, optional
        Column -> value selecting one schedule in a study table.
    dose_criterion : str
        Criterion whose best overall response is the dose-response outcome.
    plots : bool
        Write the PNG figures.
    """
    from . import plots as figs
    from ._output import atomic_folder
    from .survival import survival_tables

    meas = load_measurements(measurements, select=select_targets)
    arm_table = load_arms(arms, experimental_arm)
    result = assess(meas, arm_table, confirm, confirm_days, min_sd_days)
    orr, comparison = orr_tables(result, times_months, window_days)
    surv, fits = survival_tables(result)
    tox = tox_patients = None
    if toxicity:
        from .toxicity import load_toxicity, toxicity_per_patient, toxicity_table

        worst = load_toxicity(toxicity, arm_table)
        tox, tox_patients = toxicity_table(worst, arm_table), toxicity_per_patient(worst, arm_table)
    dose_table = joined = dose_fits = None
    if dosimetry:
        from .dose_response import dose_response_table, load_dosimetry

        dosi = load_dosimetry(dosimetry, arm_table, dosimetry_filters)
        joined, dose_fits, dose_table = dose_response_table(result.patients, dosi, dose_criterion)
    names = arm_table.names
    settings = dict(result.settings, select_targets=select_targets, times_months=list(times_months),
                    window_days=window_days, dose_criterion=dose_criterion,
                    measurements=str(measurements), arms=str(arms), toxicity=str(toxicity) if toxicity else None,
                    dosimetry=[str(d) for d in dosimetry])
    with atomic_folder(out) as tmp:
        result.visits.to_csv(tmp / "per_visit.csv", index=False)
        result.patients.to_csv(tmp / "per_patient.csv", index=False)
        orr.to_csv(tmp / "orr.csv", index=False)
        comparison.to_csv(tmp / "orr_comparison.csv", index=False)
        surv.to_csv(tmp / "survival.csv", index=False)
        if tox is not None:
            tox.to_csv(tmp / "toxicity.csv", index=False)
            tox_patients.to_csv(tmp / "toxicity_per_patient.csv", index=False)
        if dose_table is not None:
            dose_table.to_csv(tmp / "dose_response.csv", index=False)
            joined.to_csv(tmp / "dose_response_data.csv", index=False)
        (tmp / "endpoints.json").write_text(json.dumps({
            "settings": settings, "orr": _records(orr), "orr_comparison": _records(comparison),
            "survival": _records(surv), "toxicity": _records(tox), "dose_response": _records(dose_table)},
            indent=2, default=str))
        if plots:
            figs.save_waterfall(tmp / "waterfall.png", result.patients, names)
            figs.save_spider(tmp / "spider.png", result.visits, result.patients, names)
            figs.save_km(tmp / "km.png", fits, surv, names)
            if dose_fits:
                figs.save_dose_response(tmp / "dose_response.png", joined, dose_fits, names, dose_criterion)
    files = sorted(Path(out).iterdir())
    return ResponseReport(Path(out), result, orr, comparison, surv, tox, dose_table, files)


def _pct(v) -> str:
    return "  -  " if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:5.1f}"


def format_endpoint_table(report: ResponseReport) -> str:
    """The endpoint table as plain text: ORR per criterion, time and arm with CIs and tests; LC and PFS."""
    names = report.assessment.arms.names
    lines = [f"{'criterion':9s} {'time':6s}" + "".join(f"{arm + ' ORR % (95% CI)':>28s}" for arm in names)
             + f"{'diff % (95% CI)':>24s}{'Fisher p1':>11s}{'chi2cc p1':>11s}"]
    orr, comp = report.orr, report.comparison
    for row in comp.itertuples(index=False):
        cells = ""
        for arm in names:
            r = orr[(orr.criterion == row.criterion) & (orr.timepoint == row.timepoint) & (orr.arm == arm)].iloc[0]
            cells += f"{r.responders:>5d}/{r.n:<3d}{_pct(r.orr)} ({_pct(r.ci_low)}-{_pct(r.ci_high)})"
        diff = f"{_pct(row.difference)} ({_pct(row.diff_ci_low)}-{_pct(row.diff_ci_high)})"
        lines.append(f"{row.criterion:9s} {row.timepoint:6s}{cells}{diff:>24s}{row.fisher_p_one_sided:11.4f}"
                     f"{row.chi2_p_one_sided:11.4f}")
    lines.append("")
    lines.append(f"{'endpoint':14s}{'arm':>6s}{'n':>5s}{'events':>8s}{'1-year % (95% CI)':>24s}"
                 f"{'median d (95% CI)':>24s}{'log-rank p':>12s}")
    for r in report.survival.itertuples(index=False):
        med = "not reached" if math.isinf(r.median_days) else f"{r.median_days:.0f}"
        low = "NR" if math.isinf(r.median_ci_low) else f"{r.median_ci_low:.0f}"
        high = "NR" if math.isinf(r.median_ci_high) else f"{r.median_ci_high:.0f}"
        lines.append(f"{r.endpoint:14s}{r.arm:>6s}{r.n:>5d}{r.events:>8d}"
                     f"{_pct(r.at_1y) + ' (' + _pct(r.at_1y_ci_low) + '-' + _pct(r.at_1y_ci_high) + ')':>24s}"
                     f"{med + ' (' + low + '-' + high + ')':>24s}{r.logrank_p:12.4f}")
    return "\n".join(lines)
