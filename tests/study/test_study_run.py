"""Running studies: both runners give identical tables; reruns compute nothing; a killed study resumes.

The 6-patient synthetic study runs at 5 mm with 2 workers (the CI target: under 3 minutes for
all of this file on 2 cores). Tables are compared value by value (NaN equal to NaN: CRT rows have
no boost session); the reference is an uninterrupted local-pool run.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import sfrt_engine as se
from sfrt_engine.errors import SchedulerUnreachableError
from sfrt_engine.study import DaskRunner, LocalRunner, SerialRunner, load_study, read_results, run
from sfrt_engine.study.jobs import job_state, load_job

STUDY = """\
[study]
name = "ci"
backend = "cpp"
techniques = ["imrt"]
csv = true

[cohort.synthetic]
n = 6
seed = 1
spacing_mm = 5.0

[schedules]
vertex_dose_gy = [10.0, 15.0]
vertex_sessions = [3, 4]
crt_fractions = [20]
boost_mode = ["integrated", "separate"]

[alpha_beta]
defaults = {}
gtv10 = { GTV = 10.0 }
"""

pytestmark = pytest.mark.slow


def _cpp():
    ok, reason = se.available_backends()["cpp"]
    if not ok:
        pytest.skip(f"cpp backend unavailable: {reason}")


def _write(folder, text=STUDY):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "study.toml"
    path.write_text(text)
    return path


def _same_table(a, b) -> None:
    assert a.column_names == b.column_names
    rows_a, rows_b = a.to_pylist(), b.to_pylist()
    assert len(rows_a) == len(rows_b)
    for ra, rb in zip(rows_a, rows_b):
        for key, value in ra.items():
            other = rb[key]
            both_nan = isinstance(value, float) and isinstance(other, float) and math.isnan(value) and math.isnan(other)
            assert value == other or both_nan, (ra["patient_id"], key, value, other)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    _cpp()
    study = load_study(_write(tmp_path_factory.mktemp("local")))
    start = time.perf_counter()
    summary = run(study, LocalRunner(workers=2), progress=False)
    return study, summary, time.perf_counter() - start


def test_local_pool_runs_every_job_into_one_tidy_table(local_run):
    study, summary, _ = local_run
    assert (summary.ran, summary.done, summary.failed) == (6, 6, 0)
    table = read_results(study.output)
    rows = table.to_pylist()
    # 6 patients x 2 alpha/beta sets x (2 doses x 2 sessions x 2 modes) schedules x 2 arms
    assert len(rows) == 6 * 2 * 8 * 2
    assert [r["patient_id"] for r in rows[::32]] == [f"SYN{i:03d}" for i in range(1, 7)]
    sfrt = [r for r in rows if r["arm"] == "SFRT"]
    assert all(r["pvdr"] > 1.0 and r["boost_session_pvdr"] > r["pvdr"] for r in sfrt)
    # a separate boost session is BOOST alone: its vertex mean is the prescribed vertex dose (BOOST unit = 1 Gy mean)
    for r in sfrt:
        if r["boost_mode"] == "separate":
            assert r["boost_session_peak_gy"] == pytest.approx(r["vertex_dose_gy"], rel=1e-9)
    assert {r["backend_used"] for r in rows} == {"cpp"}
    csv_table = read_results(study.output / "results.csv")
    assert csv_table.num_rows == table.num_rows
    for job in study.jobs():
        assert (study.output / "jobs" / f"{job.key}.h5").is_file()
        record = load_job(study.output, job.key)
        assert {"case", "vertices", "crt_dose", "boost_dose", "evaluation", "store"} <= set(record["timings_s"])


def test_rerun_computes_nothing_and_is_fast(local_run, monkeypatch):
    study, _, first_s = local_run

    def forbidden(*args, **kwargs):
        raise AssertionError("a finished study computed dose again")

    import sfrt_engine.components
    import sfrt_engine.optimise.operators

    monkeypatch.setattr(sfrt_engine.components, "compute_dose", forbidden)
    monkeypatch.setattr(sfrt_engine.optimise.operators, "dose_operator", forbidden)
    start = time.perf_counter()
    again = run(load_study(study.path), SerialRunner(), progress=False)
    seconds = time.perf_counter() - start
    assert (again.ran, again.skipped, again.done) == (0, 6, 6)
    assert seconds < 0.1 * first_s, (seconds, first_s)


def test_dask_local_cluster_gives_the_identical_table(local_run, tmp_path):
    study, _, _ = local_run
    other = load_study(_write(tmp_path))
    summary = run(other, DaskRunner(workers=2, processes=False), progress=False)
    assert (summary.ran, summary.done) == (6, 6)
    _same_table(read_results(other.output), read_results(study.output))


def test_killed_study_resumes_to_the_identical_table(local_run, tmp_path):
    study, _, _ = local_run
    path = _write(tmp_path)
    code = "import sys; from sfrt_engine.cli import main; sys.exit(main())"
    proc = subprocess.Popen([sys.executable, "-c", code, "study", "run", str(path), "--workers", "2", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            cwd=tmp_path)  # outside the checkout: the installed package is imported
    resumed = load_study(path)
    keys = [job.key for job in resumed.jobs()]
    try:
        deadline = time.monotonic() + 120
        while sum(job_state(resumed.output, k) == "done" for k in keys) < 3:
            assert proc.poll() is None, "the study finished or died before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its pool worker, mid-study
        proc.wait()
    done = sum(job_state(resumed.output, k) == "done" for k in keys)
    assert 3 <= done < 6
    summary = run(resumed, LocalRunner(workers=2), progress=False)
    assert summary.skipped == done and summary.done == 6
    assert not list((resumed.output / "jobs").glob(".*"))  # nothing half-written is left
    _same_table(read_results(resumed.output), read_results(study.output))


def test_a_failing_job_is_recorded_and_the_study_goes_on(tmp_path):
    _cpp()
    text = STUDY.replace("n = 6", "n = 2") + """
[[lattice]]
name = "standard"

[[lattice]]
name = "huge"
diameter_mm = 90.0
spacing_mm = 120.0
"""
    study = load_study(_write(tmp_path, text))
    summary = run(study, SerialRunner(), progress=False)
    assert (summary.done, summary.failed) == (2, 2)
    assert all(label.endswith("/huge") and "no vertex fits" in error for label, error in summary.failures)
    rows = read_results(study.output).to_pylist()
    assert {r["lattice"] for r in rows} == {"standard"} and len(rows) == 2 * 2 * 8 * 2
    again = run(study, SerialRunner(), progress=False)
    assert (again.ran, again.failed) == (0, 2)  # recorded failures are not retried unless asked


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_says_how_long_it_tried(tmp_path):
    address = f"tcp://127.0.0.1:{_free_port()}"
    study = load_study(_write(tmp_path, STUDY.replace("n = 6", "n = 1")))
    start = time.perf_counter()
    with pytest.raises(SchedulerUnreachableError, match=r"could not reach the Dask scheduler at .*tried for \d+\.\d s"):
        run(study, DaskRunner(address=address, connect_timeout_s=1.0), progress=False)
    assert time.perf_counter() - start < 30
    assert not (study.output / "jobs").exists()  # no job started
