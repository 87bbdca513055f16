"""Beam geometry: IEC 61217 angles to beam's-eye-view (BEV) axes in patient coordinates.

Frames (head-first supine patient):

- IEC fixed (X, Y, Z): X to the patient's left, Y towards the gantry (superior),
  Z up (anterior). In DICOM patient coordinates: X = +x, Y = +z, Z = -y.
- Gantry angle g rotates the beam-limiting-device frame about Y; at g = 0 the source
  is above the patient (anterior), at g = 90 at the patient's left (+x).
- Collimator angle c rotates the BEV axes about the beam axis.
- Couch (patient support) angle t rotates the patient about the vertical axis Z,
  counter-clockwise seen from above for positive t.

BEV coordinates of a point: ``u`` along the beam-limiting X axis, ``v`` along its Y
axis, both projected to the isocentre plane (scaled by SAD / z), and ``z`` the
distance from the source along the beam axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PlanError

__all__ = ["BeamFrame", "beam_frame"]

# DICOM (x, y, z) = _IEC_TO_DICOM @ IEC fixed (X, Y, Z): x = X, y = -Z, z = Y
_IEC_TO_DICOM = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


@dataclass(frozen=True, eq=False)
class BeamFrame:
    """Orthonormal BEV axes of one beam, in DICOM patient coordinates.

    Attributes
    ----------
    isocenter_xyz_mm : ndarray, shape (3,)
    sad_mm : float
    axis_u, axis_v : ndarray, shape (3,)
        Unit vectors of the BEV u and v axes.
    axis_source : ndarray, shape (3,)
        Unit vector from the isocentre towards the source (the beam travels along
        ``-axis_source``).
    """

    isocenter_xyz_mm: np.ndarray
    sad_mm: float
    axis_u: np.ndarray
    axis_v: np.ndarray
    axis_source: np.ndarray

    @property
    def source_xyz_mm(self) -> np.ndarray:
        return self.isocenter_xyz_mm + self.sad_mm * self.axis_source

    @property
    def direction(self) -> np.ndarray:
        """Unit vector along which the beam travels."""
        return -self.axis_source

    def to_bev(self, points_xyz_mm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """BEV coordinates of points.

        Parameters
        ----------
        points_xyz_mm : ndarray, shape (..., 3)

        Returns
        -------
        u_mm, v_mm : ndarray, shape (...)
            Offsets from the central axis projected to the isocentre plane [mm].
        z_mm : ndarray, shape (...)
            Distance from the source along the beam axis [mm].
        """
        q = np.asarray(points_xyz_mm, dtype=float) - self.isocenter_xyz_mm
        z = self.sad_mm - q @ self.axis_source
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = self.sad_mm / z
        return (q @ self.axis_u) * scale, (q @ self.axis_v) * scale, z

    def point_at(self, u_mm, v_mm, z_mm) -> np.ndarray:
        """Patient coordinates [mm] of BEV points (inverse of :meth:`to_bev`), shape (..., 3)."""
        u = np.asarray(u_mm, dtype=float)[..., None]
        v = np.asarray(v_mm, dtype=float)[..., None]
        z = np.asarray(z_mm, dtype=float)[..., None]
        ray = -self.axis_source + (u / self.sad_mm) * self.axis_u + (v / self.sad_mm) * self.axis_v
        return self.source_xyz_mm + z * ray


def _rot(axis: int, angle_rad: float) -> np.ndarray:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def beam_frame(isocenter_xyz_mm, sad_mm: float, gantry_deg: float, couch_deg: float = 0.0,
               collimator_deg: float = 0.0) -> BeamFrame:
    """BEV frame of a beam given IEC 61217 angles in degrees (see the module docstring)."""
    iso = np.asarray(isocenter_xyz_mm, dtype=float)
    if iso.shape != (3,) or not np.all(np.isfinite(iso)):
        raise PlanError(f"isocenter_xyz_mm={isocenter_xyz_mm!r}: expected three finite coordinates in mm")
    for label, value in (("gantry_deg", gantry_deg), ("couch_deg", couch_deg), ("collimator_deg", collimator_deg)):
        if not np.isfinite(value):
            raise PlanError(f"{label}={value!r}: expected a finite angle in degrees")
    if not (np.isfinite(sad_mm) and sad_mm > 0):
        raise PlanError(f"sad_mm={sad_mm!r}: expected a positive distance in mm")
    g, c, t = np.deg2rad([gantry_deg, collimator_deg, couch_deg])
    # beam-limiting-device axes in IEC fixed coordinates at collimator 0
    xb = np.array([np.cos(g), 0.0, -np.sin(g)])
    yb = np.array([0.0, 1.0, 0.0])
    zb = np.array([np.sin(g), 0.0, np.cos(g)])
    xb, yb = np.cos(c) * xb + np.sin(c) * yb, -np.sin(c) * xb + np.cos(c) * yb
    # room vectors seen in the rotated patient-support frame, then in DICOM axes
    to_patient = _IEC_TO_DICOM @ _rot(2, t).T
    axes = [to_patient @ a for a in (xb, yb, zb)]
    axes = [a / np.linalg.norm(a) for a in axes]
    return BeamFrame(iso, float(sad_mm), axes[0], axes[1], axes[2])
