"""Classify every patient and visit by RECIST 1.1, Choi and modified Choi; derive the events.

:func:`assess` is the one call between the validated tables and the endpoint statistics.
It returns two tidy tables:

- ``visits``: one row per patient and follow-up visit, with the sum of target diameters,
  the changes from baseline and nadir, the mean density, and the response by each
  criterion;
- ``patients``: one row per randomised patient, with the arm, the best overall response by
  each criterion, the best change in size, and the local-progression and
  progression-free-survival times and events.

Patients who are randomised but have no measurements are kept (intention to treat):
their best response is NE, and they are censored at day 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from .arms import Arms, check_patients
from .best_response import DEFAULT_CONFIRM_DAYS, DEFAULT_MIN_SD_DAYS, best_overall_response
from .choi import choi_timepoints
from .measurements import PatientMeasurements
from .recist import recist_timepoints, target_sum_mm

__all__ = ["CRITERIA", "Assessment", "assess"]

#: Response criteria and their column names.
CRITERIA = ("recist", "choi", "mchoi")


@dataclass
class Assessment:
    """Per-visit and per-patient classifications (pandas DataFrames) and the settings used."""

    visits: object
    patients: object
    arms: Arms
    settings: dict


def _pct(value) -> float:
    return float("nan") if value is None else round(float(value) * 100, 6)


def assess(measurements: dict[str, PatientMeasurements], arms: Arms, confirm: bool = False,
           confirm_days: int = DEFAULT_CONFIRM_DAYS, min_sd_days: int = DEFAULT_MIN_SD_DAYS) -> Assessment:
    """Classify all patients and visits.

    Parameters
    ----------
    measurements : dict
        From :func:`sfrt_engine.trial.measurements.load_measurements`.
    arms : Arms
        From :func:`sfrt_engine.trial.arms.load_arms`; every measured patient must be in it.
    confirm, confirm_days, min_sd_days
        Best-overall-response rules (:func:`.best_response.best_overall_response`).

    Returns
    -------
    Assessment
        ``visits`` columns: patient_id, arm, visit_day, sum_mm, change_baseline_pct,
        change_nadir_pct, target_recist, nontarget, new_lesion, recist, density_hu,
        density_change_pct, choi, mchoi, and for each criterion ``<criterion>_after_pd``
        (the visit follows an earlier PD by that criterion).
        ``patients`` columns: patient_id, arm, baseline_sum_mm, best_change_pct, bor_recist,
        bor_choi, bor_mchoi, choi_assessed, last_visit_day, local_progression,
        local_time_days, pfs_event, pfs_time_days.
    """
    import pandas as pd

    check_patients(list(measurements), arms)
    visit_rows, patient_rows = [], []
    for pid, group in arms.arm.items():
        pm = measurements.get(pid)
        row = {"patient_id": pid, "arm": group, "baseline_sum_mm": float("nan"), "best_change_pct": float("nan"),
               "bor_recist": "NE", "bor_choi": "NE", "bor_mchoi": "NE", "choi_assessed": False,
               "last_visit_day": 0, "local_progression": False, "local_time_days": 0, "pfs_event": False,
               "pfs_time_days": 0}
        death = arms.death_day.get(pid)
        if pm is not None:
            row.update(_patient(pm, visit_rows, group, confirm, confirm_days, min_sd_days))
        if death is not None and (not row["pfs_event"] or death < row["pfs_time_days"]):
            row["pfs_event"], row["pfs_time_days"] = True, death
        patient_rows.append(row)
    settings = {"confirm": confirm, "confirm_days": confirm_days, "min_sd_days": min_sd_days,
                "experimental_arm": arms.experimental, "control_arm": arms.control}
    return Assessment(pd.DataFrame(visit_rows), pd.DataFrame(patient_rows), arms, settings)


def _patient(pm: PatientMeasurements, visit_rows: list, group: str, confirm, confirm_days, min_sd_days) -> dict:
    recist = recist_timepoints(pm)
    choi = choi_timepoints(pm)
    baseline_mm, _ = target_sum_mm(pm, pm.baseline)
    seen_pd = dict.fromkeys(CRITERIA, False)
    for i, tp in enumerate(recist):
        visit = pm.visits[i + 1]
        ch = choi[i] if choi else None
        row = {"patient_id": pm.patient_id, "arm": group, "visit_day": tp.day, "sum_mm": float(tp.sum_mm),
               "complete": tp.complete, "change_baseline_pct": _pct(tp.change_baseline),
               "change_nadir_pct": _pct(tp.change_nadir), "target_recist": tp.target, "nontarget": tp.nontarget,
               "new_lesion": visit.new_lesion, "recist": tp.overall,
               "density_hu": float("nan") if ch is None or ch.density_hu is None else float(ch.density_hu),
               "density_change_pct": _pct(None if ch is None else ch.density_change),
               "choi": "NA" if ch is None else ch.choi, "mchoi": "NA" if ch is None else ch.modified_choi}
        for crit in CRITERIA:
            row[f"{crit}_after_pd"] = seen_pd[crit]
            seen_pd[crit] = seen_pd[crit] or row[crit] == "PD"
        visit_rows.append(row)
    out = {"baseline_sum_mm": float(baseline_mm), "choi_assessed": choi is not None,
           "last_visit_day": pm.visits[-1].day, "local_time_days": pm.visits[-1].day,
           "pfs_time_days": pm.visits[-1].day}
    complete = [tp for tp in recist if tp.complete]
    if complete:
        out["best_change_pct"] = _pct(min(tp.change_baseline for tp in complete))
    out["bor_recist"] = best_overall_response([(tp.day, tp.overall) for tp in recist], confirm, confirm_days,
                                              min_sd_days) if recist else "NE"
    if choi:
        out["bor_choi"] = best_overall_response([(c.day, c.choi) for c in choi], confirm, confirm_days, min_sd_days)
        out["bor_mchoi"] = best_overall_response([(c.day, c.modified_choi) for c in choi], confirm, confirm_days,
                                                 min_sd_days)
    local = next((tp.day for tp in recist if tp.target == "PD"), None)
    if local is not None:
        out["local_progression"], out["local_time_days"] = True, local
    pd_day = next((tp.day for tp in recist if tp.overall == "PD"), None)
    if pd_day is not None:
        out["pfs_event"], out["pfs_time_days"] = True, pd_day
    return out
