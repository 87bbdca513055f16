"""The command line under bad input, interrupts and concurrent runs (issue: hardening).

One table drives every bad input through ``main()`` and checks the exit code, the one-line
message and what is left on disk. Interrupts and concurrent runs use real processes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sfrt_engine as se
from sfrt_engine.cli import SUBCOMMANDS, main
from sfrt_engine.io.result_set import read_manifest, verify

FAST = ["--spacing", "5", "--backend", "cpp"]
COMPARE_FAST = [*FAST, "--optimiser-iterations", "3"]


@pytest.fixture(scope="module", autouse=True)
def _cpp():
    ok, reason = se.available_backends()["cpp"]
    if not ok:
        pytest.skip(f"cpp backend unavailable: {reason}")


@pytest.fixture(scope="module")
def dicom_cases(tmp_path_factory):
    """A DICOM case (CT + RTSTRUCT with GTV_1, FEMUR), the same CT without RTSTRUCT, a folder with no DICOM."""
    root = tmp_path_factory.mktemp("dicom")
    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=8.0)
    patient.structures["GTV_1"] = patient.structures["GTV"]
    se.io.write_ct(root / "case", patient)
    se.io.write_rtstruct(root / "case" / "RS.dcm", patient, names=("GTV_1", "FEMUR"))
    se.io.write_ct(root / "no_rs", patient)
    (root / "nothing").mkdir()
    (root / "nothing" / "notes.txt").write_text("not DICOM")
    (root / "file.dcm").write_bytes(b"x")
    return root


def _readonly_place(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        return ro / "out"
    return Path("/sys/sfrt_out")  # root writes anywhere but into sysfs


# (arguments, message regex); {out}, {file}, {ro}, {dicom} are filled in per test. Every row exits 2
# with one line "sfrt: error: ..." and leaves no output folder and no temporary sibling.
BAD_INPUTS = {
    "compare backend": (["compare", "--backend", "foo"], r"--backend 'foo': expected one of auto, .*cpp"),
    "dose backend": (["dose", "--backend", "foo"], r"--backend 'foo': expected one of auto"),
    "out is a file": (["compare", "--out", "{file}"], r"--out .*file\.txt: is an existing file, expected a folder"),
    "dose out is a file": (["dose", "--out", "{file}"], r"is an existing file"),
    "out read-only": (["compare", "--out", "{ro}"], r"--out .*(not writable|cannot write there)"),
    "out empty": (["compare", "--out", ""], r"--out is empty"),
    "out foreign folder": (["compare", "--out", "{mine}"], r"holds files that are not an sfrt result set"),
    "dicom missing": (["compare", "--dicom", "{dicom}/absent"], r"--dicom .*absent: no such folder"),
    "dicom is a file": (["compare", "--dicom", "{dicom}/file.dcm"], r"--dicom .*file\.dcm: is a file"),
    "proton machine in dose": (["dose", "--machine", "proton_generic"], r"--machine proton_generic: .*photon"),
    "prescription 0": (["dose", "--prescription", "0"], r"--prescription 0: expected .* above 0 Gy"),
    "prescription negative": (["dose", "--prescription", "-3"], r"--prescription -3: expected"),
    "spacing with dicom": (["compare", "--dicom", "{dicom}/case", "--spacing", "2"],
                           r"--spacing 2 does nothing with --dicom"),
    "target without dicom": (["compare", "--target", "GTV"], r"--target GTV does nothing without --dicom"),
    "alpha/beta key twice": (["compare", "--alpha-beta", "GTV=4,GTV=5"], r"alpha/beta for 'GTV' given twice"),
    "avoid twice": (["compare", "--avoid", "SKIN", "SKIN"], r"--avoid names SKIN more than once"),
    "spacing 0": (["compare", "--spacing", "0"], r"--spacing 0: expected a voxel size above 0 mm"),
    "vertex diameter 0": (["compare", "--vertex-diameter", "0"], r"--vertex-diameter 0: expected a length"),
    "negative margin": (["compare", "--gtv-margin", "-1"], r"--gtv-margin -1: expected a margin of 0 mm or more"),
    "vertex dose off protocol": (["compare", "--vertex-dose", "20"],
                                 r"vertex_dose_gy=20.0: expected 8 to 15 Gy .*--off-protocol"),
    "memory budget": (["compare", "--max-memory", "100MB"],
                      r"needs an estimated 1\d\d\.\d MB of memory, above the budget of 100\.0 MB; use a coarser "
                      r"--spacing, or raise the budget with --max-memory SIZE or SFRT_MAX_MEMORY"),
    "memory size": (["dose", "--max-memory", "lots"], r"--max-memory 'lots': expected a size such as 2GB"),
    "log unwritable": (["compare", "--log", "{file}/run.log"], r"--log .*: cannot write the log file"),
    "no vertex fits": (["compare", "--vertex-diameter", "80", "--vertex-spacing", "90"],
                       r"no vertex fits in 'GTV' .*--vertex-diameter, --gtv-margin, --oar-margin"),
    "dicom without CT": (["compare", "--dicom", "{dicom}/nothing"],
                         r"no CT image series found \(found: no DICOM files; skipped 1 non-DICOM file: notes\.txt"),
    "dicom without RTSTRUCT": (["compare", "--dicom", "{dicom}/no_rs"],
                               r"no RT Structure Set, .*found: CT series .* \(\d+ slices\)"),
    "dicom unknown target": (["compare", "--dicom", "{dicom}/case", "--target", "TUMOUR"],
                             r"--target 'TUMOUR' is not an ROI of .*; ROIs: GTV_1, FEMUR"),
    "dicom unknown avoid": (["compare", "--dicom", "{dicom}/case", "--target", "GTV_1", "--avoid", "SKIN"],
                            r"--avoid SKIN: not an ROI of .*; ROIs: GTV_1, FEMUR"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_clear_line_and_leaves_nothing(case, tmp_path, capsys, dicom_cases):
    args, message = BAD_INPUTS[case]
    (tmp_path / "file.txt").write_text("mine")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    out = tmp_path / "out"
    fill = {"{file}": str(tmp_path / "file.txt"), "{ro}": str(_readonly_place(tmp_path)),
            "{dicom}": str(dicom_cases), "{mine}": str(tmp_path / "mine")}
    argv = list(args)
    for key, value in fill.items():
        argv = [a.replace(key, value) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(out)]
    if "--dicom" not in argv and "--spacing" not in argv:
        argv += ["--spacing", "5"]
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main([*argv, "-q"])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert re.search(message, captured.err), captured.err
    assert captured.err.startswith("sfrt: error: ") and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output folder, lock or temporary folder
    assert (tmp_path / "file.txt").read_text() == "mine" and (tmp_path / "mine" / "notes.txt").read_text() == "mine"


def test_budget_from_the_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SFRT_MAX_MEMORY", "50MB")
    assert main(["dose", *FAST, "--out", str(tmp_path / "out")]) == 2
    assert "above the budget of 50.0 MB" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bare_sfrt_prints_help_and_version(capsys):
    assert main([]) == 0
    assert "usage: sfrt" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"sfrt-engine {se.__version__}"


def _leaf_parsers(parser, prefix=()) -> dict:
    """Every runnable (sub)command's parser: {("compare",): ..., ("trial", "response"): ..., ...}."""
    import argparse

    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.update(_leaf_parsers(sub, (*prefix, name)) or {(*prefix, name): sub})
    return out


def test_quiet_verbose_and_log_on_every_subcommand():
    from sfrt_engine.cli import build_parser

    parser = build_parser()
    leaves = _leaf_parsers(parser)
    assert {c[0] for c in leaves} == set(SUBCOMMANDS)
    for command, sub in leaves.items():
        assert {"-q", "--quiet", "-v", "--verbose", "--log"} <= set(sub._option_string_actions), command
    for command in (["compare"], ["info"], ["dose"], ["trial", "example"]):
        assert parser.parse_args([*command, "-q"]).quiet is True
        args = parser.parse_args([*command, "-v", "--log", "run.log"])
        assert args.verbose is True and args.log == "run.log"
        assert parser.parse_args(["-v", *command]).verbose is True  # before the subcommand too


def test_verbose_logs_stages_with_times_and_log_file_gets_the_same(tmp_path, capsys):
    log = tmp_path / "run.log"
    out = tmp_path / "out"
    assert main(["dose", *FAST, "--out", str(out), "-v", "--log", str(log)]) == 0
    err = capsys.readouterr().err
    stage_times = re.findall(r"^sfrt: dose: (.+): (\d+\.\d\d) s$", err, re.MULTILINE)
    assert [name for name, _ in stage_times] == ["building the sarcoma phantom", "building the beams", "dose (cpp)",
                                                 "evaluation and plot"]
    assert re.search(r"^sfrt: dose: total \d+\.\d\d s$", err, re.MULTILINE)
    logged = log.read_text()
    for name, seconds in stage_times:
        assert f"dose: {name}: {seconds} s" in logged
    assert verify(out) == [] and sorted(f["path"] for f in read_manifest(out)["files"]) == ["dose_axial.png"]


def test_off_protocol_and_lattice_options(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["compare", *COMPARE_FAST, "--out", str(out), "-q", "--plots", "none", "--off-protocol",
                 "--vertex-dose", "18",
                 "--crt-fractions", "10", "--vertex-sessions", "2", "--vertex-diameter", "12", "--vertex-spacing", "27",
                 "--gtv-margin", "4", "--oar-margin", "8"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.startswith("OFF-PROTOCOL: values outside protocol NCT06980259 allowed")
    report = json.loads((out / "report.json").read_text())
    s = report["settings"]
    assert s["off_protocol"] is True
    assert (s["vertex_diameter_mm"], s["vertex_spacing_mm"], s["gtv_margin_mm"], s["oar_margin_mm"]) == (12, 27, 4, 8)
    assert (report["vertices"]["diameter_mm"], report["vertices"]["spacing_mm"]) == (12, 27)
    assert report["arms"]["SFRT"]["schedule"]["vertex_dose_gy"] == 18.0
    assert report["arms"]["SFRT"]["schedule"]["n_sessions"] == 10
    assert read_manifest(out)["settings"]["off_protocol"] is True and verify(out) == []


# -- real processes: SIGINT and concurrent runs ----------------------------------------------------

def _sfrt(out: Path, *extra: str) -> subprocess.Popen:
    code = "import sys; from sfrt_engine.cli import main; sys.exit(main(sys.argv[1:]))"
    # run outside the checkout, so that the installed package (with its compiled modules) is imported
    return subprocess.Popen([sys.executable, "-c", code, "compare", *COMPARE_FAST, "-q", "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=out.parent)


def _wait_for(predicate, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert proc.poll() is None, f"the run ended first: {proc.communicate()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _partial(out: Path) -> list[Path]:
    return list(out.parent.glob(f".{out.name}.partial-*"))


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _interrupted_run(out: Path, ready, reset, *extra: str) -> str:
    """Start a run, send SIGINT once ``ready(out)`` holds, and return its stderr.

    On a loaded machine the run may finish before the signal is sent; then ``reset()`` restores the
    folder and the run is tried again (three times at most).
    """
    for _ in range(3):
        proc = _sfrt(out, *extra)
        _wait_for(lambda: ready(out), proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        if proc.returncode == 0:  # finished first: a complete new set, as allowed; try again
            assert verify(out) == []
            reset()
            continue
        assert proc.returncode == 130, err
        return err
    pytest.fail("the run always finished before SIGINT could be sent")


@pytest.mark.slow
def test_ctrl_c_leaves_the_previous_set_or_nothing(tmp_path, tmp_path_factory):
    fresh = tmp_path / "fresh"
    err = _interrupted_run(fresh, lambda out: _partial(out), lambda: shutil.rmtree(fresh), "--plots", "none")
    assert err.strip().splitlines() == ["sfrt: interrupted; no half-written results were left"]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no folder at all, no lock, no partial

    out = tmp_path / "out"
    assert main(["compare", *COMPARE_FAST, "-q", "--out", str(out), "--vertex-dose", "8", "--plots", "none"]) == 0
    before = _snapshot(out)
    backup = tmp_path_factory.mktemp("backup") / "out"
    shutil.copytree(out, backup)

    def reset():
        shutil.rmtree(out)
        shutil.copytree(backup, out)

    # interrupt once the new report (15 Gy) is written aside, while a figure is being drawn
    err = _interrupted_run(out, lambda o: any((p / "report.json").exists() for p in _partial(o)), reset,
                           "--vertex-dose", "15", "--plots", "dvh")
    assert "Traceback" not in err
    assert _snapshot(out) == before and verify(out) == []
    assert json.loads((out / "report.json").read_text())["settings"]["vertex_dose_gy"] == 8.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.slow
def test_a_second_run_into_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    first = _sfrt(out, "--vertex-dose", "8", "--plots", "dvh,profile")
    _wait_for(lambda: _partial(out), first)
    second = _sfrt(out, "--vertex-dose", "15", "--plots", "none")
    _, err2 = second.communicate(timeout=60)
    _, err1 = first.communicate(timeout=60)
    assert second.returncode == 2, err2
    assert re.fullmatch(rf"sfrt: error: --out {re.escape(str(out))}: another run is writing this folder "
                        rf"\(PID {first.pid} on .*\); wait for it to finish or choose another --out\n", err2)
    assert first.returncode == 0, err1
    assert verify(out) == [] and json.loads((out / "report.json").read_text())["settings"]["vertex_dose_gy"] == 8.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
