"""Choi (J Clin Oncol 2007;25:1753-1759) and modified Choi (Stacchiotti et al., Cancer 2012;118:5857-5866)
at the 10 % size and 15 % density edges."""

from __future__ import annotations

import pytest

from sfrt_engine.trial.choi import choi_timepoints
from sfrt_engine.trial.measurements import parse_measurements


def _choi(table, patient="P1"):
    return [(c.choi, c.modified_choi) for c in choi_timepoints(parse_measurements(table.frame())[patient])]


@pytest.mark.parametrize(("size", "density", "choi", "mchoi"), [
    ("90", "100", "PR", "SD"),       # size exactly -10 %, density unchanged: Choi PR only
    ("90.1", "100", "SD", "SD"),     # size -9.9 %
    ("100", "85", "PR", "SD"),       # density exactly -15 %: Choi PR
    ("100", "85.1", "SD", "SD"),     # density -14.9 %
    ("90", "85", "PR", "PR"),        # both at their edges: modified Choi PR
    ("90.1", "85", "PR", "SD"),      # density alone: modified Choi needs size too
    ("90", "85.1", "PR", "SD"),      # size alone
])
def test_choi_edges(table, size, density, choi, mchoi):
    table.series("P1", ["100", size], densities=["100", density])
    assert _choi(table) == [(choi, mchoi)]


def test_density_edge_where_floats_fail(table):
    # 45.3 HU -> 38.505 HU is exactly -15 %; 1 - 38.505/45.3 = 0.14999999999999994 in doubles
    assert 1 - 38.505 / 45.3 < 0.15
    table.series("P1", ["100", "100"], densities=["45.3", "38.505"])
    assert _choi(table) == [("PR", "SD")]


def test_choi_progression_from_nadir_unless_density_responds(table):
    # 100 -> 80 (PR) -> 88 (+10 % over the nadir 80: PD) ; density unchanged
    table.series("P1", ["100", "80", "88"], densities=["50", "50", "50"])
    assert [c for c, _ in _choi(table)] == ["PR", "PD"]


def test_choi_growth_with_density_response_is_not_pd(table):
    # +10 % in size but density -20 %: Choi PD needs growth that "does not meet the criteria of PR by tumor
    # density", so Choi gives PR; modified Choi keeps Choi's PD rule but needs size to fall for PR: SD
    table.series("P1", ["100", "110"], densities=["50", "40"])
    assert _choi(table) == [("PR", "SD")]


def test_choi_growth_just_below_edge(table):
    table.series("P1", ["100", "109.9"], densities=["50", "50"])
    assert _choi(table) == [("SD", "SD")]


def test_choi_complete_response_and_new_lesion(table):
    table.series("P1", ["60", "0", "0"], densities=["40", "", ""])   # a vanished lesion needs no density
    table.rows[2]["new_lesion"] = "true"
    assert _choi(table) == [("CR", "CR"), ("PD", "PD")]


def test_choi_not_assessed_without_densities(table):
    table.series("P1", ["100", "50"])
    assert choi_timepoints(parse_measurements(table.frame())["P1"]) is None
