"""Dose-response: joining the dosimetry by patient ID, and the logistic fit against an independent optimiser."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from sfrt_engine.errors import TrialDataError
from sfrt_engine.trial import parse_arms
from sfrt_engine.trial.dose_response import dose_response_table, fit_logistic, load_dosimetry


def test_logistic_fit_matches_direct_likelihood_maximisation():
    rng = np.random.default_rng(3)
    x = rng.uniform(60, 90, 200)
    y = (rng.random(200) < 1 / (1 + np.exp(-(-12 + 0.16 * x)))).astype(float)
    fit = fit_logistic(x, y, "geud_gy")

    def nll(b):
        eta = b[0] + b[1] * x
        return float(np.sum(np.logaddexp(0, eta) - y * eta))

    ref = minimize(nll, [0.0, 0.0], method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 40000})
    assert fit.b0 == pytest.approx(ref.x[0], rel=1e-4) and fit.b1 == pytest.approx(ref.x[1], rel=1e-4)
    # Wald interval from the observed information (inverse Hessian of the negative log-likelihood)
    p = 1 / (1 + np.exp(-(fit.b0 + fit.b1 * x)))
    w = p * (1 - p)
    info = np.array([[w.sum(), (w * x).sum()], [(w * x).sum(), (w * x * x).sum()]])
    se1 = math.sqrt(np.linalg.inv(info)[1, 1])
    assert fit.b1_ci[1] - fit.b1 == pytest.approx(1.959964 * se1, rel=1e-5)
    assert fit.d50 == pytest.approx(-fit.b0 / fit.b1)
    mid, low, high = fit.predict([fit.d50])
    assert mid[0] == pytest.approx(0.5) and low[0] < 0.5 < high[0]


def test_separated_responses_are_a_clear_error():
    with pytest.raises(TrialDataError, match="separated"):
        fit_logistic([60, 62, 64, 80, 82, 84], [0, 0, 0, 1, 1, 1], "geud_gy")
    with pytest.raises(TrialDataError, match="responders and non-responders"):
        fit_logistic([60, 62, 64], [0, 0, 0], "geud_gy")


@pytest.fixture
def arms(arms_frame):
    return parse_arms(arms_frame({"P1": "SFRT", "P2": "CRT", "P3": "SFRT"}))


def test_study_table_joins_the_randomised_arm(tmp_path, arms):
    rows = []
    for pid in ("P1", "P2", "P3", "OTHER"):
        for arm, geud in (("CRT", 70.0), ("SFRT", 80.0)):
            for dose in (8.0, 12.0):
                rows.append({"patient": pid, "arm": arm, "vertex_dose_gy": dose, "geud_gy": geud + dose / 10,
                             "eqd2_peak_gy": 100 + dose, "eqd2_valley_gy": 70.0, "pvdr": 1.5})
    pd.DataFrame(rows).to_parquet(tmp_path / "study.parquet")
    with pytest.raises(TrialDataError, match="patient 'P1' has 2 rows in arm 'SFRT'.*vertex_dose_gy"):
        load_dosimetry([tmp_path / "study.parquet"], arms)
    out = load_dosimetry([tmp_path / "study.parquet"], arms, {"vertex_dose_gy": "12"}).set_index("patient_id")
    assert out.loc["P1", "geud_gy"] == pytest.approx(81.2) and out.loc["P2", "geud_gy"] == pytest.approx(71.2)
    assert "OTHER" not in out.index


def test_report_json_files(tmp_path, arms):
    report = {"settings": {"patient": "phantom"},
              "arms": {a: {"sfrt_metrics": {"geud_gy": g, "pvdr": 1.7, "eqd2": {"peak_gy": 130.0, "valley_gy": 68.0}}}
                       for a, g in (("CRT", 70.0), ("SFRT", 79.0))}}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    with pytest.raises(TrialDataError, match="patient 'phantom' is not in the arms table"):
        load_dosimetry([path], arms)
    out = load_dosimetry([f"P1={path}", f"P2={path}"], arms).set_index("patient_id")
    assert out.loc["P1", "geud_gy"] == 79.0 and out.loc["P2", "geud_gy"] == 70.0
    assert out.loc["P1", "eqd2_valley_gy"] == 68.0


def test_dose_response_table_joins_by_patient_id():
    patients = pd.DataFrame({"patient_id": [f"P{i}" for i in range(8)], "arm": ["SFRT", "CRT"] * 4,
                             "bor_recist": ["PR", "SD", "SD", "PD", "CR", "SD", "PR", "PR"], "choi_assessed": True})
    dosi = pd.DataFrame({"patient_id": [f"P{i}" for i in range(8)][::-1], "arm": ["CRT", "SFRT"] * 4,
                         "geud_gy": [70, 71, 72, 73, 74, 75, 76, 77], "eqd2_peak_gy": np.nan,
                         "eqd2_valley_gy": np.nan, "pvdr": np.nan})
    joined, fits, table = dose_response_table(patients, dosi, metrics=("geud_gy", "pvdr"))
    assert dict(zip(joined["patient_id"], joined["geud_gy"]))["P0"] == 77
    assert dict(zip(joined["patient_id"], joined["responder"])) == {"P0": 1, "P1": 0, "P2": 0, "P3": 0, "P4": 1,
                                                                    "P5": 0, "P6": 1, "P7": 1}
    assert table.set_index("metric").loc["geud_gy", "n"] == 8
    assert isinstance(fits["pvdr"], str) and "0 patients" in fits["pvdr"]


def test_trial_package_imports_nothing_from_the_dose_engine():
    """DESIGN 10: trials are independent of dose; they join the dosimetry by patient ID only."""
    import ast
    from pathlib import Path

    from sfrt_engine import trial

    allowed = {"errors", "_files", "io.result_set"}  # the last writes result folders; it knows nothing of dose
    for path in Path(trial.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                assert (node.module or "") in allowed, f"{path.name} imports ..{node.module}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(n.startswith("sfrt_engine") for n in names), f"{path.name} imports {names}"
