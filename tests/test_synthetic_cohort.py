"""Synthetic sarcoma cohort: deterministic from the seed, within the trial's size range, varied.

The longest diameter is checked on the voxelised GTV (its extent along the limb), independently of
the generator's parameters; the 5-20 cm range is the trial's eligibility (NCT06980259).
"""

from __future__ import annotations

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine.errors import GridError
from sfrt_engine.synthetic_cohort import LONGEST_DIAMETER_RANGE_MM, cohort_cases


def test_same_seed_same_cohort_and_patient_i_independent_of_n():
    a = se.phantoms.sarcoma_cohort(3, seed=5, spacing_xyz_mm=6.0)
    b = se.phantoms.sarcoma_cohort(2, seed=5, spacing_xyz_mm=6.0)
    for p, q in zip(a, b):
        assert p.name == q.name
        assert np.array_equal(p.hu, q.hu)
        assert all(np.array_equal(p.structures[k], q.structures[k]) for k in p.structures)
    other = se.phantoms.sarcoma_cohort(1, seed=6, spacing_xyz_mm=6.0)[0]
    assert other.hu.shape != a[0].hu.shape or not np.array_equal(other.hu, a[0].hu)
    assert [p.name for p in a] == ["SYN001", "SYN002", "SYN003"]


def test_parameters_span_the_eligibility_range_and_vary():
    cases = cohort_cases(200, seed=0)
    lo, hi = LONGEST_DIAMETER_RANGE_MM
    diameters = np.array([c.longest_diameter_mm for c in cases])
    assert diameters.min() >= lo and diameters.max() <= hi
    assert diameters.min() < lo + 15 and diameters.max() > hi - 15  # both ends of 5-20 cm are reached
    limbs = np.array([c.limb_semi_axes_mm[0] for c in cases])
    assert limbs.max() - limbs.min() > 30.0
    assert 0.3 < np.mean([c.lobe_center_xyz_mm is not None for c in cases]) < 0.7
    angles = np.array([np.arctan2(c.tumour_center_xyz_mm[1], c.tumour_center_xyz_mm[0]) for c in cases])
    assert np.histogram(angles, bins=4, range=(-np.pi, np.pi))[0].min() > 25  # tumours all around the limb
    femur_gap = [np.hypot(c.tumour_center_xyz_mm[0] - c.femur_center_xy_mm[0],
                          c.tumour_center_xyz_mm[1] - c.femur_center_xy_mm[1]) for c in cases]
    assert max(femur_gap) - min(femur_gap) > 40.0


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_voxelised_tumour_matches_its_longest_diameter(index):
    case = cohort_cases(4, seed=11)[index]
    spacing = 5.0
    patient = case.build(spacing)
    s = patient.structures
    z_slices = np.flatnonzero(s["GTV"].any(axis=(1, 2)))
    extent_mm = (z_slices[-1] - z_slices[0] + 1) * spacing
    assert abs(extent_mm - case.longest_diameter_mm) <= spacing + 1e-9
    assert not (s["GTV"] & (s["SKIN"] | s["FEMUR"])).any()
    assert (s["GTV"] <= s["PTV"]).all() and (s["PTV"] <= s["BODY"]).all()
    assert patient.name == case.patient_id


def test_bad_cohort_size_is_an_error():
    with pytest.raises(GridError, match="n=0"):
        se.phantoms.sarcoma_cohort(0)
    with pytest.raises(GridError, match="seed=-1"):
        cohort_cases(2, seed=-1)
