"""A synthetic cohort of thigh sarcomas for research and tests (re-exported by :mod:`sfrt_engine.phantoms`).

Each patient is the :func:`~sfrt_engine.phantoms.sarcoma_thigh` geometry with its own limb,
femur and tumour, drawn from a generator seeded by ``(seed, index)``: patient ``i`` is the
same whatever the cohort size, and the cohort is the same on every machine.

Ranges (all uniform unless stated):

- limb semi-axes: ``a`` 65-105 mm, ``b = a x (0.85-0.98)``; adult thigh circumferences are
  about 45-65 cm (mid-thigh anthropometry, e.g. NHANES: mean ~53 cm), i.e. radii 72-103 mm;
- tumour longest diameter ``L`` 50-200 mm, log-uniform: the trial (NCT06980259) enrols
  soft-tissue sarcomas of 5-20 cm; the longest axis runs along the limb (z), as in most
  extremity sarcomas, with transverse semi-axes 0.40-0.75 of ``L/2`` capped by the limb;
- shape: an ellipsoid, in half of the patients with a second lobe (a smaller ellipsoid
  bulging sideways, inside the longest diameter);
- position: direction around the limb uniform; the tumour edge 5-25 mm under the skin
  surface along that direction; the femur (radius 11-16 mm, cortex 5 mm) 0-30 % of ``b``
  from the limb axis, on the far side of the tumour within +-45 degrees, so some tumours
  abut it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import GridError
from .patient import Patient

__all__ = ["LONGEST_DIAMETER_RANGE_MM", "CohortCase", "cohort_cases", "sarcoma_cohort"]

#: Tumour longest diameter range of the cohort [mm] (trial NCT06980259 eligibility: 5-20 cm).
LONGEST_DIAMETER_RANGE_MM = (50.0, 200.0)
#: Limb length beyond the tumour at each end [mm] (room for the PTV margin and beam entry).
LIMB_MARGIN_Z_MM = 30.0


@dataclass(frozen=True)
class CohortCase:
    """Geometry of one synthetic patient (all lengths in mm, DICOM patient coordinates)."""

    patient_id: str
    seed: int
    index: int
    limb_semi_axes_mm: tuple[float, float]
    limb_length_mm: float
    tumour_center_xyz_mm: tuple[float, float, float]
    tumour_semi_axes_xyz_mm: tuple[float, float, float]
    lobe_center_xyz_mm: tuple[float, float, float] | None
    lobe_semi_axes_xyz_mm: tuple[float, float, float] | None
    femur_center_xy_mm: tuple[float, float]
    femur_radius_mm: float

    @property
    def longest_diameter_mm(self) -> float:
        """Longest tumour diameter (along z by construction) [mm]."""
        return 2.0 * self.tumour_semi_axes_xyz_mm[2]

    def to_dict(self) -> dict:
        return asdict(self)

    def build(self, spacing_xyz_mm: float = 2.5) -> Patient:
        """The patient on a grid of ``spacing_xyz_mm`` voxels (same structures as ``sarcoma_thigh``)."""
        from .phantoms import TISSUE_HU, _ellipsoid, _expand, sarcoma_thigh

        patient = sarcoma_thigh(spacing_xyz_mm=spacing_xyz_mm, limb_semi_axes_mm=self.limb_semi_axes_mm,
                                limb_length_mm=self.limb_length_mm, tumour_center_xyz_mm=self.tumour_center_xyz_mm,
                                tumour_semi_axes_xyz_mm=self.tumour_semi_axes_xyz_mm,
                                femur_center_xy_mm=self.femur_center_xy_mm, femur_radius_mm=self.femur_radius_mm)
        s = patient.structures
        if self.lobe_center_xyz_mm is not None:
            lobe = _ellipsoid(patient.grid, self.lobe_center_xyz_mm, self.lobe_semi_axes_xyz_mm)
            gtv = (s["GTV"] | lobe) & s["BODY"] & ~s["SKIN"] & ~s["FEMUR"]
            s["GTV"] = gtv
            s["PTV"] = _expand(gtv, patient.grid, 5.0) & s["BODY"] & ~s["SKIN"]
            s["NORMAL_TISSUE"] = s["BODY"] & ~gtv & ~s["FEMUR"] & ~s["SKIN"]
            patient.hu[gtv] = TISSUE_HU["tumour"]
        patient.name = self.patient_id
        return patient


def _radius_along(semi_a: float, semi_b: float, theta: float) -> float:
    """Distance from the centre to an ellipse (semi-axes a along x, b along y) in direction theta [mm]."""
    return semi_a * semi_b / np.hypot(semi_b * np.cos(theta), semi_a * np.sin(theta))


def _draw(seed: int, index: int) -> CohortCase:
    rng = np.random.default_rng([int(seed), int(index)])
    a = rng.uniform(65.0, 105.0)
    b = a * rng.uniform(0.85, 0.98)
    lo, hi = LONGEST_DIAMETER_RANGE_MM
    az = 0.5 * float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    lobed = bool(rng.random() < 0.5)
    # transverse semi-axes: a fraction of az, capped so tumour (and lobe bulge, 1.1x) stay inside the limb
    cap = 0.55 * b / (1.1 if lobed else 1.0)
    ax = min(az * rng.uniform(0.40, 0.75), cap)
    ay = min(az * rng.uniform(0.40, 0.75), cap)
    theta = rng.uniform(0.0, 2.0 * np.pi)
    skin_gap = rng.uniform(5.0, 25.0)
    reach = _radius_along(a, b, theta) - skin_gap - _radius_along(ax, ay, theta)
    centre = max(reach, 0.0)
    cx, cy = centre * np.cos(theta), centre * np.sin(theta)
    lobe_c = lobe_s = None
    if lobed:
        phi = theta + rng.choice([-1.0, 1.0]) * rng.uniform(np.pi / 3, np.pi / 2)  # bulge sideways
        lobe_s = (0.5 * ax, 0.5 * ay, 0.5 * az)
        lobe_c = (cx + 0.6 * ax * np.cos(phi), cy + 0.6 * ay * np.sin(phi), az * rng.uniform(-0.2, 0.2))
    femur_r = rng.uniform(11.0, 16.0)
    f_angle = theta + np.pi + rng.uniform(-np.pi / 4, np.pi / 4)
    f_dist = rng.uniform(0.0, 0.30) * b
    return CohortCase(
        patient_id=f"SYN{index + 1:03d}", seed=int(seed), index=int(index), limb_semi_axes_mm=(a, b),
        limb_length_mm=2.0 * (az + LIMB_MARGIN_Z_MM), tumour_center_xyz_mm=(cx, cy, 0.0),
        tumour_semi_axes_xyz_mm=(ax, ay, az), lobe_center_xyz_mm=lobe_c, lobe_semi_axes_xyz_mm=lobe_s,
        femur_center_xy_mm=(f_dist * np.cos(f_angle), f_dist * np.sin(f_angle)), femur_radius_mm=femur_r)


def cohort_cases(n: int, seed: int = 0) -> list[CohortCase]:
    """Geometries of the first ``n`` patients of cohort ``seed`` (cheap: no arrays are built)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise GridError(f"sarcoma_cohort: n={n!r}; expected a whole number of patients >= 1")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise GridError(f"sarcoma_cohort: seed={seed!r}; expected a whole number >= 0")
    return [_draw(seed, i) for i in range(int(n))]


def sarcoma_cohort(n: int, seed: int = 0, spacing_xyz_mm: float = 2.5) -> list[Patient]:
    """``n`` synthetic thigh-sarcoma patients, deterministic from ``seed``.

    Parameters
    ----------
    n : int
        Number of patients (>= 1).
    seed : int
        Cohort seed (>= 0); patient ``i`` depends only on ``(seed, i)``.
    spacing_xyz_mm : float
        Voxel size [mm].

    Returns
    -------
    list of Patient
        Named ``SYN001``, ``SYN002``, ...; structures BODY, GTV, PTV, FEMUR, SKIN, NORMAL_TISSUE.
        The geometry of each is :func:`cohort_cases` ``(n, seed)[i]``.
    """
    return [case.build(spacing_xyz_mm) for case in cohort_cases(n, seed)]
