"""The VMAT and IMPT techniques plug into the SFRT vs CRT comparison unchanged."""

from __future__ import annotations

import dataclasses

import pytest

import sfrt_engine as se
from sfrt_engine.compare import ComparisonSettings, run_comparison
from sfrt_engine.optimise import default_goals
from sfrt_engine.plan.techniques import Technique, available_techniques, get_technique


def test_every_technique_is_registered_and_satisfies_the_protocol():
    assert {"imrt", "3dcrt", "vmat", "impt"} <= set(available_techniques())
    for name in ("imrt", "3dcrt", "vmat", "impt"):
        assert isinstance(get_technique(name), Technique)


def test_unknown_technique_lists_the_known_ones():
    with pytest.raises(se.PlanError, match="imrt"):
        get_technique("tomotherapy")


@pytest.mark.slow
@pytest.mark.parametrize("technique,options", [("vmat", {"spacing_deg": 15.0}), ("impt", {})])
def test_comparison_runs_with_technique(technique, options):
    # 5 mm, a coarse arc and few iterations keep this short on 2 cores; the checks do not depend on resolution
    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)
    goals = dataclasses.replace(default_goals(), max_iterations={"crt": 4, "boost": 4})
    result = run_comparison(patient, ComparisonSettings(technique=technique, backend="cpp", goals=goals,
                                                        technique_options=options))
    arms = result.report["arms"]
    assert result.report["settings"]["technique"] == technique
    # CRT normalisation: PTV D95 = 3 Gy per fraction, 20 fractions (percentile of the same voxels: exact)
    assert arms["CRT"]["structures"]["PTV"]["physical"]["d95_gy"] == pytest.approx(60.0, rel=1e-9)
    # the integrated boost brings the vertex mean of each vertex session to 12 Gy
    sfrt_peak = arms["SFRT"]["sfrt_metrics"]["peak_gy"]
    crt_peak = arms["CRT"]["sfrt_metrics"]["peak_gy"]
    assert sfrt_peak == pytest.approx(crt_peak * 16 / 20 + 4 * 12.0, rel=1e-9)
    assert arms["SFRT"]["sfrt_metrics"]["pvdr"] > arms["CRT"]["sfrt_metrics"]["pvdr"] + 0.1
    opt = result.report["arms"]["SFRT"]["optimisation"]
    assert all(rec is not None and rec["iterations"] >= 1 for rec in opt.values())
    if technique == "vmat":  # deliverable: the sequenced arcs keep leaf travel within the machine's limit
        for rec in opt.values():
            assert rec["max_leaf_travel_mm_per_deg"] <= rec["leaf_travel_limit_mm_per_deg"] + 1e-9
