"""``sfrt study``: cohort studies from a study file (init, run, status, report)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def cmd_init(args: argparse.Namespace) -> int:
    from .._files import atomic_path
    from ..errors import StudyFileError
    from ..study import example_study

    path = Path(args.study)
    if path.exists() and not args.force:
        raise StudyFileError(f"{path} exists; choose another name or pass --force to overwrite it")
    text = example_study().replace('output = "example_results"', f'output = "{path.stem}_results"')
    text = text.replace('name = "example"', f'name = "{path.stem}"').replace("example.toml", path.name)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    print(f"wrote {path}: a 4-patient synthetic cohort at 5 mm, 2 schedules, 1 technique; "
          f"run it with `sfrt study run {path}`")
    return 0


def _runner(args: argparse.Namespace):
    from ..study.runners import DaskRunner, LocalRunner

    if args.scheduler:
        return DaskRunner(address=args.scheduler, connect_timeout_s=args.connect_timeout)
    if args.dask_local:
        return DaskRunner(workers=args.workers)
    return LocalRunner(args.workers)


def cmd_run(args: argparse.Namespace) -> int:
    from ..study import load_study, run

    if args.workers is not None and args.workers < 1:
        from ..errors import SfrtError

        raise SfrtError(f"--workers {args.workers}: expected at least 1")
    study = load_study(args.study)
    runner = _runner(args)
    jobs = len(study.jobs())
    print(f"study {study.name}: {len(study.cases)} patients x {len(study.techniques)} techniques x "
          f"{len(study.lattices)} lattice variants = {jobs} jobs; {runner.describe(jobs, study.backend)}")
    summary = run(study, runner, progress=not args.quiet, retry_failed=args.retry_failed)
    print(f"{summary.ran} jobs run, {summary.skipped} already finished; {summary.done} done, {summary.failed} failed "
          f"({summary.seconds:.1f} s)")
    for label, error in summary.failures:
        print(f"  failed: {label}: {error}")
    print("wrote " + ", ".join(str(p) for p in summary.tables))
    return 1 if summary.failed else 0


def cmd_status(args: argparse.Namespace) -> int:
    from ..study import job_states, load_study
    from ..study.jobs import load_job

    study = load_study(args.study)
    states = job_states(study)
    counts = {s: sum(state == s for _, state in states) for s in ("done", "failed", "pending")}
    print(f"study {study.name} ({study.output}): {len(states)} jobs: {counts['done']} done, {counts['failed']} "
          f"failed, {counts['pending']} pending")
    width = max(len(spec.label) for spec, _ in states)
    for spec, state in states:
        line = f"  {spec.label:{width}s}  {state:8s}"
        if state != "pending":
            record = load_job(study.output, spec.key)
            if state == "failed":
                line += f"  {record['error']}"
            else:
                line += f"  {sum(record['timings_s'].values()):6.1f} s  {len(record['rows'])} rows"
        print(line)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..study import load_study
    from ..study.report import write_report

    study = load_study(args.study)
    paths = write_report(study.output, Path(args.out) if args.out else study.output / "report")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def register(sub) -> None:
    from ._common import common_options

    p = sub.add_parser("study", help="cohort studies from a study file (init, run, status, report)",
                       parents=[common_options()])
    actions = p.add_subparsers(dest="action", required=True)
    init = actions.add_parser("init", help="write a commented example study file that runs as it is",
                              parents=[common_options()])
    init.add_argument("study", metavar="STUDY.toml")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=cmd_init)

    run = actions.add_parser("run", help="run the study's pending jobs (finished jobs are skipped) and write the table",
                             parents=[common_options()])
    run.add_argument("study", metavar="STUDY.toml")
    run.add_argument("--workers", type=int, default=None,
                     help="local workers (default one per physical core; one per GPU with a GPU backend)")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="run on the Dask cluster of this scheduler, e.g. tcp://10.0.0.5:8786")
    where.add_argument("--dask-local", action="store_true", help="run on a Dask LocalCluster started for the run")
    run.add_argument("--connect-timeout", type=float, default=10.0, metavar="S",
                     help="seconds to try to reach --scheduler (default 10)")
    run.add_argument("--retry-failed", action="store_true", help="run failed jobs again")
    run.set_defaults(func=cmd_run)

    status = actions.add_parser("status", help="done, failed and pending jobs",
                              parents=[common_options()])
    status.add_argument("study", metavar="STUDY.toml")
    status.set_defaults(func=cmd_status)

    report = actions.add_parser("report", help="cohort plots from the study table",
                              parents=[common_options()])
    report.add_argument("study", metavar="STUDY.toml")
    report.add_argument("--out", default=None, help="folder for the plots (default <output>/report)")
    report.set_defaults(func=cmd_report)
