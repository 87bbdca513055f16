"""Running a study: skip finished jobs, run the rest on a runner, store each result, write the table."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SfrtError
from .jobs import JOBS_FOLDER, JobSpec, job_state, load_job, store
from .results import write_table
from .runners import DaskRunner, LocalRunner, SerialRunner
from .studyfile import Study, load_study

__all__ = ["StudyRun", "collect_rows", "job_states", "make_runner", "run"]


@dataclass
class StudyRun:
    """What :func:`run` did: jobs run now, skipped (already finished), done and failed in all."""

    ran: int
    skipped: int
    done: int
    failed: int
    seconds: float
    tables: list[Path]
    runner: str
    failures: list[tuple[str, str]] = field(default_factory=list)


def make_runner(runner=None, workers: int | None = None):
    """A runner from a name: "local" (default), "dask-local", "serial", a ``tcp://`` address, or a runner."""
    if runner is None or runner == "local":
        return LocalRunner(workers)
    if runner == "dask-local":
        return DaskRunner(workers=workers)
    if runner == "serial":
        return SerialRunner()
    if isinstance(runner, str) and "://" in runner:
        return DaskRunner(address=runner)
    if isinstance(runner, str):
        raise SfrtError(f"runner={runner!r}: expected 'local', 'dask-local', 'serial', a scheduler address "
                        "tcp://HOST:PORT, or a runner object")
    return runner


def job_states(study: Study) -> list[tuple[JobSpec, str]]:
    """Every job of the study with its state: "done", "failed" or "pending"."""
    return [(spec, job_state(study.output, spec.key)) for spec in study.jobs()]


def collect_rows(study: Study) -> list[dict]:
    """Rows of the finished jobs, in job order (patients, then techniques, then lattice variants)."""
    rows: list[dict] = []
    for spec, state in job_states(study):
        if state == "done":
            rows.extend(load_job(study.output, spec.key)["rows"])
    return rows


def run(study, runner=None, *, workers: int | None = None, progress: bool = True,
        retry_failed: bool = False) -> StudyRun:
    """Run the pending jobs of a study and write its table.

    Parameters
    ----------
    study : Study or str or Path
        A loaded study or the path of a study file.
    runner : str or runner, optional
        "local" (default: a process pool), "dask-local", "serial", a scheduler address
        ``tcp://HOST:PORT``, or a :class:`LocalRunner`/:class:`DaskRunner`/:class:`SerialRunner`.
    workers : int, optional
        Workers of a "local" or "dask-local" runner (default one per physical core).
    progress : bool
        Show a progress bar over the jobs (stderr).
    retry_failed : bool
        Run failed jobs again (default: they stay recorded as failed).
    """
    from tqdm import tqdm

    start = time.perf_counter()
    study = study if isinstance(study, Study) else load_study(study)
    runner = make_runner(runner, workers)
    for stale in (study.output / JOBS_FOLDER).glob(".*.tmp"):  # a write cut short by a kill: never a result
        stale.unlink()
    states = job_states(study)
    todo = [spec for spec, state in states if state == "pending" or (retry_failed and state == "failed")]
    if todo:
        with tqdm(total=len(todo), desc=f"sfrt study {study.name}", unit="job", disable=not progress,
                  file=sys.stderr) as bar:
            for result in runner.results(todo, study.backend):
                store(result, study.output, study.unit_doses)
                bar.update(1)
                if result.status == "failed":
                    bar.write(f"job {result.label} failed: {result.error}", file=sys.stderr)
    final = job_states(study)
    failures = [(spec.label, load_job(study.output, spec.key)["error"]) for spec, s in final if s == "failed"]
    tables = write_table(collect_rows(study), study.output, study.csv)
    describe = runner.describe(len(todo), study.backend)
    return StudyRun(ran=len(todo), skipped=len(states) - len(todo), done=sum(s == "done" for _, s in final),
                    failed=len(failures), seconds=time.perf_counter() - start, tables=tables, runner=describe,
                    failures=failures)
