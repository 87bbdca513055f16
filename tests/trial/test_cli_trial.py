"""``sfrt trial``: sample size, the synthetic example and the response report, end to end."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from sfrt_engine.cli import main
from sfrt_engine.errors import OutputError
from sfrt_engine.trial.example import N_PATIENTS, generate_cohort


def test_sample_size_reproduces_the_protocol(capsys):
    rc = main(["trial", "sample-size", "--p-control", "0.15", "--p-experimental", "0.40", "--alpha", "0.05",
               "--one-sided", "--power", "0.8", "--dropout", "0.10", "--n-sim", "2000"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "per arm before drop-out: 47" in out
    assert "per arm after 10 % drop-out: 53" in out and "total 106" in out
    assert "Fleiss, Tytun & Ury" in out and "uncorrected (Fleiss) 39" in out and "arcsine (Cohen's h) 38" in out
    assert "Monte Carlo" in out and "seed" in out


def test_sample_size_bad_value_exits_2(capsys):
    rc = main(["trial", "sample-size", "--p-control", "0.4", "--p-experimental", "0.4"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "no difference to detect" in err


def test_example_cohort_is_synthetic_and_reproducible():
    meas, arms, _tox, dosi = generate_cohort()
    assert len(arms) == N_PATIENTS == 106 and arms["arm"].value_counts().to_dict() == {"SFRT": 53, "CRT": 53}
    assert set(meas["source"]) == {"synthetic"} and set(arms["source"]) == {"synthetic"}
    again = generate_cohort()[0]
    pd.testing.assert_frame_equal(meas, again)
    assert set(dosi["arm"]) == {"SFRT", "CRT"} and len(dosi) == 2 * N_PATIENTS


@pytest.mark.slow
def test_example_then_response_writes_the_report(tmp_path, capsys):
    ex = tmp_path / "example"
    assert main(["trial", "example", "--out", str(ex)]) == 0
    assert "SYNTHETIC" in (ex / "README.md").read_text() and "SYNTHETIC" in capsys.readouterr().out
    out = tmp_path / "results"
    rc = main(["trial", "response", str(ex / "measurements.csv"), "--arms", str(ex / "arms.csv"), "--out", str(out),
               "--toxicity", str(ex / "toxicity.csv"), "--dosimetry", str(ex / "dosimetry.parquet")])
    printed = capsys.readouterr().out
    assert rc == 0 and "recist    best" in printed and "local_control" in printed
    names = {p.name for p in out.iterdir()}
    assert {"per_visit.csv", "per_patient.csv", "orr.csv", "orr_comparison.csv", "survival.csv", "toxicity.csv",
            "toxicity_per_patient.csv",
            "dose_response.csv", "endpoints.json", "waterfall.png", "spider.png", "km.png", "dose_response.png",
            "manifest.json"} <= names
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    for entry in manifest:
        assert hashlib.sha256((out / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]
    endpoints = json.loads((out / "endpoints.json").read_text())
    best = [r for r in endpoints["orr"] if r["criterion"] == "recist" and r["timepoint"] == "best"]
    assert sum(r["n"] for r in best) == 106
    assert {r["metric"]: r["n"] for r in endpoints["dose_response"]}["geud_gy"] == 106   # each patient's own arm
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temporary folder left behind


def test_bad_input_exits_2_and_keeps_the_earlier_results(tmp_path, capsys, table, arms_frame):
    table.series("P1", ["50", "35"]).series("P2", ["60", "58"])
    table.frame().to_csv(tmp_path / "m.csv", index=False)
    arms_frame({"P1": "SFRT", "P2": "CRT"}).to_csv(tmp_path / "arms.csv", index=False)
    out = tmp_path / "res"
    assert main(["trial", "response", str(tmp_path / "m.csv"), "--arms", str(tmp_path / "arms.csv"), "--out",
                 str(out), "--no-plots"]) == 0
    before = (out / "per_patient.csv").read_text()
    capsys.readouterr()
    table.add("P2", "L1", 90, "-1")                       # a duplicate row with a negative diameter
    table.frame().to_csv(tmp_path / "m.csv", index=False)
    rc = main(["trial", "response", str(tmp_path / "m.csv"), "--arms", str(tmp_path / "arms.csv"), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "patient 'P2', lesion 'L1', visit day 90" in err and "fix" in err
    assert (out / "per_patient.csv").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_patient_missing_from_arms_exits_2(tmp_path, capsys, table, arms_frame):
    table.series("P1", ["50", "35"]).series("P2", ["60", "58"])
    table.frame().to_csv(tmp_path / "m.csv", index=False)
    arms_frame({"P1": "SFRT", "P3": "CRT"}).to_csv(tmp_path / "arms.csv", index=False)
    rc = main(["trial", "response", str(tmp_path / "m.csv"), "--arms", str(tmp_path / "arms.csv"), "--out",
               str(tmp_path / "res")])
    err = capsys.readouterr().err
    assert rc == 2 and "patient 'P2'" in err and "not in the arms table" in err
    assert not (tmp_path / "res").exists()


def test_result_folder_is_replaced_as_a_whole(tmp_path):
    from sfrt_engine.trial._output import atomic_folder

    out = tmp_path / "res"
    with atomic_folder(out) as tmp:
        (tmp / "a.csv").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(out) as tmp:
        (tmp / "a.csv").write_text("new, half-written")
        raise RuntimeError("a failure while writing")
    assert (out / "a.csv").read_text() == "old"
    with atomic_folder(out) as tmp:
        (tmp / "b.csv").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["b.csv", "manifest.json"]   # nothing of the old set left
    assert [p.name for p in tmp_path.iterdir()] == ["res"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("mine")
    with pytest.raises(OutputError, match="not an sfrt result set"), atomic_folder(mine):
        pass  # a folder of the user's own is never replaced
    assert (mine / "thesis.tex").read_text() == "mine"
