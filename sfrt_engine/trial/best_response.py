"""Best overall response over all time points, with or without confirmation.

Eisenhauer EA, et al. Eur J Cancer 2009;45:228-247 (RECIST 1.1), section 4.4.3 ("Best
overall response: all time points") and section 4.6.1 (confirmation: required where
response is the primary endpoint of a non-randomised trial, not required in randomised
trials). The same rules are applied to the Choi and modified Choi time points.

- Only time points up to and including the first PD count ("the best response recorded
  from the start of the study treatment until ... progression").
- Without confirmation: CR if any CR; else PR if any PR; else SD if an SD (or better) time
  point lies at least ``min_sd_days`` after baseline; else PD if PD was recorded; else NE.
- With confirmation (section 4.4.3, Table 3): CR needs a later CR at least
  ``confirm_days`` (4 weeks, section 4.6.1) after the first; PR needs a later PR or CR at
  least ``confirm_days`` later. CR followed by PR counts as PR (Table 3, footnote a: the
  first "CR" is taken as PR). An unconfirmed CR or PR counts as SD if it meets the SD
  minimum interval.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["CATEGORIES", "DEFAULT_CONFIRM_DAYS", "DEFAULT_MIN_SD_DAYS", "best_overall_response"]

#: Section 4.6.1: confirmation "no less than 4 weeks after the criteria for response are first met".
DEFAULT_CONFIRM_DAYS = 28
#: Section 4.4.3: SD must be met at least once after a protocol-defined interval, "in general, not
#: less than 6-8 weeks"; the lower end.
DEFAULT_MIN_SD_DAYS = 42
#: Order of the categories, best first.
CATEGORIES = ("CR", "PR", "SD", "PD", "NE")


def best_overall_response(timepoints: Sequence[tuple[int, str]], confirm: bool = False,
                          confirm_days: int = DEFAULT_CONFIRM_DAYS, min_sd_days: int = DEFAULT_MIN_SD_DAYS) -> str:
    """Best overall response from (visit day, response) pairs.

    Parameters
    ----------
    timepoints : sequence of (int, str)
        Follow-up visits in any order; day counted from baseline, response one of
        :data:`CATEGORIES`.
    confirm : bool
        Require confirmation of CR and PR (section 4.4.3, Table 3).
    confirm_days : int
        Minimum days between a response and its confirmation.
    min_sd_days : int
        Minimum days from baseline for SD to count.

    Returns
    -------
    str
        One of :data:`CATEGORIES`.
    """
    points = sorted(timepoints)
    for _, resp in points:
        if resp not in CATEGORIES:
            raise ValueError(f"time-point response {resp!r}: expected one of {', '.join(CATEGORIES)}")
    upto: list[tuple[int, str]] = []
    for day, resp in points:
        upto.append((day, resp))
        if resp == "PD":
            break
    responses = [r for _, r in upto]
    if not confirm:
        if "CR" in responses:
            return "CR"
        if "PR" in responses:
            return "PR"
    else:
        for i, (day, resp) in enumerate(upto):
            later = [r for d, r in upto[i + 1:] if d - day >= confirm_days]
            if resp == "CR" and "CR" in later:
                return "CR"
        for i, (day, resp) in enumerate(upto):
            later = [r for d, r in upto[i + 1:] if d - day >= confirm_days]
            if resp in ("CR", "PR") and ("CR" in later or "PR" in later):
                return "PR"
    if any(r in ("CR", "PR", "SD") and d >= min_sd_days for d, r in upto):
        return "SD"
    if "PD" in responses:
        return "PD"
    return "NE"
