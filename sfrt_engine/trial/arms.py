"""The randomisation table: ``patient_id`` and ``arm`` (optional ``death_day``).

The trial (NCT06980259) randomises 1:1 between two arms; the experimental arm is named by
an option (default ``SFRT``) and the other arm is the control (``CRT``). ``death_day``
(days from baseline, empty if alive) is optional; a death counts as a progression-free
survival event. Extra columns are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TrialDataError
from ._exact import to_exact
from .measurements import _text, read_table

__all__ = ["DEFAULT_EXPERIMENTAL_ARM", "Arms", "load_arms", "parse_arms"]

DEFAULT_EXPERIMENTAL_ARM = "SFRT"


@dataclass(frozen=True)
class Arms:
    """Arm per patient, in table order, and the two arm names (experimental first)."""

    arm: dict[str, str]
    death_day: dict[str, int | None]
    experimental: str
    control: str

    @property
    def names(self) -> tuple[str, str]:
        return (self.experimental, self.control)

    def patients(self, arm: str) -> list[str]:
        return [p for p, a in self.arm.items() if a == arm]


def load_arms(path, experimental_arm: str = DEFAULT_EXPERIMENTAL_ARM) -> Arms:
    """Read and validate the arms table (CSV or Parquet); see :func:`parse_arms`."""
    return parse_arms(read_table(path, "arms table"), experimental_arm)


def parse_arms(table, experimental_arm: str = DEFAULT_EXPERIMENTAL_ARM) -> Arms:
    """Validate the arms table.

    Raises
    ------
    TrialDataError
        Missing columns, an empty or duplicate patient ID, not exactly two arms, the
        experimental arm absent, or a bad ``death_day``.
    """
    for col in ("patient_id", "arm"):
        if col not in table.columns:
            raise TrialDataError(f"arms table: missing column {col!r}; expected columns patient_id, arm (optional "
                                 f"death_day); fix: add it to the header row")
    arm: dict[str, str] = {}
    death: dict[str, int | None] = {}
    has_death = "death_day" in table.columns
    for i, row in enumerate(table.to_dict("records")):
        pid, name = _text(row["patient_id"]), _text(row["arm"])
        if not pid or not name:
            raise TrialDataError(f"arms table, data row {i + 1}: empty patient_id or arm; fix: fill both in")
        if pid in arm:
            raise TrialDataError(f"arms table: patient {pid!r} is listed twice; fix: keep one row per patient")
        arm[pid] = name
        death[pid] = None
        if has_death:
            try:
                value = to_exact(row["death_day"])
            except ValueError:
                value = -1
            if value is not None and (value < 0 or value.denominator != 1):
                raise TrialDataError(f"arms table: patient {pid!r}: death_day is {row['death_day']!r}; expected "
                                     f"whole days from baseline or an empty cell")
            death[pid] = None if value is None else int(value)
    names = sorted(set(arm.values()))
    if experimental_arm not in names:
        raise TrialDataError(f"arms table: no patient in the experimental arm {experimental_arm!r}; arms found: "
                             f"{', '.join(names)}; fix: name the experimental arm (--experimental-arm)")
    if len(names) != 2:
        raise TrialDataError(f"arms table: {len(names)} arm(s) ({', '.join(names)}); expected exactly two, the "
                             f"experimental arm {experimental_arm!r} and one control arm; fix: correct the arm names")
    control = next(n for n in names if n != experimental_arm)
    return Arms(arm, death, experimental_arm, control)


def check_patients(measured: list[str], arms: Arms) -> None:
    """Every measured patient must be randomised (in the arms table)."""
    for pid in measured:
        if pid not in arms.arm:
            raise TrialDataError(f"patient {pid!r}: in the measurement table but not in the arms table; fix: add "
                                 f"the patient's arm to the arms table, or remove the patient's measurements")
