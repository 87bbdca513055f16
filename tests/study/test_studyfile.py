"""Study files: the example loads as it is; every bad input is refused before any job, naming line and key."""

from __future__ import annotations

import pytest

import sfrt_engine as se
from sfrt_engine.errors import StudyFileError
from sfrt_engine.study import load_study

BASE = """\
[study]
name = "t"
backend = "cpp"
techniques = ["imrt"]

[cohort.synthetic]
n = 2
seed = 3
spacing_mm = 5.0

[schedules]
vertex_dose_gy = [10.0, 12.0]
vertex_sessions = [3]
crt_fractions = [20]
boost_mode = ["integrated"]
"""


def _write(tmp_path, text: str, name: str = "s.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _dicom_case(folder, name: str, spacing: float = 8.0):
    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=spacing)
    patient.name = name
    se.io.write_ct(folder, patient)
    se.io.write_rtstruct(folder / "RS.dcm", patient, names=("GTV", "BODY", "FEMUR", "SKIN"))
    return folder


def test_example_loads_and_paths_are_relative_to_the_file(tmp_path, monkeypatch):
    sub = tmp_path / "studies"
    sub.mkdir()
    path = _write(sub, se.study.example_study(), "example.toml")
    monkeypatch.chdir(tmp_path)  # the output folder does not depend on the working directory
    study = load_study("studies/example.toml")
    assert study.output == sub / "example_results"
    assert [c.patient_id for c in study.cases] == ["SYN001", "SYN002", "SYN003", "SYN004"]
    assert study.cases[0].source["spacing_mm"] == 5.0
    assert len(study.jobs()) == 4 and study.techniques == ("imrt",)
    assert study.schedules["vertex_dose_gy"] == [10.0, 15.0] and set(study.alpha_beta_sets) == {"defaults", "gtv10"}
    assert study.path == path.resolve()


def test_job_keys_follow_the_inputs(tmp_path):
    first = load_study(_write(tmp_path, BASE)).jobs()
    again = load_study(_write(tmp_path, BASE, "copy.toml")).jobs()
    assert [j.key for j in first] == [j.key for j in again]  # same inputs, same keys (and no dependence on path)
    changed = load_study(_write(tmp_path, BASE.replace("[10.0, 12.0]", "[10.0, 13.0]"), "c.toml")).jobs()
    assert not {j.key for j in first} & {j.key for j in changed}
    assert len({j.key for j in first}) == len(first)


@pytest.mark.parametrize("edit, line, pattern", [
    (("[cohort.synthetic]", "[cohort.synthetic]\nnumber = 3"), 7, r"cohort\.synthetic\.number: unknown key"),
    (("vertex_dose_gy = [10.0, 12.0]", "vertex_dose = [10.0]"), 12, r"did you mean 'vertex_dose_gy'"),
    (("spacing_mm = 5.0", 'spacing_mm = "5 mm"'), 9, (r"spacing_mm: '5 mm': expected a number in mm, not a string; "
                                                     r"write 5")),
    (("spacing_mm = 5.0", "spacing_mm = 8.0"), 9, r"8\.0: expected a number from 0\.5 to 5 in mm"),
    (("n = 2", "n = 2.5"), 7, r"cohort\.synthetic\.n: 2\.5: expected a whole number"),
    (("vertex_dose_gy = [10.0, 12.0]", "vertex_dose_gy = [1000.0]"), 12, r"expected 8 to 15 Gy.*cGy"),
    (("vertex_dose_gy = [10.0, 12.0]", "vertex_dose_gy = []"), 12, r"schedules\.vertex_dose_gy: empty list"),
    (("boost_mode = [\"integrated\"]", "boost_mode = []"), 15, r"schedules\.boost_mode: empty list"),
    (("vertex_sessions = [3]\ncrt_fractions = [20]", "vertex_sessions = [4]\ncrt_fractions = [15]"), 13,
     r"no schedule of the grid fits.*16 CRT fractions"),
    (("crt_fractions = [20]", "crt_fractions = [25]"), 14, r"crt_fractions=25: expected an integer from 15 to 20"),
    (('techniques = ["imrt"]', 'techniques = ["tomo"]'), 4, r"'tomo': not a technique"),
    (('backend = "cpp"', 'backend = "gpu"'), 3, r"study\.backend: 'gpu': expected one of auto, cuda"),
    (("[schedules]", "[lattice]\ndiameter_mm = 20.0\nspacing_mm = 10.0\n[schedules]"), 13, r"vertices would overlap"),
    (("[schedules]", "[alpha_beta]\nlow = { GTV = \"3 Gy\" }\n[schedules]"), 12, r"alpha_beta\.low\.GTV.*write 3"),
    (("[schedules]", "[alpha_beta]\nlow = { TUMOR = 3.0 }\n[schedules]"), 12,
     r"alpha_beta\.low\.TUMOR: not a structure of the synthetic patients"),
])
def test_bad_study_files_name_line_key_and_fix(tmp_path, edit, line, pattern):
    old, new = edit
    assert old in BASE
    path = _write(tmp_path, BASE.replace(old, new))
    with pytest.raises(StudyFileError, match=pattern) as info:
        load_study(path)
    assert str(info.value).startswith(f"{path}:{line}: "), str(info.value)


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(StudyFileError, match="does not exist.*sfrt study init"):
        load_study(tmp_path / "none.toml")
    with pytest.raises(StudyFileError, match="not valid TOML"):
        load_study(_write(tmp_path, "[study\nname = 1"))


def test_dicom_cohort_ids_overrides_and_bad_folders(tmp_path):
    cases = tmp_path / "cases"
    _dicom_case(cases / "a", "SARC-A")
    _dicom_case(cases / "b", "SARC-B")
    text = BASE.replace("[cohort.synthetic]\nn = 2\nseed = 3\nspacing_mm = 5.0\n", "")
    dicom = text + '\n[[cohort.dicom]]\ncases = "cases/*"\navoid = ["FEMUR"]\nalpha_beta_gy = { SKIN = 2.0 }\n' \
                   '[cohort.overrides.SARC-B]\ntarget = "GTV"\navoid = []\n'
    study = load_study(_write(tmp_path, dicom))
    assert [c.patient_id for c in study.cases] == ["SARC-A", "SARC-B"]
    assert study.cases[0].avoid == ("FEMUR",) and study.cases[1].avoid == ()
    assert study.cases[0].alpha_beta_gy == {"SKIN": 2.0}

    def refused(body: str, pattern: str, line: int):
        path = _write(tmp_path, text + body, "bad.toml")
        with pytest.raises(StudyFileError, match=pattern) as info:
            load_study(path)
        assert str(info.value).startswith(f"{path}:{line}: "), str(info.value)

    n = text.count("\n")
    refused('\n[[cohort.dicom]]\ncases = "cases/missing"\n', r"case folder '.*missing' does not exist", n + 3)
    refused('\n[[cohort.dicom]]\ncases = "nowhere/*"\n', r"matches no folder", n + 3)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    refused('\n[[cohort.dicom]]\ncases = "empty"\n', r"has no CT image \(1 files, no DICOM file there\)", n + 3)
    _dicom_case(tmp_path / "again" / "a", "SARC-A")
    refused('\n[[cohort.dicom]]\ncases = ["cases/*", "again/a"]\n', r"duplicate patient ID 'SARC-A'", n + 3)
    refused('\n[[cohort.dicom]]\ncases = "cases/*"\n[cohort.overrides.SARC-Z]\ntarget = "GTV"\n',
            r"no patient 'SARC-Z' in the cohort", n + 4)
