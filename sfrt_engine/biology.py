"""Biological dose: per-voxel BED and EQD2 over real sessions, alpha/beta maps, gEUD (DESIGN 5.4).

With ``d_k`` the physical dose of real session ``k`` in a voxel (all components
delivered in that session summed first)::

    BED  = sum_k d_k (1 + d_k / (a/b))
    EQD2 = BED / (1 + 2 / (a/b))

Alpha/beta per voxel comes from the structures it belongs to. Where structures
overlap, the one earliest in the precedence list wins; by default targets
(VERTICES, VALLEY, GTV, PTV) come before organs at risk (SKIN, FEMUR), then
NORMAL_TISSUE and BODY; a voxel in none of them gets ``default_gy``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .errors import PlanError, StructureError
from .patient import Patient
from .plan.schedule import Schedule

__all__ = ["DEFAULT_ALPHA_BETA_GY", "DEFAULT_PRECEDENCE", "DEFAULT_GEUD_A", "alpha_beta_map", "session_doses",
           "physical_dose", "bed", "eqd2", "geud", "parse_alpha_beta"]

#: Alpha/beta [Gy] per structure: sarcoma 4 Gy (sensitivity range 0.4-10 Gy, e.g. Haas et al.,
#: IJROBP 84:572, 2012, and the review by van Leeuwen et al., Radiat Oncol 13:96, 2018);
#: skin/subcutis 2 Gy (late fibrosis); femur and other late-responding normal tissue 3 Gy.
DEFAULT_ALPHA_BETA_GY = {"VERTICES": 4.0, "VALLEY": 4.0, "GTV": 4.0, "PTV": 4.0, "SKIN": 2.0, "FEMUR": 3.0,
                         "NORMAL_TISSUE": 3.0, "BODY": 3.0}
#: Structures earlier in this list win where they overlap.
DEFAULT_PRECEDENCE = ("VERTICES", "VALLEY", "GTV", "PTV", "SKIN", "FEMUR", "NORMAL_TISSUE", "BODY")
#: Alpha/beta of voxels in no listed structure: late-responding normal tissue [Gy].
DEFAULT_OTHER_ALPHA_BETA_GY = 3.0
#: gEUD volume-effect parameter a per structure: tumours -10 (Niemierko, Med Phys 26:1100, 1999);
#: normal tissues 1 (gEUD = mean dose) unless given.
DEFAULT_GEUD_A = {"GTV": -10.0, "PTV": -10.0, "VERTICES": -10.0, "VALLEY": -10.0}


def parse_alpha_beta(text: str) -> dict[str, float]:
    """Parse ``"GTV=4,SKIN=2"`` into ``{"GTV": 4.0, "SKIN": 2.0}``."""
    out: dict[str, float] = {}
    for item in filter(None, (t.strip() for t in str(text).split(","))):
        name, sep, value = item.partition("=")
        try:
            ab = float(value)
        except ValueError:
            ab = float("nan")
        if not sep or not name.strip() or not (np.isfinite(ab) and ab > 0):
            raise PlanError(f"alpha/beta entry {item!r}: expected NAME=VALUE with VALUE > 0 Gy, e.g. GTV=4,SKIN=2")
        if name.strip() in out:
            raise PlanError(f"alpha/beta for {name.strip()!r} given twice ({out[name.strip()]:g} and {ab:g} Gy); "
                            "give each structure once")
        out[name.strip()] = ab
    return out


def alpha_beta_map(patient: Patient, alpha_beta_gy: Mapping[str, float] | None = None,
                   precedence=DEFAULT_PRECEDENCE, default_gy: float = DEFAULT_OTHER_ALPHA_BETA_GY) -> np.ndarray:
    """Alpha/beta [Gy] per voxel, float64 [z, y, x].

    Parameters
    ----------
    alpha_beta_gy : mapping, optional
        Values that override :data:`DEFAULT_ALPHA_BETA_GY`. Structures named here
        but not in ``precedence`` rank before the listed ones, in the order given. A
        value for GTV also applies to VERTICES and VALLEY (parts of the GTV) unless
        they are given too, so ``GTV=10`` changes the whole tumour.
    precedence : sequence of str
        Overlap order (first wins).
    default_gy : float
        For voxels in none of the structures.
    """
    values = dict(DEFAULT_ALPHA_BETA_GY)
    overrides = dict(alpha_beta_gy or {})
    if "GTV" in overrides:
        for part in ("VERTICES", "VALLEY"):
            if part in patient.structures:
                overrides.setdefault(part, overrides["GTV"])
    extra = []
    for name, ab in overrides.items():
        if not (np.isfinite(ab) and ab > 0):
            raise PlanError(f"alpha/beta of {name!r} = {ab!r}: expected a positive value in Gy")
        if name not in patient.structures:
            raise StructureError(f"alpha/beta given for {name!r}, which is not a structure of the patient; "
                                 f"structures: {', '.join(patient.structures)}")
        values[name] = float(ab)
        if name not in precedence:
            extra.append(name)
    if not (np.isfinite(default_gy) and default_gy > 0):
        raise PlanError(f"default alpha/beta {default_gy!r}: expected a positive value in Gy")
    ab = np.full(patient.grid.shape_zyx, float(default_gy))
    order = list(extra) + [n for n in precedence if n in values]
    for name in reversed(order):  # paint lowest precedence first, so the first listed ends on top
        if name in patient.structures:
            ab[patient.structures[name]] = values[name]
    return ab


def session_doses(unit_doses: Mapping[str, np.ndarray], schedule: Schedule):
    """Distinct session doses with their counts: list of (dose [Gy] array, count)."""
    out = []
    for weights, count in schedule.grouped():
        dose = None
        for component, w in sorted(weights.items()):
            if component not in unit_doses:
                raise PlanError(f"schedule {schedule.arm!r} uses component {component!r}, which has no unit dose")
            term = w * unit_doses[component]
            dose = term if dose is None else dose + term
        out.append((dose, count))
    return out


def physical_dose(unit_doses: Mapping[str, np.ndarray], schedule: Schedule) -> np.ndarray:
    """Cumulative physical dose of the arm [Gy]."""
    total = None
    for dose, count in session_doses(unit_doses, schedule):
        total = count * dose if total is None else total + count * dose
    return total


def bed(unit_doses: Mapping[str, np.ndarray], schedule: Schedule, alpha_beta_gy) -> np.ndarray:
    """Cumulative BED [Gy] per voxel: sum over sessions of d (1 + d / (a/b))."""
    total = None
    for dose, count in session_doses(unit_doses, schedule):
        term = count * dose * (1.0 + dose / alpha_beta_gy)
        total = term if total is None else total + term
    return total


def eqd2(unit_doses: Mapping[str, np.ndarray], schedule: Schedule, alpha_beta_gy) -> np.ndarray:
    """Cumulative EQD2 [Gy] per voxel: BED / (1 + 2 / (a/b))."""
    return bed(unit_doses, schedule, alpha_beta_gy) / (1.0 + 2.0 / alpha_beta_gy)


def geud(dose_gy: np.ndarray, mask: np.ndarray, a: float) -> float:
    """Generalised EUD ``(mean_i D_i^a)^(1/a)`` over the voxels of ``mask`` (equal volumes) [Gy].

    ``a = 1`` is the mean dose, large positive ``a`` tends to the maximum, negative ``a`` to the minimum.
    """
    if not np.isfinite(a) or a == 0:
        raise PlanError(f"gEUD parameter a={a!r}: expected a finite non-zero number")
    values = np.asarray(dose_gy, dtype=np.float64)[mask]
    if values.size == 0:
        raise StructureError("gEUD of an empty structure")
    if np.any(values < 0) or not np.all(np.isfinite(values)):
        raise PlanError("gEUD needs finite, non-negative doses")
    if np.any(values == 0):
        if a < 0:
            return 0.0  # a cold voxel dominates: mean of D^a -> infinity
        values = values[values > 0]
        if values.size == 0:
            return 0.0
        # zeros add nothing to the sum for a > 0 but count in the mean
        n_total = int(np.count_nonzero(mask))
    else:
        n_total = values.size
    from scipy.special import logsumexp  # on first use, not at import (STYLE 1)

    # log-sum-exp keeps D^a in range for any |a|
    log_mean = logsumexp(a * np.log(values)) - np.log(n_total)
    return float(np.exp(log_mean / a))
