"""Study jobs: one patient x technique x lattice variant, a pure function of its inputs.

:func:`execute` builds (or reads) the case, places the vertices, computes the CRT and BOOST
unit doses once and evaluates every schedule and alpha/beta set of the study by re-weighting
(:func:`~sfrt_engine.study.schedules.evaluate_schedules`). It writes nothing: it returns a
:class:`JobResult`, and :func:`store` writes the unit doses (HDF5) and then the rows (JSON,
the job's completion mark), each atomically, into ``<output>/jobs/``. A runner may thus run
:func:`execute` anywhere (a pool process, a Dask worker) and store where the study lives.

A job is keyed by a SHA-256 of its inputs: the case's content (DICOM file bytes, or the
synthetic generator's parameters), the settings, the schedule grid, the alpha/beta sets and
the engine version. Finished jobs are skipped on a rerun; a changed input is a new job.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from .._files import atomic_path
from ..compare import ComparisonSettings, Prepared, arm_schedule, prepare
from ..evaluation import sfrt_metrics
from .schedules import evaluate_schedules
from .studyfile import Case, LatticeVariant

__all__ = ["BOOST_SESSION_KEYS", "JOBS_FOLDER", "JobResult", "JobSpec", "execute", "job_state", "load_job", "store"]

#: Sub-folder of the study output that holds one result per job.
JOBS_FOLDER = "jobs"
#: SFRT metrics of one boost session (physical dose of that session) added to each SFRT row.
BOOST_SESSION_KEYS = ("peak_gy", "valley_gy", "pvdr", "d10_d90", "gtv_d50_gy")


@dataclass(frozen=True)
class JobSpec:
    """Everything one job needs (picklable; the same spec always gives the same rows)."""

    key: str
    case: Case
    technique: str
    lattice: LatticeVariant
    backend: str
    schedules: dict
    alpha_beta_sets: dict

    @classmethod
    def create(cls, case: Case, technique: str, lattice: LatticeVariant, backend: str, schedules: dict,
               alpha_beta_sets: dict) -> JobSpec:
        inputs = {"patient_id": case.patient_id, "case_sha256": case.content_sha256, "source": case.source, "target": case.target,
                  "avoid": list(case.avoid), "case_alpha_beta_gy": case.alpha_beta_gy, "technique": technique,
                  "lattice": [lattice.name, lattice.lattice, lattice.diameter_mm, lattice.spacing_mm], "backend": backend,
                  "schedules": schedules, "alpha_beta_sets": alpha_beta_sets, "engine_version": __version__}
        if inputs["source"].get("kind") == "dicom":
            inputs["source"] = {k: v for k, v in case.source.items() if k != "folder"}  # content, not location
        key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:24]
        return cls(key, case, technique, lattice, backend, schedules, alpha_beta_sets)

    @property
    def label(self) -> str:
        return f"{self.case.patient_id}/{self.technique}/{self.lattice.name}"

    def settings(self) -> ComparisonSettings:
        return ComparisonSettings(technique=self.technique, lattice=self.lattice.lattice,
                                  vertex_diameter_mm=self.lattice.diameter_mm,
                                  vertex_spacing_mm=self.lattice.spacing_mm, avoid=tuple(self.case.avoid),
                                  target=self.case.target, backend=self.backend)


@dataclass
class JobResult:
    """What :func:`execute` returns: rows (status "done") or an error (status "failed")."""

    key: str
    label: str
    status: str
    rows: list[dict] = field(default_factory=list)
    error: str | None = None
    details: str | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    prepared: Prepared | None = None


def load_case(case: Case):
    """The case's patient, ready for the comparison (synthetic: built; DICOM: read and prepared)."""
    source = case.source
    if source["kind"] == "synthetic":
        from ..synthetic_cohort import _draw

        return _draw(source["seed"], source["index"]).build(source["spacing_mm"])
    from ..cases import prepare_dicom_case

    return prepare_dicom_case(source["folder"], case.target, source["ptv_margin_mm"])


def _boost_session_metrics(prepared: Prepared, row: dict, cache: dict) -> dict:
    """Physical-dose SFRT metrics of the first vertex session of an SFRT row's schedule."""
    key = (row["crt_fractions"], row["vertex_sessions"], row["vertex_dose_gy"], row["boost_mode"])
    if key not in cache:
        schedule = arm_schedule(prepared, "SFRT", *key)
        session = next(s for s in schedule.sessions if s.label != "crt")
        units = prepared.unit_doses
        dose = sum(w * units[c] for c, w in session.weights)
        metrics = sfrt_metrics(dose, prepared.patient.structures, prepared.settings.target)
        cache[key] = {f"boost_session_{k}": metrics[k] for k in BOOST_SESSION_KEYS}
    return cache[key]


def _rows(spec: JobSpec, prepared: Prepared) -> list[dict]:
    patient = prepared.patient
    target = patient.structures[spec.case.target if spec.case.target in patient.structures else "GTV"]
    info = {"patient_id": spec.case.patient_id, "technique": spec.technique, "lattice": spec.lattice.name,
            "lattice_type": spec.lattice.lattice, "vertex_diameter_mm": spec.lattice.diameter_mm,
            "vertex_spacing_mm": spec.lattice.spacing_mm}
    extra = {"target_volume_cc": float(target.sum() * patient.grid.voxel_volume_mm3 / 1000.0),
             "n_vertices": int(prepared.vertices.count), "backend_used": prepared.components["CRT"].backend,
             "engine_version": __version__, "job_key": spec.key}
    cache: dict = {}
    nan_session = {f"boost_session_{k}": float("nan") for k in BOOST_SESSION_KEYS}
    rows = []
    for set_name, ab in spec.alpha_beta_sets.items():
        merged = {**spec.case.alpha_beta_gy, **ab}  # the study's set is the swept variable: it wins
        for row in evaluate_schedules(prepared, alpha_beta_gy=[merged], **spec.schedules):
            session = _boost_session_metrics(prepared, row, cache) if row["arm"] == "SFRT" else nan_session
            rows.append({**info, "alpha_beta_set": set_name, **row, **session, **extra})
    return rows


def execute(spec: JobSpec) -> JobResult:
    """Run one job; never raises for a failure of the case (the result records it)."""
    timings: dict[str, float] = {}
    clock = [time.perf_counter(), "case"]

    def lap(stage: str) -> None:
        now = time.perf_counter()
        timings[clock[1]] = timings.get(clock[1], 0.0) + now - clock[0]
        clock[:] = [now, stage]

    stages = {"placing vertices": "vertices", "CRT dose": "crt_dose", "vertex boost dose": "boost_dose"}

    def stage(message: str) -> None:  # prepare() reports each stage; time them by their first words
        lap(next((v for k, v in stages.items() if message.startswith(k)), message.split(" (")[0]))

    try:
        patient = load_case(spec.case)
        prepared = prepare(patient, spec.settings(), progress=stage)
        lap("evaluation")
        rows = _rows(spec, prepared)
        lap("done")
    except Exception as exc:  # noqa: BLE001 - any failure of a case is recorded and the study goes on
        lap("done")
        return JobResult(spec.key, spec.label, "failed", error=f"{type(exc).__name__}: {exc}",
                         details=traceback.format_exc(), timings_s=timings)
    return JobResult(spec.key, spec.label, "done", rows=rows, timings_s=timings, prepared=prepared)


def _paths(folder: Path, key: str) -> dict[str, Path]:
    jobs = Path(folder) / JOBS_FOLDER
    return {"done": jobs / f"{key}.json", "failed": jobs / f"{key}.failed.json", "h5": jobs / f"{key}.h5"}


def store(result: JobResult, folder, unit_doses: bool = True) -> Path:
    """Write a job's result under ``folder/jobs`` atomically: HDF5 unit doses, then the rows JSON.

    A failed job writes ``<key>.failed.json`` (error and traceback) instead.
    """
    paths = _paths(folder, result.key)
    start = time.perf_counter()
    record = {"key": result.key, "label": result.label, "status": result.status, "error": result.error,
              "details": result.details, "engine_version": __version__}
    if result.status == "done" and unit_doses and result.prepared is not None:
        from .. import io

        p = result.prepared
        io.save(paths["h5"], patient=p.patient, unit_doses=p.components, vertices=p.vertices,
                settings=p.settings, report={"job": result.label, "key": result.key})
    timings = dict(result.timings_s, store=time.perf_counter() - start)
    target = paths["done"] if result.status == "done" else paths["failed"]
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(dict(record, timings_s=timings, rows=result.rows)))
    if result.status == "done" and paths["failed"].exists():
        paths["failed"].unlink()  # an earlier failure of the same inputs is superseded
    return target


def job_state(folder, key: str) -> str:
    """"done", "failed" or "pending" for the job ``key`` of the study output ``folder``."""
    paths = _paths(folder, key)
    if paths["done"].exists():
        return "done"
    return "failed" if paths["failed"].exists() else "pending"


def load_job(folder, key: str) -> dict:
    """The stored record of a finished or failed job (rows, error, timings_s)."""
    paths = _paths(folder, key)
    path = paths["done"] if paths["done"].exists() else paths["failed"]
    return json.loads(path.read_text())
