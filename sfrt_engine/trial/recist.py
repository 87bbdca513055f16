"""RECIST 1.1 time-point response: CR, PR, SD, PD or NE at each follow-up visit.

Eisenhauer EA, Therasse P, Bogaerts J, et al. New response evaluation criteria in solid
tumours: revised RECIST guideline (version 1.1). Eur J Cancer 2009;45:228-247.

Sections used (each rule below cites its own):

- 3.1.1 measurability (checked when the table is read, :mod:`.measurements`);
- 4.2 at most 5 target lesions, 2 per organ (:mod:`.targets`); the sum of diameters is
  the longest diameter of non-nodal and the short axis of nodal targets;
- 4.3.1 target-lesion response; 4.3.2 nodes (CR when every target node is < 10 mm short
  axis, while their short axes still count in the sum);
- 4.3.3 non-target lesions; 4.3.5 new lesions;
- 4.4.1 Table 1, time-point response from target, non-target and new lesions;
- 4.4.2 missing assessments: NE, unless the lesions that were measured already show PD.

All threshold comparisons are exact (:mod:`._exact`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ._exact import at_most, relative_change
from .measurements import PatientMeasurements, Visit

__all__ = [
    "NODE_NORMAL_MM",
    "PD_ABSOLUTE_MM",
    "PD_INCREASE_PCT",
    "PR_DECREASE_PCT",
    "TimePoint",
    "is_progression",
    "nontarget_status",
    "overall_response",
    "recist_timepoints",
    "target_response",
    "target_sum_mm",
    "targets_disappeared",
]

#: Section 4.3.1: PR is a decrease of at least 30 % in the sum of diameters (reference: baseline sum).
PR_DECREASE_PCT = -30
#: Section 4.3.1: PD is an increase of at least 20 % over the smallest sum on study (nadir) ...
PD_INCREASE_PCT = 20
#: ... and an absolute increase of at least 5 mm.
PD_ABSOLUTE_MM = 5
#: Section 4.3.2: a lymph node is normal (CR) below 10 mm short axis.
NODE_NORMAL_MM = 10


@dataclass(frozen=True)
class TimePoint:
    """Response at one follow-up visit.

    ``sum_mm`` is the sum of the measured target diameters [mm] (exact); ``complete`` says
    whether every target lesion was measured. ``change_baseline`` and ``change_nadir`` are
    exact relative changes (-0.3 is -30 %); ``change_nadir`` is None when the nadir is 0. ``target``, ``nontarget`` and ``overall`` are
    the categories of Table 1.
    """

    day: int
    sum_mm: Fraction
    complete: bool
    nadir_mm: Fraction
    change_baseline: Fraction
    change_nadir: Fraction | None
    target: str
    nontarget: str
    overall: str


def target_sum_mm(patient: PatientMeasurements, visit: Visit) -> tuple[Fraction, bool]:
    """Sum of target diameters at a visit and whether all targets were measured (section 4.2)."""
    total = Fraction(0)
    complete = True
    for lid in patient.targets:
        value = visit.diameter_mm.get(lid)
        if value is None:
            complete = False
        else:
            total += value
    return total, complete


def targets_disappeared(patient: PatientMeasurements, visit: Visit) -> bool:
    """Section 4.3.1 CR: every non-nodal target gone (0 mm), every nodal target < 10 mm short axis (4.3.2)."""
    for lid in patient.targets:
        value = visit.diameter_mm.get(lid)
        if value is None:
            return False
        if patient.lesions[lid].is_node:
            if not value < NODE_NORMAL_MM:
                return False
        elif value != 0:
            return False
    return True


def is_progression(sum_mm: Fraction, nadir_mm: Fraction) -> bool:
    """Section 4.3.1 PD: ``sum >= 1.2 x nadir`` and ``sum - nadir >= 5 mm``, both exact.

    A nadir of 0 (all targets gone) leaves only the 5 mm rule.
    """
    increase = sum_mm - nadir_mm
    relative_ok = increase >= nadir_mm * Fraction(PD_INCREASE_PCT, 100)
    return relative_ok and increase >= PD_ABSOLUTE_MM


def target_response(patient: PatientMeasurements, visit: Visit, baseline_mm: Fraction, nadir_mm: Fraction) -> str:
    """Target-lesion response, section 4.3.1 (with 4.3.2 for nodes and 4.4.2 for missing lesions).

    - PD: at least 20 % above the nadir (smallest sum on study, baseline included) and at
      least 5 mm above it. Checked first, and also on an incomplete set of measurements:
      lesions left out can only add to the sum (section 4.4.2).
    - NE: a target lesion was not measured and PD is not already certain (4.4.2).
    - CR: disappearance of all target lesions; nodal targets < 10 mm short axis (4.3.2).
    - PR: at least 30 % below the baseline sum.
    - SD: neither.
    """
    total, complete = target_sum_mm(patient, visit)
    if is_progression(total, nadir_mm):
        return "PD"
    if not complete:
        return "NE"
    if targets_disappeared(patient, visit):
        return "CR"
    if at_most(relative_change(total, baseline_mm), PR_DECREASE_PCT):
        return "PR"
    return "SD"


def nontarget_status(patient: PatientMeasurements, visit: Visit) -> str:
    """Non-target lesions, section 4.3.3: "PD", "CR", "non-CR/non-PD" or "none".

    PD is the visit's ``nontarget_progression`` flag (unequivocal progression is a
    qualitative judgement, section 4.3.4). CR needs every non-target lesion recorded at the
    visit as gone (0 mm; nodes < 10 mm short axis); one not recorded, or recorded without a
    diameter, is not proven gone, so the status is non-CR/non-PD, which Table 1 treats like
    NE ("CR + NE = PR"). "none": the patient has no non-target lesions.
    """
    if visit.nontarget_progression:
        return "PD"
    others = [lid for lid, les in patient.lesions.items() if not les.is_target]
    if not others:
        return "none"
    for lid in others:
        value = visit.diameter_mm.get(lid)
        if value is None:
            return "non-CR/non-PD"
        if patient.lesions[lid].is_node:
            if not value < NODE_NORMAL_MM:
                return "non-CR/non-PD"
        elif value != 0:
            return "non-CR/non-PD"
    return "CR"


def overall_response(target: str, nontarget: str, new_lesion: bool) -> str:
    """Time-point response from section 4.4.1, Table 1 (patients with target disease).

    ====== ================ ===== =======
    Target Non-target       New   Overall
    ====== ================ ===== =======
    CR     CR (or none)     No    CR
    CR     non-CR/non-PD/NE No    PR
    PR     non-PD or NE     No    PR
    SD     non-PD or NE     No    SD
    NE     non-PD           No    NE
    PD     any              any   PD
    any    PD               any   PD
    any    any              Yes   PD
    ====== ================ ===== =======
    """
    if new_lesion or nontarget == "PD" or target == "PD":
        return "PD"
    if target == "NE":
        return "NE"
    if target == "CR":
        return "CR" if nontarget in ("CR", "none") else "PR"
    return target


def recist_timepoints(patient: PatientMeasurements) -> list[TimePoint]:
    """RECIST 1.1 response at every follow-up visit of one patient, in visit order.

    The nadir is the smallest complete sum of target diameters on study up to the previous
    visit, baseline included (section 4.3.1, "taking as reference the smallest sum on
    study ... includes the baseline sum if that is the smallest").
    """
    baseline_mm, _ = target_sum_mm(patient, patient.baseline)
    nadir = baseline_mm
    out = []
    for visit in patient.visits[1:]:
        total, complete = target_sum_mm(patient, visit)
        target = target_response(patient, visit, baseline_mm, nadir)
        nontarget = nontarget_status(patient, visit)
        overall = overall_response(target, nontarget, visit.new_lesion)
        out.append(TimePoint(visit.day, total, complete, nadir, relative_change(total, baseline_mm),
                             None if nadir == 0 else relative_change(total, nadir), target, nontarget, overall))
        if complete:
            nadir = min(nadir, total)
    return out

