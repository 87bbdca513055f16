"""Best overall response, RECIST 1.1 section 4.4.3 (Table 3 with confirmation)."""

from __future__ import annotations

import pytest

from sfrt_engine.trial.best_response import best_overall_response


@pytest.mark.parametrize(("points", "expected"), [
    ([(90, "PR"), (180, "SD")], "PR"),
    ([(90, "SD"), (180, "CR")], "CR"),
    ([(90, "SD"), (180, "PD")], "SD"),
    ([(30, "SD"), (60, "PD")], "PD"),            # SD before the 42-day minimum does not count
    ([(30, "SD"), (60, "NE")], "NE"),
    ([(90, "PD"), (180, "PR")], "PD"),           # nothing after progression counts
    ([(180, "NE"), (90, "PR")], "PR"),           # order of the input does not matter
    ([], "NE"),
])
def test_unconfirmed(points, expected):
    assert best_overall_response(points) == expected


@pytest.mark.parametrize(("points", "expected"), [
    ([(90, "PR"), (118, "PR")], "PR"),           # confirmed exactly 28 days later
    ([(90, "PR"), (117, "PR")], "SD"),           # 27 days: not confirmed; SD (>= 42 days)
    ([(90, "CR"), (180, "CR")], "CR"),
    ([(90, "CR"), (180, "PR")], "PR"),           # Table 3 footnote a: first "CR" taken as PR
    ([(90, "PR"), (180, "CR")], "PR"),           # CR not confirmed, PR is
    ([(90, "PR"), (180, "SD")], "SD"),
    ([(90, "PR"), (180, "PD")], "SD"),
    ([(30, "PR"), (40, "PD")], "PD"),            # unconfirmed PR before the SD minimum, then PD
    ([(90, "PR"), (120, "PD"), (180, "PR")], "SD"),  # confirmation after PD does not count
])
def test_confirmed(points, expected):
    assert best_overall_response(points, confirm=True) == expected


def test_rejects_unknown_category():
    with pytest.raises(ValueError, match="time-point response 'XX'"):
        best_overall_response([(90, "XX")])
