"""Reading the measurement and arms tables: CSV and Parquet, exact values, and every bad input named."""

from __future__ import annotations

from fractions import Fraction

import pytest

from sfrt_engine.errors import TrialDataError
from sfrt_engine.trial import assess, load_measurements, parse_arms, parse_measurements


def _error(table, **kw) -> str:
    with pytest.raises(TrialDataError) as info:
        parse_measurements(table.frame(), **kw)
    return str(info.value)


def test_csv_and_parquet_give_the_same_exact_values(table, tmp_path):
    table.series("P1", ["33.3", "23.31"], densities=["45.3", "38.505"])
    frame = table.frame()
    frame["extra"] = "ignored"
    frame.to_csv(tmp_path / "m.csv", index=False)
    typed = frame.astype({"visit_day": int, "diameter_mm": float, "density_hu": float})
    typed["is_target"] = True
    typed["is_node"] = False
    typed["new_lesion"] = False
    typed["nontarget_progression"] = False
    typed.to_parquet(tmp_path / "m.parquet")
    for path in (tmp_path / "m.csv", tmp_path / "m.parquet"):
        p1 = load_measurements(path)["P1"]
        assert p1.visits[1].diameter_mm["L1"] == Fraction(2331, 100)
        assert p1.visits[1].density_hu["L1"] == Fraction(38505, 1000)


def test_missing_baseline(table):
    table.add("P7", "L1", 90, "50")
    msg = _error(table)
    assert "patient 'P7'" in msg and "visit day 90" in msg and "missing baseline" in msg and "fix:" in msg


def test_lesion_without_baseline(table):
    table.series("P1", ["50", "40"]).add("P1", "L9", 90, "12")
    msg = _error(table)
    assert "lesion 'L9'" in msg and "missing baseline" in msg and "new_lesion" in msg


def test_visit_before_baseline(table):
    table.series("P1", ["50", "40"]).add("P1", "L1", -7, "52")
    msg = _error(table)
    assert "patient 'P1', lesion 'L1', visit day -7" in msg and "before baseline" in msg


@pytest.mark.parametrize(("value", "words"), [("-3", "diameter_mm is -3"), ("", "diameter_mm is missing"),
                                              ("abc", "not a number")])
def test_bad_diameters(table, value, words):
    table.series("P1", ["50", value])
    msg = _error(table)
    assert "patient 'P1', lesion 'L1', visit day 90" in msg and words in msg and "fix" in msg


def test_duplicate_rows(table):
    table.series("P1", ["50", "40"]).add("P1", "L1", 90, "41")
    msg = _error(table)
    assert "patient 'P1', lesion 'L1', visit day 90: duplicate row" in msg


def test_more_than_five_targets_without_selection(table):
    for i in range(6):
        table.add("P1", f"L{i}", 0, str(20 + i), organ=f"organ{i}")
    msg = _error(table)
    assert "6 target lesions" in msg and "at most 5" in msg and "select" in msg and "visit day 0" in msg


def test_more_than_two_per_organ_without_selection(table):
    for i in range(3):
        table.add("P1", f"L{i}", 0, str(20 + i), organ="lung")
    assert "in organ 'lung'" in _error(table)


def test_largest_selection_keeps_five_and_two_per_organ(table):
    sizes = {"A": ("lung", 30), "B": ("lung", 40), "C": ("lung", 50), "D": ("liver", 25), "E": ("liver", 12),
             "F": ("bone", 60), "G": ("skin", 11)}
    for lid, (organ, size) in sizes.items():
        table.add("P1", lid, 0, str(size), organ=organ)
    patient = parse_measurements(table.frame(), select="largest")["P1"]
    # ranked: F60 C50 B40 (lung 2nd) A30 (3rd lung: dropped) D25 E12 -> F, C, B, D, E
    assert sorted(patient.targets) == ["B", "C", "D", "E", "F"]
    assert not patient.lesions["A"].is_target and not patient.lesions["G"].is_target


def test_target_must_be_measurable(table):
    table.series("P1", ["9.9", "9"])
    assert "below 10 mm" in _error(table)
    node = type(table)()
    node.add("P2", "N1", 0, "14.9", node=True)
    assert "below 15 mm" in _error(node)


def test_density_missing_for_choi(table):
    table.series("P1", ["50", "40", "30"], densities=["40", "", "35"])
    msg = _error(table)
    assert "patient 'P1', lesion 'L1', visit day 90: density_hu missing for Choi" in msg


def test_nonpositive_baseline_density(table):
    table.series("P1", ["50", "40"], densities=["-80", "-85"])
    assert "positive baseline density" in _error(table)


def test_visit_flags_must_agree(table):
    table.add("P1", "L1", 0, "50").add("P1", "L2", 0, "30", organ="lung")
    table.add("P1", "L1", 90, "50", new=True).add("P1", "L2", 90, "30", organ="lung", new=False)
    assert "visit-level flags" in _error(table)


def test_patient_not_in_arms(table, arms_frame):
    table.series("P1", ["50", "40"]).series("P2", ["50", "40"])
    measured = parse_measurements(table.frame())
    arms = parse_arms(arms_frame({"P1": "SFRT", "P9": "CRT"}))
    with pytest.raises(TrialDataError, match="patient 'P2': in the measurement table but not in the arms table"):
        assess(measured, arms)


@pytest.mark.parametrize(("mapping", "words"), [
    ({"P1": "SFRT"}, "expected exactly two"),
    ({"P1": "CRT", "P2": "XRT"}, "no patient in the experimental arm 'SFRT'"),
    ({"P1": "SFRT", "P2": "CRT", "P3": "IMRT"}, "3 arm(s)"),
])
def test_bad_arms(arms_frame, mapping, words):
    with pytest.raises(TrialDataError) as info:
        parse_arms(arms_frame(mapping))
    assert words in str(info.value)


def test_randomised_patient_without_measurements_is_ne(table, arms_frame):
    table.series("P1", ["50", "30"])
    result = assess(parse_measurements(table.frame()), parse_arms(arms_frame({"P1": "SFRT", "P2": "CRT"})))
    row = result.patients.set_index("patient_id").loc["P2"]
    assert row["bor_recist"] == "NE" and row["pfs_time_days"] == 0 and not row["pfs_event"]
