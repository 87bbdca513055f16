"""The study table: one tidy row per patient x technique x lattice variant x alpha/beta set x schedule x arm.

Columns, in order: the job's identity (``patient_id``, ``technique``, ``lattice``, ``lattice_type``,
``vertex_diameter_mm``, ``vertex_spacing_mm``, ``alpha_beta_set``), the schedule (``arm``,
``vertex_dose_gy``, ``vertex_sessions``, ``crt_fractions``, ``boost_mode``, ``alpha_beta``,
``n_sessions``), the cumulative SFRT metrics (physical, ``geud_gy`` on EQD2, ``eqd2_*``), the
per-structure physical and EQD2 mean/D95/D2/max (``<structure>_phys_*``, ``<structure>_eqd2_*``),
the metrics of one boost session (``boost_session_*``, physical dose; NaN on CRT rows), and the
case (``target_volume_cc``, ``n_vertices``, ``backend_used``, ``engine_version``, ``job_key``).

Written as Parquet (pyarrow) and, on request, CSV; both atomically.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .._files import atomic_path
from ..errors import StudyFileError

__all__ = ["RESULTS_CSV", "RESULTS_PARQUET", "read_results", "write_table"]

RESULTS_PARQUET = "results.parquet"
RESULTS_CSV = "results.csv"


def _columns(rows: list[dict]) -> dict[str, list]:
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    return {name: [row.get(name) for row in rows] for name in fields}


def write_table(rows: list[dict], folder, csv_too: bool = False) -> list[Path]:
    """Write ``rows`` as ``results.parquet`` (and ``results.csv``) in ``folder``; returns the paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    table = pa.table(_columns(rows)) if rows else pa.table({})
    paths = [folder / RESULTS_PARQUET]
    with atomic_path(paths[0]) as tmp:
        pq.write_table(table, tmp)
    if csv_too:
        paths.append(folder / RESULTS_CSV)
        with atomic_path(paths[1]) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(table.column_names)
            columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
            writer.writerows(zip(*columns))
    return paths


def read_results(path):
    """The study table as a ``pyarrow.Table`` (``.to_pandas()`` for pandas, ``.to_pylist()`` for dicts).

    Parameters
    ----------
    path : str or Path
        ``results.parquet``, ``results.csv``, a study output folder, or a study file (its output folder).
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(path)
    if path.suffix == ".toml":
        from .studyfile import load_study

        path = load_study(path).output
    if path.is_dir():
        path = path / RESULTS_PARQUET
    if not path.is_file():
        raise StudyFileError(f"no study results at {str(path)!r}; run the study first (`sfrt study run STUDY.toml`)")
    return pacsv.read_csv(path) if path.suffix == ".csv" else pq.read_table(path)
