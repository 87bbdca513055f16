"""Target-lesion selection: at most 5 target lesions in all and 2 per organ.

Eisenhauer EA, Therasse P, Bogaerts J, et al. New response evaluation criteria in solid
tumours: revised RECIST guideline (version 1.1). Eur J Cancer 2009;45:228-247,
section 4.2 ("Baseline documentation of 'target' and 'non-target' lesions"): "a maximum
of five lesions total (and a maximum of two lesions per organ) ... should be identified as
target lesions ... selected on the basis of their size (lesions with the longest
diameter)". Lesions not selected are followed as non-target lesions.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from ..errors import TrialDataError

__all__ = ["MAX_TARGETS", "MAX_TARGETS_PER_ORGAN", "SELECTIONS", "select_targets"]

#: RECIST 1.1 section 4.2.
MAX_TARGETS = 5
MAX_TARGETS_PER_ORGAN = 2
#: Accepted values of the ``select`` argument.
SELECTIONS = (None, "largest")


def select_targets(patient_id: str, lesions: dict, baseline_mm: dict[str, Fraction | None], select: str | None):
    """Check or apply the 5-in-all, 2-per-organ limit on target lesions.

    Parameters
    ----------
    patient_id : str
    lesions : dict of str -> Lesion
        As recorded at baseline (not modified).
    baseline_mm : dict of str -> Fraction or None
        Baseline diameter per lesion [mm].
    select : {None, "largest"}
        None: more targets than allowed is an error. ``"largest"``: keep the largest
        baseline diameters (ties by lesion ID), at most 2 per organ and 5 in all.

    Returns
    -------
    dict of str -> Lesion
        A new mapping; lesions dropped from the targets become non-target lesions.
    """
    if select not in SELECTIONS:
        raise TrialDataError(f"target selection {select!r}: expected one of {', '.join(map(str, SELECTIONS))}")
    targets = [k for k, les in lesions.items() if les.is_target]
    per_organ: dict[str, list[str]] = {}
    for k in targets:
        per_organ.setdefault(lesions[k].organ, []).append(k)
    crowded = {o: ks for o, ks in per_organ.items() if len(ks) > MAX_TARGETS_PER_ORGAN}
    if len(targets) <= MAX_TARGETS and not crowded:
        return dict(lesions)
    if select is None:
        if len(targets) > MAX_TARGETS:
            what = f"{len(targets)} target lesions ({', '.join(targets)}); at most {MAX_TARGETS}"
            lesion = targets[MAX_TARGETS]
        else:
            organ, ks = next(iter(crowded.items()))
            what = f"{len(ks)} target lesions in organ {organ!r} ({', '.join(ks)}); at most {MAX_TARGETS_PER_ORGAN}"
            lesion = ks[MAX_TARGETS_PER_ORGAN]
        raise TrialDataError(f"patient {patient_id!r}, lesion {lesion!r}, visit day 0: {what} are allowed (RECIST "
                             f"1.1 section 4.2); fix: set is_target false for the extra lesions, or select the "
                             f"largest automatically (select='largest', --select-targets largest)")
    for k in targets:
        if baseline_mm.get(k) is None:
            raise TrialDataError(f"patient {patient_id!r}, lesion {k!r}, visit day 0: no baseline diameter to rank "
                                 f"target lesions by; fix: write the baseline diameter_mm")
    ranked = sorted(targets, key=lambda k: (-baseline_mm[k], k))
    kept: list[str] = []
    count: dict[str, int] = {}
    for k in ranked:
        organ = lesions[k].organ
        if len(kept) < MAX_TARGETS and count.get(organ, 0) < MAX_TARGETS_PER_ORGAN:
            kept.append(k)
            count[organ] = count.get(organ, 0) + 1
    return {k: (les if not les.is_target or k in kept else replace(les, is_target=False))
            for k, les in lesions.items()}
