"""Exact arithmetic for response thresholds.

Response criteria compare percentage changes with fixed thresholds (RECIST 1.1: -30 %,
+20 % and +5 mm; Choi: -10 %, -15 %, +10 %). A measured value sits exactly on a threshold
often enough (a 100 mm lesion measured at 70 mm), and binary floating point puts such a
value on either side at random: ``1 - 23.31 / 33.3`` is ``0.29999999999999993`` in
IEEE doubles although the decrease is exactly 30 %.

So every measured value is read as the decimal number written in the table and kept as
an exact rational (:class:`fractions.Fraction`). A CSV cell ``"23.31"`` is the rational
2331/100. A binary float (from Parquet) is taken as its shortest round-trip decimal
representation (``repr``), i.e. the decimal number the writer most likely meant; this is
the documented tolerance of the method: values are exact to the digits stored. All
threshold comparisons are then exact.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from fractions import Fraction

__all__ = ["as_float", "at_least", "at_most", "relative_change", "to_exact"]


def to_exact(value) -> Fraction | None:
    """A measured value as an exact rational, or None when the cell is empty.

    Parameters
    ----------
    value : str, int, float, Decimal, Fraction or None
        ``""``, ``None`` and NaN mean "empty".

    Raises
    ------
    ValueError
        The value is not a finite number (the caller names the row).
    TypeError
        A truth value was given.
    """
    if value is None:
        return None
    if isinstance(value, Fraction):
        return value
    if isinstance(value, bool):
        raise TypeError(f"{value!r} is a truth value, not a number")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            raise ValueError(f"{value!r} is not finite")
        return Fraction(Decimal(repr(value)))
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        return to_exact(value.item())
    text = str(value).strip()
    if text == "" or text.lower() in ("nan", "na", "none", "null"):
        return None
    try:
        dec = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not dec.is_finite():
        raise ValueError(f"{text!r} is not finite")
    return Fraction(dec)


def relative_change(value: Fraction, reference: Fraction) -> Fraction:
    """Exact relative change ``(value - reference) / reference`` (dimensionless; -0.3 is -30 %)."""
    if reference == 0:
        raise ZeroDivisionError("relative change from a zero reference")
    return (value - reference) / reference


def at_most(change: Fraction, percent) -> bool:
    """``change <= percent / 100`` exactly (``percent`` given as int or decimal string, e.g. -30)."""
    return change <= Fraction(Decimal(str(percent))) / 100


def at_least(change: Fraction, percent) -> bool:
    """``change >= percent / 100`` exactly."""
    return change >= Fraction(Decimal(str(percent))) / 100


def as_float(value: Fraction | None) -> float:
    """For tables and plots only (never for a threshold decision): NaN for None."""
    return float("nan") if value is None else float(value)
