"""Proton beams: energy layers of scanned spots on a regular BEV lattice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PlanError
from ..machines import ProtonMachine
from .geometry import BeamFrame, beam_frame

__all__ = ["SpotLayer", "ProtonBeam"]


@dataclass(frozen=True, eq=False)
class SpotLayer:
    """Spots of one energy on a regular lattice at the isocentre plane.

    Spot ``[iv, iu]`` sits at ``origin_uv_mm + (iu * du, iv * dv)``; its weight is in Gp
    (1e9 protons). Zero weights are allowed (no spot there). ``range_shifter_mm`` is the
    water-equivalent thickness of a range shifter in the nozzle for this layer: it adds to
    every depth (the layer's Bragg curve and spot width are read that much deeper), the
    usual way to reach targets shallower than the lowest energy's range.
    """

    energy_mev: float
    weights_gp: np.ndarray
    spacing_mm: tuple[float, float]
    origin_uv_mm: tuple[float, float]
    range_shifter_mm: float = 0.0

    def __post_init__(self) -> None:
        w = np.array(self.weights_gp, dtype=np.float64, order="C", copy=True)
        if w.ndim != 2 or w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise PlanError(f"spot layer {self.energy_mev} MeV: weights must be a non-empty (nv, nu) map of finite "
                            "values >= 0 Gp")
        w.setflags(write=False)
        sp = np.broadcast_to(np.asarray(self.spacing_mm, dtype=float), (2,))
        if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
            raise PlanError(f"spot layer {self.energy_mev} MeV: spacing_mm={self.spacing_mm!r}, expected > 0 mm")
        o = np.asarray(self.origin_uv_mm, dtype=float)
        if o.shape != (2,) or not np.all(np.isfinite(o)):
            raise PlanError(f"spot layer {self.energy_mev} MeV: origin_uv_mm must be (u, v) in mm")
        object.__setattr__(self, "weights_gp", w)
        object.__setattr__(self, "spacing_mm", (float(sp[0]), float(sp[1])))
        object.__setattr__(self, "origin_uv_mm", (float(o[0]), float(o[1])))
        object.__setattr__(self, "energy_mev", float(self.energy_mev))
        if not (np.isfinite(self.range_shifter_mm) and self.range_shifter_mm >= 0):
            raise PlanError(f"spot layer {self.energy_mev} MeV: range_shifter_mm={self.range_shifter_mm!r}, "
                            "expected a thickness >= 0 mm")
        object.__setattr__(self, "range_shifter_mm", float(self.range_shifter_mm))

    @property
    def n_spots(self) -> int:
        return int(np.count_nonzero(self.weights_gp))

    def positions_uv_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Spot centres along u (nu) and v (nv) [mm]."""
        nv, nu = self.weights_gp.shape
        return (self.origin_uv_mm[0] + self.spacing_mm[0] * np.arange(nu),
                self.origin_uv_mm[1] + self.spacing_mm[1] * np.arange(nv))


@dataclass(frozen=True, eq=False)
class ProtonBeam:
    """A scanned proton field: a pose and energy layers of spots."""

    machine: ProtonMachine
    isocenter_xyz_mm: tuple[float, float, float]
    gantry_deg: float
    layers: tuple[SpotLayer, ...]
    couch_deg: float = 0.0
    collimator_deg: float = 0.0
    name: str = "proton"

    def __post_init__(self) -> None:
        if not isinstance(self.machine, ProtonMachine):
            raise TypeError(f"beam {self.name!r}: machine must be a ProtonMachine, got {type(self.machine).__name__}")
        layers = tuple(self.layers)
        if not layers:
            raise PlanError(f"beam {self.name!r}: no energy layers")
        for layer in layers:
            if not isinstance(layer, SpotLayer):
                raise TypeError(f"beam {self.name!r}: layers must be SpotLayer, got {type(layer).__name__}")
            self.machine.energy_index(layer.energy_mev, where=f"beam {self.name!r}")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "isocenter_xyz_mm", tuple(float(c) for c in self.isocenter_xyz_mm))
        object.__setattr__(self, "_frame", beam_frame(self.isocenter_xyz_mm, self.machine.sad_mm, self.gantry_deg,
                                                      self.couch_deg, self.collimator_deg))

    @property
    def frame(self) -> BeamFrame:
        return self._frame

    @property
    def n_spots(self) -> int:
        return sum(layer.n_spots for layer in self.layers)

    def open_extent_uv_mm(self) -> tuple[float, float, float, float]:
        """BEV bounding box (u_lo, u_hi, v_lo, v_hi) of the spots with weight > 0 [mm]."""
        lo_u, hi_u, lo_v, hi_v = np.inf, -np.inf, np.inf, -np.inf
        for layer in self.layers:
            rows, cols = np.nonzero(layer.weights_gp)
            if rows.size == 0:
                continue
            pu, pv = layer.positions_uv_mm()
            lo_u, hi_u = min(lo_u, pu[cols.min()]), max(hi_u, pu[cols.max()])
            lo_v, hi_v = min(lo_v, pv[rows.min()]), max(hi_v, pv[rows.max()])
        if not np.isfinite(lo_u):
            raise PlanError(f"beam {self.name!r}: every spot weight is zero")
        return float(lo_u), float(hi_u), float(lo_v), float(hi_v)

    def with_layers(self, layers) -> ProtonBeam:
        return ProtonBeam(self.machine, self.isocenter_xyz_mm, self.gantry_deg, tuple(layers), self.couch_deg,
                          self.collimator_deg, self.name)

    def scaled(self, factor: float) -> ProtonBeam:
        """Copy with every spot weight multiplied by ``factor``."""
        return self.with_layers(SpotLayer(lay.energy_mev, lay.weights_gp * factor, lay.spacing_mm, lay.origin_uv_mm,
                                          lay.range_shifter_mm) for lay in self.layers)

    def __repr__(self) -> str:
        return (f"ProtonBeam({self.name!r}, gantry={self.gantry_deg:g} deg, couch={self.couch_deg:g} deg, "
                f"{len(self.layers)} layers, {self.n_spots} spots)")
