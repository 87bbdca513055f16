"""Goal files: the default set loads, and every kind of bad file is a clear error naming the fix."""

from __future__ import annotations

import numpy as np
import pytest

from sfrt_engine.errors import PlanError, StructureError
from sfrt_engine.optimise import DvhMin, MaxDose, default_goals, goals_from_dict, load_goals


def _goal(**kw):
    base = {"type": "dvh_min", "structure": "PTV", "dose_pct": 100.0, "volume_pct": 95.0}
    base.update(kw)
    return {"crt": {"goal": [{k: v for k, v in base.items() if v is not None}]}}


def test_default_goals_cover_both_components():
    g = default_goals()
    assert set(g.goals) == {"crt", "boost"}
    assert {"PTV", "FEMUR", "SKIN"} <= g.structures("crt")
    assert {"VERTICES", "VALLEY", "FEMUR", "SKIN"} <= g.structures("boost")
    crt = g.objectives("crt", 3.0)
    d95 = next(o for o in crt if isinstance(o, DvhMin) and o.structure == "PTV")
    assert d95.dose_gy == pytest.approx(3.0) and d95.volume_pct == 95.0
    boost = g.objectives("boost", 12.0)
    femur = next(o for o in boost if isinstance(o, MaxDose) and o.structure == "FEMUR")
    assert femur.dose_gy == pytest.approx(0.25 * 12.0)  # 25 % of the vertex dose, as the file says


def test_percent_and_gray_doses():
    g = goals_from_dict(_goal(dose_pct=None, dose_gy=2.5))
    assert g.objectives("crt", 3.0)[0].dose_gy == 2.5
    g = goals_from_dict(_goal(dose_pct=90.0))
    assert g.objectives("crt", 3.0)[0].dose_gy == pytest.approx(2.7)


@pytest.mark.parametrize("data,match", [
    (_goal(colour="red"), "unknown key 'colour'"),
    (_goal(dose_pct=None, dose_cgy=300.0), "'dose_cgy' has no unit this goal accepts; expected dose_gy or dose_pct"),
    (_goal(dose_pct=None, dose=3.0), "'dose' has no unit"),
    (_goal(dose_pct=None), "missing dose_gy"),
    (_goal(dose_gy=3.0), "both dose_gy and dose_pct"),
    (_goal(type="dvh_minimum"), "type='dvh_minimum'; expected one of"),
    (_goal(structure=""), "structure=''"),
    (_goal(volume_pct=120.0), "volume_pct=120.0"),
    (_goal(weight=-1.0), "weight=-1.0"),
    (_goal(dose_pct="high"), "dose_pct='high'"),
    ({"crt": {"goal": []}}, r"no \[\[crt.goal\]\]"),
    ({"crt": {"max_iterations": 0, "goal": _goal()["crt"]["goal"]}}, "max_iterations=0"),
    ({"crt": {"iterations": 5, "goal": _goal()["crt"]["goal"]}}, "unknown key.*'iterations'"),
    ({"ctr": {}}, "unknown table.*'ctr'"),
    ({}, "no \\[crt\\] or \\[boost\\]"),
])
def test_bad_goal_sets(data, match):
    with pytest.raises(PlanError, match=match):
        goals_from_dict(data, "test.toml")


def test_goal_file_errors(tmp_path):
    with pytest.raises(PlanError, match="does not exist"):
        load_goals(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[crt\n")
    with pytest.raises(PlanError, match="not valid TOML"):
        load_goals(bad)
    good = tmp_path / "good.toml"
    good.write_text('[boost]\n[[boost.goal]]\ntype = "valley"\nstructure = "VALLEY"\nmax_ratio = 0.25\n')
    g = load_goals(good)
    assert g.objectives("boost", 12.0)[0].max_ratio == 0.25
    with pytest.raises(PlanError, match="no goals for component 'crt'"):
        g.objectives("crt", 3.0)


def test_structures_are_checked():
    g = default_goals()
    masks = {"PTV": np.ones(4, bool), "FEMUR": np.ones(4, bool), "SKIN": np.ones(4, bool)}
    with pytest.raises(StructureError, match="'NORMAL_TISSUE' does not exist"):
        g.check_structures("crt", masks)
    masks["NORMAL_TISSUE"] = np.zeros(4, bool)
    with pytest.raises(StructureError, match="'NORMAL_TISSUE' is empty"):
        g.check_structures("crt", masks)
    masks["NORMAL_TISSUE"][0] = True
    g.check_structures("crt", masks)
    g.check_structures("boost", masks, extra=("VERTICES", "VALLEY"))  # placed later
