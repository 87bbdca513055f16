"""Study files: a TOML description of a cohort study, validated before any job starts.

Layout (``sfrt study init`` writes a commented example; every key is optional except a cohort)::

    [study]        name, output (folder), backend, techniques (list), csv (bool), unit_doses (bool)
    [cohort.synthetic]   n, seed, spacing_mm               -> patients SYN001, SYN002, ...
    [[cohort.dicom]]     cases (folder, glob or list of them), target, avoid, alpha_beta_gy, ptv_margin_mm
    [cohort.overrides.<PATIENT_ID>]   target, avoid, alpha_beta_gy (one case)
    [schedules]    vertex_dose_gy, vertex_sessions, crt_fractions, boost_mode (value or list)
    [[lattice]]    type, diameter_mm, spacing_mm, name     (one table per variant)
    [alpha_beta]   <set name> = { STRUCTURE = Gy, ... }    (one entry per set)

Relative paths are relative to the study file's folder. A DICOM case's patient ID is the
CT's PatientID (the folder name when it is empty). Every error names the file, the line,
the key, the value, what was expected and the fix (:class:`~sfrt_engine.errors.StudyFileError`).
"""

from __future__ import annotations

import glob
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import PlanError, StudyFileError
from ..plan.schedule import BOOST_MODES, SESSIONS_PER_WEEK, crt_schedule, sfrt_schedule
from ._tomlreader import Reader

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["BACKENDS", "Case", "LatticeVariant", "Study", "example_study", "load_study"]

BACKENDS = ("auto", "cuda", "cupy", "cpp", "numpy")
_LATTICE_TYPES = ("hcp", "cubic")
_SCHEDULE_AXES = {"vertex_dose_gy": "Gy", "vertex_sessions": "", "crt_fractions": "", "boost_mode": ""}
_SYNTHETIC_AVOID = ("FEMUR", "SKIN")
#: Structures of every synthetic patient, and those the comparison adds (alpha/beta may name any of them).
_SYNTHETIC_STRUCTURES = ("BODY", "GTV", "PTV", "FEMUR", "SKIN", "NORMAL_TISSUE", "VERTICES", "VALLEY")


@dataclass(frozen=True)
class Case:
    """One patient of the cohort.

    ``source`` is ``{"kind": "synthetic", "seed", "index", "spacing_mm"}`` or
    ``{"kind": "dicom", "folder", "ptv_margin_mm"}``; ``content_sha256`` hashes the case's
    files (DICOM) or its generator parameters (synthetic).
    """

    patient_id: str
    source: dict
    target: str
    avoid: tuple[str, ...]
    alpha_beta_gy: dict
    content_sha256: str


@dataclass(frozen=True)
class LatticeVariant:
    """Vertex lattice of one variant: type (hcp or cubic), sphere diameter and spacing [mm]."""

    name: str
    lattice: str = "hcp"
    diameter_mm: float = 15.0
    spacing_mm: float = 30.0


@dataclass
class Study:
    """A validated study file (see the module docstring)."""

    path: Path
    name: str
    output: Path
    cases: list[Case]
    techniques: tuple[str, ...]
    lattices: tuple[LatticeVariant, ...]
    schedules: dict[str, list]
    alpha_beta_sets: dict[str, dict]
    backend: str = "auto"
    csv: bool = False
    unit_doses: bool = True

    def jobs(self) -> list:
        """One :class:`~sfrt_engine.study.jobs.JobSpec` per patient x technique x lattice variant."""
        from .jobs import JobSpec

        return [JobSpec.create(case, technique, variant, self.backend, self.schedules, self.alpha_beta_sets)
                for case in self.cases for technique in self.techniques for variant in self.lattices]


def _hash_folder(folder: Path) -> str:
    h = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(file.relative_to(folder).as_posix().encode() + b"\0")
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _dicom_patient_id(reader: Reader, folder: Path, where: tuple) -> str:
    """PatientID of the case's CT (folder name when empty); errors when the folder holds no CT image."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    modalities: set[str] = set()
    for file in files:
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True, specific_tags=["Modality", "PatientID"])
        except (InvalidDicomError, OSError, ValueError):
            continue
        modality = str(getattr(ds, "Modality", ""))
        modalities.add(modality or "?")
        if modality == "CT":
            return str(getattr(ds, "PatientID", "") or "").strip() or folder.name
    found = f"DICOM modalities there: {', '.join(sorted(modalities))}" if modalities else "no DICOM file there"
    reader.fail(where, f"case folder {str(folder)!r} has no CT image ({len(files)} files, {found}); a case folder "
                       "holds one axial CT series and its RTSTRUCT: fix the path or remove the folder from the glob")


def _synthetic_cases(reader: Reader, data: dict) -> list[Case]:
    from ..synthetic_cohort import cohort_cases

    where = ("cohort", "synthetic")
    reader.table(data, where, {"n": "", "seed": "", "spacing_mm": ""})
    if "n" not in data:
        reader.fail(where, "missing key 'n' (number of synthetic patients)")
    n = reader.number(data["n"], (*where, "n"), "", lo=1, integer=True)
    seed = reader.number(data.get("seed", 0), (*where, "seed"), "", lo=0, integer=True)
    # at most the 5 mm skin rind of the phantoms (sarcoma_thigh skin_mm), or SKIN would have no voxel
    spacing = float(reader.number(data.get("spacing_mm", 2.5), (*where, "spacing_mm"), "mm", lo=0.5, hi=5.0))
    cases = []
    for geometry in cohort_cases(n, seed):
        source = {"kind": "synthetic", "seed": seed, "index": geometry.index, "spacing_mm": spacing}
        digest = hashlib.sha256(json.dumps(geometry.to_dict() | source, sort_keys=True).encode()).hexdigest()
        cases.append(Case(geometry.patient_id, source, "GTV", _SYNTHETIC_AVOID, {}, digest))
    return cases


def _dicom_cases(reader: Reader, blocks, base: Path) -> list[tuple[Case, tuple]]:
    if isinstance(blocks, dict):
        blocks = [blocks]
    if not isinstance(blocks, list):
        reader.fail(("cohort", "dicom"), f"{blocks!r}: expected [[cohort.dicom]] tables")
    out = []
    for i, block in enumerate(blocks):
        where = ("cohort", "dicom", i)
        reader.table(block, where, {"cases": "", "target": "", "avoid": "", "alpha_beta_gy": "", "ptv_margin_mm": ""})
        if "cases" not in block:
            reader.fail(where, "missing key 'cases' (a case folder, a glob such as \"cases/*\", or a list of them)")
        patterns = reader.strings(block["cases"], (*where, "cases"), allow_empty=False)
        target = reader.string(block.get("target", "GTV"), (*where, "target"))
        avoid = reader.strings(block.get("avoid", []), (*where, "avoid"))
        ab = reader.alpha_beta(block.get("alpha_beta_gy", {}), (*where, "alpha_beta_gy"))
        margin = float(reader.number(block.get("ptv_margin_mm", 5.0), (*where, "ptv_margin_mm"), "mm", lo=0.0))
        for pattern in patterns:
            full = base / pattern
            if glob.has_magic(pattern):
                folders = sorted(Path(p) for p in glob.glob(str(full)) if Path(p).is_dir())
                if not folders:
                    reader.fail((*where, "cases"), f"{pattern!r} matches no folder under {base}; fix the glob "
                                                   "(relative paths are relative to the study file)")
            else:
                if not full.is_dir():
                    reader.fail((*where, "cases"), f"case folder {str(full)!r} does not exist; fix the path "
                                                   "(relative paths are relative to the study file)")
                folders = [full]
            for folder in folders:
                pid = _dicom_patient_id(reader, folder, (*where, "cases"))
                source = {"kind": "dicom", "folder": str(folder.resolve()), "ptv_margin_mm": margin}
                out.append((Case(pid, source, target, avoid, ab, _hash_folder(folder)), (*where, "cases")))
    return out


def _apply_overrides(reader: Reader, cases: list[Case], overrides) -> list[Case]:
    where = ("cohort", "overrides")
    reader.table(overrides, where, {c.patient_id: "" for c in cases} | {k: "" for k in overrides})
    by_id = {c.patient_id: i for i, c in enumerate(cases)}
    out = list(cases)
    for pid, data in overrides.items():
        if pid not in by_id:
            reader.fail((*where, pid), f"no patient {pid!r} in the cohort; patient IDs: {', '.join(by_id)}")
        reader.table(data, (*where, pid), {"target": "", "avoid": "", "alpha_beta_gy": ""})
        c = out[by_id[pid]]
        out[by_id[pid]] = Case(
            c.patient_id, c.source, reader.string(data.get("target", c.target), (*where, pid, "target")),
            reader.strings(data.get("avoid", list(c.avoid)), (*where, pid, "avoid")),
            c.alpha_beta_gy | reader.alpha_beta(data.get("alpha_beta_gy", {}), (*where, pid, "alpha_beta_gy")),
            c.content_sha256)
    return out


def _schedules(reader: Reader, data: dict) -> dict[str, list]:
    where = ("schedules",)
    reader.table(data, where, _SCHEDULE_AXES)
    defaults = {"vertex_dose_gy": [12.0], "vertex_sessions": [4], "crt_fractions": [20], "boost_mode": ["integrated"]}
    axes: dict[str, list] = {}
    for key, unit in _SCHEDULE_AXES.items():
        values = data.get(key, defaults[key])
        values = values if isinstance(values, list) else [values]
        if not values:
            reader.fail((*where, key), "empty list: the schedule grid needs at least one value on every axis; "
                                       f"e.g. {key} = {defaults[key]!r}".replace("'", '"'))
        checked = []
        for v in values:
            if key == "boost_mode":
                checked.append(reader.string(v, (*where, key), BOOST_MODES))
            elif key == "vertex_dose_gy":
                dv = float(reader.number(v, (*where, key), unit))
                if not 8.0 <= dv <= 15.0:
                    cgy = " (in cGy? the key's unit is Gy)" if dv > 100 else ""
                    reader.fail((*where, key), f"{v!r}: expected 8 to 15 Gy per vertex session{cgy} "
                                               "(protocol NCT06980259)")
                checked.append(dv)
            else:
                n = reader.number(v, (*where, key), unit, integer=True)
                try:
                    crt_schedule(n) if key == "crt_fractions" else sfrt_schedule(20, n, 12.0, "separate")
                except PlanError as exc:
                    reader.fail((*where, key), str(exc))
                checked.append(int(n))
        if len(set(checked)) != len(checked):
            reader.fail((*where, key), f"{values!r}: a value is repeated; give each value once")
        axes[key] = checked
    if not any(SESSIONS_PER_WEEK * (m - 1) < n for m in axes["vertex_sessions"] for n in axes["crt_fractions"]):
        reader.fail((*where, "vertex_sessions"), f"{axes['vertex_sessions']} with crt_fractions "
                    f"{axes['crt_fractions']}: no schedule of the grid fits (vertex session m opens week m, so m = 4 "
                    f"needs at least {SESSIONS_PER_WEEK * 3 + 1} CRT fractions); add more fractions or fewer sessions")
    return axes


def _lattices(reader: Reader, data) -> tuple[LatticeVariant, ...]:
    single = isinstance(data, dict)  # [lattice] instead of [[lattice]]: one variant
    data = [data] if single else data
    if not isinstance(data, list) or not data:
        reader.fail(("lattice",), f"{data!r}: expected one or more [[lattice]] tables")
    out = []
    for i, entry in enumerate(data):
        where = ("lattice",) if single else ("lattice", i)
        reader.table(entry, where, {"type": "", "diameter_mm": "", "spacing_mm": "", "name": ""})
        kind = reader.string(entry.get("type", "hcp"), (*where, "type"), _LATTICE_TYPES)
        d = float(reader.number(entry.get("diameter_mm", 15.0), (*where, "diameter_mm"), "mm", lo=1.0, hi=100.0))
        s = float(reader.number(entry.get("spacing_mm", 30.0), (*where, "spacing_mm"), "mm", lo=1.0, hi=300.0))
        if s < d:
            reader.fail((*where, "spacing_mm"), f"{s:g} mm < diameter_mm {d:g} mm: vertices would overlap; "
                                                "give a spacing at least the diameter")
        name = reader.string(entry.get("name", f"{kind}-d{d:g}-s{s:g}"), (*where, "name"))
        out.append(LatticeVariant(name, kind, d, s))
    names = [v.name for v in out]
    for i, name in enumerate(names):
        if names.index(name) != i:
            reader.fail(("lattice", i), f"variant {name!r} appears twice; give each [[lattice]] a distinct name")
    return tuple(out)


def load_study(path) -> Study:
    """Read and validate a study file.

    Raises
    ------
    StudyFileError
        Unknown keys, wrong types or units, empty schedule axes, a grid with no schedule of the
        protocol, case folders that do not exist or hold no CT, duplicate patient IDs; the message
        names the file, line, key and value, and says how to fix it.
    """
    from ..plan.techniques import available_techniques

    path = Path(path)
    if not path.is_file():
        raise StudyFileError(f"study file {str(path)!r} does not exist; create one with `sfrt study init {path}`")
    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyFileError(f"{path}: not valid TOML ({exc}); fix the syntax at that line") from None
    reader = Reader(path, text)
    base = path.parent.resolve()
    reader.table(data, (), {"study": "", "cohort": "", "schedules": "", "lattice": "", "alpha_beta": ""})
    head = reader.table(data.get("study", {}), ("study",), {"name": "", "output": "", "backend": "",
                                                            "techniques": "", "csv": "", "unit_doses": ""})
    techniques = reader.strings(head.get("techniques", ["imrt"]), ("study", "techniques"), allow_empty=False)
    known = sorted(available_techniques())
    for t in techniques:
        if t not in known:
            reader.fail(("study", "techniques"), f"{t!r}: not a technique; expected some of {', '.join(known)}")
    for flag in ("csv", "unit_doses"):
        if not isinstance(head.get(flag, True), bool):
            reader.fail(("study", flag), f"{head[flag]!r}: expected true or false")
    output = reader.string(head.get("output", f"{path.stem}_results"), ("study", "output"))

    cohort = reader.table(data.get("cohort", {}), ("cohort",), {"synthetic": "", "dicom": "", "overrides": ""})
    if "synthetic" not in cohort and "dicom" not in cohort:
        reader.fail(("cohort",), "no patients: add [cohort.synthetic] (n = 4) or [[cohort.dicom]] (cases = \"...\")")
    located = [(c, ("cohort", "synthetic")) for c in _synthetic_cases(reader, cohort["synthetic"])] \
        if "synthetic" in cohort else []
    located += _dicom_cases(reader, cohort["dicom"], base) if "dicom" in cohort else []
    seen: dict[str, Case] = {}
    for case, where in located:
        if case.patient_id in seen:
            first = seen[case.patient_id].source.get("folder", "the synthetic cohort")
            here = case.source.get("folder", "the synthetic cohort")
            reader.fail(where, f"duplicate patient ID {case.patient_id!r} ({first} and {here}); every case needs its "
                               "own PatientID: remove the duplicate folder or fix its PatientID")
        seen[case.patient_id] = case
    cases = _apply_overrides(reader, [c for c, _ in located], cohort.get("overrides", {}))

    ab_data = data.get("alpha_beta", {"defaults": {}})
    if not isinstance(ab_data, dict) or not ab_data:
        reader.fail(("alpha_beta",), f"{ab_data!r}: expected named sets, e.g. defaults = {{}} and gtv10 = {{ GTV = 10.0 }}")
    ab_sets = {name: reader.alpha_beta(v, ("alpha_beta", name)) for name, v in ab_data.items()}
    if all(c.source["kind"] == "synthetic" for c in cases):  # structure names are known before any job
        for name, values in ab_sets.items():
            for structure in values:
                if structure not in _SYNTHETIC_STRUCTURES:
                    reader.fail(("alpha_beta", name, structure), f"not a structure of the synthetic patients; "
                                f"expected some of {', '.join(_SYNTHETIC_STRUCTURES)}")
    return Study(
        path=path.resolve(), name=reader.string(head.get("name", path.stem), ("study", "name")),
        output=(base / output).resolve(), cases=cases, techniques=techniques,
        lattices=_lattices(reader, data.get("lattice", [{}])), schedules=_schedules(reader, data.get("schedules", {})),
        alpha_beta_sets=ab_sets, backend=reader.string(head.get("backend", "auto"), ("study", "backend"), BACKENDS),
        csv=head.get("csv", False), unit_doses=head.get("unit_doses", True))


def example_study() -> str:
    """Text of the commented example study that ``sfrt study init`` writes (runs as it is)."""
    return (Path(__file__).with_name("example_study.toml")).read_text()
