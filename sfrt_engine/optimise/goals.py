"""Goal sets: the objectives of each plan component, read from TOML and checked before any dose.

A goal file has one table per component (``[crt]``, ``[boost]``; a component without a table is
not optimised: its fields are used as the technique built them), each with an optional
``max_iterations`` and an array of ``[[<component>.goal]]`` tables::

    [crt]
    max_iterations = 60
    [[crt.goal]]
    type = "dvh_min"        # one of GOAL_TYPES
    structure = "PTV"
    dose_pct = 100.0        # percent of the component's prescription (or dose_gy, in Gy)
    volume_pct = 95.0
    weight = 100.0

Doses are given either in Gy (``dose_gy``, ``reference_gy``) or in percent of the
component's prescription (``dose_pct``, ``reference_pct``): the CRT prescription is the dose
per fraction, the boost prescription the vertex dose per session. Any other key, a key
without its unit, a unit that does not fit the goal type or a misspelt type is an error
that names the key, the file and what is expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import PlanError, StructureError
from . import objectives as obj

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

__all__ = ["DEFAULT_GOALS_FILE", "GOAL_TYPES", "Goal", "GoalSet", "default_goals", "load_goals"]

#: The default goal sets of the sarcoma comparison (documented line by line in the file).
DEFAULT_GOALS_FILE = Path(__file__).resolve().parent.parent / "machines" / "data" / "goals_sarcoma.toml"

#: type -> (objective class, required parameters, optional parameters). Dose parameters are named without
#: their unit here ("dose", "reference"); the file gives them as <name>_gy or <name>_pct.
GOAL_TYPES: dict[str, tuple[type, tuple[str, ...], tuple[str, ...]]] = {
    "min_dose": (obj.MinDose, ("dose",), ()),
    "max_dose": (obj.MaxDose, ("dose",), ()),
    "squared_underdose": (obj.SquaredUnderdose, ("reference",), ()),
    "squared_overdose": (obj.SquaredOverdose, ("reference",), ()),
    "squared_deviation": (obj.SquaredDeviation, ("reference",), ()),
    "mean_dose": (obj.MeanDose, (), ("dose",)),
    "dvh_min": (obj.DvhMin, ("dose", "volume_pct"), ()),
    "dvh_max": (obj.DvhMax, ("dose", "volume_pct"), ()),
    "geud": (obj.Geud, ("dose", "a"), ("kind",)),
    "valley": (obj.Valley, (), ("peak_structure", "max_ratio")),
}
_DOSE_PARAMS = ("dose", "reference")
COMPONENTS = ("crt", "boost")


@dataclass(frozen=True)
class Goal:
    """One goal as written in a file: its type, structure, weight and parameters (doses in Gy or %)."""

    type: str
    structure: str
    weight: float = 1.0
    params: dict = field(default_factory=dict)

    def objective(self, prescription_gy: float) -> obj.Objective:
        """The objective with doses in Gy for a component prescribed ``prescription_gy``."""
        cls = GOAL_TYPES[self.type][0]
        kwargs = {}
        for key, value in self.params.items():
            if key.endswith("_pct") and key[:-4] in _DOSE_PARAMS:
                kwargs[key[:-4] + "_gy"] = float(value) * prescription_gy / 100.0
            else:
                kwargs[key] = value
        return cls(structure=self.structure, weight=self.weight, **kwargs)

    def to_dict(self) -> dict:
        return {"type": self.type, "structure": self.structure, "weight": self.weight, **self.params}


@dataclass(frozen=True)
class GoalSet:
    """The goals of each component (``"crt"``, ``"boost"``) and their iteration limits."""

    goals: dict[str, tuple[Goal, ...]]
    max_iterations: dict[str, int]
    source: str = "<api>"

    def objectives(self, component: str, prescription_gy: float) -> list[obj.Objective]:
        """Objectives of ``component`` for a prescription [Gy]."""
        if component not in self.goals:
            raise PlanError(f"goal set {self.source}: no goals for component {component!r}; "
                            f"it has {', '.join(self.goals) or 'none'}")
        return [g.objective(prescription_gy) for g in self.goals[component]]

    def structures(self, component: str) -> set[str]:
        names = set()
        for g in self.goals.get(component, ()):
            names.add(g.structure)
            if g.type == "valley":
                names.add(g.params.get("peak_structure", "VERTICES"))
        return names

    def check_structures(self, component: str, structures, extra: tuple[str, ...] = ()) -> None:
        """Every structure a goal names exists in ``structures`` (a mapping name -> mask) and is not empty.

        ``extra`` names structures that will exist by the time the component is optimised (VERTICES,
        VALLEY before the vertices are placed); they are only checked for existence later.
        """
        for name in sorted(self.structures(component)):
            if name in extra and name not in structures:
                continue
            if name not in structures:
                raise StructureError(f"goal set {self.source}, [{component}]: structure {name!r} does not exist; "
                                     f"structures: {', '.join(structures)}; fix the goal's 'structure'")
            if not np.asarray(structures[name]).any():
                raise StructureError(f"goal set {self.source}, [{component}]: structure {name!r} is empty; "
                                     f"remove its goals or give it voxels")

    def restricted_to(self, names) -> tuple[GoalSet, list[str]]:
        """The goals whose structures are all in ``names``, and a description of those left out.

        For the default goal set on a case without some of its structures (a DICOM case without FEMUR):
        a goal file given by the user is checked strictly instead (:meth:`check_structures`).
        """
        names = set(names)
        kept, dropped = {}, []
        for comp, goals in self.goals.items():
            keep = []
            for g in goals:
                needed = {g.structure} | ({g.params.get("peak_structure", "VERTICES")} if g.type == "valley" else set())
                (keep.append(g) if needed <= names else dropped.append(f"[{comp}] {g.type} on {g.structure}"))
            if keep:
                kept[comp] = tuple(keep)
        return GoalSet(kept, {c: self.max_iterations[c] for c in kept}, self.source), dropped

    def to_dict(self) -> dict:
        return {"source": self.source, **{c: {"max_iterations": self.max_iterations.get(c),
                                              "goals": [g.to_dict() for g in gs]} for c, gs in self.goals.items()}}


def _parse_goal(raw, where: str) -> Goal:
    if not isinstance(raw, dict):
        raise PlanError(f"{where}: expected a table with type, structure and parameters, got {raw!r}")
    raw = dict(raw)
    gtype = raw.pop("type", None)
    if gtype not in GOAL_TYPES:
        raise PlanError(f"{where}: type={gtype!r}; expected one of: {', '.join(GOAL_TYPES)}")
    structure = raw.pop("structure", None)
    if not isinstance(structure, str) or not structure:
        raise PlanError(f"{where} ({gtype}): structure={structure!r}; give the structure's name as a string")
    weight = raw.pop("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (np.isfinite(weight) and weight >= 0):
        raise PlanError(f"{where} ({gtype}): weight={weight!r}; expected a number >= 0")
    _, required, optional = GOAL_TYPES[gtype]
    for key in raw:  # a dose in a unit this goal does not take (cGy, a bare number, ...)
        stem = key if key in _DOSE_PARAMS else key.rsplit("_", 1)[0]
        if stem in _DOSE_PARAMS and key not in (f"{stem}_gy", f"{stem}_pct"):
            hint = f"{stem}_gy or {stem}_pct" if stem in (*required, *optional) else "no dose for this goal type"
            raise PlanError(f"{where} ({gtype}): {key!r} has no unit this goal accepts; expected {hint}")
    params = {}
    for name in (*required, *optional):
        if name in _DOSE_PARAMS:
            given = [k for k in (f"{name}_gy", f"{name}_pct") if k in raw]
            if len(given) > 1:
                raise PlanError(f"{where} ({gtype}): both {name}_gy and {name}_pct given; keep one")
            if not given:
                if name in required:
                    raise PlanError(f"{where} ({gtype}): missing {name}_gy (Gy) or {name}_pct (percent of the "
                                    f"prescription)")
                continue
            key = given[0]
            value = raw.pop(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise PlanError(f"{where} ({gtype}): {key}={value!r}; expected a number >= 0")
            params[key] = float(value)
        elif name in raw:
            params[name] = raw.pop(name)
        elif name in required:
            raise PlanError(f"{where} ({gtype}): missing {name}")
    for key in list(raw):
        expected = [f"{n}_gy/{n}_pct" if n in _DOSE_PARAMS else n for n in (*required, *optional)]
        raise PlanError(f"{where} ({gtype}): unknown key {key!r}; expected type, structure, weight"
                        + (", " + ", ".join(expected) if expected else ""))
    goal = Goal(gtype, structure, float(weight), params)
    try:
        goal.objective(1.0)  # the objective's own checks (volume range, exponent, ratio)
    except PlanError as exc:
        raise PlanError(f"{where}: {exc}") from None
    except TypeError as exc:
        raise PlanError(f"{where} ({gtype}): {exc}") from None
    return goal


def goals_from_dict(data: dict, source: str = "<api>") -> GoalSet:
    """Goal set from the parsed TOML structure (see the module docstring)."""
    if not isinstance(data, dict):
        raise PlanError(f"goal set {source}: expected tables [crt] and/or [boost]")
    unknown = [k for k in data if k not in COMPONENTS]
    if unknown:
        raise PlanError(f"goal set {source}: unknown table(s) {', '.join(map(repr, unknown))}; expected "
                        f"{', '.join(COMPONENTS)}")
    goals, iterations = {}, {}
    for comp in COMPONENTS:
        if comp not in data:
            continue
        table = dict(data[comp])
        its = table.pop("max_iterations", 100)
        if isinstance(its, bool) or not isinstance(its, int) or its < 1:
            raise PlanError(f"goal set {source}, [{comp}]: max_iterations={its!r}; expected an integer >= 1")
        raw_goals = table.pop("goal", [])
        if table:
            raise PlanError(f"goal set {source}, [{comp}]: unknown key(s) {', '.join(map(repr, table))}; "
                            f"expected max_iterations and [[{comp}.goal]] tables")
        if not raw_goals:
            raise PlanError(f"goal set {source}, [{comp}]: no [[{comp}.goal]]; give at least one goal")
        goals[comp] = tuple(_parse_goal(g, f"goal set {source}, [[{comp}.goal]] #{i + 1}")
                            for i, g in enumerate(raw_goals))
        iterations[comp] = its
    if not goals:
        raise PlanError(f"goal set {source}: no [crt] or [boost] table")
    return GoalSet(goals, iterations, source)


def load_goals(path) -> GoalSet:
    """Goal set from a TOML file; errors name the file, the goal and the key."""
    path = Path(path)
    if not path.is_file():
        raise PlanError(f"goal file {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"goal file {str(path)!r} is not valid TOML: {exc}") from None
    return goals_from_dict(data, str(path))


def default_goals() -> GoalSet:
    """The default goal sets of the sarcoma comparison (``machines/data/goals_sarcoma.toml``)."""
    return load_goals(DEFAULT_GOALS_FILE)
