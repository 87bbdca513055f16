"""Fluence optimisation: L-BFGS-B on non-negative weights, objective and gradient through a dose operator.

The objective is ``F(w) = sum_k f_k(D(w)[S_k])`` with ``D = A w`` the dose on the voxel
subset of the operator, ``S_k`` the voxels of the structures objective ``k`` names and
``f_k`` from :mod:`.objectives`. Its gradient is ``A^T (sum_k scatter_k(df_k/dd))``: one
forward and one adjoint per evaluation, both on the operator's backend; only the
weight vector and the scalar value cross to the host. The bound-constrained
quasi-Newton method is scipy's L-BFGS-B (Byrd, Lu, Nocedal and Zhu, SIAM J Sci Comput
16:1190, 1995), as in pyRadPlan and matRad's alternative to IPOPT.

Before L-BFGS-B the starting weights (the operator's own, e.g. a uniform conformal
fluence) are scaled by the factor that minimises ``F`` along that ray (dose is linear in
the weights, so this needs one forward only). Runs are deterministic: no random
numbers, a fixed evaluation order.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import PlanError, StructureError
from .objectives import Objective, array_module

__all__ = ["OptimisationResult", "OptimisationWarning", "optimise", "sampled_structures", "voxel_subset"]


class OptimisationWarning(UserWarning):
    """The optimiser returned its best plan without meeting every goal."""


@dataclass
class OptimisationResult:
    """What an optimisation did and where it ended.

    Attributes
    ----------
    weights : ndarray (n_weights,)
        Optimised weights (>= 0), in the operator's order and unit.
    initial_objective, final_objective : float
        ``F`` at the unscaled starting weights and at the result.
    iterations, evaluations : int
        L-BFGS-B iterations and objective/gradient evaluations (each one forward + one adjoint).
    stop_reason : str
    seconds : float
        Wall time of the whole optimisation [s].
    backend, operator_mode : str
    history : list of float
        ``F`` after the start scaling and after every iteration.
    goals : list of dict
        Per objective: ``goal`` (text), ``value`` (its term of F), ``shortfall`` (in the goal's unit, <= 0 when
        met), ``met`` (None for objectives without a threshold).
    """

    weights: np.ndarray
    initial_objective: float
    final_objective: float
    iterations: int
    evaluations: int
    stop_reason: str
    seconds: float
    backend: str
    operator_mode: str
    history: list = field(default_factory=list)
    goals: list = field(default_factory=list)

    @property
    def unmet(self) -> list[dict]:
        return [g for g in self.goals if g["met"] is False]

    def to_dict(self) -> dict:
        """The record written to reports (weights left out)."""
        return {"initial_objective": self.initial_objective, "final_objective": self.final_objective,
                "iterations": self.iterations, "evaluations": self.evaluations, "stop_reason": self.stop_reason,
                "seconds": round(self.seconds, 3), "backend": self.backend, "operator_mode": self.operator_mode,
                "history": [float(f"{h:.6g}") for h in self.history], "goals": self.goals}


def _mask(structures: Mapping, name: str) -> np.ndarray:
    if name not in structures:
        raise StructureError(f"objective names structure {name!r}, which does not exist; "
                             f"structures: {', '.join(structures)}")
    mask = np.asarray(structures[name], dtype=bool)
    if not mask.any():
        raise StructureError(f"objective names structure {name!r}, which is empty; remove its objectives or "
                             f"give it voxels")
    return mask


def voxel_subset(objectives: Sequence[Objective], structures: Mapping) -> np.ndarray:
    """Sorted flat (C-order, [z, y, x]) indices of every voxel an objective looks at.

    Raises :class:`StructureError` for a missing or empty structure, before any dose is computed.
    """
    if not objectives:
        raise PlanError("optimisation needs at least one objective")
    union = None
    for o in objectives:
        for name in o.structures:
            m = _mask(structures, name)
            union = m.copy() if union is None else union | m
    return np.flatnonzero(union)


def _forward(op, w):
    """``op.forward(w)`` in float64, on the operator's device (the compiled backends return float32)."""
    d = op.forward(w)
    return array_module(d).asarray(d, dtype=np.float64)


#: Objectives that are means over their voxels (of the dose, its square, a power): a regular sample of the voxels
#: estimates them without bias. Extremes (min/max dose) and DVH points need every voxel.
_MEAN_TYPE = ("MeanDose", "Valley", "SquaredUnderdose", "SquaredOverdose", "SquaredDeviation", "Geud")


def sampled_structures(objectives: Sequence[Objective], structures: Mapping, max_voxels: int | None) -> dict:
    """The masks the objectives name; those named only by mean-type objectives thinned to ``max_voxels`` voxels.

    A structure of ``n > max_voxels`` voxels whose every objective is a mean over its voxels (mean dose,
    squared under/overdose, gEUD, the valley ratio) keeps every ``k``-th voxel in C order
    (``k = ceil(n / max_voxels)``): an unbiased, deterministic sample, and fewer voxels for the dose operator.
    Structures with a min/max-dose or DVH objective keep every voxel, as does every structure with
    ``max_voxels=None``. The plan is evaluated on every voxel afterwards.
    """
    names = [name for o in objectives for name in o.structures]
    mean_only = {name: all(type(o).__name__ in _MEAN_TYPE for o in objectives if name in o.structures)
                 for name in names}
    out = {}
    for name in names:
        if name in out:
            continue
        mask = _mask(structures, name)
        if max_voxels is not None and mean_only[name]:
            flat = np.flatnonzero(mask)
            k = -(-flat.size // int(max_voxels))
            if k > 1:
                mask = np.zeros(mask.shape, dtype=bool)
                mask.flat[flat[::k]] = True
        out[name] = mask
    return out


def _to_host(a) -> np.ndarray:
    return np.asarray(a.get() if hasattr(a, "get") else a, dtype=np.float64)


def _has_threshold(o: Objective) -> bool:
    from . import objectives as ob

    if isinstance(o, (ob.SquaredUnderdose, ob.SquaredOverdose, ob.SquaredDeviation)):
        return False
    if isinstance(o, ob.MeanDose):
        return o.dose_gy > 0
    if isinstance(o, ob.Valley):
        return o.max_ratio > 0
    return True


def _asks_for_dose(o: Objective) -> bool:
    """Whether the objective penalises too little dose (otherwise zero dose would be its optimum)."""
    from . import objectives as ob

    if isinstance(o, (ob.MinDose, ob.DvhMin, ob.SquaredUnderdose)):
        return o.weight > 0 and getattr(o, "dose_gy", 1.0) > 0
    if isinstance(o, ob.SquaredDeviation):
        return o.weight > 0 and bool(np.any(np.asarray(o.reference_gy) > 0))
    return isinstance(o, ob.Geud) and o.kind == "min" and o.weight > 0 and o.dose_gy > 0


def _goal_scale(o: Objective) -> float:
    return float(getattr(o, "max_ratio", None) or getattr(o, "dose_gy", 0.0) or 1.0)


def optimise(op, objectives: Sequence[Objective], structures: Mapping, voxels: np.ndarray | None = None, *,
             max_iterations: int = 100, tolerance: float = 1e-7, goal_tolerance: float = 0.01,
             scale_start: bool = True, warn: bool = True, weights0=None) -> OptimisationResult:
    """Minimise the sum of ``objectives`` over non-negative weights of ``op``.

    Parameters
    ----------
    op : dose operator
        ``n_weights``, ``weights0``, ``forward(w) -> (n_voxels,)`` dose [Gy] on ``voxels``,
        ``adjoint(r) -> (n_weights,)``, ``backend``, ``mode`` (see :func:`sfrt_engine.optimise.dose_operator`).
    objectives : sequence of Objective
    structures : mapping name -> bool ndarray [z, y, x]
        Masks of every structure the objectives name.
    voxels : ndarray of int, optional
        Flat indices the operator's dose is given on (default :func:`voxel_subset`, which the operator
        must then have been built with).
    max_iterations : int
        L-BFGS-B iteration limit.
    tolerance : float
        Relative reduction of F below which L-BFGS-B stops (its ``ftol``).
    goal_tolerance : float
        A goal counts as met when its shortfall is at most this fraction of its goal value.
    scale_start : bool
        Scale the starting weights to the best multiple first.
    warn : bool
        Emit an :class:`OptimisationWarning` naming the goals not met (they are in the result either way).
    weights0 : ndarray, optional
        Starting weights (default ``op.weights0``).

    Raises
    ------
    PlanError
        No objectives, a zero starting plan, a non-finite objective or gradient, or a result with every
        weight zero.
    StructureError
        A missing or empty structure.
    """
    start = time.perf_counter()
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, (int, np.integer)) or max_iterations < 1:
        raise PlanError(f"max_iterations={max_iterations!r}; expected an integer >= 1")
    subset = voxel_subset(objectives, structures) if voxels is None else np.asarray(voxels)
    if not any(_asks_for_dose(o) for o in objectives):
        raise PlanError("no objective asks for dose (min_dose, dvh_min, squared_underdose, squared_deviation or a "
                        "'min' gEUD with a dose > 0), so the best plan would deliver nothing; add a target goal")
    if subset.ndim != 1:
        raise PlanError(f"voxels has shape {subset.shape}; expected flat indices")
    # position of each objective's structure voxels inside the subset
    positions = []
    for o in objectives:
        pos = []
        for name in o.structures:
            flat = np.flatnonzero(_mask(structures, name))
            p = np.searchsorted(subset, flat)
            if np.any(p >= subset.size) or np.any(subset[np.minimum(p, subset.size - 1)] != flat):
                raise PlanError(f"structure {name!r} has voxels outside the operator's voxel subset; build the "
                                f"operator on voxel_subset(objectives, structures)")
            pos.append(p)
        positions.append(pos)

    w0 = np.asarray(op.weights0 if weights0 is None else weights0, dtype=np.float64).ravel()
    if w0.shape != (op.n_weights,):
        raise PlanError(f"starting weights have shape {w0.shape}; expected ({op.n_weights},)")
    if not np.all(np.isfinite(w0)) or np.any(w0 < 0) or not np.any(w0 > 0):
        raise PlanError("the starting plan has no positive weight (or a negative or non-finite one); start from a "
                        "plan that delivers dose, e.g. the conformal fields")
    from scipy import optimize  # on first use, not at import (STYLE 1)

    d0 = _forward(op, w0)
    xp = array_module(d0)
    positions = [[xp.asarray(p) for p in pos] for pos in positions]
    if not float(xp.max(d0)) > 0:
        raise PlanError("the starting plan gives no dose to any voxel an objective looks at; check the beams "
                        "and the structures")

    def value_terms(d):
        terms, grad = [], xp.zeros_like(d)
        for o, pos in zip(objectives, positions):
            v, gs = o.value_and_grad(*[d[p] for p in pos])
            for p, g in zip(pos, gs):
                grad[p] += g  # positions are unique within one structure, so += does not lose updates
            terms.append(v)
        return terms, grad

    def total(d) -> float:
        return float(sum(value_terms(d)[0]))

    initial = total(d0)
    if scale_start:
        res = optimize.minimize_scalar(lambda t: total(d0 * math.exp(t)), bounds=(math.log(1e-4), math.log(1e4)),
                                       method="bounded", options={"xatol": 1e-4})
        s = math.exp(res.x)
        if total(d0 * s) < initial:
            w0 = w0 * s
    evaluations = 0
    cache: dict = {}

    def fun(w):
        nonlocal evaluations
        evaluations += 1
        d = _forward(op, w)
        terms, gd = value_terms(d)
        f = float(sum(terms))
        if not math.isfinite(f):
            bad = [o.describe() for o, t in zip(objectives, terms) if not math.isfinite(t)]
            raise PlanError(f"objective value is {f} at evaluation {evaluations} (from {', '.join(bad) or 'the dose'}); "
                            f"check the goals' doses and weights")
        g = _to_host(op.adjoint(gd))
        if not np.all(np.isfinite(g)):
            raise PlanError(f"the gradient has {int(np.sum(~np.isfinite(g)))} non-finite entries at evaluation "
                            f"{evaluations}; the dose operator ({op.backend}, {op.mode}) or an objective produced "
                            f"NaN/Inf: check the beams and the goals")
        cache["f"] = f
        return f, g

    from threadpoolctl import threadpool_limits

    history = [fun(w0)[0]]
    # One BLAS thread inside L-BFGS-B: its per-iteration vector work is small, and a threaded OpenBLAS makes
    # scipy's L-BFGS-B (>= 1.15) up to 70 times slower (20,539 spots, 60 iterations on 2 cores: 11.4 s against
    # 0.17 s). The dose operators' own threads (OpenMP, or the GPU) are not BLAS and are not limited.
    with threadpool_limits(limits=1, user_api="blas"):
        res = optimize.minimize(fun, w0, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * op.n_weights,
                                callback=lambda _w: history.append(cache["f"]),
                                options={"maxiter": int(max_iterations), "maxfun": 4 * int(max_iterations) + 20,
                                         "ftol": tolerance, "gtol": 1e-10, "maxcor": 20})
    w = np.maximum(np.asarray(res.x, dtype=np.float64), 0.0)
    d = _forward(op, w)
    if not float(xp.max(d)) > 1e-6 * float(xp.max(d0)):  # a plan a million times weaker than the start is no plan
        raise PlanError("the optimisation ended with every weight zero (or nearly): the goals pull all dose away; "
                        "give the targets goals that need dose (min_dose, dvh_min) or raise their weights")
    terms, _ = value_terms(d)
    goals = []
    for o, pos, t in zip(objectives, positions, terms):
        short = float(o.shortfall(*[d[p] for p in pos]))
        met = (short <= goal_tolerance * _goal_scale(o)) if _has_threshold(o) else None
        goals.append({"goal": o.describe(), "value": float(t), "shortfall": short, "met": met})
    result = OptimisationResult(w, initial, float(sum(terms)), int(res.nit), evaluations, str(res.message),
                                time.perf_counter() - start, str(op.backend), str(op.mode), history, goals)
    if warn and result.unmet:
        warnings.warn("goals not met: " + "; ".join(f"{g['goal']} (short by {g['shortfall']:.3g})"
                                                    for g in result.unmet), OptimisationWarning, stacklevel=2)
    return result
