"""RECIST 1.1 time-point rules (Eisenhauer et al., Eur J Cancer 2009;45:228-247), at every threshold edge.

The inputs are built from the answer: a sum exactly 30 % below baseline, exactly 20 % and
5 mm above the nadir, and so on. Some edges are chosen where IEEE doubles land on the wrong
side (10.1 -> 7.07 is exactly -30 %, but ``(10.1 - 7.07) / 10.1 < 0.3`` in floating point).
"""

from __future__ import annotations

import pytest

from sfrt_engine.trial.measurements import parse_measurements
from sfrt_engine.trial.recist import overall_response, recist_timepoints


def _responses(table, patient="P1"):
    return [(tp.target, tp.overall) for tp in recist_timepoints(parse_measurements(table.frame())[patient])]


@pytest.mark.parametrize(("baseline", "follow_up", "expected"), [
    ("100", "70", "PR"),        # exactly -30 %: meets PR (section 4.3.1 "at least a 30 % decrease")
    ("100", "70.1", "SD"),      # -29.9 %
    ("100", "70.0", "PR"),      # written with a trailing zero
    ("10.1", "7.07", "PR"),     # exactly -30 %; float arithmetic says -29.999999999999993 %
    ("33.3", "23.31", "PR"),    # exactly -30 %; 1 - 23.31/33.3 = 0.29999999999999993 in doubles
    ("12.3", "8.62", "SD"),     # -29.918... %
])
def test_partial_response_edge(table, baseline, follow_up, expected):
    assert (10.1 - 7.07) / 10.1 < 0.3  # the trap the exact arithmetic avoids
    table.series("P1", [baseline, follow_up])
    assert _responses(table) == [(expected, expected)]


@pytest.mark.parametrize(("nadir", "now", "expected"), [
    ("25", "30", "PD"),        # +20 % and +5 mm: both met exactly
    ("20", "24", "SD"),        # +20 % but only +4 mm: not PD
    ("25", "29.9", "SD"),      # +19.6 %, +4.9 mm
    ("30", "35", "SD"),        # +5 mm but +16.7 %
    ("27.1", "32.52", "PD"),   # exactly +20 % (32.52 = 1.2 x 27.1) and +5.42 mm
    ("24.5", "29.4", "SD"),    # exactly +20 % but 4.9 mm
    ("29", "34.8", "PD"),      # exactly +20 %, +5.8 mm; (34.8 - 29) / 29 = 0.1999999999999999 in doubles
])
def test_progression_edge_uses_nadir(table, nadir, now, expected):
    # baseline 40 mm, then the nadir, then the visit under test; PR/SD at the nadir visit does not matter
    table.series("P1", ["40", nadir, now])
    target, overall = _responses(table)[1]
    if expected == "SD":
        # not PD; PR/SD by the baseline rule (now/40)
        assert target in ("SD", "PR") and overall == target
    else:
        assert (target, overall) == ("PD", "PD")


def test_nadir_is_smallest_previous_complete_sum(table):
    # 100 -> 60 (PR) -> 50 (PR, new nadir) -> 62 (+24 % and +12 mm over 50: PD although 38 % below baseline)
    table.series("P1", ["100", "60", "50", "62"])
    assert [t for t, _ in _responses(table)] == ["PR", "PR", "PD"]


def test_complete_response_and_nodes(table):
    # a node counts by its short axis; CR when every target node is < 10 mm and the other targets are gone
    table.add("P1", "L1", 0, "50").add("P1", "N1", 0, "20", node=True, organ="node")
    table.add("P1", "L1", 90, "0").add("P1", "N1", 90, "9.9", node=True, organ="node")
    table.add("P1", "L1", 180, "0").add("P1", "N1", 180, "10", node=True, organ="node")
    responses = _responses(table)
    assert responses[0] == ("CR", "CR")        # 9.9 mm node: normal
    assert responses[1] == ("PR", "PR")        # 10 mm node: not normal; sum 10 vs 70 is -85.7 %


def test_missing_target_is_ne_unless_progression_is_certain(table):
    table.add("P1", "L1", 0, "30").add("P1", "L2", 0, "20", organ="lung")
    table.add("P1", "L1", 90, "20")                      # L2 not assessed: NE (section 4.4.2)
    table.add("P1", "L1", 180, "61")                     # L2 missing, but 61 >= 1.2 x 50 and +11 mm: PD
    assert _responses(table) == [("NE", "NE"), ("PD", "PD")]


def test_new_lesion_and_nontarget_progression_are_pd(table):
    table.series("P1", ["100", "50", "50"], days=[0, 90, 180])
    table.rows[1]["new_lesion"] = "true"
    table.rows[2]["nontarget_progression"] = "true"
    assert _responses(table) == [("PR", "PD"), ("PR", "PD")]


def test_nontarget_lesions_decide_between_cr_and_pr(table):
    table.add("P1", "L1", 0, "50").add("P1", "NT1", 0, "8", target=False, organ="lung")
    table.add("P1", "L1", 90, "0").add("P1", "NT1", 90, "0", target=False, organ="lung")
    table.add("P1", "L1", 180, "0").add("P1", "NT1", 180, "", target=False, organ="lung")
    assert _responses(table) == [("CR", "CR"), ("CR", "PR")]   # non-target not shown gone: Table 1 CR + NE = PR


@pytest.mark.parametrize(("target", "nontarget", "new", "expected"), [
    ("CR", "CR", False, "CR"), ("CR", "none", False, "CR"), ("CR", "non-CR/non-PD", False, "PR"),
    ("PR", "non-CR/non-PD", False, "PR"), ("SD", "none", False, "SD"), ("NE", "none", False, "NE"),
    ("PD", "none", False, "PD"), ("SD", "PD", False, "PD"), ("CR", "CR", True, "PD"), ("NE", "none", True, "PD"),
])
def test_table_1(target, nontarget, new, expected):
    assert overall_response(target, nontarget, new) == expected
