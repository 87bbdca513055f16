"""Reading the HDF5 results store (layout: :mod:`sfrt_engine.io.hdf5`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from ..dose import Dose
from ..errors import MachineDataError, SfrtError
from ..grid import Grid
from ..machines import PhotonMachine, ProtonMachine, load_machine
from ..patient import HUCalibration, Patient
from ..plan.beam import Beam
from ..plan.protons import ProtonBeam, SpotLayer
from ._errors import MachineMismatchError, ResultsFileError
from .hdf5 import DOSE_GROUPS, FORMAT, SCHEMA_VERSION, Results

__all__ = ["load"]


class _Reader:
    """Typed access to one open file; every failure becomes a ResultsFileError naming the file."""

    def __init__(self, f: h5py.File, path: Path) -> None:
        self.f, self.path = f, path

    def fail(self, problem: str):
        return ResultsFileError(f"results file {str(self.path)!r}: {problem}")

    def node(self, where: str, kind=h5py.Dataset):
        obj = self.f.get(where)
        if obj is None or not isinstance(obj, kind):
            what = "dataset" if kind is h5py.Dataset else "group"
            raise self.fail(f"missing {what} '/{where}'; the file is incomplete or was edited")
        return obj

    def attr(self, obj, key: str):
        if key not in obj.attrs:
            raise self.fail(f"'{obj.name}' lacks its '{key}' attribute")
        value = obj.attrs[key]
        return value.decode() if isinstance(value, bytes) else value

    def json_attr(self, obj, key: str):
        try:
            return json.loads(self.attr(obj, key))
        except (TypeError, json.JSONDecodeError) as exc:
            raise self.fail(f"attribute '{key}' of '{obj.name}' is not valid JSON ({exc})") from None

    def json_dataset(self, where: str):
        text = self.array(where)
        try:
            return json.loads(text.decode() if isinstance(text, bytes) else text)
        except json.JSONDecodeError as exc:
            raise self.fail(f"dataset '/{where}' is not valid JSON ({exc})") from None

    def array(self, where: str) -> np.ndarray:
        ds = self.node(where)
        for key in ("units", "axis_order"):
            self.attr(ds, key)
        return ds[()]


def _read_patient(r: _Reader) -> Patient:
    g = r.node("patient", h5py.Group)
    grid = Grid(tuple(int(n) for n in r.attr(g, "shape_zyx")), tuple(r.attr(g, "spacing_xyz_mm")),
                tuple(r.attr(g, "origin_xyz_mm")))
    masks = {}
    for key, ds in r.node("patient/structures", h5py.Group).items():
        masks[str(r.attr(ds, "name"))] = r.array(f"patient/structures/{key}")
    c = r.node("patient/calibration", h5py.Group)
    calibration = HUCalibration(tuple(r.array("patient/calibration/hu")),
                                tuple(r.array("patient/calibration/density")), str(r.attr(c, "name")))
    patient = Patient(grid, r.array("patient/hu"), masks, calibration, str(r.attr(g, "name")))
    if "dicom" in g:
        patient.dicom = r.json_dataset("patient/dicom")
    return patient


def _machine_for(r: _Reader, name: str, sha: str, machines: Mapping, allow: bool, cache: dict, mismatches: list):
    if (name, sha) in cache:
        return cache[name, sha]
    if name in machines:
        machine = machines[name]
        if not isinstance(machine, (PhotonMachine, ProtonMachine)):
            raise TypeError(f"machines[{name!r}] is a {type(machine).__name__}, expected a PhotonMachine or "
                            "ProtonMachine")
        source = "the machine passed in machines="
    else:
        try:
            machine = load_machine(name)
        except (MachineDataError, OSError) as exc:
            raise r.fail(f"beams use machine {name!r}, which cannot be loaded here ({exc}); "
                         "pass it as load(..., machines={name: machine})") from None
        source = f"load_machine({name!r})"
    if machine.source_sha256 != sha:
        if not allow:
            raise MachineMismatchError(
                f"results file {str(r.path)!r}: beams were computed with machine {name!r} of sha256 "
                f"{sha or '(built in code)'}, but {source} has sha256 {machine.source_sha256 or '(built in code)'}; "
                "the machine data changed since. Pass allow_machine_mismatch=True to rebuild the beams anyway")
        mismatches.append(name)
    cache[name, sha] = machine
    return machine


def _read_proton_beam(r: _Reader, bg, machines: Mapping, allow: bool, cache: dict, mismatches: list) -> ProtonBeam:
    a = {k: r.attr(bg, k) for k in ("name", "machine_name", "machine_sha256", "isocenter_xyz_mm", "gantry_deg",
                                    "couch_deg", "collimator_deg")}
    machine = _machine_for(r, str(a["machine_name"]), str(a["machine_sha256"]), machines, allow, cache, mismatches)
    if not isinstance(machine, ProtonMachine):
        raise r.fail(f"proton beam '{bg.name}' names machine {a['machine_name']!r}, which is not a proton machine")
    layers = []
    for key in sorted(k for k in bg if k.startswith("layer_")):
        lg = bg[key]
        la = {k: r.attr(lg, k) for k in ("energy_mev", "spacing_mm", "origin_uv_mm", "range_shifter_mm")}
        layers.append(SpotLayer(float(la["energy_mev"]), r.array(f"{lg.name.lstrip('/')}/weights_gp"),
                                tuple(la["spacing_mm"]), tuple(la["origin_uv_mm"]), float(la["range_shifter_mm"])))
    return ProtonBeam(machine, tuple(a["isocenter_xyz_mm"]), float(a["gantry_deg"]), tuple(layers),
                      float(a["couch_deg"]), float(a["collimator_deg"]), str(a["name"]))


def _read_beams(r: _Reader, machines: Mapping, allow: bool, mismatches: list):
    g = r.node("beams", h5py.Group)
    cache: dict = {}
    sets = {}
    for key, s in g.items():
        items = []
        for j, bg in s.items():
            if bg.attrs.get("kind", b"photon") in ("proton", b"proton"):
                items.append(_read_proton_beam(r, bg, machines, allow, cache, mismatches))
                continue
            a = {k: r.attr(bg, k) for k in ("name", "machine_name", "machine_sha256", "isocenter_xyz_mm",
                                            "gantry_deg", "couch_deg", "collimator_deg", "beamlet_mm",
                                            "origin_uv_mm")}
            machine = _machine_for(r, str(a["machine_name"]), str(a["machine_sha256"]), machines, allow, cache,
                                   mismatches)
            items.append(Beam(machine, tuple(a["isocenter_xyz_mm"]), float(a["gantry_deg"]),
                              r.array(f"beams/{key}/{j}/weights_mu"), tuple(a["beamlet_mm"]),
                              tuple(a["origin_uv_mm"]), float(a["couch_deg"]), float(a["collimator_deg"]),
                              str(a["name"])))
        sets[str(r.attr(s, "name"))] = items
    return sets if r.attr(g, "layout") == "dict" else sets.get("beams", [])


def _read_doses(r: _Reader, group: str) -> dict:
    out = {}
    for key, ds in r.node(group, h5py.Group).items():
        arr = r.array(f"{group}/{key}")
        name = str(r.attr(ds, "name"))
        if r.attr(ds, "kind") == "Dose":
            grid = Grid(tuple(r.attr(ds, "shape_zyx")), tuple(r.attr(ds, "spacing_xyz_mm")),
                        tuple(r.attr(ds, "origin_xyz_mm")))
            out[name] = Dose(arr, grid, str(r.attr(ds, "backend")), float(r.attr(ds, "seconds")),
                             tuple(r.json_attr(ds, "beams")))
        else:
            out[name] = arr
    return out


def _read_vertices(r: _Reader):
    from ..plan.vertices import VertexLattice

    g = r.node("vertices", h5py.Group)
    info = r.json_attr(g, "info")
    return VertexLattice(
        centers_xyz_mm=r.array("vertices/centers_xyz_mm"), diameter_mm=float(r.attr(g, "diameter_mm")),
        spacing_mm=float(info.get("spacing_mm", float("nan"))), lattice=str(info.get("lattice", "")),
        offset_xyz_mm=np.asarray(info.get("offset_xyz_mm", (0.0, 0.0, 0.0)), dtype=float),
        rotation_deg=float(info.get("rotation_deg", 0.0)), labels=r.array("vertices/labels"),
        target=str(info.get("target", "")), constraints=info.get("constraints", {}))


def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise FileNotFoundError(f"results file {str(path)!r} does not exist")
    if path.is_dir():
        raise ResultsFileError(f"results file {str(path)!r} is a folder, expected an HDF5 file")
    if not h5py.is_hdf5(path):
        raise ResultsFileError(f"results file {str(path)!r} is not an HDF5 file (no HDF5 signature); "
                               "expected a file written by sfrt_engine.io.save")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        problem = "truncated (cut off, e.g. by an interrupted copy or a full disk)" if "truncated" in str(exc) \
            else "corrupt"
        raise ResultsFileError(f"results file {str(path)!r} is {problem}: {exc}") from None


def load(path, *, machines: Mapping[str, PhotonMachine] | None = None,
         allow_machine_mismatch: bool = False) -> Results:
    """Read a file written by :func:`save`.

    Beams are rebuilt with ``machines[name]`` if given, else ``load_machine(name)``; the machine's
    file hash must equal the stored one unless ``allow_machine_mismatch=True`` (the names of the
    mismatching machines are then listed in ``Results.machine_mismatches``).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ResultsFileError
        Not HDF5, truncated or corrupt, another schema version, or a missing dataset or attribute.
    MachineMismatchError
        A machine file changed since the beams were saved.
    """
    path = Path(path)
    mismatches: list[str] = []
    with _open(path) as f:
        r = _Reader(f, path)
        try:
            if f.attrs.get("format") != FORMAT:
                raise r.fail(f"not a sfrt-engine results file (format attribute {f.attrs.get('format')!r}, "
                             f"expected {FORMAT!r})")
            version = int(r.attr(f, "schema_version"))
            if version != SCHEMA_VERSION:
                raise r.fail(f"schema version {version}, but this engine reads version {SCHEMA_VERSION}; "
                             f"open it with the sfrt-engine version that wrote it ({r.attr(f, 'engine_version')})")
            provenance = {k: r.attr(f, k) for k in ("engine_version", "created_utc", "backend")}
            provenance.update(schema_version=version, machines=r.json_attr(f, "machines"),
                              **{k: str(f.attrs[k]) for k in ("python_version", "numpy_version", "h5py_version",
                                                                "hdf5_version") if k in f.attrs})
            res = Results(path=path, provenance=provenance, settings=r.json_attr(f, "settings"))
            if "patient" in f:
                res.patient = _read_patient(r)
            if "beams" in f:
                res.beams = _read_beams(r, machines or {}, allow_machine_mismatch, mismatches)
            for group in DOSE_GROUPS:
                if group in f:
                    setattr(res, group, _read_doses(r, group))
            if "vertices" in f:
                res.vertices = _read_vertices(r)
            if "report" in f:
                res.report = r.json_dataset("report")
        except SfrtError:
            raise
        except (OSError, RuntimeError, KeyError) as exc:  # h5py's errors for unreadable chunks or headers
            raise r.fail(f"cannot be read, it is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    res.machine_mismatches = mismatches
    return res
