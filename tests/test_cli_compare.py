"""``sfrt compare`` (cli.py): exit codes, output files, options reaching the report, clear errors.

Runs on the 5 mm phantom with the cpp backend (a few seconds per run on 2 cores).
"""

from __future__ import annotations

import contextlib
import io
import json
import re

import pytest

import sfrt_engine as se
from sfrt_engine.cli import build_parser, main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FAST = ["--spacing", "5", "--backend", "cpp"]


@pytest.fixture(scope="module", autouse=True)
def _cpp():
    ok, reason = se.available_backends()["cpp"]
    if not ok:
        pytest.skip(f"cpp backend unavailable: {reason}")


@pytest.fixture(scope="module")
def fast_goals(tmp_path_factory):
    """The default goal file with few optimiser iterations (same goals, same path through --goals)."""
    from sfrt_engine.optimise import DEFAULT_GOALS_FILE

    path = tmp_path_factory.mktemp("goals") / "fast.toml"
    path.write_text(re.sub(r"(?m)^max_iterations = \d+", "max_iterations = 6", DEFAULT_GOALS_FILE.read_text()))
    return path


@pytest.fixture(scope="module")
def default_run(tmp_path_factory, fast_goals):
    out = tmp_path_factory.mktemp("compare")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["compare", "--out", str(out), *FAST, "-q", "--goals", str(fast_goals)])
    return code, out, stdout.getvalue(), stderr.getvalue()


def test_compare_writes_report_and_plots(default_run):
    code, out, _, stderr = default_run
    assert code == 0, stderr
    figures = ["dose_views.png", "eqd2_difference.png", "eqd2_views.png", "histograms.png", "profile.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*figures, "manifest.json", "report.json"])
    for name in figures:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000, name  # a real figure, not a stub
    report = json.loads((out / "report.json").read_text())
    assert {"settings", "arms"} <= set(report) and set(report["arms"]) == {"CRT", "SFRT"}
    assert report["settings"]["boost_mode"] == "integrated"
    assert report["settings"]["backend_used"] == "cpp"
    assert report["arms"]["CRT"]["structures"]["PTV"]["physical"]["d95_gy"] == pytest.approx(60.0, rel=1e-9)
    assert report["settings"]["technique"] == "imrt" and report["settings"]["goals"].endswith("fast.toml")
    for name in ("CRT", "BOOST"):
        assert report["components"][name]["optimisation"]["iterations"] <= 6
    assert stderr == ""  # -q: no progress bar


def test_compare_prints_the_per_arm_table(default_run):
    # the fixture redirects sys.stdout the way a wrapper script or notebook does: all of the
    # command's output, the per-arm table included, must follow the current sys.stdout
    _, out, stdout, _ = default_run
    report = json.loads((out / "report.json").read_text())
    assert "boost mode 'integrated'" in stdout
    assert f"vertices: {report['vertices']['count']} x 15 mm on a hcp lattice" in stdout
    for name in ("GTV", "VERTICES", "VALLEY", "PTV", "FEMUR", "SKIN"):
        assert re.search(rf"^{name}\s+\d", stdout, re.MULTILINE), name
    # the PVDR line shows the report's values for CRT then SFRT, to 2 decimals
    line = re.search(r"^PVDR\s+([\d.]+)\s+([\d.]+)\s*$", stdout, re.MULTILINE)
    assert line is not None
    for value, arm in zip(line.groups(), ("CRT", "SFRT")):
        assert float(value) == pytest.approx(report["arms"][arm]["sfrt_metrics"]["pvdr"], abs=0.005)
    assert re.search(r"^CRT optimisation: \d+ iterations", stdout, re.MULTILINE)
    b = report["arms"]["SFRT"]["boost_session"]
    assert f"boost session alone: peak {b['peak_gy']:.2f} Gy, valley {b['valley_gy']:.2f} Gy" in stdout


def test_compare_options_reach_the_report(tmp_path, capsys):
    code = main(["compare", "--out", str(tmp_path), *FAST, "--technique", "3dcrt", "--boost-mode", "separate",
                 "--lattice", "cubic", "--crt-fractions", "16", "--vertex-sessions", "3", "--vertex-dose", "10",
                 "--alpha-beta", "SKIN=2.5", "--plots", "none"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "sfrt compare" in captured.err  # progress is shown without -q
    report = json.loads((tmp_path / "report.json").read_text())
    s = report["settings"]
    assert (s["boost_mode"], s["lattice"], s["crt_fractions"], s["vertex_sessions"], s["vertex_dose_gy"]) == (
        "separate", "cubic", 16, 3, 10.0)
    assert s["alpha_beta_gy"] == {"SKIN": 2.5} and s["alpha_beta_resolved_gy"]["SKIN"] == 2.5
    assert report["vertices"]["lattice"] == "cubic"
    assert report["arms"]["SFRT"]["schedule"]["n_sessions"] == 16 + 3
    assert report["arms"]["CRT"]["schedule"]["n_sessions"] == 16
    assert "boost mode 'separate'" in captured.out
    assert s["technique"] == "3dcrt" and report["components"]["CRT"]["optimisation"] is None


def test_bad_goal_file_is_a_clear_error(tmp_path, capsys):
    goals = tmp_path / "goals.toml"
    goals.write_text('[crt]\n[[crt.goal]]\ntype = "dvh_min"\nstructure = "PTV"\ndose = 3\nvolume_pct = 95\n')
    code = main(["compare", "--out", str(tmp_path / "out"), *FAST, "-q", "--goals", str(goals)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "'dose' has no unit" in err and "dose_gy or dose_pct" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["GTV=x", "GTV=-4", "GTV"])
def test_bad_alpha_beta_is_a_clear_error(tmp_path, capsys, value):
    code = main(["compare", "--out", str(tmp_path), *FAST, "-q", "--alpha-beta", value])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("sfrt: error: ") and repr(value) in err and "NAME=VALUE" in err
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_alpha_beta_for_unknown_structure(tmp_path, capsys):
    code = main(["compare", "--out", str(tmp_path), *FAST, "-q", "--alpha-beta", "TUMOUR=4"])
    err = capsys.readouterr().err
    assert code == 2
    assert "'TUMOUR'" in err and "not a structure" in err
    assert not (tmp_path / "report.json").exists()


def test_technique_choices_include_the_announced_ones():
    parser = build_parser()
    assert parser.parse_args(["compare", "--technique", "vmat"]).technique == "vmat"
    assert parser.parse_args(["compare", "--technique", "impt"]).technique == "impt"
    assert parser.parse_args(["compare"]).technique == "imrt"
    assert parser.parse_args(["compare", "--technique", "3dcrt"]).technique == "3dcrt"
    with pytest.raises(SystemExit) as info, contextlib.redirect_stderr(io.StringIO()):
        parser.parse_args(["compare", "--technique", "tomo"])
    assert info.value.code == 2
