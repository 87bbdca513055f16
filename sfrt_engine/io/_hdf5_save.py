"""Writing the HDF5 results store (layout: :mod:`sfrt_engine.io.hdf5`)."""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import h5py
import numpy as np

from ..dose import Dose
from ..grid import Grid
from ..patient import Patient
from ..plan.beam import Beam
from ..plan.protons import ProtonBeam
from ._atomic import atomic_output
from .hdf5 import DOSE_GROUPS, FORMAT, SCHEMA_VERSION, to_json

__all__ = ["save"]

_ZYX = "z,y,x"


def _key(name: str) -> str:
    """HDF5-safe, one-to-one link name: the name, percent-encoded where needed (``/``, ``%``, ``.`` and ``..``)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"names must be non-empty strings, got {name!r}")
    key = quote(name, safe=" -_+=()[]{},;:#@!~'.")
    return key if key not in (".", "..") else key.replace(".", "%2E")


def _dataset(group, key: str, data, units: str, axis_order: str, **attrs):
    if isinstance(data, str):
        ds = group.create_dataset(key, data=data, dtype=h5py.string_dtype())
    else:
        arr = np.asarray(data)
        opts = {"compression": "gzip", "compression_opts": 4, "shuffle": True} if arr.ndim and arr.size > 1 else {}
        ds = group.create_dataset(key, data=arr, **opts)
    ds.attrs["units"] = units
    ds.attrs["axis_order"] = axis_order
    for k, v in attrs.items():
        ds.attrs[k] = v
    return ds


def _write_patient(f: h5py.File, patient: Patient) -> None:
    g = f.create_group("patient", track_order=True)
    g.attrs["name"] = patient.name
    for k, v in patient.grid.to_dict().items():
        g.attrs[k] = v
    if getattr(patient, "dicom", None) is not None:  # a dataset: the CT's SOP UIDs can outgrow an attribute's 64 kB
        _dataset(g, "dicom", to_json(patient.dicom, "patient.dicom"), "none (JSON text)", "none")
    _dataset(g, "hu", patient.hu, "HU", _ZYX)
    s = g.create_group("structures", track_order=True)
    for name in patient.structures:
        _dataset(s, _key(name), patient.structures[name], "1 (boolean mask)", _ZYX, name=name)
    c = g.create_group("calibration")
    c.attrs["name"] = patient.calibration.name
    _dataset(c, "hu", np.asarray(patient.calibration.hu), "HU", "node")
    _dataset(c, "density", np.asarray(patient.calibration.density), "1 (relative electron density)", "node")


def _beam_sets(beams) -> tuple[str, dict[str, list]]:
    if isinstance(beams, (Beam, ProtonBeam)):
        beams = [beams]
    if isinstance(beams, Mapping):
        layout, sets = "dict", {str(k): list(v) for k, v in beams.items()}
    elif isinstance(beams, Sequence):
        layout, sets = "list", {"beams": list(beams)}
    else:
        raise TypeError(f"beams: expected a list of Beam or a dict of name -> list of Beam, got {type(beams).__name__}")
    for set_name, items in sets.items():
        for i, b in enumerate(items):
            if not isinstance(b, (Beam, ProtonBeam)):
                raise TypeError(f"beams[{set_name!r}][{i}] is a {type(b).__name__}, expected sfrt_engine.plan.Beam "
                                "or ProtonBeam")
    return layout, sets


def _machines_of(sets: dict[str, list[Beam]]) -> dict[str, str]:
    machines: dict[str, str] = {}
    for items in sets.values():
        for b in items:
            known = machines.setdefault(b.machine.name, b.machine.source_sha256)
            if known != b.machine.source_sha256:
                raise ValueError(f"beams use two different machines named {b.machine.name!r} "
                                 f"(sha256 {known[:12]}... and {b.machine.source_sha256[:12]}...); rename one")
    return machines


def _write_beams(f: h5py.File, layout: str, sets: dict[str, list[Beam]]) -> None:
    g = f.create_group("beams", track_order=True)
    g.attrs["layout"] = layout
    for set_name, items in sets.items():
        s = g.create_group(_key(set_name), track_order=True)
        s.attrs["name"] = set_name
        for j, b in enumerate(items):
            bg = s.create_group(f"{j:04d}")
            if isinstance(b, ProtonBeam):
                _write_proton_beam(bg, b)
                continue
            bg.attrs.update({
                "name": b.name, "machine_name": b.machine.name, "machine_sha256": b.machine.source_sha256,
                "isocenter_xyz_mm": b.isocenter_xyz_mm, "gantry_deg": b.gantry_deg, "couch_deg": b.couch_deg,
                "collimator_deg": b.collimator_deg, "beamlet_mm": b.beamlet_mm, "origin_uv_mm": b.origin_uv_mm,
            })
            _dataset(bg, "weights_mu", b.weights_mu, "MU", "v,u")


def _write_proton_beam(bg: h5py.Group, b: ProtonBeam) -> None:
    """``kind = "proton"``, the pose, and one group per energy layer with its spot weights [Gp]."""
    bg.attrs.update({
        "kind": "proton", "name": b.name, "machine_name": b.machine.name, "machine_sha256": b.machine.source_sha256,
        "isocenter_xyz_mm": b.isocenter_xyz_mm, "gantry_deg": b.gantry_deg, "couch_deg": b.couch_deg,
        "collimator_deg": b.collimator_deg,
    })
    for k, layer in enumerate(b.layers):
        lg = bg.create_group(f"layer_{k:04d}")
        lg.attrs.update({"energy_mev": layer.energy_mev, "spacing_mm": layer.spacing_mm,
                         "origin_uv_mm": layer.origin_uv_mm, "range_shifter_mm": layer.range_shifter_mm})
        _dataset(lg, "weights_gp", layer.weights_gp, "Gp (1e9 protons)", "v,u")


def _dose_array(name: str, value, group: str, grid: Grid | None) -> tuple[np.ndarray, dict]:
    attrs: dict = {"kind": "ndarray"}
    if isinstance(value, Dose):
        attrs = {"kind": "Dose", "backend": value.backend, "seconds": float(value.seconds),
                 "beams": to_json(list(value.beams), f"{group}[{name!r}].beams"), **value.grid.to_dict()}
        if grid is not None and value.grid != grid:
            raise ValueError(f"{group}[{name!r}]: dose grid {value.grid} differs from the patient grid {grid}")
        arr = value.gy
    elif hasattr(value, "dose_gy"):  # a plan Component: keep what one unit means
        attrs["component_unit"] = str(getattr(value, "unit", ""))
        arr = value.dose_gy
    else:
        arr = value
    arr = np.asarray(arr)
    if arr.ndim != 3 or not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{group}[{name!r}]: expected a 3-D float array [z, y, x], got {arr.dtype} {arr.shape}")
    if grid is not None and arr.shape != grid.shape_zyx:
        raise ValueError(f"{group}[{name!r}]: shape {arr.shape} differs from the patient grid {grid.shape_zyx}")
    return arr, attrs


def _write_doses(f: h5py.File, group: str, doses: Mapping, grid: Grid | None) -> None:
    g = f.create_group(group, track_order=True)
    for name, value in doses.items():
        arr, attrs = _dose_array(name, value, group, grid)
        _dataset(g, _key(name), arr, "Gy", _ZYX, name=name, quantity=DOSE_GROUPS[group], **attrs)


def _write_vertices(f: h5py.File, vertices) -> None:
    g = f.create_group("vertices")
    info = vertices.to_dict() if hasattr(vertices, "to_dict") else {}
    info.pop("centers_xyz_mm", None)
    g.attrs["info"] = to_json(info, "vertices")
    g.attrs["diameter_mm"] = float(vertices.diameter_mm)
    _dataset(g, "centers_xyz_mm", np.asarray(vertices.centers_xyz_mm, dtype=float).reshape(-1, 3), "mm",
             "vertex,xyz")
    _dataset(g, "labels", vertices.labels, "1 (vertex number, 0 outside)", _ZYX)


def _root_attrs(f: h5py.File, backend: str, machines: dict, settings) -> None:
    from .. import __version__

    f.attrs.update({
        "format": FORMAT, "schema_version": SCHEMA_VERSION, "engine_version": __version__,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "backend": backend,
        "machines": to_json(machines, "machines"), "settings": to_json(settings, "settings"),
        "python_version": platform.python_version(), "numpy_version": np.__version__,
        "h5py_version": h5py.__version__, "hdf5_version": h5py.version.hdf5_version,
    })


def save(path, *, patient: Patient | None = None, beams=None, unit_doses: Mapping | None = None,
         doses: Mapping | None = None, eqd2: Mapping | None = None, vertices=None, report: Mapping | None = None,
         settings=None, backend: str | None = None) -> Path:
    """Write a results file atomically (a failed write leaves an earlier file at ``path`` intact).

    Parameters
    ----------
    path : str or Path
        Target file (conventionally ``.h5``); its folder is created if needed.
    patient : Patient, optional
        Grid, HU, structures, calibration and ``patient.dicom`` (if any).
    beams : list of Beam or ProtonBeam, or dict of str to such lists, optional
        E.g. ``{"CRT": [...], "BOOST": [...]}``; machines are recorded by name and file hash.
    unit_doses, doses, eqd2 : dict of str to ndarray, Dose or Component, optional
        Unit dose per component, physical dose per arm and EQD2 per arm, [z, y, x] [Gy].
    vertices : VertexLattice, optional
    report : dict, optional
        JSON-serialisable (NumPy scalars and arrays allowed).
    settings : dict or object with ``to_dict()``, optional
    backend : str, optional
        Backend that computed the doses; defaults to the one recorded by the first Dose given.

    Returns
    -------
    Path
        The file written.
    """
    if patient is not None and not isinstance(patient, Patient):
        raise TypeError(f"patient must be a sfrt_engine.Patient, got {type(patient).__name__}")
    grid = patient.grid if patient is not None else None
    layout, sets = _beam_sets(beams) if beams is not None else (None, {})
    machines = _machines_of(sets)
    groups = {"unit_doses": unit_doses or {}, "doses": doses or {}, "eqd2": eqd2 or {}}
    for group, values in groups.items():
        if not isinstance(values, Mapping):
            raise TypeError(f"{group}: expected a dict of name -> array, got {type(values).__name__}")
    if backend is None:
        found = [v.backend for vs in groups.values() for v in vs.values() if isinstance(v, Dose)]
        backend = found[0] if found else "unknown"
    if hasattr(settings, "to_dict"):
        settings = settings.to_dict()
    report_text = to_json(report, "report") if report is not None else None
    path = Path(path)
    with atomic_output(path) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        _root_attrs(f, str(backend), machines, settings)
        if patient is not None:
            _write_patient(f, patient)
        if layout is not None:
            _write_beams(f, layout, sets)
        for group, values in groups.items():
            if values:
                _write_doses(f, group, values, grid)
        if vertices is not None:
            _write_vertices(f, vertices)
        if report_text is not None:
            _dataset(f, "report", report_text, "none (JSON text)", "none")
    return path
