"""Machine files: built-in beam data and the loader.

A machine file is JSON; every table carries its units and its source. Built-in
machines live in ``sfrt_engine/machines/data``; :func:`load_machine` also takes a
path to a user file of the same format.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from ..errors import MachineDataError
from .photon import MAX_COMPONENTS, MlcModel, PhotonMachine, fit_photon_machine, mlc_model
from .proton import ProtonMachine, build_proton_machine

__all__ = ["load_machine", "builtin_machines", "PhotonMachine", "ProtonMachine", "fit_photon_machine",
           "build_proton_machine", "MAX_COMPONENTS"]
__all__ += ["MlcModel", "mlc_model"]

_CACHE: dict[str, object] = {}

_DATA = "data"


def builtin_machines() -> list[str]:
    """Names of the machines shipped with the package."""
    folder = resources.files(__package__) / _DATA
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def _read(name_or_path) -> tuple[dict, bytes, str]:
    path = Path(str(name_or_path))
    if path.suffix == ".json" and path.exists():
        raw = path.read_bytes()
        where = str(path)
    else:
        entry = resources.files(__package__) / _DATA / f"{name_or_path}.json"
        if not entry.is_file():
            raise MachineDataError(
                f"machine {name_or_path!r}: no such built-in machine or .json file; "
                f"built-in machines: {', '.join(builtin_machines())}"
            )
        raw = entry.read_bytes()
        where = f"built-in machine {name_or_path!r}"
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MachineDataError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MachineDataError(f"{where}: expected a JSON object at the top level")
    return data, raw, where


def load_machine(name_or_path) -> PhotonMachine | ProtonMachine:
    """Load a built-in machine by name (e.g. ``"photon_6mv"``) or a machine JSON file.

    Raises
    ------
    MachineDataError
        If the machine is unknown or its file is malformed.
    """
    data, raw, where = _read(name_or_path)
    digest = hashlib.sha256(raw).hexdigest()
    if digest in _CACHE:  # machines are immutable: one build per file content
        return _CACHE[digest]
    machine = _build(data, digest, where)
    _CACHE[digest] = machine
    return machine


def _build(data: dict, digest: str, where: str):
    modality = data.get("modality")
    try:
        if modality == "proton":
            return build_proton_machine(data, digest)
        if modality == "photon":
            pdd = data["reference_pdd"]
            cal = data["calibration"]
            table = data.get("table", {})
            return fit_photon_machine(
                str(data["name"]),
                sad_mm=float(data["sad_mm"]),
                pdd_depth_mm=pdd["depth_mm"],
                pdd_percent=pdd["pdd_percent"],
                field_mm=float(pdd["field_mm"]),
                ssd_mm=float(pdd["ssd_mm"]),
                components=data["lateral"]["components"],
                gy_per_mu_at_dmax=float(cal["gy_per_mu"]),
                step_mm=float(table.get("step_mm", 1.0)),
                max_depth_mm=float(table.get("max_depth_mm", 500.0)),
                source_sha256=digest,
                metadata={k: data[k] for k in ("description", "calibration", "reference_pdd", "lateral", "nominal_energy_mev",
                                                 "fff", "mlc") if k in data},
            )
    except KeyError as exc:
        raise MachineDataError(f"{where}: missing key {exc}") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, MachineDataError):
            raise
        raise MachineDataError(f"{where}: malformed value ({exc})") from None
    raise MachineDataError(f"{where}: modality {modality!r} is not supported; expected 'photon' or 'proton'")
