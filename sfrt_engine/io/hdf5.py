"""HDF5 results store: a patient, beams, doses, EQD2, vertices and the report in one file.

Layout (schema version 1)::

    /                         attrs: format, schema_version, engine_version, created_utc,
                              backend, machines (JSON name -> sha256), settings (JSON)
    /patient                  attrs: name, shape_zyx, spacing_xyz_mm, origin_xyz_mm
    /patient/dicom            JSON text of ``patient.dicom`` (UIDs of the CT it came from), if any
    /patient/hu               float32 [z, y, x], HU
    /patient/structures/<s>   bool [z, y, x]
    /patient/calibration/hu, /patient/calibration/density
    /beams/<set>/<nnnn>       attrs: beam geometry, machine name and sha256; dataset weights_mu [v, u], MU
                              (proton beams: attr kind = "proton", groups layer_<kkkk> with attrs energy_mev,
                              spacing_mm, origin_uv_mm, range_shifter_mm and dataset weights_gp [v, u], Gp)
    /unit_doses/<c>, /doses/<arm>, /eqd2/<arm>    [z, y, x], Gy
    /vertices/centers_xyz_mm, /vertices/labels    attrs: info (JSON)
    /report                   JSON text

Every dataset carries ``units`` and ``axis_order`` attributes; named items (structures,
beam sets, doses) also carry their ``name``, since their HDF5 key is percent-encoded where needed. Arrays are gzip-compressed and come back bit-identical.
The file is written to a temporary name and renamed (DESIGN 8).

:func:`~sfrt_engine.io.save` (``_hdf5_save.py``) writes it and :func:`~sfrt_engine.io.load`
(``_hdf5_load.py``) reads it; this module holds what both share.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..patient import Patient

__all__ = ["SCHEMA_VERSION", "FORMAT", "DOSE_GROUPS", "Results", "to_json"]

#: Version of the layout above; files of another version are refused by :func:`~sfrt_engine.io.load`.
SCHEMA_VERSION = 1
FORMAT = "sfrt-engine results"
DOSE_GROUPS = {"unit_doses": "dose of one unit of the component", "doses": "physical dose", "eqd2": "EQD2"}


@dataclass
class Results:
    """What :func:`load` returns; absent parts are ``None`` (or empty dicts for doses).

    Attributes
    ----------
    path : Path
    provenance : dict
        ``schema_version``, ``engine_version``, ``created_utc``, ``backend``, ``machines``,
        and the writer's Python, NumPy and h5py versions.
    patient : Patient or None
    beams : dict of str to list of Beam, list of Beam, or None
        As given to :func:`save`.
    unit_doses, doses, eqd2 : dict of str to ndarray or Dose
        [z, y, x] [Gy]; a :class:`Dose` where a Dose was saved.
    vertices : VertexLattice or None
    report, settings : dict or None
    machine_mismatches : list of str
        Machines whose file hash differed, when loaded with ``allow_machine_mismatch=True``.
    """

    path: Path
    provenance: dict
    patient: Patient | None = None
    beams: dict | list | None = None
    unit_doses: dict = field(default_factory=dict)
    doses: dict = field(default_factory=dict)
    eqd2: dict = field(default_factory=dict)
    vertices: object | None = None
    report: dict | None = None
    settings: dict | None = None
    machine_mismatches: list = field(default_factory=list)




def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, set, tuple)):
        return str(obj) if isinstance(obj, Path) else list(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"cannot store a {type(obj).__name__} as JSON; convert it to numbers, strings, lists or dicts")


def to_json(value, what: str) -> str:
    """JSON text of ``value`` (NumPy scalars and arrays allowed); TypeError names ``what``."""
    try:
        return json.dumps(value, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what}: {exc}") from None
