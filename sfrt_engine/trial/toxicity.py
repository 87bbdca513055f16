"""Toxicity by CTCAE v5.0: the maximum grade per patient and category, per arm.

Common Terminology Criteria for Adverse Events (CTCAE) version 5.0, US Department of
Health and Human Services, NCI, 27 November 2017: grades 1 (mild) to 5 (death related to
the adverse event).

Input: one row per adverse event with ``patient_id``, ``category`` (a CTCAE term or
system organ class) and ``grade`` (1-5; 0 is accepted and means "assessed, none"). Extra
columns are ignored. A randomised patient without a row in a category counts as grade 0
there (the table records every event that occurred). Per arm and category the output
gives the number of patients at each maximum grade 0-5, and the grade >= 3 rate with its
Clopper-Pearson 95 % interval; the category "any" takes each patient's worst grade over
all categories.
"""

from __future__ import annotations

from ..errors import TrialDataError
from .arms import Arms
from .endpoints import clopper_pearson
from .measurements import _text, read_table

__all__ = ["GRADES", "load_toxicity", "parse_toxicity", "toxicity_per_patient", "toxicity_table"]

GRADES = (0, 1, 2, 3, 4, 5)


def load_toxicity(path, arms: Arms) -> dict[tuple[str, str], int]:
    """Read and validate a toxicity table (CSV or Parquet); see :func:`parse_toxicity`."""
    return parse_toxicity(read_table(path, "toxicity table"), arms)


def parse_toxicity(table, arms: Arms) -> dict[tuple[str, str], int]:
    """Maximum grade per (patient, category).

    Raises
    ------
    TrialDataError
        Missing columns, a grade outside 0-5, an empty category, or a patient not in the
        arms table.
    """
    for col in ("patient_id", "category", "grade"):
        if col not in table.columns:
            raise TrialDataError(f"toxicity table: missing column {col!r}; expected patient_id, category, grade; "
                                 f"fix: add it to the header row")
    worst: dict[tuple[str, str], int] = {}
    for i, row in enumerate(table.to_dict("records")):
        pid, cat, grade = _text(row["patient_id"]), _text(row["category"]), _text(row["grade"])
        if pid not in arms.arm:
            raise TrialDataError(f"toxicity table, data row {i + 1}: patient {pid!r} is not in the arms table; fix: "
                                 f"correct the patient ID or add the patient to the arms table")
        if not cat:
            raise TrialDataError(f"toxicity table, patient {pid!r}, data row {i + 1}: empty category; fix: write the "
                                 f"CTCAE term")
        if grade not in {str(g) for g in GRADES}:
            raise TrialDataError(f"toxicity table, patient {pid!r}, category {cat!r}: grade {grade!r}; expected a "
                                 f"CTCAE v5.0 grade 0-5; fix: correct the grade")
        worst[(pid, cat)] = max(worst.get((pid, cat), 0), int(grade))
    return worst


def toxicity_per_patient(worst: dict[tuple[str, str], int], arms: Arms):
    """Maximum grade per randomised patient and category (0 where none was recorded), with the arm.

    Returns
    -------
    pandas.DataFrame
        patient_id, arm, then one column per category and ``any`` (the worst over categories).
    """
    import pandas as pd

    categories = sorted({c for _, c in worst})
    rows = []
    for pid, arm in arms.arm.items():
        grades = {cat: worst.get((pid, cat), 0) for cat in categories}
        rows.append({"patient_id": pid, "arm": arm, **grades, "any": max(grades.values(), default=0)})
    return pd.DataFrame(rows)


def toxicity_table(worst: dict[tuple[str, str], int], arms: Arms, alpha: float = 0.05):
    """Per arm and category: patients at each maximum grade and the grade >= 3 rate.

    Returns
    -------
    pandas.DataFrame
        category, arm, n, grade_0 ... grade_5, grade3plus, grade3plus_rate, ci_low, ci_high.
    """
    import pandas as pd

    categories = sorted({c for _, c in worst}) + ["any"]
    any_worst: dict[str, int] = {}
    for (pid, _), g in worst.items():
        any_worst[pid] = max(any_worst.get(pid, 0), g)
    rows = []
    for cat in categories:
        for arm in arms.names:
            pts = arms.patients(arm)
            grades = [any_worst.get(p, 0) if cat == "any" else worst.get((p, cat), 0) for p in pts]
            n = len(pts)
            high3 = sum(g >= 3 for g in grades)
            low, high = clopper_pearson(high3, n, alpha)
            row = {"category": cat, "arm": arm, "n": n}
            row.update({f"grade_{g}": grades.count(g) for g in GRADES})
            row.update({"grade3plus": high3, "grade3plus_rate": high3 / n if n else float("nan"), "ci_low": low,
                        "ci_high": high})
            rows.append(row)
    return pd.DataFrame(rows)
