"""Choi and modified Choi time-point response (CT size and density).

Choi H, Charnsangavej C, Faria SC, et al. Correlation of computed tomography and positron
emission tomography in patients with metastatic gastrointestinal stromal tumor treated at
a single institution with imatinib mesylate: proposal of new computed tomography response
criteria. J Clin Oncol 2007;25:1753-1759 (Table 3, "Modified CT Response Evaluation"):

- CR: disappearance of all lesions; no new lesions.
- PR: a decrease in size of >= 10 % or a decrease in tumour density (HU) of >= 15 % on CT;
  no new lesions; no obvious progression of non-measurable disease.
- SD: does not meet the criteria for CR, PR or PD.
- PD: an increase in tumour size of >= 10 % that does not meet the PR criteria by tumour
  density; new lesions (new intratumoral nodules count as new lesions).

Modified Choi (Stacchiotti S, Verderio P, Messina A, et al. Tumor response assessment by
modified Choi criteria in localized high-risk soft tissue sarcoma treated with
chemotherapy. Cancer 2012;118:5857-5866): PR needs *both* the >= 10 % size decrease and
the >= 15 % density decrease; CR, SD and PD as in Choi.

Conventions (the paper leaves them open; they are the engine's choices):

- Size is the sum of target-lesion diameters (the RECIST 1.1 target lesions of the same
  patient); density is the unweighted mean of the target lesions' mean HU, over the
  target lesions still present (0 mm lesions have no density).
- PR changes are measured from baseline; the size increase for PD from the smallest sum
  on study (nadir, baseline included), as in RECIST 1.1.
- Progression of non-target disease (the visit flag) is PD.
- A target lesion not measured at a visit gives NE unless PD is already certain.

All threshold comparisons are exact (:mod:`._exact`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ._exact import at_least, at_most, relative_change
from .measurements import PatientMeasurements, Visit
from .recist import nontarget_status, target_sum_mm, targets_disappeared

__all__ = ["DENSITY_PCT", "SIZE_PCT", "ChoiTimePoint", "choi_response", "choi_timepoints", "mean_density_hu"]

#: Choi et al. 2007, Table 3: 10 % change in size (decrease for PR, increase for PD).
SIZE_PCT = 10
#: Choi et al. 2007, Table 3: 15 % decrease in density for PR.
DENSITY_PCT = 15


@dataclass(frozen=True)
class ChoiTimePoint:
    """Choi and modified Choi response at one follow-up visit (changes exact; None where undefined)."""

    day: int
    density_hu: Fraction | None
    size_change: Fraction
    density_change: Fraction | None
    choi: str
    modified_choi: str


def mean_density_hu(patient: PatientMeasurements, visit: Visit) -> Fraction | None:
    """Unweighted mean of the present target lesions' densities [HU]; None if all are gone or unmeasured."""
    values = [visit.density_hu.get(lid) for lid in patient.targets
              if visit.diameter_mm.get(lid) not in (None, 0) and visit.density_hu.get(lid) is not None]
    return sum(values, Fraction(0)) / len(values) if values else None


def choi_response(size_mm: Fraction, complete: bool, disappeared: bool, nontarget: str, new_lesion: bool,
                  baseline_mm: Fraction, nadir_mm: Fraction, density_hu: Fraction | None,
                  baseline_hu: Fraction, modified: bool = False) -> str:
    """Choi (or modified Choi) response at one visit, Choi et al. 2007 Table 3.

    Parameters
    ----------
    size_mm : Fraction
        Sum of the measured target diameters [mm].
    complete : bool
        Every target lesion was measured.
    disappeared : bool
        Every target lesion is gone (RECIST 1.1 CR rule for the targets).
    nontarget : str
        Non-target status from :func:`sfrt_engine.trial.recist.nontarget_status`.
    new_lesion : bool
    baseline_mm, nadir_mm : Fraction
        Baseline and smallest previous sums [mm].
    density_hu, baseline_hu : Fraction
        Mean target density now (None if unmeasurable) and at baseline [HU].
    modified : bool
        Modified Choi (Stacchiotti et al. 2012): PR needs size *and* density to fall.

    Returns
    -------
    str
        "CR", "PR", "SD", "PD" or "NE".
    """
    density_pr = density_hu is not None and at_most(relative_change(density_hu, baseline_hu), -DENSITY_PCT)
    if new_lesion or nontarget == "PD":
        return "PD"
    if nadir_mm > 0:
        grew = at_least(relative_change(size_mm, nadir_mm), SIZE_PCT)
    else:
        grew = size_mm > 0  # after disappearance any regrowth is an increase
    if grew and not density_pr:
        return "PD"
    if not complete:
        return "NE"
    if disappeared:
        return "CR" if nontarget in ("CR", "none") else "PR"
    size_pr = at_most(relative_change(size_mm, baseline_mm), -SIZE_PCT)
    if (size_pr and density_pr) if modified else (size_pr or density_pr):
        return "PR"
    return "SD"


def choi_timepoints(patient: PatientMeasurements) -> list[ChoiTimePoint] | None:
    """Choi and modified Choi response at every follow-up visit; None if the patient has no densities."""
    if not patient.choi_assessed:
        return None
    baseline_mm, _ = target_sum_mm(patient, patient.baseline)
    baseline_hu = mean_density_hu(patient, patient.baseline)
    nadir = baseline_mm
    out = []
    for visit in patient.visits[1:]:
        size, complete = target_sum_mm(patient, visit)
        hu = mean_density_hu(patient, visit)
        nontarget = nontarget_status(patient, visit)
        gone = targets_disappeared(patient, visit)
        args = (size, complete, gone, nontarget, visit.new_lesion, baseline_mm, nadir, hu, baseline_hu)
        out.append(ChoiTimePoint(visit.day, hu, relative_change(size, baseline_mm),
                                 None if hu is None else relative_change(hu, baseline_hu),
                                 choi_response(*args), choi_response(*args, modified=True)))
        if complete:
            nadir = min(nadir, size)
    return out
