"""The tidy lesion-measurement table: read from CSV or Parquet, validate, group per patient.

One row per patient, lesion and visit, with the columns of :data:`COLUMNS`:

- ``patient_id``, ``lesion_id``, ``visit_day`` (0 = baseline, integer days);
- ``organ``, ``is_target``, ``is_node`` (true/false);
- ``diameter_mm``: longest diameter, short axis for lymph nodes [mm]; 0 for a lesion that
  has disappeared. Required for target lesions; may be empty for non-target lesions, which
  RECIST 1.1 assesses qualitatively (Eisenhauer et al. 2009, section 4.3.3);
- ``density_hu``: mean CT density of the lesion [HU]; empty where Choi is not assessed
  (empty for every row of a patient means "Choi not assessed" for that patient);
- ``new_lesion``, ``nontarget_progression``: visit-level flags, the same on every row of
  one patient's visit.

Extra columns are ignored. A follow-up visit that leaves out a target lesion's row did not
assess that lesion (the time point is then NE unless progression is already certain,
RECIST 1.1 section 4.4.2); an empty ``diameter_mm`` cell is an error, because it cannot
tell "disappeared" (write 0) from "not assessed" (leave the row out).

Numbers are kept exact (see :mod:`sfrt_engine.trial._exact`). Every error names the
patient, lesion and visit, and the fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ..errors import TrialDataError
from ._exact import to_exact
from .targets import select_targets

__all__ = [
    "COLUMNS",
    "Lesion",
    "PatientMeasurements",
    "Visit",
    "load_measurements",
    "parse_measurements",
    "read_table",
]

#: Required columns of the measurement table.
COLUMNS = ("patient_id", "lesion_id", "visit_day", "organ", "is_target", "is_node", "diameter_mm", "density_hu",
           "new_lesion", "nontarget_progression")

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


@dataclass(frozen=True)
class Lesion:
    """A lesion as recorded at baseline."""

    lesion_id: str
    organ: str
    is_target: bool
    is_node: bool


@dataclass
class Visit:
    """One assessment of one patient.

    ``diameter_mm`` and ``density_hu`` map lesion ID to the exact measured value
    (``None`` where a non-target lesion was not measured or no density was recorded).
    """

    day: int
    diameter_mm: dict[str, Fraction | None] = field(default_factory=dict)
    density_hu: dict[str, Fraction | None] = field(default_factory=dict)
    new_lesion: bool = False
    nontarget_progression: bool = False


@dataclass
class PatientMeasurements:
    """All lesions and visits of one patient, visits sorted by day (baseline first)."""

    patient_id: str
    lesions: dict[str, Lesion]
    visits: list[Visit]
    choi_assessed: bool

    @property
    def targets(self) -> list[str]:
        return [k for k, les in self.lesions.items() if les.is_target]

    @property
    def baseline(self) -> Visit:
        return self.visits[0]


def _where(patient, lesion=None, day=None) -> str:
    text = f"patient {patient!r}"
    if lesion is not None:
        text += f", lesion {lesion!r}"
    if day is not None:
        text += f", visit day {day}"
    return text


def _bool(value, column, where) -> bool:
    if isinstance(value, bool):
        return value
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
        if isinstance(value, bool):
            return value
    text = "" if value is None else str(value).strip().lower()
    if isinstance(value, float) and math.isnan(value):
        text = ""
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise TrialDataError(f"{where}: {column} is {value!r}; expected true or false; fix: write true or false in "
                         f"that cell")


def _text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def read_table(path, what: str = "table"):
    """Read a CSV or Parquet file into a pandas DataFrame of raw cells.

    CSV cells stay text (so ``"30.0"`` keeps its written digits); Parquet keeps its types.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise TrialDataError(f"{what} {str(path)!r}: no such file; fix: give the path of a CSV or Parquet file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".tsv"):
            return pd.read_csv(path, dtype=str, keep_default_na=False, sep="\t" if suffix == ".tsv" else ",")
    except (OSError, ValueError) as exc:
        raise TrialDataError(f"{what} {str(path)!r}: cannot be read ({exc}); fix: write it as CSV with a header "
                             f"row, or as Parquet") from None
    raise TrialDataError(f"{what} {str(path)!r}: unknown file type {suffix!r}; expected .csv or .parquet")


def load_measurements(path, select: str | None = None) -> dict[str, PatientMeasurements]:
    """Read and validate a measurement table (CSV or Parquet); see :func:`parse_measurements`."""
    return parse_measurements(read_table(path, "measurement table"), select=select)


def parse_measurements(table, select: str | None = None) -> dict[str, PatientMeasurements]:
    """Validate the measurement table and group it per patient.

    Parameters
    ----------
    table : pandas.DataFrame
        Raw rows with at least the columns of :data:`COLUMNS`.
    select : {None, "largest"}
        Target-lesion selection when more than 5 lesions (or more than 2 in one organ) are
        marked ``is_target``: None raises an error; ``"largest"`` keeps the largest by
        baseline diameter, at most 2 per organ and 5 in all (RECIST 1.1 section 4.2), and
        turns the rest into non-target lesions.

    Returns
    -------
    dict
        Patient ID -> :class:`PatientMeasurements`, in the order patients first appear.

    Raises
    ------
    TrialDataError
        Missing columns or baseline, a visit before baseline, negative or missing target
        diameters, duplicate rows, inconsistent lesion attributes or visit flags, more
        than 5 target lesions without a selection, a target lesion too small to measure at
        baseline, missing or non-positive baseline density where Choi is assessed.
    """
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise TrialDataError(f"measurement table: missing column(s) {', '.join(missing)}; expected columns "
                             f"{', '.join(COLUMNS)} (extra columns are ignored); fix: add them to the header row")
    if len(table) == 0:
        raise TrialDataError("measurement table: no rows; expected one row per patient, lesion and visit")
    rows: dict[str, list[dict]] = {}
    for i, raw in enumerate(table[list(COLUMNS)].itertuples(index=False, name=None)):
        rec = dict(zip(COLUMNS, raw))
        pid, lid = _text(rec["patient_id"]), _text(rec["lesion_id"])
        if not pid or not lid:
            raise TrialDataError(f"measurement table, data row {i + 1}: empty patient_id or lesion_id; fix: fill "
                                 f"both in")
        day_text = _text(rec["visit_day"])
        try:
            day_exact = to_exact(day_text)
        except (TypeError, ValueError):
            day_exact = "bad"
        if day_exact is None or day_exact == "bad" or day_exact.denominator != 1:
            raise TrialDataError(f"{_where(pid, lid)}: visit_day is {day_text!r}; expected whole days from the "
                                 f"baseline scan (0 = baseline); fix: write the day number")
        day = int(day_exact)
        where = _where(pid, lid, day)
        if day < 0:
            raise TrialDataError(f"{where}: the visit is before baseline (day 0); fix: count visit days from the "
                                 f"baseline scan, or make the earliest scan the baseline")
        try:
            diameter = to_exact(rec["diameter_mm"])
        except (TypeError, ValueError) as exc:
            raise TrialDataError(f"{where}: diameter_mm {exc}; expected a length in mm; fix: write the measured "
                                 f"diameter as a number") from None
        try:
            density = to_exact(rec["density_hu"])
        except (TypeError, ValueError) as exc:
            raise TrialDataError(f"{where}: density_hu {exc}; expected a mean CT number in HU; fix: write the "
                                 f"number, or leave the cell empty where Choi is not assessed") from None
        if diameter is not None and diameter < 0:
            raise TrialDataError(f"{where}: diameter_mm is {float(diameter):g}; expected a length >= 0 mm; fix: "
                                 f"correct the measurement (0 for a lesion that has disappeared)")
        rows.setdefault(pid, []).append({
            "lesion": lid, "day": day, "where": where, "organ": _text(rec["organ"]),
            "is_target": _bool(rec["is_target"], "is_target", where), "is_node": _bool(rec["is_node"], "is_node", where),
            "diameter": diameter, "density": density,
            "new_lesion": _bool(rec["new_lesion"], "new_lesion", where),
            "nontarget_progression": _bool(rec["nontarget_progression"], "nontarget_progression", where)})
    return {pid: _patient(pid, prow, select) for pid, prow in rows.items()}


def _patient(pid: str, prow: list[dict], select) -> PatientMeasurements:
    seen: set = set()
    for r in prow:
        key = (r["lesion"], r["day"])
        if key in seen:
            raise TrialDataError(f"{r['where']}: duplicate row (this lesion is measured twice at this visit); "
                                 f"fix: keep one row per patient, lesion and visit")
        seen.add(key)
    days = sorted({r["day"] for r in prow})
    if days[0] != 0:
        raise TrialDataError(f"{_where(pid, day=days[0])}: missing baseline (no row with visit_day 0); fix: add "
                             f"the baseline measurements of every lesion at visit_day 0")
    lesions: dict[str, Lesion] = {}
    for r in prow:
        if r["day"] == 0:
            lesions[r["lesion"]] = Lesion(r["lesion"], r["organ"], r["is_target"], r["is_node"])
    for r in prow:
        les = lesions.get(r["lesion"])
        if les is None:
            raise TrialDataError(f"{r['where']}: missing baseline for this lesion (it has no row at visit_day 0); "
                                 f"fix: add its baseline row, or, if it appeared after baseline, set new_lesion "
                                 f"true at this visit and remove its rows")
        if (r["organ"], r["is_target"], r["is_node"]) != (les.organ, les.is_target, les.is_node):
            raise TrialDataError(f"{r['where']}: organ/is_target/is_node differ from the baseline row "
                                 f"({les.organ!r}, {les.is_target}, {les.is_node}); fix: give the lesion the same "
                                 f"attributes at every visit")
    lesions = select_targets(pid, lesions, {r["lesion"]: r["diameter"] for r in prow if r["day"] == 0}, select)
    visits = []
    for day in days:
        vrows = [r for r in prow if r["day"] == day]
        flags = {(r["new_lesion"], r["nontarget_progression"]) for r in vrows}
        if len(flags) > 1:
            raise TrialDataError(f"{_where(pid, vrows[0]['lesion'], day)}: new_lesion/nontarget_progression differ "
                                 f"between the rows of this visit; they are visit-level flags; fix: write the same "
                                 f"values on every row of the visit")
        new, ntp = flags.pop()
        visit = Visit(day, new_lesion=new, nontarget_progression=ntp)
        for r in vrows:
            if lesions[r["lesion"]].is_target and r["diameter"] is None:
                raise TrialDataError(f"{r['where']}: diameter_mm is missing for a target lesion; fix: write the "
                                     f"measured diameter (0 if the lesion disappeared), or delete the row if the "
                                     f"lesion was not assessed (that visit is then NE, RECIST 1.1 section 4.4.2)")
            visit.diameter_mm[r["lesion"]] = r["diameter"]
            visit.density_hu[r["lesion"]] = r["density"]
        visits.append(visit)
    base = visits[0]
    if new_at_baseline := [r for r in prow if r["day"] == 0 and (r["new_lesion"] or r["nontarget_progression"])]:
        raise TrialDataError(f"{new_at_baseline[0]['where']}: new_lesion or nontarget_progression is true at "
                             f"baseline; there is nothing to progress from; fix: set both false at visit_day 0")
    for lid in lesions:
        if lesions[lid].is_target:
            _check_measurable(pid, lesions[lid], base.diameter_mm[lid])
    choi = any(r["density"] is not None for r in prow if lesions[r["lesion"]].is_target)
    if choi:
        for r in prow:
            gone = r["day"] > 0 and r["diameter"] == 0  # a vanished lesion has no density to measure
            if lesions[r["lesion"]].is_target and r["density"] is None and not gone:
                raise TrialDataError(f"{r['where']}: density_hu missing for Choi (this patient has densities at "
                                     f"other target rows); fix: write the lesion's mean CT density in HU, or leave "
                                     f"density_hu empty on every row of the patient to skip Choi for them")
        for lid in lesions:
            if lesions[lid].is_target and base.density_hu[lid] <= 0:
                raise TrialDataError(f"{_where(pid, lid, 0)}: baseline density_hu is {float(base.density_hu[lid]):g}"
                                     f" HU; Choi's relative density change needs a positive baseline density; fix: "
                                     f"check the ROI, or leave density_hu empty for this patient (Choi not "
                                     f"assessed)")
    return PatientMeasurements(pid, lesions, visits, choi)


def _check_measurable(pid: str, lesion: Lesion, diameter: Fraction) -> None:
    """RECIST 1.1 section 3.1.1: a target lesion is >= 10 mm (CT), a target node >= 15 mm short axis."""
    minimum = 15 if lesion.is_node else 10
    if diameter < minimum:
        kind = "short axis of a lymph node" if lesion.is_node else "longest diameter"
        raise TrialDataError(f"{_where(pid, lesion.lesion_id, 0)}: baseline {kind} {float(diameter):g} mm is below "
                             f"{minimum} mm, so the lesion is not measurable and cannot be a target (RECIST 1.1 "
                             f"section 3.1.1); fix: set is_target false for it")
