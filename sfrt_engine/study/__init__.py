"""Dose-escalation and cohort studies.

Two levels:

- :func:`evaluate_schedules` (``schedules.py``): every schedule of a grid on one patient,
  by re-weighting the CRT and BOOST unit doses computed once;
- cohort studies: a study file (``studyfile.py``, TOML) names the patients, techniques,
  lattice variants, schedule grid and alpha/beta sets; it becomes one job per patient x
  technique x lattice variant (``jobs.py``, each keyed by a hash of its inputs, results
  written atomically), run by a local process pool or a Dask cluster (``runners.py``) into
  one tidy table (``results.py``) with cohort plots (``report.py``).

Example::

    import sfrt_engine as se
    study = se.study.load_study("study.toml")
    summary = se.study.run(study, runner="local")        # or runner=se.study.DaskRunner("tcp://host:8786")
    table = se.study.read_results(study.output)          # pyarrow.Table; .to_pandas() for pandas
"""

from __future__ import annotations

from .api import StudyRun, collect_rows, job_states, run
from .jobs import JobResult, JobSpec, execute
from .results import read_results
from .runners import DaskRunner, LocalRunner, SerialRunner, physical_cores
from .schedules import ROW_STRUCTURES, evaluate_schedules, save_csv
from .studyfile import Case, LatticeVariant, Study, example_study, load_study

__all__ = ["ROW_STRUCTURES", "Case", "DaskRunner", "JobResult", "JobSpec", "LatticeVariant", "LocalRunner",
           "SerialRunner", "Study", "StudyRun", "collect_rows", "evaluate_schedules", "example_study", "execute",
           "job_states", "load_study", "physical_cores", "read_results", "run", "save_csv"]
