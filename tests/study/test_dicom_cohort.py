"""A DICOM cohort: case folders from a glob, a per-case target override, prepared by cases.prepare_dicom_case.

The job's rows must equal what the library gives when the same case is prepared and evaluated by
hand (prepare_dicom_case, compare.prepare, study.evaluate_schedules), so the study wiring (target,
avoid, alpha/beta merge, columns) adds nothing of its own to the numbers.
"""

from __future__ import annotations

import pytest

import sfrt_engine as se
from sfrt_engine.cases import prepare_dicom_case
from sfrt_engine.compare import ComparisonSettings, prepare
from sfrt_engine.study import SerialRunner, evaluate_schedules, load_study, read_results, run

STUDY = """\
[study]
backend = "cpp"
[[cohort.dicom]]
cases = "cases/*"
avoid = ["FEMUR", "SKIN"]
alpha_beta_gy = { SKIN = 2.5 }
[cohort.overrides.SARC-2]
target = "TUMOUR"
[schedules]
vertex_dose_gy = [12.0]
vertex_sessions = [3]
crt_fractions = [18]
boost_mode = ["separate"]
[alpha_beta]
gtv10 = { GTV = 10.0 }
"""


@pytest.mark.slow
def test_dicom_cohort_rows_equal_the_library_by_hand(tmp_path):
    ok, reason = se.available_backends()["cpp"]
    if not ok:
        pytest.skip(f"cpp backend unavailable: {reason}")
    for name, roi in (("SARC-1", "GTV"), ("SARC-2", "TUMOUR")):
        patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)
        patient.name = name
        patient.structures[roi] = patient.structures["GTV"]
        se.io.write_ct(tmp_path / "cases" / name.lower(), patient)
        se.io.write_rtstruct(tmp_path / "cases" / name.lower() / "RS.dcm", patient, names=(roi, "BODY", "FEMUR", "SKIN"))
    (tmp_path / "study.toml").write_text(STUDY)
    study = load_study(tmp_path / "study.toml")
    summary = run(study, SerialRunner(), progress=False)
    assert (summary.done, summary.failed) == (2, 0)
    rows = read_results(study.output).to_pylist()
    assert [r["patient_id"] for r in rows] == ["SARC-1", "SARC-1", "SARC-2", "SARC-2"]

    case = prepare_dicom_case(tmp_path / "cases" / "sarc-2", "TUMOUR")
    prepared = prepare(case, ComparisonSettings(backend="cpp", avoid=("FEMUR", "SKIN"), target="TUMOUR"))
    expected = evaluate_schedules(prepared, vertex_dose_gy=12.0, vertex_sessions=3, crt_fractions=18,
                                  boost_mode="separate", alpha_beta_gy={"SKIN": 2.5, "GTV": 10.0})
    for got, want in zip(rows[2:], expected):
        assert got["n_vertices"] == prepared.vertices.count
        for key, value in want.items():
            assert got[key] == value, key
