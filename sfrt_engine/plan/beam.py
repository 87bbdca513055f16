"""Static photon beams with beamlet weight maps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PlanError
from ..machines import PhotonMachine
from .geometry import BeamFrame, beam_frame

__all__ = ["Beam"]


@dataclass(frozen=True, eq=False)
class Beam:
    """A static beam: a machine, a pose and a regular map of beamlet weights.

    Beamlet ``[iv, iu]`` is a rectangle of ``beamlet_mm = (du, dv)`` at the isocentre
    plane centred at ``origin_uv_mm + (iu * du, iv * dv)`` in BEV coordinates.

    Parameters
    ----------
    machine : PhotonMachine
    isocenter_xyz_mm : tuple of float
    gantry_deg, couch_deg, collimator_deg : float
        IEC 61217 angles [deg] (see :mod:`sfrt_engine.plan.geometry`).
    weights_mu : ndarray, shape (nv, nu)
        Beamlet weights [MU], >= 0, rows along v and columns along u.
    beamlet_mm : float or (du, dv)
        Beamlet size at the isocentre plane [mm].
    origin_uv_mm : (u, v)
        Centre of beamlet ``[0, 0]`` at the isocentre plane [mm].
    name : str
    """

    machine: PhotonMachine
    isocenter_xyz_mm: tuple[float, float, float]
    gantry_deg: float
    weights_mu: np.ndarray
    beamlet_mm: tuple[float, float]
    origin_uv_mm: tuple[float, float]
    couch_deg: float = 0.0
    collimator_deg: float = 0.0
    name: str = "beam"

    def __post_init__(self) -> None:
        if not isinstance(self.machine, PhotonMachine):
            raise TypeError(f"beam {self.name!r}: machine must be a PhotonMachine, got {type(self.machine).__name__}")
        w = np.array(self.weights_mu, dtype=np.float64, order="C", copy=True)
        if w.ndim != 2 or w.size == 0:
            raise PlanError(f"beam {self.name!r}: weights_mu has shape {w.shape}, expected a non-empty (nv, nu) map")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise PlanError(f"beam {self.name!r}: beamlet weights must be finite and >= 0 MU")
        w.setflags(write=False)
        size = np.broadcast_to(np.asarray(self.beamlet_mm, dtype=float), (2,))
        if not np.all(np.isfinite(size)) or np.any(size <= 0):
            raise PlanError(f"beam {self.name!r}: beamlet_mm={self.beamlet_mm!r}, expected positive sizes in mm")
        origin = np.asarray(self.origin_uv_mm, dtype=float)
        if origin.shape != (2,) or not np.all(np.isfinite(origin)):
            raise PlanError(f"beam {self.name!r}: origin_uv_mm={self.origin_uv_mm!r}, expected (u, v) in mm")
        object.__setattr__(self, "weights_mu", w)
        object.__setattr__(self, "beamlet_mm", (float(size[0]), float(size[1])))
        object.__setattr__(self, "origin_uv_mm", (float(origin[0]), float(origin[1])))
        object.__setattr__(self, "isocenter_xyz_mm", tuple(float(c) for c in self.isocenter_xyz_mm))
        # validates angles and isocentre
        object.__setattr__(self, "_frame", beam_frame(self.isocenter_xyz_mm, self.machine.sad_mm, self.gantry_deg,
                                                      self.couch_deg, self.collimator_deg))

    @property
    def frame(self) -> BeamFrame:
        """BEV axes of the beam in patient coordinates."""
        return self._frame

    @property
    def n_beamlets(self) -> int:
        """Number of beamlets with a non-zero weight."""
        return int(np.count_nonzero(self.weights_mu))

    def beamlet_edges_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Beamlet edges along u (nu + 1) and v (nv + 1) at the isocentre plane [mm]."""
        nv, nu = self.weights_mu.shape
        du, dv = self.beamlet_mm
        u = self.origin_uv_mm[0] + du * (np.arange(nu + 1) - 0.5)
        v = self.origin_uv_mm[1] + dv * (np.arange(nv + 1) - 0.5)
        return u, v

    def open_extent_uv_mm(self) -> tuple[float, float, float, float]:
        """BEV bounding box (u_lo, u_hi, v_lo, v_hi) of the beamlets with weight > 0 [mm]."""
        rows, cols = np.nonzero(self.weights_mu)
        if rows.size == 0:
            raise PlanError(f"beam {self.name!r}: every beamlet weight is zero")
        ue, ve = self.beamlet_edges_mm()
        return float(ue[cols.min()]), float(ue[cols.max() + 1]), float(ve[rows.min()]), float(ve[rows.max() + 1])

    def with_weights(self, weights_mu) -> Beam:
        """Copy of the beam with another weight map of the same shape."""
        w = np.asarray(weights_mu, dtype=float)
        if w.shape != self.weights_mu.shape:
            raise PlanError(f"beam {self.name!r}: new weights shape {w.shape} != {self.weights_mu.shape}")
        return Beam(self.machine, self.isocenter_xyz_mm, self.gantry_deg, w, self.beamlet_mm, self.origin_uv_mm,
                    self.couch_deg, self.collimator_deg, self.name)

    def scaled(self, factor: float) -> Beam:
        """Copy with every beamlet weight multiplied by ``factor``."""
        return self.with_weights(self.weights_mu * factor)

    def __repr__(self) -> str:
        return (f"Beam({self.name!r}, machine={self.machine.name!r}, gantry={self.gantry_deg:g} deg, "
                f"couch={self.couch_deg:g} deg, beamlets={self.n_beamlets} x {self.beamlet_mm} mm)")
