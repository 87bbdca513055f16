"""Dose objectives: value and gradient with respect to the voxel doses of the structures they name.

Every objective is a plain dataclass naming one structure (the valley objective names
two) with a ``weight``. :meth:`value_and_grad` takes the doses of the structure's voxels
(1-D arrays [Gy], NumPy or CuPy: the array module of the input is used, so on a GPU
nothing but the scalar value leaves the device) and returns ``weight * f`` and its
gradient, one array per structure. Penalties are averaged over the structure's voxels,
so a goal's pull does not grow with the structure's size.

Definitions (``d`` the voxel doses of the structure, ``n`` their number, ``(x)+ = max(x, 0)``):

- :class:`MinDose`: ``||(d_min - d)+||_p^2`` with the power mean ``||x||_p = (mean x^p)^(1/p)``,
  ``p = 8``: a smooth stand-in for the squared shortfall of the coldest voxel.
- :class:`MaxDose`: ``||(d - d_max)+||_p^2``, the same for the hottest voxel.
- :class:`SquaredUnderdose`, :class:`SquaredOverdose`, :class:`SquaredDeviation`:
  ``mean((r - d)+^2)``, ``mean((d - r)+^2)``, ``mean((d - r)^2)`` against a reference dose ``r``
  (a scalar or one value per voxel).
- :class:`MeanDose`: ``(mean(d) - d_max)+^2`` (with ``d_max = 0``: the squared mean dose).
- :class:`DvhMin` (``D_v% >= d_ref``) and :class:`DvhMax` (``D_v% <= d_ref``, which is ``V_d_ref <= v%``):
  matRad's DVH objectives (Wieser et al., Med Phys 44:2556, 2017, ``DoseObjectives.matRad_MinDVH`` /
  ``matRad_MaxDVH``): ``sum((d - d_ref)^2) / n`` over the voxels that lie between the current
  ``D_v%`` and ``d_ref`` on the wrong side, i.e. the fewest voxels whose change meets the goal
  (``D_v%`` is interpolated between two voxels; the selection starts at the outer one of them).
- :class:`Geud`: generalised equivalent uniform dose ``gEUD = mean(d^a)^(1/a)`` (Niemierko, Med Phys
  26:1100, 1999); ``kind="max"`` penalises ``(gEUD - d_ref)+^2`` (organs, ``a >= 1``) and ``kind="min"``
  ``(d_ref - gEUD)+^2`` (targets, ``a < 0``).
- :class:`Valley`: ``(mean(d_valley) / mean(d_peak) - r_max)+^2``, the inverse peak-to-valley dose ratio
  of a lattice boost above ``r_max`` (0 by default: as low as possible). Scale-free, so it pulls dose out
  of the valley without pulling it out of the vertices.

Each objective also says whether its clinical goal is met (:meth:`shortfall`, in the goal's own
unit: Gy, or a ratio for the valley) so an optimiser can name the goals it could not meet.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from ..errors import PlanError

__all__ = ["DvhMax", "DvhMin", "Geud", "MaxDose", "MeanDose", "MinDose", "Objective", "SquaredDeviation", "SquaredOverdose", "SquaredUnderdose", "Valley", "array_module"]

#: Power of the power mean in MinDose/MaxDose: high enough that the worst voxels dominate, low enough
#: that the gradient stays spread over a few voxels (the same role as matRad's ``p``-norm EUD objectives).
_P_NORM = 8.0


def array_module(a):
    """``numpy`` or ``cupy``: the module of array ``a``."""
    if type(a).__module__.split(".")[0] == "cupy":
        import cupy

        return cupy
    return np


def _check_weight(obj) -> None:
    if not (np.isfinite(obj.weight) and obj.weight >= 0):
        raise PlanError(f"objective {obj.describe()}: weight={obj.weight!r}, expected a finite weight >= 0")


def _check_dose(obj, value, label: str = "dose_gy") -> None:
    if not (np.isfinite(value) and value >= 0):
        raise PlanError(f"objective {obj.describe()}: {label}={value!r}, expected a finite dose >= 0 Gy")


class Objective(abc.ABC):
    """Base of the objectives: ``structures`` names, ``value_and_grad`` and ``shortfall``."""

    weight: float

    @property
    def structures(self) -> tuple[str, ...]:
        return (self.structure,)

    def value_and_grad(self, *doses):
        """``(weight * f, (df/dd,) per structure)`` for the voxel doses of each named structure [Gy]."""
        value, grads = self._f(*doses)
        return self.weight * value, tuple(self.weight * g for g in grads)

    def value(self, *doses) -> float:
        return self.value_and_grad(*doses)[0]

    @abc.abstractmethod
    def shortfall(self, *doses) -> float:
        """How far the goal is from met, in its own unit (<= 0 when met)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """The goal in words, e.g. ``PTV D95% >= 3 Gy``."""


def _pnorm_sq(x, xp):
    """``||x||_p^2`` of a non-negative vector and its gradient (power mean, p = _P_NORM)."""
    n = x.size
    top = float(x.max()) if n else 0.0
    if top <= 0.0:
        return 0.0, xp.zeros_like(x)
    y = x / top  # scale to avoid overflow of x^p
    s = float(xp.mean(y ** _P_NORM))
    norm = top * s ** (1.0 / _P_NORM)
    # d||x||/dx_i = x_i^(p-1) / (n ||x||^(p-1)); d(norm^2) = 2 norm d||x||
    grad = 2.0 * norm * (y ** (_P_NORM - 1.0)) / (n * s ** ((_P_NORM - 1.0) / _P_NORM))
    return norm * norm, grad


@dataclass
class MinDose(Objective):
    """Every voxel of ``structure`` at least ``dose_gy`` (smooth: squared p-norm of the shortfall)."""

    structure: str
    dose_gy: float
    weight: float = 1.0

    def __post_init__(self):
        _check_weight(self)
        _check_dose(self, self.dose_gy)

    def _f(self, d):
        xp = array_module(d)
        v, g = _pnorm_sq(xp.maximum(self.dose_gy - d, 0.0), xp)
        return v, (-g,)

    def shortfall(self, d) -> float:
        return self.dose_gy - float(d.min())

    def describe(self) -> str:
        return f"{self.structure} min dose >= {self.dose_gy:g} Gy"


@dataclass
class MaxDose(Objective):
    """Every voxel of ``structure`` at most ``dose_gy`` (smooth: squared p-norm of the excess)."""

    structure: str
    dose_gy: float
    weight: float = 1.0

    def __post_init__(self):
        _check_weight(self)
        _check_dose(self, self.dose_gy)

    def _f(self, d):
        xp = array_module(d)
        v, g = _pnorm_sq(xp.maximum(d - self.dose_gy, 0.0), xp)
        return v, (g,)

    def shortfall(self, d) -> float:
        return float(d.max()) - self.dose_gy

    def describe(self) -> str:
        return f"{self.structure} max dose <= {self.dose_gy:g} Gy"


def _reference(obj, d, xp):
    r = obj.reference_gy
    if np.ndim(r) == 0:
        return float(r)
    r = xp.asarray(r, dtype=d.dtype)
    if r.shape != d.shape:
        raise PlanError(f"objective {obj.describe()}: reference has shape {r.shape}, expected one dose per voxel "
                        f"{d.shape}")
    return r


@dataclass
class _SquaredToReference(Objective):
    """``mean(e^2)`` of an error ``e`` of the dose against ``reference_gy`` (scalar or per voxel).

    Subclasses give the error and the sign of ``de/dd``; the shortfall is the RMS error.
    """

    structure: str
    reference_gy: object
    weight: float = 1.0

    _label = ""  # e.g. "squared underdose vs"

    def __post_init__(self):
        _check_weight(self)
        if np.ndim(self.reference_gy) == 0:
            _check_dose(self, self.reference_gy, "reference_gy")

    @abc.abstractmethod
    def _error(self, d, xp):
        """(e, de/dd) for the voxel doses ``d``; de/dd is -1 or +1."""

    def _f(self, d):
        xp = array_module(d)
        e, slope = self._error(d, xp)
        return float(xp.mean(e * e)), (2.0 * slope * e / d.size,)

    def shortfall(self, d) -> float:
        xp = array_module(d)
        e, _ = self._error(d, xp)
        return float(xp.sqrt(xp.mean(e * e)))

    def describe(self) -> str:
        return f"{self.structure} {self._label} {_ref_text(self.reference_gy)}"


@dataclass
class SquaredUnderdose(_SquaredToReference):
    """``mean((r - d)+^2)``: penalise dose below the reference ``reference_gy`` (scalar or per voxel)."""

    _label = "squared underdose vs"

    def _error(self, d, xp):
        return xp.maximum(_reference(self, d, xp) - d, 0.0), -1.0


@dataclass
class SquaredOverdose(_SquaredToReference):
    """``mean((d - r)+^2)``: penalise dose above the reference ``reference_gy`` (scalar or per voxel)."""

    _label = "squared overdose vs"

    def _error(self, d, xp):
        return xp.maximum(d - _reference(self, d, xp), 0.0), 1.0


@dataclass
class SquaredDeviation(_SquaredToReference):
    """``mean((d - r)^2)``: dose as close as possible to ``reference_gy`` (scalar or per voxel).

    A least-squares goal has no threshold: its shortfall is the RMS deviation.
    """

    _label = "squared deviation from"

    def _error(self, d, xp):
        return d - _reference(self, d, xp), 1.0


def _ref_text(r) -> str:
    return f"{float(r):g} Gy" if np.ndim(r) == 0 else "a reference dose map"


@dataclass
class MeanDose(Objective):
    """Mean dose of ``structure`` at most ``dose_gy`` (``(mean - dose_gy)+^2``; 0 Gy: as low as possible)."""

    structure: str
    dose_gy: float = 0.0
    weight: float = 1.0

    def __post_init__(self):
        _check_weight(self)
        _check_dose(self, self.dose_gy)

    def _f(self, d):
        xp = array_module(d)
        e = max(float(xp.mean(d)) - self.dose_gy, 0.0)
        return e * e, (xp.full(d.shape, 2.0 * e / d.size, dtype=d.dtype),)

    def shortfall(self, d) -> float:
        return float(d.mean()) - self.dose_gy

    def describe(self) -> str:
        return f"{self.structure} mean dose <= {self.dose_gy:g} Gy"


def _check_volume(obj) -> None:
    if not (np.isfinite(obj.volume_pct) and 0.0 < obj.volume_pct < 100.0):
        raise PlanError(f"objective {obj.describe()}: volume_pct={obj.volume_pct!r}, expected a percentage "
                        f"strictly between 0 and 100")


def dose_at_volume(d, volume_pct: float) -> float:
    """``D_v%``: the minimum dose of the hottest ``volume_pct`` % of the voxels [Gy] (as dose_statistics)."""
    xp = array_module(d)
    return float(xp.percentile(d, 100.0 - volume_pct))


def _order_statistic(d, volume_pct: float, side: str) -> float:
    """The voxel dose just below (``"lower"``) or above (``"higher"``) the interpolated ``D_v%``.

    ``D_v%`` interpolates between two neighbouring voxel doses, so both must move for the goal to be met:
    the DVH objectives select from this voxel on (for a large structure the difference vanishes).
    """
    xp = array_module(d)
    q = (100.0 - volume_pct) / 100.0 * (d.size - 1)
    k = int(np.floor(q + 1e-12)) if side == "lower" else int(np.ceil(q - 1e-12))
    return float(xp.partition(d, k)[k])


@dataclass
class DvhMin(Objective):
    """DVH goal ``D_volume% >= dose_gy``: at least ``volume_pct`` % of the voxels get ``dose_gy``."""

    structure: str
    dose_gy: float
    volume_pct: float
    weight: float = 1.0

    def __post_init__(self):
        _check_weight(self)
        _check_dose(self, self.dose_gy)
        _check_volume(self)

    def _f(self, d):
        xp = array_module(d)
        dv = _order_statistic(d, self.volume_pct, "lower")
        sel = (d < self.dose_gy) & (d >= dv)
        e = xp.where(sel, d - self.dose_gy, 0.0)
        return float(xp.sum(e * e)) / d.size, (2.0 * e / d.size,)

    def shortfall(self, d) -> float:
        return self.dose_gy - dose_at_volume(d, self.volume_pct)

    def describe(self) -> str:
        return f"{self.structure} D{self.volume_pct:g}% >= {self.dose_gy:g} Gy"


@dataclass
class DvhMax(Objective):
    """DVH goal ``D_volume% <= dose_gy`` (equivalently ``V_dose <= volume_pct`` %)."""

    structure: str
    dose_gy: float
    volume_pct: float
    weight: float = 1.0

    def __post_init__(self):
        _check_weight(self)
        _check_dose(self, self.dose_gy)
        _check_volume(self)

    def _f(self, d):
        xp = array_module(d)
        dv = _order_statistic(d, self.volume_pct, "higher")
        sel = (d > self.dose_gy) & (d <= dv)
        e = xp.where(sel, d - self.dose_gy, 0.0)
        return float(xp.sum(e * e)) / d.size, (2.0 * e / d.size,)

    def shortfall(self, d) -> float:
        return dose_at_volume(d, self.volume_pct) - self.dose_gy

    def describe(self) -> str:
        return f"{self.structure} D{self.volume_pct:g}% <= {self.dose_gy:g} Gy"


@dataclass
class Geud(Objective):
    """gEUD of ``structure`` with exponent ``a``: ``kind="max"`` keeps it <= ``dose_gy``, ``"min"`` >= ``dose_gy``."""

    structure: str
    dose_gy: float
    a: float
    kind: str = "max"
    weight: float = 1.0

    def __post_init__(self):
        _check_weight(self)
        _check_dose(self, self.dose_gy)
        if self.kind not in ("max", "min"):
            raise PlanError(f"objective {self.describe()}: kind={self.kind!r}, expected 'max' or 'min'")
        if not (np.isfinite(self.a) and self.a != 0):
            raise PlanError(f"objective {self.describe()}: a={self.a!r}, expected a finite non-zero exponent "
                            f"(>= 1 for organs, < 0 for targets)")

    def geud(self, d):
        """gEUD [Gy] and its gradient with respect to ``d``."""
        xp = array_module(d)
        # a < 0 needs d > 0; 1e-6 Gy is far below any clinically meaningful dose
        x = xp.maximum(d, 1e-6) if self.a < 0 else xp.maximum(d, 0.0)
        m = float(xp.mean(x ** self.a))
        if m <= 0.0:
            return 0.0, xp.zeros_like(d)
        g = m ** (1.0 / self.a)
        grad = g / m * x ** (self.a - 1.0) / d.size
        if self.a < 0:
            grad = xp.where(d > 1e-6, grad, 0.0)
        return g, grad

    def _f(self, d):
        g, dg = self.geud(d)
        e = max(g - self.dose_gy, 0.0) if self.kind == "max" else max(self.dose_gy - g, 0.0)
        sign = 1.0 if self.kind == "max" else -1.0
        return e * e, (sign * 2.0 * e * dg,)

    def shortfall(self, d) -> float:
        g = self.geud(d)[0]
        return g - self.dose_gy if self.kind == "max" else self.dose_gy - g

    def describe(self) -> str:
        return f"{self.structure} gEUD(a={self.a:g}) {'<=' if self.kind == 'max' else '>='} {self.dose_gy:g} Gy"


@dataclass
class Valley(Objective):
    """Lattice boost: valley-to-peak mean dose ratio at most ``max_ratio`` (0: as low as possible)."""

    structure: str = "VALLEY"
    peak_structure: str = "VERTICES"
    max_ratio: float = 0.0
    weight: float = 1.0

    def __post_init__(self):
        _check_weight(self)
        if not (np.isfinite(self.max_ratio) and 0.0 <= self.max_ratio < 1.0):
            raise PlanError(f"objective {self.describe()}: max_ratio={self.max_ratio!r}, expected 0 <= ratio < 1 "
                            f"(valley mean / peak mean)")

    @property
    def structures(self) -> tuple[str, ...]:
        return (self.structure, self.peak_structure)

    def _f(self, dv, dp):
        xp = array_module(dv)
        mv, mp = float(xp.mean(dv)), float(xp.mean(dp))
        if mp <= 0.0:
            raise PlanError(f"objective {self.describe()}: the peak structure {self.peak_structure!r} gets no dose; "
                            f"the valley ratio is undefined (start from a plan that reaches the vertices)")
        e = max(mv / mp - self.max_ratio, 0.0)
        gv = xp.full(dv.shape, 2.0 * e / (mp * dv.size), dtype=dv.dtype)
        gp = xp.full(dp.shape, -2.0 * e * mv / (mp * mp * dp.size), dtype=dp.dtype)
        return e * e, (gv, gp)

    def shortfall(self, dv, dp) -> float:
        mp = float(dp.mean())
        return (float(dv.mean()) / mp if mp > 0 else float("inf")) - self.max_ratio

    def describe(self) -> str:
        return f"{self.structure} mean / {self.peak_structure} mean <= {self.max_ratio:g}"
