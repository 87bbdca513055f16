"""`sfrt study init/run/status/report` end to end, and one-line errors (exit 2) for bad input."""

from __future__ import annotations

import pytest

import sfrt_engine as se
from sfrt_engine.cli import main


@pytest.mark.slow
def test_init_run_status_report(tmp_path, capsys):
    ok, reason = se.available_backends()["cpp"]
    if not ok:
        pytest.skip(f"cpp backend unavailable: {reason}")
    path = tmp_path / "pilot.toml"
    assert main(["study", "init", str(path)]) == 0
    text = path.read_text()
    assert 'output = "pilot_results"' in text and text.count("\n#") > 10  # commented
    # the example as written, made smaller for the test: 2 patients, the cpp backend
    path.write_text(text.replace("n = 4 ", "n = 2 ").replace('backend = "auto"', 'backend = "cpp"'))
    assert main(["study", "run", str(path), "--dask-local", "--workers", "1", "-q"]) == 0
    out = capsys.readouterr().out
    assert "2 jobs run, 0 already finished; 2 done, 0 failed" in out
    assert main(["study", "status", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2 jobs: 2 done, 0 failed, 0 pending" in out and "SYN002/imrt/hcp-d15-s30  done" in out
    assert main(["study", "report", str(path)]) == 0
    pngs = sorted(p.name for p in (tmp_path / "pilot_results" / "report").iterdir())
    assert pngs == ["eqd2_vs_vertex_dose_imrt_hcp-d15-s30_defaults.png", "eqd2_vs_vertex_dose_imrt_hcp-d15-s30_gtv10.png",
                    "pvdr_vs_target_volume_imrt_hcp-d15-s30.png"]
    assert all((tmp_path / "pilot_results" / "report" / p).stat().st_size > 10_000 for p in pngs)
    assert main(["study", "init", str(path)]) == 2  # never overwrites without --force
    assert "exists" in capsys.readouterr().err


@pytest.mark.parametrize("edit, message", [
    (("n = 4 ", "n = 0 "), "cohort.synthetic.n: 0: expected a whole number at least 1"),
    (("crt_fractions = [20]", "crt_fractions = []"), "schedules.crt_fractions: empty list"),
])
def test_bad_study_file_is_one_line_exit_2(tmp_path, capsys, edit, message):
    path = tmp_path / "s.toml"
    assert main(["study", "init", str(path)]) == 0
    path.write_text(path.read_text().replace(*edit))
    capsys.readouterr()
    assert main(["study", "run", str(path), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sfrt: error: ") and message in err
    assert not (tmp_path / "s_results").exists()
    assert main(["study", "status", str(path)]) == 2


def test_unreachable_scheduler_is_one_line_exit_2(tmp_path, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "s.toml"
    assert main(["study", "init", str(path)]) == 0
    capsys.readouterr()
    code = main(["study", "run", str(path), "--scheduler", f"tcp://127.0.0.1:{port}", "--connect-timeout", "1", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"could not reach the Dask scheduler at 'tcp://127.0.0.1:{port}': tried for" in err and "dask scheduler" in err


@pytest.mark.slow
def test_failed_jobs_exit_1_and_status_gives_the_reason(tmp_path, capsys):
    path = tmp_path / "s.toml"
    assert main(["study", "init", str(path)]) == 0
    text = path.read_text().replace("n = 4 ", "n = 1 ").replace("diameter_mm = 15.0\nspacing_mm = 30.0",
                                                                  "diameter_mm = 90.0\nspacing_mm = 120.0")
    path.write_text(text)
    capsys.readouterr()
    assert main(["study", "run", str(path), "--workers", "1", "-q"]) == 1  # vertex placement fails before any dose
    out = capsys.readouterr().out
    assert "0 done, 1 failed" in out and "failed: SYN001/imrt/hcp-d90-s120: PlanError: no vertex fits" in out
    assert main(["study", "status", str(path)]) == 0
    assert "SYN001/imrt/hcp-d90-s120  failed    PlanError: no vertex fits" in capsys.readouterr().out
